/* zip: the delivery zip writer over libarchive (see zip.h). libarchive
 * writes through our callback into a ring of blocks; a writer thread hashes
 * and writes them, so the zip's md5 and the disk overlap the reading side. */
#define _GNU_SOURCE        /* sync_file_range, where there is one */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "fileurl.h"
#include "md5.h"
#include "nameset.h"
#include "util.h"
#include "zip.h"

enum { NBLK = 4, BLK = 1 << 20, KICK = 16 << 20 };

/* Blocks [tail, head) are queued for the writer thread; block head % NBLK
 * is the one being filled. The writer hashes and writes them in order. */
struct ring {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running, quit, werrno;     /* werrno: the writer's first failure */
	unsigned head, tail;
	unsigned char *blk[NBLK];
	size_t len[NBLK];
	int fd;
	md5 *m;
	uint64_t off, kicked;          /* bytes written, and handed to writeback */
};

struct zip_writer {
	struct archive *a;
	struct archive_entry *entry;
	int closed, failed, discard;
	int werrno;                    /* a write failed: sticky, libarchive never sees it */
	int hashing;                   /* the source in hand has an md5 to check */
	char *path, *part;
	md5 *smd5;                     /* of the source in hand */
	unsigned char *in;             /* ZIP_CHUNK read buffer */
	struct ring ring;
	uint64_t written;
	locale_t utf8;                 /* so libarchive flags non-ASCII names UTF-8 */
	struct nameset names;
	zip_tick_fn *tick;
	void *tickarg;
	char err[512];
};

static void seterr(zip_writer *z, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(zip_writer *z, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(z->err, sizeof z->err, fmt, ap);
	va_end(ap);
}

/* Start writeback of what was written since the last kick, so the disk
 * works while we compute and the final fsync has little left to do.
 * Advisory: where it fails or does not exist, fsync does it all. */
static void kick(struct ring *q)
{
#ifdef SYNC_FILE_RANGE_WRITE
	if (q->off - q->kicked < KICK)
		return;
	sync_file_range(q->fd, (off_t)q->kicked, (off_t)(q->off - q->kicked), SYNC_FILE_RANGE_WRITE);
	q->kicked = q->off;
#else
	(void)q;
#endif
}

static void *writer(void *arg)
{
	struct ring *q = arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (q->tail == q->head && !q->quit)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->tail == q->head)
			break;
		unsigned b = q->tail % NBLK;
		int failed = q->werrno;
		pthread_mutex_unlock(&q->mu);
		md5_update(q->m, q->blk[b], q->len[b]);
		int e = !failed && util_write_all(q->fd, q->blk[b], q->len[b]) < 0 ? errno : 0;
		q->off += q->len[b];
		if (!e)
			kick(q);
		pthread_mutex_lock(&q->mu);
		if (e)
			q->werrno = e;
		q->tail++;
		pthread_cond_broadcast(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Queue the block being filled (if it holds anything) and wait for a free
 * one; all = wait until the writer has written everything. 0 or -1/errno. */
static int ring_submit(struct ring *q, int all)
{
	pthread_mutex_lock(&q->mu);
	if (q->len[q->head % NBLK]) {
		q->head++;
		pthread_cond_broadcast(&q->cv);
	}
	while (all ? q->tail != q->head : q->head - q->tail >= NBLK)
		pthread_cond_wait(&q->cv, &q->mu);
	q->len[q->head % NBLK] = 0;
	int e = q->werrno;
	pthread_mutex_unlock(&q->mu);
	errno = e;
	return e ? -1 : 0;
}

static void ring_stop(struct ring *q)
{
	if (!q->running)
		return;
	pthread_mutex_lock(&q->mu);
	q->quit = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->thread, NULL);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	q->running = 0;
}

static int ring_start(struct ring *q)
{
	if (pthread_mutex_init(&q->mu, NULL) != 0)
		return -1;
	if (pthread_cond_init(&q->cv, NULL) != 0) {
		pthread_mutex_destroy(&q->mu);
		return -1;
	}
	if (pthread_create(&q->thread, NULL, writer, q) != 0) {
		pthread_cond_destroy(&q->cv);
		pthread_mutex_destroy(&q->mu);
		return -1;
	}
	q->running = 1;
	return 0;
}

/* libarchive's output: every byte of the zip passes here once, copied into
 * the ring (the copy is cheap next to the md5 and the write it overlaps).
 * It never fails: libarchive leaks its deflate state when an output error
 * interrupts an entry, so failures are recorded and checked after each call. */
static la_ssize_t out_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	zip_writer *z = arg;
	struct ring *q = &z->ring;
	const unsigned char *p = buf;
	(void)a;
	if (z->discard || z->werrno)
		return (la_ssize_t)len;
	for (size_t left = len; left > 0;) {
		unsigned b = q->head % NBLK;
		size_t n = BLK - q->len[b] < left ? BLK - q->len[b] : left;
		memcpy(q->blk[b] + q->len[b], p, n);
		q->len[b] += n;
		p += n;
		left -= n;
		if (q->len[b] == BLK && ring_submit(q, 0) < 0) {
			z->werrno = errno;
			return (la_ssize_t)len;
		}
	}
	z->written += len;
	return (la_ssize_t)len;
}

