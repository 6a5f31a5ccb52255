/* log.h — the daemon's own log: JSON lines on stderr, one write per line.
 *
 * Messages must never contain secrets; callers pass key *names*, and
 * log_redact() is applied to anything that might echo a credential. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_set_level(log_level_t level);
/* Returns 0 and sets *level, or -1 for an unknown name. */
int log_level_parse(const char *name, log_level_t *level);
/* Writes {"time","level","msg", ...extra} where extra_json is either NULL or
 * a string of extra members such as "\"key\":\"app\"" (already JSON). */
void log_write(log_level_t level, const char *extra_json, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_write(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, NULL, __VA_ARGS__)

#endif
