/* json_scan.c — a JSON checker that builds nothing (see json_scan.h).
 *
 * It follows jansson's decoder (load.c, utf.c) rule for rule, so that a body
 * it accepts is one json_loadb would accept and the other way round: the
 * whitespace set, numbers without leading zeros, integers that fit a
 * json_int_t, reals that do not overflow strtod, the string escapes (a
 * surrogate pair or nothing, no \u0000), strict UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), the literals, and at most
 * JSON_PARSER_MAX_DEPTH nested values counting scalars. A unit test checks the
 * two agree on many malformed documents. */
#include "sluice/util/json_scan.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef const unsigned char *cursor_t;

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static cursor_t skip_space(cursor_t p, cursor_t end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int32_t hex4(cursor_t p, cursor_t end)
{
    if (end - p < 4)
        return -1;
    int32_t value = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        value <<= 4;
        if (is_digit(c))
            value += c - '0';
        else if (c >= 'a' && c <= 'f')
            value += c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            value += c - 'A' + 10;
        else
            return -1;
    }
    return value;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. */
static size_t utf8_sequence(cursor_t p, cursor_t end)
{
    unsigned char first = *p;
    size_t count;
    int32_t value;
    if (first >= 0xC2 && first <= 0xDF)
        count = 2, value = first & 0x1F;
    else if (first >= 0xE0 && first <= 0xEF)
        count = 3, value = first & 0x0F;
    else if (first >= 0xF0 && first <= 0xF4)
        count = 4, value = first & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < count)
        return 0;
    for (size_t i = 1; i < count; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
        value = (value << 6) + (p[i] & 0x3F);
    }
    if (value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF))
        return 0;
    if ((count == 3 && value < 0x800) || (count == 4 && value < 0x10000))
        return 0;
    return count;
}

/* p is at the opening quote; returns the position after the closing one, or NULL. */
static cursor_t scan_string(cursor_t p, cursor_t end, bool *has_escape)
{
    p++;
    for (;;) {
        if (p >= end)
            return NULL;
        unsigned char c = *p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c < 0x80 && c != '\\') {
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t count = utf8_sequence(p, end);
            if (count == 0)
                return NULL;
            p += count;
            continue;
        }
        *has_escape = true;
        if (end - p < 2)
            return NULL;
        c = p[1];
        if (c != 'u') {
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't')
                return NULL;
            p += 2;
            continue;
        }
        int32_t value = hex4(p + 2, end);
        if (value <= 0) /* not four hex digits, or \u0000 (jansson refuses NUL without JSON_ALLOW_NUL) */
            return NULL;
        p += 6;
        if (value >= 0xDC00 && value <= 0xDFFF)
            return NULL;
        if (value >= 0xD800 && value <= 0xDBFF) {
            if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
                return NULL;
            int32_t low = hex4(p + 2, end);
            if (low < 0xDC00 || low > 0xDFFF)
                return NULL;
            p += 6;
        }
    }
}

/* Whether the real number text overflows a double, as jansson's strtod check does. */
static bool real_overflows(cursor_t start, cursor_t end)
{
    char small[64];
    size_t length = (size_t)(end - start);
    char *text = length < sizeof small ? small : malloc(length + 1);
    if (text == NULL)
        return true;
    memcpy(text, start, length);
    text[length] = '\0';
    errno = 0;
    double value = strtod(text, NULL);
    bool overflows = (value == HUGE_VAL || value == -HUGE_VAL) && errno == ERANGE;
    if (text != small)
        free(text);
    return overflows;
}

