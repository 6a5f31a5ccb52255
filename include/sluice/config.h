/* config.h — the configuration snapshot.
 *
 * A snapshot is loaded from one YAML file, validated as a whole, and then
 * never changed: workers read it without locks. Each request pins the
 * snapshot it started with (config_ref) and releases it when it ends
 * (config_unref), so a SIGHUP reload can swap in a new snapshot while
 * requests in flight finish on the old one. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct curl_slist;

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

/* Circuit breaker settings; per provider, applied to each of its targets. */
typedef struct breaker_config {
    int failures;          /* consecutive failures that open the breaker */
    double error_rate;     /* ... or this failure share in the window */
    int min_requests;      /* requests in the window before error_rate counts */
    long window_ms;
    long cooldown_ms;      /* open → half-open after this */
    int half_open_requests; /* trial requests let through while half-open */
} breaker_config_t;

/* Active health checks; off unless interval_ms > 0. */
typedef struct health_check_config {
    long interval_ms;
    long timeout_ms;
    char *path; /* appended to base_url, e.g. "/models" */
} health_check_config_t;

/* Owner: config_t.providers. */
typedef struct provider_config {
    char *name;
    provider_type_t type;
    char *base_url; /* without trailing slash */
    char *api_key;  /* secret: never logged; NULL when none */
    char *api_version;       /* azure: api-version query value */
    int preset;              /* openai-compatible: a compat_preset_t (compat_presets.h) */
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
    breaker_config_t breaker;
    health_check_config_t health_check;
    /* The OpenAI adapter's constant upstream headers (non-stream, stream),
     * built on first use and shared by every transfer; freed with the snapshot. */
    _Atomic(struct curl_slist *) shared_headers[2];
} provider_config_t;

/* Owner: model_config_t.targets. */
typedef struct target_config {
    provider_config_t *provider;
    char *model; /* the provider's model name */
    int weight;  /* loadbalance share */
    double default_quality;  /* cost strategy: quality when the task has no score */
    char **quality_tasks;    /* cost strategy: task name → quality score in [0, 1] */
    double *quality_scores;
    size_t quality_count;
    provider_timeouts_t timeouts; /* resolved: model override, else provider */
} target_config_t;

typedef enum {
    STRATEGY_FALLBACK,    /* targets in order */
    STRATEGY_LOADBALANCE, /* weighted random (or sticky hash) first, the rest as fallbacks */
    STRATEGY_LATENCY,     /* lowest recent latency first, with exploration */
    STRATEGY_COST,        /* cheapest target whose quality for the task meets the bar */
    STRATEGY_CASCADE,     /* cheapest first; escalate when the answer fails a check */
} strategy_t;

/* Conditions under which the next attempt is made (bit set). */
enum {
    RETRY_ON_CONNECT = 1 << 0, /* refused, unresolvable, TLS failure */
    RETRY_ON_TIMEOUT = 1 << 1,
    RETRY_ON_429 = 1 << 2,
    RETRY_ON_5XX = 1 << 3,
    RETRY_ON_4XX = 1 << 4, /* other 4xx except 429 */
};

typedef enum { STICKY_NONE, STICKY_USER, STICKY_KEY } sticky_t;

typedef enum {
    CHECK_JSON,        /* the content parses as JSON */
    CHECK_JSON_SCHEMA, /* ... and satisfies response_format.json_schema.schema */
    CHECK_REGEX,       /* the content matches */
    CHECK_MIN_LENGTH,  /* at least N characters */
    CHECK_FINISH_STOP, /* finish_reason is "stop" */
    CHECK_NO_REFUSAL,  /* no refusal phrase */
} cascade_check_kind_t;

/* Owner: model_config_t.checks. */
typedef struct cascade_check {
    cascade_check_kind_t kind;
    char *pattern;   /* CHECK_REGEX source */
    void *compiled;  /* CHECK_REGEX: regex_t* */
    long min_length; /* CHECK_MIN_LENGTH */
} cascade_check_t;

