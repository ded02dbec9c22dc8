/* zipplan: a zip described by a plan, and the plan read back as the zip's
 * bytes (see zipplan.h). The layout is computed twice, by the writer (to
 * give the zip's size) and by the reader (to produce it); each entry's line
 * records its offset so the reader can check they agree. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <zlib.h>

#include "fileurl.h"
#include "md5.h"
#include "nameset.h"
#include "util.h"
#include "zipplan.h"

enum {
	LFH = 30, CDH = 46, EOCD = 22, EOCD64 = 56, LOC64 = 20,
	VERSION = 20, VERSION64 = 45, UTF8_FLAG = 0x0800,
	HDR_MAX = ZIP_NAME_MAX + 128,
};
#define MAX32 0xffffffffULL
#define MAX16 0xffffU

/* ---- layout ---------------------------------------------------------------- */

static unsigned char *le16(unsigned char *p, uint64_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	return p + 2;
}

static unsigned char *le32(unsigned char *p, uint64_t v)
{
	return le16(le16(p, v & MAX16), (v >> 16) & MAX16);
}

static unsigned char *le64(unsigned char *p, uint64_t v)
{
	return le32(le32(p, v & MAX32), v >> 32);
}

/* An entry needs ZIP64 sizes when one of them does not fit 32 bits (the
 * value 0xffffffff itself means "see ZIP64"). */
static int big(const struct zplan_entry *e)
{
	return e->usize >= MAX32 || e->csize >= MAX32;
}

static size_t lfh_size(const struct zplan_entry *e)
{
	return LFH + strlen(e->name) + (big(e) ? 20 : 0);
}

/* the ZIP64 extra of a central header: only the fields that overflow */
static size_t cd_extra(const struct zplan_entry *e, uint64_t offset)
{
	size_t n = (e->usize >= MAX32) + (e->csize >= MAX32) + (offset >= MAX32);
	return n ? 4 + 8 * n : 0;
}

static size_t cdh_size(const struct zplan_entry *e, uint64_t offset)
{
	return CDH + strlen(e->name) + cd_extra(e, offset);
}

static int end64(uint64_t entries, uint64_t cd_at, uint64_t cd_size)
{
	return entries >= MAX16 || cd_at >= MAX32 || cd_size >= MAX32;
}

static size_t end_size(uint64_t entries, uint64_t cd_at, uint64_t cd_size)
{
	return EOCD + (end64(entries, cd_at, cd_size) ? EOCD64 + LOC64 : 0);
}

/* the fields local and central headers share, from "version needed" on */
static unsigned char *common(unsigned char *p, const struct zplan_entry *e, int in_local)
{
	int b = big(e);
	p = le16(p, b ? VERSION64 : VERSION);
	p = le16(p, UTF8_FLAG);
	p = le16(p, e->deflated ? 8 : 0);
	p = le16(p, e->dostime & MAX16);
	p = le16(p, e->dostime >> 16);
	p = le32(p, e->crc);
	p = le32(p, e->csize >= MAX32 || (in_local && b) ? MAX32 : e->csize);
	p = le32(p, e->usize >= MAX32 || (in_local && b) ? MAX32 : e->usize);
	return p;
}

size_t zplan_local_header(const struct zplan_entry *e, unsigned char *buf)
{
	size_t nlen = strlen(e->name);
	unsigned char *p = le32(buf, 0x04034b50);
	p = common(p, e, 1);
	p = le16(p, nlen);
	p = le16(p, big(e) ? 20 : 0);
	memcpy(p, e->name, nlen);
	p += nlen;
	if (big(e)) {
		p = le16(le16(p, 0x0001), 16);
		p = le64(le64(p, e->usize), e->csize);
	}
	return (size_t)(p - buf);
}

