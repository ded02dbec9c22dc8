/* ordercmd_test: the order command runner against real shell scripts —
 * exit codes 0/100/111, timeouts, bad lines, big stdin, no deadlock. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ordercmd.h"
#include "tu.h"

static char script[512];

static void make_script(const char *body)
{
	snprintf(script, sizeof script, "%s/cmd.sh", tu_tmpdir());
	FILE *f = fopen(script, "w");
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(script, 0700);
}

struct seen { int n; char first[128]; };

static int collect(void *arg, const cJSON *file, char *why, size_t len)
{
	struct seen *s = arg;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(file, "name");
	if (!cJSON_IsString(name)) {
		snprintf(why, len, "line without a name");
		return 1;
	}
	if (s->n++ == 0)
		snprintf(s->first, sizeof s->first, "%s", name->valuestring);
	return 0;
}

static void test_lines_are_passed_and_exit_0_is_ok(void)
{
	make_script("cat >/dev/null; echo '{\"name\":\"a.nc\"}'; echo; printf '{\"name\":\"b.nc\"}'");
	struct seen s = { 0 };
	struct ordercmd_result r;
	TU_EQ_INT(ordercmd_run(script, "{\"x\":1}", 5000, NULL, collect, &s, &r), 0);
	TU_EQ_INT(r.status, ORDERCMD_OK);
	TU_EQ_INT(s.n, 2);
	TU_EQ_STR(s.first, "a.nc");
}

static void test_exit_100_fails_with_the_last_stderr_line(void)
{
	make_script("echo first >&2; echo 'no such dataset' >&2; exit 100");
	struct seen s = { 0 };
	struct ordercmd_result r;
	ordercmd_run(script, "{}", 5000, NULL, collect, &s, &r);
	TU_EQ_INT(r.status, ORDERCMD_FAILED);
	TU_EQ_STR(r.message, "no such dataset");
	make_script("printf 'first\\nno newline at the end' >&2; exit 100");
	ordercmd_run(script, "{}", 5000, NULL, collect, &s, &r);
	TU_EQ_STR(r.message, "no newline at the end");
}

static void test_exit_111_and_timeouts_mean_retry(void)
{
	struct seen s = { 0 };
	struct ordercmd_result r;
	make_script("echo 'catalog busy' >&2; exit 111");
	ordercmd_run(script, "{}", 5000, NULL, collect, &s, &r);
	TU_EQ_INT(r.status, ORDERCMD_RETRY);
	TU_EQ_STR(r.message, "catalog busy");
	make_script("sleep 30 & sleep 30");
	ordercmd_run(script, "{}", 300, NULL, collect, &s, &r);
	TU_EQ_INT(r.status, ORDERCMD_RETRY);
	TU_CHECK(strstr(r.message, "timed out") != NULL);
}

static void test_a_bad_line_or_a_refused_file_fails(void)
{
	struct seen s = { 0 };
	struct ordercmd_result r;
	make_script("echo 'not json'");
	ordercmd_run(script, "{}", 5000, NULL, collect, &s, &r);
	TU_EQ_INT(r.status, ORDERCMD_FAILED);
	TU_CHECK(strstr(r.message, "bad line") != NULL);
	make_script("echo '{\"size\":1}'");
	ordercmd_run(script, "{}", 5000, NULL, collect, &s, &r);
	TU_EQ_INT(r.status, ORDERCMD_FAILED);
	TU_EQ_STR(r.message, "line without a name");
}

static void test_big_stdin_and_big_stdout_do_not_deadlock(void)
{
	size_t n = 4 << 20;
	char *item = malloc(n + 1);
	memset(item, 'x', n);
	item[0] = '"';
	item[n - 1] = '"';
	item[n] = '\0';
	/* prints 20,000 lines before reading its stdin */
	make_script("i=0; while [ $i -lt 20000 ]; do echo '{\"name\":\"f\"}'; i=$((i+1)); done; wc -c >&2");
	struct seen s = { 0 };
	struct ordercmd_result r;
	TU_EQ_INT(ordercmd_run(script, item, 20000, NULL, collect, &s, &r), 0);
	TU_EQ_INT(r.status, ORDERCMD_OK);
	TU_EQ_INT(s.n, 20000);
	free(item);
}

static void test_a_command_that_cannot_run_fails(void)
{
	struct seen s = { 0 };
	struct ordercmd_result r;
	snprintf(script, sizeof script, "%s/missing", tu_tmpdir());
	ordercmd_run(script, "{}", 5000, NULL, collect, &s, &r);
	TU_EQ_INT(r.status, ORDERCMD_FAILED);
	TU_CHECK(strstr(r.message, "cannot run") != NULL);
}

TU_MAIN(
	TU(test_lines_are_passed_and_exit_0_is_ok),
	TU(test_exit_100_fails_with_the_last_stderr_line),
	TU(test_exit_111_and_timeouts_mean_retry),
	TU(test_a_bad_line_or_a_refused_file_fails),
	TU(test_big_stdin_and_big_stdout_do_not_deadlock),
	TU(test_a_command_that_cannot_run_fails)
)
