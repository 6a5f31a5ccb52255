/* embed.c — the builtin and provider embedders (see embed.h).
 *
 * The builtin embedder is a weight-free feature hasher tuned for the cache's
 * job: two prompts that ask the same thing in other words should land close,
 * and two prompts that differ in the one word that matters — another entity,
 * another number, a negation, another time — should not. Hence the weights:
 * numbers are whole tokens with a high weight and no character n-grams (so
 * "order 123" and "order 124" share nothing there), negations fold into one
 * heavy "not" token, question words and time words are kept, and ordinary
 * stop words are dropped. Character trigrams inside words absorb spelling
 * variants and inflections the light stemmer misses. */
#include "sluice/embed.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/config.h"
#include "sluice/upstream_pool.h"
#include "sluice/worker.h"

enum { TOKEN_MAX = 48, TOKENS_MAX = 512 };

/* ---- normalisation --------------------------------------------------------- */

static const char *const stop_words[] = {
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "doing",
    "i", "me", "my", "mine", "myself", "you", "your", "yours", "we", "our", "ours", "us", "he", "him", "his",
    "she", "her", "it", "its", "they", "them", "their", "that", "these", "those", "of", "in", "on",
    "at", "by", "for", "with", "about", "into", "to", "from", "as", "and", "or", "but", "if", "so", "than",
    "then", "can", "could", "would", "should", "will", "shall", "may", "might", "must", "please", "tell",
    "give", "know", "want", "need", "like", "just", "some", "any", "there", "here", "s", "t", "d", "ll", "re",
    "ve", "m", "o", "hi", "hello", "hey", "thanks", "thank", "kindly", "let", "get", "got", "also", "really",
    "very", "way", "possible", "able", "anyone", "someone", "explain", "help", "question", "ask",
    "wondering", "curious", "one", "up", "out", "much", "many", NULL};

/* Folded into the single heavy token "not". */
static const char *const negations[] = {"not", "no", "never", "none", "nothing", "nobody", "without",
                                        "nor", "neither", "cannot", "dont", "doesnt", "isnt", "wont", NULL};

/* Particles that change a verb's meaning (log in / log out, sign up, turn off):
 * after one of the verbs below they join it into one token instead of being
 * dropped as stop words. */
static const char *const particles[] = {"in", "out", "up", "off", "on", "down", NULL};
static const char *const phrasal_verbs[] = {"log", "sign", "check", "turn", "opt", "back", "shut", "set",
                                            "logg", "signe", NULL};

static const char *const question_words[] = {"what", "why", "how", "when", "where", "who", "which", "whom",
                                             "whose", NULL};

/* Synonyms folded after stemming: stem → canonical stem. Only pairs that mean
 * the same thing in a request; anything debatable is left out, because a
 * wrong fold is a wrong hit. */
static const char *const synonyms[][2] = {
    {"purchas", "buy"},   {"bought", "buy"},     {"terminat", "cancel"}, {"pwd", "password"},
    {"passcod", "password"}, {"passphras", "password"}, {"cost", "pric"}, {"movy", "movi"},
    {"film", "movi"},     {"deliver", "ship"},   {"delivery", "ship"},   {"repair", "fix"},
    {"issu", "problem"},  {"troubl", "problem"}, {"summary", "summar"},  {"summariz", "summar"},
    {"summaris", "summar"}, {"kid", "child"},    {"children", "child"},  {"commenc", "start"},
    {"begin", "start"},   {"automobil", "car"},  {"vehicl", "car"},      {"fast", "quick"},
    {"rapid", "quick"},   {"e-mail", "email"},   {"mail", "email"},      {"telephon", "phon"},
    {"modify", "chang"},  {"modifi", "chang"},   {"alter", "chang"},     {"updat", "chang"},
    {"acquir", "buy"},    {"locat", "find"},
    {"discov", "find"},   {"larg", "big"},       {"huge", "big"},        {"tiny", "small"},
    {"reply", "answ"},
    {"respond", "answ"},  {"respons", "answ"},   {"creat", "mak"},       {"build", "mak"},
    {"generat", "mak"},   {"shut", "clos"},      {"remov", "delet"},     {"eras", "delet"},
    {"error", "problem"}, {"fault", "problem"},  {"begun", "start"},     {"compos", "writ"},
    {"draft", "writ"},    {"correct", "fix"},    {"expens", "pric"},     {"fee", "pric"},
    {"charg", "pric"},    {"sign-in", "login"},  {"signin", "login"},    {"logon", "login"},
};