static size_t central_header(const struct zplan_entry *e, uint64_t offset, unsigned char *buf)
{
	size_t nlen = strlen(e->name), extra = cd_extra(e, offset);
	unsigned char *p = le32(buf, 0x02014b50);
	p = le16(p, 3 << 8 | (big(e) || offset >= MAX32 ? VERSION64 : VERSION));  /* unix */
	p = common(p, e, 0);
	p = le16(p, nlen);
	p = le16(p, extra);
	p = le16(p, 0);                   /* comment */
	p = le16(p, 0);                   /* disk */
	p = le16(p, 0);                   /* internal attributes */
	p = le32(p, (uint64_t)0100644 << 16);
	p = le32(p, offset >= MAX32 ? MAX32 : offset);
	memcpy(p, e->name, nlen);
	p += nlen;
	if (extra) {
		p = le16(le16(p, 0x0001), extra - 4);
		if (e->usize >= MAX32)
			p = le64(p, e->usize);
		if (e->csize >= MAX32)
			p = le64(p, e->csize);
		if (offset >= MAX32)
			p = le64(p, offset);
	}
	return (size_t)(p - buf);
}

static size_t end_records(uint64_t entries, uint64_t cd_at, uint64_t cd_size, unsigned char *buf)
{
	unsigned char *p = buf;
	if (end64(entries, cd_at, cd_size)) {
		p = le32(p, 0x06064b50);
		p = le64(p, EOCD64 - 12);
		p = le16(p, 3 << 8 | VERSION64);
		p = le16(p, VERSION64);
		p = le32(le32(p, 0), 0);      /* this disk, the directory's disk */
		p = le64(le64(p, entries), entries);
		p = le64(le64(p, cd_size), cd_at);
		p = le32(p, 0x07064b50);      /* locator */
		p = le32(p, 0);
		p = le64(p, cd_at + cd_size);
		p = le32(p, 1);
	}
	p = le32(p, 0x06054b50);
	p = le16(le16(p, 0), 0);
	p = le16(p, entries >= MAX16 ? MAX16 : entries);
	p = le16(p, entries >= MAX16 ? MAX16 : entries);
	p = le32(p, cd_size >= MAX32 ? MAX32 : cd_size);
	p = le32(p, cd_at >= MAX32 ? MAX32 : cd_at);
	p = le16(p, 0);
	return (size_t)(p - buf);
}

/* ---- plan lines ------------------------------------------------------------ */

static char *entry_line(const struct zplan_entry *e, uint64_t offset)
{
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;
	if (o && cJSON_AddStringToObject(o, "name", e->name) &&
	    cJSON_AddStringToObject(o, "path", e->path) &&
	    cJSON_AddNumberToObject(o, "at", (double)e->at) &&
	    cJSON_AddNumberToObject(o, "csize", (double)e->csize) &&
	    cJSON_AddNumberToObject(o, "usize", (double)e->usize) &&
	    cJSON_AddNumberToObject(o, "crc", (double)e->crc) &&
	    cJSON_AddNumberToObject(o, "method", e->deflated ? 8 : 0) &&
	    cJSON_AddStringToObject(o, "md5", e->md5) &&
	    cJSON_AddNumberToObject(o, "time", (double)e->dostime) &&
	    cJSON_AddNumberToObject(o, "offset", (double)offset))
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int num(const cJSON *o, const char *k, uint64_t max, uint64_t *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble > (double)max ||
	    n->valuedouble != (double)(uint64_t)n->valuedouble)
		return -1;
	*v = (uint64_t)n->valuedouble;
	return 0;
}

static int str(const cJSON *o, const char *k, char *out, size_t len)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return s && *s && util_strlcpy(out, s, len) < len ? 0 : -1;
}

/* One line: an entry (1, e and its offset filled), the trailer (0, entries
 * and size filled), or -1 when it is neither. */
static int parse_line(const char *line, struct zplan_entry *e, uint64_t *offset,
    uint64_t *entries, uint64_t *size)
{
	cJSON *o = cJSON_Parse(line);
	uint64_t method = 0, crc = 0, t = 0;
	int rc = -1;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "end")))
		rc = num(o, "entries", UINT64_MAX, entries) == 0 && num(o, "size", UINT64_MAX,
		    size) == 0 ? 0 : -1;
	else if (o && str(o, "name", e->name, sizeof e->name) == 0 &&
	    str(o, "path", e->path, sizeof e->path) == 0 && e->path[0] == '/' &&
	    num(o, "at", UINT64_MAX, &e->at) == 0 && num(o, "csize", UINT64_MAX, &e->csize) == 0 &&
	    num(o, "usize", UINT64_MAX, &e->usize) == 0 && num(o, "crc", MAX32, &crc) == 0 &&
	    num(o, "method", 8, &method) == 0 && (method == 0 || method == 8) &&
	    str(o, "md5", e->md5, sizeof e->md5) == 0 && util_is_hex(e->md5, 32) &&
	    num(o, "time", MAX32, &t) == 0 && num(o, "offset", UINT64_MAX, offset) == 0) {
		e->crc = (uint32_t)crc;
		e->deflated = method == 8;
		e->dostime = (uint32_t)t;
		rc = 1;
	}
	cJSON_Delete(o);
	return rc;
}

