/* mock.c — sluice-mock's entry point: command line, listening socket, worker threads and the
 * dispatcher that sends each request to the provider it imitates.
 *
 * Like the gateway, N workers each run their own event_base and evhttp on one shared listening
 * socket, so a request lives and dies on one thread and the hot path takes no locks (recording
 * aside, which --no-record turns off). The main thread only waits for SIGTERM/SIGINT, then stops
 * the loops and joins the workers; each worker frees its evhttp, which ends any open exchange. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mock.h"

mock_options_t mock_options;

typedef struct mock_worker {
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    evutil_socket_t listen_fd; /* this worker's own dup of the listening socket */
} mock_worker_t;

static const char usage_text[] =
    "usage: sluice-mock [options]\n"
    "  --listen HOST:PORT          address to listen on (default 127.0.0.1:8090; port 0 = any)\n"
    "  --threads N                 worker threads (default 2)\n"
    "  --status N                  default HTTP status (default 200)\n"
    "  --delay-ms N                delay before the status line\n"
    "  --chunks N                  content pieces per stream (default: one per word)\n"
    "  --chunk-delay-ms N          pause between content pieces\n"
    "  --words N                   reply length in words (default 20)\n"
    "  --embed-dim N               default embedding length (default 64)\n"
    "  --require-key KEY           reject requests that do not present KEY (401)\n"
    "  --aws-access-key-id ID      Bedrock: verify SigV4 signatures with these credentials\n"
    "  --aws-secret-access-key S\n"
    "  --no-record                 do not keep /mock/requests (for benchmarks)\n"
    "  --quiet                     no per-request log line\n"
    "Per-request directives: see docs/mock.md.\n";

static int parse_int_option(const char *text, const char *name, int *out)
{
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 0 || value > 100000000) {
        fprintf(stderr, "sluice-mock: bad value for --%s: %s\n", name, text);
        return -1;
    }
    *out = (int)value;
    return 0;
}

static int parse_listen(const char *text)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text)
        return -1;
    size_t host_length = (size_t)(colon - text);
    if (text[0] == '[' && host_length >= 2 && text[host_length - 1] == ']') {
        text++;
        host_length -= 2;
    }
    if (host_length >= sizeof mock_options.host)
        return -1;
    memcpy(mock_options.host, text, host_length);
    mock_options.host[host_length] = '\0';
    return parse_int_option(colon + 1, "listen", &mock_options.port);
}

