/* request.c — request context lifecycle and the replies (see request.h).
 *
 * Replies are the one place where an outcome becomes HTTP: a status, an
 * OpenAI-shaped body and the x-sluice-* headers. Every function here checks
 * whether the client is still connected, because a client may disconnect at
 * any moment and evhttp frees its request object when it does. */
#include "sluice/request.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/anthropic_in.h"
#include "sluice/pipeline.h"
#include "sluice/util/buf.h"
#include "sluice/util/clock.h"
#include "sluice/worker.h"

static void stop_watching_client(request_t *request)
{
    if (request->client_watch != NULL) {
        event_free(request->client_watch);
        request->client_watch = NULL;
    }
}

/* evhttp stops reading a connection once it has read a request, so it would
 * not notice a client that hangs up while we wait for the upstream; a
 * non-streaming call would then run (and be paid for) to its end. We watch the
 * socket ourselves and peek: end-of-file means the client has gone. */
static void on_client_readable(evutil_socket_t fd, short what, void *argument)
{
    (void)what;
    request_t *request = argument;
    char byte;
    ssize_t got = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(request->client_watch, NULL);
        return;
    }
    stop_watching_client(request);
    if (got > 0 || request->connection == NULL)
        return; /* a pipelined request: the client is alive, evhttp will read it later */
    /* Freeing the connection runs on_client_close, which ends the request. */
    evhttp_connection_free(request->connection);
}

static void watch_client(request_t *request)
{
    struct bufferevent *events = request->connection ? evhttp_connection_get_bufferevent(request->connection) : NULL;
    evutil_socket_t fd = events ? bufferevent_getfd(events) : -1;
    if (fd < 0)
        return;
    request->client_watch = event_new(request->worker->base, fd, EV_READ, on_client_readable, request);
    if (request->client_watch != NULL && event_add(request->client_watch, NULL) != 0)
        stop_watching_client(request);
}

static void on_client_close(struct evhttp_connection *connection, void *argument)
{
    (void)connection;
    request_t *request = argument;
    request->is_client_gone = true;
    stop_watching_client(request);
    /* When evhttp itself saw the failure (EOF or a write error mid-reply), it
     * detached our unfinished evhttp_request from the connection instead of
     * freeing it: it is ours to free now. When we freed the connection
     * (client_watch), the request is still attached and evhttp frees it. */
    if (request->http != NULL && evhttp_request_get_connection(request->http) == NULL)
        evhttp_request_free(request->http);
    request->http = NULL;
    request->connection = NULL;
    pipeline_cancel(request); /* the pending stage stops its work; it may finish and free the request */
}

/* A zeroed request context: a spare one of the worker's, or a new one. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLUICE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(SLUICE_ASAN)
enum { KEEPS_SPARE_REQUESTS = 0 }; /* let AddressSanitizer see every use after free */
#else
enum { KEEPS_SPARE_REQUESTS = 1 };
#endif

static request_t *request_alloc(worker_t *worker)
{
    if (KEEPS_SPARE_REQUESTS && worker->spare_request_count > 0) {
        request_t *request = worker->spare_requests[--worker->spare_request_count];
        memset(request, 0, sizeof *request);
        return request;
    }
    return calloc(1, sizeof(request_t));
}

/* "req_" + 16 hex digits of random + 4 of the counter: what
 * snprintf("req_%016llx%04x") printed. */
static void format_request_id(char *id, uint64_t random, unsigned counter)
{
    static const char hex[] = "0123456789abcdef";
    memcpy(id, "req_", 4);
    for (int i = 0; i < 16; i++)
        id[4 + i] = hex[(random >> (60 - 4 * i)) & 0xf];
    for (int i = 0; i < 4; i++)
        id[20 + i] = hex[(counter >> (12 - 4 * i)) & 0xf];
    id[24] = '\0';
}

