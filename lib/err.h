/* err: the one-line diagnostics of DESIGN §7, for cmd/ only.
 * "ferry-fetch: info: p1/c-42: 12 files, 1.2 GB in 3.4 s" on stderr;
 * control characters in the message are escaped so a line stays a line. */
#ifndef FERRY_ERR_H
#define FERRY_ERR_H

#include <stdarg.h>

enum err_level { ERR_FATAL, ERR_ERROR, ERR_WARNING, ERR_INFO };

/* Exit codes of every program (DESIGN §7). */
enum { EXIT_DONE = 0, EXIT_NO = 1, EXIT_PERM = 100, EXIT_TEMP = 111 };

void err_init(const char *progname);     /* "ferry-fetch" */
void err_verbose(int on);                /* info lines need -v */
int err_is_verbose(void);
const char *err_prog(void);

/* req may be NULL, else "tenant/correlationId" style context. */
void err_log(enum err_level lvl, const char *req, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void err_vlog(enum err_level lvl, const char *req, const char *fmt, va_list ap);
/* fatal line then exit(code) */
void err_die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#define err_error(...) err_log(ERR_ERROR, NULL, __VA_ARGS__)
#define err_warn(...)  err_log(ERR_WARNING, NULL, __VA_ARGS__)
#define err_info(...)  err_log(ERR_INFO, NULL, __VA_ARGS__)

#endif
