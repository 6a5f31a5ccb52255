/* upstream.c — the upstream stage (see upstream.h).
 *
 * A request may take several attempts: the router ordered its candidate
 * targets; an attempt that fails before any byte reached the client — a
 * refused connection, a timeout, a 429 or 5xx (the model's retry_on) — moves
 * on to the next candidate at once, skipping targets whose circuit breaker is
 * open; when all were tried, further passes follow after an exponential
 * backoff with full jitter (honouring retry-after) while the model's retry
 * rounds and deadline allow. Cascade routes also move on when an answer fails
 * the model's checks. Every attempt is recorded for the log and the headers. */
#include "sluice/upstream.h"

#include <event2/event.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sluice/breaker.h"
#include "sluice/cascade.h"
#include "sluice/latency.h"
#include "sluice/log.h"
#include "sluice/openai_chunk.h"
#include "sluice/pipeline.h"
#include "sluice/provider.h"
#include "sluice/router.h"
#include "sluice/upstream_pool.h"
#include "sluice/util/clock.h"
#include "sluice/worker.h"

enum {
    MAX_RESPONSE_BYTES = 64 << 20, /* a complete (non-stream) upstream body */
    MAX_EVENT_BYTES = 16 << 20,    /* one SSE event */
};

/* Why an attempt did not produce an answer; FAILURE_NONE = it did. */
typedef enum {
    FAILURE_NONE,
    FAILURE_CONNECT,
    FAILURE_TIMEOUT,
    FAILURE_429,
    FAILURE_5XX,
    FAILURE_4XX,
} failure_t;

/* Owner: the request (request->transfer); freed when the attempt ends. */
typedef struct upstream_transfer {
    request_t *request;
    upstream_pool_t *pool;
    const provider_adapter_t *adapter;
    CURL *easy;
    provider_call_t call;
    struct event *timer; /* first byte, then idle gap */
    uint64_t start_us;
    uint64_t first_byte_us;
    long status;
    bool has_headers;
    bool is_event_stream;
    bool is_timed_out;
    bool has_stream_error;
    bool has_stream_done;
    char *retry_after; /* request arena */
    provider_reply_headers_t reply_headers;
    buf_t response;    /* complete body (non-stream or error) */
    buf_t out;         /* translated stream bytes from one read */
    sse_parser_t sse;
    void *stream_state; /* the adapter's, stream_state_size bytes */
} upstream_transfer_t;

static stage_result_t start_next_attempt(request_t *request);

static uint64_t now_ms(void) { return clock_monotonic_us() / 1000u; }

static void transfer_free(upstream_transfer_t *transfer)
{
    if (transfer->timer != NULL)
        event_free(transfer->timer);
    upstream_pool_release(transfer->pool, transfer->easy);
    if (!transfer->call.are_headers_shared)
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

/* Milliseconds left before the request's deadline, capped at limit. */
static long within_deadline(const request_t *request, long limit)
{
    if (request->deadline_us == 0)
        return limit;
    uint64_t now = clock_monotonic_us();
    long left = now >= request->deadline_us ? 1 : (long)((request->deadline_us - now) / 1000u) + 1;
    return left < limit ? left : limit;
}

/* ---- attempt records ------------------------------------------------------- */

static void note_attempt(request_t *request, const provider_config_t *provider, const char *model,
                         const char *outcome, double latency_ms)
{
    buf_t *attempts = &request->attempts;
    buf_append_str(attempts, attempts->length ? ",{\"provider\":\"" : "{\"provider\":\"");
    buf_append_json_escaped(attempts, provider->name, strlen(provider->name));
    buf_append_str(attempts, "\",\"model\":\"");
    buf_append_json_escaped(attempts, model, strlen(model));
    buf_append_str(attempts, "\",\"outcome\":\"");
    buf_append_json_escaped(attempts, outcome, strlen(outcome));
    buf_printf(attempts, "\",\"latency_ms\":%.3f}", latency_ms);
}

static void note_fallback(request_t *request, const provider_config_t *provider, const char *model,
                          const char *outcome)
{
    buf_t *reasons = &request->fallback_reasons;
    if (reasons->length)
        buf_append_str(reasons, "; ");
    buf_printf(reasons, "%s/%s: %s", provider->name, model, outcome);
}

static void add_route_headers(request_t *request)
{
    char attempts[16];
    snprintf(attempts, sizeof attempts, "%d", request->attempt_count);
    request_add_header(request, "x-sluice-provider", request->provider->name);
    request_add_header(request, "x-sluice-model", request->upstream_model);
    request_add_header(request, "x-sluice-cache", request_cache_outcome_name(request->cache_outcome));
    request_add_header(request, "x-sluice-attempts", attempts);
    if (request->fallback_reasons.length)
        request_add_header(request, "x-sluice-fallback-reason", request->fallback_reasons.data);
    if (request->experiment != NULL) {
        request_add_header(request, "x-sluice-experiment", request->experiment);
        request_add_header(request, "x-sluice-arm", request->arm);
    }
}

/* ---- relaying the reply ---------------------------------------------------- */

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
        note_stream_result(transfer,
                           adapter->finish_stream(transfer->request, transfer->stream_state, &transfer->out));
}

