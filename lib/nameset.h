/* nameset: the entry names a zip has used so far, so a second file with the
 * same name becomes "dir/base (2).ext" instead of hiding the first. */
#ifndef FERRY_NAMESET_H
#define FERRY_NAMESET_H

#include <stddef.h>

struct nameset {
	char **slot;               /* open addressing, cap a power of two */
	size_t cap, n;
};

/* want, or "dir/base (k).ext" with the first k >= 2 not used yet, into
 * out[len], and remember it; *renamed says which. 0, or -1 with errno
 * (ENAMETOOLONG, ENOMEM). The set starts zeroed. */
int nameset_unique(struct nameset *s, const char *want, char *out, size_t len, int *renamed);
void nameset_free(struct nameset *s);

#endif
