/* item: read and write the NDJSON items of the pipes (see item.h). The reader
 * keeps its own growing buffer over a raw fd, so a line may be megabytes
 * long; each byte is scanned for '\n' once and consumed data is compacted. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "item.h"
#include "util.h"

enum { CHUNK = 64 * 1024 };

struct item_reader {
	int fd;
	char *buf;
	size_t cap;
	size_t start;          /* first unconsumed byte */
	size_t scan;           /* [start, scan) holds no '\n' */
	size_t end;            /* end of the data read */
	size_t max;            /* longest line accepted, 0 = any */
	int eof;
	int skipping;          /* inside a too-long line, dropping its bytes */
	unsigned long line;
	char err[160];
};

item_reader *item_reader_new(int fd)
{
	item_reader *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->fd = fd;
	r->cap = CHUNK + 1;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		errno = ENOMEM;
		return NULL;
	}
	return r;
}

void item_reader_free(item_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

void item_reader_max(item_reader *r, size_t max) { r->max = max; }
const char *item_reader_error(const item_reader *r) { return r->err; }
unsigned long item_reader_line(const item_reader *r) { return r->line; }

int item_buffered(const item_reader *r)
{
	if (memchr(r->buf + r->scan, '\n', r->end - r->scan))
		return 1;
	return r->eof && (r->end > r->start || r->skipping);
}

/* an empty buffer that one huge line grew goes back to its first size, so a
 * long-running stage does not keep the peak */
static void shrink(item_reader *r)
{
	if (r->cap <= 16 * CHUNK)
		return;
	char *nb = realloc(r->buf, CHUNK + 1);
	if (nb) {
		r->buf = nb;
		r->cap = CHUNK + 1;
	}
}

/* make room for at least CHUNK more bytes plus a terminating NUL */
static int make_room(item_reader *r)
{
	if (r->start == r->end) {
		r->start = r->scan = r->end = 0;
		shrink(r);
	} else if (r->start > 0 && r->cap - r->end < CHUNK + 1) {
		size_t n = r->end - r->start;
		memmove(r->buf, r->buf + r->start, n);
		r->scan -= r->start;
		r->start = 0;
		r->end = n;
	}
	if (r->cap - r->end >= CHUNK + 1)
		return 0;
	size_t cap = r->cap * 2;
	if (cap < r->end + CHUNK + 1)
		cap = r->end + CHUNK + 1;
	char *nb = realloc(r->buf, cap);
	if (!nb) {
		errno = ENOMEM;
		return -1;
	}
	r->buf = nb;
	r->cap = cap;
	return 0;
}

/* one read(2) into the buffer; 0, or -1 with errno (EINTR included) */
static int fill(item_reader *r)
{
	if (make_room(r) < 0)
		return -1;
	ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
	if (n < 0)
		return -1;
	if (n == 0)
		r->eof = 1;
	r->end += (size_t)n;
	return 0;
}

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

static int bad_long(item_reader *r)
{
	snprintf(r->err, sizeof r->err, "line %lu: longer than %zu bytes", r->line, r->max);
	return ITEM_BAD;
}

/* the line [s, s+n) was taken off the buffer: parse it, or say why not;
 * 2 means a blank line, to be skipped */
static int take_line(item_reader *r, char *s, size_t n, cJSON **out)
{
	char why[128];
	r->line++;
	if (r->skipping || (r->max && n > r->max)) {
		r->skipping = 0;
		return bad_long(r);
	}
	if (blank(s, n))
		return 2;
	s[n] = '\0';        /* the '\n', or the spare byte fill() keeps */
	*out = item_parse(s, n, why, sizeof why);
	if (*out)
		return ITEM_OK;
	snprintf(r->err, sizeof r->err, "line %lu: %s", r->line, why);
	return ITEM_BAD;
}

/* the buffer holds no whole line: drop what a too-long line has buffered */
static void check_long(item_reader *r)
{
	if (!r->skipping && r->max && r->end - r->start > r->max)
		r->skipping = 1;
	if (r->skipping)
		r->start = r->scan = r->end;
}

int item_read(item_reader *r, cJSON **out)
{
	*out = NULL;
	for (;;) {
		char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
		int rc;
		if (nl) {
			size_t at = r->start, n = (size_t)(nl - r->buf) - at;
			r->start = r->scan = at + n + 1;
			rc = take_line(r, r->buf + at, n, out);
		} else if (r->eof && (r->end > r->start || r->skipping)) {
			size_t at = r->start, n = r->end - at;
			r->start = r->scan = r->end;
			rc = take_line(r, r->buf + at, n, out);
		} else if (r->eof) {
			return ITEM_EOF;
		} else {
			r->scan = r->end;
			check_long(r);
			if (fill(r) < 0)
				return ITEM_IOERR;
			continue;
		}
		if (rc != 2)
			return rc;
	}
}

cJSON *item_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (j) {
		/* cJSON stops after the value: only whitespace may follow */
		while (end < buf + len && *end && strchr(" \t\r\n", *end))
			end++;
		if (end < buf + len) {
			cJSON_Delete(j);
			j = NULL;
		}
	}
	if (!j) {
		size_t at = end && end >= buf ? (size_t)(end - buf) + 1 : 1;
		snprintf(err, errlen, "invalid JSON near byte %zu", at);
		return NULL;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		snprintf(err, errlen, "not a JSON object");
		return NULL;
	}
	return j;
}