static bool is_one_of(const char *word, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(word, *list) == 0)
            return true;
    return false;
}

static bool is_vowel(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y'; }

static bool ends_with(const char *word, size_t length, const char *suffix)
{
    size_t n = strlen(suffix);
    return length >= n && memcmp(word + length - n, suffix, n) == 0;
}

static bool has_vowel(const char *word, size_t length)
{
    for (size_t i = 0; i < length; i++)
        if (is_vowel(word[i]))
            return true;
    return false;
}

/* A deliberately light stemmer: plurals, -ing, -ed, a trailing e. It only
 * needs to map a word's common forms to one stem, not to produce a word. */
static void stem(char *word)
{
    size_t length = strlen(word);
    for (size_t i = 0; i < length; i++)
        if ((unsigned char)word[i] >= 0x80)
            return; /* not ASCII: leave it whole */
    if (length <= 3)
        return;
    if (ends_with(word, length, "sses"))
        length -= 2;
    else if (ends_with(word, length, "ies") && length > 4)
        word[length - 3] = 'y', length -= 2;
    else if (word[length - 1] == 's' && !ends_with(word, length, "ss") && !ends_with(word, length, "us") &&
             !ends_with(word, length, "is"))
        length -= 1;
    word[length] = '\0';
    if (length > 5 && ends_with(word, length, "ing") && has_vowel(word, length - 3))
        length -= 3;
    else if (length > 4 && ends_with(word, length, "ed") && has_vowel(word, length - 2))
        length -= 2;
    else if (length > 4 && word[length - 1] == 'e')
        length -= 1;
    word[length] = '\0';
    if (length > 3 && word[length - 1] == word[length - 2] && !is_vowel(word[length - 1]) &&
        word[length - 1] != 'l' && word[length - 1] != 's' && word[length - 1] != 'z')
        word[--length] = '\0';
    if (length > 4 && word[length - 1] == 'e')
        word[--length] = '\0';
}

static const char *fold_synonym(const char *word)
{
    for (size_t i = 0; i < sizeof synonyms / sizeof synonyms[0]; i++)
        if (strcmp(word, synonyms[i][0]) == 0)
            return synonyms[i][1];
    return word;
}

typedef enum { TOKEN_WORD, TOKEN_NUMBER, TOKEN_NEGATION, TOKEN_QUESTION } token_kind_t;

typedef struct token {
    char text[TOKEN_MAX];
    token_kind_t kind;
} token_t;

static bool is_word_byte(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80; }

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static size_t add_token(token_t *tokens, size_t count, const char *text, token_kind_t kind)
{
    if (count >= TOKENS_MAX)
        return count;
    snprintf(tokens[count].text, TOKEN_MAX, "%s", text);
    tokens[count].kind = kind;
    return count + 1;
}

/* Splits and classifies; returns the number of tokens kept. */
static size_t tokenize(const char *text, size_t length, token_t *tokens)
{
    size_t count = 0;
    size_t i = 0;
    while (i < length && count < TOKENS_MAX) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (!is_word_byte(c)) {
            i++;
            continue;
        }
        char word[TOKEN_MAX];
        size_t n = 0;
        bool is_number = true, has_digit = false;
        while (i < length) {
            unsigned char d = (unsigned char)text[i];
            if (d >= 'A' && d <= 'Z')
                d = (unsigned char)(d - 'A' + 'a');
            /* 1,000 and 3.5 stay one number; a sentence's full stop does not join words */
            if ((d == ',' || d == '.') && is_number && n > 0 && i + 1 < length && is_digit((unsigned char)text[i + 1])) {
                if (d == '.' && n + 1 < TOKEN_MAX)
                    word[n++] = '.';
                i++;
                continue;
            }
            if (d == '\'' && i + 1 < length) { /* contractions: n't → not; 's 're 'll 've 'd 'm dropped */
                if (n > 1 && word[n - 1] == 'n' && (text[i + 1] == 't' || text[i + 1] == 'T')) {
                    n--;
                    word[n] = '\0';
                    if (strcmp(word, "ca") == 0 || strcmp(word, "wo") == 0)
                        ; /* can't, won't: the verb is a stop word either way */
                    else if (n > 0 && !is_one_of(word, stop_words))
                        count = add_token(tokens, count, word, TOKEN_WORD);
                    count = add_token(tokens, count, "not", TOKEN_NEGATION);
                    n = 0;
                    i += 2;
                    while (i < length && is_word_byte((unsigned char)text[i]))
                        i++;
                    break;
                }
                i++;
                while (i < length && is_word_byte((unsigned char)text[i]))
                    i++; /* the clitic */
                break;
            }
            if (!is_word_byte(d))
                break;
            if (is_digit(d))
                has_digit = true;
            else
                is_number = false;
            if (n + 1 < TOKEN_MAX)
                word[n++] = (char)d;
            i++;
        }
        if (n == 0)
            continue;
        word[n] = '\0';
        if (is_number || has_digit) { /* 1234, 7pm, v2, q3: identifiers that must match whole */
            count = add_token(tokens, count, word, TOKEN_NUMBER);
        } else if (count > 0 && tokens[count - 1].kind == TOKEN_WORD && is_one_of(word, particles) &&
                   is_one_of(tokens[count - 1].text, phrasal_verbs)) {
            char joined[TOKEN_MAX];
            snprintf(joined, sizeof joined, "%s%s", tokens[count - 1].text, word);
            snprintf(tokens[count - 1].text, TOKEN_MAX, "%s", joined);
        } else if (is_one_of(word, negations)) {
            count = add_token(tokens, count, "not", TOKEN_NEGATION);
        } else if (is_one_of(word, question_words)) {
            count = add_token(tokens, count, word, TOKEN_QUESTION);
        } else if (!is_one_of(word, stop_words)) {
            stem(word);
            count = add_token(tokens, count, fold_synonym(word), TOKEN_WORD);
        }
    }
    return count;
}