request_t *request_new(struct worker *worker, struct evhttp_request *http, endpoint_t endpoint)
{
    request_t *request = request_alloc(worker);
    if (request == NULL)
        return NULL;
    arena_init(&request->arena);
    request->worker = worker;
    request->http = http;
    request->connection = evhttp_request_get_connection(http);
    request->config = worker_config(worker);
    request->endpoint = endpoint;
    request->start_us = clock_monotonic_us();
    request->status = 0;
    request->route_index = -1;
    buf_init(&request->attempts);
    buf_init(&request->fallback_reasons);
    format_request_id(request->id, worker_random(worker), (unsigned)(worker->request_counter++ & 0xffff));
    atomic_fetch_add(&worker->in_flight, 1);
    if (request->connection != NULL)
        evhttp_connection_set_closecb(request->connection, on_client_close, request);
    watch_client(request);
    request_add_header(request, "x-sluice-request-id", request->id);
    request->user = arena_strdup(&request->arena, request_header(request, "x-sluice-user"));
    request->feature = arena_strdup(&request->arena, request_header(request, "x-sluice-feature"));
    request->tags = arena_strdup(&request->arena, request_header(request, "x-sluice-tags"));
    return request;
}

request_t *request_new_shadow(const request_t *parent, const char *model)
{
    request_t *request = request_alloc(parent->worker);
    if (request == NULL)
        return NULL;
    arena_init(&request->arena);
    buf_init(&request->attempts);
    buf_init(&request->fallback_reasons);
    request->worker = parent->worker;
    request->config = config_ref(parent->config);
    request->endpoint = parent->endpoint;
    request->start_us = clock_monotonic_us();
    request->route_index = -1;
    format_request_id(request->id, worker_random(parent->worker),
                      (unsigned)(parent->worker->request_counter++ & 0xffff));
    request->shadow_of = arena_strdup(&request->arena, parent->id);
    request->model = arena_strdup(&request->arena, model);
    request->route_model = request->model;
    request->user = arena_strdup(&request->arena, parent->user);
    request->feature = arena_strdup(&request->arena, parent->feature);
    request->tags = arena_strdup(&request->arena, parent->tags);
    request->key = parent->key;
    request->is_stream = parent->is_stream;
    request->client_wants_usage = parent->client_wants_usage;
    request->bytes_in = parent->bytes_in;
    request->body = json_deep_copy(parent->body);
    atomic_fetch_add(&request->worker->in_flight, 1);
    if (request->body == NULL || request->model == NULL) {
        request_free(request);
        return NULL;
    }
    return request;
}

void request_free(request_t *request)
{
    stop_watching_client(request);
    if (request->connection != NULL)
        evhttp_connection_set_closecb(request->connection, NULL, NULL);
    atomic_fetch_sub(&request->worker->in_flight, 1);
    json_decref(request->body);
    anthropic_in_stream_free(request->client_stream);
    buf_free(&request->attempts);
    buf_free(&request->fallback_reasons);
    config_unref(request->config);
    arena_release(&request->arena);
    worker_t *worker = request->worker;
    if (KEEPS_SPARE_REQUESTS && worker->spare_request_count < (int)(sizeof worker->spare_requests / sizeof worker->spare_requests[0]))
        worker->spare_requests[worker->spare_request_count++] = request;
    else
        free(request);
}

const char *request_endpoint_name(endpoint_t endpoint)
{
    switch (endpoint) {
    case ENDPOINT_CHAT_COMPLETIONS: return "chat.completions";
    case ENDPOINT_COMPLETIONS: return "completions";
    case ENDPOINT_EMBEDDINGS: return "embeddings";
    case ENDPOINT_MODELS: return "models";
    case ENDPOINT_NONE: return "none";
    }
    return "unknown";
}

void request_note_client_gone(request_t *request)
{
    request->status = 499;
    request->error_type = "client_closed";
}

const char *request_cache_outcome_name(cache_outcome_t outcome)
{
    switch (outcome) {
    case CACHE_OUTCOME_HIT: return "hit";
    case CACHE_OUTCOME_MISS: return "miss";
    case CACHE_OUTCOME_NONE:
    case CACHE_OUTCOME_SKIP: break;
    }
    return "skip";
}