static void flush_stream(upstream_transfer_t *transfer)
{
    if (transfer->out.length > 0) {
        request_stream_write(transfer->request, transfer->out.data, transfer->out.length);
        buf_clear(&transfer->out);
    }
}

/* A header line's value without the name, spaces and line end (request arena). */
static char *header_value(request_t *request, const char *line, size_t length, size_t name_length)
{
    size_t start = name_length, end = length;
    while (start < end && line[start] == ' ')
        start++;
    while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' '))
        end--;
    return arena_strndup(&request->arena, line + start, end - start);
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
        transfer->retry_after = header_value(transfer->request, line, length, 12);
    } else if (length > 17 && strncasecmp(line, "x-amzn-errortype:", 17) == 0) {
        transfer->reply_headers.error_type = header_value(transfer->request, line, length, 17);
    }
    return length;
}

static void on_first_byte(upstream_transfer_t *transfer)
{
    request_t *request = transfer->request;
    transfer->has_headers = true;
    transfer->first_byte_us = clock_monotonic_us();
    curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &transfer->status);
    bool is_stream_reply = transfer->adapter->feed_stream != NULL || transfer->is_event_stream;
    if (transfer->status >= 200 && transfer->status < 300 && is_stream_reply && request->is_stream) {
        request->attempt_count++;
        note_attempt(request, request->provider, request->upstream_model, "ok",
                     (double)(transfer->first_byte_us - transfer->start_us) / 1e3);
        add_route_headers(request);
        request_stream_start(request);
    }
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
    arm_timer(transfer, within_deadline(request, request->timeouts->idle_ms));
    if (!request->is_streaming) {
        if (transfer->response.length + length > MAX_RESPONSE_BYTES || buf_append(&transfer->response, data, length))
            return 0;
        return length;
    }
    int rc = feed_stream(transfer, data, length);
    flush_stream(transfer);
    return rc == 0 ? length : 0;
}

/* ---- classifying and replying ---------------------------------------------- */

static failure_t classify(const upstream_transfer_t *transfer, CURLcode result)
{
    if (transfer->is_timed_out || result == CURLE_OPERATION_TIMEDOUT)
        return FAILURE_TIMEOUT;
    if (result != CURLE_OK)
        return FAILURE_CONNECT; /* refused, reset, unresolvable, TLS: the target is unreachable */
    if (transfer->status == 429)
        return FAILURE_429;
    if (transfer->status >= 500)
        return FAILURE_5XX;
    if (transfer->status >= 400 || transfer->status < 200)
        return FAILURE_4XX;
    return FAILURE_NONE;
}

