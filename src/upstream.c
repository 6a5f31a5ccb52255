/* upstream.c — the upstream stage (see upstream.h). */
#include "sluice/upstream.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/provider.h"
#include "sluice/server.h"
#include "sluice/upstream_pool.h"
#include "sluice/worker.h"

enum {
    MAX_RESPONSE_BYTES = 64 << 20, /* a complete (non-stream) upstream body */
    MAX_EVENT_BYTES = 16 << 20,    /* one SSE event */
};

/* Owner: the request (request->transfer); freed when the transfer ends. */
typedef struct upstream_transfer {
    request_t *request;
    upstream_pool_t *pool;
    const provider_adapter_t *adapter;
    CURL *easy;
    provider_call_t call;
    struct event *timer; /* first byte, then idle gap */
    long status;
    bool has_headers;
    bool is_event_stream;
    bool is_timed_out;
    bool has_stream_error;
    bool has_stream_done;
    char *retry_after; /* request arena */
    buf_t response;    /* complete body (non-stream or error) */
    buf_t out;         /* translated stream bytes from one read */
    sse_parser_t sse;
    void *stream_state; /* the adapter's, stream_state_size bytes */
} upstream_transfer_t;

static void transfer_free(upstream_transfer_t *transfer)
{
    if (transfer->timer != NULL)
        event_free(transfer->timer);
    upstream_pool_release(transfer->pool, transfer->easy);
    curl_slist_free_all(transfer->call.headers);
    free(transfer->call.body);
    buf_free(&transfer->response);
    buf_free(&transfer->out);
    sse_parser_free(&transfer->sse);
    if (transfer->stream_state != NULL && transfer->adapter->free_state != NULL)
        transfer->adapter->free_state(transfer->stream_state);
    free(transfer->stream_state);
    free(transfer);
}

static void arm_timer(upstream_transfer_t *transfer, long milliseconds)
{
    struct timeval delay = {.tv_sec = milliseconds / 1000, .tv_usec = (milliseconds % 1000) * 1000};
    evtimer_add(transfer->timer, &delay);
}

static void add_route_headers(request_t *request)
{
    request_add_header(request, "x-sluice-provider", request->provider->name);
    request_add_header(request, "x-sluice-model", request->upstream_model);
    request_add_header(request, "x-sluice-cache", "skip");
}

/* ---- relaying the reply ------------------------------------------------- */

/* Notes what an adapter said about the stream; returns -1 to abort it. */
static int note_stream_result(upstream_transfer_t *transfer, int result)
{
    if (result == PROVIDER_EVENT_FAILED)
        return -1;
    if (result == PROVIDER_EVENT_ERROR)
        transfer->has_stream_error = true;
    if (result == PROVIDER_EVENT_DONE)
        transfer->has_stream_done = true;
    return 0;
}

static int on_stream_event(void *argument, const sse_event_t *event)
{
    upstream_transfer_t *transfer = argument;
    int result = transfer->adapter->translate_event(transfer->request, transfer->stream_state, event, &transfer->out);
    return note_stream_result(transfer, result);
}

/* Feeds received bytes to the adapter's decoder: its own, or the SSE parser. */
static int feed_stream(upstream_transfer_t *transfer, const char *data, size_t length)
{
    const provider_adapter_t *adapter = transfer->adapter;
    if (adapter->feed_stream != NULL)
        return note_stream_result(transfer, adapter->feed_stream(transfer->request, transfer->stream_state, data,
                                                                 length, &transfer->out));
    return sse_parser_feed(&transfer->sse, data, length, on_stream_event, transfer) == 0 ? 0 : -1;
}

/* The upstream ended cleanly: flush what the decoder holds and what the adapter still owes. */
static void end_stream_decoding(upstream_transfer_t *transfer)
{
    const provider_adapter_t *adapter = transfer->adapter;
    if (adapter->feed_stream == NULL && sse_parser_finish(&transfer->sse, on_stream_event, transfer) != 0)
        return;
    if (!transfer->has_stream_done && !transfer->has_stream_error && adapter->finish_stream != NULL)
        note_stream_result(transfer, adapter->finish_stream(transfer->request, transfer->stream_state,
                                                             &transfer->out));
}

static void flush_stream(upstream_transfer_t *transfer)
{
    if (transfer->out.length > 0) {
        request_stream_write(transfer->request, transfer->out.data, transfer->out.length);
        buf_clear(&transfer->out);
    }
}

