/* mock_exchange.c — sending the answer, with the timing the directives ask for.
 *
 * Handlers render the whole answer first (a body, or a list of frames for a stream) and call
 * mock_reply_*. An answer that is due now and is not a stream goes out at once, without any
 * allocation beyond the body. Anything else becomes an exchange: a small state machine on the
 * worker's event loop that waits `delay_ms`, sends the status line, then pumps frames, pausing
 * `chunk_delay_ms` before each content piece and stopping at error_after / reset_after /
 * hang_after. No call ever blocks the loop.
 *
 * Ownership: the exchange owns the frames and is owned by the connection's close callback while
 * it waits. Whichever comes first — our own end of the answer, or evhttp freeing the connection
 * (client gone, write error, reset, shutdown) — frees it, exactly once. evhttp stops reading a
 * connection while a request is being answered, so we watch the socket ourselves to notice a
 * client that hangs up while we are silent (delays, hangs). */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mock.h"

struct mock_frames {
    struct evbuffer *data;       /* all frames, back to back */
    size_t *lengths;
    mock_frame_kind_t *kinds;
    int count;
    int capacity;
    int trailer_start;           /* index of the first trailer frame, or -1 */
    char *error;                 /* what error_after sends, or NULL */
    size_t error_length;
};

typedef enum exchange_phase {
    PHASE_BEFORE_HEADERS,
    PHASE_STREAMING,
    PHASE_RESETTING,
} exchange_phase_t;

typedef struct mock_exchange {
    struct evhttp_request *http;
    struct evhttp_connection *connection;
    struct event *timer;
    struct event *client_watch;
    exchange_phase_t phase;
    int status;
    struct evbuffer *body;       /* a non-stream answer, or NULL */
    mock_frames_t *frames;       /* a stream, or NULL */
    int next_frame;
    int content_sent;
    bool has_waited;             /* the pause before the next content piece is done */
    bool is_stream_open;
    int chunk_delay_ms;
    int error_after;
    int reset_after;
    int hang_after;
} mock_exchange_t;

/* ---- frames ---- */

mock_frames_t *mock_frames_new(void)
{
    mock_frames_t *frames = calloc(1, sizeof *frames);
    if (frames == NULL)
        return NULL;
    frames->data = evbuffer_new();
    frames->trailer_start = -1;
    if (frames->data == NULL) {
        free(frames);
        return NULL;
    }
    return frames;
}

void mock_frames_free(mock_frames_t *frames)
{
    if (frames == NULL)
        return;
    evbuffer_free(frames->data);
    free(frames->lengths);
    free(frames->kinds);
    free(frames->error);
    free(frames);
}

int mock_frames_add(mock_frames_t *frames, mock_frame_kind_t kind, const void *bytes, size_t length)
{
    if (frames->count == frames->capacity) {
        int capacity = frames->capacity ? frames->capacity * 2 : 16;
        size_t *lengths = realloc(frames->lengths, sizeof *lengths * (size_t)capacity);
        if (lengths == NULL)
            return -1;
        frames->lengths = lengths;
        mock_frame_kind_t *kinds = realloc(frames->kinds, sizeof *kinds * (size_t)capacity);
        if (kinds == NULL)
            return -1;
        frames->kinds = kinds;
        frames->capacity = capacity;
    }
    if (evbuffer_add(frames->data, bytes, length) != 0)
        return -1;
    frames->lengths[frames->count] = length;
    frames->kinds[frames->count] = kind;
    frames->count++;
    return 0;
}

int mock_frames_add_sse(mock_frames_t *frames, mock_frame_kind_t kind, const char *event_name, json_t *data,
                        const char *eol)
{
    char *json = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(data);
    if (json == NULL)
        return -1;
    size_t size = strlen(json) + (event_name ? strlen(event_name) : 0) + 32;
    char *text = malloc(size);
    if (text == NULL) {
        free(json);
        return -1;
    }
    int length = event_name ? snprintf(text, size, "event: %s%sdata: %s%s%s", event_name, eol, json, eol, eol)
                            : snprintf(text, size, "data: %s%s%s", json, eol, eol);
    int result = mock_frames_add(frames, kind, text, (size_t)length);
    free(text);
    free(json);
    return result;
}

