/* anthropic_in.h — the Anthropic Messages API as a client-facing format.
 *
 * Claude clients (ANTHROPIC_BASE_URL) call POST /v1/messages. The request is
 * translated into the internal OpenAI chat form at the parse stage, travels the
 * same pipeline to any provider, and the reply — complete body, stream or
 * error — is translated back into Anthropic's wire format by request.c just
 * before it is written to the client (request->is_anthropic_api). Errors on
 * this endpoint are Anthropic-shaped ({"type":"error","error":{...}}), so the
 * official SDK raises its own error classes with the right status. */
#ifndef SLUICE_ANTHROPIC_IN_H
#define SLUICE_ANTHROPIC_IN_H

#include <jansson.h>
#include <stddef.h>

#include "sluice/request.h"
#include "sluice/util/buf.h"

/* Translates an Anthropic Messages request body into an OpenAI chat request
 * (a new reference in *openai_body). Returns 0, or -1 with a client-facing
 * message and the offending parameter path (e.g. "messages[0].role"); an
 * empty message means out of memory. */
int anthropic_in_request(const json_t *anthropic_body, json_t **openai_body, char *message, size_t message_size,
                         char *param, size_t param_size);

/* Translates a complete OpenAI chat.completion body into an Anthropic message
 * body appended to out. Returns 0 or -1. */
int anthropic_in_response(request_t *request, const char *openai_body, size_t length, buf_t *out);

/* An Anthropic error body {"type":"error","error":{"type","message"}} for an
 * HTTP status, appended to out. Returns 0 or -1. */
int anthropic_in_error(int status, const char *message, buf_t *out);

/* Per-stream encoder state; owner: the request (request->client_stream). */
typedef struct anthropic_in_stream anthropic_in_stream_t;

anthropic_in_stream_t *anthropic_in_stream_new(void);
void anthropic_in_stream_free(anthropic_in_stream_t *stream);
/* Consumes OpenAI SSE bytes (events may be cut anywhere: "data: {...}\n\n",
 * "data: [DONE]\n\n", or an error event) and appends the Anthropic events they
 * become (message_start, content_block_start/delta/stop, message_delta,
 * message_stop, error) to out. Returns 0 or -1. */
int anthropic_in_stream_encode(anthropic_in_stream_t *stream, request_t *request, const char *bytes, size_t length,
                               buf_t *out);
/* The stream is closing: if it ended neither with [DONE] nor an error, appends
 * an error event so the client knows the message is incomplete. */
int anthropic_in_stream_finish(anthropic_in_stream_t *stream, request_t *request, buf_t *out);

#endif