char *item_print(const cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);
	if (!s)
		errno = obj ? ENOMEM : EINVAL;
	return s;
}

int item_write_lines(int fd, char *const *lines, int n)
{
	enum { CHUNK = 256 };   /* lines per writev: 512 vectors, under IOV_MAX */
	static char nl[] = "\n";
	struct iovec v[2 * CHUNK];
	for (int at = 0; at < n; at += CHUNK) {
		int k = n - at < CHUNK ? n - at : CHUNK, nv = 0;
		for (int i = 0; i < k; i++) {
			v[nv++] = (struct iovec){ lines[at + i], strlen(lines[at + i]) };
			v[nv++] = (struct iovec){ nl, 1 };
		}
		struct iovec *p = v;
		while (nv > 0) {
			ssize_t w = writev(fd, p, nv);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
			while (nv > 0 && (size_t)w >= p->iov_len) {
				w -= (ssize_t)p->iov_len;
				p++;
				nv--;
			}
			if (nv > 0) {
				p->iov_base = (char *)p->iov_base + w;
				p->iov_len -= (size_t)w;
			}
		}
	}
	return 0;
}

int item_write(int fd, const cJSON *obj)
{
	char *s = item_print(obj);
	if (!s)
		return -1;
	int rc = item_write_lines(fd, &s, 1);
	int saved = errno;
	free(s);
	errno = saved;
	return rc;
}

const char *item_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int item_int(const cJSON *obj, const char *key, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) < 9007199254740992.0) ||
	    v->valuedouble != floor(v->valuedouble))
		return -1;
	*out = (int64_t)v->valuedouble;
	return 0;
}

double item_num(const cJSON *obj, const char *key, double dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* append as much of s as fits in buf (cap bytes with the NUL) without
 * cutting a UTF-8 sequence */
static void append(char *buf, size_t cap, size_t *pos, const char *s)
{
	size_t n = util_utf8_cut(s, strlen(s), cap - 1 - *pos);
	memcpy(buf + *pos, s, n);
	*pos += n;
	buf[*pos] = '\0';
}

const char *item_label(const cJSON *item, char *buf, size_t len)
{
	const char *t = item_str(item, "tenant");
	const char *c = item_str(item, "correlationId");
	size_t pos = 0;
	if (len == 0)
		return buf;
	buf[0] = '\0';
	append(buf, len, &pos, t ? t : "?");
	append(buf, len, &pos, "/");
	append(buf, len, &pos, c ? c : "?");
	return buf;
}

int item_fingerprint(const cJSON *request, char hex[65])
{
	unsigned char h[crypto_generichash_BYTES];
	if (sodium_init() < 0) {
		errno = ENOMEM;
		return -1;
	}
	char *s = item_print(request);
	if (!s)
		return -1;
	crypto_generichash(h, sizeof h, (const unsigned char *)s, strlen(s), NULL, 0);
	free(s);
	util_hex(h, sizeof h, hex);
	return 0;
}
