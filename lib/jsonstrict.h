/* jsonstrict: the rules of strict JSON that cJSON does not enforce, for
 * input from outside (request bodies): UTF-8, no raw control characters, no
 * \u0000, no duplicate keys. */
#ifndef FERRY_JSONSTRICT_H
#define FERRY_JSONSTRICT_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The bytes of a JSON text: NULL if they are well-formed UTF-8 with no raw
 * control character (only tab, newline and carriage return, between
 * tokens) and no \u0000 escape (cJSON would cut the string there), else
 * why not, a constant. */
const char *jsonstrict_text(const char *buf, size_t len);

/* A parsed value: NULL if no object in it holds a key twice, else why not,
 * in why (the key cut to fit). */
const char *jsonstrict_keys(const cJSON *v, char *why, size_t len);

#endif
