/* openai_chunk.c — the OpenAI stream writer (see openai_chunk.h). */
#include "sluice/openai_chunk.h"
#include "sluice/provider.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/worker.h"

void openai_chunk_begin(openai_chunk_writer_t *writer, request_t *request, const char *id)
{
    if (id != NULL && id[0] != '\0')
        snprintf(writer->id, sizeof writer->id, "%s", id);
    else
        snprintf(writer->id, sizeof writer->id, "chatcmpl-%s", request->id);
    writer->created = (long long)time(NULL);
}

/* Emits one chunk whose single choice has the given delta and finish reason. */
static int emit(openai_chunk_writer_t *writer, request_t *request, json_t *delta, const char *finish_reason,
                buf_t *out)
{
    if (writer->id[0] == '\0')
        openai_chunk_begin(writer, request, NULL);
    json_t *choice = json_pack("{s:i, s:o, s:O, s:o}", "index", 0, "delta", delta, "logprobs", json_null(),
                               "finish_reason", finish_reason ? json_string(finish_reason) : json_null());
    json_t *chunk = choice ? json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", writer->id, "object",
                                       "chat.completion.chunk", "created", (json_int_t)writer->created, "model",
                                       provider_reply_model(request), "choices", choice)
                           : NULL;
    char *text = chunk ? json_dumps(chunk, JSON_COMPACT) : NULL;
    json_decref(chunk);
    if (text == NULL)
        return -1;
    int rc = buf_printf(out, "data: %s\n\n", text);
    free(text);
    return rc;
}

static int ensure_role(openai_chunk_writer_t *writer, request_t *request, buf_t *out)
{
    if (writer->has_role)
        return 0;
    writer->has_role = true;
    return emit(writer, request, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, out);
}

int openai_chunk_text(openai_chunk_writer_t *writer, request_t *request, const char *text, size_t length,
                      buf_t *out)
{
    if (ensure_role(writer, request, out) != 0)
        return -1;
    if (length == 0)
        return 0;
    return emit(writer, request, json_pack("{s:s%}", "content", text, length), NULL, out);
}

int openai_chunk_tool_start(openai_chunk_writer_t *writer, request_t *request, int index, const char *id,
                            const char *name, buf_t *out)
{
    if (ensure_role(writer, request, out) != 0)
        return -1;
    json_t *call = json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "index", index, "id", id, "type", "function",
                             "function", "name", name, "arguments", "");
    return emit(writer, request, json_pack("{s:[o]}", "tool_calls", call), NULL, out);
}

int openai_chunk_tool_arguments(openai_chunk_writer_t *writer, request_t *request, int index, const char *piece,
                                size_t length, buf_t *out)
{
    if (length == 0)
        return 0;
    json_t *call = json_pack("{s:i, s:{s:s%}}", "index", index, "function", "arguments", piece, length);
    return emit(writer, request, json_pack("{s:[o]}", "tool_calls", call), NULL, out);
}

int openai_chunk_finish(openai_chunk_writer_t *writer, request_t *request, const char *finish_reason, buf_t *out)
{
    if (writer->has_finish)
        return 0;
    if (ensure_role(writer, request, out) != 0)
        return -1;
    writer->has_finish = true;
    return emit(writer, request, json_object(), finish_reason ? finish_reason : "stop", out);
}

int openai_chunk_end(openai_chunk_writer_t *writer, request_t *request, buf_t *out)
{
    if (request->client_wants_usage && request->usage.is_known) {
        if (writer->id[0] == '\0')
            openai_chunk_begin(writer, request, NULL);
        const usage_t *usage = &request->usage;
        json_t *chunk = json_pack(
            "{s:s, s:s, s:I, s:s, s:[], s:{s:I, s:I, s:I, s:{s:I}, s:{s:I}}}", "id", writer->id, "object",
            "chat.completion.chunk", "created", (json_int_t)writer->created, "model", provider_reply_model(request),
            "choices", "usage", "prompt_tokens", (json_int_t)usage->prompt_tokens, "completion_tokens",
            (json_int_t)usage->completion_tokens, "total_tokens",
            (json_int_t)(usage->prompt_tokens + usage->completion_tokens), "prompt_tokens_details", "cached_tokens",
            (json_int_t)usage->cached_tokens, "completion_tokens_details", "reasoning_tokens",
            (json_int_t)usage->reasoning_tokens);
        char *text = chunk ? json_dumps(chunk, JSON_COMPACT) : NULL;
        json_decref(chunk);
        if (text == NULL)
            return -1;
        int rc = buf_printf(out, "data: %s\n\n", text);
        free(text);
        if (rc != 0)
            return -1;
    }
    return buf_append_str(out, "data: [DONE]\n\n");
}

int openai_chunk_error(buf_t *out, const char *type, const char *message)
{
    json_t *error = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", message ? message : "upstream error",
                              "type", type ? type : "api_error", "param", "code");
    char *text = error ? json_dumps(error, JSON_COMPACT) : NULL;
    json_decref(error);
    if (text == NULL)
        return -1;
    int rc = buf_printf(out, "data: %s\n\n", text);
    free(text);
    return rc;
}
