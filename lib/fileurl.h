/* fileurl: file:// URLs (RFC 8089) to local paths, the rule that a local
 * source must resolve, symlinks followed, inside one of the tenant's
 * file_roots (DESIGN §6), and the one way a source file is opened: below
 * its root, no symlink followed, never blocking, checked on the descriptor. */
#ifndef FERRY_FILEURL_H
#define FERRY_FILEURL_H

#include <stddef.h>
#include <stdint.h>

struct stat;

enum fileurl_rc {
	FILEURL_OK = 0,
	FILEURL_BAD = -1,        /* not a file URL we can decode */
	FILEURL_FORBIDDEN = -2,  /* another host, or outside every root */
	FILEURL_MISSING = -3,    /* inside a root, but it does not resolve (errno) */
	FILEURL_NOTREG = -4,     /* not a regular file (a FIFO, a directory...) */
	FILEURL_SIZE = -5,       /* a regular file, not of the expected size */
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

/* Open path, as it is now, for reading: an absolute path inside one of
 * roots (each taken as given, then as its real path; a root's own symlinks
 * are followed), or a relative one below the current directory. Below the
 * root no symlink is followed and no "." or ".." taken (openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or one openat O_NOFOLLOW a
 * component where the kernel has no openat2), O_NONBLOCK so that a FIFO put
 * in the file's place cannot block; then fstat on the descriptor: a regular
 * file, of size bytes unless size < 0. The descriptor (blocking,
 * close-on-exec) with its stat in st, or a fileurl_rc < 0 with err saying
 * why (never the path, nor the size found: that is in st for the logs):
 * FILEURL_FORBIDDEN outside every root or a symlink below it,
 * FILEURL_MISSING (errno), FILEURL_NOTREG, FILEURL_SIZE. */
int fileurl_open(const char *path, char *const *roots, size_t n, int64_t size,
    struct stat *st, char *err, size_t errlen);
/* The same, always walking one openat a component (the fallback); exposed
 * for the tests. */
int fileurl_open_walk(const char *path, char *const *roots, size_t n, int64_t size,
    struct stat *st, char *err, size_t errlen);

#endif