void mock_frames_begin_trailer(mock_frames_t *frames)
{
    frames->trailer_start = frames->count;
}

int mock_frames_set_error(mock_frames_t *frames, const void *bytes, size_t length)
{
    free(frames->error);
    frames->error = malloc(length ? length : 1);
    if (frames->error == NULL)
        return -1;
    memcpy(frames->error, bytes, length);
    frames->error_length = length;
    return 0;
}

/* ---- small helpers ---- */

void mock_add_header(mock_call_t *call, const char *name, const char *value)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(call->http);
    evhttp_remove_header(headers, name);
    evhttp_add_header(headers, name, value);
}

const char *mock_header(const mock_call_t *call, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(call->http), name);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 424: return "Failed Dependency";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    default: return "Mock Status";
    }
}

static void log_reply(const mock_call_t *call, int status, bool is_stream)
{
    mock_record_status(status);
    if (!mock_options.is_quiet)
        fprintf(stderr, "sluice-mock: %s %s%s%s -> %d%s\n", call->method, call->path, call->query ? "?" : "",
                call->query ? call->query : "", status, is_stream ? " (stream)" : "");
}

/* ---- the exchange state machine ---- */

static void exchange_free(mock_exchange_t *exchange)
{
    if (exchange->timer != NULL)
        event_free(exchange->timer);
    if (exchange->client_watch != NULL)
        event_free(exchange->client_watch);
    if (exchange->body != NULL)
        evbuffer_free(exchange->body);
    mock_frames_free(exchange->frames);
    if (exchange->is_stream_open)
        mock_record_stream_closed();
    free(exchange);
}

/* The connection is going away (client gone, write error, our reset, or shutdown). evhttp has
 * already detached a request it will not free itself; one it still holds it frees after us. */
static void on_connection_close(struct evhttp_connection *connection, void *argument)
{
    (void)connection;
    mock_exchange_t *exchange = argument;
    if (evhttp_request_get_connection(exchange->http) == NULL)
        evhttp_request_free(exchange->http);
    exchange_free(exchange);
}

/* Hands the connection back to evhttp: after this, only evhttp may touch the request. */
static void exchange_release(mock_exchange_t *exchange)
{
    evhttp_connection_set_closecb(exchange->connection, NULL, NULL);
}

static void on_client_readable(evutil_socket_t fd, short what, void *argument)
{
    (void)what;
    mock_exchange_t *exchange = argument;
    char byte;
    ssize_t got = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        if (event_add(exchange->client_watch, NULL) != 0)
            fprintf(stderr, "sluice-mock: cannot re-arm the client watch\n");
        return;
    }
    if (got > 0)
        return; /* the client sent more (a pipelined request): it is alive; evhttp reads it later */
    /* End of file or error: the client left. Freeing the connection runs on_connection_close. */
    evhttp_connection_free(exchange->connection);
}

static void watch_client(mock_exchange_t *exchange, struct event_base *base)
{
    struct bufferevent *events = evhttp_connection_get_bufferevent(exchange->connection);
    evutil_socket_t fd = events ? bufferevent_getfd(events) : -1;
    if (fd < 0)
        return;
    exchange->client_watch = event_new(base, fd, EV_READ, on_client_readable, exchange);
    if (exchange->client_watch != NULL && event_add(exchange->client_watch, NULL) != 0) {
        event_free(exchange->client_watch);
        exchange->client_watch = NULL;
    }
}

static void arm_timer(mock_exchange_t *exchange, int milliseconds)
{
    struct timeval delay = { milliseconds / 1000, (milliseconds % 1000) * 1000 };
    if (evtimer_add(exchange->timer, &delay) != 0)
        fprintf(stderr, "sluice-mock: cannot arm a timer\n");
}

static void send_body_now(mock_exchange_t *exchange)
{
    exchange_release(exchange);
    evhttp_send_reply(exchange->http, exchange->status, status_reason(exchange->status), exchange->body);
    exchange_free(exchange);
}

static void end_stream(mock_exchange_t *exchange)
{
    exchange_release(exchange);
    evhttp_send_reply_end(exchange->http);
    exchange_free(exchange);
}