const char *request_header(const request_t *request, const char *name)
{
    if (request->http == NULL)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(request->http), name);
}

void request_add_header(request_t *request, const char *name, const char *value)
{
    if (request->http == NULL || value == NULL)
        return;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(request->http);
    /* Replace rather than repeat a header, but look for an old one only when a
     * name with the same hash was added before: evhttp_remove_header walks
     * the list comparing case-insensitively (~600 instructions per header).
     * Output headers of pipeline requests are only ever added here. */
    uint64_t hash = 0;
    for (const char *c = name; *c != '\0'; c++)
        hash = hash * 31 + (unsigned char)(*c | 0x20);
    uint64_t bit = UINT64_C(1) << ((hash * UINT64_C(0x9e3779b97f4a7c15)) >> 58); /* the well-mixed top bits */
    if ((request->added_header_bits & bit) != 0)
        evhttp_remove_header(headers, name);
    request->added_header_bits |= bit;
    evhttp_add_header(headers, name, value);
}

/* Stops watching for the client closing: after the final send, evhttp owns
 * the connection again and the request will be freed. */
static void detach_client(request_t *request)
{
    request->has_replied = true;
    stop_watching_client(request);
    if (request->connection != NULL)
        evhttp_connection_set_closecb(request->connection, NULL, NULL);
    request->connection = NULL;
    if (request->first_byte_us == 0)
        request->first_byte_us = clock_monotonic_us();
}

static void send_body(request_t *request, int status, const char *content_type, const char *body, size_t length)
{
    request->status = status;
    if (request->http == NULL)
        return;
    struct evbuffer *buffer = evbuffer_new();
    if (buffer == NULL || evbuffer_add(buffer, body, length) != 0) {
        if (buffer)
            evbuffer_free(buffer);
        evhttp_send_error(request->http, 500, NULL);
        detach_client(request);
        return;
    }
    request_add_header(request, "content-type", content_type);
    if (request->worker->is_draining)
        request_add_header(request, "connection", "close");
    request->bytes_out += length;
    struct evhttp_request *http = request->http;
    detach_client(request);
    request->http = NULL;
    evhttp_send_reply(http, status, NULL, buffer);
    evbuffer_free(buffer);
}

void request_reply_json(request_t *request, int status, const char *body, size_t length)
{
    if (status >= 200 && status < 300) {
        response_piece_t piece = {.data = body, .length = length, .is_stream = false};
        pipeline_response_data(request, &piece);
        body = piece.data;
        length = piece.length;
    }
    if (!request->is_anthropic_api || status < 200 || status >= 300) {
        send_body(request, status, "application/json", body, length);
        return;
    }
    /* POST /v1/messages: the OpenAI answer goes out as an Anthropic message */
    buf_t translated;
    buf_init(&translated);
    if (anthropic_in_response(request, body, length, &translated) == 0) {
        send_body(request, status, "application/json", translated.data, translated.length);
    } else {
        buf_clear(&translated);
        anthropic_in_error(502, "the upstream answer could not be translated", &translated);
        request->error_type = "upstream_bad_response";
        send_body(request, 502, "application/json", translated.data ? translated.data : "", translated.length);
    }
    buf_free(&translated);
}

/* Removes any provider secret a message might echo. */
static const char *redact(request_t *request, const char *message)
{
    const char *secret = request->provider ? request->provider->api_key : NULL;
    if (secret == NULL || secret[0] == '\0' || strstr(message, secret) == NULL)
        return message;
    buf_t clean;
    buf_init(&clean);
    size_t secret_length = strlen(secret);
    for (const char *p = message; *p != '\0';) {
        const char *hit = strstr(p, secret);
        size_t keep = hit ? (size_t)(hit - p) : strlen(p);
        buf_append(&clean, p, keep);
        if (hit == NULL)
            break;
        buf_append_str(&clean, "[REDACTED]");
        p = hit + secret_length;
    }
    const char *result = arena_strdup(&request->arena, clean.data ? clean.data : "");
    buf_free(&clean);
    return result ? result : "error";
}

