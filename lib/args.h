/* args: what every program's command line shares, in one place: the
 * answer to --version, and usage errors in one format. */
#ifndef FERRY_ARGS_H
#define FERRY_ARGS_H

/* Called by main() after err_init, before its own options. If argv[1] is
 * "--version": "PROG (ferry) VERSION" on stdout, exit 0. Silences getopt's
 * own messages (opterr = 0): args_usage names the bad option. */
void args_init(int argc, char **argv);
/* "PROG: fatal: -X: unknown option or missing argument" when getopt found
 * one, then usage ("usage: PROG ...", lines joined by '\n') one line each
 * as "PROG: fatal: ...", exit 100. */
void args_usage(const char *usage) __attribute__((noreturn));
/* "-X: unknown option or missing argument" for getopt's last error */
const char *args_bad_option(void);

#endif