static void start_stream(upstream_transfer_t *transfer)
{
    request_t *request = transfer->request;
    add_route_headers(request);
    request_stream_start(request);
}

static size_t on_header(char *line, size_t size, size_t count, void *argument)
{
    upstream_transfer_t *transfer = argument;
    size_t length = size * count;
    if (length > 13 && strncasecmp(line, "content-type:", 13) == 0) {
        const char *value = line + 13;
        while (*value == ' ')
            value++;
        transfer->is_event_stream = strncasecmp(value, "text/event-stream", 17) == 0;
    } else if (length > 12 && strncasecmp(line, "retry-after:", 12) == 0) {
        size_t start = 12, end = length;
        while (start < end && line[start] == ' ')
            start++;
        while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' '))
            end--;
        transfer->retry_after = arena_strndup(&transfer->request->arena, line + start, end - start);
    }
    return length;
}

static void on_first_byte(upstream_transfer_t *transfer)
{
    request_t *request = transfer->request;
    transfer->has_headers = true;
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &transfer->status);
    bool is_stream_reply = transfer->adapter->feed_stream != NULL || transfer->is_event_stream;
    if (transfer->status >= 200 && transfer->status < 300 && is_stream_reply && request->is_stream)
        start_stream(transfer);
}

static size_t on_body(char *data, size_t size, size_t count, void *argument)
{
    upstream_transfer_t *transfer = argument;
    request_t *request = transfer->request;
    size_t length = size * count;
    if (request->is_client_gone)
        return 0; /* aborts the transfer */
    if (!transfer->has_headers)
        on_first_byte(transfer);
    arm_timer(transfer, request->provider->timeouts.idle_ms);
    if (!request->is_streaming) {
        if (transfer->response.length + length > MAX_RESPONSE_BYTES || buf_append(&transfer->response, data, length))
            return 0;
        return length;
    }
    int rc = feed_stream(transfer, data, length);
    flush_stream(transfer);
    return rc == 0 ? length : 0;
}

/* ---- ending the transfer ------------------------------------------------ */

static void reply_transport_error(upstream_transfer_t *transfer, CURLcode result)
{
    request_t *request = transfer->request;
    add_route_headers(request);
    const char *name = request->provider->name;
    if (transfer->is_timed_out || result == CURLE_OPERATION_TIMEDOUT) {
        const char *what = transfer->is_timed_out ? (transfer->has_headers ? "idle gap" : "first byte") : "total";
        request_reply_error(request, 504, "upstream_timeout", "upstream_timeout", NULL,
                            "upstream provider %s timed out (%s timeout)", name, what);
    } else if (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST ||
               result == CURLE_SSL_CONNECT_ERROR) {
        request_reply_error(request, 502, "upstream_error", "upstream_unreachable", NULL,
                            "cannot connect to upstream provider %s: %s", name, curl_easy_strerror(result));
    } else {
        request_reply_error(request, 502, "upstream_error", "upstream_failed", NULL,
                            "upstream provider %s failed: %s", name, curl_easy_strerror(result));
    }
}

static void finish_stream(upstream_transfer_t *transfer, CURLcode result)
{
    request_t *request = transfer->request;
    if (result == CURLE_OK && !transfer->is_timed_out) {
        end_stream_decoding(transfer);
        flush_stream(transfer);
        if (transfer->has_stream_error)
            request->error_type = "upstream_stream_error";
        request_stream_end(request);
        return;
    }
    flush_stream(transfer);
    reply_transport_error(transfer, result); /* as a final error event */
    request->status = 200;                   /* what the client saw */
}

static void finish_complete_body(upstream_transfer_t *transfer)
{
    request_t *request = transfer->request;
    add_route_headers(request);
    if (transfer->retry_after != NULL)
        request_add_header(request, "retry-after", transfer->retry_after);
    if (transfer->status < 200 || transfer->status >= 300) {
        provider_error_t error;
        transfer->adapter->translate_error(request, transfer->status, transfer->response.data,
                                           transfer->response.length, &error);
        request_reply_error(request, error.status, error.type, error.code, error.param, "%s", error.message);
        return;
    }
    buf_t translated;
    buf_init(&translated);
    bool is_unchanged = false;
    if (transfer->adapter->translate_response(request, transfer->response.data, transfer->response.length,
                                              &translated, &is_unchanged) != 0) {
        buf_free(&translated);
        request_reply_error(request, 502, "upstream_error", "upstream_bad_response", NULL,
                            "upstream provider %s sent a response that is not valid JSON", request->provider->name);
        return;
    }
    request->cost_usd = usage_cost_usd(request->config, request->upstream_model, &request->usage, &request->is_priced);
    char cost[32];
    snprintf(cost, sizeof cost, "%.8f", request->cost_usd);
    if (request->is_priced)
        request_add_header(request, "x-sluice-cost-usd", cost);
    const buf_t *body = is_unchanged ? &transfer->response : &translated;
    request_reply_json(request, 200, body->data ? body->data : "", body->length);
    buf_free(&translated);
}

