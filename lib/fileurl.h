/* fileurl: file:// URLs (RFC 8089) to local paths, and the rule that a local
 * source must resolve, symlinks followed, inside one of the tenant's
 * file_roots (DESIGN §6). Nothing here opens or reads a file. */
#ifndef FERRY_FILEURL_H
#define FERRY_FILEURL_H

#include <stddef.h>

enum fileurl_rc {
	FILEURL_OK = 0,
	FILEURL_BAD = -1,        /* not a file URL we can decode */
	FILEURL_FORBIDDEN = -2,  /* another host, or outside every root */
	FILEURL_MISSING = -3,    /* inside a root, but it does not resolve (errno) */
};

/* The absolute path of a file URL: "file:///p", "file://localhost/p" (host
 * case-insensitive) or "file:/p", scheme case-insensitive; %XX escapes
 * decoded (%2F too), other bytes taken as they are ('?', '#' included).
 * FILEURL_OK with the path in out; FILEURL_BAD (bad escape, %00, relative
 * path, not file:) or FILEURL_FORBIDDEN (another host) with a reason in err. */
int fileurl_path(const char *url, char *out, size_t len, char *err, size_t errlen);

/* 1 if real, a path without symlinks (realpath), is one of roots or below
 * one, on a '/' boundary; each root is realpath'ed first, and a root that
 * does not resolve holds nothing. 0 otherwise, and always when n is 0. */
int fileurl_inside(const char *real, char *const *roots, size_t n);

/* fileurl_path, then realpath, then fileurl_inside: FILEURL_OK with the
 * real path in out. A path that does not resolve is FILEURL_MISSING (errno
 * set) when its nearest resolvable parent is inside a root, else
 * FILEURL_FORBIDDEN, so nothing is told about paths outside the roots. */
int fileurl_resolve(const char *url, char *const *roots, size_t n,
    char *out, size_t len, char *err, size_t errlen);

#endif
