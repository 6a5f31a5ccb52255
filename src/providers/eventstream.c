/* eventstream.c — AWS event stream frames (see eventstream.h).
 *
 * Frames are decoded straight from the bytes curl hands over; only the tail
 * of a frame cut by the end of a read is copied, into the pending buffer,
 * and completed from the next read. The prelude CRC is checked as soon as
 * its twelve bytes are there, so a corrupt length is rejected before the
 * decoder waits for (or allocates) a frame that will never come. */
#include "sluice/eventstream.h"

#include <string.h>

/* CRC-32 (reflected polynomial 0xEDB88320, as zlib) a nibble at a time: a
 * sixteen-entry constant table keeps it free of initialisation races. */
static const uint32_t crc_nibble_table[16] = {
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
    0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
};

uint32_t eventstream_crc32(uint32_t crc, const void *bytes, size_t length)
{
    const unsigned char *p = bytes;
    crc = ~crc;
    for (size_t i = 0; i < length; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc_nibble_table[crc & 15];
        crc = (crc >> 4) ^ crc_nibble_table[crc & 15];
    }
    return ~crc;
}

static uint32_t read_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void eventstream_decoder_init(eventstream_decoder_t *decoder, size_t max_message_bytes)
{
    buf_init(&decoder->pending);
    decoder->max_message_bytes = max_message_bytes;
}

void eventstream_decoder_free(eventstream_decoder_t *decoder) { buf_free(&decoder->pending); }

size_t eventstream_decoder_pending(const eventstream_decoder_t *decoder) { return decoder->pending.length; }

static void set_known_header(eventstream_message_t *message, const char *name, size_t name_length,
                             eventstream_string_t value)
{
    static const struct {
        const char *name;
        size_t offset;
    } known[] = {
        {":message-type", offsetof(eventstream_message_t, message_type)},
        {":event-type", offsetof(eventstream_message_t, event_type)},
        {":exception-type", offsetof(eventstream_message_t, exception_type)},
        {":content-type", offsetof(eventstream_message_t, content_type)},
        {":error-code", offsetof(eventstream_message_t, error_code)},
        {":error-message", offsetof(eventstream_message_t, error_message)},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strlen(known[i].name) == name_length && memcmp(known[i].name, name, name_length) == 0) {
            *(eventstream_string_t *)((char *)message + known[i].offset) = value;
            return;
        }
    }
}

/* Walks the header block; only string headers are kept, the rest skipped. */
static int parse_headers(const unsigned char *p, size_t length, eventstream_message_t *message)
{
    static const int fixed_sizes[10] = {0, 0, 1, 2, 4, 8, -1, -1, 8, 16}; /* -1: u16 length + bytes */
    size_t at = 0;
    while (at < length) {
        size_t name_length = p[at++];
        if (name_length == 0 || at + name_length + 1 > length)
            return EVENTSTREAM_ERROR_MALFORMED;
        const char *name = (const char *)p + at;
        at += name_length;
        unsigned type = p[at++];
        if (type > 9)
            return EVENTSTREAM_ERROR_MALFORMED;
        size_t value_length;
        if (fixed_sizes[type] >= 0) {
            value_length = (size_t)fixed_sizes[type];
        } else {
            if (at + 2 > length)
                return EVENTSTREAM_ERROR_MALFORMED;
            value_length = (size_t)p[at] << 8 | p[at + 1];
            at += 2;
        }
        if (at + value_length > length)
            return EVENTSTREAM_ERROR_MALFORMED;
        if (type == 7)
            set_known_header(message, name, name_length,
                             (eventstream_string_t){.data = (const char *)p + at, .length = value_length});
        at += value_length;
    }
    return 0;
}

/* Checks the prelude of a frame starting at p (12 bytes available); returns
 * the frame's total length or an error. */
static long check_prelude(const eventstream_decoder_t *decoder, const unsigned char *p)
{
    uint32_t total = read_u32(p), headers_length = read_u32(p + 4);
    if (eventstream_crc32(0, p, 8) != read_u32(p + 8))
        return EVENTSTREAM_ERROR_CRC;
    if (total < EVENTSTREAM_OVERHEAD || headers_length > total - EVENTSTREAM_OVERHEAD)
        return EVENTSTREAM_ERROR_MALFORMED;
    if (total > decoder->max_message_bytes)
        return EVENTSTREAM_ERROR_TOO_LARGE;
    return (long)total;
}

static int dispatch_frame(const unsigned char *p, size_t total, eventstream_callback_t callback, void *argument)
{
    if (eventstream_crc32(0, p, total - 4) != read_u32(p + total - 4))
        return EVENTSTREAM_ERROR_CRC;
    size_t headers_length = read_u32(p + 4);
    eventstream_message_t message;
    memset(&message, 0, sizeof message);
    int rc = parse_headers(p + EVENTSTREAM_PRELUDE_LENGTH, headers_length, &message);
    if (rc != 0)
        return rc;
    message.payload = (const char *)p + EVENTSTREAM_PRELUDE_LENGTH + headers_length;
    message.payload_length = total - EVENTSTREAM_OVERHEAD - headers_length;
    return callback(argument, &message);
}

