/* config.c — YAML configuration: load, interpolate, validate, snapshot.
 *
 * The file is parsed with libyaml's document API so every node keeps its
 * line number. The sections are one table (sections[], parsed in passes
 * because later sections name what earlier ones define); each section owns
 * its keys, most of them as a table of directives (config_directives.c) that
 * checks types and ranges and rejects keys it does not know, so a typo is an
 * error that names the line rather than a silently ignored setting. Here:
 * server, providers, pricing, keys, logging and limits; config_routing.c,
 * config_cache.c and config_budget.c hold the others. The result is a
 * reference-counted config_t, read-only once loaded. */
#include "sluice/config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "sluice/compat_presets.h"
#include "sluice/log.h"
#include "sluice/provider.h"
#include "sluice/util/crypto.h"
#include "config_loader.h"

/* ---- small helpers ------------------------------------------------------ */

void loader_fail(loader_t *loader, const yaml_node_t *node, const char *path, const char *format, ...)
{
    if (loader->failed)
        return; /* keep the first error: later ones are usually consequences */
    loader->failed = 1;
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    unsigned long line = node ? (unsigned long)node->start_mark.line + 1 : 0;
    snprintf(loader->error, loader->error_size, "%s:%lu: %s: %s", loader->name, line, path, message);
}

yaml_node_t *loader_node(loader_t *loader, int index) { return yaml_document_get_node(&loader->document, index); }

static const char *type_name(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "empty";
    }
}

int loader_expect_type(loader_t *loader, const yaml_node_t *node, yaml_node_type_t type, const char *path)
{
    if (node->type == type)
        return 0;
    const char *wanted = type == YAML_MAPPING_NODE ? "a mapping" : type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
    loader_fail(loader, node, path, "must be %s, not %s", wanted, type_name(node));
    return -1;
}

/* Returns the interpolated scalar as a malloc'ed string, or NULL on error. */
char *loader_string(loader_t *loader, const yaml_node_t *node, const char *path)
{
    if (loader_expect_type(loader, node, YAML_SCALAR_NODE, path) != 0)
        return NULL;
    char message[256];
    char *value = config_interpolate((const char *)node->data.scalar.value, message, sizeof message);
    if (value == NULL)
        loader_fail(loader, node, path, "%s", message);
    return value;
}

int loader_long(loader_t *loader, const yaml_node_t *node, const char *path, long min, long max, long *out)
{
    char *text = loader_string(loader, node, path);
    if (text == NULL)
        return -1;
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    int bad = errno != 0 || end == text || *end != '\0';
    free(text);
    if (bad) {
        loader_fail(loader, node, path, "must be an integer");
        return -1;
    }
    if (value < min || value > max) {
        loader_fail(loader, node, path, "must be between %ld and %ld", min, max);
        return -1;
    }
    *out = value;
    return 0;
}

int loader_double(loader_t *loader, const yaml_node_t *node, const char *path, double *out)
{
    char *text = loader_string(loader, node, path);
    if (text == NULL)
        return -1;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    int bad = errno != 0 || end == text || *end != '\0' || value < 0 || value != value;
    free(text);
    if (bad) {
        loader_fail(loader, node, path, "must be a number >= 0");
        return -1;
    }
    *out = value;
    return 0;
}

const char *loader_key(loader_t *loader, yaml_node_pair_t *pair)
{
    yaml_node_t *key = loader_node(loader, pair->key);
    return key->type == YAML_SCALAR_NODE ? (const char *)key->data.scalar.value : "";
}

yaml_node_t *loader_child_or_self(loader_t *loader, yaml_node_t *mapping, const char *key)
{
    if (mapping->type != YAML_MAPPING_NODE)
        return mapping;
    FOR_EACH_PAIR(mapping, pair)
    {
        if (strcmp(loader_key(loader, pair), key) == 0)
            return loader_node(loader, pair->value);
    }
    return mapping;
}

int loader_is_one_of(const char *text, const char *const *choices)
{
    for (size_t i = 0; choices[i] != NULL; i++)
        if (strcmp(text, choices[i]) == 0)
            return 1;
    return 0;
}

/* Rejects keys not in allowed and duplicated keys in a mapping. */
int loader_check_keys(loader_t *loader, yaml_node_t *mapping, const char *path, const char *const *allowed)
{
    for (yaml_node_pair_t *pair = mapping->data.mapping.pairs.start; pair < mapping->data.mapping.pairs.top; pair++) {
        const char *name = loader_key(loader, pair);
        if (allowed != NULL && !loader_is_one_of(name, allowed)) {
            loader_fail(loader, loader_node(loader, pair->key), path, "unknown key '%s'", name);
            return -1;
        }
        for (yaml_node_pair_t *other = mapping->data.mapping.pairs.start; other < pair; other++) {
            if (strcmp(loader_key(loader, other), name) == 0) {
                loader_fail(loader, loader_node(loader, pair->key), path, "key '%s' appears twice", name);
                return -1;
            }
        }
    }
    return 0;
}

int loader_count(const yaml_node_t *node)
{
    if (node->type == YAML_MAPPING_NODE)
        return (int)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    if (node->type == YAML_SEQUENCE_NODE)
        return (int)(node->data.sequence.items.top - node->data.sequence.items.start);
    return 0;
}

/* ---- sections ----------------------------------------------------------- */