static bool is_retryable(const request_t *request, failure_t failure)
{
    unsigned retry_on = request->model_config ? request->model_config->retry_on
                                              : RETRY_ON_CONNECT | RETRY_ON_TIMEOUT | RETRY_ON_429 | RETRY_ON_5XX;
    switch (failure) {
    case FAILURE_CONNECT: return retry_on & RETRY_ON_CONNECT;
    case FAILURE_TIMEOUT: return retry_on & RETRY_ON_TIMEOUT;
    case FAILURE_429: return retry_on & RETRY_ON_429;
    case FAILURE_5XX: return retry_on & RETRY_ON_5XX;
    case FAILURE_4XX: return retry_on & RETRY_ON_4XX;
    case FAILURE_NONE: break;
    }
    return false;
}

/* The error this failed attempt would send, kept in request->last_error. */
static void describe_failure(upstream_transfer_t *transfer, CURLcode result, failure_t failure)
{
    request_t *request = transfer->request;
    request_error_t *error = &request->last_error;
    const char *name = request->provider->name;
    *error = (request_error_t){.retry_after = transfer->retry_after};
    if (failure == FAILURE_TIMEOUT) {
        curl_off_t connected_us = 0;
        curl_easy_getinfo(transfer->easy, CURLINFO_CONNECT_TIME_T, &connected_us);
        const char *what = transfer->is_timed_out ? (transfer->has_headers ? "idle gap" : "first byte")
                           : connected_us == 0    ? "connect"
                                                  : "total";
        *error = (request_error_t){504, "upstream_timeout", "upstream_timeout", NULL,
                                   arena_sprintf(&request->arena, "upstream provider %s timed out (%s timeout)", name,
                                                 what), NULL};
    } else if (result != CURLE_OK) {
        bool is_refused = result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST ||
                          result == CURLE_SSL_CONNECT_ERROR;
        *error = (request_error_t){502, "upstream_error", is_refused ? "upstream_unreachable" : "upstream_failed",
                                   NULL,
                                   arena_sprintf(&request->arena, "%s upstream provider %s: %s",
                                                 is_refused ? "cannot connect to" : "failure talking to", name,
                                                 curl_easy_strerror(result)),
                                   NULL};
    } else {
        provider_error_t mapped = {.reply_headers = &transfer->reply_headers};
        transfer->adapter->translate_error(request, transfer->status, transfer->response.data,
                                           transfer->response.length, &mapped);
        *error = (request_error_t){mapped.status, mapped.type, mapped.code, mapped.param, mapped.message,
                                   mapped.retry_after ? mapped.retry_after : transfer->retry_after};
    }
}

static const char *failure_outcome(request_t *request, const upstream_transfer_t *transfer, failure_t failure)
{
    switch (failure) {
    case FAILURE_CONNECT: return "connect_error";
    case FAILURE_TIMEOUT: return "timeout";
    default: return arena_sprintf(&request->arena, "http_%ld", transfer->status);
    }
}

static void reply_last_error(request_t *request)
{
    const request_error_t *error = &request->last_error;
    if (error->retry_after != NULL)
        request_add_header(request, "retry-after", error->retry_after);
    request_reply_error(request, error->status ? error->status : 503, error->type ? error->type : "upstream_error",
                        error->code, error->param, "%s",
                        error->message ? error->message : "no upstream target is available");
}

/* A streaming client on a cascade route: build its stream from the final answer. */
static void reply_synthesized_stream(request_t *request, const json_t *response)
{
    const json_t *choice = json_array_get(json_object_get(response, "choices"), 0);
    const json_t *message = json_object_get(choice, "message");
    const char *content = json_string_value(json_object_get(message, "content"));
    openai_chunk_writer_t writer = {0};
    buf_t out;
    buf_init(&out);
    openai_chunk_begin(&writer, request, json_string_value(json_object_get(response, "id")));
    openai_chunk_text(&writer, request, content ? content : "", content ? strlen(content) : 0, &out);
    size_t index;
    const json_t *call;
    json_array_foreach(json_object_get(message, "tool_calls"), index, call)
    {
        const json_t *function = json_object_get(call, "function");
        const char *arguments = json_string_value(json_object_get(function, "arguments"));
        openai_chunk_tool_start(&writer, request, (int)index, json_string_value(json_object_get(call, "id")),
                                json_string_value(json_object_get(function, "name")), &out);
        openai_chunk_tool_arguments(&writer, request, (int)index, arguments ? arguments : "",
                                    arguments ? strlen(arguments) : 0, &out);
    }
    openai_chunk_finish(&writer, request, json_string_value(json_object_get(choice, "finish_reason")), &out);
    request->is_stream = true; /* for the log: the client got a stream */
    request->client_wants_usage = json_is_true(
        json_object_get(json_object_get(request->body, "stream_options"), "include_usage"));
    openai_chunk_end(&writer, request, &out);
    request_stream_start(request);
    request_stream_write(request, out.data, out.length);
    request_stream_end(request);
    buf_free(&out);
}

