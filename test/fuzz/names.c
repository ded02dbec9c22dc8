/* fuzz names: the zip entry-name sanitizer (lib/names). The input, split at
 * its NUL bytes, is a name, a productId and a correlationId. Properties: a
 * sanitized name is safe (names_safe: no "." or ".." component, not
 * absolute, no NUL, control character or backslash, valid UTF-8), sanitizing
 * is idempotent, leaves a safe name as it is, and does not depend on the
 * room given but to fail; zip names are [A-Za-z0-9._-]{1,200}.zip. */
#include "fuzz.h"
#include "names.h"
#include "util.h"

FUZZ_TARGET("names");

enum { BIG = 4096 };

static void check_components(const char *s)
{
	FUZZ_CHECK(s[0] != '\0' && s[0] != '/');
	for (const char *c = s; ; ) {
		size_t n = strcspn(c, "/");
		FUZZ_CHECK(n > 0);
		FUZZ_CHECK(!(n == 1 && c[0] == '.'));
		FUZZ_CHECK(!(n == 2 && c[0] == '.' && c[1] == '.'));
		if (!c[n])
			break;
		c += n + 1;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p != 0x7f && *p != '\\');
	FUZZ_CHECK(util_utf8_valid(s, strlen(s)));
}

static void fuzz_sanitize(const char *name, size_t small)
{
	static char full[BIG], again[BIG], cut[BIG];
	int safe = names_safe(name);
	int rc = names_sanitize(name, full, sizeof full);
	if (safe) {
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(strcmp(full, name) == 0);
	}
	if (rc == 0) {
		check_components(full);
		FUZZ_CHECK(strlen(full) <= 1024);
		FUZZ_CHECK(names_safe(full));
		FUZZ_CHECK(names_sanitize(full, again, sizeof again) == 0);
		FUZZ_CHECK(strcmp(full, again) == 0);
	}
	/* less room: the same answer, or a failure when it does not fit */
	int rc2 = names_sanitize(name, cut, small);
	if (rc2 == 0)
		FUZZ_CHECK(rc == 0 && strcmp(cut, full) == 0);
	else if (rc == 0)
		FUZZ_CHECK(strlen(full) + 1 > small);
}

static void fuzz_zip(const char *pid, int64_t version, const char *cid)
{
	char out[BIG];
	for (int single = 0; single <= 1; single++) {
		FUZZ_CHECK(names_zip(single, pid, version, cid, out, sizeof out) == 0);
		size_t n = strlen(out);
		FUZZ_CHECK(n > 4 && n <= 204 && strcmp(out + n - 4, ".zip") == 0);
		FUZZ_CHECK(strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789._-") == n);
		FUZZ_CHECK(strspn(out, ".") < n - 4);   /* never "." or ".." + .zip */
	}
}

static void fuzz_entry(const char *pid, int64_t version, const char *name)
{
	char out[BIG];
	if (names_entry(pid, version, name, out, sizeof out) < 0)
		return;
	const char *slash = strchr(out, '/');
	FUZZ_CHECK(slash && slash > out);
	check_components(out);
	if (strlen(out) <= 1024)
		FUZZ_CHECK(names_safe(out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 3);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = s[size + 1] = s[size + 2] = '\0';
	const char *name = s;
	const char *pid = name + strlen(name) + 1;
	if (pid > s + size)
		pid = s + size + 1;
	const char *cid = pid + strlen(pid) + 1;
	if (cid > s + size + 1)
		cid = s + size + 2;
	/* a version from the bytes, negative ones and the extremes included */
	int64_t version = (int64_t)(size * UINT64_C(0x9E3779B97F4A7C15));
	fuzz_sanitize(name, size % 64 + 1);
	fuzz_zip(pid, version, cid);
	fuzz_entry(pid, version, name);
	free(s);
	return 0;
}
