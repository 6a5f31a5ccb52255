/* mock_sigv4.c — verifying AWS Signature Version 4 on Bedrock requests.
 *
 * An independent re-computation of what the client should have signed, step by step as AWS
 * specifies: the canonical request (method, canonical URI, canonical query, the signed headers
 * with trimmed values, the signed-header list, the payload hash), the string to sign with the
 * credential scope, the derived key (date -> region -> service -> "aws4_request") and the HMAC.
 * The canonical URI is the path as sent, URI-encoded once more: for every service but S3 AWS
 * encodes each segment twice, so a model id sent as `v1%3A0` is signed as `v1%253A0` — the
 * classic way gateways get "signature does not match". On a mismatch the canonical request we
 * expected is logged (unless --quiet) so a failing gateway can be debugged. */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mock.h"

#define MAX_SKEW_SECONDS (15 * 60)

typedef struct text_buffer {
    char *data;
    size_t length;
    size_t capacity;
} text_buffer_t;

static void text_append(text_buffer_t *text, const char *bytes, size_t length)
{
    if (text->length + length + 1 > text->capacity) {
        size_t capacity = (text->capacity + length + 1) * 2;
        char *grown = realloc(text->data, capacity);
        if (grown == NULL)
            return;
        text->data = grown;
        text->capacity = capacity;
    }
    memcpy(text->data + text->length, bytes, length);
    text->length += length;
    text->data[text->length] = '\0';
}

static void text_append_string(text_buffer_t *text, const char *string)
{
    text_append(text, string, strlen(string));
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
}

/* RFC 3986 encoding as AWS does it (uppercase hex); '/' kept when is_path. */
static void uri_encode(text_buffer_t *out, const char *bytes, size_t length, bool is_path)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (is_unreserved(c) || (is_path && c == '/')) {
            text_append(out, (const char *)&c, 1);
        } else {
            char escaped[3] = { '%', hex[c >> 4], hex[c & 15] };
            text_append(out, escaped, 3);
        }
    }
}

static void hex_of(const unsigned char *bytes, size_t length, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < length; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * length] = '\0';
}

static void sha256_hex(const void *bytes, size_t length, char out[65])
{
    unsigned char digest[32];
    unsigned int digest_length = 0;
    if (EVP_Digest(bytes, length, digest, &digest_length, EVP_sha256(), NULL) != 1) {
        out[0] = '\0';
        return;
    }
    hex_of(digest, 32, out);
}

static void hmac_sha256(const void *key, size_t key_length, const char *message, unsigned char out[32])
{
    unsigned int length = 32;
    if (HMAC(EVP_sha256(), key, (int)key_length, (const unsigned char *)message, strlen(message), out, &length) == NULL)
        memset(out, 0, 32);
}

typedef struct query_pair {
    char *key;
    char *value;
} query_pair_t;

static int compare_pairs(const void *left, const void *right)
{
    const query_pair_t *a = left;
    const query_pair_t *b = right;
    int by_key = strcmp(a->key, b->key);
    return by_key != 0 ? by_key : strcmp(a->value, b->value);
}

/* Each parameter decoded, re-encoded the AWS way, sorted by key then value. */
static void canonical_query(text_buffer_t *out, const char *query)
{
    if (query == NULL || query[0] == '\0')
        return;
    size_t count = 1;
    for (const char *c = query; *c; c++)
        count += *c == '&';
    query_pair_t *pairs = calloc(count, sizeof *pairs);
    if (pairs == NULL)
        return;
    size_t used = 0;
    const char *cursor = query;
    while (*cursor != '\0' || cursor == query) {
        size_t length = strcspn(cursor, "&");
        if (length > 0) {
            const char *equals = memchr(cursor, '=', length);
            size_t key_length = equals ? (size_t)(equals - cursor) : length;
            char *key = mock_percent_decode(cursor, key_length);
            char *value = equals ? mock_percent_decode(equals + 1, length - key_length - 1) : strdup("");
            text_buffer_t encoded_key = { 0 }, encoded_value = { 0 };
            if (key != NULL && value != NULL) {
                uri_encode(&encoded_key, key, strlen(key), false);
                uri_encode(&encoded_value, value, strlen(value), false);
            }
            pairs[used].key = encoded_key.data ? encoded_key.data : strdup("");
            pairs[used].value = encoded_value.data ? encoded_value.data : strdup("");
            used++;
            free(key);
            free(value);
        }
        cursor += length;
        if (*cursor == '\0')
            break;
        cursor++;
    }
    qsort(pairs, used, sizeof *pairs, compare_pairs);
    for (size_t i = 0; i < used; i++) {
        if (i > 0)
            text_append_string(out, "&");
        text_append_string(out, pairs[i].key);
        text_append_string(out, "=");
        text_append_string(out, pairs[i].value);
        free(pairs[i].key);
        free(pairs[i].value);
    }
    free(pairs);
}

