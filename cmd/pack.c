/* ferry-pack: FETCHED -> PACKED. Writes each request's files into one zip
 * in its workspace (lib/zip), verifying every file's size and md5 as it is
 * read, and adds the zip's path, name, size and md5 to the item. With -S it
 * writes the zip's plan instead (lib/zipplan): names, sizes and CRCs, with
 * deflated entries spooled; ferry-s3-put then makes the zip's bytes while
 * uploading them, checking every source's md5, so the zip is never written
 * to and read back from the disk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "driver.h"
#include "err.h"
#include "item.h"
#include "names.h"
#include "util.h"
#include "nameset.h"
#include "workspace.h"
#include "zip.h"
#include "zipplan.h"

static const char usage[] =
    "usage: ferry-pack [-hSv] [-c workers] [-j journal] [-t tenants] [-w workspace] [-l level]";

struct pack {
	int level;                 /* deflate level */
	int stream;                /* -S: a plan, not the zip */
};

/* One request being packed. */
struct job {
	struct driver_job *job;
	char **roots;              /* where its files may be (fileurl_open) */
	size_t nroots;
	int64_t done, total, last_ms;
	int stopped, expired;
};

/* A file of the item, checked before anything is written. */
struct pfile {
	const char *product, *name, *path, *md5;
	int64_t version, size;
};

static const struct { enum tenant_compression t; enum zip_method m; } methods[] = {
	{ TENANT_COMP_AUTO, ZIP_AUTO },
	{ TENANT_COMP_STORE, ZIP_STORE },
	{ TENANT_COMP_DEFLATE, ZIP_DEFLATE },
};

static enum zip_method method_of(const tenant *t)
{
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (methods[i].t == t->compression)
			return methods[i].m;
	return ZIP_AUTO;
}

/* Between chunks: progress about once a second, stop and deadline checks. */
static int tick(void *arg, uint64_t bytes)
{
	struct job *p = arg;
	int64_t now = util_now_ms();
	p->done += (int64_t)bytes;
	if (now - p->last_ms >= 1000) {
		p->last_ms = now;
		journal_progress(p->job->j, p->job->tenant_name, p->job->cid, p->done, p->total);
	}
	if (*p->job->stop)
		return p->stopped = 1;
	if (p->job->expires_ms && p->job->expires_ms <= now)
		return p->expired = 1;
	return 0;
}

/* One file of the item into f, checked as ferry-fetch checks it; 0, or
 * -1 with r failed. */
static int get_file(const cJSON *o, struct pfile *f, struct driver_result *r)
{
	f->product = item_str(o, "productId");
	f->name = item_str(o, "name");
	f->path = item_str(o, "path");
	f->md5 = item_str(o, "md5");
	if (!f->product || !f->name || item_int(o, "version", &f->version) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "bad file in item: productId, version and name "
		    "are required");
		return -1;
	}
	if (item_int(o, "size", &f->size) < 0)
		f->size = -1;
	if (f->size < 0 || !f->md5 || !util_is_hex(f->md5, 32)) {
		driver_fail(r, "INTERNAL_ERROR", "file %s/%s: size must be a whole number of bytes "
		    "and md5 32 hexadecimal digits", f->product, f->name);
		return -1;
	}
	if (!f->path || f->path[0] != '/') {
		driver_fail(r, "INTERNAL_ERROR", "file %s/%s was not fetched", f->product, f->name);
		return -1;
	}
	return 0;
}

/* All files of the item, checked, into a malloc'd array; NULL with r failed. */
static struct pfile *get_files(const cJSON *item, int *n, struct driver_result *r)
{
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(item, "files"), *o;
	int count = cJSON_GetArraySize(files), i = 0;
	if (!cJSON_IsArray(files) || count == 0) {
		driver_fail(r, "INTERNAL_ERROR", "item has no files to pack");
		return NULL;
	}
	struct pfile *f = calloc((size_t)count, sizeof *f);
	if (!f) {
		driver_fail(r, "INTERNAL_ERROR", "%s", strerror(ENOMEM));
		return NULL;
	}
	cJSON_ArrayForEach(o, files) {
		if (get_file(o, &f[i++], r) < 0) {
			free(f);
			return NULL;
		}
	}
	*n = count;
	return f;
}

/* 1 if writing path (or its .part) would overwrite one of the files */
static int clobbers(const char *path, const struct pfile *f, int n)
{
	size_t len = strlen(path);
	for (int i = 0; i < n; i++)
		if (strncmp(f[i].path, path, len) == 0 &&
		    (f[i].path[len] == '\0' || strcmp(f[i].path + len, ".part") == 0))
			return 1;
	return 0;
}

static int single_product(const struct pfile *f, int n)
{
	for (int i = 1; i < n; i++)
		if (strcmp(f[i].product, f[0].product) != 0 || f[i].version != f[0].version)
			return 0;
	return 1;
}

/* Turn a zip_add failure into the request's verdict. The size or md5 of
 * what was read (it may not be the file checked) goes to the log only. */