static void transfer_done(void *argument, CURLcode result)
{
    upstream_transfer_t *transfer = argument;
    request_t *request = transfer->request;
    evtimer_del(transfer->timer);
    if (!transfer->has_headers)
        curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &transfer->status);
    if (request->is_client_gone) {
        request->status = 499;
        request->error_type = "client_closed";
    } else if (request->is_streaming) {
        finish_stream(transfer, result);
    } else if (result != CURLE_OK || transfer->is_timed_out) {
        reply_transport_error(transfer, result);
    } else {
        finish_complete_body(transfer);
    }
    request->cost_usd = usage_cost_usd(request->config, request->upstream_model, &request->usage, &request->is_priced);
    request->transfer = NULL;
    transfer_free(transfer);
    pipeline_resume(request, STAGE_RESPONDED);
}

static void on_timeout(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    upstream_transfer_t *transfer = argument;
    transfer->is_timed_out = true;
    upstream_pool_remove(transfer->pool, transfer->easy);
    transfer_done(transfer, CURLE_OPERATION_TIMEDOUT);
}

void upstream_cancel(request_t *request)
{
    upstream_transfer_t *transfer = request->transfer;
    if (transfer == NULL)
        return;
    upstream_pool_remove(transfer->pool, transfer->easy);
    transfer_done(transfer, CURLE_ABORTED_BY_CALLBACK);
}

/* ---- starting the transfer ---------------------------------------------- */

static void configure_easy(upstream_transfer_t *transfer)
{
    CURL *easy = transfer->easy;
    const provider_timeouts_t *timeouts = &transfer->request->provider->timeouts;
    curl_easy_setopt(easy, CURLOPT_URL, transfer->call.url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->call.body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)transfer->call.body_length);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->call.headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeouts->connect_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeouts->total_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
}

static stage_result_t upstream_on_request(request_t *request)
{
    const provider_adapter_t *adapter = provider_adapter_for(request->provider->type);
    upstream_transfer_t *transfer = calloc(1, sizeof *transfer);
    if (adapter == NULL || transfer == NULL) {
        free(transfer);
        return STAGE_ERROR;
    }
    transfer->request = request;
    transfer->adapter = adapter;
    transfer->pool = request->worker->pool;
    buf_init(&transfer->response);
    buf_init(&transfer->out);
    sse_parser_init(&transfer->sse, MAX_EVENT_BYTES);
    if (adapter->stream_state_size > 0 && (transfer->stream_state = calloc(1, adapter->stream_state_size)) == NULL) {
        transfer_free(transfer);
        return STAGE_ERROR;
    }
    transfer->easy = upstream_pool_acquire(transfer->pool);
    transfer->timer = evtimer_new(request->worker->base, on_timeout, transfer);
    int built = transfer->easy && transfer->timer ? adapter->build_call(request, &transfer->call) : -1;
    if (built != 0) {
        transfer_free(transfer);
        return built == PROVIDER_CALL_REJECTED ? STAGE_RESPONDED : STAGE_ERROR;
    }
    configure_easy(transfer);
    const provider_config_t *provider = request->provider;
    int workers = request->worker->server->worker_count;
    int limit = (provider->max_connections + workers - 1) / workers; /* the provider's share on this worker */
    if (upstream_pool_add(transfer->pool, transfer->easy, provider->name, limit, transfer_done, transfer) != 0) {
        transfer_free(transfer);
        return STAGE_ERROR;
    }
    request->transfer = transfer;
    arm_timer(transfer, request->provider->timeouts.first_byte_ms);
    return STAGE_PENDING;
}

const stage_t stage_upstream = {.name = "upstream", .on_request = upstream_on_request, .on_complete = NULL};