int embed_normalise(const char *text, size_t length, buf_t *out)
{
    token_t *tokens = malloc(TOKENS_MAX * sizeof *tokens);
    if (tokens == NULL)
        return -1;
    size_t count = tokenize(text, length, tokens);
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (i > 0)
            rc = buf_append_char(out, ' ');
        if (rc == 0)
            rc = buf_append_str(out, tokens[i].text);
    }
    free(tokens);
    return rc == 0 ? (int)count : -1;
}

/* ---- features -------------------------------------------------------------- */

static const float WEIGHT_WORD = 1.0f;
static const float WEIGHT_NUMBER = 2.5f;
static const float WEIGHT_NEGATION = 2.0f;
static const float WEIGHT_QUESTION = 0.6f;
static const float WEIGHT_BIGRAM = 0.6f;
static const float WEIGHT_TRIGRAMS_PER_WORD = 0.7f; /* L2 norm of one word's trigram block */

static uint64_t fnv1a(uint64_t hash, const void *data, size_t length)
{
    const unsigned char *bytes = data;
    for (size_t i = 0; i < length; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ull;
    }
    return hash;
}

static void add_feature(float *out, int dim, char kind, const char *a, size_t a_length, const char *b,
                        size_t b_length, float weight)
{
    uint64_t hash = fnv1a(0xcbf29ce484222325ull, &kind, 1);
    hash = fnv1a(hash, a, a_length);
    if (b != NULL) {
        hash = fnv1a(hash, "\x1f", 1);
        hash = fnv1a(hash, b, b_length);
    }
    hash ^= hash >> 29; /* FNV's low bits mix poorly: fold the high bits in */
    hash *= 0xbf58476d1ce4e5b9ull;
    hash ^= hash >> 32;
    size_t index = (size_t)(hash % (uint64_t)dim);
    out[index] += (hash >> 63) ? -weight : weight; /* signed: collisions cancel on average */
}

