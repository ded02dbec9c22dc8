/* tu: the tiny unit-test runner of ferry's C tests. A test file defines
 * TU_TESTS(...) listing its test functions; each check prints TAP-ish
 * "ok"/"not ok" lines and the runner exits non-zero on any failure. */
#ifndef FERRY_TU_H
#define FERRY_TU_H

#include <stdio.h>
#include <string.h>

extern int tu_failed;
extern const char *tu_current;

#define TU_CHECK(cond) tu_check((cond), #cond, __FILE__, __LINE__)
#define TU_EQ_INT(a, b) tu_eq_int((long long)(a), (long long)(b), #a " == " #b, __FILE__, __LINE__)
#define TU_EQ_STR(a, b) tu_eq_str((a), (b), #a " == " #b, __FILE__, __LINE__)

int tu_check(int ok, const char *expr, const char *file, int line);
int tu_eq_int(long long a, long long b, const char *expr, const char *file, int line);
int tu_eq_str(const char *a, const char *b, const char *expr, const char *file, int line);
/* a fresh empty directory for this test, removed at exit */
const char *tu_tmpdir(void);

typedef struct { const char *name; void (*fn)(void); } tu_test;
int tu_run(const tu_test *tests, int argc, char **argv);

#define TU_MAIN(...) \
	int main(int argc, char **argv) { \
		static const tu_test tests[] = { __VA_ARGS__, { NULL, NULL } }; \
		return tu_run(tests, argc, argv); \
	}
#define TU(fn) { #fn, fn }

#endif
