/* fileurl: RFC 8089 file URLs and the file_roots check (see fileurl.h).
 * The check is made on real paths, so a symlink inside a root that points
 * outside it, or a ".." decoded from %2E%2E, is outside. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
