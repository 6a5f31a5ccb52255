/* fuzz_config.c — libFuzzer target for the YAML configuration loader.
 *
 * Input: a config file. Either it loads, and then the lookups must find what
 * was loaded and the snapshot must free cleanly; or it is refused with a
 * message that starts with the file name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"
#include "sluice/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR);
    setenv("SLUICE_FUZZ_VAR", "sk-fuzz-variable", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char error[512];
    config_t *config = config_load_string((const char *)data, size, "fuzz.yaml", error, sizeof error);
    if (config == NULL) {
        if (strncmp(error, "fuzz.yaml", 9) != 0)
            abort(); /* every refusal names the file */
        return 0;
    }
    for (size_t i = 0; i < config->provider_count; i++) {
        const char *name = config->providers[i].name;
        if (config_find_provider(config, name, strlen(name)) != &config->providers[i])
            abort();
    }
    for (size_t i = 0; i < config->model_count; i++) {
        if (config_find_model(config, config->models[i].name) == NULL)
            abort();
        for (size_t j = 0; j < config->models[i].target_count; j++)
            if (config->models[i].targets[j].provider == NULL)
                abort();
    }
    for (size_t i = 0; i < config->key_count; i++) {
        const key_config_t *key = &config->keys[i];
        for (size_t j = 0; j < key->model_count; j++)
            if (!config_key_allows_model(key, key->models[j]))
                abort();
    }
    config_find_key(config, (const char *)data, size);
    config_unref(config_ref(config));
    config_unref(config);
    return 0;
}
