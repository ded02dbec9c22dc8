/* jsonstrict: what a request body must also be, beyond what cJSON parses,
 * so that ferry reads it as Jackson would or not at all: well-formed UTF-8,
 * no raw control character, no NUL escape, each key once in an object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonstrict.h"
#include "util.h"

enum { FEW_KEYS = 8 };   /* compared pairwise below this; sorted above */

const char *jsonstrict_text(const char *buf, size_t len)
{
	int in_string = 0;
	if (!util_utf8_valid(buf, len))
		return "body is not well-formed UTF-8";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c < 0x20 && (in_string || (c != '\t' && c != '\n' && c != '\r')))
			return "body holds a raw control character";
		if (!in_string) {
			in_string = c == '"';
		} else if (c == '"') {
			in_string = 0;
		} else if (c == '\\' && i + 1 < len) {
			if (buf[i + 1] == 'u' && len - i >= 6 && memcmp(buf + i + 2, "0000", 4) == 0)
				return "body holds a NUL (\\u0000): it cannot be read as sent";
			i++;   /* the escaped character ends no string */
		}
	}
	return NULL;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The key held twice among an object's n members, or NULL. */
static const char *twice(const cJSON *o, int n, const char **names)
{
	int k = 0;
	for (const cJSON *e = o->child; e; e = e->next)
		names[k++] = e->string ? e->string : "";
	if (n <= FEW_KEYS) {
		for (int i = 0; i < n; i++)
			for (int j = i + 1; j < n; j++)
				if (strcmp(names[i], names[j]) == 0)
					return names[i];
		return NULL;
	}
	qsort(names, (size_t)n, sizeof *names, by_name);
	for (int i = 1; i < n; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			return names[i];
	return NULL;
}

/* The key held twice in object o, in why, or NULL. */
static const char *object_keys(const cJSON *o, char *why, size_t len)
{
	int n = cJSON_GetArraySize(o);
	if (n < 2)
		return NULL;
	const char *few[FEW_KEYS], **names = n <= FEW_KEYS ? few : malloc((size_t)n * sizeof *names);
	if (!names)
		return snprintf(why, len, "out of memory checking keys"), why;
	const char *dup = twice(o, n, names);
	if (dup)
		snprintf(why, len, "body holds the key \"%.*s\" twice in one object",
		    (int)util_utf8_cut(dup, strlen(dup), len > 64 ? len - 64 : 0), dup);
	if (names != few)
		free(names);
	return dup ? why : NULL;
}

/* cJSON caps nesting (CJSON_NESTING_LIMIT), so the recursion is bounded. */
const char *jsonstrict_keys(const cJSON *v, char *why, size_t len)
{
	for (; v; v = v->next) {
		const char *r = cJSON_IsObject(v) ? object_keys(v, why, len) : NULL;
		if (r || (r = jsonstrict_keys(v->child, why, len)))
			return r;
	}
	return NULL;
}
