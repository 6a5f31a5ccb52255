/* config_directives.c — table-driven parsing of a config mapping.
 *
 * A section (or a nested mapping such as a provider's breaker) is described
 * by a table of directives, as nginx describes a module's commands: the key,
 * the type of its value, where it goes in the section's struct and its range.
 * One function walks a mapping against the table: unknown and repeated keys
 * are errors naming the line, and every value is checked the same way. Keys
 * whose value needs more than a type and a range name a parse function of
 * their own (DIRECTIVE_CUSTOM). Part of the config module (config_loader.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_loader.h"

int loader_bool(loader_t *loader, const yaml_node_t *node, const char *path, bool *out)
{
    char *text = loader_string(loader, node, path);
    if (text == NULL)
        return -1;
    int rc = 0;
    if (strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0 || strcasecmp(text, "on") == 0)
        *out = true;
    else if (strcasecmp(text, "false") == 0 || strcasecmp(text, "no") == 0 || strcasecmp(text, "off") == 0)
        *out = false;
    else {
        loader_fail(loader, node, path, "must be true or false");
        rc = -1;
    }
    free(text);
    return rc;
}

int loader_enum(loader_t *loader, yaml_node_t *node, const char *path, const char *const *names, int *out)
{
    char *text = loader_string(loader, node, path);
    if (text == NULL)
        return -1;
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            free(text);
            return 0;
        }
    }
    char choices[256] = "";
    for (int i = 0; names[i] != NULL; i++)
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s%s", i ? ", " : "", names[i]);
    loader_fail(loader, node, path, "unknown value '%s': must be one of %s", text, choices);
    free(text);
    return -1;
}

int loader_expect_entries(loader_t *loader, yaml_node_t *node, const char *path)
{
    return loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, NULL)
               ? -1
               : 0;
}

int loader_parse_entries(loader_t *loader, yaml_node_t *node, void *entries, size_t entry_size, size_t *count,
                         loader_entry_parser_t parse)
{
    FOR_EACH_PAIR(node, pair)
    {
        void *entry = (char *)entries + entry_size * (*count)++;
        if (parse(loader, loader_key(loader, pair), loader_node(loader, pair->value), entry) != 0)
            return -1;
    }
    return 0;
}

static int apply(loader_t *loader, const config_directive_t *directive, yaml_node_t *value, const char *path,
                 void *section)
{
    char *field = (char *)section + directive->offset;
    long number = 0;
    int choice = 0;
    switch (directive->type) {
    case DIRECTIVE_LONG:
        return loader_long(loader, value, path, directive->min, directive->max, (long *)(void *)field);
    case DIRECTIVE_INT:
        if (loader_long(loader, value, path, directive->min, directive->max, &number) != 0)
            return -1;
        *(int *)(void *)field = (int)number;
        return 0;
    case DIRECTIVE_SIZE:
        if (loader_long(loader, value, path, directive->min, directive->max, &number) != 0)
            return -1;
        *(size_t *)(void *)field = (size_t)number;
        return 0;
    case DIRECTIVE_DOUBLE:
        return loader_double(loader, value, path, (double *)(void *)field);
    case DIRECTIVE_BOOL:
        return loader_bool(loader, value, path, (bool *)(void *)field);
    case DIRECTIVE_STRING: {
        char **slot = (char **)(void *)field;
        char *text = loader_string(loader, value, path);
        if (text == NULL)
            return -1;
        free(*slot);
        *slot = text;
        return 0;
    }
    case DIRECTIVE_ENUM:
        if (loader_enum(loader, value, path, directive->names, &choice) != 0)
            return -1;
        *(int *)(void *)field = choice;
        return 0;
    case DIRECTIVE_CUSTOM:
        return directive->parse != NULL ? directive->parse(loader, value, path, section) : 0;
    }
    return -1;
}

int loader_directives(loader_t *loader, yaml_node_t *node, const char *path, const config_directive_t *directives,
                      void *section)
{
    enum { MAX_DIRECTIVES = 32 };
    const char *allowed[MAX_DIRECTIVES + 1];
    size_t count = 0;
    for (; directives[count].key != NULL && count < MAX_DIRECTIVES; count++)
        allowed[count] = directives[count].key;
    allowed[count] = NULL;
    if (loader_expect_type(loader, node, YAML_MAPPING_NODE, path) || loader_check_keys(loader, node, path, allowed))
        return -1;
    FOR_EACH_PAIR(node, pair)
    {
        const char *key = loader_key(loader, pair);
        const config_directive_t *directive = directives;
        while (strcmp(directive->key, key) != 0)
            directive++; /* loader_check_keys made sure it is there */
        char item_path[CONFIG_PATH_LENGTH];
        snprintf(item_path, sizeof item_path, "%s.%s", path, key);
        if (apply(loader, directive, loader_node(loader, pair->value), item_path, section) != 0)
            return -1;
    }
    return 0;
}
