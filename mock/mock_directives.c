/* mock_directives.c — per-request behaviour switches.
 *
 * One mock serves many test scenarios at once, so a request carries its own instructions: in the
 * model name after '@' (`gpt-4o@status=500,delay_ms=200`) — handy in a gateway config target —
 * or after an `@mock` token in the last user message (`hi @mock chunks=10 chunk_delay_ms=200`) —
 * handy in a single test. Both start from the command-line defaults. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

void mock_directives_init(mock_directives_t *directives, const mock_directives_t *defaults)
{
    *directives = *defaults;
    directives->reply = defaults->reply ? strdup(defaults->reply) : NULL;
    directives->tool_call = defaults->tool_call ? strdup(defaults->tool_call) : NULL;
}

void mock_directives_free(mock_directives_t *directives)
{
    free(directives->reply);
    free(directives->tool_call);
    directives->reply = NULL;
    directives->tool_call = NULL;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *mock_percent_decode(const char *text, size_t length)
{
    char *out = malloc(length + 1);
    if (out == NULL)
        return NULL;
    size_t used = 0;
    for (size_t i = 0; i < length; i++) {
        if (text[i] == '%' && i + 2 < length) {
            int high = hex_value(text[i + 1]);
            int low = hex_value(text[i + 2]);
            if (high >= 0 && low >= 0) {
                out[used++] = (char)(high * 16 + low);
                i += 2;
                continue;
            }
        }
        out[used++] = text[i];
    }
    out[used] = '\0';
    return out;
}

char *mock_query_param(const char *query, const char *name)
{
    if (query == NULL)
        return NULL;
    size_t name_length = strlen(name);
    const char *cursor = query;
    while (*cursor != '\0') {
        const char *end = strchr(cursor, '&');
        size_t length = end ? (size_t)(end - cursor) : strlen(cursor);
        if (length > name_length && strncmp(cursor, name, name_length) == 0 && cursor[name_length] == '=')
            return mock_percent_decode(cursor + name_length + 1, length - name_length - 1);
        if (length == name_length && strncmp(cursor, name, name_length) == 0)
            return strdup("");
        if (end == NULL)
            break;
        cursor = end + 1;
    }
    return NULL;
}

static void replace_string(char **slot, const char *value, size_t length)
{
    free(*slot);
    *slot = mock_percent_decode(value, length);
}

/* One `key=value`. Values of numeric keys that do not parse are ignored. */
static void apply_pair(mock_directives_t *directives, const char *key, size_t key_length, const char *value,
                       size_t value_length)
{
    char number_text[32];
    size_t copy = value_length < sizeof number_text - 1 ? value_length : sizeof number_text - 1;
    memcpy(number_text, value, copy);
    number_text[copy] = '\0';
    char *end = NULL;
    long number = strtol(number_text, &end, 10);
    bool is_number = copy > 0 && end != NULL && *end == '\0';

#define KEY_IS(name) (key_length == strlen(name) && strncmp(key, name, key_length) == 0)
    if (KEY_IS("reply")) {
        replace_string(&directives->reply, value, value_length);
    } else if (KEY_IS("tool_call")) {
        replace_string(&directives->tool_call, value, value_length);
    } else if (KEY_IS("finish")) {
        char *decoded = mock_percent_decode(value, value_length);
        if (decoded != NULL) {
            snprintf(directives->finish, sizeof directives->finish, "%s", decoded);
            free(decoded);
        }
    } else if (KEY_IS("quirk")) {
        size_t length = value_length < sizeof directives->quirk - 1 ? value_length : sizeof directives->quirk - 1;
        memcpy(directives->quirk, value, length);
        directives->quirk[length] = '\0';
    } else if (!is_number) {
        return;
    } else if (KEY_IS("status")) {
        directives->status = (int)number;
    } else if (KEY_IS("retry_after")) {
        directives->retry_after = (int)number;
    } else if (KEY_IS("delay_ms")) {
        directives->delay_ms = (int)number;
    } else if (KEY_IS("chunks")) {
        directives->chunks = number < 1 ? 1 : (int)number;
    } else if (KEY_IS("chunk_delay_ms")) {
        directives->chunk_delay_ms = (int)number;
    } else if (KEY_IS("words")) {
        directives->words = number < 0 ? 0 : (int)number;
    } else if (KEY_IS("error_after")) {
        directives->error_after = (int)number;
    } else if (KEY_IS("reset_after")) {
        directives->reset_after = (int)number;
    } else if (KEY_IS("hang_after")) {
        directives->hang_after = (int)number;
    } else if (KEY_IS("hang")) {
        directives->is_hang = number != 0;
    } else if (KEY_IS("usage")) {
        directives->has_usage = number != 0;
    } else if (KEY_IS("embed_dim")) {
        directives->embed_dim = number < 1 ? 1 : (number > 65536 ? 65536 : (int)number);
    }
#undef KEY_IS
}

void mock_directives_apply(mock_directives_t *directives, const char *text, size_t length, const char *separators)
{
    size_t i = 0;
    while (i < length) {
        while (i < length && strchr(separators, text[i]) != NULL)
            i++;
        size_t start = i;
        while (i < length && strchr(separators, text[i]) == NULL)
            i++;
        const char *pair = text + start;
        const char *equals = memchr(pair, '=', i - start);
        if (equals != NULL)
            apply_pair(directives, pair, (size_t)(equals - pair), equals + 1, (size_t)(text + i - equals - 1));
    }
}

char *mock_directives_from_model(mock_directives_t *directives, const char *model)
{
    if (model == NULL)
        return strdup("mock-model");
    const char *at = strchr(model, '@');
    if (at == NULL)
        return strdup(model);
    mock_directives_apply(directives, at + 1, strlen(at + 1), ",");
    return strndup(model, (size_t)(at - model));
}

void mock_directives_from_text(mock_directives_t *directives, const char *text)
{
    if (text == NULL)
        return;
    for (const char *found = strstr(text, "@mock"); found != NULL; found = strstr(found + 1, "@mock")) {
        char after = found[5];
        if (after == '\0' || isspace((unsigned char)after)) {
            mock_directives_apply(directives, found + 5, strlen(found + 5), " \t\r\n");
            return;
        }
    }
}
