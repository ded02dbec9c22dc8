/* s3resume: resumable uploads kept in the journal (see s3resume.h). */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "s3resume.h"
#include "util.h"

static int on_created(void *arg, const char *upload_id, uint64_t part_size)
{
	struct s3resume *r = arg;
	if (journal_upload_begin(r->j, r->tenant, r->cid, r->rec.bucket, r->rec.key, upload_id,
	    (int64_t)part_size, r->rec.size) < 0) {
		err_log(ERR_WARNING, r->label, "journal: %s", journal_error(r->j));
		return -1;
	}
	return 0;
}

static int on_part(void *arg, const char *upload_id, const struct s3_resume_part *part)
{
	struct s3resume *r = arg;
	struct jupload_part jp = { .num = part->num, .size = (int64_t)part->size };
	util_strlcpy(jp.md5, part->md5, sizeof jp.md5);
	util_strlcpy(jp.etag, part->etag, sizeof jp.etag);
	if (journal_upload_part(r->j, r->tenant, r->cid, upload_id, &jp) < 0) {
		err_log(ERR_WARNING, r->label, "journal: %s", journal_error(r->j));
		return -1;
	}
	return 0;
}

static void on_ended(void *arg, const char *upload_id)
{
	struct s3resume *r = arg;
	if (journal_upload_forget(r->j, r->tenant, r->cid, upload_id) < 0)
		err_log(ERR_WARNING, r->label, "journal: %s", journal_error(r->j));
}

const struct s3_resume *s3resume_open(struct s3resume *r, journal *j, const struct tenant_s3 *srv,
    const char *tenant, const char *cid, const char *label, const char *bucket, const char *key,
    uint64_t size)
{
	memset(r, 0, sizeof *r);
	r->j = j, r->tenant = tenant, r->cid = cid, r->label = label;
	r->rs = (struct s3_resume){ .created = on_created, .part = on_part, .ended = on_ended,
	    .arg = r };
	struct jupload old;
	int found = journal_upload_get(j, tenant, cid, &old);
	if (found < 0)
		err_log(ERR_WARNING, label, "journal: %s; the upload starts from zero",
		    journal_error(j));
	if (found > 0 && (strcmp(old.bucket, bucket) != 0 || strcmp(old.key, key) != 0 ||
	    old.size != (int64_t)size)) {
		/* another object than this one: that upload will not be completed */
		struct s3_status st;
		struct s3_ctl ctl = { .deadline_ms = util_now_ms() + 5000 };
		if (s3_abort_upload(srv, old.bucket, old.key, old.upload_id, &ctl, &st) == 0)
			on_ended(r, old.upload_id);
		journal_upload_clear(&old);
		found = 0;
	}
	util_strlcpy(r->rec.bucket, bucket, sizeof r->rec.bucket);
	util_strlcpy(r->rec.key, key, sizeof r->rec.key);
	r->rec.size = (int64_t)size;
	if (found <= 0)
		return &r->rs;
	r->parts = calloc((size_t)old.nparts + 1, sizeof *r->parts);
	if (!r->parts) {
		journal_upload_clear(&old);
		return &r->rs;
	}
	for (int i = 0; i < old.nparts; i++) {
		r->parts[i].num = old.parts[i].num;
		r->parts[i].size = (uint64_t)old.parts[i].size;
		util_strlcpy(r->parts[i].md5, old.parts[i].md5, sizeof r->parts[i].md5);
		util_strlcpy(r->parts[i].etag, old.parts[i].etag, sizeof r->parts[i].etag);
	}
	util_strlcpy(r->rec.upload_id, old.upload_id, sizeof r->rec.upload_id);
	r->rs.upload_id = r->rec.upload_id;
	r->rs.part_size = (uint64_t)old.part_size;
	r->rs.parts = r->parts;
	r->rs.nparts = old.nparts;
	journal_upload_clear(&old);
	return &r->rs;
}

void s3resume_close(struct s3resume *r)
{
	free(r->parts);
	r->parts = NULL;
}

/* uploads whose abort failed: not tried again before their time */
enum { FAILED_MAX = 64, RETRY_MS = 60000, ABORT_MS = 5000 };
static struct {
	char id[128];
	int64_t until;
} failed[FAILED_MAX];

static int failed_recently(const char *id, int64_t now)
{
	for (int i = 0; i < FAILED_MAX; i++)
		if (failed[i].until > now && strncmp(failed[i].id, id, sizeof failed[i].id - 1) == 0)
			return 1;
	return 0;
}

static void failed_note(const char *id, int64_t now)
{
	int k = 0;
	for (int i = 1; i < FAILED_MAX; i++)
		if (failed[i].until < failed[k].until)
			k = i;
	util_strlcpy(failed[k].id, id, sizeof failed[k].id);
	failed[k].until = now + RETRY_MS;
}

struct sweep {
	journal *j;
	s3resume_tenant_fn *tenant_of;
	void *arg;
	int aborted, bad;
};

static int sweep_one(void *arg, const struct jupload *u)
{
	struct sweep *sw = arg;
	int64_t now = util_now_ms();
	char label[1100];
	snprintf(label, sizeof label, "%s/%s", u->tenant, u->cid);
	if (failed_recently(u->upload_id, now))
		return 0;
	const struct tenant_s3 *srv = sw->tenant_of(sw->arg, u->tenant);
	struct s3_status st;
	struct s3_ctl ctl = { .deadline_ms = now + ABORT_MS };
	int rc = srv ? s3_abort_upload(srv, u->bucket, u->key, u->upload_id, &ctl, &st) : -1;
	if (rc < 0 && (strcmp(st.code, "MethodNotAllowed") == 0 || strcmp(st.code, "NotImplemented") == 0)) {
		/* s3rver: no AbortMultipartUpload; nothing more to be done */
		err_log(ERR_WARNING, label, "the S3 server cannot abort the upload left of s3://%s/%s: %s; forgotten",
		    u->bucket, u->key, st.message);
		rc = 0;
	} else if (rc < 0) {
		err_log(ERR_WARNING, label, "unable to abort the upload left of s3://%s/%s: %s; trying again later",
		    u->bucket, u->key, srv ? st.message : "tenant unusable");
		failed_note(u->upload_id, now);
		return 0;
	} else {
		err_log(ERR_INFO, label, "aborted the upload left of s3://%s/%s (the request is no longer uploading)",
		    u->bucket, u->key);
	}
	if (journal_upload_forget(sw->j, u->tenant, u->cid, u->upload_id) < 0) {
		sw->bad = 1;
		return 1;
	}
	sw->aborted++;
	return 0;
}

int s3resume_sweep(journal *j, s3resume_tenant_fn *tenant_of, void *arg)
{
	struct sweep sw = { .j = j, .tenant_of = tenant_of, .arg = arg };
	if (journal_upload_orphans(j, sweep_one, &sw) < 0 || sw.bad)
		return -1;
	return sw.aborted;
}
