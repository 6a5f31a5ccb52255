/* compat_presets.c — quirks of openai-compatible servers (see compat_presets.h).
 *
 * Only hooked presets come through here, and their stream events are read
 * with json_loadb: these servers are slower than the parse by orders of
 * magnitude, and reading every chunk is what counting the streamed text for
 * an estimate needs anyway. */
#include "sluice/compat_presets.h"

#include <stdlib.h>
#include <string.h>

#include "sluice/provider_util.h"
#include "sluice/router.h"
#include "sluice/usage.h"

static const char *const preset_names[COMPAT_PRESET_COUNT] = {
    [COMPAT_PRESET_GENERIC] = "generic",   [COMPAT_PRESET_VLLM] = "vllm",
    [COMPAT_PRESET_OLLAMA] = "ollama",     [COMPAT_PRESET_LLAMACPP] = "llamacpp",
    [COMPAT_PRESET_GROQ] = "groq",         [COMPAT_PRESET_MISTRAL] = "mistral",
    [COMPAT_PRESET_DEEPSEEK] = "deepseek", [COMPAT_PRESET_TOGETHER] = "together",
    [COMPAT_PRESET_OPENROUTER] = "openrouter",
};

const char *compat_preset_name(compat_preset_t preset)
{
    return preset >= 0 && preset < COMPAT_PRESET_COUNT ? preset_names[preset] : "generic";
}

int compat_preset_from_name(const char *name, compat_preset_t *preset)
{
    for (int i = 0; name != NULL && i < COMPAT_PRESET_COUNT; i++) {
        if (strcmp(name, preset_names[i]) == 0) {
            *preset = (compat_preset_t)i;
            return 0;
        }
    }
    return -1;
}

compat_preset_t compat_preset_infer(const char *base_url)
{
    if (base_url == NULL)
        return COMPAT_PRESET_GENERIC;
    const char *host = strstr(base_url, "://");
    host = host ? host + 3 : base_url;
    size_t host_length = strcspn(host, ":/?#");
    static const struct {
        const char *host;
        compat_preset_t preset;
    } hosts[] = {
        {"api.groq.com", COMPAT_PRESET_GROQ},         {"api.mistral.ai", COMPAT_PRESET_MISTRAL},
        {"api.deepseek.com", COMPAT_PRESET_DEEPSEEK}, {"api.together.xyz", COMPAT_PRESET_TOGETHER},
        {"openrouter.ai", COMPAT_PRESET_OPENROUTER},
    };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
        if (strlen(hosts[i].host) == host_length && strncasecmp(host, hosts[i].host, host_length) == 0)
            return hosts[i].preset;
    if (host[host_length] == ':') {
        const char *port = host + host_length + 1;
        size_t port_length = strcspn(port, "/?#");
        if (port_length == 5 && strncmp(port, "11434", 5) == 0)
            return COMPAT_PRESET_OLLAMA;
    }
    return COMPAT_PRESET_GENERIC;
}

bool compat_preset_sends_stream_options(compat_preset_t preset)
{
    return preset != COMPAT_PRESET_MISTRAL;
}

bool compat_preset_estimates_usage(compat_preset_t preset)
{
    return preset == COMPAT_PRESET_OLLAMA || preset == COMPAT_PRESET_LLAMACPP;
}

bool compat_preset_hooks_stream(compat_preset_t preset)
{
    return preset != COMPAT_PRESET_GENERIC && preset != COMPAT_PRESET_VLLM;
}

bool compat_preset_hooks_response(compat_preset_t preset)
{
    return preset == COMPAT_PRESET_DEEPSEEK || compat_preset_estimates_usage(preset);
}

compat_preset_t compat_preset_of(const request_t *request)
{
    const provider_config_t *provider = request->provider;
    if (provider == NULL || provider->type != PROVIDER_OPENAI_COMPATIBLE)
        return COMPAT_PRESET_GENERIC;
    return (compat_preset_t)provider->preset;
}

/* The body without stream_options, with the upstream model: Mistral answers
 * 422 extra_forbidden to any stream_options (and streams usage on its own). */
int compat_presets_build_body(request_t *request, provider_call_t *call)
{
    if (compat_preset_sends_stream_options(compat_preset_of(request)))
        return 0;
    json_t *body = json_copy(request->body); /* shallow: the client's tree stays as it was */
    if (body == NULL || json_object_set_new(body, "model", json_string(request->upstream_model)) != 0) {
        json_decref(body);
        return -1;
    }
    json_object_del(body, "stream_options");
    call->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (call->body == NULL)
        return -1;
    call->body_length = strlen(call->body);
    return 1;
}

