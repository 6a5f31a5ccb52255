/* access_log.h — one JSON line per request, written when the request ends.
 *
 * The line carries what operators and finance ask about: who (key name,
 * user, feature), what (model requested, provider and upstream model), how it
 * went (status, error type, latency, time to first byte) and what it cost
 * (tokens and USD). Secrets never appear: keys are logged by name. */
#ifndef SLUICE_ACCESS_LOG_H
#define SLUICE_ACCESS_LOG_H

/* Points the access log at "stdout", "stderr", "off" or a file path (opened
 * for append). Called by the main thread at start-up and on reload; workers
 * keep writing to the same descriptor number, which dup2 retargets
 * atomically. Returns 0, or -1 with a message in error. */
int access_log_open(const char *destination, char *error, unsigned long size);

#endif
