/* main.c — command line: run, check a config, or print the version.
 *
 *   sluice -c FILE            run with FILE (or $SLUICE_CONFIG)
 *   sluice --check -c FILE    validate FILE and exit 0 (valid) or 1
 *   sluice --version */
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"
#include "sluice/log.h"
#include "sluice/server.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: sluice [-c FILE] [--check] [--version]\n"
                 "  -c, --config FILE  configuration file (also --config=FILE; default: $SLUICE_CONFIG)\n"
                 "      --check        validate the configuration and exit 0 (valid) or 1\n"
                 "      --version      print the version and exit\n");
}

int main(int argc, char **argv)
{
    const char *path = getenv("SLUICE_CONFIG");
    int is_check = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0 && argv[i][9] != '\0') {
            path = argv[i] + 9;
        } else if (strcmp(argv[i], "--check") == 0) {
            is_check = 1;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-v") == 0) {
            printf("sluice %s\n", SLUICE_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "sluice: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 1;
        }
    }
    if (path == NULL || path[0] == '\0') {
        fprintf(stderr, "sluice: no configuration file: pass -c FILE or set SLUICE_CONFIG\n");
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || evthread_use_pthreads() != 0) {
        fprintf(stderr, "sluice: cannot initialise libcurl or libevent threading\n");
        return 1;
    }
    char error[1024];
    config_t *config = config_load(path, error, sizeof error);
    if (config == NULL) {
        fprintf(stderr, "sluice: invalid configuration: %s\n", error);
        curl_global_cleanup();
        return 1;
    }
    if (is_check) {
        printf("%s: ok (%zu providers, %zu models, %zu keys)\n", path, config->provider_count, config->model_count,
               config->key_count);
        config_unref(config);
        curl_global_cleanup();
        return 0;
    }
    int exit_code = server_run(path, config);
    curl_global_cleanup();
    libevent_global_shutdown();
    return exit_code;
}
