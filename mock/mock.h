/* mock.h — the shared surface of sluice-mock, the fake LLM provider.
 *
 * sluice-mock impersonates OpenAI, Azure OpenAI, Anthropic, Gemini and Bedrock over HTTP so
 * the gateway can be tested and benchmarked without the network. Each incoming request is
 * described by one mock_call_t (built by the dispatcher in mock.c, lives on its stack for the
 * duration of the evhttp callback). A provider handler reads the call, renders the whole answer
 * up front (a body, or a list of stream frames) and hands it to the exchange (mock_exchange.c),
 * which owns the timing: delays, chunk pacing, injected errors, resets and hangs. */
#ifndef SLUICE_MOCK_H
#define SLUICE_MOCK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evhttp_request;
struct event_base;
struct evbuffer;

/* Behaviour knobs. Defaults come from the command line; each request may override them with
 * directives in its model name (`model@k=v,k=v`) or its last user message (`@mock k=v k=v`).
 * Counters set to -1 are "off". Owned by the call; reply/tool_call are heap strings. */
typedef struct mock_directives {
    int status;          /* HTTP status to answer with; 200 = normal reply */
    int retry_after;     /* seconds for retry-after; -1 = default (1 s on 429, absent otherwise) */
    int delay_ms;        /* before the status line */
    int chunks;          /* content pieces in a stream */
    int chunk_delay_ms;  /* between content pieces */
    int words;           /* reply length in words */
    int error_after;     /* stream: in-stream error event after N content pieces */
    int reset_after;     /* stream: TCP reset after N content pieces */
    int hang_after;      /* stream: go silent after N content pieces */
    bool is_hang;        /* never answer at all */
    bool has_usage;      /* usage=0 clears it */
    int embed_dim;       /* embedding length; 0 = the request's or the default */
    char *reply;         /* exact reply text, or NULL */
    char *tool_call;     /* function to call, or NULL */
    char finish[48];     /* finish/stop reason override, or "" */
    char quirk[16];      /* OpenAI routes: emulate a compatible server (mistral, groq, …), or "" */
} mock_directives_t;

/* Process-wide settings, written once by main before the workers start, then read-only. */
typedef struct mock_options {
    char host[256];
    int port;
    int threads;
    mock_directives_t defaults;
    const char *require_key;
    const char *aws_access_key_id;
    const char *aws_secret_access_key;
    int embed_dim;
    bool is_quiet;
    bool is_recording;
} mock_options_t;

extern mock_options_t mock_options;

typedef enum mock_provider {
    MOCK_OPENAI,
    MOCK_AZURE,
    MOCK_ANTHROPIC,
    MOCK_GEMINI,
    MOCK_BEDROCK,
} mock_provider_t;

/* One request as the handlers see it. The body points into evhttp's input buffer and is only
 * valid during the callback; anything kept longer is copied by the exchange. */
typedef struct mock_call {
    struct evhttp_request *http;
    struct event_base *base;
    mock_provider_t provider;
    const char *method;
    char *path;            /* raw (still percent-encoded) path, no query; heap */
    char *query;           /* raw query string without '?', or NULL; heap */
    const char *body;
    size_t body_length;
    json_t *json;          /* parsed body, or NULL when absent or not JSON */
    mock_directives_t directives;
} mock_call_t;

/* ---- mock_directives.c ---- */
void mock_directives_init(mock_directives_t *directives, const mock_directives_t *defaults);
void mock_directives_free(mock_directives_t *directives);
/* Applies `key=value` pairs separated by any of `separators`; unknown keys are ignored. */
void mock_directives_apply(mock_directives_t *directives, const char *text, size_t length, const char *separators);
/* Splits `model@k=v,...`: applies the directives and returns the bare model name (heap). */
char *mock_directives_from_model(mock_directives_t *directives, const char *model);
/* Applies the directives after an `@mock` token in a user message, if any. */
void mock_directives_from_text(mock_directives_t *directives, const char *text);
/* Percent-decodes (and '+' stays '+'); returns a heap string. */
char *mock_percent_decode(const char *text, size_t length);
/* The value of `name` in a raw query string, decoded (heap), or NULL. */
char *mock_query_param(const char *query, const char *name);

/* ---- mock_text.c: deterministic content ---- */
/* The reply text: `mock reply to: <first 40 chars>` + filler up to `words` words, or `reply=`. */
char *mock_text_reply(const char *last_user_text, const mock_directives_t *directives);
int mock_text_count_words(const char *text);
int mock_text_tokens_for_chars(size_t characters);
/* Splits text into at most `pieces` non-empty parts on UTF-8 boundaries, or one part per word
 * when pieces <= 0; fills `ends` with the end offset of each part and returns the number of
 * parts. `ends` needs mock_text_split_capacity() entries. */
size_t mock_text_split_capacity(const char *text, int pieces);
int mock_text_split(const char *text, int pieces, size_t *ends);
/* Arguments for a mock tool call from a JSON-schema `parameters` object (may be NULL). */
json_t *mock_text_tool_arguments(const json_t *parameters, const char *last_user_text);
/* Fills `vector` with a deterministic unit-length embedding of text (hashed trigrams). */
void mock_text_embedding(const char *text, size_t length, float *vector, int dimensions);
json_t *mock_text_embedding_json(const char *text, int dimensions, bool is_base64);
/* A fresh id such as `chatcmpl-1a2b3c...` (heap). */
char *mock_text_id(const char *prefix);
/* Appends piece to the malloc'ed *text (*length bytes), space-separated; on
 * out of memory the text stays as it was. */