long compat_presets_tokens_for_chars(size_t characters)
{
    return (long)((characters + 3) / 4);
}

bool compat_presets_fix_usage(compat_preset_t preset, json_t *usage)
{
    if (preset != COMPAT_PRESET_DEEPSEEK || !json_is_object(usage))
        return false;
    const json_t *hit = json_object_get(usage, "prompt_cache_hit_tokens");
    if (!json_is_integer(hit))
        return false;
    json_t *details = json_object_get(usage, "prompt_tokens_details");
    if (json_is_integer(json_object_get(details, "cached_tokens")))
        return false; /* the server's own count wins */
    if (!json_is_object(details)) {
        details = json_object();
        if (details == NULL || json_object_set_new(usage, "prompt_tokens_details", details) != 0)
            return false;
    }
    return json_object_set_new(details, "cached_tokens", json_integer(json_integer_value(hit))) == 0;
}

/* Characters of text a chunk (or a complete answer) carries in its choices:
 * content, reasoning_content (DeepSeek), tool-call arguments, legacy text. */
static size_t choices_chars(const json_t *choices, const char *holder)
{
    size_t total = 0, index;
    json_t *choice;
    json_array_foreach(choices, index, choice) {
        const json_t *text = json_object_get(choice, "text");
        if (json_is_string(text))
            total += json_string_length(text);
        const json_t *delta = json_object_get(choice, holder);
        static const char *const fields[] = {"content", "reasoning_content"};
        for (size_t i = 0; i < 2; i++) {
            const json_t *value = json_object_get(delta, fields[i]);
            if (json_is_string(value))
                total += json_string_length(value);
        }
        size_t call_index;
        json_t *call;
        json_array_foreach(json_object_get(delta, "tool_calls"), call_index, call) {
            const json_t *arguments = json_object_get(json_object_get(call, "function"), "arguments");
            if (json_is_string(arguments))
                total += json_string_length(arguments);
        }
    }
    return total;
}

static int append_json_event(buf_t *out, const json_t *chunk)
{
    char *text = json_dumps(chunk, JSON_COMPACT);
    if (text == NULL)
        return PROVIDER_EVENT_FAILED;
    int rc = provider_event_data(out, text, strlen(text));
    free(text);
    return rc;
}

/* The usage chunk (choices: []) the client asked for and the upstream did not send separately. */
static int append_usage_chunk(request_t *request, const compat_stream_t *state, buf_t *out)
{
    const usage_t *usage = &request->usage;
    json_t *object = json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)usage->prompt_tokens,
                               "completion_tokens", (json_int_t)usage->completion_tokens, "total_tokens",
                               (json_int_t)(usage->prompt_tokens + usage->completion_tokens));
    if (object != NULL && usage->cached_tokens > 0)
        json_object_set_new(object, "prompt_tokens_details", json_pack("{s:I}", "cached_tokens",
                                                                       (json_int_t)usage->cached_tokens));
    if (object != NULL && usage->reasoning_tokens > 0)
        json_object_set_new(object, "completion_tokens_details",
                            json_pack("{s:I}", "reasoning_tokens", (json_int_t)usage->reasoning_tokens));
    if (object != NULL && usage->is_estimated)
        json_object_set_new(object, "estimated", json_true());
    const char *kind = request->endpoint == ENDPOINT_COMPLETIONS ? "text_completion" : "chat.completion.chunk";
    json_t *chunk = object ? json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", state->id ? state->id : request->id,
                                       "object", kind, "created", (json_int_t)state->created, "model",
                                       state->model ? state->model : provider_reply_model(request), "choices",
                                       "usage", object)
                           : NULL;
    int rc = chunk ? append_json_event(out, chunk) : PROVIDER_EVENT_FAILED;
    json_decref(chunk);
    return rc;
}

static void estimate_usage(request_t *request, size_t completion_chars)
{
    request->usage = (usage_t){
        .is_known = true,
        .is_estimated = true,
        .prompt_tokens = router_estimate_prompt_tokens(request->body),
        .completion_tokens = compat_presets_tokens_for_chars(completion_chars),
    };
}

