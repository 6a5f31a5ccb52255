/* hash.h — a fast non-cryptographic hash for tables and stable draws. */
#ifndef SLUICE_UTIL_HASH_H
#define SLUICE_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a of length bytes of data, its offset basis XORed with seed
 * (the basis is Sluice's own, see hash.c, so values differ from the
 * published test vectors). Not for anything an attacker must not predict:
 * use crypto.h for that. */
uint64_t hash_fnv1a(const void *data, size_t length, uint64_t seed);

#endif
