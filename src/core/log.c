/* log.c — JSON-lines logging to stderr (see log.h).
 *
 * Each line is formatted into one buffer and written with a single write(2),
 * so lines from different threads never interleave. */
#include "sluice/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sluice/util/buf.h"
#include "sluice/util/clock.h"

static _Atomic int current_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level) { atomic_store(&current_level, (int)level); }

int log_level_parse(const char *name, log_level_t *level)
{
    for (int i = 0; i <= LOG_ERROR; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void log_write(log_level_t level, const char *extra_json, const char *format, ...)
{
    if ((int)level < atomic_load(&current_level))
        return;
    char message[2048];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);

    char now[40];
    clock_format_utc(now, sizeof now);
    buf_t line;
    buf_init(&line);
    int rc = buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"", now, level_names[level]);
    rc |= buf_append_json_escaped(&line, message, strlen(message));
    rc |= buf_append_char(&line, '"');
    if (extra_json != NULL && extra_json[0] != '\0') {
        rc |= buf_append_char(&line, ',');
        rc |= buf_append_str(&line, extra_json);
    }
    rc |= buf_append_str(&line, "}\n");
    if (rc == 0) {
        ssize_t written = write(STDERR_FILENO, line.data, line.length);
        (void)written; /* nowhere to report a failed log write */
    }
    buf_free(&line);
}
