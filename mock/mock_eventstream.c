/* mock_eventstream.c — AWS event-stream framing (application/vnd.amazon.eventstream), written
 * from the format description rather than shared with the gateway, so an encoding or CRC bug on
 * either side shows up as a test failure instead of cancelling out.
 *
 * A message is: total length u32 | headers length u32 | CRC32 of those 8 bytes | headers |
 * payload | CRC32 of everything before it. All integers are big-endian; the CRC is the zlib one
 * (reflected polynomial 0xEDB88320). Each header is name length u8, name, type u8 and, for type 7
 * (string), a u16 length and the bytes. */
#include <event2/buffer.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

static uint32_t crc_table[256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

uint32_t mock_crc32(uint32_t crc, const void *bytes, size_t length)
{
    pthread_once(&crc_table_once, crc_table_build);
    const unsigned char *p = bytes;
    crc ^= 0xFFFFFFFFu;
    for (size_t i = 0; i < length; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static void put_u32(unsigned char *at, uint32_t value)
{
    at[0] = (unsigned char)(value >> 24);
    at[1] = (unsigned char)(value >> 16);
    at[2] = (unsigned char)(value >> 8);
    at[3] = (unsigned char)value;
}

/* Appends a string header at `at`; returns the bytes written. */
static size_t put_string_header(unsigned char *at, const char *name, const char *value)
{
    size_t name_length = strlen(name);
    size_t value_length = strlen(value);
    size_t used = 0;
    at[used++] = (unsigned char)name_length;
    memcpy(at + used, name, name_length);
    used += name_length;
    at[used++] = 7;
    at[used++] = (unsigned char)(value_length >> 8);
    at[used++] = (unsigned char)value_length;
    memcpy(at + used, value, value_length);
    return used + value_length;
}

int mock_eventstream_frame(struct evbuffer *out, const char *message_type, const char *type_name,
                           const char *payload, size_t payload_length)
{
    bool is_exception = strcmp(message_type, "exception") == 0;
    const char *type_header = is_exception ? ":exception-type" : ":event-type";
    if (strlen(type_name) > 200)
        return -1;
    size_t headers_capacity = 3 * (1 + 16 + 1 + 2) + strlen(type_name) + strlen(message_type) + 16;
    size_t capacity = 12 + headers_capacity + payload_length + 4;
    unsigned char *message = malloc(capacity);
    if (message == NULL)
        return -1;
    size_t headers_length = 0;
    unsigned char *headers = message + 12;
    headers_length += put_string_header(headers + headers_length, type_header, type_name);
    headers_length += put_string_header(headers + headers_length, ":content-type", "application/json");
    headers_length += put_string_header(headers + headers_length, ":message-type", message_type);
    size_t total = 12 + headers_length + payload_length + 4;
    put_u32(message, (uint32_t)total);
    put_u32(message + 4, (uint32_t)headers_length);
    put_u32(message + 8, mock_crc32(0, message, 8));
    memcpy(message + 12 + headers_length, payload, payload_length);
    put_u32(message + total - 4, mock_crc32(0, message, total - 4));
    int result = evbuffer_add(out, message, total);
    free(message);
    return result;
}
