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

#include "sluice/cache.h"
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

static void add_string(buf_t *line, const char *name, const char *value)
{
    buf_printf(line, ",\"%s\":", name);
    if (value == NULL) {
        buf_append_str(line, "null");
        return;
    }
    buf_append_char(line, '"');
    buf_append_json_escaped(line, value, strlen(value));
    buf_append_char(line, '"');
}

static const char *endpoint_name(endpoint_t endpoint)
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
    buf_printf(&line, "{\"type\":\"access\",\"request_id\":\"%s\",\"time\":\"%s\"", request->id, time_text);
    add_string(&line, "endpoint", endpoint_name(request->endpoint));
    add_string(&line, "key", request->key ? request->key->name : NULL);
    add_string(&line, "team", request->key ? request->key->team : NULL);
    add_string(&line, "user", request->user);
    add_string(&line, "feature", request->feature);
    add_string(&line, "tags", request->tags);
    add_string(&line, "model", request->model);
    add_string(&line, "provider", request->provider ? request->provider->name : NULL);
    add_string(&line, "upstream_model", request->upstream_model);
    buf_printf(&line, ",\"status\":%d,\"latency_ms\":%.3f", request->status, (double)(now - request->start_us) / 1e3);
    if (request->first_byte_us)
        buf_printf(&line, ",\"ttfb_ms\":%.3f", (double)(request->first_byte_us - request->start_us) / 1e3);
    else
        buf_append_str(&line, ",\"ttfb_ms\":null");
    if (request->usage.is_known)
        buf_printf(&line, ",\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld",
                   request->usage.prompt_tokens, request->usage.completion_tokens,
                   request->usage.prompt_tokens + request->usage.completion_tokens);
    else
        buf_append_str(&line, ",\"prompt_tokens\":null,\"completion_tokens\":null,\"total_tokens\":null");
    if (request->is_priced)
        buf_printf(&line, ",\"cost_usd\":%.8f", request->cost_usd);
    else
        buf_append_str(&line, ",\"cost_usd\":null");
    buf_printf(&line, ",\"stream\":%s,\"bytes_in\":%zu,\"bytes_out\":%zu", request->is_stream ? "true" : "false",
               request->bytes_in, request->bytes_out);
    add_string(&line, "route_model", request->route_model);
    if (request->route_index >= 0)
        buf_printf(&line, ",\"route\":%d", request->route_index);
    add_string(&line, "experiment", request->experiment);
    add_string(&line, "arm", request->arm);
    add_string(&line, "shadow_of", request->shadow_of);
    buf_printf(&line, ",\"attempt_count\":%d,\"attempts\":[%s]", request->attempt_count,
               request->attempts.data ? request->attempts.data : "");
    add_string(&line, "fallback_reason", request->fallback_reasons.length ? request->fallback_reasons.data : NULL);
    add_string(&line, "error_type", request->error_type);
    add_string(&line, "error", request->error_message);
    cache_log_fields(request, &line);
    buf_append_str(&line, "}\n");
    if (line.data != NULL) {
        ssize_t written = write(fd, line.data, line.length);
        (void)written; /* a full disk must not take requests down with it */
    }
    buf_free(&line);
}

const stage_t stage_access_log = {.name = "access_log", .on_request = NULL, .on_complete = access_log_on_complete};
