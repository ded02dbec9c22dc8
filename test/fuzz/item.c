/* fuzz item: the NDJSON item reader (lib/item). Byte 0 picks the longest
 * line accepted (item_reader_max), byte 1 seeds the sizes of the pieces the
 * rest is written in to a non-blocking pipe, so that lines arrive cut
 * anywhere. Properties: the reader gives, line by line, what item_parse
 * gives for each line on its own (blank lines skipped, long ones refused),
 * with the right line numbers, and each item prints stably. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fuzz.h"
#include "item.h"

FUZZ_TARGET("item");

struct model {
	const char *s, *end;     /* the stream still to be judged */
	size_t max;
	unsigned long line;
};

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

static char *print(const cJSON *j)
{
	char *s = item_print(j);
	if (!s)
		abort();
	return s;
}

/* the next outcome the stream should give: ITEM_OK with *want, ITEM_BAD,
 * or ITEM_EOF */
static int expect(struct model *m, int eof, cJSON **want)
{
	*want = NULL;
	for (;;) {
		if (m->s == m->end)
			return ITEM_EOF;
		const char *nl = memchr(m->s, '\n', (size_t)(m->end - m->s));
		FUZZ_CHECK(nl || eof);
		size_t n = nl ? (size_t)(nl - m->s) : (size_t)(m->end - m->s);
		const char *line = m->s;
		m->s += n + (nl != NULL);
		m->line++;
		if (m->max && n > m->max)
			return ITEM_BAD;
		if (blank(line, n))
			continue;
		char *copy = fuzz_cstr((const uint8_t *)line, n), why[128];
		*want = item_parse(copy, n, why, sizeof why);
		free(copy);
		return *want ? ITEM_OK : ITEM_BAD;
	}
}

static void check_item(const cJSON *got)
{
	char label[16], hex[65];
	int64_t size;
	char *s = print(got), why[128];
	cJSON *again = item_parse(s, strlen(s), why, sizeof why);
	FUZZ_CHECK(again != NULL);
	char *s2 = print(again);
	FUZZ_CHECK(strcmp(s, s2) == 0);
	item_label(got, label, (strlen(s) % sizeof label) + 1);
	FUZZ_CHECK(strlen(label) < sizeof label);
	if (item_int(got, "size", &size) == 0)
		FUZZ_CHECK((double)size == item_num(got, "size", 0.5));
	FUZZ_CHECK(item_fingerprint(got, hex) == 0 && strlen(hex) == 64);
	cJSON_Delete(again);
	free(s);
	free(s2);
}

/* read all that is there; eof: the writer is gone */
static void drain(item_reader *r, struct model *m, int eof)
{
	for (;;) {
		cJSON *got, *want;
		int rc = item_read(r, &got);
		if (rc == ITEM_IOERR) {
			FUZZ_CHECK(!eof && errno == EAGAIN && !got);
			return;
		}
		FUZZ_CHECK(eof || rc != ITEM_EOF);
		int wrc = expect(m, eof || rc != ITEM_EOF, &want);
		FUZZ_CHECK(rc == wrc);
		if (rc == ITEM_EOF)
			return;
		FUZZ_CHECK(item_reader_line(r) == m->line);
		if (rc == ITEM_OK) {
			char *a = print(got), *b = print(want);
			FUZZ_CHECK(strcmp(a, b) == 0);
			free(a);
			free(b);
			check_item(got);
		} else {
			FUZZ_CHECK(!got && item_reader_error(r)[0]);
		}
		cJSON_Delete(got);
		cJSON_Delete(want);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fds[2];
	if (size < 2 || size > 60000)   /* a pipe holds 64 KiB: writes never block */
		return 0;
	if (pipe(fds) < 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0)
		abort();
	item_reader *r = item_reader_new(fds[0]);
	if (!r)
		abort();
	size_t max = data[0] & 0x80 ? data[0] & 0x7f : 0;
	item_reader_max(r, max);
	uint32_t seed = data[1] * 2654435761u + 1;
	struct model m = { (const char *)data + 2, (const char *)data + size, max, 0 };
	for (size_t at = 2; at < size; ) {
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 16) % 97 + 1;
		if (n > size - at)
			n = size - at;
		if (write(fds[1], data + at, n) != (ssize_t)n)
			abort();
		at += n;
		drain(r, &m, 0);
	}
	close(fds[1]);
	drain(r, &m, 1);
	FUZZ_CHECK(m.s == m.end);
	item_reader_free(r);
	close(fds[0]);
	return 0;
}
