/* tu: runner and assertions for the C unit tests (see tu.h). Each test runs
 * in the same process, in order; output is TAP so the bats counting applies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tu.h"

int tu_failed;
const char *tu_current;
static int test_failed;
static char tmpl[64];

int tu_check(int ok, const char *expr, const char *file, int line)
{
	if (!ok) {
		printf("# %s: %s:%d: check failed: %s\n", tu_current, file, line, expr);
		test_failed = 1;
	}
	return ok;
}

int tu_eq_int(long long a, long long b, const char *expr, const char *file, int line)
{
	if (a != b) {
		printf("# %s: %s:%d: %s: %lld != %lld\n", tu_current, file, line, expr, a, b);
		test_failed = 1;
	}
	return a == b;
}

int tu_eq_str(const char *a, const char *b, const char *expr, const char *file, int line)
{
	int ok = (a == b) || (a && b && strcmp(a, b) == 0);
	if (!ok) {
		printf("# %s: %s:%d: %s: \"%s\" != \"%s\"\n", tu_current, file, line, expr,
		    a ? a : "(null)", b ? b : "(null)");
		test_failed = 1;
	}
	return ok;
}

static void rm_tmp(void)
{
	if (tmpl[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "tu: could not remove %s\n", tmpl);
		tmpl[0] = '\0';
	}
}

const char *tu_tmpdir(void)
{
	rm_tmp();
	const char *base = getenv("TMPDIR");
	snprintf(tmpl, sizeof tmpl, "%s/tu.XXXXXX", base && strlen(base) < 40 ? base : "/tmp");
	if (!mkdtemp(tmpl)) {
		perror("tu: mkdtemp");
		exit(2);
	}
	return tmpl;
}

int tu_run(const tu_test *tests, int argc, char **argv)
{
	int n = 0;
	for (const tu_test *t = tests; t->fn; t++)
		n++;
	printf("1..%d\n", n);
	atexit(rm_tmp);
	int i = 0;
	for (const tu_test *t = tests; t->fn; t++) {
		i++;
		if (argc > 1 && strcmp(argv[1], t->name) != 0) {
			printf("ok %d %s # skip\n", i, t->name);
			continue;
		}
		tu_current = t->name;
		test_failed = 0;
		fflush(stdout);
		t->fn();
		rm_tmp();
		printf("%s %d %s\n", test_failed ? "not ok" : "ok", i, t->name);
		fflush(stdout);
		tu_failed += test_failed;
	}
	return tu_failed ? 1 : 0;
}