static int parse_listen(loader_t *loader, yaml_node_t *node, server_config_t *server)
{
    char *text = loader_string(loader, node, "server.listen");
    if (text == NULL)
        return -1;
    char *colon = strrchr(text, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || end == colon + 1 || *end != '\0' || port < 0 || port > 65535) {
        loader_fail(loader, node, "server.listen", "must be HOST:PORT, e.g. \"0.0.0.0:8080\"");
        free(text);
        return -1;
    }
    *colon = '\0';
    char *host = text;
    size_t host_length = strlen(host);
    if (host_length >= 2 && host[0] == '[' && host[host_length - 1] == ']') {
        host[host_length - 1] = '\0';
        host++;
    }
    server->listen_host = strdup(host[0] ? host : "0.0.0.0");
    server->listen_port = (int)port;
    free(text);
    return server->listen_host ? 0 : -1;
}

/* True when a scalar reads "auto" after interpolation (workers: ${W:-auto}). */
static bool is_auto(loader_t *loader, const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE)
        return false;
    char message[256];
    char *text = config_interpolate((const char *)node->data.scalar.value, message, sizeof message);
    (void)loader;
    bool result = text != NULL && strcmp(text, "auto") == 0;
    free(text);
    return result;
}

static int parse_listen_directive(loader_t *loader, yaml_node_t *value, const char *path, void *section)
{
    (void)path;
    server_config_t *server = section;
    free(server->listen_host);
    server->listen_host = NULL;
    return parse_listen(loader, value, server);
}

/* workers: a count, or auto (one per core). */
static int parse_workers(loader_t *loader, yaml_node_t *value, const char *path, void *section)
{
    server_config_t *server = section;
    long number = 0;
    if (is_auto(loader, value)) {
        server->workers = 0;
        return 0;
    }
    if (loader_long(loader, value, path, 1, 256, &number) != 0)
        return -1;
    server->workers = (int)number;
    return 0;
}

static const config_directive_t server_directives[] = {
    DIRECTIVE_PARSE("listen", parse_listen_directive),
    DIRECTIVE_PARSE("workers", parse_workers),
    DIRECTIVE_NUMBER("max_body_bytes", DIRECTIVE_SIZE, server_config_t, max_body_bytes, 1, 1L << 30),
    DIRECTIVE_NUMBER("max_json_depth", DIRECTIVE_INT, server_config_t, max_json_depth, 2, 1000),
    DIRECTIVE_NUMBER("drain_timeout_ms", DIRECTIVE_LONG, server_config_t, drain_timeout_ms, 0, 3600000),
    {0},
};

static int parse_server(loader_t *loader, yaml_node_t *node)
{
    return loader_directives(loader, node, "server", server_directives, &loader->config->server);
}

static const config_directive_t timeout_directives[] = {
    DIRECTIVE_NUMBER("connect_ms", DIRECTIVE_LONG, provider_timeouts_t, connect_ms, 1, 86400000),
    DIRECTIVE_NUMBER("first_byte_ms", DIRECTIVE_LONG, provider_timeouts_t, first_byte_ms, 1, 86400000),
    DIRECTIVE_NUMBER("idle_ms", DIRECTIVE_LONG, provider_timeouts_t, idle_ms, 1, 86400000),
    DIRECTIVE_NUMBER("total_ms", DIRECTIVE_LONG, provider_timeouts_t, total_ms, 1, 86400000),
    {0},
};

int loader_timeouts(loader_t *loader, yaml_node_t *node, const char *path, provider_timeouts_t *timeouts)
{
    return loader_directives(loader, node, path, timeout_directives, timeouts);
}

static int parse_provider_headers(loader_t *loader, yaml_node_t *node, const char *path, provider_config_t *provider)
{
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, NULL))
        return -1;
    provider->extra_headers = calloc((size_t)loader_count(node) + 1, sizeof(char *));
    if (provider->extra_headers == NULL)
        return -1;
    FOR_EACH_PAIR(node, pair)
    {
        const char *name = loader_key(loader, pair);
        if (name[0] == '\0' || strpbrk(name, ": \r\n") != NULL) {
            loader_fail(loader, loader_node(loader, pair->key), path, "invalid header name '%s'", name);
            return -1;
        }
        char *value = loader_string(loader, loader_node(loader, pair->value), path);
        if (value == NULL)
            return -1;
        if (strpbrk(value, "\r\n") != NULL) {
            loader_fail(loader, loader_node(loader, pair->value), path, "header value must not contain line breaks");
            free(value);
            return -1;
        }
        size_t length = strlen(name) + strlen(value) + 3;
        char *line = malloc(length);
        if (line == NULL) {
            free(value);
            return -1;
        }
        snprintf(line, length, "%s: %s", name, value);
        free(value);
        provider->extra_headers[provider->extra_header_count++] = line;
    }
    return 0;
}

static const char *const provider_type_names[] = {
    [PROVIDER_OPENAI] = "openai", [PROVIDER_OPENAI_COMPATIBLE] = "openai-compatible",
    [PROVIDER_ANTHROPIC] = "anthropic", [PROVIDER_GEMINI] = "gemini",
    [PROVIDER_AZURE] = "azure", [PROVIDER_BEDROCK] = "bedrock",
};

const char *config_provider_type_name(provider_type_t type) { return provider_type_names[type]; }

