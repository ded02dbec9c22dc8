/* args: what every program's command line shares, in one place: the
 * answer to --version (the shell programs print the same line: the
 * Makefile puts the version in them), and usage errors in one format,
 * "PROG: fatal: usage: ...", exit 100. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "err.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

void args_init(int argc, char **argv)
{
	opterr = 0;
	if (argc < 2 || strcmp(argv[1], "--version") != 0)
		return;
	printf("%s (ferry) %s\n", err_prog(), FERRY_VERSION);
	exit(fflush(stdout) == 0 ? EXIT_DONE : EXIT_TEMP);
}

const char *args_bad_option(void)
{
	static char why[64];
	if (optopt > ' ' && optopt < 0x7f)
		snprintf(why, sizeof why, "-%c: unknown option or missing argument", optopt);
	else
		snprintf(why, sizeof why, "unknown option");
	return why;
}

void args_usage(const char *usage)
{
	if (optopt)
		err_log(ERR_FATAL, NULL, "%s", args_bad_option());
	for (const char *s = usage, *e; *s; s = e + (*e == '\n')) {
		e = s + strcspn(s, "\n");
		err_log(ERR_FATAL, NULL, "%.*s", (int)(e - s), s);
	}
	exit(EXIT_PERM);
}
