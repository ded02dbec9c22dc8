/* ferry-s3-put: PACKED -> DONE. Uploads each request's zip to its tenant's
 * delivery bucket as <correlationId>/<zip name> (lib/s3: single PUT or
 * parallel multipart, md5 re-verified while uploading), then the driver
 * commits DONE with the object's URL and md5 (and, for tenants with
 * presign_ttl_seconds, a presigned GET URL of it) and removes the workspace.
 * An archive given as a plan (ferry-pack -S) is made while it is uploaded
 * (lib/zipplan), each source's md5 checked on the way; its md5 is the md5
 * of the bytes sent, checked against S3's ETag (single PUT) or by S3 for
 * each part (Content-MD5). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "args.h"
#include "driver.h"
#include "err.h"
#include "item.h"
#include "md5.h"
#include "prefetch.h"
#include "presign.h"
#include "response.h"
#include "s3.h"
#include "s3resume.h"
#include "util.h"
#include "zipplan.h"

static const char usage[] =
    "usage: ferry-s3-put [-hv] [-c workers] [-j journal] [-t tenants] [-w workspace]";

/* The DONE response's fields, alive until the driver commits. */
struct put {
	char url[8192];             /* response_s3_url of a 2047-byte key */
	char md5[33];
	char download_url[RESPONSE_MAX + 1];   /* longer would never fit a response */
};

struct archive {
	const char *path, *name, *md5;
	const char *plan;          /* or a plan, and no md5 */
	uint64_t size;
};

static void on_progress(void *arg, int64_t done, int64_t total)
{
	struct driver_job *job = arg;
	journal_progress(job->j, job->tenant_name, job->cid, done, total);
}

static void on_note(void *arg, const char *line)
{
	struct driver_job *job = arg;
	err_log(ERR_WARNING, job->label, "%s", line);
}

/* The item's "archive", checked; 0, or -1 with r failed. */
static int get_archive(const cJSON *item, struct archive *a, struct driver_result *r)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(item, "archive");
	int64_t size = -1;
	a->path = item_str(o, "path");
	a->name = item_str(o, "name");
	a->md5 = item_str(o, "md5");
	a->plan = a->path ? NULL : item_str(o, "plan");
	if (a->plan)
		a->path = a->plan;
	if (!cJSON_IsObject(o) || !a->path || a->path[0] != '/' || !a->name || !*a->name ||
	    (!a->md5 && !a->plan) || item_int(o, "size", &size) < 0 || size < 0) {
		driver_fail(r, "INTERNAL_ERROR", "item has no valid archive (path, name, size, md5; "
		    "or plan, name, size)");
		return -1;
	}
	if (a->md5 && !util_is_hex(a->md5, 32)) {
		driver_fail(r, "INTERNAL_ERROR", "bad md5 '%.40s' for archive %s", a->md5, a->name);
		return -1;
	}
	a->size = (uint64_t)size;
	return 0;
}

static void log_done(struct driver_job *job, const struct archive *a,
    const struct s3_upload_result *res, int64_t ms)
{
	char how[64];
	double mb = (double)a->size / 1e6, s = ms > 0 ? (double)ms / 1000.0 : 0.001;
	if (res->parts && res->resumed)
		snprintf(how, sizeof how, "%d parts, %d resumed", res->parts, res->resumed);
	else if (res->parts)
		snprintf(how, sizeof how, "%d parts", res->parts);
	else
		snprintf(how, sizeof how, "single PUT");
	err_log(ERR_INFO, job->label, "%s: %.1f MB (%s, %d retries) in %.1f s, %.1f MB/s", a->name,
	    mb, how, res->retries, s, mb / s);
}

/* The upload's outcome as the request's verdict. */
static void verdict(struct driver_job *job, const struct archive *a, const char *url,
    const struct s3_upload_result *res, struct driver_result *r)
{
	char when[32];
	switch (res->cls) {
	case S3_OK:
		return;
	case S3_STOPPED:
		r->verdict = DRIVER_ABANDON;
		return;
	case S3_EXPIRED:
		err_log(ERR_WARNING, job->label, "upload of %s: %s", a->name, res->message);
		util_iso8601(job->expires_ms, when);
		driver_fail(r, "EXPIRED", "The request date has reached the expiration limit '%s'", when);
		return;
	case S3_TEMPORARY:
		r->verdict = DRIVER_RETRY;
		if (snprintf(r->message, sizeof r->message, "upload of %s: %s", a->name,
		    res->message) < 0)
			r->message[0] = '\0';
		return;
	case S3_MISMATCH:
		driver_fail(r, "INTERNAL_ERROR", "checksum mismatch for archive %s: %s", a->name,
		    res->message);
		return;
	default:
		driver_fail(r, "INTERNAL_ERROR", "upload of archive %s to %s failed: %s", a->name, url,
		    res->message);
	}
}