static int parse_provider_type(loader_t *loader, yaml_node_t *node, const char *path, provider_type_t *type)
{
    char *text = loader_string(loader, node, path);
    if (text == NULL)
        return -1;
    int rc = -1;
    for (size_t i = 0; i < sizeof provider_type_names / sizeof provider_type_names[0]; i++) {
        if (strcmp(text, provider_type_names[i]) == 0 && provider_adapter_for((provider_type_t)i) != NULL) {
            *type = (provider_type_t)i;
            rc = 0;
        }
    }
    if (rc != 0) {
        char supported[256] = "";
        for (size_t i = 0; i < sizeof provider_type_names / sizeof provider_type_names[0]; i++) {
            if (provider_adapter_for((provider_type_t)i) == NULL)
                continue;
            strncat(supported, supported[0] ? ", " : "", sizeof supported - strlen(supported) - 1);
            strncat(supported, provider_type_names[i], sizeof supported - strlen(supported) - 1);
        }
        loader_fail(loader, node, path, "unknown provider type '%s' (supported: %s)", text, supported);
    }
    free(text);
    return rc;
}

/* The documented endpoint of a provider type, used when base_url is absent. */
static char *default_base_url(const provider_config_t *provider)
{
    char url[256];
    switch (provider->type) {
    case PROVIDER_OPENAI: return strdup("https://api.openai.com/v1");
    case PROVIDER_ANTHROPIC: return strdup("https://api.anthropic.com");
    case PROVIDER_GEMINI: return strdup("https://generativelanguage.googleapis.com");
    case PROVIDER_BEDROCK:
        if (provider->region == NULL)
            return NULL;
        snprintf(url, sizeof url, "https://bedrock-runtime.%s.amazonaws.com", provider->region);
        return strdup(url);
    default: return NULL;
    }
}

/* Fills settings a provider type takes from the environment or defaults. */
static int apply_provider_defaults(loader_t *loader, yaml_node_t *node, const char *path, provider_config_t *provider)
{
    struct {
        char **slot;
        const char *variable;
    } from_environment[] = {
        {&provider->region, "AWS_REGION"},
        {&provider->access_key_id, "AWS_ACCESS_KEY_ID"},
        {&provider->secret_access_key, "AWS_SECRET_ACCESS_KEY"},
        {&provider->session_token, "AWS_SESSION_TOKEN"},
        {&provider->api_key, "AWS_BEARER_TOKEN_BEDROCK"},
    };
    if (provider->type == PROVIDER_BEDROCK) {
        for (size_t i = 0; i < sizeof from_environment / sizeof from_environment[0]; i++) {
            const char *value = getenv(from_environment[i].variable);
            if (*from_environment[i].slot == NULL && value != NULL && value[0] != '\0')
                *from_environment[i].slot = strdup(value);
        }
        if (provider->region == NULL && provider->base_url == NULL) {
            loader_fail(loader, node, path, "bedrock needs 'region' (or AWS_REGION) or 'base_url'");
            return -1;
        }
        if (provider->region == NULL)
            provider->region = strdup("us-east-1");
        if (provider->api_key == NULL && (provider->access_key_id == NULL || provider->secret_access_key == NULL)) {
            loader_fail(loader, node, path, "bedrock needs access_key_id and secret_access_key (or AWS_* variables), or api_key");
            return -1;
        }
    }
    if (provider->type == PROVIDER_AZURE && provider->api_version == NULL)
        provider->api_version = strdup("2024-10-21");
    if (provider->type == PROVIDER_ANTHROPIC && provider->anthropic_version == NULL)
        provider->anthropic_version = strdup("2023-06-01");
    if (provider->default_max_tokens == 0)
        provider->default_max_tokens = 4096;
    if (provider->base_url == NULL)
        provider->base_url = default_base_url(provider);
    return 0;
}

static const config_directive_t breaker_directives[] = {
    DIRECTIVE_NUMBER("failures", DIRECTIVE_INT, breaker_config_t, failures, 0, 1000000),
    DIRECTIVE_FIELD("error_rate", DIRECTIVE_DOUBLE, breaker_config_t, error_rate),
    DIRECTIVE_NUMBER("min_requests", DIRECTIVE_INT, breaker_config_t, min_requests, 0, 1000000),
    DIRECTIVE_NUMBER("window_ms", DIRECTIVE_LONG, breaker_config_t, window_ms, 1, 86400000),
    DIRECTIVE_NUMBER("cooldown_ms", DIRECTIVE_LONG, breaker_config_t, cooldown_ms, 1, 86400000),
    DIRECTIVE_NUMBER("half_open_requests", DIRECTIVE_INT, breaker_config_t, half_open_requests, 0, 1000000),
    {0},
};

static int parse_breaker(loader_t *loader, yaml_node_t *node, const char *path, breaker_config_t *breaker)
{
    return loader_directives(loader, node, path, breaker_directives, breaker);
}

static const config_directive_t health_check_directives[] = {
    DIRECTIVE_NUMBER("interval_ms", DIRECTIVE_LONG, health_check_config_t, interval_ms, 10, 86400000),
    DIRECTIVE_NUMBER("timeout_ms", DIRECTIVE_LONG, health_check_config_t, timeout_ms, 10, 86400000),
    DIRECTIVE_FIELD("path", DIRECTIVE_STRING, health_check_config_t, path),
    {0},
};

static int parse_health_check(loader_t *loader, yaml_node_t *node, const char *path, health_check_config_t *health)
{
    health->interval_ms = 10000;
    if (loader_directives(loader, node, path, health_check_directives, health) != 0)
        return -1;
    if (health->path == NULL && (health->path = strdup("/models")) == NULL)
        return -1;
    return 0;
}