/* An abrupt end: SO_LINGER 0 makes the close send RST. evhttp would shut the socket down (FIN)
 * before closing it, so the socket is first swapped for a dummy with dup2: the real one closes
 * (with RST) right here and evhttp's shutdown/close hit only the dummy. dup2 is atomic, so no
 * other thread can be handed the descriptor number in between. */
static void reset_connection(mock_exchange_t *exchange)
{
    struct bufferevent *events = evhttp_connection_get_bufferevent(exchange->connection);
    if (events != NULL && evbuffer_get_length(bufferevent_get_output(events)) > 0) {
        exchange->phase = PHASE_RESETTING; /* let the pieces already sent reach the client first */
        arm_timer(exchange, 1);
        return;
    }
    evutil_socket_t fd = events ? bufferevent_getfd(events) : -1;
    if (fd >= 0) {
        struct linger abortive = { 1, 0 };
        if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) != 0)
            perror("sluice-mock: SO_LINGER");
        int dummy = socket(AF_INET, SOCK_STREAM, 0);
        if (dummy >= 0) {
            if (dup2(dummy, fd) < 0)
                perror("sluice-mock: dup2");
            close(dummy);
        }
    }
    evhttp_connection_free(exchange->connection); /* runs on_connection_close, which frees us */
}

static void flush_pending(mock_exchange_t *exchange, struct evbuffer *pending)
{
    if (evbuffer_get_length(pending) > 0)
        evhttp_send_reply_chunk(exchange->http, pending);
}

/* Sends frames until the stream ends, must pause, or a directive stops it. */
static void pump_frames(mock_exchange_t *exchange)
{
    mock_frames_t *frames = exchange->frames;
    struct evbuffer *pending = evbuffer_new();
    if (pending == NULL) {
        end_stream(exchange);
        return;
    }
    while (exchange->next_frame < frames->count) {
        int index = exchange->next_frame;
        bool is_content = frames->kinds[index] == MOCK_FRAME_CONTENT;
        bool is_checkpoint = is_content || index == frames->trailer_start;
        if (is_content && exchange->content_sent > 0 && exchange->chunk_delay_ms > 0 && !exchange->has_waited) {
            flush_pending(exchange, pending);
            evbuffer_free(pending);
            exchange->has_waited = true;
            arm_timer(exchange, exchange->chunk_delay_ms);
            return;
        }
        if (is_checkpoint && exchange->content_sent == exchange->error_after) {
            if (frames->error != NULL)
                evbuffer_add(pending, frames->error, frames->error_length);
            flush_pending(exchange, pending);
            evbuffer_free(pending);
            end_stream(exchange);
            return;
        }
        if (is_checkpoint && exchange->content_sent == exchange->reset_after) {
            flush_pending(exchange, pending);
            evbuffer_free(pending);
            reset_connection(exchange);
            return;
        }
        if (is_checkpoint && exchange->content_sent == exchange->hang_after) {
            flush_pending(exchange, pending);
            evbuffer_free(pending);
            return; /* silent until the client leaves; the close callback frees us */
        }
        evbuffer_remove_buffer(frames->data, pending, frames->lengths[index]);
        exchange->next_frame++;
        if (is_content) {
            exchange->content_sent++;
            exchange->has_waited = false;
        }
    }
    flush_pending(exchange, pending);
    evbuffer_free(pending);
    end_stream(exchange);
}

static void start_answer(mock_exchange_t *exchange)
{
    if (exchange->frames == NULL) {
        send_body_now(exchange);
        return;
    }
    exchange->phase = PHASE_STREAMING;
    exchange->is_stream_open = true;
    mock_record_stream_opened();
    evhttp_send_reply_start(exchange->http, 200, "OK");
    pump_frames(exchange);
}

static void on_timer(evutil_socket_t fd, short what, void *argument)
{
    (void)fd;
    (void)what;
    mock_exchange_t *exchange = argument;
    switch (exchange->phase) {
    case PHASE_BEFORE_HEADERS:
        start_answer(exchange);
        break;
    case PHASE_STREAMING:
        pump_frames(exchange);
        break;
    case PHASE_RESETTING:
        reset_connection(exchange);
        break;
    }
}

