/* eventstream.h — AWS event stream framing (application/vnd.amazon.eventstream).
 *
 * Bedrock's ConverseStream answers in binary frames rather than SSE. Each
 * frame is, big-endian: total length u32, headers length u32, CRC-32 of those
 * eight bytes, the headers, the payload, and a CRC-32 of everything before it.
 * A header is a one-byte name length, the name, a one-byte value type and the
 * value (type 7, a string, has a two-byte length).
 *
 * The decoder is incremental like the SSE parser: frames arrive cut at any
 * byte, it keeps the unfinished one between calls, checks both CRCs and hands
 * each complete frame to a callback. The encoder exists for tests and the
 * mock server. */
#ifndef SLUICE_EVENTSTREAM_H
#define SLUICE_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/util/buf.h"

enum {
    EVENTSTREAM_PRELUDE_LENGTH = 12, /* total, headers length, prelude CRC */
    EVENTSTREAM_OVERHEAD = 16,       /* prelude + message CRC */
};

enum {
    EVENTSTREAM_ERROR_MEMORY = -1,
    EVENTSTREAM_ERROR_CRC = -2,       /* a prelude or message CRC does not match */
    EVENTSTREAM_ERROR_MALFORMED = -3, /* lengths or headers that cannot be */
    EVENTSTREAM_ERROR_TOO_LARGE = -4, /* a frame longer than the decoder's limit */
};

/* Bytes inside a frame; not NUL-terminated. data is NULL when absent. */
typedef struct eventstream_string {
    const char *data;
    size_t length;
} eventstream_string_t;

/* A decoded frame; everything points into the decoder's buffer and is valid
 * only during the callback. */
typedef struct eventstream_message {
    eventstream_string_t message_type;   /* ":message-type": event, exception or error */
    eventstream_string_t event_type;     /* ":event-type" */
    eventstream_string_t exception_type; /* ":exception-type" */
    eventstream_string_t content_type;   /* ":content-type" */
    eventstream_string_t error_code;     /* ":error-code" */
    eventstream_string_t error_message;  /* ":error-message" */
    const char *payload;
    size_t payload_length;
} eventstream_message_t;

/* Returns 0 to go on; a positive value stops decoding and is returned by feed. */
typedef int (*eventstream_callback_t)(void *argument, const eventstream_message_t *message);

/* Owner: whoever embeds it (a stream's adapter state); release with eventstream_decoder_free(). */
typedef struct eventstream_decoder {
    buf_t pending; /* the start of a frame not yet complete */
    size_t max_message_bytes;
} eventstream_decoder_t;

void eventstream_decoder_init(eventstream_decoder_t *decoder, size_t max_message_bytes);
void eventstream_decoder_free(eventstream_decoder_t *decoder);
/* Decodes every frame completed by bytes. Returns 0, an EVENTSTREAM_ERROR_*
 * code (the stream cannot be trusted past it), or the callback's value. */
int eventstream_decoder_feed(eventstream_decoder_t *decoder, const char *bytes, size_t length,
                             eventstream_callback_t callback, void *argument);
/* Bytes of an unfinished frame held back (nonzero at the end means truncation). */
size_t eventstream_decoder_pending(const eventstream_decoder_t *decoder);

/* zlib's CRC-32; pass 0 to start, the previous result to continue. */
uint32_t eventstream_crc32(uint32_t crc, const void *bytes, size_t length);

typedef struct eventstream_header {
    const char *name;
    const char *value; /* sent as a string (type 7) */
} eventstream_header_t;

/* Appends one frame. Returns 0 or -1 (out of memory or oversized header). */
int eventstream_encode(buf_t *out, const eventstream_header_t *headers, size_t header_count, const char *payload,
                       size_t payload_length);

#endif
