/* mock_text.c — deterministic content: reply text, word and token counts, stream pieces, tool
 * call arguments, embeddings and ids.
 *
 * Tests compare what the gateway returns against what the mock must have said, so everything
 * here is a pure function of the request (ids aside): the reply starts with
 * `mock reply to: <first 40 characters of the last user message>` and is padded with filler
 * words; prompt tokens are ceil(characters / 4); completion tokens are the reply's words. */
#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock.h"

static const char *const filler_words[] = {
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim",
};
#define FILLER_COUNT (sizeof filler_words / sizeof filler_words[0])
#define PREFIX_CHARACTERS 40

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_continuation_byte(char c)
{
    return ((unsigned char)c & 0xC0) == 0x80;
}

int mock_text_count_words(const char *text)
{
    int words = 0;
    bool is_in_word = false;
    for (const char *cursor = text; *cursor != '\0'; cursor++) {
        if (is_space(*cursor)) {
            is_in_word = false;
        } else if (!is_in_word) {
            is_in_word = true;
            words++;
        }
    }
    return words;
}

int mock_text_tokens_for_chars(size_t characters)
{
    return (int)((characters + 3) / 4);
}

/* Byte length of the first `characters` UTF-8 characters of text. */
static size_t utf8_prefix_length(const char *text, size_t characters)
{
    size_t i = 0;
    size_t seen = 0;
    while (text[i] != '\0') {
        if (!is_continuation_byte(text[i])) {
            if (seen == characters)
                break;
            seen++;
        }
        i++;
    }
    return i;
}

char *mock_text_reply(const char *last_user_text, const mock_directives_t *directives)
{
    if (directives->reply != NULL)
        return strdup(directives->reply);
    if (last_user_text == NULL)
        last_user_text = "";
    size_t quoted = utf8_prefix_length(last_user_text, PREFIX_CHARACTERS);
    size_t capacity = 16 + quoted + (size_t)(directives->words > 0 ? directives->words : 0) * 12 + 1;
    char *reply = malloc(capacity);
    if (reply == NULL)
        return NULL;
    int used = snprintf(reply, capacity, "mock reply to: %.*s", (int)quoted, last_user_text);
    size_t length = (size_t)used;
    int words = mock_text_count_words(reply);
    for (int next = 0; words < directives->words; next++, words++) {
        const char *word = filler_words[next % FILLER_COUNT];
        bool needs_space = length > 0 && !is_space(reply[length - 1]);
        size_t word_length = strlen(word);
        if (needs_space)
            reply[length++] = ' ';
        memcpy(reply + length, word, word_length);
        length += word_length;
    }
    reply[length] = '\0';
    return reply;
}

/* One piece per word: each piece runs up to the start of the next word. */
static int split_words(const char *text, size_t length, size_t *ends, int limit)
{
    int count = 0;
    for (size_t i = 1; i < length && count < limit - 1; i++) {
        if (is_space(text[i - 1]) && !is_space(text[i]))
            ends[count++] = i;
    }
    if (length > 0)
        ends[count++] = length;
    return count;
}

size_t mock_text_split_capacity(const char *text, int pieces)
{
    return pieces > 0 ? (size_t)pieces : (size_t)mock_text_count_words(text) + 1;
}

int mock_text_split(const char *text, int pieces, size_t *ends)
{
    size_t length = strlen(text);
    if (pieces <= 0)
        return split_words(text, length, ends, mock_text_count_words(text) + 1);
    size_t characters = 0;
    for (size_t i = 0; i < length; i++)
        characters += !is_continuation_byte(text[i]);
    if (pieces < 1 || characters == 0)
        return 0;
    if ((size_t)pieces > characters)
        pieces = (int)characters;
    int count = 0;
    size_t previous = 0;
    for (int k = 1; k <= pieces; k++) {
        size_t end = k == pieces ? length : (size_t)k * length / (size_t)pieces;
        while (end < length && is_continuation_byte(text[end]))
            end++;
        if (end <= previous)
            continue;
        ends[count++] = end;
        previous = end;
    }
    return count;
}

/* The last run of letters/digits in text ("Paris" in "weather in Paris?"), as a heap string.
 * The " @mock ..." directives are not part of the question, so the text ends where they start. */
static char *last_word(const char *text)
{
    if (text == NULL)
        return strdup("mock");
    const char *directives = strstr(text, " @mock");
    const char *text_end = directives ? directives : text + strlen(text);
    const char *start = NULL;
    const char *end = NULL;
    const char *run = NULL;
    for (const char *cursor = text;; cursor++) {
        unsigned char c = cursor == text_end ? '\0' : (unsigned char)*cursor;
        bool is_word = c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (is_word && run == NULL)
            run = cursor;
        if (!is_word && run != NULL) {
            start = run;
            end = cursor;
            run = NULL;
        }
        if (c == '\0')
            break;
    }
    if (start == NULL)
        return strdup("mock");
    return strndup(start, (size_t)(end - start));
}

