/* zipplan: a delivery zip described, not written (ferry-pack -S). The plan
 * is a small file, one JSON line per entry: its name, CRC-32, sizes, and
 * where its bytes are (the source file itself for a stored entry, a spool
 * of deflated data otherwise), with the md5 those bytes must have. The
 * reader turns a plan into the zip's bytes, in order, opening each entry's
 * file as lib/fileurl does (inside the roots, no symlink, a regular file),
 * reading its bytes once and checking their size and md5 on the way, so ferry-s3-put
 * uploads a zip that never touched the disk as a whole.
 *
 * The zip it describes is a plain one: no data descriptors (sizes and CRC
 * in every local header, so streaming readers like Java's ZipInputStream
 * take stored entries), names flagged UTF-8, unix mode 0644, ZIP64 fields
 * for entries, offsets and counts that need them. */
#ifndef FERRY_ZIPPLAN_H
#define FERRY_ZIPPLAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zip.h"

struct zplan_entry {
	char name[ZIP_NAME_MAX];   /* the entry's name in the zip */
	char path[4096];           /* the file holding its bytes */
	uint64_t at;               /* where they start in path */
	uint64_t csize, usize;     /* bytes in the zip, bytes once extracted */
	uint32_t crc;              /* CRC-32 of the extracted bytes */
	int deflated;
	char md5[33];              /* of the csize bytes at path+at, lowercase */
	uint32_t dostime;          /* MS-DOS date << 16 | time */
};

/* Prepare the plan entry of source e (zip.h's contract, the same checks
 * and errors as zip_add): its size checked, the method chosen (ZIP_AUTO:
 * deflate when a sample shrinks), its CRC-32 computed. A stored entry's
 * bytes stay in the source, whose md5 the reader checks later; a deflated
 * one's source md5 is checked here as it is compressed onto spool_fd at
 * *spool_at (advanced). names makes the entry name unique. ZIP_OK, or a
 * zip_rc < 0 with err filled. */
struct nameset;
int zplan_prepare(const struct zip_entry *e, int level, struct nameset *names, int spool_fd,
    const char *spool_path, uint64_t *spool_at, zip_tick_fn *tick, void *tickarg,
    struct zplan_entry *out, struct zip_added *added, char *err, size_t errlen);

/* Writing a plan: entries in zip order, then zplan_finish. */
typedef struct zplan_writer zplan_writer;
/* path.part until zplan_finish renames it. 0, or -1 with errno. */
int zplan_create(zplan_writer **out, const char *path);
int zplan_add(zplan_writer *w, const struct zplan_entry *e);
/* Write the trailer, fsync, rename; the zip's size and entry count. 0 or -1. */
int zplan_finish(zplan_writer *w, uint64_t *zipsize, uint64_t *entries);
/* Free; a plan not finished is removed. */
void zplan_writer_free(zplan_writer *w);

/* Reading a plan as the zip's bytes. */
typedef struct zplan_reader zplan_reader;
/* Open and check a finished plan: 0 with the zip's size, or -1 (err). Each
 * entry's file is opened by fileurl_open inside roots (kept, not copied),
 * a stored entry's source of the size it had. */
int zplan_open(zplan_reader **out, const char *path, char *const *roots, size_t nroots,
    uint64_t *zipsize, char *err, size_t errlen);
/* The next bytes of the zip (0 at its end), or -1: zplan_error says why and
 * zplan_mismatch whether an entry's bytes were not the expected ones; the
 * error names what was expected, zplan_detail what was found (the size or
 * md5 of a file: for the log, not for a response). */
ssize_t zplan_read(zplan_reader *r, void *buf, size_t len);
/* Back to the zip's first byte. 0 or -1. */
int zplan_rewind(zplan_reader *r);
const char *zplan_error(const zplan_reader *r);
int zplan_mismatch(const zplan_reader *r);
const char *zplan_detail(const zplan_reader *r);
void zplan_close(zplan_reader *r);

/* The local header of e at offset, into buf (ZIP_NAME_MAX + 64 bytes is
 * enough); its length. Exposed for the tests. */
size_t zplan_local_header(const struct zplan_entry *e, unsigned char *buf);

#endif