static char *error_body(const char *message, const char *type, const char *code, const char *param)
{
    json_t *detail = json_pack("{s:s, s:s, s:o, s:o}", "message", message, "type", type, "param",
                               param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
    json_t *root = detail ? json_pack("{s:o}", "error", detail) : NULL;
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return text;
}

void request_reply_error(request_t *request, int status, const char *type, const char *code, const char *param,
                         const char *format, ...)
{
    char message[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    const char *clean = redact(request, message);
    request->error_type = arena_strdup(&request->arena, type);
    request->error_message = arena_strdup(&request->arena, clean);
    char *body = error_body(clean, type, code, param);
    const char *text = body ? body : "{\"error\":{\"message\":\"internal gateway error\",\"type\":\"api_error\","
                                     "\"param\":null,\"code\":null}}";
    if (request->is_streaming) {
        buf_t event;
        buf_init(&event);
        buf_printf(&event, "data: %s\n\n", text);
        request_stream_write(request, event.data, event.length);
        buf_free(&event);
        request_stream_end(request);
    } else if (request->is_anthropic_api) {
        buf_t anthropic;
        buf_init(&anthropic);
        anthropic_in_error(status, clean, &anthropic);
        send_body(request, status, "application/json", anthropic.data ? anthropic.data : "", anthropic.length);
        buf_free(&anthropic);
    } else {
        request_reply_json(request, status, text, strlen(text));
        request->status = status;
    }
    free(body);
}

void request_stream_start(request_t *request)
{
    request->status = 200;
    request->is_streaming = true;
    if (request->http == NULL)
        return;
    request_add_header(request, "content-type", "text/event-stream");
    request_add_header(request, "cache-control", "no-cache");
    request_add_header(request, "x-accel-buffering", "no");
    if (request->worker->is_draining)
        request_add_header(request, "connection", "close");
    request->first_byte_us = clock_monotonic_us();
    evhttp_send_reply_start(request->http, 200, NULL);
}

static void stream_write_raw(request_t *request, const char *bytes, size_t length)
{
    if (request->http == NULL || length == 0)
        return;
    struct evbuffer *buffer = evbuffer_new();
    if (buffer == NULL)
        return;
    if (evbuffer_add(buffer, bytes, length) == 0) {
        evhttp_send_reply_chunk(request->http, buffer);
        request->bytes_out += length;
    }
    evbuffer_free(buffer);
}

/* POST /v1/messages: OpenAI chunks are re-encoded as Anthropic events. */
void request_stream_write(request_t *request, const char *bytes, size_t length)
{
    response_piece_t piece = {.data = bytes, .length = length, .is_stream = true};
    pipeline_response_data(request, &piece);
    bytes = piece.data;
    length = piece.length;
    if (!request->is_anthropic_api) {
        stream_write_raw(request, bytes, length);
        return;
    }
    if (request->client_stream == NULL && (request->client_stream = anthropic_in_stream_new()) == NULL)
        return;
    buf_t encoded;
    buf_init(&encoded);
    if (anthropic_in_stream_encode(request->client_stream, request, bytes, length, &encoded) == 0)
        stream_write_raw(request, encoded.data, encoded.length);
    buf_free(&encoded);
}

void request_stream_end(request_t *request)
{
    if (request->has_replied)
        return;
    if (request->is_anthropic_api && request->client_stream != NULL) {
        buf_t encoded;
        buf_init(&encoded);
        if (anthropic_in_stream_finish(request->client_stream, request, &encoded) == 0)
            stream_write_raw(request, encoded.data, encoded.length);
        buf_free(&encoded);
    }
    struct evhttp_request *http = request->http;
    detach_client(request);
    request->http = NULL;
    if (http != NULL)
        evhttp_send_reply_end(http);
}