void mock_text_append(const char *piece, char **text, size_t *length);

/* What the model "says": built once per call by mock_answer_build, rendered by each provider. */
typedef struct mock_answer {
    char *model;          /* reported model name (directives stripped) */
    char *text;           /* reply text, or NULL for a tool call */
    char *tool_name;      /* function called, or NULL */
    char *tool_id;        /* e.g. call_..., toolu_..., tooluse_... */
    char *tool_arguments; /* JSON object text */
    int prompt_tokens;
    int completion_tokens;
} mock_answer_t;

/* tool_name/tool_parameters: the tool to call (NULL = reply with text). Returns 0 or -1. */
int mock_answer_build(mock_answer_t *answer, const mock_directives_t *directives, const char *last_user_text,
                      size_t prompt_characters, const char *tool_name, const json_t *tool_parameters,
                      const char *tool_id_prefix);
void mock_answer_free(mock_answer_t *answer);

/* ---- mock_exchange.c: answering, with the timing the directives ask for ---- */
typedef enum mock_frame_kind {
    MOCK_FRAME_PLAIN,    /* framing (role chunk, block starts, pings): sent without pacing */
    MOCK_FRAME_CONTENT,  /* one content piece: paced and counted by the *_after directives */
} mock_frame_kind_t;

typedef struct mock_frames mock_frames_t;

mock_frames_t *mock_frames_new(void);
void mock_frames_free(mock_frames_t *frames);
int mock_frames_add(mock_frames_t *frames, mock_frame_kind_t kind, const void *bytes, size_t length);
/* Adds `[event: NAME<eol>]data: JSON<eol><eol>`; steals `data`. */
int mock_frames_add_sse(mock_frames_t *frames, mock_frame_kind_t kind, const char *event_name, json_t *data,
                        const char *eol);
/* Frames added from now on are the trailer (finish, usage, end marker). */
void mock_frames_begin_trailer(mock_frames_t *frames);
/* What error_after sends instead of the rest of the stream. */
int mock_frames_set_error(mock_frames_t *frames, const void *bytes, size_t length);

void mock_reply_bytes(mock_call_t *call, int status, const char *content_type, const void *body, size_t length);
/* Steals `body`. */
void mock_reply_json(mock_call_t *call, int status, json_t *body);
/* Steals `frames`; status 200. */
void mock_reply_stream(mock_call_t *call, const char *content_type, mock_frames_t *frames);
/* A provider-shaped error body for `status` (and retry-after where due). */
void mock_reply_error(mock_call_t *call, int status, const char *message);
/* Answers with the `status=` directive's error if one is set; returns true when it did. */
bool mock_reply_directed_error(mock_call_t *call);
void mock_add_header(mock_call_t *call, const char *name, const char *value);
const char *mock_header(const mock_call_t *call, const char *name);

/* ---- mock_record.c: /mock/requests and /mock/stats ---- */
void mock_record_init(void);
/* Frees what was recorded; called after the workers have stopped. */
void mock_record_shutdown(void);
void mock_record_request(struct evhttp_request *http, const char *body, size_t length);
void mock_record_status(int status);
void mock_record_stream_opened(void);
void mock_record_stream_closed(void);
void mock_record_serve(struct evhttp_request *http, const char *path);

/* ---- provider handlers: each answers the call (possibly later) ---- */
/* kind is the last path part: "chat/completions", "completions", "embeddings", "models" */
void mock_openai_handle(mock_call_t *call, const char *kind, const char *deployment);
json_t *mock_openai_error_body(int status, const char *message);
void mock_anthropic_handle(mock_call_t *call);
void mock_anthropic_models(mock_call_t *call);
json_t *mock_anthropic_error_body(int status, const char *message);
/* method is e.g. "generateContent"; model is the decoded path model */
void mock_gemini_handle(mock_call_t *call, const char *model, const char *method);
void mock_gemini_models(mock_call_t *call);
json_t *mock_gemini_error_body(int status, const char *message);
/* action is "converse", "converse-stream" or "invoke"; model_id is the decoded path segment */
void mock_bedrock_handle(mock_call_t *call, const char *model_id, const char *action);
const char *mock_bedrock_error_type(int status);

/* ---- mock_eventstream.c: application/vnd.amazon.eventstream ---- */
uint32_t mock_crc32(uint32_t crc, const void *bytes, size_t length);
/* Appends one frame with string headers `:message-type`, `:event-type` or `:exception-type`
 * (per message_type) and `:content-type: application/json`. */
int mock_eventstream_frame(struct evbuffer *out, const char *message_type, const char *type_name,
                           const char *payload, size_t payload_length);

/* ---- mock_sigv4.c ---- */
/* Verifies an AWS SigV4 Authorization header against the configured credentials. Returns 0 when
 * valid; else the HTTP status to answer, with the AWS error type and a message filled in. */
int mock_sigv4_verify(const mock_call_t *call, const char *access_key_id, const char *secret_access_key,
                      char *error_type, size_t error_type_size, char *message, size_t message_size);

#endif
