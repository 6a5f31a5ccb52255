/* embed.h — text embedders for the semantic cache.
 *
 * builtin: in process, no network, no weights. The text is normalised
 * (case, punctuation, stop words, light stemming, a few synonyms folded,
 * numbers kept whole as distinct tokens, negations kept and marked) and
 * turned into a bag of hashed features — word unigrams, word bigrams and
 * character n-grams inside words — each with its own weight, signed-hashed
 * into dim buckets and L2-normalised. Same text in, same vector out, on any
 * machine (no randomness, no locale).
 *
 * provider: any configured OpenAI-compatible provider's /embeddings endpoint
 * (OpenAI, Ollama, llama.cpp, TEI...), called on the worker's libcurl pool
 * with its own timeout; every failure is reported as a failure so the cache
 * treats the request as a miss. */
#ifndef SLUICE_EMBED_H
#define SLUICE_EMBED_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/util/buf.h"

struct worker;
struct provider_config;

enum { EMBED_BUILTIN_DEFAULT_DIM = 256, EMBED_MAX_DIM = 8192 };

/* Appends the normalised tokens of text to out, separated by single spaces
 * (e.g. "How do I cancel my orders?" → "how cancel order"). Returns the
 * number of tokens, or -1 when out of memory. */
int embed_normalise(const char *text, size_t length, buf_t *out);

/* Writes the builtin embedding of text into out[dim] (dim a multiple of 32,
 * up to EMBED_MAX_DIM). Returns 0, or -1 when the text has no usable token
 * (the vector is then all zero and must not be cached). */
int embed_builtin(const char *text, size_t length, float *out, int dim);

/* Asynchronous provider embedding. done receives the vector (NULL on any
 * failure, with a short reason) and its dimension; the vector is only valid
 * during the call. */
typedef void (*embed_done_t)(void *argument, const float *vector, int dim, const char *failure);
typedef struct embed_call embed_call_t;

/* Starts POST {base_url}/embeddings on worker's pool. Returns the call (pass
 * it to embed_call_cancel if the request ends first) or NULL when it cannot
 * start (done is then not called). */
embed_call_t *embed_provider_start(struct worker *worker, const struct provider_config *provider, const char *model,
                                   const char *text, size_t length, long timeout_ms, embed_done_t done,
                                   void *argument);
/* Stops a call that has not completed; done is not called. */
void embed_call_cancel(embed_call_t *call);

#endif