static int new_archive(zip_writer *z, int level)
{
	char opt[32];
	snprintf(opt, sizeof opt, "zip:compression-level=%d", level);
	z->a = archive_write_new();
	if (!z->a || archive_write_set_format_zip(z->a) != ARCHIVE_OK ||
	    archive_write_set_options(z->a, opt) != ARCHIVE_OK ||
	    /* no blocking: zip needs no padding, and our callback buffers */
	    archive_write_set_bytes_per_block(z->a, 0) != ARCHIVE_OK ||
	    archive_write_open(z->a, z, NULL, out_write, NULL) != ARCHIVE_OK)
		return -1;
	return 0;
}

static int alloc_writer(zip_writer *z, const char *path)
{
	size_t n = strlen(path);
	z->path = strdup(path);
	z->part = malloc(n + 6);
	z->smd5 = md5_new();
	z->ring.m = md5_new();
	z->entry = archive_entry_new();
	if (posix_memalign((void **)&z->in, 4096, ZIP_CHUNK) != 0)
		z->in = NULL;
	int ok = z->path && z->part && z->smd5 && z->ring.m && z->entry && z->in;
	for (int i = 0; ok && i < NBLK; i++)
		ok = (z->ring.blk[i] = malloc(BLK)) != NULL;
	if (!ok)
		return -1;
	memcpy(z->part, path, n);
	memcpy(z->part + n, ".part", 6);
	/* C.UTF-8 may be missing: names are then written without the flag */
	z->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	return 0;
}

int zip_open(zip_writer **out, const char *path, int level, char *err, size_t errlen)
{
	*out = NULL;
	if (level < 1 || level > 9) {
		snprintf(err, errlen, "deflate level %d: must be 1 to 9", level);
		return -1;
	}
	zip_writer *z = calloc(1, sizeof *z);
	if (z)
		z->ring.fd = -1;
	if (!z || alloc_writer(z, path) < 0) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		zip_free(z);
		return -1;
	}
	z->ring.fd = open(z->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (z->ring.fd < 0) {
		snprintf(err, errlen, "%s: %s", z->part, strerror(errno));
		free(z->part);     /* nothing of ours to remove */
		z->part = NULL;
		zip_free(z);
		return -1;
	}
	if (ring_start(&z->ring) < 0 || new_archive(z, level) < 0) {
		snprintf(err, errlen, "%s: %s", path, z->a && archive_error_string(z->a) ?
		    archive_error_string(z->a) : strerror(ENOMEM));
		zip_free(z);
		return -1;
	}
	*out = z;
	return 0;
}

void zip_set_tick(zip_writer *z, zip_tick_fn *fn, void *arg)
{
	z->tick = fn;
	z->tickarg = arg;
}

const char *zip_error(const zip_writer *z)
{
	return z->err;
}

static la_ssize_t count_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	(void)a;
	(void)buf;
	*(size_t *)arg += len;
	return (la_ssize_t)len;
}

/* Deflate buf at level 1 through libarchive's gzip filter (the link has
 * libarchive, not zlib) and compare sizes; gzip adds 18 bytes of framing. */
