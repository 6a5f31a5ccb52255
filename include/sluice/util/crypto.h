/* crypto.h — hashing and comparison helpers over OpenSSL. */
#ifndef SLUICE_UTIL_CRYPTO_H
#define SLUICE_UTIL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CRYPTO_SHA256_LENGTH = 32 };

/* Returns 0, or -1 when OpenSSL fails. */
int crypto_sha256(const void *data, size_t length, unsigned char out[CRYPTO_SHA256_LENGTH]);
/* Parses 64 hex digits; returns 0 or -1 when the text is not exactly that. */
int crypto_hex_decode_sha256(const char *hex, unsigned char out[CRYPTO_SHA256_LENGTH]);
void crypto_hex_encode(const unsigned char *bytes, size_t length, char *out /* 2*length+1 */);
/* Constant-time equality, so a key check leaks nothing through its timing. */
bool crypto_equal(const void *a, const void *b, size_t length);
/* Fills out with random bytes from the OS; returns 0 or -1. */
int crypto_random(void *out, size_t length);

#endif