static cursor_t scan_number(cursor_t p, cursor_t end)
{
    cursor_t start = p;
    bool is_negative = *p == '-';
    if (is_negative)
        p++;
    cursor_t digits = p;
    if (p >= end)
        return NULL;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return NULL;
    } else if (is_digit(*p)) {
        while (p < end && is_digit(*p))
            p++;
    } else {
        return NULL;
    }
    size_t integer_digits = (size_t)(p - digits);
    bool is_real = false, has_exponent = false;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
        is_real = true;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
        is_real = has_exponent = true;
    }
    if (!is_real) { /* must fit json_int_t (long long), or jansson reports an overflow */
        if (integer_digits > 19)
            return NULL;
        if (integer_digits == 19 &&
            memcmp(digits, is_negative ? "9223372036854775808" : "9223372036854775807", 19) > 0)
            return NULL;
    } else if ((has_exponent || integer_digits > 300) && real_overflows(start, p)) {
        return NULL; /* without an exponent only 309 or more integer digits can overflow */
    }
    return p;
}

static cursor_t scan_literal(cursor_t p, cursor_t end)
{
    static const char *const words[] = {"true", "false", "null"};
    cursor_t word_end = p;
    while (word_end < end && is_alpha(*word_end))
        word_end++;
    size_t length = (size_t)(word_end - p);
    for (size_t i = 0; i < 3; i++)
        if (length == strlen(words[i]) && memcmp(p, words[i], length) == 0)
            return word_end;
    return NULL;
}

int json_scan_members(const char *text, size_t length, size_t count, const char *const keys[],
                      json_scan_value_t values[])
{
    for (size_t i = 0; i < count; i++)
        values[i] = (json_scan_value_t){NULL, 0};
    if (text == NULL)
        return JSON_SCAN_INVALID;
    cursor_t p = (cursor_t)text, end = p + length;
    size_t capture = 0; /* the index of the key whose value is being read */
    char open[JSON_PARSER_MAX_DEPTH]; /* the kind of each open container */
    size_t depth = 0;                 /* open containers; a value inside them is at level depth + 1 */
    bool is_undecided = false, is_capturing = false, has_escape = false;
    cursor_t capture_start = NULL;

    p = skip_space(p, end);
    if (p >= end || *p != '{')
        return JSON_SCAN_INVALID;

value:
    p = skip_space(p, end);
    if (depth + 1 > JSON_PARSER_MAX_DEPTH || p >= end)
        return JSON_SCAN_INVALID;
    if (*p == '{' || *p == '[') {
        char kind = (char)*p;
        open[depth++] = kind;
        p = skip_space(p + 1, end);
        if (p < end && *p == (kind == '{' ? '}' : ']')) {
            p++;
            depth--;
            goto after_value;
        }
        if (kind == '{')
            goto member;
        goto value;
    }
    if (*p == '"')
        p = scan_string(p, end, &has_escape);
    else if (*p == '-' || is_digit(*p))
        p = scan_number(p, end);
    else if (is_alpha(*p))
        p = scan_literal(p, end);
    else
        return JSON_SCAN_INVALID;
    if (p == NULL)
        return JSON_SCAN_INVALID;

after_value:
    if (depth == 1 && is_capturing) {
        values[capture] = (json_scan_value_t){(const char *)capture_start, (size_t)(p - capture_start)};
        is_capturing = false;
    }
    if (depth == 0) {
        if (skip_space(p, end) != end)
            return JSON_SCAN_INVALID;
        if (is_undecided) {
            for (size_t i = 0; i < count; i++)
                values[i] = (json_scan_value_t){NULL, 0};
            return JSON_SCAN_UNDECIDED;
        }
        return JSON_SCAN_OK;
    }
    p = skip_space(p, end);
    if (p >= end)
        return JSON_SCAN_INVALID;
    if (*p == ',') {
        p++;
        if (open[depth - 1] == '{')
            goto member;
        goto value;
    }
    if (*p != (open[depth - 1] == '{' ? '}' : ']'))
        return JSON_SCAN_INVALID;
    p++;
    depth--;
    goto after_value;

member:
    p = skip_space(p, end);
    if (p >= end || *p != '"')
        return JSON_SCAN_INVALID;
    cursor_t name = p;
    has_escape = false;
    if ((p = scan_string(p, end, &has_escape)) == NULL)
        return JSON_SCAN_INVALID;
    if (depth == 1) {
        is_undecided |= has_escape; /* "us\u0061ge" is "usage" too: leave it to the full parser */
        size_t name_length = (size_t)(p - name) - 2;
        is_capturing = false;
        for (size_t i = 0; !has_escape && !is_capturing && i < count; i++)
            if (strncmp(keys[i], (const char *)name + 1, name_length) == 0 && keys[i][name_length] == '\0')
                is_capturing = true, capture = i;
    }
    p = skip_space(p, end);
    if (p >= end || *p != ':')
        return JSON_SCAN_INVALID;
    p = skip_space(p + 1, end);
    if (depth == 1)
        capture_start = p;
    goto value;
}

