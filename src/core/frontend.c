/* frontend.c — routing of incoming HTTP requests (see frontend.h). */
#include "sluice/frontend.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

#include "sluice/admin_cache.h"
#include "sluice/breaker.h"
#include "sluice/metrics.h"
#include "sluice/util/clock.h"
#include "sluice/pipeline.h"
#include "sluice/worker.h"

typedef struct route {
    const char *path;
    enum evhttp_cmd_type method;
    endpoint_t endpoint;
} route_t;

/* Paths are accepted with and without the /v1 prefix, as OpenAI's are. */
static const route_t routes[] = {
    {"/v1/chat/completions", EVHTTP_REQ_POST, ENDPOINT_CHAT_COMPLETIONS},
    {"/chat/completions", EVHTTP_REQ_POST, ENDPOINT_CHAT_COMPLETIONS},
    {"/v1/completions", EVHTTP_REQ_POST, ENDPOINT_COMPLETIONS},
    {"/completions", EVHTTP_REQ_POST, ENDPOINT_COMPLETIONS},
    {"/v1/embeddings", EVHTTP_REQ_POST, ENDPOINT_EMBEDDINGS},
    {"/embeddings", EVHTTP_REQ_POST, ENDPOINT_EMBEDDINGS},
    {"/v1/models", EVHTTP_REQ_GET, ENDPOINT_MODELS},
    {"/models", EVHTTP_REQ_GET, ENDPOINT_MODELS},
    {"/v1/messages", EVHTTP_REQ_POST, ENDPOINT_CHAT_COMPLETIONS}, /* Anthropic Messages in and out */
};

static void reply_plain_json(struct evhttp_request *http, int status, const char *body)
{
    struct evbuffer *buffer = evbuffer_new();
    if (buffer == NULL) {
        evhttp_send_error(http, 500, NULL);
        return;
    }
    evbuffer_add(buffer, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(http), "content-type", "application/json");
    evhttp_send_reply(http, status, NULL, buffer);
    evbuffer_free(buffer);
}

static void handle_metrics(struct evhttp_request *http)
{
    buf_t text;
    buf_init(&text);
    struct evbuffer *buffer = evbuffer_new();
    if (buffer == NULL || metrics_render(&text) != 0 || evbuffer_add(buffer, text.data, text.length)) {
        evhttp_send_error(http, 500, NULL);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(http), "content-type", "text/plain; version=0.0.4");
        evhttp_send_reply(http, 200, NULL, buffer);
    }
    if (buffer != NULL)
        evbuffer_free(buffer);
    buf_free(&text);
}

static void handle_ready(struct evhttp_request *http, worker_t *worker)
{
    bool is_ready = !worker->is_draining && atomic_load(&worker->is_ready);
    buf_t body;
    buf_init(&body);
    buf_printf(&body, "{\"status\":\"%s\",\"routing\":", is_ready ? "ready" : "draining");
    breaker_render_json(&body, clock_monotonic_us() / 1000u);
    buf_append_char(&body, '}');
    reply_plain_json(http, is_ready ? 200 : 503, body.data ? body.data : "{\"status\":\"error\"}");
    buf_free(&body);
}

/* Length of the path part of a URI (before any query string). */
static size_t path_length(const char *uri)
{
    const char *query = strchr(uri, '?');
    return query ? (size_t)(query - uri) : strlen(uri);
}

static void handle_unrouted(struct evhttp_request *http, worker_t *worker, const char *uri, int is_wrong_method)
{
    request_t *request = request_new(worker, http, ENDPOINT_NONE);
    if (request == NULL) {
        evhttp_send_error(http, 500, NULL);
        return;
    }
    pipeline_start_logged_only(request);
    size_t length = path_length(uri);
    if (length > 200)
        length = 200;
    if (is_wrong_method)
        evhttp_add_header(evhttp_request_get_output_headers(http), "allow", is_wrong_method == 1 ? "GET" : "POST");
    if (is_wrong_method)
        request_reply_error(request, 405, "invalid_request_error", "method_not_allowed", NULL,
                            "Method not allowed for %.*s.", (int)length, uri);
    else
        request_reply_error(request, 404, "invalid_request_error", "unknown_url", NULL,
                            "Unknown request URL: %.*s.", (int)length, uri);
    pipeline_finish(request);
}