int zip_compressible(const void *buf, size_t len)
{
	size_t out = 0;
	int ok = 0;
	if (len == 0)
		return 0;
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	if (a && e && archive_write_set_format_raw(a) == ARCHIVE_OK &&
	    archive_write_add_filter_gzip(a) == ARCHIVE_OK &&
	    archive_write_set_options(a, "gzip:compression-level=1") == ARCHIVE_OK &&
	    archive_write_set_bytes_per_block(a, 0) == ARCHIVE_OK &&
	    archive_write_open(a, &out, NULL, count_write, NULL) == ARCHIVE_OK) {
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_size(e, (la_int64_t)len);
		ok = archive_write_header(a, e) == ARCHIVE_OK &&
		    archive_write_data(a, buf, len) == (la_ssize_t)len &&
		    archive_write_close(a) == ARCHIVE_OK;
	}
	archive_entry_free(e);
	archive_write_free(a);
	return ok && out >= 18 && (out - 18) * 10 <= len * 9;
}


static int write_header(zip_writer *z, const char *name, const struct stat *st, int deflate)
{
	struct archive_entry *e = z->entry;
	archive_entry_clear(e);
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, st->st_size);
	archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	int rc = deflate ? archive_write_zip_set_compression_deflate(z->a) :
	    archive_write_zip_set_compression_store(z->a);
	if (rc == ARCHIVE_OK) {
		locale_t old = z->utf8 ? uselocale(z->utf8) : (locale_t)0;
		rc = archive_write_header(z->a, e);
		if (z->utf8)
			uselocale(old);
	}
	return rc == ARCHIVE_OK && !z->werrno ? 0 : -1;
}

static int write_failed(zip_writer *z)
{
	z->failed = 1;
	if (z->werrno)
		seterr(z, "%s: %s", z->part, strerror(z->werrno));
	else
		seterr(z, "%s: %s", z->part, archive_error_string(z->a) ?
		    archive_error_string(z->a) : "libarchive failed");
	return ZIP_EWRITE;
}

static int source_failed(zip_writer *z, const struct zip_entry *e, const char *why)
{
	z->failed = 1;
	seterr(z, "%s: %s", e->path, why);
	return ZIP_ESOURCE;
}

/* Stream the source: n bytes already in z->in, then the rest. */
static int copy_data(zip_writer *z, int fd, const struct zip_entry *e, ssize_t n,
    struct zip_added *out)
{
	for (; n > 0; n = util_read_full(fd, z->in, ZIP_CHUNK)) {
		if (z->hashing)
			md5_update(z->smd5, z->in, (size_t)n);
		out->size += (uint64_t)n;
		if (archive_write_data(z->a, z->in, (size_t)n) != n || z->werrno)
			return write_failed(z);
		if (z->tick && z->tick(z->tickarg, (uint64_t)n)) {
			z->failed = 1;
			seterr(z, "stopped");
			return ZIP_ESTOP;
		}
	}
	if (n < 0)
		return source_failed(z, e, strerror(errno));
	if (archive_write_finish_entry(z->a) != ARCHIVE_OK || z->werrno)
		return write_failed(z);
	return ZIP_OK;
}

static int check_source(zip_writer *z, const struct zip_entry *e, struct zip_added *out)
{
	if (z->hashing)
		md5_final_hex(z->smd5, out->md5);
	if (e->size >= 0 && out->size != (uint64_t)e->size) {
		z->failed = 1;
		seterr(z, "%s: size %llu, expected %lld", e->path, (unsigned long long)out->size,
		    (long long)e->size);
		return ZIP_EMISMATCH;
	}
	if (z->hashing && !md5_equal(e->md5, out->md5)) {
		z->failed = 1;
		seterr(z, "%s: md5 %s, expected %s", e->path, out->md5, e->md5);
		return ZIP_EMISMATCH;
	}
	return ZIP_OK;
}

/* fileurl_open, its failures as zip_rc: the size found is for the log */
static int open_source(zip_writer *z, const struct zip_entry *e, struct stat *st,
    struct zip_added *out)
{
	char why[128];
	int fd = fileurl_open(e->path, e->roots, e->nroots, e->size, st, why, sizeof why);
	if (fd == FILEURL_SIZE) {
		out->size = (uint64_t)st->st_size;
		z->failed = 1;
		seterr(z, "%s: size %lld, expected %lld", e->path, (long long)st->st_size,
		    (long long)e->size);
		return ZIP_EMISMATCH;
	}
	return fd < 0 ? source_failed(z, e, why) : fd;
}