/* The DONE response's downloadUrl when the tenant wants one. It is not put
 * in the item: it is a capability to read the delivery, kept out of logs and
 * the event log like the keys it is derived from. A URL that cannot be made
 * costs the request nothing but its downloadUrl. */
static const char *download_url(struct put *p, struct driver_job *job, const char *key)
{
	const tenant *t = job->tenant;
	if (!t->presign_ttl_seconds)
		return NULL;
	if (presign_url(&t->s3, t->delivery_bucket, key, (int64_t)time(NULL),
	    t->presign_ttl_seconds, p->download_url, sizeof p->download_url) < 0) {
		err_log(ERR_WARNING, job->label, "no downloadUrl: %s",
		    errno == ENAMETOOLONG ? "it would exceed the response size" : strerror(errno));
		return NULL;
	}
	return p->download_url;
}

/* Set "url" in the item (a replayed item may have one already). */
static int set_url(cJSON *item, const char *url)
{
	cJSON_DeleteItemFromObjectCaseSensitive(item, "url");
	return cJSON_AddStringToObject(item, "url", url) ? 0 : -1;
}

/* A zip made from its plan, read ahead by a thread (lib/prefetch): the
 * sources are read, their md5s and the zip's computed on one core while
 * libcurl sends on the other (an md5 in libcurl's read callback holds the
 * sending back: 1.5 s a GiB against s3rver). 4 MiB of blocks. */
struct plan {
	zplan_reader *zr;
	prefetch *pf;
	md5 *m;                        /* of the zip's bytes, in the thread */
	char **roots;                  /* where the sources may be, for zr */
};

enum { PLAN_BLOCK = 1 << 20, PLAN_BLOCKS = 4 };

static ssize_t zr_read(void *arg, void *buf, size_t len)
{
	struct plan *pl = arg;
	ssize_t got = zplan_read(pl->zr, buf, len);
	if (got > 0)
		md5_update(pl->m, buf, (size_t)got);
	return got;
}

static int zr_rewind(void *arg)
{
	struct plan *pl = arg;
	md5_reset(pl->m);
	return zplan_rewind(pl->zr);
}

static void plan_md5(void *arg, char hex[33])
{
	struct plan *pl = arg;
	prefetch_finish(pl->pf);
	md5_final_hex(pl->m, hex);
}

static ssize_t plan_read(void *arg, void *buf, size_t len)
{
	return prefetch_read(((struct plan *)arg)->pf, buf, len);
}

static int plan_rewind(void *arg)
{
	struct plan *pl = arg;
	return prefetch_restart(pl->pf, zr_rewind, pl);
}

static const char *plan_error(void *arg)
{
	return zplan_error(((struct plan *)arg)->zr);
}

static void close_plan(struct plan *pl)
{
	prefetch_free(pl->pf);        /* first: its thread reads the plan */
	zplan_close(pl->zr);
	md5_free(pl->m);
	free(pl->roots);
	pl->pf = NULL;
	pl->zr = NULL;
	pl->m = NULL;
	pl->roots = NULL;
}

/* Open the plan as the upload's source; 0, or -1 with r failed. */
static int open_plan(const struct driver_job *job, const struct archive *a, struct plan *pl,
    struct s3_source *src, struct driver_result *r)
{
	char err[1024];
	uint64_t size;
	size_t n;
	if (!(pl->roots = driver_source_roots(job, &n))) {
		driver_fail(r, "INTERNAL_ERROR", "archive %s: %s", a->name, strerror(errno));
		return -1;
	}
	if (zplan_open(&pl->zr, a->plan, pl->roots, n, &size, err, sizeof err) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "archive %s: %s", a->name, err);
		return -1;
	}
	if (size != a->size) {
		driver_fail(r, "INTERNAL_ERROR", "archive %s: the plan makes %llu bytes, not %llu",
		    a->name, (unsigned long long)size, (unsigned long long)a->size);
		return -1;
	}
	if (!(pl->m = md5_new()) || !(pl->pf = prefetch_new(zr_read, pl, PLAN_BLOCK,
	    PLAN_BLOCKS))) {
		driver_fail(r, "INTERNAL_ERROR", "archive %s: %s", a->name, strerror(errno));
		return -1;
	}
	*src = (struct s3_source){ plan_read, plan_rewind, plan_error, plan_md5, pl };
	return 0;
}

/* Record the md5 of an archive made while uploading in the item. */
static int set_md5(cJSON *item, const char *md5)
{
	cJSON *o = cJSON_GetObjectItemCaseSensitive(item, "archive");
	cJSON_DeleteItemFromObjectCaseSensitive(o, "md5");
	return cJSON_AddStringToObject(o, "md5", md5) ? 0 : -1;
}