static void add_failed(struct job *p, const char *why, int rc, const struct pfile *f,
    const struct zip_added *a, struct driver_result *r)
{
	char when[32];
	if (rc == ZIP_EMISMATCH)
		err_log(ERR_WARNING, p->job->label, "%s/%s: %s", f->product, f->name, why);
	if (rc == ZIP_ESTOP && p->stopped) {
		r->verdict = DRIVER_ABANDON;
	} else if (rc == ZIP_ESTOP) {
		util_iso8601(p->job->expires_ms, when);
		driver_fail(r, "EXPIRED", "The request date has reached the expiration limit '%s'", when);
	} else if (rc == ZIP_EMISMATCH && (uint64_t)f->size != a->size) {
		driver_fail(r, "INTERNAL_ERROR", "size mismatch for %s/%s: expected %" PRId64
		    " bytes, got another size", f->product, f->name, f->size);
	} else if (rc == ZIP_EMISMATCH) {
		driver_fail(r, "INTERNAL_ERROR", "checksum mismatch for %s/%s: expected %s, got "
		    "another md5", f->product, f->name, f->md5);
	} else if (rc == ZIP_ESOURCE) {
		driver_fail(r, "INTERNAL_ERROR", "unable to read %s/%s: %s", f->product, f->name, why);
	} else {
		driver_fail(r, "INTERNAL_ERROR", "unable to write the zip: %s", why);
	}
}

/* Add every file; 0, or -1 with r set. */
static int add_all(struct job *p, zip_writer *z, const struct pfile *f, int n,
    enum zip_method m, struct driver_result *r)
{
	char entry[ZIP_NAME_MAX];
	struct zip_added a;
	for (int i = 0; i < n; i++) {
		if (names_entry(f[i].product, f[i].version, f[i].name, entry, sizeof entry) < 0) {
			driver_fail(r, "INTERNAL_ERROR", "no usable entry name for %s/%s",
			    f[i].product, f[i].name);
			return -1;
		}
		struct zip_entry e = {
			.path = f[i].path, .name = entry, .size = f[i].size, .md5 = f[i].md5,
			.method = m, .roots = p->roots, .nroots = p->nroots,
		};
		int rc = zip_add(z, &e, &a);
		if (rc != ZIP_OK) {
			add_failed(p, zip_error(z), rc, &f[i], &a, r);
			return -1;
		}
		if (a.renamed)
			err_log(ERR_INFO, p->job->label, "%s: entry name already used, stored as %s",
			    entry, a.name);
	}
	return 0;
}

/* The plan of the zip of files f at plan (deflated entries spooled at
 * spool); 0 with the zip's size, or -1 with r set. */
static int write_plan(struct pack *pk, struct job *p, const char *plan, const char *spool,
    const struct pfile *f, int n, uint64_t *size, struct driver_result *r)
{
	char entry[ZIP_NAME_MAX], err[1024];
	struct nameset names = { 0 };
	struct zip_added a;
	struct zplan_entry *e = malloc(sizeof *e);
	zplan_writer *w = NULL;
	uint64_t at = 0, entries;
	enum zip_method m = method_of(p->job->tenant);
	int fd = open(spool, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc = -1;
	if (!e || fd < 0 || zplan_create(&w, plan) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "unable to create the zip's plan: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (names_entry(f[i].product, f[i].version, f[i].name, entry, sizeof entry) < 0) {
			driver_fail(r, "INTERNAL_ERROR", "no usable entry name for %s/%s",
			    f[i].product, f[i].name);
			goto out;
		}
		struct zip_entry ze = {
			.path = f[i].path, .name = entry, .size = f[i].size, .md5 = f[i].md5,
			.method = m, .roots = p->roots, .nroots = p->nroots,
		};
		int zr = zplan_prepare(&ze, pk->level, &names, fd, spool, &at, tick, p, e, &a, err,
		    sizeof err);
		if (zr != ZIP_OK) {
			add_failed(p, err, zr, &f[i], &a, r);
			goto out;
		}
		if (a.renamed)
			err_log(ERR_INFO, p->job->label, "%s: entry name already used, stored as %s",
			    entry, a.name);
		if (zplan_add(w, e) < 0) {
			driver_fail(r, "INTERNAL_ERROR", "unable to write the zip's plan: %s",
			    strerror(errno));
			goto out;
		}
	}
	if (fsync(fd) < 0 || zplan_finish(w, size, &entries) < 0)
		driver_fail(r, "INTERNAL_ERROR", "unable to write the zip's plan: %s", strerror(errno));
	else
		rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0 || at == 0)
		unlink(spool);
	zplan_writer_free(w);
	nameset_free(&names);
	free(e);
	return rc;
}

