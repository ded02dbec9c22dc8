/* fileurl: RFC 8089 file URLs and the file_roots check (see fileurl.h).
 * The check is made on real paths, so a symlink inside a root that points
 * outside it, or a ".." decoded from %2E%2E, is outside. Opening repeats it
 * on the file as it is then: what was checked may have been replaced. */
#define _GNU_SOURCE        /* O_PATH */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/openat2.h>
#endif

#include "fileurl.h"
#include "util.h"

static int say(int rc, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int say(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = EINVAL;
	return rc;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* percent-decode s into out; -1 with err on a bad or NUL escape */
static int decode(const char *s, char *out, size_t len, char *err, size_t errlen)
{
	size_t n = 0;
	for (const char *p = s; *p; p++) {
		int c = (unsigned char)*p;
		if (c == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			if (hi < 0 || lo < 0)
				return say(FILEURL_BAD, err, errlen, "bad escape at byte %zu", (size_t)(p - s));
			if ((c = hi * 16 + lo) == 0)
				return say(FILEURL_BAD, err, errlen, "%%00 in the path");
			p += 2;
		}
		if (n + 1 >= len)
			return say(FILEURL_BAD, err, errlen, "path too long");
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return FILEURL_OK;
}

int fileurl_path(const char *url, char *out, size_t len, char *err, size_t errlen)
{
	const char *p;
	if (strncasecmp(url, "file:", 5) != 0)
		return say(FILEURL_BAD, err, errlen, "not a file: URL");
	p = url + 5;
	if (p[0] == '/' && p[1] == '/') {
		const char *host = p + 2, *slash = strchr(host, '/');
		size_t hl = slash ? (size_t)(slash - host) : strlen(host);
		if (hl != 0 && !(hl == 9 && strncasecmp(host, "localhost", 9) == 0))
			return say(FILEURL_FORBIDDEN, err, errlen, "host %.*s is not this machine",
			    (int)util_utf8_cut(host, hl, 64), host);
		if (!slash)
			return say(FILEURL_BAD, err, errlen, "no path");
		p = slash;
	}
	if (p[0] != '/')
		return say(FILEURL_BAD, err, errlen, "not an absolute path");
	return decode(p, out, len, err, errlen);
}

int fileurl_inside(const char *real, char *const *roots, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *r = realpath(roots[i], NULL);
		if (!r)
			continue;
		size_t rl = strlen(r);
		int in = strcmp(r, "/") == 0 ||
		    (strncmp(real, r, rl) == 0 && (real[rl] == '\0' || real[rl] == '/'));
		free(r);
		if (in)
			return 1;
	}
	return 0;
}

/* p does not resolve: is its nearest resolvable parent inside a root? */
static int parent_inside(const char *p, char *const *roots, size_t n)
{
	char buf[PATH_MAX];
	if (util_strlcpy(buf, p, sizeof buf) >= sizeof buf)
		return 0;
	for (;;) {
		char *slash = strrchr(buf, '/');
		if (!slash)
			return 0;
		slash[slash == buf] = '\0';     /* keep "/" itself */
		char *r = realpath(buf, NULL);
		if (r) {
			int in = fileurl_inside(r, roots, n);
			free(r);
			return in;
		}
		if (slash == buf)
			return 0;
	}
}

int fileurl_resolve(const char *url, char *const *roots, size_t n,
    char *out, size_t len, char *err, size_t errlen)
{
	char p[PATH_MAX];
	int rc = fileurl_path(url, p, sizeof p, err, errlen);
	if (rc != FILEURL_OK)
		return rc;
	char *r = realpath(p, NULL);
	if (!r) {
		int saved = errno;
		if (!parent_inside(p, roots, n))
			return say(FILEURL_FORBIDDEN, err, errlen, "%s is outside the file roots", p);
		say(FILEURL_MISSING, err, errlen, "%s: %s", p, strerror(saved));
		errno = saved;
		return FILEURL_MISSING;
	}
	if (!fileurl_inside(r, roots, n))
		rc = say(FILEURL_FORBIDDEN, err, errlen, "%s resolves to %s, outside the file roots", p, r);
	else if (util_strlcpy(out, r, len) >= len)
		rc = say(FILEURL_BAD, err, errlen, "path too long");
	free(r);
	return rc;
}

/* ---- opening ---- */

enum { OPEN_FLAGS = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC };
#ifdef O_PATH              /* directories only searched: no read permission needed */
#define ROOT_FLAGS (O_PATH | O_DIRECTORY | O_CLOEXEC)
#else
#define ROOT_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC)
#endif
#define DIR_FLAGS (ROOT_FLAGS | O_NOFOLLOW)

struct opening {
	int64_t size;
	struct stat *st;
	char *err;
	size_t errlen;
	int walk;                 /* never openat2 */
};

/* rel below dfd by openat2; -1 with ENOSYS where there is none. EAGAIN is
 * the kernel unsure of a race on the way: worth a few more tries. */
static int open_at2(int dfd, const char *rel)
{
#if defined(SYS_openat2) && defined(RESOLVE_BENEATH)
	struct open_how how = { .flags = OPEN_FLAGS,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd;
	int tries = 0;
	do
		fd = syscall(SYS_openat2, dfd, rel, &how, sizeof how);
	while (fd < 0 && (errno == EINTR || errno == EAGAIN) && ++tries < 8);
	return (int)fd;
#else
	(void)dfd;
	(void)rel;
	errno = ENOSYS;
	return -1;
#endif
}

/* rel below dfd one component at a time, none of them a symlink (ELOOP) */
static int open_walk(int dfd, const char *rel)
{
	char buf[PATH_MAX], *save = NULL;
	int cur = dfd, fd = -1;
	if (util_strlcpy(buf, rel, sizeof buf) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *c = strtok_r(buf, "/", &save), *next; c; c = next) {
		struct stat sb;
		next = strtok_r(NULL, "/", &save);
		fd = openat(cur, c, next ? DIR_FLAGS : OPEN_FLAGS);
		int e = errno;
		/* a directory's symlink opened O_NOFOLLOW | O_DIRECTORY: ENOTDIR */
		if (fd < 0 && e == ENOTDIR && fstatat(cur, c, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(sb.st_mode))
			e = ELOOP;
		if (cur != dfd)
			close(cur);
		errno = e;
		if (fd < 0)
			return -1;
		cur = fd;
	}
	return fd;
}

/* fstat the descriptor: a regular file of the size wanted; fd or a rc */
static int check_fd(int fd, const struct opening *o)
{
	int rc = FILEURL_OK, fl, e = 0;
	if (fstat(fd, o->st) < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
		e = errno;
	else if (!S_ISREG(o->st->st_mode))
		rc = say(FILEURL_NOTREG, o->err, o->errlen, "not a regular file");
	else if (o->size >= 0 && (int64_t)o->st->st_size != o->size)
		rc = say(FILEURL_SIZE, o->err, o->errlen, "not of the expected size");
	else if (fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		e = errno;
	if (e)
		rc = say(FILEURL_MISSING, o->err, o->errlen, "%s", strerror(e));
	if (rc == FILEURL_OK)
		return fd;
	close(fd);
	errno = e ? e : EINVAL;
	return rc;
}

/* rel below the directory root (NULL: the current one); fd or a rc */
static int open_below(const char *root, const char *rel, const struct opening *o)
{
	int dfd = root ? open(root, ROOT_FLAGS) : AT_FDCWD;
	if (root && dfd < 0)       /* a root that does not resolve holds nothing */
		return say(FILEURL_FORBIDDEN, o->err, o->errlen, "outside the file roots");
	if (!*rel)
		rel = ".";
	else if (util_dot_segment(rel)) {
		if (dfd != AT_FDCWD)
			close(dfd);
		return say(FILEURL_FORBIDDEN, o->err, o->errlen, "a \".\" or \"..\" in the path");
	}
	int fd = o->walk ? -1 : open_at2(dfd, rel);
	if (o->walk || (fd < 0 && errno == ENOSYS))
		fd = open_walk(dfd, rel);
	int e = errno;
	if (dfd != AT_FDCWD)
		close(dfd);
	if (fd >= 0)
		return check_fd(fd, o);
	if (e == ELOOP || e == EXDEV)
		return say(FILEURL_FORBIDDEN, o->err, o->errlen,
		    "a symbolic link on the way, not followed");
	say(FILEURL_MISSING, o->err, o->errlen, "%s", strerror(e));
	errno = e;
	return FILEURL_MISSING;
}

/* what follows root in path, '/'s skipped; NULL if path is not root or below */
static const char *below(const char *path, const char *root)
{
	size_t rl = strlen(root);
	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	if (root[0] != '/' || strncmp(path, root, rl) != 0 || (path[rl] && path[rl] != '/'))
		return NULL;
	for (path += rl; *path == '/'; path++)
		;
	return path;
}

static int open_in(const char *path, char *const *roots, size_t n, const struct opening *o)
{
	if (path[0] != '/')
		return open_below(NULL, path, o);
	int rc = say(FILEURL_FORBIDDEN, o->err, o->errlen, "outside the file roots");
	for (size_t i = 0; i < n; i++) {
		char *real = realpath(roots[i], NULL);
		const char *as[2] = { roots[i], real };
		for (int k = 0; k < 2; k++) {
			const char *rel = as[k] ? below(path, as[k]) : NULL;
			if (!rel || (k == 1 && strcmp(as[0], as[1]) == 0))
				continue;
			rc = open_below(as[k], rel, o);
			if (rc >= 0 || rc == FILEURL_NOTREG || rc == FILEURL_SIZE) {
				free(real);
				return rc;
			}
		}
		free(real);
	}
	return rc;
}

int fileurl_open(const char *path, char *const *roots, size_t n, int64_t size,
    struct stat *st, char *err, size_t errlen)
{
	const struct opening o = { size, st, err, errlen, 0 };
	return open_in(path, roots, n, &o);
}

int fileurl_open_walk(const char *path, char *const *roots, size_t n, int64_t size,
    struct stat *st, char *err, size_t errlen)
{
	const struct opening o = { size, st, err, errlen, 1 };
	return open_in(path, roots, n, &o);
}