/* Sends a complete 2xx answer; returns false when cascade wants the next tier instead. */
static bool accept_answer(upstream_transfer_t *transfer)
{
    request_t *request = transfer->request;
    buf_t translated;
    buf_init(&translated);
    bool is_unchanged = false;
    if (transfer->adapter->translate_response(request, transfer->response.data, transfer->response.length,
                                              &translated, &is_unchanged) != 0) {
        buf_free(&translated);
        request->last_error = (request_error_t){
            502, "upstream_error", "upstream_bad_response", NULL,
            arena_sprintf(&request->arena, "upstream provider %s sent a response that is not valid",
                          request->provider->name), NULL};
        reply_last_error(request);
        return true;
    }
    const buf_t *body = is_unchanged ? &transfer->response : &translated;
    const model_config_t *model = request->model_config;
    json_t *response = NULL;
    if ((model && model->strategy == STRATEGY_CASCADE) || request->wants_synthesized_stream)
        response = json_loadb(body->data ? body->data : "", body->length, 0, NULL);
    const char *failed = model && model->strategy == STRATEGY_CASCADE &&
                                 request->next_candidate < request->candidate_count
                             ? cascade_failed_check(model, request->body, response)
                             : NULL;
    double latency_ms = (double)(clock_monotonic_us() - transfer->start_us) / 1e3;
    request->attempt_count++;
    if (failed != NULL) {
        const char *outcome = arena_sprintf(&request->arena, "check_failed:%s", failed);
        note_attempt(request, request->provider, request->upstream_model, outcome, latency_ms);
        note_fallback(request, request->provider, request->upstream_model, outcome);
        json_decref(response);
        buf_free(&translated);
        return false;
    }
    note_attempt(request, request->provider, request->upstream_model, "ok", latency_ms);
    add_route_headers(request);
    request->cost_usd = usage_cost_usd(request->config, request->upstream_model, &request->usage, &request->is_priced);
    char cost[32];
    snprintf(cost, sizeof cost, "%.8f", request->cost_usd);
    if (request->is_priced)
        request_add_header(request, "x-sluice-cost-usd", cost);
    if (request->wants_synthesized_stream && response != NULL)
        reply_synthesized_stream(request, response);
    else {
        request_reply_json(request, 200, body->data ? body->data : "", body->length);
    }
    json_decref(response);
    buf_free(&translated);
    return true;
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
    describe_failure(transfer, result, classify(transfer, result));
    reply_last_error(request); /* as a final error event */
    request->status = 200;     /* what the client saw */
}

/* ---- ending an attempt ----------------------------------------------------- */

static void record_health(upstream_transfer_t *transfer, failure_t failure)
{
    request_t *request = transfer->request;
    uint64_t now = clock_monotonic_us();
    bool is_success = failure == FAILURE_NONE || failure == FAILURE_4XX; /* a bad request is not the target's fault */
    if (request->model_config != NULL)
        breaker_record(request->provider, request->upstream_model, is_success, now / 1000u);
    double total_ms = (double)(now - transfer->start_us) / 1e3;
    double ttfb_ms = transfer->first_byte_us ? (double)(transfer->first_byte_us - transfer->start_us) / 1e3 : total_ms;
    if (!is_success) /* a failure counts as slow as the time it could have taken */
        ttfb_ms = total_ms = fmax(total_ms, (double)request->timeouts->first_byte_ms);
    latency_record(request->worker->latency, request->provider->name, request->upstream_model, ttfb_ms, total_ms);
}