/* All values of a header (case-insensitive), joined by ',', each trimmed with inner runs of
 * spaces collapsed. Returns false when the request lacks the header. */
static bool canonical_header_value(const mock_call_t *call, const char *name, text_buffer_t *out)
{
    struct evkeyvalq *headers = evhttp_request_get_input_headers(call->http);
    bool is_found = false;
    for (struct evkeyval *header = headers->tqh_first; header != NULL; header = header->next.tqe_next) {
        if (strcasecmp(header->key, name) != 0)
            continue;
        if (is_found)
            text_append_string(out, ",");
        is_found = true;
        const char *value = header->value;
        while (*value == ' ' || *value == '\t')
            value++;
        size_t length = strlen(value);
        while (length > 0 && (value[length - 1] == ' ' || value[length - 1] == '\t'))
            length--;
        for (size_t i = 0; i < length; i++) {
            bool is_blank = value[i] == ' ' || value[i] == '\t';
            if (is_blank && i > 0 && (value[i - 1] == ' ' || value[i - 1] == '\t'))
                continue;
            text_append(out, is_blank ? " " : value + i, 1);
        }
    }
    return is_found;
}

/* Copies the value after `key=` up to ',' or end into out. */
static bool auth_field(const char *authorization, const char *key, char *out, size_t out_size)
{
    const char *found = strstr(authorization, key);
    if (found == NULL)
        return false;
    found += strlen(key);
    size_t length = strcspn(found, ", ");
    if (length >= out_size)
        return false;
    memcpy(out, found, length);
    out[length] = '\0';
    return true;
}

static time_t parse_amz_date(const char *text)
{
    struct tm parts = { 0 };
    if (text == NULL || strlen(text) != 16 || text[8] != 'T' || text[15] != 'Z')
        return (time_t)-1;
    if (sscanf(text, "%4d%2d%2dT%2d%2d%2dZ", &parts.tm_year, &parts.tm_mon, &parts.tm_mday, &parts.tm_hour,
               &parts.tm_min, &parts.tm_sec) != 6)
        return (time_t)-1;
    parts.tm_year -= 1900;
    parts.tm_mon -= 1;
    return timegm(&parts);
}

#define FAIL(status, type, ...)                                  \
    do {                                                         \
        snprintf(error_type, error_type_size, "%s", type);       \
        snprintf(message, message_size, __VA_ARGS__);            \
        result = status;                                         \
        goto done;                                               \
    } while (0)

