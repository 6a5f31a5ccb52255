/* server.h — the process: listening sockets, workers, config, signals.
 *
 * The main thread loads the config, opens one SO_REUSEPORT socket per
 * worker, starts the workers and then only handles signals: SIGHUP builds and
 * validates a new snapshot and swaps it in (a bad file keeps the old one);
 * SIGTERM/SIGINT drains and exits. */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "sluice/config.h"
#include "sluice/worker.h"

/* Owner: main(). */
typedef struct server {
    char *config_path;
    config_current_t config; /* the snapshot new requests take */
    worker_t *workers;
    int worker_count;
} server_t;

/* Runs until SIGTERM/SIGINT and the drain complete. Takes ownership of config.
 * Returns the process exit code. */
int server_run(const char *config_path, config_t *config);
/* Returns the current snapshot with a reference the caller must drop. */
config_t *server_config(server_t *server);

#endif