/* CORS: browsers may call the API from any origin (auth is a bearer key, never
 * a cookie). A preflight gets 204 with what it asked for; every other answer
 * to a request with an Origin carries Access-Control-Allow-Origin and exposes
 * the x-sluice-* headers. Returns true when the request was a preflight. */
static bool handle_cors(struct evhttp_request *http, enum evhttp_cmd_type method)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(http);
    struct evkeyvalq *out = evhttp_request_get_output_headers(http);
    if (evhttp_find_header(in, "origin") == NULL)
        return false;
    evhttp_add_header(out, "access-control-allow-origin", "*");
    if (method != EVHTTP_REQ_OPTIONS) {
        evhttp_add_header(out, "access-control-expose-headers",
                          "x-sluice-request-id, x-sluice-provider, x-sluice-model, x-sluice-cache, "
                          "x-sluice-cost-usd, x-sluice-attempts, x-sluice-fallback-reason, retry-after");
        return false;
    }
    const char *asked = evhttp_find_header(in, "access-control-request-headers");
    evhttp_add_header(out, "access-control-allow-methods", "GET, POST, OPTIONS");
    evhttp_add_header(out, "access-control-allow-headers",
                      asked && strlen(asked) < 2048 && strpbrk(asked, "\r\n") == NULL
                          ? asked
                          : "authorization, content-type, x-api-key, anthropic-version, anthropic-beta, "
                            "x-sluice-user, x-sluice-feature, x-sluice-tags, x-sluice-cache");
    evhttp_add_header(out, "access-control-max-age", "86400");
    evhttp_send_reply(http, 204, "No Content", NULL);
    return true;
}

void frontend_handle(struct evhttp_request *http, void *argument)
{
    worker_t *worker = argument;
    const char *uri = evhttp_request_get_uri(http);
    enum evhttp_cmd_type method = evhttp_request_get_command(http);
    size_t length = path_length(uri);
    while (length > 1 && uri[length - 1] == '/') /* /v1/models/ is /v1/models */
        length--;
    if (handle_cors(http, method))
        return;
    if (length == 8 && memcmp(uri, "/healthz", 8) == 0) {
        reply_plain_json(http, 200, "{\"status\":\"ok\"}");
        return;
    }
    if (length == 7 && memcmp(uri, "/readyz", 7) == 0) {
        handle_ready(http, worker);
        return;
    }
    if (length == 8 && memcmp(uri, "/metrics", 8) == 0) {
        handle_metrics(http);
        return;
    }
    if (length >= 6 && memcmp(uri, "/admin", 6) == 0 && (length == 6 || uri[6] == '/')) {
        /* every /admin path authenticates first: no key learns which exist */
        admin_cache_handle(http, worker, uri, length);
        return;
    }
    int is_wrong_method = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t route_length = strlen(routes[i].path);
        /* GET /v1/models/{id} retrieves one model (the router reads the id) */
        bool is_model_id = routes[i].endpoint == ENDPOINT_MODELS && length > route_length + 1 &&
                           memcmp(routes[i].path, uri, route_length) == 0 && uri[route_length] == '/';
        if (!is_model_id && (route_length != length || memcmp(routes[i].path, uri, length) != 0))
            continue;
        if (routes[i].method != method) {
            is_wrong_method = routes[i].method == EVHTTP_REQ_GET ? 1 : 2;
            continue;
        }
        request_t *request = request_new(worker, http, routes[i].endpoint);
        if (request == NULL) {
            evhttp_send_error(http, 500, NULL);
            return;
        }
        request->is_anthropic_api = length == 12 && memcmp(uri, "/v1/messages", 12) == 0;
        pipeline_start(request);
        return;
    }
    handle_unrouted(http, worker, uri, is_wrong_method);
}
