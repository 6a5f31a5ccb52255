/* config_loader.h — internal to the config module: the YAML walking helpers
 * shared by config.c (server, providers, keys...) and config_routing.c
 * (models, routes, experiments). Every helper reports the first error with the
 * node's line and the key path, and returns -1 / NULL after it. */
#ifndef SLUICE_CONFIG_LOADER_H
#define SLUICE_CONFIG_LOADER_H

#include <stddef.h>
#include <yaml.h>

#include "sluice/config.h"

/* Longest key path in a message, e.g. "models.smart.targets[1].provider". */
#define CONFIG_PATH_LENGTH 1024

/* Owner: config_load_string's stack. */
typedef struct loader {
    yaml_document_t document;
    const char *name;
    char *error;
    size_t error_size;
    int failed;
    config_t *config;
} loader_t;

void loader_fail(loader_t *loader, const yaml_node_t *node, const char *path, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
yaml_node_t *loader_node(loader_t *loader, int index);
int loader_expect_type(loader_t *loader, const yaml_node_t *node, yaml_node_type_t type, const char *path);
/* The interpolated scalar, malloc'ed. */
char *loader_string(loader_t *loader, const yaml_node_t *node, const char *path);
int loader_long(loader_t *loader, const yaml_node_t *node, const char *path, long min, long max, long *out);
/* A number >= 0. */
int loader_double(loader_t *loader, const yaml_node_t *node, const char *path, double *out);
const char *loader_key(loader_t *loader, yaml_node_pair_t *pair);
/* The value node of key in mapping, or the mapping itself when absent, so an
 * error about a key points at that key's line whenever it exists. */
yaml_node_t *loader_child_or_self(loader_t *loader, yaml_node_t *mapping, const char *key);
int loader_is_one_of(const char *text, const char *const *choices);
/* Rejects unknown keys (allowed NULL = any) and duplicates in a mapping. */
int loader_check_keys(loader_t *loader, yaml_node_t *mapping, const char *path, const char *const *allowed);
int loader_count(const yaml_node_t *node);
int loader_string_list(loader_t *loader, yaml_node_t *node, const char *path, char ***out, size_t *count);
int loader_timeouts(loader_t *loader, yaml_node_t *node, const char *path, provider_timeouts_t *timeouts);

/* One key of a mapping: what its value is and where it goes. */
typedef enum {
    DIRECTIVE_LONG,   /* long, in [min, max] */
    DIRECTIVE_INT,    /* int, in [min, max] */
    DIRECTIVE_SIZE,   /* size_t, in [min, max] */
    DIRECTIVE_DOUBLE, /* double >= 0 */
    DIRECTIVE_BOOL,   /* bool: true/false, yes/no, on/off */
    DIRECTIVE_STRING, /* char *, interpolated, malloc'ed (a repeat replaces it) */
    DIRECTIVE_ENUM,   /* int: the index of the value in names */
    DIRECTIVE_CUSTOM, /* parse(loader, value, path, section); NULL: the caller reads it after the walk */
} directive_type_t;

/* Owner: static tables, one per mapping kind. The table ends with a NULL key. */
typedef struct config_directive {
    const char *key;
    directive_type_t type;
    size_t offset; /* of the field in the section struct */
    long min, max;
    const char *const *names; /* DIRECTIVE_ENUM */
    int (*parse)(loader_t *loader, yaml_node_t *value, const char *path, void *section); /* DIRECTIVE_CUSTOM */
} config_directive_t;

#define DIRECTIVE_NUMBER(name, kind, type_, field, low, high)                                                  \
    {.key = (name), .type = (kind), .offset = offsetof(type_, field), .min = (low), .max = (high)}
#define DIRECTIVE_FIELD(name, kind, type_, field) {.key = (name), .type = (kind), .offset = offsetof(type_, field)}
#define DIRECTIVE_ENUM_OF(name, type_, field, choices)                                                          \
    {.key = (name), .type = DIRECTIVE_ENUM, .offset = offsetof(type_, field), .names = (choices)}
#define DIRECTIVE_PARSE(name, function) {.key = (name), .type = DIRECTIVE_CUSTOM, .parse = (function)}

/* A mapping of NAME: { ... } entries (providers, models...): the caller
 * checks it with loader_expect_entries, allocates loader_count(node) + 1
 * zeroed entries (the spare one ends the array), and loader_parse_entries
 * fills them in order, counting each one it starts so the free sees it. */
typedef int (*loader_entry_parser_t)(loader_t *loader, const char *name, yaml_node_t *node, void *entry);
int loader_expect_entries(loader_t *loader, yaml_node_t *node, const char *path);
int loader_parse_entries(loader_t *loader, yaml_node_t *node, void *entries, size_t entry_size, size_t *count,
                         loader_entry_parser_t parse);

/* Walks a mapping against its table: rejects unknown and repeated keys, then
 * stores each value into section. Returns 0 or -1 (with the error set). */
int loader_directives(loader_t *loader, yaml_node_t *node, const char *path, const config_directive_t *directives,
                      void *section);
int loader_bool(loader_t *loader, const yaml_node_t *node, const char *path, bool *out);
/* The index of the scalar in names (NULL-terminated). */
int loader_enum(loader_t *loader, yaml_node_t *node, const char *path, const char *const *names, int *out);

#define FOR_EACH_PAIR(map_node, pair)                                                                          \
    for (yaml_node_pair_t *pair = (map_node)->data.mapping.pairs.start;                                         \
         pair < (map_node)->data.mapping.pairs.top; pair++)

/* config_routing.c: the models, routes and experiments sections. */
int config_routing_parse_models(loader_t *loader, yaml_node_t *node);
int config_routing_parse_routes(loader_t *loader, yaml_node_t *node);
int config_routing_parse_experiments(loader_t *loader, yaml_node_t *node);
void config_routing_free(config_t *config);

/* config_cache.c: the cache and redis sections. */
int config_cache_parse(loader_t *loader, yaml_node_t *node);
int config_cache_parse_redis(loader_t *loader, yaml_node_t *node);
void config_cache_free(config_t *config);

/* config_budget.c: keys[].budget, the teams and budgets sections. */
int config_budget_add(loader_t *loader, yaml_node_t *node, const char *path, budget_scope_t scope, const char *match);
int config_budget_parse_teams(loader_t *loader, yaml_node_t *node);
int config_budget_parse_list(loader_t *loader, yaml_node_t *node);
int config_budget_parse_alerts(loader_t *loader, yaml_node_t *node);
void config_budget_free(config_t *config);

#endif