/* Owner: config_t.models. */
typedef struct model_config {
    char *name; /* what clients send in "model" */
    strategy_t strategy;
    target_config_t *targets;
    size_t target_count;
    unsigned retry_on;      /* RETRY_ON_* bits: when to move to the next attempt */
    int retry_rounds;       /* extra passes over the whole target list, with backoff */
    long backoff_ms;        /* base of the exponential backoff between passes */
    long max_backoff_ms;
    long deadline_ms;       /* whole request, all attempts; 0 = none */
    sticky_t sticky;        /* loadbalance: keep a user/key on one target */
    double exploration;     /* latency: share of requests sent to a random target */
    char *task_header;      /* cost: request header naming the task */
    double min_quality;     /* cost: quality bar */
    double max_cost_usd;    /* cost: per-request ceiling (0 = none) */
    cascade_check_t *checks; /* cascade: what an answer must pass */
    size_t check_count;
} model_config_t;

/* Owner: config_t.routes. First match wins; unset fields match anything. */
typedef struct route_config {
    char **header_names; /* all must match (case-insensitive name, exact value) */
    char **header_values;
    size_t header_count;
    char **keys, **teams, **users, **models; /* any of; NULL = any */
    size_t key_count, team_count, user_count, model_count;
    long min_prompt_tokens, max_prompt_tokens; /* estimated; 0 = unbounded */
    int has_tools;  /* -1 any, 0 must not, 1 must */
    int has_images; /* -1 any, 0 must not, 1 must */
    char *last_user_pattern;
    void *last_user_regex; /* regex_t* */
    char *target_model;    /* the model name the request is sent to */
} route_config_t;

/* Owner: experiment_config_t.arms. */
typedef struct experiment_arm {
    char *name;
    char *model;
    double percent;
} experiment_arm_t;

/* Owner: config_t.experiments. An A/B split or a shadow copy for a model name. */
typedef struct experiment_config {
    char *name;
    char *model; /* requests for this model name take part */
    experiment_arm_t *arms;
    size_t arm_count;
    sticky_t sticky;         /* how a caller keeps their arm (default user, else key) */
    char *shadow_model;      /* shadow: a copy goes here, its answer is only logged */
    double shadow_percent;
} experiment_config_t;

/* Owner: config_t.prices. USD per million tokens. */
typedef struct price_config {
    char *model;
    double input_per_million;
    double output_per_million;
} price_config_t;

enum { CONFIG_SHA256_LENGTH = 32 };

/* What a budget caps: whose spend it counts (config_budget.c, budget.h). */
typedef enum { BUDGET_SCOPE_KEY, BUDGET_SCOPE_TEAM, BUDGET_SCOPE_USER, BUDGET_SCOPE_FEATURE } budget_scope_t;
/* Calendar periods in UTC; total never resets. */
typedef enum { BUDGET_PERIOD_DAY, BUDGET_PERIOD_WEEK, BUDGET_PERIOD_MONTH, BUDGET_PERIOD_TOTAL } budget_period_t;

/* Owner: config_t.budgets. One spending cap. keys[].budget, teams.NAME.budget
 * and each budgets[] item all become one of these. */
typedef struct budget_config {
    budget_scope_t scope;
    char *match; /* the key, team, user or feature it caps; "*" = each distinct one its own */
    double usd;
    budget_period_t period;
} budget_config_t;