static int parse_provider(loader_t *loader, const char *name, yaml_node_t *node, provider_config_t *provider)
{
    static const char *const keys[] = {"type", "base_url", "api_key", "headers", "max_connections", "timeouts",
                                       "api_version", "anthropic_version", "default_max_tokens", "region",
                                       "access_key_id", "secret_access_key", "session_token", "breaker",
                                       "health_check", "preset", NULL};
    char path[CONFIG_PATH_LENGTH];
    snprintf(path, sizeof path, "providers.%s", name);
    provider->name = strdup(name);
    provider->max_connections = 256;
    provider->timeouts = (provider_timeouts_t){.connect_ms = 5000, .first_byte_ms = 60000, .idle_ms = 60000,
                                               .total_ms = 600000};
    provider->breaker = (breaker_config_t){.failures = 5, .error_rate = 0.5, .min_requests = 20, .window_ms = 30000,
                                           .cooldown_ms = 10000, .half_open_requests = 1};
    provider->health_check = (health_check_config_t){.interval_ms = 0, .timeout_ms = 2000, .path = NULL};
    if (provider->name == NULL || loader_expect_type(loader, node, YAML_MAPPING_NODE, path) ||
        loader_check_keys(loader, node, path, keys))
        return -1;
    if (name[0] == '\0' || strchr(name, '/') != NULL) {
        loader_fail(loader, node, path, "provider names must be non-empty and contain no '/'");
        return -1;
    }
    int has_type = 0;
    yaml_node_t *preset_node = NULL; /* openai-compatible only, checked once the type is known */
    FOR_EACH_PAIR(node, pair)
    {
        const char *key = loader_key(loader, pair);
        yaml_node_t *value = loader_node(loader, pair->value);
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s.%s", path, key);
        long number = 0;
        int rc = 0;
        if (strcmp(key, "type") == 0) {
            rc = parse_provider_type(loader, value, item_path, &provider->type);
            has_type = 1;
        } else if (strcmp(key, "base_url") == 0) {
            provider->base_url = loader_string(loader, value, item_path);
            rc = provider->base_url ? 0 : -1;
        } else if (strcmp(key, "api_key") == 0) {
            provider->api_key = loader_string(loader, value, item_path);
            rc = provider->api_key ? 0 : -1;
        } else if (strcmp(key, "headers") == 0) {
            rc = parse_provider_headers(loader, value, item_path, provider);
        } else if (strcmp(key, "max_connections") == 0) {
            rc = loader_long(loader, value, item_path, 1, 100000, &number);
            provider->max_connections = (int)number;
        } else if (strcmp(key, "timeouts") == 0) {
            rc = loader_timeouts(loader, value, item_path, &provider->timeouts);
        } else if (strcmp(key, "breaker") == 0) {
            rc = parse_breaker(loader, value, item_path, &provider->breaker);
        } else if (strcmp(key, "health_check") == 0) {
            rc = parse_health_check(loader, value, item_path, &provider->health_check);
        } else if (strcmp(key, "preset") == 0) {
            char *name = loader_string(loader, value, item_path);
            compat_preset_t preset = COMPAT_PRESET_GENERIC;
            rc = name != NULL && compat_preset_from_name(name, &preset) == 0 ? 0 : -1;
            if (name != NULL && rc != 0)
                loader_fail(loader, value, item_path,
                            "unknown preset (vllm, ollama, llamacpp, groq, mistral, deepseek, together, openrouter, "
                            "generic)");
            free(name);
            provider->preset = (int)preset;
            preset_node = value;
        } else if (strcmp(key, "default_max_tokens") == 0) {
            rc = loader_long(loader, value, item_path, 1, 10000000, &provider->default_max_tokens);
        } else {
            char **slot = strcmp(key, "api_version") == 0         ? &provider->api_version
                          : strcmp(key, "anthropic_version") == 0 ? &provider->anthropic_version
                          : strcmp(key, "region") == 0            ? &provider->region
                          : strcmp(key, "access_key_id") == 0     ? &provider->access_key_id
                          : strcmp(key, "secret_access_key") == 0 ? &provider->secret_access_key
                                                                  : &provider->session_token;
            free(*slot);
            *slot = loader_string(loader, value, item_path);
            rc = *slot ? 0 : -1;
        }
        if (rc != 0)
            return -1;
    }
    if (!has_type) {
        loader_fail(loader, node, path, "missing required key 'type'");
        return -1;
    }
    if (provider->api_key != NULL && provider->api_key[0] == '\0') {
        free(provider->api_key);
        provider->api_key = NULL;
    }
    if (preset_node != NULL && provider->type != PROVIDER_OPENAI_COMPATIBLE) {
        char preset_path[CONFIG_PATH_LENGTH];
        snprintf(preset_path, sizeof preset_path, "%s.preset", path);
        loader_fail(loader, preset_node, preset_path, "'preset' applies only to type openai-compatible");
        return -1;
    }
    if (apply_provider_defaults(loader, node, path, provider) != 0)
        return -1;
    if (provider->type == PROVIDER_OPENAI_COMPATIBLE) {
        if (preset_node == NULL)
            provider->preset = (int)compat_preset_infer(provider->base_url);
        log_info("provider %s: openai-compatible preset %s (%s)", provider->name,
                 compat_preset_name((compat_preset_t)provider->preset), preset_node ? "configured" : "inferred from base_url");
    }
    if (provider->base_url == NULL || (strncmp(provider->base_url, "http://", 7) != 0 &&
                                       strncmp(provider->base_url, "https://", 8) != 0)) {
        char url_path[CONFIG_PATH_LENGTH];
        snprintf(url_path, sizeof url_path, "%s.base_url", path);
        loader_fail(loader, loader_child_or_self(loader, node, "base_url"), url_path,
                    "base_url is required and must start with http:// or https://");
        return -1;
    }
    size_t length = strlen(provider->base_url);
    while (length > 0 && provider->base_url[length - 1] == '/')
        provider->base_url[--length] = '\0';
    if (provider->type == PROVIDER_OPENAI && provider->api_key == NULL)
        log_warn("provider %s has no api_key; requests go upstream without credentials", provider->name);
    return 0;
}

