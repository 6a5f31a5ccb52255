/* access_log.c — the access-log stage (see access_log.h). It has only a
 * completion hook and is first in the stage list, so it runs last and sees
 * the request's final outcome, whatever stage answered it. */
#include "sluice/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sluice/pipeline.h"
#include "sluice/util/buf.h"
#include "sluice/util/clock.h"

static atomic_int log_fd = -1; /* the stable descriptor workers write to, or -1 when off */

int access_log_open(const char *destination, char *error, unsigned long size)
{
    int source = -1, owned = -1;
    if (strcmp(destination, "off") == 0) {
        atomic_store(&log_fd, -1);
        return 0;
    }
    if (strcmp(destination, "stdout") == 0)
        source = STDOUT_FILENO;
    else if (strcmp(destination, "stderr") == 0)
        source = STDERR_FILENO;
    else if ((source = owned = open(destination, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) < 0) {
        snprintf(error, size, "cannot open access log %s: %s", destination, strerror(errno));
        return -1;
    }
    int current = atomic_load(&log_fd);
    int target = current >= 0 ? dup2(source, current) : fcntl(source, F_DUPFD_CLOEXEC, 3);
    if (owned >= 0)
        close(owned);
    if (target < 0) {
        snprintf(error, size, "cannot set up access log: %s", strerror(errno));
        return -1;
    }
    atomic_store(&log_fd, target);
    return 0;
}

/* Appends a constant piece of the line. */
#define APPEND_LITERAL(line, text) buf_append((line), (text), sizeof(text) - 1)

/* name is a literal: ,"name": goes in with one copy, no formatting. */
#define add_string(line, name, value) add_string_piece((line), ",\"" name "\":", sizeof(",\"" name "\":") - 1, (value))

static void add_string_piece(buf_t *line, const char *piece, size_t piece_length, const char *value)
{
    buf_append(line, piece, piece_length);
    if (value == NULL) {
        buf_append_str(line, "null");
        return;
    }
    buf_append_char(line, '"');
    buf_append_json_escaped(line, value, strlen(value));
    buf_append_char(line, '"');
}

/* Microseconds as milliseconds with three decimals: exactly what %.3f printed
 * of microseconds / 1e3, without floating point. */
static void add_milliseconds(buf_t *line, uint64_t microseconds)
{
    char fraction[4] = {(char)('0' + microseconds / 100 % 10), (char)('0' + microseconds / 10 % 10),
                        (char)('0' + microseconds % 10), '\0'};
    buf_append_integer(line, (long long)(microseconds / 1000));
    buf_append_char(line, '.');
    buf_append(line, fraction, 3);
}

static void access_log_on_complete(request_t *request)
{
    int fd = atomic_load(&log_fd);
    if (fd < 0)
        return;
    uint64_t now = clock_monotonic_us();
    char time_text[40];
    clock_format_utc(time_text, sizeof time_text);
    buf_t line;
    buf_init(&line);
    buf_reserve(&line, 1024); /* a typical line fits: no regrowth */
    APPEND_LITERAL(&line, "{\"type\":\"access\",\"request_id\":\"");
    buf_append_str(&line, request->id);
    APPEND_LITERAL(&line, "\",\"time\":\"");
    buf_append_str(&line, time_text);
    buf_append_char(&line, '"');
    add_string(&line, "endpoint", request->is_anthropic_api ? "messages" : request_endpoint_name(request->endpoint));
    add_string(&line, "key", request->key ? request->key->name : NULL);
    add_string(&line, "team", request->key ? request->key->team : NULL);
    add_string(&line, "user", request->user);
    add_string(&line, "feature", request->feature);
    add_string(&line, "tags", request->tags);
    add_string(&line, "model", request->model);
    add_string(&line, "provider", request->provider ? request->provider->name : NULL);
    add_string(&line, "upstream_model", request->upstream_model);
    APPEND_LITERAL(&line, ",\"status\":");
    buf_append_integer(&line, request->status);
    APPEND_LITERAL(&line, ",\"latency_ms\":");
    add_milliseconds(&line, now - request->start_us);
    if (request->first_byte_us) {
        APPEND_LITERAL(&line, ",\"ttfb_ms\":");
        add_milliseconds(&line, request->first_byte_us - request->start_us);
    } else {
        APPEND_LITERAL(&line, ",\"ttfb_ms\":null");
    }
    if (request->usage.is_known) {
        APPEND_LITERAL(&line, ",\"prompt_tokens\":");
        buf_append_integer(&line, request->usage.prompt_tokens);
        APPEND_LITERAL(&line, ",\"completion_tokens\":");
        buf_append_integer(&line, request->usage.completion_tokens);
        APPEND_LITERAL(&line, ",\"total_tokens\":");
        buf_append_integer(&line, request->usage.prompt_tokens + request->usage.completion_tokens);
        if (request->usage.cached_tokens > 0) {
            APPEND_LITERAL(&line, ",\"cached_tokens\":");
            buf_append_integer(&line, request->usage.cached_tokens);
        }
        if (request->usage.is_estimated)
            APPEND_LITERAL(&line, ",\"usage_estimated\":true");
    } else {
        APPEND_LITERAL(&line, ",\"prompt_tokens\":null,\"completion_tokens\":null,\"total_tokens\":null");
    }
    if (request->is_priced)
        buf_printf(&line, ",\"cost_usd\":%.8f", request->cost_usd);
    else
        APPEND_LITERAL(&line, ",\"cost_usd\":null");
    if (request->is_stream)
        APPEND_LITERAL(&line, ",\"stream\":true,\"bytes_in\":");
    else
        APPEND_LITERAL(&line, ",\"stream\":false,\"bytes_in\":");
    buf_append_integer(&line, (long long)request->bytes_in);
    APPEND_LITERAL(&line, ",\"bytes_out\":");
    buf_append_integer(&line, (long long)request->bytes_out);
    add_string(&line, "route_model", request->route_model);
    if (request->route_index >= 0) {
        APPEND_LITERAL(&line, ",\"route\":");
        buf_append_integer(&line, request->route_index);
    }
    add_string(&line, "experiment", request->experiment);
    add_string(&line, "arm", request->arm);
    add_string(&line, "shadow_of", request->shadow_of);
    APPEND_LITERAL(&line, ",\"attempt_count\":");
    buf_append_integer(&line, request->attempt_count);
    APPEND_LITERAL(&line, ",\"attempts\":[");
    if (request->attempts.data != NULL)
        buf_append(&line, request->attempts.data, request->attempts.length);
    buf_append_char(&line, ']');
    add_string(&line, "fallback_reason", request->fallback_reasons.length ? request->fallback_reasons.data : NULL);
    add_string(&line, "error_type", request->error_type);
    add_string(&line, "error", request->error_message);
    pipeline_log_fields(request, &line);
    APPEND_LITERAL(&line, "}\n");
    if (line.data != NULL) {
        ssize_t written = write(fd, line.data, line.length);
        (void)written; /* a full disk must not take requests down with it */
    }
    buf_free(&line);
}

const stage_t stage_access_log = {.name = "access_log", .on_request = NULL, .on_complete = access_log_on_complete};
