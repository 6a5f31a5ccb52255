/* sigv4.c — AWS Signature Version 4 (see sigv4.h).
 *
 * The four steps of the published process, each a function so a test can
 * check each against AWS's worked examples: canonical request, string to
 * sign, signing key (an HMAC chain from "AWS4"+secret over date, region,
 * service and "aws4_request"), and the Authorization header. Nothing is
 * cached: the key chain is four HMACs, cheaper than sharing state between
 * workers. */
#include "sluice/sigv4.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/util/crypto.h"

enum { HMAC_LENGTH = 32, MAX_SIGNED_HEADERS = 32 };

void sigv4_amz_date(time_t when, char out[SIGV4_DATE_LENGTH])
{
    struct tm utc;
    gmtime_r(&when, &utc);
    strftime(out, SIGV4_DATE_LENGTH, "%Y%m%dT%H%M%SZ", &utc);
}

int sigv4_payload_hash(const void *body, size_t length, char out[SIGV4_HEX_LENGTH])
{
    unsigned char digest[CRYPTO_SHA256_LENGTH];
    if (crypto_sha256(body ? body : "", length, digest) != 0)
        return -1;
    crypto_hex_encode(digest, sizeof digest, out);
    return 0;
}

static bool is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int sigv4_uri_encode(buf_t *out, const char *text, size_t length, bool keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        int rc;
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            rc = buf_append_char(out, (char)c);
        } else {
            char escaped[3] = {'%', digits[c >> 4], digits[c & 15]};
            rc = buf_append(out, escaped, 3);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX escapes of one query key or value, then encodes it the RFC 3986
 * way, so "a%2fb" and "a/b" both come out as "a%2Fb". */
static int append_query_part(buf_t *out, const char *text, size_t length)
{
    buf_t decoded;
    buf_init(&decoded);
    int rc = 0;
    for (size_t i = 0; i < length && rc == 0; i++) {
        int high = i + 2 < length && text[i] == '%' ? hex_digit(text[i + 1]) : -1;
        int low = high >= 0 ? hex_digit(text[i + 2]) : -1;
        if (low >= 0) {
            rc = buf_append_char(&decoded, (char)(high << 4 | low));
            i += 2;
        } else {
            rc = buf_append_char(&decoded, text[i]);
        }
    }
    if (rc == 0)
        rc = sigv4_uri_encode(out, decoded.data ? decoded.data : "", decoded.length, false);
    buf_free(&decoded);
    return rc;
}

typedef struct query_pair {
    char *key; /* encoded, malloc'ed */
    char *value;
} query_pair_t;

static int compare_pairs(const void *a, const void *b)
{
    const query_pair_t *left = a, *right = b;
    int order = strcmp(left->key, right->key);
    return order != 0 ? order : strcmp(left->value, right->value);
}

static char *encoded_copy(const char *text, size_t length)
{
    buf_t encoded;
    buf_init(&encoded);
    if (append_query_part(&encoded, text, length) != 0) {
        buf_free(&encoded);
        return NULL;
    }
    if (encoded.data == NULL)
        return strdup("");
    return encoded.data; /* the buffer's storage becomes the string */
}

static int append_canonical_query(buf_t *out, const char *query)
{
    if (query == NULL || query[0] == '\0')
        return 0;
    size_t capacity = 1;
    for (const char *p = query; *p; p++)
        capacity += *p == '&';
    query_pair_t *pairs = calloc(capacity, sizeof *pairs);
    if (pairs == NULL)
        return -1;
    size_t count = 0;
    int rc = 0;
    for (const char *start = query; rc == 0 && *start != '\0';) {
        const char *end = strchr(start, '&');
        if (end == NULL)
            end = start + strlen(start);
        if (end > start) {
            const char *equals = memchr(start, '=', (size_t)(end - start));
            const char *key_end = equals ? equals : end;
            pairs[count].key = encoded_copy(start, (size_t)(key_end - start));
            pairs[count].value = equals ? encoded_copy(equals + 1, (size_t)(end - equals - 1)) : strdup("");
            if (pairs[count].key == NULL || pairs[count].value == NULL)
                rc = -1;
            count++;
        }
        start = *end ? end + 1 : end;
    }
    if (rc == 0)
        qsort(pairs, count, sizeof *pairs, compare_pairs);
    for (size_t i = 0; i < count; i++) {
        if (rc == 0)
            rc = buf_printf(out, "%s%s=%s", i ? "&" : "", pairs[i].key, pairs[i].value);
        free(pairs[i].key);
        free(pairs[i].value);
    }
    free(pairs);
    return rc;
}

typedef struct canonical_header {
    char name[128]; /* lowercased */
    const char *value;
} canonical_header_t;

static int compare_headers(const void *a, const void *b)
{
    return strcmp(((const canonical_header_t *)a)->name, ((const canonical_header_t *)b)->name);
}

/* Lowercased, sorted names; NULL-free. Returns the count or -1. */
static int sorted_headers(const sigv4_request_t *request, canonical_header_t *headers)
{
    if (request->header_count > MAX_SIGNED_HEADERS)
        return -1;
    for (size_t i = 0; i < request->header_count; i++) {
        const char *name = request->headers[i].name;
        size_t length = strlen(name);
        if (length == 0 || length >= sizeof headers[i].name || request->headers[i].value == NULL)
            return -1;
        for (size_t j = 0; j <= length; j++)
            headers[i].name[j] = (char)tolower((unsigned char)name[j]);
        headers[i].value = request->headers[i].value;
    }
    qsort(headers, request->header_count, sizeof *headers, compare_headers);
    return (int)request->header_count;
}

/* A header value trimmed, with each run of spaces inside it made one space. */
static int append_header_value(buf_t *out, const char *value)
{
    while (*value == ' ' || *value == '\t')
        value++;
    size_t length = strlen(value);
    while (length > 0 && (value[length - 1] == ' ' || value[length - 1] == '\t'))
        length--;
    for (size_t i = 0; i < length; i++) {
        bool is_space = value[i] == ' ' || value[i] == '\t';
        if (is_space && i > 0 && (value[i - 1] == ' ' || value[i - 1] == '\t'))
            continue;
        if (buf_append_char(out, is_space ? ' ' : value[i]) != 0)
            return -1;
    }
    return 0;
}

static int append_signed_header_names(buf_t *out, const canonical_header_t *headers, int count)
{
    for (int i = 0; i < count; i++)
        if (buf_printf(out, "%s%s", i ? ";" : "", headers[i].name) != 0)
            return -1;
    return 0;
}

int sigv4_canonical_request(const sigv4_request_t *request, buf_t *out)
{
    canonical_header_t headers[MAX_SIGNED_HEADERS];
    int count = sorted_headers(request, headers);
    if (count < 0 || request->method == NULL || request->payload_sha256 == NULL)
        return -1;
    const char *path = request->path && request->path[0] ? request->path : "/";
    /* The wire path is encoded once already; encoding it again is the
     * double encoding SigV4 asks of every service but S3. */
    int rc = buf_printf(out, "%s\n", request->method);
    rc |= sigv4_uri_encode(out, path, strlen(path), true);
    rc |= buf_append_char(out, '\n');
    rc |= append_canonical_query(out, request->query);
    rc |= buf_append_char(out, '\n');
    for (int i = 0; i < count && rc == 0; i++) {
        rc |= buf_printf(out, "%s:", headers[i].name);
        rc |= append_header_value(out, headers[i].value);
        rc |= buf_append_char(out, '\n');
    }
    rc |= buf_append_char(out, '\n');
    rc |= append_signed_header_names(out, headers, count);
    rc |= buf_printf(out, "\n%s", request->payload_sha256);
    return rc == 0 ? 0 : -1;
}

/* "20150830/us-east-1/service/aws4_request" */
static int append_scope(buf_t *out, const sigv4_request_t *request)
{
    if (request->amz_date == NULL || strlen(request->amz_date) != SIGV4_DATE_LENGTH - 1 || request->region == NULL ||
        request->service == NULL)
        return -1;
    return buf_printf(out, "%.8s/%s/%s/aws4_request", request->amz_date, request->region, request->service);
}

int sigv4_string_to_sign(const sigv4_request_t *request, const char *canonical_request, size_t length, buf_t *out)
{
    char hash[SIGV4_HEX_LENGTH];
    if (sigv4_payload_hash(canonical_request, length, hash) != 0)
        return -1;
    int rc = buf_printf(out, "AWS4-HMAC-SHA256\n%s\n", request->amz_date ? request->amz_date : "");
    if (rc != 0 || append_scope(out, request) != 0)
        return -1;
    return buf_printf(out, "\n%s", hash);
}

static int hmac(const void *key, size_t key_length, const void *data, size_t length, unsigned char out[HMAC_LENGTH])
{
    unsigned int out_length = 0;
    if (HMAC(EVP_sha256(), key, (int)key_length, data, length, out, &out_length) == NULL)
        return -1;
    return out_length == HMAC_LENGTH ? 0 : -1;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request") */
static int signing_key(const sigv4_request_t *request, const char *secret, unsigned char key[HMAC_LENGTH])
{
    buf_t seed;
    buf_init(&seed);
    int rc = buf_printf(&seed, "AWS4%s", secret);
    rc = rc == 0 ? hmac(seed.data, seed.length, request->amz_date, 8, key) : -1;
    explicit_bzero(seed.data, seed.length);
    buf_free(&seed);
    const char *steps[] = {request->region, request->service, "aws4_request"};
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = hmac(key, HMAC_LENGTH, steps[i], strlen(steps[i]), key);
    return rc;
}

int sigv4_sign(const sigv4_request_t *request, const sigv4_credentials_t *credentials, buf_t *authorization)
{
    if (credentials->access_key_id == NULL || credentials->secret_access_key == NULL || request->amz_date == NULL ||
        strlen(request->amz_date) != SIGV4_DATE_LENGTH - 1)
        return -1;
    buf_t canonical, to_sign;
    buf_init(&canonical);
    buf_init(&to_sign);
    unsigned char key[HMAC_LENGTH], signature[HMAC_LENGTH];
    char signature_hex[SIGV4_HEX_LENGTH];
    canonical_header_t headers[MAX_SIGNED_HEADERS];
    int count = sorted_headers(request, headers);
    int rc = count >= 0 ? sigv4_canonical_request(request, &canonical) : -1;
    if (rc == 0)
        rc = sigv4_string_to_sign(request, canonical.data, canonical.length, &to_sign);
    if (rc == 0)
        rc = signing_key(request, credentials->secret_access_key, key);
    if (rc == 0)
        rc = hmac(key, sizeof key, to_sign.data, to_sign.length, signature);
    explicit_bzero(key, sizeof key);
    if (rc == 0) {
        crypto_hex_encode(signature, sizeof signature, signature_hex);
        rc = buf_printf(authorization, "AWS4-HMAC-SHA256 Credential=%s/", credentials->access_key_id);
        rc |= append_scope(authorization, request);
        rc |= buf_append_str(authorization, ", SignedHeaders=");
        rc |= append_signed_header_names(authorization, headers, count);
        rc |= buf_printf(authorization, ", Signature=%s", signature_hex);
    }
    buf_free(&canonical);
    buf_free(&to_sign);
    return rc == 0 ? 0 : -1;
}