json_t *mock_text_tool_arguments(const json_t *parameters, const char *last_user_text)
{
    json_t *arguments = json_object();
    json_t *properties = json_is_object(parameters) ? json_object_get(parameters, "properties") : NULL;
    if (arguments == NULL || !json_is_object(properties))
        return arguments;
    char *word = last_word(last_user_text);
    const char *key;
    json_t *schema;
    json_object_foreach(properties, key, schema) {
        const char *type = json_string_value(json_object_get(schema, "type"));
        json_t *value;
        if (type == NULL || strcmp(type, "string") == 0)
            value = json_string(word ? word : "mock");
        else if (strcmp(type, "integer") == 0 || strcmp(type, "number") == 0)
            value = json_integer(1);
        else if (strcmp(type, "boolean") == 0)
            value = json_true();
        else if (strcmp(type, "array") == 0)
            value = json_array();
        else
            value = json_object();
        json_object_set_new(arguments, key, value);
    }
    free(word);
    return arguments;
}

static uint64_t fnv1a(const void *bytes, size_t length, uint64_t hash)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < length; i++) {
        hash ^= p[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

/* Hashed character trigrams of the lowercased text: equal texts give equal vectors and texts
 * that share most trigrams give close ones, which is what a semantic cache test wants. */
void mock_text_embedding(const char *text, size_t length, float *vector, int dimensions)
{
    memset(vector, 0, sizeof *vector * (size_t)dimensions);
    char window[3] = { ' ', ' ', ' ' };
    for (size_t i = 0; i <= length; i++) {
        char c = i < length ? text[i] : ' ';
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        window[0] = window[1];
        window[1] = window[2];
        window[2] = c;
        if (i < 1)
            continue;
        uint64_t hash = fnv1a(window, 3, 0xcbf29ce484222325ULL);
        vector[hash % (uint64_t)dimensions] += (hash >> 63) ? 1.0f : -1.0f;
    }
    /* A small whole-text component keeps vectors of different texts apart even when trigram
     * buckets collide in few dimensions. */
    uint64_t state = fnv1a(text, length, 0xcbf29ce484222325ULL);
    double norm = 0;
    for (int d = 0; d < dimensions; d++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        vector[d] += (float)((double)(state >> 40) / (double)(1ULL << 24) - 0.5) * 0.25f;
        norm += (double)vector[d] * vector[d];
    }
    norm = sqrt(norm);
    for (int d = 0; d < dimensions; d++)
        vector[d] = (float)(vector[d] / norm);
}

json_t *mock_text_embedding_json(const char *text, int dimensions, bool is_base64)
{
    float *vector = malloc(sizeof *vector * (size_t)dimensions);
    if (vector == NULL)
        return NULL;
    mock_text_embedding(text, strlen(text), vector, dimensions);
    json_t *result;
    if (is_base64) {
        /* OpenAI's base64 form is the little-endian float32 array, base64-encoded. */
        size_t bytes = sizeof *vector * (size_t)dimensions;
        unsigned char *encoded = malloc(4 * ((bytes + 2) / 3) + 1);
        if (encoded == NULL) {
            free(vector);
            return NULL;
        }
        EVP_EncodeBlock(encoded, (const unsigned char *)vector, (int)bytes);
        result = json_string((const char *)encoded);
        free(encoded);
    } else {
        result = json_array();
        for (int d = 0; result != NULL && d < dimensions; d++)
            json_array_append_new(result, json_real(vector[d]));
    }
    free(vector);
    return result;
}

char *mock_text_id(const char *prefix)
{
    static _Thread_local uint64_t state;
    if (state == 0)
        state = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)&state << 16) ^ 0x9e3779b97f4a7c15ULL;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    char *id = malloc(strlen(prefix) + 20);
    if (id != NULL)
        sprintf(id, "%s%016llx", prefix, (unsigned long long)state);
    return id;
}

int mock_answer_build(mock_answer_t *answer, const mock_directives_t *directives, const char *last_user_text,
                      size_t prompt_characters, const char *tool_name, const json_t *tool_parameters,
                      const char *tool_id_prefix)
{
    answer->prompt_tokens = mock_text_tokens_for_chars(prompt_characters);
    if (tool_name != NULL) {
        json_t *arguments = mock_text_tool_arguments(tool_parameters, last_user_text);
        answer->tool_arguments = arguments ? json_dumps(arguments, JSON_COMPACT) : NULL;
        json_decref(arguments);
        answer->tool_name = strdup(tool_name);
        answer->tool_id = mock_text_id(tool_id_prefix);
        if (answer->tool_arguments == NULL || answer->tool_name == NULL || answer->tool_id == NULL)
            return -1;
        answer->completion_tokens =
            mock_text_tokens_for_chars(strlen(answer->tool_name) + strlen(answer->tool_arguments));
        return 0;
    }
    answer->text = mock_text_reply(last_user_text, directives);
    if (answer->text == NULL)
        return -1;
    answer->completion_tokens = mock_text_count_words(answer->text);
    return 0;
}

void mock_answer_free(mock_answer_t *answer)
{
    free(answer->model);
    free(answer->text);
    free(answer->tool_name);
    free(answer->tool_id);
    free(answer->tool_arguments);
    memset(answer, 0, sizeof *answer);
}

void mock_text_append(const char *piece, char **text, size_t *length)
{
    size_t add = strlen(piece);
    char *grown = realloc(*text, *length + add + 2);
    if (grown == NULL)
        return;
    *text = grown;
    if (*length > 0)
        (*text)[(*length)++] = ' ';
    memcpy(*text + *length, piece, add + 1);
    *length += add;
}