int mock_sigv4_verify(const mock_call_t *call, const char *access_key_id, const char *secret_access_key,
                      char *error_type, size_t error_type_size, char *message, size_t message_size)
{
    int result = 0;
    text_buffer_t canonical = { 0 };
    text_buffer_t to_sign = { 0 };
    const char *authorization = mock_header(call, "authorization");
    char credential[256], signed_headers[1024], signature[128];
    if (authorization == NULL)
        FAIL(403, "MissingAuthenticationTokenException", "Missing Authentication Token");
    if (strncmp(authorization, "AWS4-HMAC-SHA256 ", 17) != 0 ||
        !auth_field(authorization, "Credential=", credential, sizeof credential) ||
        !auth_field(authorization, "SignedHeaders=", signed_headers, sizeof signed_headers) ||
        !auth_field(authorization, "Signature=", signature, sizeof signature))
        FAIL(400, "IncompleteSignatureException",
             "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.");

    /* Credential = AKID/date/region/service/aws4_request */
    char *fields[5] = { 0 };
    char *save = NULL;
    int field_count = 0;
    for (char *part = strtok_r(credential, "/", &save); part != NULL && field_count < 5;
         part = strtok_r(NULL, "/", &save))
        fields[field_count++] = part;
    if (field_count != 5 || strtok_r(NULL, "/", &save) != NULL)
        FAIL(400, "IncompleteSignatureException", "Credential should have five parts separated by '/'.");
    if (strcmp(fields[0], access_key_id) != 0)
        FAIL(403, "UnrecognizedClientException", "The security token included in the request is invalid.");
    if (strcmp(fields[3], "bedrock") != 0)
        FAIL(403, "InvalidSignatureException", "Credential should be scoped to correct service: 'bedrock'.");
    if (strcmp(fields[4], "aws4_request") != 0)
        FAIL(403, "InvalidSignatureException", "Credential should be scoped with a valid terminator: 'aws4_request'.");

    const char *amz_date = mock_header(call, "x-amz-date");
    time_t signed_at = parse_amz_date(amz_date);
    if (signed_at == (time_t)-1)
        FAIL(400, "IncompleteSignatureException", "Authorization header requires existence of a valid x-amz-date header.");
    if (strncmp(amz_date, fields[1], 8) != 0 || strlen(fields[1]) != 8)
        FAIL(403, "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.");
    time_t now = time(NULL);
    if (signed_at < now - MAX_SKEW_SECONDS || signed_at > now + MAX_SKEW_SECONDS)
        FAIL(403, "InvalidSignatureException", "Signature expired: %s is now earlier or later than 15 minutes from now.", amz_date);
    if (strstr(signed_headers, "host") == NULL)
        FAIL(403, "InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.");

    char payload_hash[65];
    sha256_hex(call->body, call->body_length, payload_hash);
    const char *claimed_hash = mock_header(call, "x-amz-content-sha256");
    if (claimed_hash != NULL && strcmp(claimed_hash, "UNSIGNED-PAYLOAD") == 0)
        snprintf(payload_hash, sizeof payload_hash, "UNSIGNED-PAYLOAD");
    else if (claimed_hash != NULL && strcmp(claimed_hash, payload_hash) != 0)
        FAIL(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.");

    /* 1. the canonical request */
    text_append_string(&canonical, call->method);
    text_append_string(&canonical, "\n");
    uri_encode(&canonical, call->path[0] ? call->path : "/", call->path[0] ? strlen(call->path) : 1, true);
    text_append_string(&canonical, "\n");
    canonical_query(&canonical, call->query);
    text_append_string(&canonical, "\n");
    char header_list[1024];
    snprintf(header_list, sizeof header_list, "%s", signed_headers);
    for (char *name = strtok_r(header_list, ";", &save); name != NULL; name = strtok_r(NULL, ";", &save)) {
        text_append_string(&canonical, name);
        text_append_string(&canonical, ":");
        if (!canonical_header_value(call, name, &canonical))
            FAIL(403, "InvalidSignatureException", "Signed header '%s' is missing from the request.", name);
        text_append_string(&canonical, "\n");
    }
    text_append_string(&canonical, "\n");
    text_append_string(&canonical, signed_headers);
    text_append_string(&canonical, "\n");
    text_append_string(&canonical, payload_hash);

    /* 2. the string to sign */
    char canonical_hash[65];
    sha256_hex(canonical.data, canonical.length, canonical_hash);
    char scope[256];
    snprintf(scope, sizeof scope, "%s/%s/%s/%s", fields[1], fields[2], fields[3], fields[4]);
    text_append_string(&to_sign, "AWS4-HMAC-SHA256\n");
    text_append_string(&to_sign, amz_date);
    text_append_string(&to_sign, "\n");
    text_append_string(&to_sign, scope);
    text_append_string(&to_sign, "\n");
    text_append_string(&to_sign, canonical_hash);

    /* 3. the signing key and 4. the signature */
    size_t secret_length = strlen(secret_access_key);
    char *date_key_seed = malloc(secret_length + 5);
    if (date_key_seed == NULL)
        FAIL(500, "InternalServerException", "mock out of memory");
    snprintf(date_key_seed, secret_length + 5, "AWS4%s", secret_access_key);
    unsigned char date_key[32], region_key[32], service_key[32], signing_key[32];
    hmac_sha256(date_key_seed, secret_length + 4, fields[1], date_key);
    free(date_key_seed);
    hmac_sha256(date_key, 32, fields[2], region_key);
    hmac_sha256(region_key, 32, fields[3], service_key);
    hmac_sha256(service_key, 32, "aws4_request", signing_key);
    unsigned char expected[32];
    hmac_sha256(signing_key, 32, to_sign.data, expected);
    char expected_hex[65];
    hex_of(expected, 32, expected_hex);
    if (strlen(signature) != 64 || CRYPTO_memcmp(expected_hex, signature, 64) != 0) {
        if (!mock_options.is_quiet)
            fprintf(stderr, "sluice-mock: SigV4 mismatch. Expected canonical request:\n%s\nString to sign:\n%s\n",
                    canonical.data, to_sign.data);
        FAIL(403, "InvalidSignatureException",
             "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
             "Access Key and signing method. Consult the service documentation for details.");
    }
done:
    free(canonical.data);
    free(to_sign.data);
    return result;
}