static int add_archive(cJSON *item, const char *path, const char *name, uint64_t size,
    const char *md5)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, md5 ? "path" : "plan", path) ||
	    !cJSON_AddStringToObject(o, "name", name) ||
	    !cJSON_AddNumberToObject(o, "size", (double)size) ||
	    (md5 && !cJSON_AddStringToObject(o, "md5", md5))) {
		cJSON_Delete(o);
		return -1;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(item, "archive");
	cJSON_AddItemToObject(item, "archive", o);
	return 0;
}

/* Write the zip of files f to path; 0 with its md5 and size, or -1 with r set. */
static int write_zip(struct pack *pk, struct job *p, const char *path, const struct pfile *f,
    int n, char md5[33], uint64_t *size, struct driver_result *r)
{
	char err[512];
	zip_writer *z;
	if (zip_open(&z, path, pk->level, err, sizeof err) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "unable to create the zip: %s", err);
		return -1;
	}
	zip_set_tick(z, tick, p);
	int rc = add_all(p, z, f, n, method_of(p->job->tenant), r);
	if (rc == 0 && zip_close(z, md5, size) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "unable to write the zip: %s", zip_error(z));
		rc = -1;
	}
	zip_free(z);
	return rc;
}

/* -S: the plan at zip.plan, its spool at zip.spool; path becomes the plan's */
static int write_stream(struct pack *pk, struct job *p, char *path, const struct pfile *f,
    int n, uint64_t *size, struct driver_result *r)
{
	char spool[4200];
	size_t len = strlen(path);
	if (len + 7 >= 4096) {
		driver_fail(r, "INTERNAL_ERROR", "no usable plan name: %s", strerror(ENAMETOOLONG));
		return -1;
	}
	snprintf(spool, sizeof spool, "%s.spool", path);
	memcpy(path + len, ".plan", 6);
	if (clobbers(path, f, n) || clobbers(spool, f, n)) {
		driver_fail(r, "INTERNAL_ERROR", "the plan %s would overwrite a file of the order", path);
		return -1;
	}
	return write_plan(pk, p, path, spool, f, n, size, r);
}

static void pack_work(void *ctx, struct driver_job *job, struct driver_result *r)
{
	struct pack *pk = ctx;
	struct job p = { .job = job };     /* last_ms 0: the total is recorded at once */
	char zname[256], path[4096], md5[33];
	uint64_t size;
	int n = 0;
	int64_t t0 = util_mono_ms();
	struct pfile *f = get_files(job->item, &n, r);
	if (!f)
		return;
	if (!(p.roots = driver_source_roots(job, &p.nroots))) {
		driver_fail(r, "INTERNAL_ERROR", "%s", strerror(ENOMEM));
		free(f);
		return;
	}
	for (int i = 0; i < n; i++)
		p.total += f[i].size;
	if (names_zip(single_product(f, n), f[0].product, f[0].version, job->cid, zname,
	    sizeof zname) < 0 || (size_t)snprintf(path, sizeof path, "%s/%s", job->workspace,
	    zname) >= sizeof path) {
		driver_fail(r, "INTERNAL_ERROR", "no usable zip name: %s", strerror(errno));
	} else if (clobbers(path, f, n)) {
		driver_fail(r, "INTERNAL_ERROR", "the zip %s would overwrite a file of the order", path);
	} else if (workspace_make(job->workspace) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "unable to create %s: %s", job->workspace,
		    strerror(errno));
	} else if (pk->stream ? write_stream(pk, &p, path, f, n, &size, r) == 0 :
	    write_zip(pk, &p, path, f, n, md5, &size, r) == 0) {
		if (add_archive(job->item, path, zname, size, pk->stream ? NULL : md5) < 0)
			driver_fail(r, "INTERNAL_ERROR", "%s", strerror(ENOMEM));
		r->bytes = (int64_t)size;
		double s = (double)(util_mono_ms() - t0) / 1000.0;
		err_log(ERR_INFO, job->label, "%d file%s, %.1f MB, zip %s %.1f MB in %.1f s (%.0f MB/s)",
		    n, n == 1 ? "" : "s", (double)p.done / 1e6, zname, (double)size / 1e6, s,
		    s > 0 ? (double)p.done / 1e6 / s : 0.0);
	}
	free(p.roots);
	free(f);
}

int main(int argc, char **argv)
{
	struct driver d;
	struct pack pk = { .level = 1 };
	int ch;
	char *end;
	err_init("ferry-pack");
	args_init(argc, argv);
	driver_init(&d, "ferry-pack", JSTAGE_PACK);
	while ((ch = getopt(argc, argv, DRIVER_OPTS "hSl:")) != -1) {
		if (driver_option(&d, ch, optarg))
			continue;
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'S': pk.stream = 1; break;
		case 'l':
			pk.level = (int)strtol(optarg, &end, 10);
			if (*end || pk.level < 1 || pk.level > 9)
				err_die(EXIT_PERM, "-l: deflate level must be 1 to 9");
			break;
		default: args_usage(usage);
		}
	}
	if (optind != argc)
		args_usage(usage);
	d.work = pack_work;
	d.ctx = &pk;
	return driver_run(&d);
}
