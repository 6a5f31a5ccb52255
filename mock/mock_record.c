/* mock_record.c — what the mock saw, for the tests: the last 50 requests (GET /mock/requests),
 * counters (GET /mock/stats) and POST /mock/reset.
 *
 * Requests arrive on every worker thread, so the ring and the per-path counters sit behind one
 * mutex; each entry is rendered to JSON before the lock is taken, so the critical section is a
 * pointer swap. Benchmarks pass --no-record to skip all of it except a few atomic counters. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

#define RECORD_CAPACITY 50
#define STATUS_LIMIT 1000

static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *ring[RECORD_CAPACITY]; /* oldest at ring_next when full */
static int ring_next;
static int ring_count;
static json_t *requests_by_path;      /* path -> count */
static atomic_long total_requests;
static atomic_long open_streams;
static atomic_long status_counts[STATUS_LIMIT];

void mock_record_init(void)
{
    requests_by_path = json_object();
}

/* A JSON string of arbitrary bytes: invalid UTF-8 becomes '?' so the body is still shown. */
static json_t *string_of_bytes(const char *bytes, size_t length)
{
    json_t *string = json_stringn(bytes, length);
    if (string != NULL)
        return string;
    char *copy = malloc(length + 1);
    if (copy == NULL)
        return json_string("");
    for (size_t i = 0; i < length; i++)
        copy[i] = (unsigned char)bytes[i] < 0x80 && bytes[i] != '\0' ? bytes[i] : '?';
    string = json_stringn(copy, length);
    free(copy);
    return string;
}

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

static json_t *headers_json(struct evhttp_request *http)
{
    json_t *headers = json_object();
    struct evkeyvalq *input = evhttp_request_get_input_headers(http);
    for (struct evkeyval *header = input->tqh_first; headers != NULL && header != NULL; header = header->next.tqe_next) {
        char name[256];
        size_t length = strlen(header->key);
        if (length >= sizeof name)
            length = sizeof name - 1;
        for (size_t i = 0; i < length; i++)
            name[i] = (char)((header->key[i] >= 'A' && header->key[i] <= 'Z') ? header->key[i] + 32 : header->key[i]);
        name[length] = '\0';
        json_t *previous = json_object_get(headers, name);
        if (previous != NULL) {
            /* repeated headers are joined the way HTTP allows */
            char *joined = malloc(strlen(json_string_value(previous)) + strlen(header->value) + 3);
            if (joined != NULL) {
                sprintf(joined, "%s, %s", json_string_value(previous), header->value);
                json_object_set_new(headers, name, string_of_bytes(joined, strlen(joined)));
                free(joined);
            }
        } else {
            json_object_set_new(headers, name, string_of_bytes(header->value, strlen(header->value)));
        }
    }
    return headers;
}

void mock_record_request(struct evhttp_request *http, const char *body, size_t length)
{
    atomic_fetch_add(&total_requests, 1);
    if (!mock_options.is_recording)
        return;
    const char *uri = evhttp_request_get_uri(http);
    json_t *entry = json_pack("{s:s, s:s%, s:o, s:o}", "method", method_name(evhttp_request_get_command(http)),
                              "path", uri, strlen(uri), "headers", headers_json(http), "body",
                              string_of_bytes(body ? body : "", body ? length : 0));
    if (entry == NULL)
        return;
    size_t path_length = strcspn(uri, "?");
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)path_length, uri);

    pthread_mutex_lock(&record_lock);
    json_t *evicted = ring[ring_next];
    ring[ring_next] = entry;
    ring_next = (ring_next + 1) % RECORD_CAPACITY;
    if (ring_count < RECORD_CAPACITY)
        ring_count++;
    json_int_t seen = json_integer_value(json_object_get(requests_by_path, path));
    json_object_set_new(requests_by_path, path, json_integer(seen + 1));
    pthread_mutex_unlock(&record_lock);
    json_decref(evicted);
}

void mock_record_status(int status)
{
    if (status >= 0 && status < STATUS_LIMIT)
        atomic_fetch_add(&status_counts[status], 1);
}

void mock_record_stream_opened(void)
{
    atomic_fetch_add(&open_streams, 1);
}

void mock_record_stream_closed(void)
{
    atomic_fetch_sub(&open_streams, 1);
}

static json_t *requests_json(void)
{
    json_t *list = json_array();
    pthread_mutex_lock(&record_lock);
    int oldest = ring_count < RECORD_CAPACITY ? 0 : ring_next;
    for (int i = 0; list != NULL && i < ring_count; i++)
        json_array_append(list, ring[(oldest + i) % RECORD_CAPACITY]);
    pthread_mutex_unlock(&record_lock);
    return list;
}

static json_t *stats_json(void)
{
    json_t *by_status = json_object();
    for (int status = 0; by_status != NULL && status < STATUS_LIMIT; status++) {
        long count = atomic_load(&status_counts[status]);
        if (count > 0) {
            char key[8];
            snprintf(key, sizeof key, "%d", status);
            json_object_set_new(by_status, key, json_integer(count));
        }
    }
    pthread_mutex_lock(&record_lock);
    json_t *by_path = json_deep_copy(requests_by_path);
    pthread_mutex_unlock(&record_lock);
    long total = atomic_load(&total_requests);
    return json_pack("{s:I, s:I, s:o, s:o, s:I}", "total", (json_int_t)total, "requests", (json_int_t)total,
                     "by_path", by_path ? by_path : json_object(), "by_status", by_status ? by_status : json_object(),
                     "open_streams", (json_int_t)atomic_load(&open_streams));
}

static void reset_all(void)
{
    json_t *evicted[RECORD_CAPACITY];
    pthread_mutex_lock(&record_lock);
    memcpy(evicted, ring, sizeof ring);
    memset(ring, 0, sizeof ring);
    ring_next = 0;
    ring_count = 0;
    json_object_clear(requests_by_path);
    pthread_mutex_unlock(&record_lock);
    for (int i = 0; i < RECORD_CAPACITY; i++)
        json_decref(evicted[i]);
    atomic_store(&total_requests, 0);
    for (int status = 0; status < STATUS_LIMIT; status++)
        atomic_store(&status_counts[status], 0);
}

void mock_record_shutdown(void)
{
    reset_all();
    json_decref(requests_by_path);
    requests_by_path = NULL;
}

static void send_json(struct evhttp_request *http, int status, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    struct evbuffer *body = evbuffer_new();
    if (text == NULL || body == NULL || evbuffer_add(body, text, strlen(text)) != 0) {
        free(text);
        if (body != NULL)
            evbuffer_free(body);
        evhttp_send_error(http, 500, "mock could not render JSON");
        return;
    }
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(http), "content-type", "application/json");
    evhttp_send_reply(http, status, status == 200 ? "OK" : "Not Found", body);
    evbuffer_free(body);
}

void mock_record_serve(struct evhttp_request *http, const char *path)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(http);
    if (strcmp(path, "/mock/requests") == 0 && method == EVHTTP_REQ_GET) {
        send_json(http, 200, requests_json());
    } else if (strcmp(path, "/mock/stats") == 0 && method == EVHTTP_REQ_GET) {
        send_json(http, 200, stats_json());
    } else if (strcmp(path, "/mock/reset") == 0 && method == EVHTTP_REQ_POST) {
        reset_all();
        send_json(http, 200, json_pack("{s:b}", "ok", 1));
    } else {
        send_json(http, 404, json_pack("{s:s}", "error", "unknown mock endpoint"));
    }
}