static int add_open(zip_writer *z, int fd, const struct stat *st, const struct zip_entry *e,
    struct zip_added *out)
{
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	ssize_t n = util_read_full(fd, z->in, ZIP_CHUNK);
	if (n < 0)
		return source_failed(z, e, strerror(errno));
	out->deflated = e->method == ZIP_DEFLATE ? n > 0 : e->method == ZIP_AUTO &&
	    zip_compressible(z->in, (size_t)n < ZIP_SAMPLE ? (size_t)n : ZIP_SAMPLE);
	/* libarchive 3.6 writes 0xffffffff without its ZIP64 field for these */
	if (st->st_size == 0xffffffffLL || z->written == 0xffffffffULL) {
		z->failed = 1;
		seterr(z, "%s: an entry of or at 4294967295 bytes cannot be described", e->path);
		return ZIP_EWRITE;
	}
	if (nameset_unique(&z->names, e->name, out->name, sizeof out->name, &out->renamed) < 0) {
		z->failed = 1;
		seterr(z, "%s: %s", e->name, strerror(errno));
		return ZIP_EWRITE;
	}
	if (write_header(z, out->name, st, out->deflated) < 0)
		return write_failed(z);
	md5_reset(z->smd5);
	z->hashing = e->md5 != NULL;
	int rc = copy_data(z, fd, e, n, out);
	return rc == ZIP_OK ? check_source(z, e, out) : rc;
}

int zip_add(zip_writer *z, const struct zip_entry *e, struct zip_added *out)
{
	memset(out, 0, sizeof *out);
	if (z->failed || z->closed) {
		seterr(z, "zip writer unusable after an error");
		return ZIP_EWRITE;
	}
	if (z->tick && z->tick(z->tickarg, 0)) {
		z->failed = 1;
		seterr(z, "stopped");
		return ZIP_ESTOP;
	}
	struct stat st;
	int fd = open_source(z, e, &st, out);
	if (fd < 0)
		return fd;
	int rc = add_open(z, fd, &st, e, out);
	close(fd);
	return rc;
}

/* fsync the directory holding path, so the rename survives a crash */
static int sync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash)
		util_strlcpy(dir, ".", sizeof dir);
	else if ((size_t)(slash - path) + 1 >= sizeof dir)
		return 0;
	else
		snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int zip_close(zip_writer *z, char md5[33], uint64_t *size)
{
	struct ring *q = &z->ring;
	if (z->failed || z->closed) {
		seterr(z, "zip writer unusable after an error");
		return -1;
	}
	if (archive_write_close(z->a) != ARCHIVE_OK || z->werrno) {
		write_failed(z);
		return -1;
	}
	int rc = ring_submit(q, 1) < 0 || fsync(q->fd) < 0 ? -1 : 0;
	int e = errno;
	ring_stop(q);
	if (close(q->fd) < 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	q->fd = -1;
	if (rc < 0) {
		z->werrno = e;
		write_failed(z);
		return -1;
	}
	if (rename(z->part, z->path) < 0 || sync_dir(z->path) < 0) {
		z->failed = 1;
		seterr(z, "%s: %s", z->path, strerror(errno));
		unlink(z->path);
		return -1;
	}
	z->closed = 1;
	md5_final_hex(q->m, md5);
	*size = z->written;
	return 0;
}

void zip_free(zip_writer *z)
{
	if (!z)
		return;
	if (z->a) {
		z->discard = 1;   /* what free writes to end an entry goes nowhere */
		archive_write_free(z->a);
	}
	ring_stop(&z->ring);
	if (z->ring.fd >= 0)
		close(z->ring.fd);
	if (!z->closed && z->part)
		unlink(z->part);
	nameset_free(&z->names);
	for (int i = 0; i < NBLK; i++)
		free(z->ring.blk[i]);
	if (z->utf8)
		freelocale(z->utf8);
	archive_entry_free(z->entry);
	md5_free(z->ring.m);
	md5_free(z->smd5);
	free(z->in);
	free(z->part);
	free(z->path);
	free(z);
}