/* Ends the request after the attempt in transfer: an answer, an error, or the next attempt. */
static void conclude(upstream_transfer_t *transfer, CURLcode result)
{
    request_t *request = transfer->request;
    failure_t failure = classify(transfer, result);
    if (request->is_client_gone) {
        request->status = 499;
        request->error_type = "client_closed";
        return;
    }
    record_health(transfer, failure);
    if (request->is_streaming) {
        finish_stream(transfer, result);
        return;
    }
    if (failure == FAILURE_NONE) {
        if (accept_answer(transfer))
            return;
    } else {
        describe_failure(transfer, result, failure);
        const char *outcome = failure_outcome(request, transfer, failure);
        request->attempt_count++;
        note_attempt(request, request->provider, request->upstream_model, outcome,
                     (double)(clock_monotonic_us() - transfer->start_us) / 1e3);
        if (!is_retryable(request, failure)) {
            add_route_headers(request);
            reply_last_error(request);
            return;
        }
        note_fallback(request, request->provider, request->upstream_model, outcome);
    }
    request->status = -1; /* the next attempt decides */
}

static void transfer_done(void *argument, CURLcode result)
{
    upstream_transfer_t *transfer = argument;
    request_t *request = transfer->request;
    evtimer_del(transfer->timer);
    if (!transfer->has_headers)
        curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &transfer->status);
    conclude(transfer, result);
    request->transfer = NULL;
    transfer_free(transfer);
    stage_result_t next = STAGE_RESPONDED;
    if (request->status == -1) {
        request->status = 0;
        next = start_next_attempt(request);
    }
    if (next == STAGE_PENDING)
        return;
    request->cost_usd = usage_cost_usd(request->config, request->upstream_model, &request->usage, &request->is_priced);
    pipeline_resume(request, next);
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
    if (request->backoff_timer != NULL) {
        event_free(request->backoff_timer);
        request->backoff_timer = NULL;
        request->status = 499;
        request->error_type = "client_closed";
        pipeline_resume(request, STAGE_RESPONDED);
        return;
    }
    upstream_transfer_t *transfer = request->transfer;
    if (transfer == NULL)
        return;
    upstream_pool_remove(transfer->pool, transfer->easy);
    transfer_done(transfer, CURLE_ABORTED_BY_CALLBACK);
}

/* ---- starting an attempt --------------------------------------------------- */

static void configure_easy(upstream_transfer_t *transfer)
{
    CURL *easy = transfer->easy;
    const request_t *request = transfer->request;
    const provider_timeouts_t *timeouts = request->timeouts;
    curl_easy_setopt(easy, CURLOPT_URL, transfer->call.url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, transfer->call.body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)transfer->call.body_length);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->call.headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, within_deadline(request, timeouts->connect_ms));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, within_deadline(request, timeouts->total_ms));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
}

static stage_result_t start_transfer(request_t *request)
{
    const provider_adapter_t *adapter = provider_adapter_for(request->provider->type);
    upstream_transfer_t *transfer = adapter ? calloc(1, sizeof *transfer) : NULL;
    if (transfer == NULL)
        return STAGE_ERROR;
    transfer->request = request;
    transfer->adapter = adapter;
    transfer->pool = request->worker->pool;
    transfer->start_us = clock_monotonic_us();
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
    int workers = request->worker->worker_count;
    int limit = (provider->max_connections + workers - 1) / workers; /* the provider's share on this worker */
    if (upstream_pool_add(transfer->pool, transfer->easy, provider->name, limit, transfer_done, transfer) != 0) {
        transfer_free(transfer);
        return STAGE_ERROR;
    }
    request->transfer = transfer;
    arm_timer(transfer, within_deadline(request, request->timeouts->first_byte_ms));
    return STAGE_PENDING;
}

static void on_backoff_over(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    request_t *request = argument;
    event_free(request->backoff_timer);
    request->backoff_timer = NULL;
    stage_result_t next = start_next_attempt(request);
    if (next != STAGE_PENDING)
        pipeline_resume(request, next);
}

