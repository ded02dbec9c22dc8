/* javaset: java.util.HashSet's iteration order (see javaset.h). A HashMap
 * puts an element of hash h in bucket (h ^ h >>> 16) & (capacity - 1) and
 * keeps each bucket in insertion order, also across resizes; it iterates
 * bucket by bucket. The capacity starts at 16 and doubles whenever the
 * size passes three quarters of it. (A bucket of eight or more elements
 * is made a tree by Java: not modelled, it needs that many equal bucket
 * indices among a handful of names.) */
#include <stdlib.h>
#include <string.h>

#include "javaset.h"

uint32_t javaset_string_hash(const char *s)
{
	uint32_t h = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		uint32_t cp = 0xfffd;
		int len = 1;
		if (p[0] < 0x80) {
			cp = p[0];
		} else if ((p[0] & 0xe0) == 0xc0 && (p[1] & 0xc0) == 0x80) {
			cp = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
			len = cp >= 0x80 ? 2 : 1;
			cp = len == 2 ? cp : 0xfffd;
		} else if ((p[0] & 0xf0) == 0xe0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80) {
			cp = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
			len = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff) ? 3 : 1;
			cp = len == 3 ? cp : 0xfffd;
		} else if ((p[0] & 0xf8) == 0xf0 && (p[1] & 0xc0) == 0x80 && (p[2] & 0xc0) == 0x80 &&
		    (p[3] & 0xc0) == 0x80) {
			cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3f) << 12 |
			    (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
			len = cp >= 0x10000 && cp <= 0x10ffff ? 4 : 1;
			cp = len == 4 ? cp : 0xfffd;
		}
		if (cp >= 0x10000) {          /* a surrogate pair */
			cp -= 0x10000;
			h = 31 * h + (0xd800 | cp >> 10);
			h = 31 * h + (0xdc00 | (cp & 0x3ff));
		} else {
			h = 31 * h + cp;
		}
		p += len;
	}
	return h;
}

struct el {
	size_t index;
	uint32_t bucket;
};

static int by_bucket(const void *a, const void *b)
{
	const struct el *x = a, *y = b;
	if (x->bucket != y->bucket)
		return x->bucket < y->bucket ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

size_t javaset_order(const char *const *s, size_t n, uint32_t add, size_t *order)
{
	size_t kept = 0, cap = 16;
	struct el *e = malloc((n ? n : 1) * sizeof *e);
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;
		while (j < i && strcmp(s[j], s[i]) != 0)
			j++;
		if (j == i)
			order[kept++] = i;
	}
	while (kept > cap / 4 * 3)
		cap *= 2;
	if (!e)                              /* insertion order, the best left */
		return kept;
	for (size_t i = 0; i < kept; i++) {
		uint32_t h = javaset_string_hash(s[order[i]]) + add;
		e[i].index = order[i];
		e[i].bucket = (h ^ h >> 16) & (uint32_t)(cap - 1);
	}
	qsort(e, kept, sizeof *e, by_bucket);
	for (size_t i = 0; i < kept; i++)
		order[i] = e[i].index;
	free(e);
	return kept;
}
