/* fuzz: what the libFuzzer harnesses of test/fuzz share. Each harness
 * defines LLVMFuzzerTestOneInput and names itself with FUZZ_TARGET; built
 * with clang -fsanitize=fuzzer it is a fuzzer, linked with replay.c (any
 * compiler) it replays test/fuzz/regress/<name>/ and test/fuzz/corpus/<name>/
 * as a unit test. A property that does not hold aborts: a finding either way. */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the harness's name: its directory under regress/ and corpus/ */
extern const char fuzz_target[];
#define FUZZ_TARGET(name) const char fuzz_target[] = name

#define FUZZ_CHECK(cond) \
	((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))

static inline void fuzz_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "fuzz: %s:%d: property failed: %s\n", file, line, expr);
	abort();
}

/* data as a NUL-terminated string (cut at its first NUL), malloc'd */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
