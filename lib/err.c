/* err: one-line diagnostics "prog: level: [req: ]message" on stderr.
 * The line is built in one buffer and written with one write(2) so that
 * lines of concurrent stages do not interleave in a shared log. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

static const char *prog = "ferry";
static int verbose;

static const char *const level_name[] = {
	[ERR_FATAL] = "fatal", [ERR_ERROR] = "error",
	[ERR_WARNING] = "warning", [ERR_INFO] = "info",
};

void err_init(const char *progname) { prog = progname; }
void err_verbose(int on) { verbose = on; }
int err_is_verbose(void) { return verbose; }
const char *err_prog(void) { return prog; }

/* Append s to buf[*n..cap), escaping control characters as \xHH. */
static void put_clean(char *buf, size_t *n, size_t cap, const char *s)
{
	for (; *s && *n + 5 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			*n += (size_t)snprintf(buf + *n, cap - *n, "\\x%02x", c);
		else
			buf[(*n)++] = (char)c;
	}
}

void err_vlog(enum err_level lvl, const char *req, const char *fmt, va_list ap)
{
	char msg[2048], line[4096];
	size_t n = 0;
	int saved = errno;

	if (lvl == ERR_INFO && !verbose)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	put_clean(line, &n, sizeof line, prog);
	put_clean(line, &n, sizeof line, ": ");
	put_clean(line, &n, sizeof line, level_name[lvl]);
	put_clean(line, &n, sizeof line, ": ");
	if (req && *req) {
		put_clean(line, &n, sizeof line, req);
		put_clean(line, &n, sizeof line, ": ");
	}
	put_clean(line, &n, sizeof line, msg);
	line[n++] = '\n';
	(void)!write(2, line, n);
	errno = saved;
}

void err_log(enum err_level lvl, const char *req, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vlog(lvl, req, fmt, ap);
	va_end(ap);
}

void err_die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vlog(ERR_FATAL, NULL, fmt, ap);
	va_end(ap);
	exit(code);
}
