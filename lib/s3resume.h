/* s3resume: resumable uploads kept in the journal — the hooks of
 * struct s3_resume over journal_upload_*, for one job of ferry-s3-put, and
 * the janitor that aborts the uploads nobody will complete. */
#ifndef FERRY_S3RESUME_H
#define FERRY_S3RESUME_H

#include <stdint.h>

#include "journal.h"
#include "s3.h"
#include "tenant.h"

struct s3resume {
	journal *j;
	const char *tenant, *cid, *label;
	struct jupload rec;
	struct s3_resume_part *parts;
	struct s3_resume rs;
};
/* The resume of tenant/cid's upload to bucket/key of size bytes (srv is
 * the tenant's S3, for aborting a journaled upload of another object).
 * Returns &r->rs (always usable); s3resume_close(r) after the upload. */
const struct s3_resume *s3resume_open(struct s3resume *r, journal *j, const struct tenant_s3 *srv,
    const char *tenant, const char *cid, const char *label, const char *bucket, const char *key,
    uint64_t size);
void s3resume_close(struct s3resume *r);

/* The janitor: abort the journaled uploads whose request is no longer
 * PACKED or UPLOADING (ended, cancelled, expired, sent back), then forget
 * them. tenant_of gives a tenant's S3 (NULL: unusable, tried later). Each
 * abort may take up to 5 s; one that fails is tried again after a minute.
 * Run every few seconds; the number aborted, or -1 (journal error). */
typedef const struct tenant_s3 *s3resume_tenant_fn(void *arg, const char *tenant);
int s3resume_sweep(journal *j, s3resume_tenant_fn *tenant_of, void *arg);

#endif