/* [DONE]: what is still owed before it — an estimate, the client's usage chunk. */
static int finish(request_t *request, compat_stream_t *state, buf_t *out)
{
    compat_preset_t preset = compat_preset_of(request);
    if (!request->usage.is_known && compat_preset_estimates_usage(preset))
        estimate_usage(request, state->completion_chars);
    if (request->client_wants_usage && !state->has_sent_usage_chunk && request->usage.is_known &&
        append_usage_chunk(request, state, out) != PROVIDER_EVENT_OK)
        return PROVIDER_EVENT_FAILED;
    return PROVIDER_EVENT_OK;
}

static void remember_identity(request_t *request, compat_stream_t *state, const json_t *chunk)
{
    if (state->id != NULL)
        return;
    const char *id = json_string_value(json_object_get(chunk, "id"));
    const char *model = json_string_value(json_object_get(chunk, "model"));
    if (id == NULL || id[0] == '\0')
        return;
    state->id = arena_strdup(&request->arena, id);
    state->model = model ? arena_strdup(&request->arena, model) : NULL;
    state->created = json_integer_value(json_object_get(chunk, "created"));
}

int compat_presets_translate_event(request_t *request, compat_stream_t *state, const sse_event_t *event, buf_t *out)
{
    if (event->data_length == 6 && memcmp(event->data, "[DONE]", 6) == 0) {
        if (finish(request, state, out) != PROVIDER_EVENT_OK)
            return PROVIDER_EVENT_FAILED;
        return provider_event_data(out, event->data, event->data_length) == PROVIDER_EVENT_OK ? PROVIDER_EVENT_DONE
                                                                                        : PROVIDER_EVENT_FAILED;
    }
    json_t *chunk = json_loadb(event->data, event->data_length, 0, NULL);
    if (!json_is_object(chunk)) { /* not a JSON object: pass it on, the client decides */
        json_decref(chunk);
        return provider_event_data(out, event->data, event->data_length);
    }
    compat_preset_t preset = compat_preset_of(request);
    int result;
    if (json_object_get(chunk, "error") != NULL) {
        result = provider_event_data(out, event->data, event->data_length) == PROVIDER_EVENT_OK ? PROVIDER_EVENT_ERROR
                                                                                          : PROVIDER_EVENT_FAILED;
        json_decref(chunk);
        return result;
    }
    remember_identity(request, state, chunk);
    json_t *usage = json_object_get(chunk, "usage");
    const json_t *choices = json_object_get(chunk, "choices");
    bool is_changed = false;
    if (json_is_object(usage)) {
        is_changed = compat_presets_fix_usage(preset, usage);
        usage_from_openai(usage, &request->usage);
        request->usage.is_estimated = false;
        state->has_standard_usage = true;
    } else if (preset == COMPAT_PRESET_GROQ && !state->has_standard_usage) {
        /* Groq's own place for stream usage (the last chunk), used when no standard usage came */
        usage_from_openai(json_object_get(json_object_get(chunk, "x_groq"), "usage"), &request->usage);
    }
    if (compat_preset_estimates_usage(preset))
        state->completion_chars += choices_chars(choices, "delta");
    bool is_usage_only = json_is_object(usage) && json_is_array(choices) && json_array_size(choices) == 0;
    if (is_usage_only && !request->client_wants_usage) {
        result = PROVIDER_EVENT_OK; /* the usage chunk we asked for on the client's behalf: keep it to ourselves */
    } else {
        state->has_sent_usage_chunk |= is_usage_only;
        result = is_changed ? append_json_event(out, chunk) : provider_event_data(out, event->data, event->data_length);
    }
    json_decref(chunk);
    return result;
}

int compat_presets_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                      bool *is_unchanged)
{
    json_t *response = json_loadb(body, length, 0, NULL);
    if (!json_is_object(response)) {
        json_decref(response);
        return -1;
    }
    compat_preset_t preset = compat_preset_of(request);
    json_t *usage = json_object_get(response, "usage");
    bool is_changed = false;
    if (json_is_object(usage)) {
        is_changed = compat_presets_fix_usage(preset, usage);
        usage_from_openai(usage, &request->usage);
    } else if (compat_preset_estimates_usage(preset) && json_is_array(json_object_get(response, "choices"))) {
        estimate_usage(request, choices_chars(json_object_get(response, "choices"), "message"));
    }
    *is_unchanged = true;
    if (is_changed) {
        char *text = json_dumps(response, JSON_COMPACT);
        if (text == NULL || buf_append_str(out, text) != 0) {
            free(text);
            json_decref(response);
            return -1;
        }
        free(text);
        *is_unchanged = false;
    }
    json_decref(response);
    return 0;
}
