/* provider.h — the adapter interface every provider implements.
 *
 * The gateway's internal form is the OpenAI wire format. An adapter turns
 * the internal request into the provider's HTTP call, and the provider's
 * reply — a complete body, an event stream read piece by piece, or an
 * error — back into OpenAI form. Adapters never buffer a whole stream: each
 * upstream event becomes zero or more OpenAI SSE events as it arrives. */
#ifndef SLUICE_PROVIDER_H
#define SLUICE_PROVIDER_H

#include <curl/curl.h>
#include <stdbool.h>

#include "sluice/request.h"
#include "sluice/sse.h"
#include "sluice/util/buf.h"

/* Owner: the upstream transfer that made it. */
typedef struct provider_call {
    const char *url;            /* request arena */
    struct curl_slist *headers; /* freed with curl_slist_free_all, unless are_headers_shared */
    bool are_headers_shared;    /* headers belong to the config snapshot: neither free nor append to them */
    char *body;                 /* malloc'ed */
    size_t body_length;
} provider_call_t;

/* Reply headers an adapter may need to map an error, captured by the
 * upstream transfer. Owner: the transfer; strings in the request arena. */
typedef struct provider_reply_headers {
    const char *error_type; /* x-amzn-errortype (Bedrock's error kind), NULL when absent */
} provider_reply_headers_t;

typedef struct provider_error {
    const provider_reply_headers_t *reply_headers; /* in: set by the caller, may be NULL */
    int status;
    const char *type;    /* request arena or static */
    const char *code;    /* may be NULL */
    const char *param;   /* may be NULL */
    const char *message; /* request arena or static */
    const char *retry_after; /* seconds, when the body says (Gemini's RetryInfo); NULL = the header's */
} provider_error_t;

enum { PROVIDER_CALL_REJECTED = -2 };

enum { PROVIDER_EVENT_OK = 0, PROVIDER_EVENT_ERROR = 1, PROVIDER_EVENT_DONE = 2, PROVIDER_EVENT_FAILED = -1 };

typedef struct provider_adapter {
    const char *name;
    /* Builds the HTTP call from request->body (OpenAI form), ->upstream_model,
     * ->provider and ->is_stream. Returns 0, -1 on failure (the client gets a
     * 500), or PROVIDER_CALL_REJECTED after answering the client itself with
     * request_reply_error (e.g. 400 for an endpoint or feature the provider
     * does not offer). */
    int (*build_call)(request_t *request, provider_call_t *call);

    /* Streaming. The upstream transfer allocates stream_state_size zeroed bytes
     * of per-stream state for the adapter and frees them (after free_state, if
     * set) when the transfer ends. Exactly one of translate_event (the upstream
     * speaks SSE) and feed_stream (another framing, such as Bedrock's binary
     * event stream) is set. Both append OpenAI SSE bytes ("data: {...}\n\n")
     * to out, record usage in the request, and return PROVIDER_EVENT_OK, _DONE
     * (the stream's end was seen and forwarded), _ERROR (the upstream reported
     * an error; out holds an OpenAI error event) or _FAILED (malformed or out of
     * memory: the transfer is aborted). */
    size_t stream_state_size;
    int (*translate_event)(request_t *request, void *state, const sse_event_t *event, buf_t *out);
    int (*feed_stream)(request_t *request, void *state, const char *bytes, size_t length, buf_t *out);
    /* Called when the upstream stream ended cleanly; appends what is still owed
     * (a usage chunk, data: [DONE]) unless _DONE was already returned. May be NULL. */
    int (*finish_stream)(request_t *request, void *state, buf_t *out);
    void (*free_state)(void *state);

    /* Translates a complete 2xx body into an OpenAI response in out, or sets
     * *is_unchanged when the body can be sent as is. Records usage. Returns 0,
     * or -1 when the body is not a valid response. */
    int (*translate_response)(request_t *request, const char *body, size_t length, buf_t *out,
                              bool *is_unchanged);
    /* Maps a non-2xx reply to an OpenAI error with a faithful status. */
    void (*translate_error)(request_t *request, long status, const char *body, size_t length,
                            provider_error_t *error);
} provider_adapter_t;

const provider_adapter_t *provider_adapter_for(provider_type_t type);

/* The model name a translated reply reports: the upstream model that answered
 * (as OpenAI pass-through replies do), else the name the client sent. */
const char *provider_reply_model(const request_t *request);

/* The path an endpoint has under an OpenAI-style base_url, e.g. "/chat/completions". */
const char *provider_openai_path(endpoint_t endpoint);

extern const provider_adapter_t provider_openai; /* providers/openai.c */
extern const provider_adapter_t provider_azure;   /* providers/azure.c */
extern const provider_adapter_t provider_bedrock; /* providers/bedrock.c */
extern const provider_adapter_t provider_anthropic; /* providers/anthropic.c */
extern const provider_adapter_t provider_gemini;    /* providers/gemini.c */

#endif
