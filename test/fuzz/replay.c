/* replay: run a fuzz harness without libFuzzer, as a unit test. With file
 * arguments it runs the harness on each; without, on every file of
 * test/fuzz/regress/<name>/ (the inputs that once failed) and
 * test/fuzz/corpus/<name>/ (the seeds), from the top of the source tree
 * (test/run-tests runs there). TAP out; a failing property aborts, and
 * the input it failed on is named. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

/* Built with sanitizers (make SANITIZE=1), a finding must abort: their
 * default is exit(1), which test/run-tests would take for a mere "not ok"
 * with the TAP line never printed. Unused without sanitizers. */
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
const char *__asan_default_options(void) { return "abort_on_error=1:detect_leaks=1"; }
const char *__ubsan_default_options(void) { return "abort_on_error=1:halt_on_error=1:print_stacktrace=1"; }

static const char *current;   /* the input being replayed */

/* name the input before dying of the signal */
static void died(int sig)
{
	static const char what[] = "# fuzz replay: died on ";
	if (current) {
		if (write(2, what, sizeof what - 1) < 0 || write(2, current, strlen(current)) < 0 ||
		    write(2, "\n", 1) < 0)
			_exit(128 + sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int replay(const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	if (!f || !buf) {
		printf("# %s: %s\n", path, strerror(errno));
		free(buf);
		if (f)
			fclose(f);
		return -1;
	}
	for (size_t r; (r = fread(buf + n, 1, cap - n, f)) > 0; ) {
		n += r;
		if (n == cap) {
			uint8_t *nb = realloc(buf, cap *= 2);
			if (!nb)
				abort();
			buf = nb;
		}
	}
	int bad = ferror(f);
	fclose(f);
	/* an exact-size copy, as libFuzzer gives: overreads show under ASan */
	uint8_t *exact = malloc(n ? n : 1);
	if (!exact)
		abort();
	memcpy(exact, buf, n);
	free(buf);
	fflush(stdout);
	if (!bad)
		LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	return bad ? -1 : 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the files of dir, sorted, appended to *v */
static void list(const char *dir, char ***v, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t first = *n;
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char **nv = realloc(*v, (*n + 1) * sizeof **v);
		size_t len = strlen(dir) + strlen(e->d_name) + 2;
		if (!nv || !(nv[*n] = malloc(len)))
			abort();
		snprintf(nv[*n], len, "%s/%s", dir, e->d_name);
		*v = nv;
		++*n;
	}
	closedir(d);
	qsort(*v + first, *n - first, sizeof **v, cmp);
}

/* one TAP line for a group of files: each replayed, named first so that
 * a crash's output says which */
static int group(int num, const char *what, char **files, size_t n)
{
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		current = files[i];
		failed |= replay(files[i]) < 0;
		current = NULL;
		free(files[i]);
	}
	free(files);
	printf("%s %d %s: %zu %s\n", failed ? "not ok" : "ok", num, fuzz_target, n, what);
	return failed;
}

int main(int argc, char **argv)
{
	static const char *const dirs[] = { "regress", "corpus" };
	char **files = NULL, dir[256];
	size_t n = 0;
	int failed = 0;
	/* failed properties and sanitizer reports abort (a SIGSEGV handler
	 * would take the place of ASan's) */
	signal(SIGABRT, died);
	if (argc > 1) {
		printf("1..1\n");
		if (!(files = calloc((size_t)argc, sizeof *files)))
			abort();
		for (int i = 1; i < argc; i++)
			if (!(files[n++] = strdup(argv[i])))
				abort();
		return group(1, "inputs", files, n);
	}
	printf("1..2\n");
	for (int i = 0; i < 2; i++) {
		snprintf(dir, sizeof dir, "test/fuzz/%s/%s", dirs[i], fuzz_target);
		files = NULL;
		n = 0;
		list(dir, &files, &n);
		/* the seeds must be there; regressions may not be, yet */
		if (i == 1 && n == 0) {
			printf("not ok 2 %s: no seeds in %s (run from the top of the tree)\n",
			    fuzz_target, dir);
			failed = 1;
			continue;
		}
		failed |= group(i + 1, i == 0 ? "regression inputs" : "seed inputs", files, n);
	}
	return failed;
}