static int parse_provider_entry(loader_t *loader, const char *name, yaml_node_t *node, void *entry)
{
    return parse_provider(loader, name, node, entry);
}

static int parse_providers(loader_t *loader, yaml_node_t *node)
{
    config_t *config = loader->config;
    if (loader_expect_entries(loader, node, "providers") != 0 ||
        (config->providers = calloc((size_t)loader_count(node) + 1, sizeof *config->providers)) == NULL)
        return -1;
    return loader_parse_entries(loader, node, config->providers, sizeof *config->providers, &config->provider_count,
                                parse_provider_entry);
}

static int parse_pricing(loader_t *loader, yaml_node_t *node)
{
    static const char *const keys[] = {"input", "output", NULL};
    config_t *config = loader->config;
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, "pricing") || loader_check_keys(loader, node, "pricing", NULL))
        return -1;
    config->prices = calloc((size_t)loader_count(node) + 1, sizeof *config->prices);
    if (config->prices == NULL)
        return -1;
    FOR_EACH_PAIR(node, pair)
    {
        price_config_t *price = &config->prices[config->price_count++];
        yaml_node_t *value = loader_node(loader, pair->value);
        char path[CONFIG_PATH_LENGTH];
        snprintf(path, sizeof path, "pricing.%s", loader_key(loader, pair));
        if ((price->model = strdup(loader_key(loader, pair))) == NULL ||
            loader_expect_type(loader, value, YAML_MAPPING_NODE, path) || loader_check_keys(loader, value, path, keys))
            return -1;
        FOR_EACH_PAIR(value, item)
        {
            int is_input = strcmp(loader_key(loader, item), "input") == 0;
            double *slot = is_input ? &price->input_per_million : &price->output_per_million;
            if (loader_double(loader, loader_node(loader, item->value), path, slot) != 0)
                return -1;
        }
    }
    return 0;
}

int loader_string_list(loader_t *loader, yaml_node_t *node, const char *path, char ***out, size_t *count)
{
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, path) != 0)
        return -1;
    *out = calloc((size_t)loader_count(node) + 1, sizeof(char *));
    if (*out == NULL)
        return -1;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        char *text = loader_string(loader, loader_node(loader, *item), path);
        if (text == NULL)
            return -1;
        (*out)[(*count)++] = text;
    }
    return 0;
}

/* A key's allow-list names configured models, provider/model names, or "*". */
static int parse_key_models(loader_t *loader, yaml_node_t *node, const char *path, key_config_t *key)
{
    if (loader_string_list(loader, node, path, &key->models, &key->model_count) != 0)
        return -1;
    const config_t *config = loader->config;
    for (size_t i = 0; i < key->model_count; i++) {
        const char *model = key->models[i];
        const char *slash = strchr(model, '/');
        if (strcmp(model, "*") == 0 || config_find_model(config, model) != NULL ||
            (slash != NULL && config_find_provider(config, model, (size_t)(slash - model)) != NULL))
            continue;
        yaml_node_t *item = loader_node(loader, node->data.sequence.items.start[i]);
        loader_fail(loader, item, path, "unknown model '%s' (not under models:)", model);
        return -1;
    }
    return 0;
}

static int key_secret_from(loader_t *loader, yaml_node_t *value, const char *path, key_config_t *key, int is_hash)
{
    char *text = loader_string(loader, value, path);
    if (text == NULL)
        return -1;
    int rc = 0;
    if (is_hash) {
        if (crypto_hex_decode_sha256(text, key->sha256) != 0) {
            loader_fail(loader, value, path, "key_sha256 must be 64 hex digits (sha256 of the key)");
            rc = -1;
        }
    } else if (strlen(text) < 8) {
        loader_fail(loader, value, path, "key must be at least 8 characters (is the environment variable set?)");
        rc = -1;
    } else {
        rc = crypto_sha256(text, strlen(text), key->sha256);
    }
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

static int parse_key(loader_t *loader, yaml_node_t *node, const char *path, key_config_t *key)
{
    static const char *const keys[] = {"name", "key_sha256", "key", "team", "models", "rpm", "tpm", "user",
                                       "budget", "metadata", "admin", "max_cost_usd", NULL};
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, keys))
        return -1;
    int secrets = 0;
    yaml_node_t *budget = NULL; /* added once the name is known */
    FOR_EACH_PAIR(node, pair)
    {
        const char *name = loader_key(loader, pair);
        yaml_node_t *value = loader_node(loader, pair->value);
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s.%s", path, name);
        int rc = 0;
        if (strcmp(name, "name") == 0)
            rc = (key->name = loader_string(loader, value, item_path)) ? 0 : -1;
        else if (strcmp(name, "key_sha256") == 0 || strcmp(name, "key") == 0) {
            rc = key_secret_from(loader, value, item_path, key, strcmp(name, "key_sha256") == 0);
            secrets++;
        } else if (strcmp(name, "team") == 0)
            rc = (key->team = loader_string(loader, value, item_path)) ? 0 : -1;
        else if (strcmp(name, "models") == 0)
            rc = parse_key_models(loader, value, item_path, key);
        else if (strcmp(name, "rpm") == 0)
            rc = loader_long(loader, value, item_path, 0, LONG_MAX, &key->rpm);
        else if (strcmp(name, "tpm") == 0)
            rc = loader_long(loader, value, item_path, 0, LONG_MAX, &key->tpm);
        else if (strcmp(name, "admin") == 0)
            rc = loader_bool(loader, value, item_path, &key->is_admin);
        else if (strcmp(name, "user") == 0)
            rc = (key->user = loader_string(loader, value, item_path)) ? 0 : -1;
        else if (strcmp(name, "budget") == 0)
            budget = value;
        else if (strcmp(name, "max_cost_usd") == 0)
            rc = loader_double(loader, value, item_path, &key->max_cost_usd);
        if (rc != 0)
            return -1;
    }
    if (key->name == NULL || key->name[0] == '\0') {
        loader_fail(loader, node, path, "missing required key 'name'");
        return -1;
    }
    if (secrets != 1) {
        loader_fail(loader, node, path, "needs exactly one of 'key_sha256' or 'key'");
        return -1;
    }
    if (budget != NULL) {
        char budget_path[CONFIG_PATH_LENGTH];
        snprintf(budget_path, sizeof budget_path, "%s.budget", path);
        return config_budget_add(loader, budget, budget_path, BUDGET_SCOPE_KEY, key->name);
    }
    return 0;
}