/* Takes ownership of body / frames. */
static void exchange_start(mock_call_t *call, int status, struct evbuffer *body, mock_frames_t *frames)
{
    const mock_directives_t *directives = &call->directives;
    struct evhttp_connection *connection = evhttp_request_get_connection(call->http);
    bool is_due_now = directives->delay_ms <= 0 && !directives->is_hang;
    if (frames == NULL && is_due_now) {
        evhttp_send_reply(call->http, status, status_reason(status), body);
        evbuffer_free(body);
        return;
    }
    mock_exchange_t *exchange = calloc(1, sizeof *exchange);
    if (exchange == NULL || connection == NULL) {
        free(exchange);
        if (body != NULL)
            evbuffer_free(body);
        mock_frames_free(frames);
        evhttp_send_error(call->http, 500, "mock out of memory");
        return;
    }
    exchange->http = call->http;
    exchange->connection = connection;
    exchange->status = status;
    exchange->body = body;
    exchange->frames = frames;
    exchange->chunk_delay_ms = directives->chunk_delay_ms;
    exchange->error_after = directives->error_after;
    exchange->reset_after = directives->reset_after;
    exchange->hang_after = directives->hang_after;
    exchange->timer = evtimer_new(call->base, on_timer, exchange);
    if (exchange->timer == NULL) {
        evhttp_send_error(call->http, 500, "mock out of timers");
        exchange_free(exchange);
        return;
    }
    evhttp_connection_set_closecb(connection, on_connection_close, exchange);
    watch_client(exchange, call->base);
    if (directives->is_hang)
        return;
    if (directives->delay_ms > 0) {
        arm_timer(exchange, directives->delay_ms);
        return;
    }
    start_answer(exchange);
}

void mock_reply_bytes(mock_call_t *call, int status, const char *content_type, const void *body, size_t length)
{
    struct evbuffer *buffer = evbuffer_new();
    if (buffer == NULL || evbuffer_add(buffer, body, length) != 0) {
        if (buffer != NULL)
            evbuffer_free(buffer);
        evhttp_send_error(call->http, 500, "mock out of memory");
        return;
    }
    if (content_type != NULL)
        mock_add_header(call, "content-type", content_type);
    log_reply(call, status, false);
    exchange_start(call, status, buffer, NULL);
}

void mock_reply_json(mock_call_t *call, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(body);
    if (text == NULL) {
        evhttp_send_error(call->http, 500, "mock could not render JSON");
        return;
    }
    mock_reply_bytes(call, status, "application/json", text, strlen(text));
    free(text);
}

void mock_reply_stream(mock_call_t *call, const char *content_type, mock_frames_t *frames)
{
    if (frames == NULL) {
        evhttp_send_error(call->http, 500, "mock out of memory");
        return;
    }
    mock_add_header(call, "content-type", content_type);
    mock_add_header(call, "cache-control", "no-cache");
    log_reply(call, 200, true);
    exchange_start(call, 200, NULL, frames);
}

void mock_reply_error(mock_call_t *call, int status, const char *message)
{
    int retry_after = call->directives.retry_after;
    if (retry_after < 0 && status == 429)
        retry_after = 1;
    if (retry_after >= 0) {
        char value[16];
        snprintf(value, sizeof value, "%d", retry_after);
        mock_add_header(call, "retry-after", value);
    }
    json_t *body = NULL;
    switch (call->provider) {
    case MOCK_OPENAI:
    case MOCK_AZURE:
        body = mock_openai_error_body(status, message);
        break;
    case MOCK_ANTHROPIC:
        body = mock_anthropic_error_body(status, message);
        break;
    case MOCK_GEMINI:
        body = mock_gemini_error_body(status, message);
        break;
    case MOCK_BEDROCK: {
        const char *type = mock_bedrock_error_type(status);
        char header[128];
        snprintf(header, sizeof header, "%s:http://internal.amazon.com/coral/com.amazon.bedrock/", type);
        mock_add_header(call, "x-amzn-errortype", header);
        body = json_pack("{s:s}", "message", message);
        break;
    }
    }
    mock_reply_json(call, status, body);
}

bool mock_reply_directed_error(mock_call_t *call)
{
    int status = call->directives.status;
    if (status < 300 || status > 999)
        return false;
    char message[128];
    snprintf(message, sizeof message, "mock: status %d requested by directive", status);
    mock_reply_error(call, status, message);
    return true;
}
