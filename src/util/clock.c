/* clock.c — monotonic and wall-clock time (see clock.h). */
#include "sluice/util/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t clock_monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
}

uint64_t clock_wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

void clock_format_utc(char *out, size_t size)
{
    /* The date and time to the second change once a second: each thread
     * keeps the last one formatted and adds only the milliseconds. */
    static _Thread_local time_t cached_second = -1;
    static _Thread_local char cached_text[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != cached_second) {
        struct tm parts;
        gmtime_r(&now.tv_sec, &parts);
        snprintf(cached_text, sizeof cached_text, "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900,
                 parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec);
        cached_second = now.tv_sec;
    }
    long milliseconds = now.tv_nsec / 1000000L;
    size_t length = strlen(cached_text);
    if (size < length + 6) {
        snprintf(out, size, "%s.%03ldZ", cached_text, milliseconds);
        return;
    }
    memcpy(out, cached_text, length);
    out[length] = '.';
    out[length + 1] = (char)('0' + milliseconds / 100);
    out[length + 2] = (char)('0' + milliseconds / 10 % 10);
    out[length + 3] = (char)('0' + milliseconds % 10);
    out[length + 4] = 'Z';
    out[length + 5] = '\0';
}
