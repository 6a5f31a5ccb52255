/* translate.h — the translation steps the converting adapters share.
 *
 * Anthropic, Gemini and Bedrock take an OpenAI chat request apart the same
 * way: system and developer messages are gathered apart, user, assistant and
 * tool messages become turns of content parts, consecutive turns of one role
 * are merged (none of the three accepts two in a row) and empty turns are
 * dropped. Only the shape of a part differs, so an adapter describes its
 * parts with a few callbacks and lets translate_message walk the messages.
 *
 * Their answers come back through the same OpenAI objects: a tool call, the
 * assistant message, a choice, the chat.completion with usage, and the
 * embeddings list (float arrays, or base64 float32 when the client asked). */
#ifndef SLUICE_TRANSLATE_H
#define SLUICE_TRANSLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sluice/request.h"
#include "sluice/util/buf.h"

/* ---- requests: OpenAI messages → a provider's turns ---------------------- */

typedef struct translate_messages translate_messages_t;

/* How one provider writes its content parts. Each returns 0 or -1 (after
 * translate_fail for a client error). */
typedef struct translate_part_writer {
    /* A text part; never called with empty text (no provider accepts it). */
    int (*append_text)(json_t *parts, const char *text, size_t length);
    /* An image part for an image_url part's URL (may be NULL). */
    int (*append_image)(translate_messages_t *messages, json_t *parts, const char *url);
    /* One of an assistant's tool calls, its arguments parsed (the reference
     * to input is taken). */
    int (*append_tool_call)(translate_messages_t *messages, json_t *parts, const char *id, const char *name,
                            json_t *input);
    /* A role "tool" message as parts of the user turn. */
    int (*append_tool_result)(translate_messages_t *messages, json_t *parts, const json_t *message);
} translate_part_writer_t;

/* Owner: the adapter's request builder (one build_call, on the stack). */
struct translate_messages {
    const char *provider;       /* names the provider in error messages */
    const char *assistant_role; /* "assistant"; Gemini says "model" */
    const char *parts_key;      /* the turn's parts member: "content"; Gemini "parts" */
    bool is_any_json_input;     /* tool arguments may be any JSON value, not only an object */
    const translate_part_writer_t *writer;
    void *context;              /* the adapter's builder, for the writer */
    json_t *turns;              /* both made by translate_messages_convert */
    json_t *system;             /* system and developer content, as parts */
    char error[256];            /* a client error; empty when a failure is out of memory */
    char param[64];
};

/* Records a client error (the request gets a 400); returns -1. */
int translate_fail(translate_messages_t *messages, const char *param, const char *message);

/* Appends item (a new reference, NULL allowed) to array: 0, or -1 when
 * item is NULL or cannot be added. */
int translate_append_new(json_t *array, json_t *item);

/* An OpenAI content value (string, parts or null) → parts: text, and images
 * when allow_images (only user turns carry them). */
int translate_content(translate_messages_t *messages, json_t *parts, const json_t *content, bool allow_images);

/* One OpenAI message → system parts or a turn, merged as translate_append_turn does. */
int translate_message(translate_messages_t *messages, const json_t *message);

/* The request's "messages" array → messages->turns and ->system (created
 * here). Returns 0, or -1 with both released. */
int translate_messages_convert(translate_messages_t *messages, const json_t *list);
/* Releases turns and system (NULL afterwards). */
void translate_messages_release(translate_messages_t *messages);

/* Adds {role, <parts_key>: parts} to turns, or extends the last turn when it
 * has the same role; empty parts are dropped. Takes parts' reference. */
int translate_append_turn(json_t *turns, const char *parts_key, const char *role, json_t *parts);

/* ---- answers: OpenAI objects --------------------------------------------- */

/* {id, type:"function", function:{name, arguments}} with input as the
 * arguments string ("{}" when input is NULL); NULL when out of memory. */
json_t *translate_tool_call(const char *id, const char *name, const json_t *input);

/* {role:"assistant", content, refusal:null[, tool_calls]}: content is the
 * text, or null when there is none and the message calls tools. Takes
 * tool_calls' reference (an array, possibly empty). */
json_t *translate_assistant_message(const buf_t *text, json_t *tool_calls);

/* {index, message, logprobs:null, finish_reason}. Takes message's reference. */
json_t *translate_choice(int index, json_t *message, const char *finish_reason);

/* The chat.completion with id, the reply model, choices (its reference is
 * taken) and, when request->usage is known, the usage object. */
json_t *translate_chat_completion(request_t *request, const char *id, json_t *choices);

/* One {object:"embedding", index, embedding} from an array of floats, as
 * base64 little-endian float32 when the request's encoding_format says so. */
json_t *translate_embedding(const request_t *request, const json_t *values, size_t index);

/* The embeddings list for data (its reference is taken); records tokens as
 * the request's prompt usage. */
json_t *translate_embeddings_list(request_t *request, json_t *data, long tokens);

/* Parses a complete 2xx body, translates it with translate (NULL = not a
 * valid answer) and appends the JSON to out. Returns 0 or -1. */
int translate_reply(request_t *request, const char *body, size_t length, buf_t *out,
                    json_t *(*translate)(request_t *request, const json_t *reply));

#endif