/* Decodes whole frames from the start of data; *used gets the bytes they
 * took. Stops at the first incomplete frame. */
static int decode_frames(eventstream_decoder_t *decoder, const unsigned char *data, size_t length, size_t *used,
                         eventstream_callback_t callback, void *argument)
{
    *used = 0;
    while (length - *used >= EVENTSTREAM_PRELUDE_LENGTH) {
        const unsigned char *frame = data + *used;
        long total = check_prelude(decoder, frame);
        if (total < 0)
            return (int)total;
        if ((size_t)total > length - *used)
            return 0;
        int rc = dispatch_frame(frame, (size_t)total, callback, argument);
        *used += (size_t)total;
        if (rc != 0)
            return rc;
    }
    return 0;
}

int eventstream_decoder_feed(eventstream_decoder_t *decoder, const char *bytes, size_t length,
                             eventstream_callback_t callback, void *argument)
{
    const unsigned char *input = (const unsigned char *)bytes;
    size_t used = 0;
    int rc;
    if (decoder->pending.length > 0) {
        /* Complete the held-back frame first: take just the bytes it still needs. */
        buf_t *pending = &decoder->pending;
        size_t take = 0;
        if (pending->length < EVENTSTREAM_PRELUDE_LENGTH) {
            take = EVENTSTREAM_PRELUDE_LENGTH - pending->length;
            take = take < length ? take : length;
            if (buf_append(pending, input, take) != 0)
                return EVENTSTREAM_ERROR_MEMORY;
            if (pending->length < EVENTSTREAM_PRELUDE_LENGTH)
                return 0;
        }
        long total = check_prelude(decoder, (const unsigned char *)pending->data);
        if (total < 0)
            return (int)total;
        size_t more = (size_t)total - pending->length;
        more = more < length - take ? more : length - take;
        if (buf_append(pending, input + take, more) != 0)
            return EVENTSTREAM_ERROR_MEMORY;
        take += more;
        if (pending->length < (size_t)total)
            return 0;
        rc = dispatch_frame((const unsigned char *)pending->data, (size_t)total, callback, argument);
        buf_clear(pending);
        if (rc != 0)
            return rc;
        input += take;
        length -= take;
    }
    rc = decode_frames(decoder, input, length, &used, callback, argument);
    if (rc != 0)
        return rc;
    if (used < length && buf_append(&decoder->pending, input + used, length - used) != 0)
        return EVENTSTREAM_ERROR_MEMORY;
    return 0;
}

static int append_u32(buf_t *out, uint32_t value)
{
    unsigned char bytes[4] = {(unsigned char)(value >> 24), (unsigned char)(value >> 16), (unsigned char)(value >> 8),
                              (unsigned char)value};
    return buf_append(out, bytes, 4);
}

int eventstream_encode(buf_t *out, const eventstream_header_t *headers, size_t header_count, const char *payload,
                       size_t payload_length)
{
    size_t headers_length = 0;
    for (size_t i = 0; i < header_count; i++) {
        size_t name_length = strlen(headers[i].name), value_length = strlen(headers[i].value);
        if (name_length == 0 || name_length > 255 || value_length > 65535)
            return -1;
        headers_length += 1 + name_length + 1 + 2 + value_length;
    }
    size_t total = EVENTSTREAM_OVERHEAD + headers_length + payload_length;
    if (total > UINT32_MAX)
        return -1;
    size_t start = out->length;
    int rc = append_u32(out, (uint32_t)total);
    rc |= append_u32(out, (uint32_t)headers_length);
    rc |= rc == 0 ? append_u32(out, eventstream_crc32(0, out->data + start, 8)) : -1;
    for (size_t i = 0; i < header_count && rc == 0; i++) {
        size_t name_length = strlen(headers[i].name), value_length = strlen(headers[i].value);
        unsigned char lengths[3] = {(unsigned char)name_length, 7, 0};
        rc |= buf_append(out, lengths, 1);
        rc |= buf_append(out, headers[i].name, name_length);
        lengths[0] = 7;
        lengths[1] = (unsigned char)(value_length >> 8);
        lengths[2] = (unsigned char)value_length;
        rc |= buf_append(out, lengths, 3);
        rc |= buf_append(out, headers[i].value, value_length);
    }
    if (rc == 0 && payload_length > 0)
        rc = buf_append(out, payload, payload_length);
    if (rc == 0)
        rc = append_u32(out, eventstream_crc32(0, out->data + start, out->length - start));
    if (rc != 0) {
        out->length = start;
        if (out->data != NULL)
            out->data[start] = '\0';
        return -1;
    }
    return 0;
}
