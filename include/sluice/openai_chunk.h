/* openai_chunk.h — writes OpenAI chat.completion.chunk SSE events.
 *
 * Adapters for providers with other stream formats (Anthropic, Gemini,
 * Bedrock) and the cache's streamed hits produce the client's stream through
 * this one writer, so every synthesised stream has the same shape as
 * OpenAI's: a role chunk first, content / tool-call deltas, a finish chunk,
 * a usage chunk (choices: []) only when the client asked for one, then
 * "data: [DONE]". */
#ifndef SLUICE_OPENAI_CHUNK_H
#define SLUICE_OPENAI_CHUNK_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/request.h"
#include "sluice/util/buf.h"

/* Owner: the adapter's stream state (embed it). Zeroed is a valid start. */
typedef struct openai_chunk_writer {
    char id[72];
    long long created;
    bool has_role; /* the role chunk was sent */
    bool has_finish;
} openai_chunk_writer_t;

/* Sets the id (e.g. "chatcmpl-…" from the provider's message id) and created
 * time; if never called, both are generated on first use. */
void openai_chunk_begin(openai_chunk_writer_t *writer, request_t *request, const char *id);
int openai_chunk_text(openai_chunk_writer_t *writer, request_t *request, const char *text, size_t length,
                      buf_t *out);
/* A tool call's first fragment (index counts tool calls only, from 0). */
int openai_chunk_tool_start(openai_chunk_writer_t *writer, request_t *request, int index, const char *id,
                            const char *name, buf_t *out);
int openai_chunk_tool_arguments(openai_chunk_writer_t *writer, request_t *request, int index, const char *piece,
                                size_t length, buf_t *out);
int openai_chunk_finish(openai_chunk_writer_t *writer, request_t *request, const char *finish_reason, buf_t *out);
/* Appends the usage chunk if the client asked for it (stream_options.include_usage), then [DONE]. */
int openai_chunk_end(openai_chunk_writer_t *writer, request_t *request, buf_t *out);
/* An OpenAI-shaped error event for a failure reported inside the stream. */
int openai_chunk_error(buf_t *out, const char *type, const char *message);

#endif