int json_scan_member(const char *text, size_t length, const char *key, const char **value, size_t *value_length)
{
    json_scan_value_t found;
    int result = json_scan_members(text, length, 1, &key, &found);
    *value = found.text;
    *value_length = found.length;
    return result;
}

bool json_scan_integer(json_scan_value_t value, long long *integer)
{
    if (value.text == NULL || value.length == 0)
        return false; /* a member that is absent (no pointer arithmetic on NULL) */
    cursor_t p = (cursor_t)value.text, end = p + value.length;
    if (*p != '-' && !is_digit(*p))
        return false;
    bool is_negative = *p == '-';
    unsigned long long magnitude = 0;
    for (p += is_negative; p < end; p++) {
        if (!is_digit(*p))
            return false; /* a real: '.', 'e' or 'E' */
        magnitude = magnitude * 10 + (unsigned)(*p - '0');
    }
    /* the scan already refused integers that do not fit a long long */
    *integer = is_negative ? (long long)(0 - magnitude) : (long long)magnitude;
    return true;
}

/* Skips the string at p (at its opening quote) in text a parser already
 * accepted; returns the position after the closing quote. */
static cursor_t skip_trusted_string(cursor_t p, cursor_t end, bool *has_escape)
{
    for (p++; p < end; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\') {
            *has_escape = true;
            p++;
        }
    }
    return end;
}

/* Skips the value at p in text a parser already accepted. */
static cursor_t skip_trusted_value(cursor_t p, cursor_t end)
{
    bool has_escape = false;
    if (*p == '"')
        return skip_trusted_string(p, end, &has_escape);
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            unsigned char c = *p;
            if (c == '"') {
                p = skip_trusted_string(p, end, &has_escape);
                continue;
            }
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return end;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
        p++;
    return p;
}

int json_locate_members(const char *text, size_t length, size_t count, const char *const keys[],
                        json_scan_value_t values[], size_t *close)
{
    for (size_t i = 0; i < count; i++)
        values[i] = (json_scan_value_t){NULL, 0};
    if (text == NULL)
        return JSON_SCAN_INVALID;
    cursor_t start = (cursor_t)text, end = start + length;
    cursor_t p = skip_space(start, end);
    if (p >= end || *p != '{')
        return JSON_SCAN_INVALID;
    p++;
    for (;;) {
        p = skip_space(p, end);
        if (p >= end)
            return JSON_SCAN_INVALID;
        if (*p == '}')
            break;
        if (*p == ',')
            p = skip_space(p + 1, end);
        if (p >= end || *p != '"')
            return JSON_SCAN_INVALID;
        cursor_t name = p + 1;
        bool has_escape = false;
        p = skip_trusted_string(p, end, &has_escape);
        if (has_escape)
            return JSON_SCAN_UNDECIDED;
        size_t name_length = (size_t)(p - name) - 1;
        p = skip_space(p, end);
        if (p >= end || *p != ':')
            return JSON_SCAN_INVALID;
        p = skip_space(p + 1, end);
        if (p >= end)
            return JSON_SCAN_INVALID;
        cursor_t value = p;
        p = skip_trusted_value(p, end);
        for (size_t i = 0; i < count; i++)
            if (strncmp(keys[i], (const char *)name, name_length) == 0 && keys[i][name_length] == '\0')
                values[i] = (json_scan_value_t){(const char *)value, (size_t)(p - value)};
    }
    *close = (size_t)(p - start);
    return JSON_SCAN_OK;
}
