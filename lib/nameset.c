/* nameset: see nameset.h */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nameset.h"
#include "util.h"

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static char **set_find(const struct nameset *s, const char *k)
{
	size_t i = fnv1a(k) & (s->cap - 1);
	while (s->slot[i] && strcmp(s->slot[i], k) != 0)
		i = (i + 1) & (s->cap - 1);
	return &s->slot[i];
}

static int set_grow(struct nameset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct nameset bigger = { calloc(cap, sizeof(char *)), cap, s->n };
	if (!bigger.slot)
		return -1;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slot[i])
			*set_find(&bigger, s->slot[i]) = s->slot[i];
	free(s->slot);
	*s = bigger;
	return 0;
}

static int set_has(const struct nameset *s, const char *k)
{
	return s->cap && *set_find(s, k);
}

static int set_add(struct nameset *s, const char *k)
{
	if ((s->n + 1) * 2 > s->cap && set_grow(s) < 0)
		return -1;
	char **p = set_find(s, k);
	if (*p)
		return 0;
	if (!(*p = strdup(k)))
		return -1;
	s->n++;
	return 0;
}

int nameset_unique(struct nameset *s, const char *want, char *out, size_t len, int *renamed)
{
	*renamed = 0;
	if (util_strlcpy(out, want, len) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	const char *base = strrchr(want, '/');
	base = base ? base + 1 : want;
	const char *dot = strrchr(base, '.');
	if (!dot || dot == base)
		dot = base + strlen(base);
	for (unsigned k = 2; set_has(s, out); k++) {
		*renamed = 1;
		if ((size_t)snprintf(out, len, "%.*s (%u)%s", (int)(dot - want), want, k, dot) >= len) {
			errno = ENAMETOOLONG;
			return -1;
		}
	}
	return set_add(s, out);
}

void nameset_free(struct nameset *s)
{
	for (size_t i = 0; s->slot && i < s->cap; i++)
		free(s->slot[i]);
	free(s->slot);
	s->slot = NULL;
	s->cap = s->n = 0;
}