static float token_weight(const token_t *token)
{
    switch (token->kind) {
    case TOKEN_NUMBER: return WEIGHT_NUMBER;
    case TOKEN_NEGATION: return WEIGHT_NEGATION;
    case TOKEN_QUESTION: return WEIGHT_QUESTION;
    case TOKEN_WORD: break;
    }
    return WEIGHT_WORD;
}

int embed_builtin(const char *text, size_t length, float *out, int dim)
{
    if (dim <= 0 || dim > EMBED_MAX_DIM || dim % 32 != 0)
        return -1;
    memset(out, 0, (size_t)dim * sizeof *out);
    token_t *tokens = malloc(TOKENS_MAX * sizeof *tokens);
    if (tokens == NULL)
        return -1;
    size_t count = tokenize(text, length, tokens);
    for (size_t i = 0; i < count; i++) {
        const token_t *token = &tokens[i];
        size_t token_length = strlen(token->text);
        add_feature(out, dim, 'w', token->text, token_length, NULL, 0, token_weight(token));
        if (i + 1 < count) {
            const token_t *next = &tokens[i + 1];
            add_feature(out, dim, 'b', token->text, token_length, next->text, strlen(next->text), WEIGHT_BIGRAM);
        }
        if (token->kind != TOKEN_WORD || token_length < 3)
            continue;
        /* trigrams of "<word>" */
        char padded[TOKEN_MAX + 2];
        size_t padded_length = (size_t)snprintf(padded, sizeof padded, "<%s>", token->text);
        if (padded_length >= sizeof padded)
            padded_length = sizeof padded - 1;
        size_t grams = padded_length - 2;
        float weight = WEIGHT_TRIGRAMS_PER_WORD / sqrtf((float)grams);
        for (size_t g = 0; g < grams; g++)
            add_feature(out, dim, 'c', padded + g, 3, NULL, 0, weight);
    }
    free(tokens);
    double norm = 0;
    for (int i = 0; i < dim; i++)
        norm += (double)out[i] * out[i];
    if (count == 0 || norm <= 0) {
        memset(out, 0, (size_t)dim * sizeof *out);
        return -1;
    }
    float scale = (float)(1.0 / sqrt(norm));
    for (int i = 0; i < dim; i++)
        out[i] *= scale;
    return 0;
}

/* ---- provider embedder ----------------------------------------------------- */

enum { EMBED_MAX_RESPONSE_BYTES = 8 << 20 };

/* Owner: itself; freed when done has been called or the call is cancelled. */
struct embed_call {
    worker_t *worker;
    CURL *easy;
    struct curl_slist *headers;
    char *url;
    char *body;
    buf_t response;
    embed_done_t done;
    void *argument;
};

static void call_free(embed_call_t *call)
{
    if (call->easy != NULL)
        upstream_pool_release(call->worker->pool, call->easy);
    curl_slist_free_all(call->headers);
    free(call->url);
    free(call->body);
    buf_free(&call->response);
    free(call);
}

static size_t on_embed_body(char *data, size_t size, size_t count, void *argument)
{
    embed_call_t *call = argument;
    size_t length = size * count;
    if (call->response.length + length > EMBED_MAX_RESPONSE_BYTES || buf_append(&call->response, data, length) != 0)
        return 0;
    return length;
}

