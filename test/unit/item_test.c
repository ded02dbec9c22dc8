/* item_test: the NDJSON reader and writer of lib/item.c — long lines, the
 * line limit, malformed and blank lines, pipes fed in small pieces, round
 * trips, labels and fingerprints. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "item.h"
#include "util.h"
#include "tu.h"

/* an fd reading the given bytes (a file in the test's temp dir) */
static int fd_of(const char *text, size_t len)
{
	char path[128];
	snprintf(path, sizeof path, "%s/input", tu_tmpdir());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || util_write_all(fd, text, len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		perror("fd_of");
		exit(2);
	}
	return fd;
}

static int fd_str(const char *text) { return fd_of(text, strlen(text)); }

/* read one item and return its "n" field, or -1 if it is not ITEM_OK */
static int read_n(item_reader *r)
{
	cJSON *j;
	int rc = item_read(r, &j);
	if (rc != ITEM_OK)
		return -1;
	int n = (int)item_num(j, "n", -2);
	cJSON_Delete(j);
	return n;
}

static void test_reads_several_objects(void)
{
	int fd = fd_str("{\"n\":1}\n{\"n\":2,\"x\":{\"y\":[1,2]}}\n{\"n\":3}\n");
	item_reader *r = item_reader_new(fd);
	TU_EQ_INT(read_n(r), 1);
	TU_EQ_INT(read_n(r), 2);
	TU_EQ_INT(read_n(r), 3);
	TU_EQ_INT(item_reader_line(r), 3);
	cJSON *j = (cJSON *)1;
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	TU_CHECK(j == NULL);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
}

/* {"big":"xxxx…"} of n x's, then a newline and {"n":2} */
static char *big_input(size_t n, size_t *len)
{
	char *s = malloc(n + 64);
	size_t k = (size_t)sprintf(s, "{\"big\":\"");
	memset(s + k, 'x', n);
	k += n;
	k += (size_t)sprintf(s + k, "\"}\n{\"n\":2}\n");
	*len = k;
	return s;
}

static void test_reads_a_5mb_line(void)
{
	size_t len;
	char *s = big_input(5u << 20, &len);
	int fd = fd_of(s, len);
	item_reader *r = item_reader_new(fd);
	cJSON *j;
	TU_EQ_INT(item_read(r, &j), ITEM_OK);
	const char *big = item_str(j, "big");
	TU_CHECK(big && strlen(big) == 5u << 20 && big[0] == 'x' && big[(5u << 20) - 1] == 'x');
	cJSON_Delete(j);
	TU_EQ_INT(read_n(r), 2);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
	free(s);
}

static void test_line_at_max_is_read_and_over_max_is_bad(void)
{
	/* line 1 is exactly 20 bytes, line 2 is 21, line 3 is fine */
	int fd = fd_str("{\"n\":1,\"s\":\"abcdef\"}\n{\"n\":9,\"s\":\"abcdefg\"}\n{\"n\":3}\n");
	item_reader *r = item_reader_new(fd);
	item_reader_max(r, 20);
	cJSON *j;
	TU_EQ_INT(read_n(r), 1);
	TU_EQ_INT(item_read(r, &j), ITEM_BAD);
	TU_EQ_STR(item_reader_error(r), "line 2: longer than 20 bytes");
	TU_EQ_INT(read_n(r), 3);
	TU_EQ_INT(item_reader_line(r), 3);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
}

static void test_long_line_over_max_is_skipped_across_reads(void)
{
	size_t len;
	char *s = big_input(300000, &len);      /* spans several 64 KiB reads */
	int fd = fd_of(s, len);
	item_reader *r = item_reader_new(fd);
	item_reader_max(r, 1000);
	cJSON *j;
	TU_EQ_INT(item_read(r, &j), ITEM_BAD);
	TU_EQ_STR(item_reader_error(r), "line 1: longer than 1000 bytes");
	TU_EQ_INT(read_n(r), 2);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
	free(s);

	/* the same as a last line without a newline */
	s = big_input(300000, &len);
	fd = fd_of(s, len - 9);                  /* cut "\n{"n":2}\n" */
	r = item_reader_new(fd);
	item_reader_max(r, 1000);
	TU_EQ_INT(item_read(r, &j), ITEM_BAD);
	TU_EQ_INT(item_reader_line(r), 1);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
	free(s);
}

