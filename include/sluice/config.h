/* config.h — the configuration snapshot.
 *
 * A snapshot is loaded from one YAML file, validated as a whole, and then
 * never changed: workers read it without locks. Each request pins the
 * snapshot it started with (config_ref) and releases it when it ends
 * (config_unref), so a SIGHUP reload can swap in a new snapshot while
 * requests in flight finish on the old one. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    PROVIDER_OPENAI,            /* api.openai.com and anything speaking its wire format */
    PROVIDER_OPENAI_COMPATIBLE, /* same wire format; api_key optional */
    PROVIDER_ANTHROPIC,         /* Messages API */
    PROVIDER_GEMINI,            /* Google Generative Language API */
    PROVIDER_AZURE,             /* Azure OpenAI deployments or its v1 API */
    PROVIDER_BEDROCK,           /* AWS Bedrock Converse, SigV4 or bearer key */
} provider_type_t;

/* The type's name as written in the config, e.g. "openai-compatible". */
const char *config_provider_type_name(provider_type_t type);

typedef struct provider_timeouts {
    long connect_ms;    /* TCP + TLS handshake */
    long first_byte_ms; /* request sent → first response byte (a stream's first token) */
    long idle_ms;       /* longest silence between two stream chunks */
    long total_ms;      /* whole transfer */
} provider_timeouts_t;

/* Owner: config_t.providers. */
typedef struct provider_config {
    char *name;
    provider_type_t type;
    char *base_url; /* without trailing slash */
    char *api_key;  /* secret: never logged; NULL when none */
    char *api_version;       /* azure: api-version query value */
    char *anthropic_version; /* anthropic: anthropic-version header */
    long default_max_tokens; /* anthropic: max_tokens when the request has none */
    char *region;            /* bedrock */
    char *access_key_id;     /* bedrock SigV4; secret */
    char *secret_access_key; /* bedrock SigV4; secret */
    char *session_token;     /* bedrock SigV4 temporary credentials; secret */
    char **extra_headers; /* "Name: value" lines sent upstream */
    size_t extra_header_count;
    int max_connections; /* across all workers */
    provider_timeouts_t timeouts;
} provider_config_t;

/* Owner: model_config_t.targets. */
typedef struct target_config {
    provider_config_t *provider;
    char *model; /* the provider's model name */
    int weight;
} target_config_t;

/* Owner: config_t.models. */
typedef struct model_config {
    char *name; /* what clients send in "model" */
    char *strategy;
    target_config_t *targets;
    size_t target_count;
} model_config_t;

/* Owner: config_t.prices. USD per million tokens. */
typedef struct price_config {
    char *model;
    double input_per_million;
    double output_per_million;
} price_config_t;

enum { CONFIG_SHA256_LENGTH = 32 };

/* Owner: config_t.keys. The secret itself is never kept, only its hash. */
typedef struct key_config {
    char *name;
    unsigned char sha256[CONFIG_SHA256_LENGTH];
    char *team;
    char **models; /* allowed model names; NULL = all */
    size_t model_count;
    long rpm, tpm; /* 0 = unlimited */
} key_config_t;

typedef struct server_config {
    char *listen_host;
    int listen_port;
    int workers;
    size_t max_body_bytes;
    int max_json_depth;
    long drain_timeout_ms;
} server_config_t;

typedef struct logging_config {
    char *access_log; /* "stdout", "stderr", "off" or a file path */
    char *level;
} logging_config_t;

/* Owner: reference-counted; the server holds one reference to the current
 * snapshot and each request holds one to the snapshot it started with. */
typedef struct config {
    atomic_int references;
    char *path;
    server_config_t server;
    provider_config_t *providers;
    size_t provider_count;
    model_config_t *models;
    size_t model_count;
    price_config_t *prices;
    size_t price_count;
    key_config_t *keys;
    size_t key_count;
    logging_config_t logging;
} config_t;

/* Loads and validates path. On failure returns NULL and writes a message
 * naming the file, line and key into error (size bytes). Warnings (such as
 * "no keys configured") are logged. */
config_t *config_load(const char *path, char *error, size_t size);
/* Same, from YAML text in memory (for tests); name is used in messages. */
config_t *config_load_string(const char *yaml, size_t length, const char *name, char *error, size_t size);

config_t *config_ref(config_t *config);
void config_unref(config_t *config);

const provider_config_t *config_find_provider(const config_t *config, const char *name, size_t name_length);
const model_config_t *config_find_model(const config_t *config, const char *name);
const price_config_t *config_find_price(const config_t *config, const char *model);
/* Finds the key whose hash matches secret; constant time per compared key. */
const key_config_t *config_find_key(const config_t *config, const char *secret, size_t length);
bool config_key_allows_model(const key_config_t *key, const char *model);

/* Expands ${VAR} and ${VAR:-default} in text. Returns a malloc'ed string, or
 * NULL with a message in error (unset variable without default, bad syntax). */
char *config_interpolate(const char *text, char *error, size_t size);

#endif
