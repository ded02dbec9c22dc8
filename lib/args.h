/* version: every program's answer to --version, in one place. */
#ifndef FERRY_VERSION_H
#define FERRY_VERSION_H

/* If argv[1] is "--version": "PROG (ferry) VERSION" on stdout, exit 0.
 * Called by main() after err_init, before its own options. */
void version_option(int argc, char **argv);

#endif
