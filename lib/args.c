/* version: every program's answer to --version, in one place (the
 * shell programs print the same line: the Makefile puts the version in
 * them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "version.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

void version_option(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--version") != 0)
		return;
	printf("%s (ferry) %s\n", err_prog(), FERRY_VERSION);
	exit(fflush(stdout) == 0 ? EXIT_DONE : EXIT_TEMP);
}
