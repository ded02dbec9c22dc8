/* zip: write a delivery zip with libarchive (DESIGN §6). Each source file is
 * opened by fileurl_open (inside its roots, no symlink, a regular file of
 * its size) and read once, in large chunks, its md5 checked as it is read; the
 * zip's own md5 and size are computed as it is written; ZIP64 when needed. */
#ifndef FERRY_ZIP_H
#define FERRY_ZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct zip_writer zip_writer;

enum zip_method { ZIP_AUTO, ZIP_STORE, ZIP_DEFLATE };

enum zip_rc {
	ZIP_OK = 0,
	ZIP_EWRITE = -1,     /* the zip could not be written */
	ZIP_ESOURCE = -2,    /* the source could not be opened or read */
	ZIP_EMISMATCH = -3,  /* the source's size or md5 is not the expected one */
	ZIP_ESTOP = -4,      /* the tick function asked to stop */
};

enum { ZIP_NAME_MAX = 2048, ZIP_CHUNK = 1 << 20, ZIP_SAMPLE = 64 << 10 };

struct zip_entry {
	const char *path;          /* the local file to read */
	const char *name;          /* its name in the zip (names_entry) */
	int64_t size;              /* expected size; -1 = not checked */
	const char *md5;           /* expected md5, hex, any case; NULL = not computed */
	enum zip_method method;
	char *const *roots;        /* the directories path must be in (fileurl_open); */
	size_t nroots;             /* with none, only a relative path opens */
};

struct zip_added {
	char name[ZIP_NAME_MAX];   /* the name used: entry name, or made unique */
	int renamed;               /* the entry name was taken: " (2)" added */
	int deflated;
	uint64_t size;             /* bytes read from the source */
	char md5[33];              /* their md5, lowercase; "" when not checked */
};

/* Called after each chunk with the bytes just read (0 between files);
 * non-zero stops the zip (ZIP_ESTOP). */
typedef int zip_tick_fn(void *arg, uint64_t bytes);

/* Start a zip that becomes path at zip_close (path.part until then).
 * level: deflate level 1..9. 0, or -1 with a reason in err. */
int zip_open(zip_writer **out, const char *path, int level, char *err, size_t errlen);
void zip_set_tick(zip_writer *z, zip_tick_fn *fn, void *arg);
/* Add one file. ZIP_OK, or a zip_rc < 0 with zip_error() saying why; after
 * an error the writer is only good for zip_free. Two entries with the same
 * name do not overwrite: the second becomes "dir/base (2).ext". */
int zip_add(zip_writer *z, const struct zip_entry *e, struct zip_added *out);
/* Write the central directory, fsync, rename path.part to path.
 * 0 with the zip's md5 (lowercase) and size, or -1 (zip_error). */
int zip_close(zip_writer *z, char md5[33], uint64_t *size);
/* Free; a zip not closed successfully is removed. */
void zip_free(zip_writer *z);
const char *zip_error(const zip_writer *z);

/* The auto rule: 1 if deflate level 1 shrinks buf by 10% or more. */
int zip_compressible(const void *buf, size_t len);

#endif
