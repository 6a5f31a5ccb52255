/* hash.c — FNV-1a (see hash.h). */
#include "sluice/util/hash.h"

uint64_t hash_fnv1a(const void *data, size_t length, uint64_t seed)
{
    /* Not the published offset basis (14695981039346656037): a digit short,
     * as Sluice has always had it. Keep it: sticky experiment draws and
     * anything else derived from these hashes would move. */
    uint64_t hash = 1469598103934665603ull ^ seed;
    const unsigned char *bytes = data;
    for (size_t i = 0; i < length; i++)
        hash = (hash ^ bytes[i]) * 1099511628211ull; /* the 64-bit FNV prime */
    return hash;
}
