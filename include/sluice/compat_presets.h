/* compat_presets.h — per-server quirks of openai-compatible providers.
 *
 * A provider of type openai-compatible has a preset (config key `preset`,
 * else inferred from base_url). Most servers speak OpenAI's wire format
 * closely enough that the openai adapter needs nothing special (`generic`,
 * `vllm`); the others differ in ways that matter to a gateway which must know
 * every request's tokens:
 *   - mistral   refuses stream_options (422 extra_forbidden): not sent, and
 *               its usage arrives on the finish chunk instead;
 *   - groq      may put stream usage only in x_groq.usage of the last chunk;
 *   - deepseek  reports cache hits as prompt_cache_hit_tokens: mapped to
 *               prompt_tokens_details.cached_tokens (log and client);
 *   - together, openrouter
 *               may put usage on the finish chunk rather than a separate one;
 *   - ollama, llamacpp
 *               older versions send no stream usage at all: estimated
 *               (characters / 4) and logged with usage_estimated: true.
 * When the client asked for usage (stream_options.include_usage) and the
 * upstream sent no separate usage chunk, one is written before [DONE].
 *
 * The openai adapter calls in here only for providers whose preset needs it
 * (compat_preset_hooks_stream / _response), so plain OpenAI traffic keeps its
 * fast path. */
#ifndef SLUICE_COMPAT_PRESETS_H
#define SLUICE_COMPAT_PRESETS_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice/provider.h"

typedef enum compat_preset {
    COMPAT_PRESET_GENERIC = 0,
    COMPAT_PRESET_VLLM,
    COMPAT_PRESET_OLLAMA,
    COMPAT_PRESET_LLAMACPP,
    COMPAT_PRESET_GROQ,
    COMPAT_PRESET_MISTRAL,
    COMPAT_PRESET_DEEPSEEK,
    COMPAT_PRESET_TOGETHER,
    COMPAT_PRESET_OPENROUTER,
    COMPAT_PRESET_COUNT
} compat_preset_t;

const char *compat_preset_name(compat_preset_t preset);
/* 0 and *preset set, or -1 when name is no preset. */
int compat_preset_from_name(const char *name, compat_preset_t *preset);
/* From the base_url's host (api.groq.com, api.mistral.ai, api.deepseek.com,
 * api.together.xyz, openrouter.ai) or port (11434: ollama); else generic. */
compat_preset_t compat_preset_infer(const char *base_url);

/* What a preset does. */
bool compat_preset_sends_stream_options(compat_preset_t preset);
bool compat_preset_estimates_usage(compat_preset_t preset);
/* Whether the adapter hands stream events / complete bodies to this module. */
bool compat_preset_hooks_stream(compat_preset_t preset);
bool compat_preset_hooks_response(compat_preset_t preset);

/* The preset in effect for the request's provider (generic unless openai-compatible). */
compat_preset_t compat_preset_of(const request_t *request);

/* Per-stream state; the openai adapter's stream_state. Zeroed at start. */
typedef struct compat_stream {
    bool has_standard_usage;   /* a top-level "usage" object was read */
    bool has_sent_usage_chunk; /* a usage-only chunk (choices: []) went to the client */
    size_t completion_chars;   /* streamed text, for an estimate */
    const char *id;            /* the upstream's chunk id, model, created (request arena) */
    const char *model;
    long long created;
} compat_stream_t;

/* build_call: builds call->body itself when the preset must change the body
 * beyond the model (mistral: no stream_options). Returns 1 when it did, 0
 * when the adapter should build the body as usual, -1 out of memory. */
int compat_presets_build_body(request_t *request, provider_call_t *call);

/* translate_event for hooked presets: as provider_adapter_t.translate_event. */
int compat_presets_translate_event(request_t *request, compat_stream_t *state, const sse_event_t *event, buf_t *out);

/* translate_response for hooked presets: as provider_adapter_t.translate_response. */
int compat_presets_translate_response(request_t *request, const char *body, size_t length, buf_t *out,
                                      bool *is_unchanged);

/* Pieces, exposed for the unit tests. */
/* Rewrites an OpenAI usage object in place for the preset (deepseek: adds
 * prompt_tokens_details.cached_tokens from prompt_cache_hit_tokens when the
 * server gave none); true when it changed anything. */
bool compat_presets_fix_usage(compat_preset_t preset, json_t *usage);
/* ceil(characters / 4): the estimate's tokens for a text (the prompt's come
 * from router_estimate_prompt_tokens, the same rule). */
long compat_presets_tokens_for_chars(size_t characters);

#endif