static int parse_options(int argc, char **argv)
{
    enum { OPT_LISTEN = 1000, OPT_THREADS, OPT_STATUS, OPT_DELAY, OPT_CHUNKS, OPT_CHUNK_DELAY, OPT_WORDS,
           OPT_EMBED_DIM, OPT_REQUIRE_KEY, OPT_AWS_ID, OPT_AWS_SECRET, OPT_NO_RECORD, OPT_QUIET, OPT_HELP };
    static const struct option options[] = {
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "threads", required_argument, NULL, OPT_THREADS },
        { "status", required_argument, NULL, OPT_STATUS },
        { "delay-ms", required_argument, NULL, OPT_DELAY },
        { "chunks", required_argument, NULL, OPT_CHUNKS },
        { "chunk-delay-ms", required_argument, NULL, OPT_CHUNK_DELAY },
        { "words", required_argument, NULL, OPT_WORDS },
        { "embed-dim", required_argument, NULL, OPT_EMBED_DIM },
        { "require-key", required_argument, NULL, OPT_REQUIRE_KEY },
        { "aws-access-key-id", required_argument, NULL, OPT_AWS_ID },
        { "aws-secret-access-key", required_argument, NULL, OPT_AWS_SECRET },
        { "no-record", no_argument, NULL, OPT_NO_RECORD },
        { "quiet", no_argument, NULL, OPT_QUIET },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    mock_directives_t *defaults = &mock_options.defaults;
    snprintf(mock_options.host, sizeof mock_options.host, "127.0.0.1");
    mock_options.port = 8090;
    mock_options.threads = 2;
    mock_options.embed_dim = 64;
    mock_options.is_recording = true;
    *defaults = (mock_directives_t){ .status = 200, .retry_after = -1, .chunks = 0, .words = 20, .error_after = -1,
                                     .reset_after = -1, .hang_after = -1, .has_usage = true };
    int option;
    int status = 0;
    while ((option = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (option) {
        case OPT_LISTEN:
            if (parse_listen(optarg) != 0) {
                fprintf(stderr, "sluice-mock: --listen wants HOST:PORT, got %s\n", optarg);
                status = -1;
            }
            break;
        case OPT_THREADS: status |= parse_int_option(optarg, "threads", &mock_options.threads); break;
        case OPT_STATUS: status |= parse_int_option(optarg, "status", &defaults->status); break;
        case OPT_DELAY: status |= parse_int_option(optarg, "delay-ms", &defaults->delay_ms); break;
        case OPT_CHUNKS: status |= parse_int_option(optarg, "chunks", &defaults->chunks); break;
        case OPT_CHUNK_DELAY: status |= parse_int_option(optarg, "chunk-delay-ms", &defaults->chunk_delay_ms); break;
        case OPT_WORDS: status |= parse_int_option(optarg, "words", &defaults->words); break;
        case OPT_EMBED_DIM: status |= parse_int_option(optarg, "embed-dim", &mock_options.embed_dim); break;
        case OPT_REQUIRE_KEY: mock_options.require_key = optarg; break;
        case OPT_AWS_ID: mock_options.aws_access_key_id = optarg; break;
        case OPT_AWS_SECRET: mock_options.aws_secret_access_key = optarg; break;
        case OPT_NO_RECORD: mock_options.is_recording = false; break;
        case OPT_QUIET: mock_options.is_quiet = true; break;
        case OPT_HELP:
        case 'h': fputs(usage_text, stdout); exit(0);
        default: fputs(usage_text, stderr); return -1;
        }
    }
    if (mock_options.threads < 1)
        mock_options.threads = 1;
    if (mock_options.embed_dim < 1)
        mock_options.embed_dim = 1;
    if (optind < argc) {
        fprintf(stderr, "sluice-mock: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    return status;
}

/* ---- routing ---- */

static const char *method_name(enum evhttp_cmd_type method)
{
    switch (method) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

static bool ends_with(const char *text, const char *suffix)
{
    size_t length = strlen(text);
    size_t suffix_length = strlen(suffix);
    return length >= suffix_length && strcmp(text + length - suffix_length, suffix) == 0;
}

static bool starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* The key the client presented in any of the places providers use. */
static bool presents_required_key(const mock_call_t *call)
{
    const char *key = mock_options.require_key;
    const char *authorization = mock_header(call, "authorization");
    if (authorization != NULL && strncasecmp(authorization, "Bearer ", 7) == 0 && strcmp(authorization + 7, key) == 0)
        return true;
    static const char *const headers[] = { "x-api-key", "api-key", "x-goog-api-key" };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        const char *value = mock_header(call, headers[i]);
        if (value != NULL && strcmp(value, key) == 0)
            return true;
    }
    char *query_key = mock_query_param(call->query, "key");
    bool is_match = query_key != NULL && strcmp(query_key, key) == 0;
    free(query_key);
    return is_match;
}

static bool needs_post(mock_call_t *call)
{
    if (evhttp_request_get_command(call->http) == EVHTTP_REQ_POST)
        return true;
    mock_reply_error(call, 405, "mock: this endpoint wants POST");
    return false;
}

static bool has_json_object(mock_call_t *call)
{
    if (json_is_object(call->json))
        return true;
    mock_reply_error(call, 400, "We could not parse the JSON body of your request.");
    return false;
}

/* Which provider a path belongs to, before anything else is looked at. */
static mock_provider_t provider_of(const char *path)
{
    if (starts_with(path, "/openai/"))
        return MOCK_AZURE;
    if (starts_with(path, "/model/"))
        return MOCK_BEDROCK;
    if (strstr(path, "/models/") != NULL && strchr(strrchr(path, '/'), ':') != NULL)
        return MOCK_GEMINI;
    if (ends_with(path, "/v1beta/models"))
        return MOCK_GEMINI;
    if (ends_with(path, "/messages"))
        return MOCK_ANTHROPIC;
    return MOCK_OPENAI;
}

static void route_azure(mock_call_t *call)
{
    const char *path = call->path;
    if (starts_with(path, "/openai/v1/")) {
        const char *kind = path + strlen("/openai/v1/");
        if (strcmp(kind, "models") == 0) {
            mock_openai_handle(call, kind, NULL);
            return;
        }
        if (needs_post(call) && has_json_object(call))
            mock_openai_handle(call, kind, NULL);
        return;
    }
    if (!starts_with(path, "/openai/deployments/")) {
        mock_reply_error(call, 404, "Resource not found");
        return;
    }
    const char *deployment_start = path + strlen("/openai/deployments/");
    const char *slash = strchr(deployment_start, '/');
    if (slash == NULL) {
        mock_reply_error(call, 404, "Resource not found");
        return;
    }
    char *api_version = mock_query_param(call->query, "api-version");
    if (api_version == NULL || api_version[0] == '\0') {
        free(api_version);
        mock_reply_error(call, 400, "Missing required query parameter: api-version");
        return;
    }
    free(api_version);
    char *deployment = mock_percent_decode(deployment_start, (size_t)(slash - deployment_start));
    if (deployment != NULL && needs_post(call) && has_json_object(call))
        mock_openai_handle(call, slash + 1, deployment);
    free(deployment);
}

static void route_gemini(mock_call_t *call)
{
    if (ends_with(call->path, "/models")) {
        mock_gemini_models(call);
        return;
    }
    const char *model_start = strstr(call->path, "/models/") + strlen("/models/");
    const char *colon = strrchr(model_start, ':');
    char *model = mock_percent_decode(model_start, (size_t)(colon - model_start));
    if (model != NULL && needs_post(call) && has_json_object(call))
        mock_gemini_handle(call, model, colon + 1);
    free(model);
}

static void route_bedrock(mock_call_t *call)
{
    const char *id_start = call->path + strlen("/model/");
    const char *slash = strchr(id_start, '/');
    if (slash == NULL) {
        mock_reply_error(call, 404, "mock: unknown Bedrock operation");
        return;
    }
    char *model_id = mock_percent_decode(id_start, (size_t)(slash - id_start));
    if (model_id != NULL && needs_post(call))
        mock_bedrock_handle(call, model_id, slash + 1);
    free(model_id);
}

static void route_openai_family(mock_call_t *call)
{
    const char *path = call->path;
    if (ends_with(path, "/models")) {
        if (mock_header(call, "anthropic-version") != NULL) {
            call->provider = MOCK_ANTHROPIC;
            mock_anthropic_models(call);
        } else {
            mock_openai_handle(call, "models", NULL);
        }
        return;
    }
    static const char *const kinds[] = { "chat/completions", "completions", "embeddings" };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, "/%s", kinds[i]);
        if (ends_with(path, suffix)) {
            if (needs_post(call) && has_json_object(call))
                mock_openai_handle(call, kinds[i], NULL);
            return;
        }
    }
    mock_reply_error(call, 404, "mock: unknown path");
}

static void route(mock_call_t *call)
{
    call->provider = provider_of(call->path);
    /* Bedrock checks its own credentials (SigV4 or a Bearer API key). */
    if (mock_options.require_key != NULL && call->provider != MOCK_BEDROCK && !presents_required_key(call)) {
        mock_reply_error(call, 401, "Incorrect API key provided.");
        return;
    }
    switch (call->provider) {
    case MOCK_AZURE:
        route_azure(call);
        break;
    case MOCK_BEDROCK:
        route_bedrock(call);
        break;
    case MOCK_GEMINI:
        route_gemini(call);
        break;
    case MOCK_ANTHROPIC:
        if (needs_post(call))
            mock_anthropic_handle(call);
        break;
    case MOCK_OPENAI:
        route_openai_family(call);
        break;
    }
}

static void on_request(struct evhttp_request *http, void *argument)
{
    mock_worker_t *worker = argument;
    const char *uri = evhttp_request_get_uri(http);
    const char *question = strchr(uri, '?');
    mock_call_t call = {
        .http = http,
        .base = worker->base,
        .method = method_name(evhttp_request_get_command(http)),
        .path = question ? strndup(uri, (size_t)(question - uri)) : strdup(uri),
        .query = question ? strdup(question + 1) : NULL,
    };
    if (call.path == NULL) {
        evhttp_send_error(http, 500, "mock out of memory");
        free(call.query);
        return;
    }
    if (starts_with(call.path, "/mock/")) {
        mock_record_serve(http, call.path);
        free(call.path);
        free(call.query);
        return;
    }
    struct evbuffer *input = evhttp_request_get_input_buffer(http);
    call.body_length = evbuffer_get_length(input);
    call.body = call.body_length ? (const char *)evbuffer_pullup(input, -1) : "";
    if (call.body == NULL)
        call.body = "", call.body_length = 0;
    mock_record_request(http, call.body, call.body_length);
    if (call.body_length > 0)
        call.json = json_loadb(call.body, call.body_length, 0, NULL);
    mock_directives_init(&call.directives, &mock_options.defaults);
    route(&call);
    mock_directives_free(&call.directives);
    json_decref(call.json);
    free(call.path);
    free(call.query);
}

/* ---- workers ---- */

static void *worker_run(void *argument)
{
    mock_worker_t *worker = argument;
    event_base_dispatch(worker->base);
    evhttp_free(worker->http); /* frees open connections, and with them any pending exchange */
    event_base_free(worker->base);
    return NULL;
}

static int worker_start(mock_worker_t *worker, evutil_socket_t shared_fd)
{
    worker->listen_fd = dup(shared_fd);
    worker->base = event_base_new();
    worker->http = worker->base ? evhttp_new(worker->base) : NULL;
    if (worker->listen_fd < 0 || worker->http == NULL) {
        fprintf(stderr, "sluice-mock: cannot create a worker\n");
        return -1;
    }
    evhttp_set_allowed_methods(worker->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                                 EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_timeout(worker->http, 300);
    evhttp_set_gencb(worker->http, on_request, worker);
    if (evhttp_accept_socket(worker->http, worker->listen_fd) != 0) {
        fprintf(stderr, "sluice-mock: cannot accept on the listening socket\n");
        return -1;
    }
    if (pthread_create(&worker->thread, NULL, worker_run, worker) != 0) {
        fprintf(stderr, "sluice-mock: cannot start a worker thread\n");
        return -1;
    }
    return 0;
}

static evutil_socket_t open_listener(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *addresses = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", mock_options.port);
    int error = getaddrinfo(mock_options.host[0] ? mock_options.host : NULL, port, &hints, &addresses);
    if (error != 0) {
        fprintf(stderr, "sluice-mock: cannot resolve %s: %s\n", mock_options.host, gai_strerror(error));
        return -1;
    }
    evutil_socket_t fd = -1;
    for (struct addrinfo *address = addresses; address != NULL; address = address->ai_next) {
        fd = socket(address->ai_family, address->ai_socktype, address->ai_protocol);
        if (fd < 0)
            continue;
        int yes = 1;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) == 0 &&
            bind(fd, address->ai_addr, address->ai_addrlen) == 0 && listen(fd, 4096) == 0 &&
            evutil_make_socket_nonblocking(fd) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(addresses);
    if (fd < 0) {
        fprintf(stderr, "sluice-mock: cannot listen on %s:%d: %s\n", mock_options.host, mock_options.port,
                strerror(errno));
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t bound_length = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bound_length) == 0) {
        if (bound.ss_family == AF_INET)
            mock_options.port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        else if (bound.ss_family == AF_INET6)
            mock_options.port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (parse_options(argc, argv) != 0)
        return 2;
    if ((mock_options.aws_access_key_id == NULL) != (mock_options.aws_secret_access_key == NULL)) {
        fprintf(stderr, "sluice-mock: give both --aws-access-key-id and --aws-secret-access-key\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Workers inherit this mask; only the main thread takes the stop signals, in sigwait. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "sluice-mock: libevent has no pthreads support\n");
        return 1;
    }
    json_object_seed(0);
    mock_record_init();

    evutil_socket_t listen_fd = open_listener();
    if (listen_fd < 0)
        return 1;
    mock_worker_t *workers = calloc((size_t)mock_options.threads, sizeof *workers);
    if (workers == NULL)
        return 1;
    int started = 0;
    for (; started < mock_options.threads; started++) {
        if (worker_start(&workers[started], listen_fd) != 0)
            break;
    }
    close(listen_fd);
    int exit_code = 0;
    if (started == mock_options.threads) {
        /* Announced on both streams: scripts read stdout, the test harness reads stderr. */
        printf("sluice-mock listening on %s:%d\n", mock_options.host, mock_options.port);
        fflush(stdout);
        fprintf(stderr, "sluice-mock listening on %s:%d\n", mock_options.host, mock_options.port);
        int received = 0;
        while (sigwait(&stop_signals, &received) != 0)
            ;
        if (!mock_options.is_quiet)
            fprintf(stderr, "sluice-mock: signal %d, stopping\n", received);
    } else {
        exit_code = 1;
    }
    for (int i = 0; i < started; i++)
        event_base_loopbreak(workers[i].base);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    free(workers);
    mock_record_shutdown();
    libevent_global_shutdown();
    return exit_code;
}
