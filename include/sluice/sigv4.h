/* sigv4.h — AWS Signature Version 4 for request headers.
 *
 * The Bedrock adapter signs each call with it, and the mock Bedrock server
 * verifies with it. Signing needs the request exactly as it goes on the wire:
 * the path with each segment percent-encoded once (the canonical form encodes
 * it a second time: a model id's ':' is sent as %3A and signed as %253A), the
 * query, every header to be signed (host and x-amz-date at least) and the
 * SHA-256 of the body. */
#ifndef SLUICE_SIGV4_H
#define SLUICE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "sluice/util/buf.h"

enum {
    SIGV4_DATE_LENGTH = 17, /* "YYYYMMDDTHHMMSSZ" and its NUL */
    SIGV4_HEX_LENGTH = 65,  /* a hex SHA-256 and its NUL */
};

typedef struct sigv4_header {
    const char *name; /* any case */
    const char *value;
} sigv4_header_t;

/* Owner: the caller; every string is borrowed for the call. */
typedef struct sigv4_request {
    const char *method;
    const char *path;  /* as sent, each segment encoded once; "" means "/" */
    const char *query; /* without '?'; NULL or "" when there is none */
    const sigv4_header_t *headers; /* every header to sign, in any order */
    size_t header_count;
    const char *payload_sha256; /* hex SHA-256 of the body (sigv4_payload_hash) */
    const char *region;
    const char *service;
    const char *amz_date; /* the x-amz-date value, "YYYYMMDDTHHMMSSZ" */
} sigv4_request_t;

typedef struct sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
} sigv4_credentials_t;

/* Formats a time as the x-amz-date value. */
void sigv4_amz_date(time_t when, char out[SIGV4_DATE_LENGTH]);
/* Hex SHA-256 of a body; returns 0 or -1 when OpenSSL fails. */
int sigv4_payload_hash(const void *body, size_t length, char out[SIGV4_HEX_LENGTH]);
/* Appends text percent-encoded as RFC 3986 says (only A-Z a-z 0-9 - . _ ~
 * kept); with keep_slash, '/' is kept too. Returns 0 or -1 (out of memory). */
int sigv4_uri_encode(buf_t *out, const char *text, size_t length, bool keep_slash);
/* Appends the canonical request (step 1 of the signing process). */
int sigv4_canonical_request(const sigv4_request_t *request, buf_t *out);
/* Appends the string to sign for a canonical request (step 2). */
int sigv4_string_to_sign(const sigv4_request_t *request, const char *canonical_request, size_t length, buf_t *out);
/* Appends the Authorization header value ("AWS4-HMAC-SHA256 Credential=…,
 * SignedHeaders=…, Signature=…"). Returns 0, or -1 (bad input or out of memory). */
int sigv4_sign(const sigv4_request_t *request, const sigv4_credentials_t *credentials, buf_t *authorization);

#endif