static void on_embed_done(void *argument, CURLcode result)
{
    embed_call_t *call = argument;
    long status = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    const char *failure = NULL;
    float *vector = NULL;
    int dim = 0;
    json_t *root = NULL;
    if (result != CURLE_OK)
        failure = result == CURLE_OPERATION_TIMEDOUT ? "embedding timeout" : "embedding provider unreachable";
    else if (status != 200)
        failure = "embedding provider error status";
    else if ((root = json_loadb(call->response.data ? call->response.data : "", call->response.length, 0, NULL)) ==
             NULL)
        failure = "embedding response is not JSON";
    if (failure == NULL) {
        const json_t *values =
            json_object_get(json_array_get(json_object_get(root, "data"), 0), "embedding");
        size_t size = json_array_size(values);
        if (size == 0 || size > EMBED_MAX_DIM || (vector = malloc(size * sizeof *vector)) == NULL) {
            failure = "embedding response has no usable vector";
        } else {
            double norm = 0;
            for (size_t i = 0; i < size && failure == NULL; i++) {
                const json_t *value = json_array_get(values, i);
                if (!json_is_number(value))
                    failure = "embedding response has a non-number";
                else
                    vector[i] = (float)json_number_value(value);
                norm += (double)vector[i] * vector[i];
            }
            if (failure == NULL && norm <= 0)
                failure = "embedding is all zero";
            for (size_t i = 0; i < size && failure == NULL; i++)
                vector[i] = (float)(vector[i] / sqrt(norm));
            dim = (int)size;
        }
    }
    call->done(call->argument, failure ? NULL : vector, failure ? 0 : dim, failure);
    free(vector);
    json_decref(root);
    call_free(call);
}

embed_call_t *embed_provider_start(worker_t *worker, const provider_config_t *provider, const char *model,
                                   const char *text, size_t length, long timeout_ms, embed_done_t done,
                                   void *argument)
{
    embed_call_t *call = calloc(1, sizeof *call);
    if (call == NULL)
        return NULL;
    call->worker = worker;
    call->done = done;
    call->argument = argument;
    buf_init(&call->response);
    json_t *request = json_pack("{s:s, s:s%}", "model", model, "input", text, length);
    call->body = request ? json_dumps(request, JSON_COMPACT) : NULL;
    json_decref(request);
    size_t url_length = strlen(provider->base_url) + sizeof "/embeddings";
    call->url = malloc(url_length);
    if (call->body == NULL || call->url == NULL) {
        call_free(call);
        return NULL;
    }
    snprintf(call->url, url_length, "%s/embeddings", provider->base_url);
    struct curl_slist *headers = curl_slist_append(NULL, "content-type: application/json");
    if (headers != NULL && provider->api_key != NULL && provider->api_key[0] != '\0') {
        buf_t line;
        buf_init(&line);
        struct curl_slist *more = buf_printf(&line, "authorization: Bearer %s", provider->api_key) == 0
                                      ? curl_slist_append(headers, line.data)
                                      : NULL;
        if (line.data != NULL)
            explicit_bzero(line.data, line.length);
        buf_free(&line);
        if (more == NULL) {
            curl_slist_free_all(headers);
            headers = NULL;
        }
    }
    call->headers = headers;
    call->easy = headers ? upstream_pool_acquire(worker->pool) : NULL;
    if (call->easy == NULL) {
        call_free(call);
        return NULL;
    }
    CURL *easy = call->easy;
    curl_easy_setopt(easy, CURLOPT_URL, call->url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(call->body));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_embed_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    int workers = worker->worker_count > 0 ? worker->worker_count : 1;
    int limit = (provider->max_connections + workers - 1) / workers;
    if (upstream_pool_add(worker->pool, easy, provider->name, limit > 0 ? limit : 1, on_embed_done, call) != 0) {
        call_free(call);
        return NULL;
    }
    return call;
}

void embed_call_cancel(embed_call_t *call)
{
    if (call == NULL)
        return;
    upstream_pool_remove(call->worker->pool, call->easy);
    call_free(call);
}