static void test_malformed_lines_are_bad_and_reading_goes_on(void)
{
	static const struct { const char *line; const char *err; } cases[] = {
		{ "{\"a\":", "line 2: invalid JSON near byte" },
		{ "[1]", "line 3: not a JSON object" },
		{ "\"x\"", "line 4: not a JSON object" },
		{ "42", "line 5: not a JSON object" },
		{ "null", "line 6: not a JSON object" },
		{ "{\"a\":1} trailing", "line 7: invalid JSON near byte 9" },
		{ "{\"a\":1}{\"b\":2}", "line 8: invalid JSON near byte 8" },
		{ "nope", "line 9: invalid JSON near byte" },
		{ "{\"a\":\"\\", "line 10: invalid JSON near byte" },
	};
	char text[512] = "{\"n\":1}\n";
	size_t ncases = sizeof cases / sizeof cases[0];
	for (size_t i = 0; i < ncases; i++) {
		strcat(text, cases[i].line);
		strcat(text, "\n");
	}
	strcat(text, "{\"n\":11}\n");
	int fd = fd_str(text);
	item_reader *r = item_reader_new(fd);
	cJSON *j;
	TU_EQ_INT(read_n(r), 1);
	for (size_t i = 0; i < ncases; i++) {
		TU_EQ_INT(item_read(r, &j), ITEM_BAD);
		TU_CHECK(j == NULL);
		const char *e = item_reader_error(r);
		if (!TU_CHECK(strncmp(e, cases[i].err, strlen(cases[i].err)) == 0))
			printf("# got \"%s\", want \"%s...\"\n", e, cases[i].err);
	}
	TU_EQ_INT(read_n(r), 11);
	TU_EQ_INT(item_reader_line(r), 11);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
}

/* a request item as the stages print it, with a body long enough to need
 * several writes to a pipe (over PIPE_BUF, so a write is not atomic) */
static char *torn_item(const char *cid, size_t pad)
{
	const char *fmt = "{\"tenant\":\"p1\",\"correlationId\":\"%s\",\"headers\":{},"
	    "\"request\":{\"correlationId\":\"%s\",\"query\":\"q\\\"%s\\\\\"},"
	    "\"files\":[{\"name\":\"a\",\"pad\":\"%*s\"}]}";
	size_t len = strlen(fmt) + 3 * strlen(cid) + pad + 1;
	char *s = malloc(len);
	if (!s)
		exit(2);
	snprintf(s, len, fmt, cid, cid, cid, (int)pad, "");
	return s;
}

/* A writer killed mid-line leaves a fragment with no newline in the pipe;
 * the next writer's first line is glued to it. The reader sees one bad
 * line, says so without quoting it, and goes on with the line after. */