static void put_work(void *arg, struct driver_job *job, struct driver_result *r)
{
	struct put *p = arg;
	struct archive a;
	struct s3_upload_result res;
	char key[2048];
	const tenant *t = job->tenant;
	if (!t->has_s3 || !t->delivery_bucket) {
		driver_fail(r, "INTERNAL_ERROR", "tenant %s has no s3_server and delivery_bucket",
		    job->tenant_name);
		return;
	}
	if (get_archive(job->item, &a, r) < 0)
		return;
	if ((size_t)snprintf(key, sizeof key, "%s/%s", job->cid, a.name) >= sizeof key) {
		driver_fail(r, "INTERNAL_ERROR", "object key too long for archive %s", a.name);
		return;
	}
	if (util_dot_segment(key)) {      /* validate refuses these; an item fed by hand */
		driver_fail(r, "FORBIDDEN", "object key %s has a \".\" or \"..\" segment", key);
		return;
	}
	if (response_s3_url(t->delivery_bucket, key, p->url, sizeof p->url) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "the url of object key %.200s is too long", key);
		return;
	}
	struct plan pl = { NULL, NULL, NULL, NULL };
	struct s3_source src;
	if (a.plan && open_plan(job, &a, &pl, &src, r) < 0) {
		close_plan(&pl);
		return;
	}
	struct s3_upload u = {
		.srv = &t->s3, .bucket = t->delivery_bucket, .key = key, .path = a.path,
		.source = pl.zr ? &src : NULL,
		.size = a.size, .md5 = a.md5, .part_size = t->multipart_part_size,
		.threshold = t->multipart_threshold,
		.parallel = t->upload_parallel,
		.ctl = { .deadline_ms = job->expires_ms, .stop = job->stop, .hold_ms = job->hold_ms },
		.progress = on_progress, .note = on_note, .arg = job,
	};
	struct s3resume rsm;
	u.resume = s3resume_open(&rsm, job->j, &t->s3, job->tenant_name, job->cid, job->label,
	    t->delivery_bucket, key, a.size);
	int64_t t0 = util_mono_ms();
	int rc = s3_upload_file(&u, &res);
	s3resume_close(&rsm);
	prefetch_free(pl.pf);            /* its thread is done with the plan */
	pl.pf = NULL;
	if (rc < 0 && pl.zr && zplan_mismatch(pl.zr)) {
		err_log(ERR_WARNING, job->label, "%s: %s", zplan_error(pl.zr), zplan_detail(pl.zr));
		driver_fail(r, "INTERNAL_ERROR", "%s", zplan_error(pl.zr));
	}
	else if (rc < 0)
		verdict(job, &a, p->url, &res, r);
	close_plan(&pl);
	if (rc < 0)
		return;
	log_done(job, &a, &res, util_mono_ms() - t0);
	util_strlcpy(p->md5, res.md5, sizeof p->md5);
	if (set_url(job->item, p->url) < 0 || (a.plan && set_md5(job->item, p->md5) < 0)) {
		driver_fail(r, "INTERNAL_ERROR", "out of memory");
		return;
	}
	r->url = p->url;
	r->md5 = p->md5;
	r->download_url = download_url(p, job, key);
	r->bytes = (int64_t)a.size;
}

static const struct tenant_s3 *tenant_s3_of(void *arg, const char *name)
{
	const char *why;
	const tenant *t = driver_tenant(arg, name, &why);
	return t && t->has_s3 ? &t->s3 : NULL;
}

/* On the main thread, at start and every 5 s: abort the multipart uploads
 * left by requests that no longer upload (cancelled, expired, sent back). */
static int put_tick(void *ctx, struct driver *d)
{
	static int64_t next;
	int64_t now = util_mono_ms();
	(void)ctx;
	if (now >= next) {
		next = now + 5000;
		if (s3resume_sweep(driver_journal(d), tenant_s3_of, d) < 0)
			err_log(ERR_WARNING, NULL, "journal: %s", journal_error(driver_journal(d)));
	}
	return 0;
}

/* each worker its own DONE fields */
static void *put_new(void *ctx)
{
	(void)ctx;
	return calloc(1, sizeof(struct put));
}

int main(int argc, char **argv)
{
	struct driver d;
	int ch;
	err_init("ferry-s3-put");
	args_init(argc, argv);
	driver_init(&d, "ferry-s3-put", JSTAGE_S3PUT);
	while ((ch = getopt(argc, argv, DRIVER_OPTS "h")) != -1) {
		if (driver_option(&d, ch, optarg))
			continue;
		if (ch != 'h')
			args_usage(usage);
		puts(usage);
		return EXIT_DONE;
	}
	if (optind != argc)
		args_usage(usage);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		err_die(EXIT_TEMP, "unable to start libcurl");
	d.work = put_work;
	d.tick = put_tick;
	d.worker_new = put_new;
	d.worker_free = free;
	int rc = driver_run(&d);
	curl_global_cleanup();
	return rc;
}
