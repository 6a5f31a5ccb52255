/* json_scan.h — checks a JSON document without building it, and finds one
 * member of its top-level object. For replies that are relayed as they are and
 * of which only one small member is read (an upstream's usage), where building
 * the whole tree with json_loadb would cost far more than the relay itself. */
#ifndef SLUICE_UTIL_JSON_SCAN_H
#define SLUICE_UTIL_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

enum {
    JSON_SCAN_OK = 0,         /* a valid object; *value is the member's text, or NULL when absent */
    JSON_SCAN_INVALID = -1,   /* json_loadb(text, length, 0) would fail, or the top level is not an object */
    JSON_SCAN_UNDECIDED = 1,  /* a top-level key uses escapes: parse the whole document instead */
};

/* The raw text of one member's value, or NULL and 0 when absent. */
typedef struct json_scan_value {
    const char *text;
    size_t length;
} json_scan_value_t;

/* Accepts exactly what json_loadb(text, length, 0, NULL) accepts (UTF-8,
 * escapes, integer and real overflow, nesting depth) and requires an object.
 * On JSON_SCAN_OK, values[i] is the raw text of the top-level member named
 * keys[i] (the last one if repeated, as json_object_get would). */
int json_scan_members(const char *text, size_t length, size_t count, const char *const keys[],
                      json_scan_value_t values[]);
/* The same for one key. */
int json_scan_member(const char *text, size_t length, const char *key, const char **value, size_t *value_length);
/* Whether a value json_scan_members returned is an integer (what jansson
 * would make a json_integer); if so its value goes to *integer. */
bool json_scan_integer(json_scan_value_t value, long long *integer);
/* For text a JSON parser already accepted (nothing is checked again): the raw
 * text of the top-level members named keys[i] (the last one if repeated) and
 * in *close the offset of the object's closing brace. JSON_SCAN_UNDECIDED
 * when a top-level key uses escapes, JSON_SCAN_INVALID when the text is not
 * an object. */
int json_locate_members(const char *text, size_t length, size_t count, const char *const keys[],
                        json_scan_value_t values[], size_t *close);

#endif