static void test_fragment_of_a_killed_writer_spoils_one_line_only(void)
{
	char *x = torn_item("gone", 100000), *y = torn_item("glued", 10), *z = torn_item("next", 10);
	int p[2], st;
	TU_CHECK(pipe(p) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		(void)util_write_all(p[1], x, 60000);   /* 60,000 of its 100,000 bytes */
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	TU_CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	char *lines[] = { y, z };
	TU_EQ_INT(item_write_lines(p[1], lines, 2), 0);
	close(p[1]);
	item_reader *r = item_reader_new(p[0]);
	cJSON *j;
	TU_EQ_INT(item_read(r, &j), ITEM_BAD);
	const char *e = item_reader_error(r);
	TU_CHECK(strncmp(e, "line 1: invalid JSON near byte ", 31) == 0);
	TU_CHECK(strstr(e, "p1") == NULL && strlen(e) < 64);
	TU_EQ_INT(item_read(r, &j), ITEM_OK);
	TU_EQ_STR(item_str(j, "correlationId"), "next");
	TU_EQ_INT(item_reader_line(r), 2);
	cJSON_Delete(j);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(p[0]);
	free(x);
	free(y);
	free(z);
}

/* Wherever the cut falls (even right before the newline), a fragment glued
 * to a whole item is never read as an item: no torn line is mistaken for
 * a request, with fields of two. Nor is the tail a killed reader leaves. */
static void test_no_cut_of_an_item_reads_as_an_item(void)
{
	char *x = torn_item("x\\\"y", 0), *y = torn_item("y", 0), err[128];
	size_t nx = strlen(x), ny = strlen(y);
	char *line = malloc(nx + ny + 1);
	int mistaken = 0;
	TU_CHECK(line != NULL);
	for (size_t k = 1; line && k <= nx; k++) {
		memcpy(line, x, k);
		memcpy(line + k, y, ny);
		cJSON *glued = item_parse(line, k + ny, err, sizeof err);
		cJSON *tail = k < nx ? item_parse(x + k, nx - k, err, sizeof err) : NULL;
		if ((glued || tail) && mistaken++ == 0)
			printf("# cut at byte %zu: %s read as an item\n", k, glued ? "glued" : "tail");
		cJSON_Delete(glued);
		cJSON_Delete(tail);
	}
	TU_EQ_INT(mistaken, 0);
	free(line);
	free(x);
	free(y);
}

static void test_parse_rejects_nul_and_garbage(void)
{
	char err[128];
	cJSON *j = item_parse("{}\0x", 4, err, sizeof err);
	TU_CHECK(j == NULL);
	TU_EQ_STR(err, "invalid JSON near byte 3");
	/* a buffer that is not NUL-terminated is read only up to len */
	char buf[7] = { '{', '"', 'a', '"', ':', '1', '}' };
	j = item_parse(buf, sizeof buf, err, sizeof err);
	TU_CHECK(j != NULL);
	TU_EQ_INT(item_num(j, "a", 0), 1);
	TU_CHECK(item_str(j, "a") == NULL);
	TU_EQ_INT(item_num(j, "b", 7), 7);
	cJSON_Delete(j);
	j = item_parse(buf, 6, err, sizeof err);
	TU_CHECK(j == NULL);
	j = item_parse(" {\"a\":1} \r\n", 11, err, sizeof err);
	TU_CHECK(j != NULL);
	cJSON_Delete(j);
	TU_CHECK(item_parse("", 0, err, sizeof err) == NULL);
}

static void test_blank_lines_are_skipped(void)
{
	int fd = fd_str("\n   \n\t\r\n{\"n\":4}\n\n\r\n{\"n\":7}\n \n");
	item_reader *r = item_reader_new(fd);
	cJSON *j;
	TU_EQ_INT(read_n(r), 4);
	TU_EQ_INT(item_reader_line(r), 4);
	TU_EQ_INT(read_n(r), 7);
	TU_EQ_INT(item_reader_line(r), 7);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
}

static void test_last_line_without_newline_is_read(void)
{
	int fd = fd_str("{\"n\":1}\r\n{\"n\":2}");
	item_reader *r = item_reader_new(fd);
	cJSON *j;
	TU_EQ_INT(read_n(r), 1);
	TU_EQ_INT(read_n(r), 2);
	TU_EQ_INT(item_reader_line(r), 2);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
}

static void test_empty_input_is_eof(void)
{
	int fd = fd_str("");
	item_reader *r = item_reader_new(fd);
	cJSON *j;
	TU_EQ_INT(item_buffered(r), 0);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	TU_EQ_INT(item_reader_line(r), 0);
	TU_EQ_INT(item_buffered(r), 0);
	item_reader_free(r);
	close(fd);
}

static void test_read_error_is_ioerr(void)
{
	int fd = fd_str("{}\n");
	close(fd);
	item_reader *r = item_reader_new(fd);
	cJSON *j;
	TU_EQ_INT(item_read(r, &j), ITEM_IOERR);
	TU_EQ_INT(errno, EBADF);
	item_reader_free(r);
}

static void test_buffered_says_whether_a_line_waits(void)
{
	int fd = fd_str("{\"n\":1}\n{\"n\":2}\n{\"n\":3}");
	item_reader *r = item_reader_new(fd);
	cJSON *j;
	TU_EQ_INT(item_buffered(r), 0);
	TU_EQ_INT(read_n(r), 1);
	TU_EQ_INT(item_buffered(r), 1);
	TU_EQ_INT(read_n(r), 2);
	TU_EQ_INT(item_buffered(r), 0);    /* "{"n":3}" is not known to be whole */
	TU_EQ_INT(read_n(r), 3);
	TU_EQ_INT(item_buffered(r), 0);
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
}

enum { PIPE_ITEMS = 2000 };

static void feed_slowly(int fd)
{
	char line[64];
	for (int i = 0; i < PIPE_ITEMS; i++) {
		int n = snprintf(line, sizeof line, "{\"n\":%d,\"pad\":\"%*s\"}\n", i, i % 17, "");
		/* pieces of 1 to 7 bytes, so lines arrive split anywhere */
		for (int k = 0; k < n; ) {
			int piece = 1 + (i + k) % 7;
			if (piece > n - k)
				piece = n - k;
			if (util_write_all(fd, line + k, (size_t)piece) < 0)
				_exit(1);
			k += piece;
		}
		if (i % 200 == 0)
			usleep(1000);
	}
}

static void test_reads_a_pipe_fed_in_small_pieces(void)
{
	int p[2];
	TU_CHECK(pipe(p) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		feed_slowly(p[1]);
		_exit(0);
	}
	close(p[1]);
	item_reader *r = item_reader_new(p[0]);
	int got = 0, in_order = 1, n;
	while ((n = read_n(r)) >= 0) {
		in_order &= n == got;
		got++;
	}
	TU_EQ_INT(got, PIPE_ITEMS);
	TU_CHECK(in_order);
	cJSON *j;
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(p[0]);
	int st;
	TU_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_write_then_read_round_trip(void)
{
	const char *text = "{\"tenant\":\"p1\",\"s\":\"line\\nbreak \\u00e9 \\\"q\\\"\","
	    "\"a\":[1,2.5,-3e20,true,false,null],\"o\":{\"k\":{}}}";
	cJSON *in = cJSON_Parse(text);
	char path[128];
	snprintf(path, sizeof path, "%s/out", tu_tmpdir());
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	TU_EQ_INT(item_write(fd, in), 0);
	TU_EQ_INT(item_write(fd, in), 0);
	TU_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	char raw[512];
	ssize_t n = read(fd, raw, sizeof raw - 1);
	TU_CHECK(n > 0);
	raw[n > 0 ? n : 0] = '\0';
	char *nl = strchr(raw, '\n');
	TU_CHECK(nl && nl[1] == '{' && raw[n - 1] == '\n');   /* one line per item */
	TU_CHECK(lseek(fd, 0, SEEK_SET) == 0);
	item_reader *r = item_reader_new(fd);
	for (int i = 0; i < 2; i++) {
		cJSON *out;
		TU_EQ_INT(item_read(r, &out), ITEM_OK);
		TU_CHECK(cJSON_Compare(in, out, 1));
		cJSON_Delete(out);
	}
	cJSON *j;
	TU_EQ_INT(item_read(r, &j), ITEM_EOF);
	item_reader_free(r);
	close(fd);
	cJSON_Delete(in);
}

static void test_label_names_tenant_and_correlation_id(void)
{
	static const struct { const char *json; size_t len; const char *want; } cases[] = {
		{ "{\"tenant\":\"p1\",\"correlationId\":\"c-42\"}", 64, "p1/c-42" },
		{ "{\"correlationId\":\"c-42\"}", 64, "?/c-42" },
		{ "{\"tenant\":\"p1\",\"correlationId\":42}", 64, "p1/?" },
		{ "{}", 64, "?/?" },
		{ "{\"tenant\":\"p1\",\"correlationId\":\"c-42-long\"}", 8, "p1/c-42" },
		{ "{\"tenant\":\"ab\",\"correlationId\":\"\xc3\xa9\xc3\xa9\"}", 7, "ab/\xc3\xa9" },
		{ "{\"tenant\":\"abcdef\",\"correlationId\":\"x\"}", 4, "abc" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[64];
		cJSON *j = cJSON_Parse(cases[i].json);
		TU_EQ_STR(item_label(j, buf, cases[i].len), cases[i].want);
		cJSON_Delete(j);
	}
	char buf[4];
	TU_EQ_STR(item_label(NULL, buf, sizeof buf), "?/?");
}

static void test_fingerprint_follows_the_body(void)
{
	char a[65], b[65], c[65];
	cJSON *x = cJSON_Parse("{\"a\":1,\"b\":[true,null,\"x\"]}");
	cJSON *y = cJSON_Parse(" {\"a\" : 1.0,\n \"b\":[ true , null,\"x\" ] } ");
	cJSON *z = cJSON_Parse("{\"a\":1,\"b\":[true,null,\"y\"]}");
	TU_EQ_INT(item_fingerprint(x, a), 0);
	TU_EQ_INT(item_fingerprint(y, b), 0);
	TU_EQ_INT(item_fingerprint(z, c), 0);
	/* BLAKE2b-256 of {"a":1,"b":[true,null,"x"]} (Python's hashlib) */
	TU_EQ_STR(a, "25d6329bcfe41e13c5257ec91fef9cfc7dbbb97742128ee367fca0f6eeac321e");
	TU_EQ_STR(a, b);
	TU_CHECK(strcmp(a, c) != 0);
	TU_CHECK(util_is_hex(c, 64));
	cJSON_Delete(x);
	cJSON_Delete(y);
	cJSON_Delete(z);
}

static void test_write_to_closed_pipe_is_epipe(void)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, &old);
	int p[2];
	TU_CHECK(pipe(p) == 0);
	close(p[0]);
	cJSON *j = cJSON_Parse("{\"a\":1}");
	errno = 0;
	TU_EQ_INT(item_write(p[1], j), -1);
	TU_EQ_INT(errno, EPIPE);
	cJSON_Delete(j);
	close(p[1]);
	sigaction(SIGPIPE, &old, NULL);
}

TU_MAIN(
	TU(test_reads_several_objects),
	TU(test_reads_a_5mb_line),
	TU(test_line_at_max_is_read_and_over_max_is_bad),
	TU(test_long_line_over_max_is_skipped_across_reads),
	TU(test_malformed_lines_are_bad_and_reading_goes_on),
	TU(test_fragment_of_a_killed_writer_spoils_one_line_only),
	TU(test_no_cut_of_an_item_reads_as_an_item),
	TU(test_parse_rejects_nul_and_garbage),
	TU(test_blank_lines_are_skipped),
	TU(test_last_line_without_newline_is_read),
	TU(test_empty_input_is_eof),
	TU(test_read_error_is_ioerr),
	TU(test_buffered_says_whether_a_line_waits),
	TU(test_reads_a_pipe_fed_in_small_pieces),
	TU(test_write_then_read_round_trip),
	TU(test_label_names_tenant_and_correlation_id),
	TU(test_fingerprint_follows_the_body),
	TU(test_write_to_closed_pipe_is_epipe)
)