/* All candidates were tried: wait and go round again if rounds and the deadline allow. */
static bool schedule_another_round(request_t *request, long soonest_open_ms)
{
    const model_config_t *model = request->model_config;
    if (model == NULL || request->round >= model->retry_rounds)
        return false;
    double unit = (double)(worker_random(request->worker) >> 11) / 9007199254740992.0;
    long retry_after = request->last_error.retry_after ? strtol(request->last_error.retry_after, NULL, 10) * 1000 : 0;
    long delay = router_backoff_ms(request->round, model->backoff_ms, model->max_backoff_ms, unit, retry_after);
    if (soonest_open_ms > delay && request->last_error.status == 0)
        delay = soonest_open_ms;
    if (request->deadline_us && clock_monotonic_us() + (uint64_t)delay * 1000u >= request->deadline_us)
        return false;
    request->round++;
    request->next_candidate = 0;
    request->backoff_timer = evtimer_new(request->worker->base, on_backoff_over, request);
    struct timeval wait = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
    if (request->backoff_timer == NULL || evtimer_add(request->backoff_timer, &wait) != 0) {
        if (request->backoff_timer)
            event_free(request->backoff_timer);
        request->backoff_timer = NULL;
        return false;
    }
    return true;
}

static void start_shadow(request_t *request);

static stage_result_t start_next_attempt(request_t *request)
{
    long soonest_open_ms = -1;
    while (request->next_candidate < request->candidate_count) {
        /* Past the deadline another attempt could only time out at once. */
        if (request->deadline_us != 0 && request->last_error.status != 0 &&
            clock_monotonic_us() >= request->deadline_us)
            break;
        const target_config_t *target = request->candidates[request->next_candidate++];
        long retry_after_ms = 0;
        /* An open breaker is skipped at once, even for a model's only target:
         * failing fast is what protects the caller and the provider. */
        if (request->model_config != NULL &&
            !breaker_allow(target->provider, target->model, now_ms(), &retry_after_ms)) {
            note_attempt(request, target->provider, target->model, "circuit_open", 0);
            note_fallback(request, target->provider, target->model, "circuit_open");
            if (soonest_open_ms < 0 || retry_after_ms < soonest_open_ms)
                soonest_open_ms = retry_after_ms;
            continue;
        }
        request->provider = target->provider;
        request->upstream_model = target->model;
        request->timeouts = &target->timeouts;
        stage_result_t result = start_transfer(request);
        if (result == STAGE_PENDING && request->shadow_model != NULL)
            start_shadow(request);
        return result;
    }
    if (schedule_another_round(request, soonest_open_ms))
        return STAGE_PENDING;
    if (request->last_error.status == 0) {
        char retry_after[24];
        snprintf(retry_after, sizeof retry_after, "%ld", soonest_open_ms > 0 ? (soonest_open_ms + 999) / 1000 : 1);
        request->last_error = (request_error_t){503, "upstream_error", "no_target_available", NULL,
                                                "every target of this model is unavailable (circuit open)",
                                                arena_strdup(&request->arena, retry_after)};
    }
    if (request->provider != NULL)
        add_route_headers(request);
    reply_last_error(request);
    return STAGE_RESPONDED;
}

/* ---- shadow traffic --------------------------------------------------------- */

/* A copy of the request goes to the shadow model; its result is logged (as an
 * access-log line with shadow_of) and never reaches the client. */
static void start_shadow(request_t *request)
{
    const char *model = request->shadow_model;
    request->shadow_model = NULL; /* once per request, not per attempt */
    request_t *shadow = request_new_shadow(request, model);
    if (shadow == NULL) {
        log_warn("cannot start shadow request for %s", request->id);
        return;
    }
    pipeline_start_shadow(shadow);
}

static stage_result_t upstream_on_request(request_t *request) { return start_next_attempt(request); }

const stage_t stage_upstream = {
    .name = "upstream",
    .slot = STAGE_SLOT_UPSTREAM,
    .on_request = upstream_on_request,
    .on_cancel = upstream_cancel,
};
