/* clock.h — time sources: monotonic for latencies, wall clock for logs. */
#ifndef SLUICE_UTIL_CLOCK_H
#define SLUICE_UTIL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t clock_monotonic_us(void);
/* Wall-clock milliseconds since the epoch: for expiry times shared across processes. */
uint64_t clock_wall_ms(void);
/* Writes an RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-25T10:00:00.123Z. */
void clock_format_utc(char *out, size_t size);

#endif