static int parse_keys(loader_t *loader, yaml_node_t *node)
{
    config_t *config = loader->config;
    if (loader_expect_type(loader, node, YAML_SEQUENCE_NODE, "keys") != 0)
        return -1;
    config->keys = calloc((size_t)loader_count(node) + 1, sizeof *config->keys);
    if (config->keys == NULL)
        return -1;
    for (yaml_node_item_t *item = node->data.sequence.items.start; item < node->data.sequence.items.top; item++) {
        char path[CONFIG_PATH_LENGTH];
        snprintf(path, sizeof path, "keys[%zu]", config->key_count);
        key_config_t *key = &config->keys[config->key_count++];
        yaml_node_t *key_node = loader_node(loader, *item);
        if (parse_key(loader, key_node, path, key) != 0)
            return -1;
        for (key_config_t *other = config->keys; other < key; other++) {
            if (strcmp(other->name, key->name) == 0 || memcmp(other->sha256, key->sha256, CONFIG_SHA256_LENGTH) == 0) {
                loader_fail(loader, key_node, path, "duplicate key name or secret (same as '%s')", other->name);
                return -1;
            }
        }
    }
    return 0;
}

static int parse_log_level(loader_t *loader, yaml_node_t *value, const char *path, void *section)
{
    logging_config_t *logging = section;
    free(logging->level);
    if ((logging->level = loader_string(loader, value, path)) == NULL)
        return -1;
    log_level_t level;
    if (log_level_parse(logging->level, &level) != 0) {
        loader_fail(loader, value, path, "must be debug, info, warn or error");
        return -1;
    }
    return 0;
}

static const config_directive_t logging_directives[] = {
    DIRECTIVE_FIELD("access_log", DIRECTIVE_STRING, logging_config_t, access_log),
    DIRECTIVE_PARSE("level", parse_log_level),
    {0},
};

static int parse_logging(loader_t *loader, yaml_node_t *node)
{
    return loader_directives(loader, node, "logging", logging_directives, &loader->config->logging);
}

/* limits: { window_seconds: N } — the window rpm and tpm count over. Anything
 * but 60 is for tests (docs/configuration.md). */
static const config_directive_t limits_directives[] = {
    DIRECTIVE_NUMBER("window_seconds", DIRECTIVE_LONG, limits_config_t, window_seconds, 1, 3600),
    DIRECTIVE_FIELD("shared", DIRECTIVE_BOOL, limits_config_t, is_shared),
    DIRECTIVE_NUMBER("redis_timeout_ms", DIRECTIVE_LONG, limits_config_t, redis_timeout_ms, 1, 10000),
    {0},
};

static int parse_limits(loader_t *loader, yaml_node_t *node)
{
    return loader_directives(loader, node, "limits", limits_directives, &loader->config->limits);
}

/* The sections, as nginx lists a module's commands. Sections are parsed in
 * passes because later ones refer to earlier ones: models and pricing name
 * providers; keys, routes, experiments, cache, teams and budgets name models.
 * Pass 0 marks sections a later build defines: accepted with a warning, so a
 * config written for a newer build still loads with those features off. */
typedef struct config_section {
    const char *name;
    int pass;
    int (*parse)(loader_t *loader, yaml_node_t *node);
} config_section_t;

static const config_section_t sections[] = {
    {"server", 1, parse_server},
    {"providers", 1, parse_providers},
    {"logging", 1, parse_logging},
    {"redis", 1, config_cache_parse_redis},
    {"limits", 1, parse_limits},
    {"alerts", 1, config_budget_parse_alerts},
    {"models", 2, config_routing_parse_models},
    {"pricing", 2, parse_pricing},
    {"keys", 3, parse_keys},
    {"routes", 3, config_routing_parse_routes},
    {"experiments", 3, config_routing_parse_experiments},
    {"cache", 3, config_cache_parse},
    {"teams", 3, config_budget_parse_teams},
    {"budgets", 3, config_budget_parse_list},
    {"guardrails", 0, NULL},
    {"mcp", 0, NULL},
    {"admin", 0, NULL},
    {"metrics", 0, NULL},
    {"tracing", 0, NULL},
};
enum { SECTION_COUNT = sizeof sections / sizeof sections[0], SECTION_PASSES = 3 };