/* ---- preparing an entry ------------------------------------------------------ */

enum { OUTBUF = 256 << 10 };

/* What zplan_prepare needs while it reads one source. */
struct prep {
	const struct zip_entry *e;
	struct zplan_entry *out;
	struct zip_added *added;
	int fd, spool;
	unsigned char *in, *zbuf;
	md5 *src, *dst;                /* the source's md5; the deflated bytes' */
	z_stream z;
	int zinit;
	zip_tick_fn *tick;
	void *tickarg;
	char *err;
	size_t errlen;
};

static int pfail(struct prep *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pfail(struct prep *p, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static uint32_t dos_time(time_t t)
{
	struct tm tm;
	if (!localtime_r(&t, &tm) || tm.tm_year < 80)
		return 1 << 21 | 1 << 16;  /* 1980-01-01 00:00 */
	if (tm.tm_year > 207)
		tm.tm_year = 207;
	return (uint32_t)(tm.tm_year - 80) << 25 | (uint32_t)(tm.tm_mon + 1) << 21 |
	    (uint32_t)tm.tm_mday << 16 | (uint32_t)tm.tm_hour << 11 | (uint32_t)tm.tm_min << 5 |
	    (uint32_t)tm.tm_sec / 2;
}


/* Deflate in[0..n) (flush at the end) onto the spool. 0 or a zip_rc. */
static int deflate_chunk(struct prep *p, const unsigned char *in, size_t n, int end,
    const char *spool_path)
{
	p->z.next_in = (unsigned char *)in;
	p->z.avail_in = (uInt)n;
	int zr;
	do {
		p->z.next_out = p->zbuf;
		p->z.avail_out = OUTBUF;
		zr = deflate(&p->z, end ? Z_FINISH : Z_NO_FLUSH);
		if (zr == Z_STREAM_ERROR)
			return pfail(p, ZIP_EWRITE, "deflate: %s", p->z.msg ? p->z.msg : "failed");
		size_t have = OUTBUF - p->z.avail_out;
		if (have && util_write_all(p->spool, p->zbuf, have) < 0)
			return pfail(p, ZIP_EWRITE, "%s: %s", spool_path, strerror(errno));
		md5_update(p->dst, p->zbuf, have);
		p->out->csize += have;
	} while (p->z.avail_out == 0 || (end && zr != Z_STREAM_END));
	return ZIP_OK;
}

/* Read the source from its first chunk (n bytes in p->in) to its end. */
static int read_source(struct prep *p, ssize_t n, const char *spool_path)
{
	int deflated = p->out->deflated, rc;
	uLong crc = crc32(0L, Z_NULL, 0);
	for (;;) {
		crc = crc32(crc, p->in, (uInt)n);
		p->added->size += (uint64_t)n;
		if (deflated) {
			md5_update(p->src, p->in, (size_t)n);
			if ((rc = deflate_chunk(p, p->in, (size_t)n, n == 0, spool_path)) != ZIP_OK)
				return rc;
		}
		if (n == 0)
			break;
		if (p->tick && p->tick(p->tickarg, (uint64_t)n))
			return pfail(p, ZIP_ESTOP, "stopped");
		if ((n = util_read_full(p->fd, p->in, ZIP_CHUNK)) < 0)
			return pfail(p, ZIP_ESOURCE, "%s: %s", p->e->path, strerror(errno));
	}
	p->out->crc = (uint32_t)crc;
	p->out->usize = p->added->size;
	if (p->e->size >= 0 && p->added->size != (uint64_t)p->e->size)
		return pfail(p, ZIP_EMISMATCH, "%s: size %llu, expected %lld", p->e->path,
		    (unsigned long long)p->added->size, (long long)p->e->size);
	if (!deflated) {
		p->out->csize = p->out->usize;
		util_strlcpy(p->out->md5, p->e->md5, sizeof p->out->md5);
		for (char *c = p->out->md5; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'F' ? *c - 'A' + 'a' : *c);
		return ZIP_OK;
	}
	md5_final_hex(p->src, p->added->md5);
	md5_final_hex(p->dst, p->out->md5);
	if (!md5_equal(p->e->md5, p->added->md5))
		return pfail(p, ZIP_EMISMATCH, "%s: md5 %s, expected %s", p->e->path, p->added->md5,
		    p->e->md5);
	return ZIP_OK;
}

/* fileurl_open the source into p->fd; 0 or a zip_rc (the size found: the log's) */
static int open_source(struct prep *p, struct stat *st)
{
	char why[128];
	const struct zip_entry *e = p->e;
	p->fd = fileurl_open(e->path, e->roots, e->nroots, e->size, st, why, sizeof why);
	if (p->fd == FILEURL_SIZE) {
		p->added->size = (uint64_t)st->st_size;
		return pfail(p, ZIP_EMISMATCH, "%s: size %lld, expected %lld", e->path,
		    (long long)st->st_size, (long long)e->size);
	}
	return p->fd < 0 ? pfail(p, ZIP_ESOURCE, "%s: %s", e->path, why) : ZIP_OK;
}

static int prepare_open(struct prep *p, int level, struct nameset *names, const char *spool_path)
{
	struct stat st;
	int rc = open_source(p, &st);
	if (rc != ZIP_OK)
		return rc;
	if (!p->e->md5 || !util_is_hex(p->e->md5, 32))
		return pfail(p, ZIP_ESOURCE, "%s: no md5 to check it against", p->e->path);
	posix_fadvise(p->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	ssize_t n = util_read_full(p->fd, p->in, ZIP_CHUNK);
	if (n < 0)
		return pfail(p, ZIP_ESOURCE, "%s: %s", p->e->path, strerror(errno));
	p->out->deflated = p->e->method == ZIP_DEFLATE ? n > 0 : p->e->method == ZIP_AUTO &&
	    zip_compressible(p->in, (size_t)n < ZIP_SAMPLE ? (size_t)n : ZIP_SAMPLE);
	p->added->deflated = p->out->deflated;
	if (nameset_unique(names, p->e->name, p->out->name, sizeof p->out->name,
	    &p->added->renamed) < 0)
		return pfail(p, ZIP_EWRITE, "%s: %s", p->e->name, strerror(errno));
	util_strlcpy(p->added->name, p->out->name, sizeof p->added->name);
	p->out->dostime = dos_time(st.st_mtim.tv_sec);
	if (p->out->deflated) {
		if (deflateInit2(&p->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return pfail(p, ZIP_EWRITE, "deflate: %s", strerror(ENOMEM));
		p->zinit = 1;
	}
	return read_source(p, n, spool_path);
}

int zplan_prepare(const struct zip_entry *e, int level, struct nameset *names, int spool_fd,
    const char *spool_path, uint64_t *spool_at, zip_tick_fn *tick, void *tickarg,
    struct zplan_entry *out, struct zip_added *added, char *err, size_t errlen)
{
	struct prep p = { .e = e, .out = out, .added = added, .fd = -1, .spool = spool_fd,
	    .tick = tick, .tickarg = tickarg, .err = err, .errlen = errlen };
	int rc;
	memset(out, 0, sizeof *out);
	memset(added, 0, sizeof *added);
	if (tick && tick(tickarg, 0))
		return pfail(&p, ZIP_ESTOP, "stopped");
	if (!(p.in = malloc(ZIP_CHUNK)) || !(p.zbuf = malloc(OUTBUF)) || !(p.src = md5_new()) ||
	    !(p.dst = md5_new()))
		rc = pfail(&p, ZIP_EWRITE, "%s", strerror(ENOMEM));
	else {
		rc = prepare_open(&p, level, names, spool_path);
		if (p.fd >= 0)
			close(p.fd);
	}
	if (rc == ZIP_OK && out->deflated) {
		util_strlcpy(out->path, spool_path, sizeof out->path);
		out->at = *spool_at;
		*spool_at += out->csize;
	} else if (rc == ZIP_OK && util_strlcpy(out->path, e->path, sizeof out->path) >=
	    sizeof out->path) {
		rc = pfail(&p, ZIP_ESOURCE, "%s: %s", e->path, strerror(ENAMETOOLONG));
	}
	if (p.zinit)
		deflateEnd(&p.z);
	md5_free(p.src);
	md5_free(p.dst);
	free(p.zbuf);
	free(p.in);
	return rc;
}

/* ---- writer ---------------------------------------------------------------- */

struct zplan_writer {
	FILE *f;
	char *path, *part;
	uint64_t off, entries, cd_size;
	int done;
};

int zplan_create(zplan_writer **out, const char *path)
{
	zplan_writer *w = calloc(1, sizeof *w);
	*out = NULL;
	if (!w || !(w->path = strdup(path)) || !(w->part = malloc(strlen(path) + 6))) {
		zplan_writer_free(w);
		errno = ENOMEM;
		return -1;
	}
	sprintf(w->part, "%s.part", path);
	if (!(w->f = fopen(w->part, "we"))) {
		zplan_writer_free(w);
		return -1;
	}
	*out = w;
	return 0;
}

int zplan_add(zplan_writer *w, const struct zplan_entry *e)
{
	char *line = entry_line(e, w->off);
	int rc = line && fprintf(w->f, "%s\n", line) >= 0 ? 0 : -1;
	if (!line)
		errno = ENOMEM;
	free(line);
	w->cd_size += cdh_size(e, w->off);
	w->off += lfh_size(e) + e->csize;
	w->entries++;
	return rc;
}

int zplan_finish(zplan_writer *w, uint64_t *zipsize, uint64_t *entries)
{
	uint64_t size = w->off + w->cd_size + end_size(w->entries, w->off, w->cd_size);
	int rc = fprintf(w->f, "{\"end\":true,\"entries\":%llu,\"size\":%llu}\n",
	    (unsigned long long)w->entries, (unsigned long long)size) < 0 || fflush(w->f) != 0 ||
	    fsync(fileno(w->f)) < 0 ? -1 : 0;
	int e = errno;
	if (fclose(w->f) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	w->f = NULL;
	if (rc == 0 && rename(w->part, w->path) < 0) {
		rc = -1;
		e = errno;
	}
	if (rc < 0) {
		errno = e;
		return -1;
	}
	w->done = 1;
	*zipsize = size;
	*entries = w->entries;
	return 0;
}

void zplan_writer_free(zplan_writer *w)
{
	if (!w)
		return;
	if (w->f)
		fclose(w->f);
	if (!w->done && w->part)
		unlink(w->part);
	free(w->path);
	free(w->part);
	free(w);
}

/* ---- reader ---------------------------------------------------------------- */

enum phase { P_LOCAL, P_DATA, P_CENTRAL, P_END };

struct zplan_reader {
	FILE *f;
	char *line;
	size_t cap;
	uint64_t size, entries;        /* from the trailer */
	enum phase phase;
	struct zplan_entry e;          /* the entry in hand */
	uint64_t e_off;                /* its recorded offset */
	unsigned char hdr[HDR_MAX];    /* header bytes not handed out yet */
	size_t hlen, hoff;
	int fd;                        /* P_DATA: the entry's file */
	uint64_t left;                 /* P_DATA: its bytes still to read */
	md5 *m;
	uint64_t off, n, cd_at;        /* zip bytes handed out; entries in this phase */
	char *const *roots;            /* where the entries' files may be */
	size_t nroots;
	int mismatch;
	char err[768];
	char detail[96];               /* what was found instead: for the log only */
};

static int rfail(zplan_reader *r, int mismatch, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rfail(zplan_reader *r, int mismatch, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof r->err, fmt, ap);
	va_end(ap);
	r->mismatch = mismatch;
	return -1;
}

/* The next line of the plan: 1 entry, 0 trailer, -1 (r->err). */
static int next_line(zplan_reader *r)
{
	uint64_t entries = 0, size = 0;
	errno = 0;
	if (getline(&r->line, &r->cap, r->f) < 0)
		return rfail(r, 0, "plan: %s", errno ? strerror(errno) : "ends without its trailer");
	int rc = parse_line(r->line, &r->e, &r->e_off, &entries, &size);
	if (rc < 0)
		return rfail(r, 0, "plan: line %llu is not a zip entry",
		    (unsigned long long)r->n + 1);
	if (rc == 0 && (entries != r->entries || size != r->size || r->n != entries))
		return rfail(r, 0, "plan: the trailer does not match its entries");
	return rc;
}

int zplan_rewind(zplan_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->phase = P_LOCAL;
	r->hlen = r->hoff = 0;
	r->off = r->n = 0;
	r->mismatch = 0;
	r->err[0] = r->detail[0] = '\0';
	if (fseeko(r->f, 0, SEEK_SET) < 0)
		return rfail(r, 0, "plan: %s", strerror(errno));
	return 0;
}

/* Read the whole plan once: it must be complete (its trailer last) and
 * describe as many entries as it holds. */
static int check_plan(zplan_reader *r)
{
	uint64_t n = 0, entries = 0, size = 0, off = 0;
	int rc;
	while (getline(&r->line, &r->cap, r->f) >= 0) {
		if ((rc = parse_line(r->line, &r->e, &off, &entries, &size)) < 0)
			return rfail(r, 0, "plan: line %llu is not a zip entry",
			    (unsigned long long)n + 1);
		if (rc == 0) {
			if (entries != n || getline(&r->line, &r->cap, r->f) >= 0)
				break;
			r->entries = entries;
			r->size = size;
			return zplan_rewind(r);
		}
		n++;
	}
	return rfail(r, 0, "plan: incomplete (no trailer, or not last)");
}

int zplan_open(zplan_reader **out, const char *path, char *const *roots, size_t nroots,
    uint64_t *zipsize, char *err, size_t errlen)
{
	zplan_reader *r = calloc(1, sizeof *r);
	*out = NULL;
	if (!r || !(r->m = md5_new())) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		zplan_close(r);
		return -1;
	}
	r->fd = -1;
	r->roots = roots;
	r->nroots = nroots;
	if (!(r->f = fopen(path, "re"))) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		zplan_close(r);
		return -1;
	}
	if (check_plan(r) < 0) {
		snprintf(err, errlen, "%s: %s", path, r->err);
		zplan_close(r);
		return -1;
	}
	*zipsize = r->size;
	*out = r;
	return 0;
}

/* Hand out header bytes; the number given. */
static size_t give_hdr(zplan_reader *r, unsigned char *buf, size_t len)
{
	size_t n = r->hlen - r->hoff;
	if (n > len)
		n = len;
	memcpy(buf, r->hdr + r->hoff, n);
	r->hoff += n;
	return n;
}

static void set_hdr(zplan_reader *r, size_t len)
{
	r->hlen = len;
	r->hoff = 0;
}

/* The entry's file, by fileurl_open: a stored entry's source must have the
 * size it had when packed (a spool's length is checked as it is read). */
static int open_entry(zplan_reader *r)
{
	struct stat st;
	char why[128];
	int64_t want = r->e.deflated ? -1 : (int64_t)r->e.csize;
	r->fd = fileurl_open(r->e.path, r->roots, r->nroots, want, &st, why, sizeof why);
	if (r->fd >= 0)
		return 0;
	int rc = r->fd;
	r->fd = -1;
	if (rc != FILEURL_SIZE)
		return rfail(r, 0, "unable to read %s: %s", r->e.path, why);
	snprintf(r->detail, sizeof r->detail, "the file has %lld bytes", (long long)st.st_size);
	return rfail(r, 1, "size mismatch for %s: expected %llu bytes", r->e.name,
	    (unsigned long long)r->e.csize);
}

/* The next entry's local header, or on to the central directory. */
static int start_entry(zplan_reader *r)
{
	int rc = next_line(r);
	if (rc < 0)
		return -1;
	if (rc == 0) {                   /* the trailer: the directory follows */
		r->cd_at = r->off;
		r->n = 0;
		r->phase = P_CENTRAL;
		if (fseeko(r->f, 0, SEEK_SET) < 0)
			return rfail(r, 0, "plan: %s", strerror(errno));
		return 0;
	}
	if (r->e_off != r->off)
		return rfail(r, 0, "plan: entry %s is at %llu, not %llu", r->e.name,
		    (unsigned long long)r->e_off, (unsigned long long)r->off);
	if (open_entry(r) < 0)
		return -1;
	posix_fadvise(r->fd, (off_t)r->e.at, (off_t)r->e.csize, POSIX_FADV_SEQUENTIAL);
	set_hdr(r, zplan_local_header(&r->e, r->hdr));
	r->left = r->e.csize;
	md5_reset(r->m);
	r->phase = P_DATA;
	return 0;
}

/* The entry's bytes are all read: are they the expected ones? */
static int end_entry(zplan_reader *r)
{
	char got[33];
	md5_final_hex(r->m, got);
	close(r->fd);
	r->fd = -1;
	r->n++;
	r->phase = P_LOCAL;
	if (!md5_equal(got, r->e.md5)) {
		snprintf(r->detail, sizeof r->detail, "got %s", got);
		return rfail(r, 1, "checksum mismatch for %s: expected %s, got another md5",
		    r->e.name, r->e.md5);
	}
	return 0;
}

static ssize_t read_data(zplan_reader *r, unsigned char *buf, size_t len)
{
	if (r->left == 0)
		return end_entry(r) < 0 ? -1 : 0;
	if (len > r->left)
		len = (size_t)r->left;
	ssize_t got;
	while ((got = pread(r->fd, buf, len, (off_t)(r->e.at + r->e.csize - r->left))) < 0 &&
	    errno == EINTR)
		;
	if (got < 0)
		return rfail(r, 0, "unable to read %s: %s", r->e.path, strerror(errno));
	if (got == 0) {
		snprintf(r->detail, sizeof r->detail, "the file ends after %llu of them",
		    (unsigned long long)(r->e.csize - r->left));
		return rfail(r, 1, "size mismatch for %s: expected %llu bytes", r->e.name,
		    (unsigned long long)r->e.csize);
	}
	md5_update(r->m, buf, (size_t)got);
	r->left -= (uint64_t)got;
	return got;
}

/* The next central header, or the end records after the last. */
static int next_central(zplan_reader *r)
{
	int rc = next_line(r);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		set_hdr(r, central_header(&r->e, r->e_off, r->hdr));
		r->n++;
		return 0;
	}
	set_hdr(r, end_records(r->entries, r->cd_at, r->off - r->cd_at, r->hdr));
	r->phase = P_END;
	return 0;
}

ssize_t zplan_read(zplan_reader *r, void *out, size_t len)
{
	unsigned char *buf = out;
	size_t done = 0;
	if (r->err[0])
		return -1;
	while (done < len) {
		ssize_t n = 0;
		if (r->hoff < r->hlen)
			n = (ssize_t)give_hdr(r, buf + done, len - done);
		else if (r->phase == P_END)
			break;
		else if (r->phase == P_DATA)
			n = read_data(r, buf + done, len - done);
		else
			n = r->phase == P_LOCAL ? start_entry(r) : next_central(r);
		if (n < 0)
			return -1;
		done += (size_t)n;
		r->off += (uint64_t)n;
	}
	if (r->off > r->size)
		return rfail(r, 0, "plan: the zip is longer than its %llu bytes",
		    (unsigned long long)r->size);
	if (done == 0 && len > 0 && r->off != r->size)
		return rfail(r, 0, "plan: the zip ends at %llu bytes, not %llu",
		    (unsigned long long)r->off, (unsigned long long)r->size);
	return (ssize_t)done;
}

const char *zplan_error(const zplan_reader *r)
{
	return r->err;
}

const char *zplan_detail(const zplan_reader *r)
{
	return r->detail;
}

int zplan_mismatch(const zplan_reader *r)
{
	return r->mismatch;
}

void zplan_close(zplan_reader *r)
{
	if (!r)
		return;
	if (r->f)
		fclose(r->f);
	if (r->fd >= 0)
		close(r->fd);
	free(r->line);
	md5_free(r->m);
	free(r);
}
