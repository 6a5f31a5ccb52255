/* crypto.c — SHA-256, hex and constant-time comparison (see crypto.h). */
#include "sluice/util/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

int crypto_sha256(const void *data, size_t length, unsigned char out[CRYPTO_SHA256_LENGTH])
{
    unsigned int out_length = 0;
    if (EVP_Digest(data, length, out, &out_length, EVP_sha256(), NULL) != 1)
        return -1;
    return out_length == CRYPTO_SHA256_LENGTH ? 0 : -1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int crypto_hex_decode_sha256(const char *hex, unsigned char out[CRYPTO_SHA256_LENGTH])
{
    for (int i = 0; i < CRYPTO_SHA256_LENGTH; i++) {
        if (hex[2 * i] == '\0' || hex[2 * i + 1] == '\0')
            return -1;
        int high = hex_value(hex[2 * i]), low = hex_value(hex[2 * i + 1]);
        if (high < 0 || low < 0)
            return -1;
        out[i] = (unsigned char)(high << 4 | low);
    }
    return hex[2 * CRYPTO_SHA256_LENGTH] == '\0' ? 0 : -1;
}

void crypto_hex_encode(const unsigned char *bytes, size_t length, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < length; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * length] = '\0';
}

bool crypto_equal(const void *a, const void *b, size_t length) { return CRYPTO_memcmp(a, b, length) == 0; }

int crypto_random(void *out, size_t length) { return RAND_bytes(out, (int)length) == 1 ? 0 : -1; }