static const config_section_t *find_section(const char *name)
{
    for (size_t i = 0; i < SECTION_COUNT; i++)
        if (strcmp(sections[i].name, name) == 0)
            return &sections[i];
    return NULL;
}

static int parse_root(loader_t *loader, yaml_node_t *root)
{
    const char *names[SECTION_COUNT + 1];
    for (size_t i = 0; i < SECTION_COUNT; i++)
        names[i] = sections[i].name;
    names[SECTION_COUNT] = NULL;
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        loader_fail(loader, root, "(root)", "the file must be a YAML mapping with server, providers and models");
        return -1;
    }
    if (loader_check_keys(loader, root, "(root)", names) != 0)
        return -1;
    for (int pass = 0; pass <= SECTION_PASSES; pass++) {
        FOR_EACH_PAIR(root, pair)
        {
            const config_section_t *section = find_section(loader_key(loader, pair));
            if (section->pass != pass)
                continue;
            if (section->parse == NULL)
                log_warn("config section '%s' is not supported by this build and is ignored", section->name);
            else if (section->parse(loader, loader_node(loader, pair->value)) != 0)
                return -1;
        }
    }
    if (loader_child_or_self(loader, root, "providers") == root || loader->config->provider_count == 0) {
        loader_fail(loader, root, "providers", "at least one provider is required");
        return -1;
    }
    if (loader_child_or_self(loader, root, "models") == root)
        log_warn("no models configured: clients can only name provider/model");
    return 0;
}

/* ---- public API --------------------------------------------------------- */

static config_t *config_new_defaults(void)
{
    config_t *config = calloc(1, sizeof *config);
    if (config == NULL)
        return NULL;
    atomic_init(&config->references, 1);
    config->server.listen_host = strdup("0.0.0.0");
    config->server.listen_port = 8080;
    config->server.workers = 0;
    config->server.max_body_bytes = 8u << 20;
    config->server.max_json_depth = 64;
    config->server.drain_timeout_ms = 30000;
    config->limits.window_seconds = 60;
    config->alert_webhook_timeout_ms = 5000;
    config->limits.is_shared = true;
    config->limits.redis_timeout_ms = 50;
    config->logging.access_log = strdup("stdout");
    config->logging.level = strdup("info");
    if (!config->server.listen_host || !config->logging.access_log || !config->logging.level) {
        config_unref(config);
        return NULL;
    }
    return config;
}