/* Owner: config_t.keys. The secret itself is never kept, only its hash. */
typedef struct key_config {
    char *name;
    unsigned char sha256[CONFIG_SHA256_LENGTH];
    char *team;
    char *user;    /* the user budgets count this key's requests under when they name none */
    char **models; /* allowed model names; NULL = all */
    size_t model_count;
    long rpm, tpm; /* 0 = unlimited */
    double max_cost_usd; /* cost strategy: per-request ceiling for this key (0 = none) */
    bool is_admin; /* may call the /admin/ API */
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

/* Who shares cache entries: the calling key (default), its team, or everybody. */
typedef enum { CACHE_SCOPE_KEY, CACHE_SCOPE_TEAM, CACHE_SCOPE_GLOBAL } cache_scope_t;
/* What the semantic layer embeds. */
typedef enum { CACHE_EMBED_LAST_USER, CACHE_EMBED_CONVERSATION } cache_embed_input_t;

/* Owner: cache_config_t.models. Per model-name overrides; -1 = inherit. */
typedef struct cache_model_config {
    char *model;
    int is_exact_enabled;
    int is_semantic_enabled;
    double threshold;    /* < 0: inherit */
    long exact_ttl_s;    /* < 0: inherit */
    long semantic_ttl_s; /* < 0: inherit */
} cache_model_config_t;

/* The cache section (config_cache.c). Off unless the section is present. */
typedef struct cache_config {
    bool is_enabled;
    bool uses_redis;          /* backend: redis (entries shared through the redis section) */
    cache_scope_t scope;
    bool is_exact_enabled;
    long exact_ttl_s;
    bool is_semantic_enabled;
    double threshold;         /* cosine similarity a semantic hit needs */
    long semantic_ttl_s;
    bool uses_provider_embedder;
    const struct provider_config *embed_provider; /* points into config_t.providers */
    char *embed_model;
    long embed_timeout_ms;
    int dimensions;           /* builtin embedder */
    cache_embed_input_t embed_input;
    size_t max_entries;
    size_t max_bytes;
    double max_temperature;   /* skip above this */
    bool skips_tools;         /* skip requests that carry tools */
    char **admit_finish_reasons;
    size_t admit_finish_reason_count;
    long admit_min_length;    /* characters of content */
    cache_model_config_t *models;
    size_t model_count;
} cache_config_t;

/* The limits section. The limits themselves are per key (keys[].rpm/tpm). */
typedef struct limits_config {
    long window_seconds; /* the sliding window: 60 (per minute); tests shorten it */
    bool is_shared;      /* with a redis section: windows shared through Redis (default true) */
    long redis_timeout_ms; /* a shared admission slower than this is decided locally */
} limits_config_t;

/* The redis section: where shared state lives. */
typedef struct redis_config {
    bool is_configured;
    char *host;
    int port;
    char *password; /* secret: never logged */
    int database;
    char *prefix;   /* key and channel prefix, default "sluice" */
} redis_config_t;

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
    route_config_t *routes;
    size_t route_count;
    experiment_config_t *experiments;
    size_t experiment_count;
    price_config_t *prices;
    size_t price_count;
    key_config_t *keys;
    size_t key_count;
    logging_config_t logging;
    cache_config_t cache;
    limits_config_t limits;
    redis_config_t redis;
    budget_config_t *budgets; /* config_budget.c */
    size_t budget_count;
    char *alert_webhook_url;       /* alerts.webhook_url: budget alerts are POSTed here; NULL = none */
    long alert_webhook_timeout_ms; /* alerts.timeout_ms */
} config_t;

/* Loads and validates path. On failure returns NULL and writes a message
 * naming the file, line and key into error (size bytes). Warnings (such as
 * "no keys configured") are logged. */
config_t *config_load(const char *path, char *error, size_t size);
/* Same, from YAML text in memory (for tests); name is used in messages. */
config_t *config_load_string(const char *yaml, size_t length, const char *name, char *error, size_t size);

config_t *config_ref(config_t *config);
void config_unref(config_t *config);

/* The snapshot new requests take: a reload swaps it, every worker reads it.
 * Owner: server_t; one mutex, held only to take a reference or to swap. */
typedef struct config_current {
    pthread_mutex_t lock;
    config_t *config;
} config_current_t;

/* Takes ownership of config. */
void config_current_init(config_current_t *current, config_t *config);
/* The current snapshot with a reference the caller must drop. */
config_t *config_current_get(config_current_t *current);
/* Installs next (taking ownership) and returns the old snapshot, whose
 * reference the caller drops once it is done with it. */
config_t *config_current_swap(config_current_t *current, config_t *next);
void config_current_destroy(config_current_t *current);

/* Frees a header list that may hold secrets, wiping its lines first. */
void config_free_headers(struct curl_slist *headers);

const provider_config_t *config_find_provider(const config_t *config, const char *name, size_t name_length);
const model_config_t *config_find_model(const config_t *config, const char *name);
/* The cache overrides for a model name, or NULL. */
const cache_model_config_t *config_find_cache_model(const config_t *config, const char *model);
const price_config_t *config_find_price(const config_t *config, const char *model);
/* Finds the key whose hash matches secret; constant time per compared key. */
const key_config_t *config_find_key(const config_t *config, const char *secret, size_t length);
bool config_key_allows_model(const key_config_t *key, const char *model);

/* Expands ${VAR} and ${VAR:-default} in text. Returns a malloc'ed string, or
 * NULL with a message in error (unset variable without default, bad syntax). */
char *config_interpolate(const char *text, char *error, size_t size);

#endif