config_t *config_load_string(const char *yaml, size_t length, const char *name, char *error, size_t size)
{
    loader_t loader = {.name = name, .error = error, .error_size = size};
    yaml_parser_t parser;
    error[0] = '\0';
    if (!yaml_parser_initialize(&parser)) {
        snprintf(error, size, "%s: cannot initialise the YAML parser", name);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, length);
    if (!yaml_parser_load(&parser, &loader.document)) {
        snprintf(error, size, "%s:%lu: YAML syntax error: %s%s%s", name, (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "unknown", parser.context ? " " : "",
                 parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_parser_delete(&parser);
    loader.config = config_new_defaults();
    int rc = loader.config ? parse_root(&loader, yaml_document_get_root_node(&loader.document)) : -1;
    yaml_document_delete(&loader.document);
    if (rc != 0 || loader.failed) {
        if (error[0] == '\0')
            snprintf(error, size, "%s: out of memory while loading", name);
        config_unref(loader.config);
        return NULL;
    }
    if (loader.config->key_count == 0)
        log_warn("no keys configured: the gateway accepts every request without authentication");
    return loader.config;
}

config_t *config_load(const char *path, char *error, size_t size)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        snprintf(error, size, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t length = 0, capacity = 0;
    for (;;) {
        if (length + 4096 > capacity) {
            capacity = capacity ? capacity * 2 : 8192;
            char *grown = realloc(text, capacity);
            if (grown == NULL) {
                free(text);
                fclose(file);
                snprintf(error, size, "%s: out of memory", path);
                return NULL;
            }
            text = grown;
        }
        size_t got = fread(text + length, 1, capacity - length, file);
        length += got;
        if (got == 0)
            break;
    }
    int read_failed = ferror(file);
    fclose(file);
    if (read_failed) {
        free(text);
        snprintf(error, size, "%s: read error", path);
        return NULL;
    }
    config_t *config = config_load_string(text, length, path, error, size);
    free(text);
    if (config != NULL && (config->path = strdup(path)) == NULL) {
        config_unref(config);
        snprintf(error, size, "%s: out of memory", path);
        return NULL;
    }
    return config;
}

config_t *config_ref(config_t *config)
{
    atomic_fetch_add_explicit(&config->references, 1, memory_order_relaxed);
    return config;
}

static void free_string_array(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

void config_free_headers(struct curl_slist *headers)
{
    for (struct curl_slist *item = headers; item != NULL; item = item->next)
        explicit_bzero(item->data, strlen(item->data));
    curl_slist_free_all(headers);
}

static void config_free(config_t *config)
{
    for (size_t i = 0; i < config->provider_count; i++) {
        provider_config_t *provider = &config->providers[i];
        for (size_t j = 0; j < 2; j++)
            config_free_headers(atomic_load(&provider->shared_headers[j]));
        free(provider->name);
        free(provider->base_url);
        if (provider->api_key)
            explicit_bzero(provider->api_key, strlen(provider->api_key));
        free(provider->api_key);
        char *secrets[] = {provider->access_key_id, provider->secret_access_key, provider->session_token};
        for (size_t j = 0; j < 3; j++) {
            if (secrets[j])
                explicit_bzero(secrets[j], strlen(secrets[j]));
            free(secrets[j]);
        }
        free(provider->api_version);
        free(provider->health_check.path);
        free(provider->anthropic_version);
        free(provider->region);
        free_string_array(provider->extra_headers, provider->extra_header_count);
    }
    config_routing_free(config);
    config_cache_free(config);
    config_budget_free(config);
    for (size_t i = 0; i < config->price_count; i++)
        free(config->prices[i].model);
    for (size_t i = 0; i < config->key_count; i++) {
        free(config->keys[i].name);
        free(config->keys[i].team);
        free(config->keys[i].user);
        free_string_array(config->keys[i].models, config->keys[i].model_count);
    }
    free(config->providers);
    free(config->prices);
    free(config->keys);
    free(config->server.listen_host);
    free(config->logging.access_log);
    free(config->logging.level);
    free(config->path);
    free(config);
}

void config_unref(config_t *config)
{
    if (config != NULL && atomic_fetch_sub_explicit(&config->references, 1, memory_order_acq_rel) == 1)
        config_free(config);
}

void config_current_init(config_current_t *current, config_t *config)
{
    pthread_mutex_init(&current->lock, NULL);
    current->config = config;
}

config_t *config_current_get(config_current_t *current)
{
    pthread_mutex_lock(&current->lock);
    config_t *config = config_ref(current->config);
    pthread_mutex_unlock(&current->lock);
    return config;
}

config_t *config_current_swap(config_current_t *current, config_t *next)
{
    pthread_mutex_lock(&current->lock);
    config_t *old = current->config;
    current->config = next;
    pthread_mutex_unlock(&current->lock);
    return old;
}

void config_current_destroy(config_current_t *current)
{
    config_unref(current->config);
    current->config = NULL;
    pthread_mutex_destroy(&current->lock);
}

const provider_config_t *config_find_provider(const config_t *config, const char *name, size_t name_length)
{
    for (size_t i = 0; i < config->provider_count; i++) {
        const char *candidate = config->providers[i].name;
        if (candidate && strncmp(candidate, name, name_length) == 0 && candidate[name_length] == '\0')
            return &config->providers[i];
    }
    return NULL;
}

const model_config_t *config_find_model(const config_t *config, const char *name)
{
    for (size_t i = 0; i < config->model_count; i++)
        if (config->models[i].name && strcmp(config->models[i].name, name) == 0)
            return &config->models[i];
    return NULL;
}

const price_config_t *config_find_price(const config_t *config, const char *model)
{
    for (size_t i = 0; i < config->price_count; i++)
        if (strcmp(config->prices[i].model, model) == 0)
            return &config->prices[i];
    return NULL;
}

const key_config_t *config_find_key(const config_t *config, const char *secret, size_t length)
{
    unsigned char digest[CONFIG_SHA256_LENGTH];
    if (crypto_sha256(secret, length, digest) != 0)
        return NULL;
    const key_config_t *found = NULL;
    /* Compare against every key so the time taken does not depend on which matched. */
    for (size_t i = 0; i < config->key_count; i++)
        if (crypto_equal(digest, config->keys[i].sha256, CONFIG_SHA256_LENGTH))
            found = &config->keys[i];
    return found;
}

bool config_key_allows_model(const key_config_t *key, const char *model)
{
    if (key->models == NULL)
        return true;
    for (size_t i = 0; i < key->model_count; i++)
        if (strcmp(key->models[i], "*") == 0 || strcmp(key->models[i], model) == 0)
            return true;
    return false;
}

char *config_interpolate(const char *text, char *error, size_t size)
{
    size_t capacity = strlen(text) + 1, length = 0;
    char *out = malloc(capacity);
    if (out == NULL) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    for (const char *p = text; *p != '\0';) {
        const char *piece = p;
        size_t piece_length = 1;
        char *owned_default = NULL;
        if (p[0] == '$' && p[1] == '$') { /* $$ is a literal $ */
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p + 2, '}');
            if (close == NULL) {
                snprintf(error, size, "unterminated ${ in value");
                free(out);
                return NULL;
            }
            const char *name = p + 2;
            const char *dash = strstr(name, ":-");
            size_t name_length = (size_t)((dash && dash < close ? dash : close) - name);
            char variable[256];
            if (name_length == 0 || name_length >= sizeof variable) {
                snprintf(error, size, "bad variable name in ${...}");
                free(out);
                return NULL;
            }
            memcpy(variable, name, name_length);
            variable[name_length] = '\0';
            const char *value = getenv(variable);
            if ((value == NULL || value[0] == '\0') && dash && dash < close) {
                owned_default = strndup(dash + 2, (size_t)(close - dash - 2));
                value = owned_default;
            }
            if (owned_default == NULL && (value == NULL || value[0] == '\0')) {
                /* An empty secret is a misconfiguration, not an empty key: refuse it. */
                snprintf(error, size, "environment variable %s is %s (use ${%s:-default} for a default)", variable,
                         value == NULL ? "not set" : "empty", variable);
                free(out);
                return NULL;
            }
            piece = value;
            piece_length = strlen(value);
            p = close + 1;
        } else {
            p++;
        }
        if (length + piece_length + 1 > capacity) {
            capacity = (length + piece_length + 1) * 2;
            char *grown = realloc(out, capacity);
            if (grown == NULL) {
                free(owned_default);
                free(out);
                snprintf(error, size, "out of memory");
                return NULL;
            }
            out = grown;
        }
        memcpy(out + length, piece, piece_length);
        length += piece_length;
        free(owned_default);
    }
    out[length] = '\0';
    return out;
}
