/* journal-upload: the journal's records of resumable uploads (schema 7):
 * the multipart upload a request's zip is going up in, and each part S3
 * acknowledged, written as they happen by ferry-s3-put, read when it starts
 * again (to resume rather than send everything again) and when it looks
 * for uploads nobody will complete (to abort them). */
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "journal-int.h"
#include "util.h"

int journal_upload_begin(journal *j, const char *tenant, const char *cid, const char *bucket,
    const char *key, const char *upload_id, int64_t part_size, int64_t size)
{
	if (jn_tx_begin(j) < 0)
		return -1;
	sqlite3_stmt *s = jn_stmt(j, ST_UPLOAD_PARTS_DROP);
	int n = -1;
	if (s) {
		db_bind_text(s, 1, tenant);
		db_bind_text(s, 2, cid);
		n = jn_run(j, s, "upload begin");
	}
	if (n >= 0 && (s = jn_stmt(j, ST_UPLOAD_PUT))) {
		db_bind_text(s, 1, tenant);
		db_bind_text(s, 2, cid);
		db_bind_text(s, 3, upload_id);
		db_bind_text(s, 4, bucket);
		db_bind_text(s, 5, key);
		sqlite3_bind_int64(s, 6, part_size);
		sqlite3_bind_int64(s, 7, size);
		sqlite3_bind_int64(s, 8, util_now_ms());
		n = jn_run(j, s, "upload begin");
		if (n == 0)
			n = jn_failf(j, 0, "upload begin: %s/%s is not in the journal", tenant, cid);
	} else {
		n = -1;
	}
	if (n < 0) {
		jn_tx_rollback(j);
		return -1;
	}
	return jn_tx_commit(j);
}

int journal_upload_part(journal *j, const char *tenant, const char *cid, const char *upload_id,
    const struct jupload_part *part)
{
	sqlite3_stmt *s = jn_stmt(j, ST_UPLOAD_PART);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	db_bind_text(s, 3, upload_id);
	sqlite3_bind_int(s, 4, part->num);
	sqlite3_bind_int64(s, 5, part->size);
	db_bind_text(s, 6, part->md5);
	db_bind_text(s, 7, part->etag);
	return jn_run(j, s, "upload part") < 0 ? -1 : 0;
}

void journal_upload_clear(struct jupload *u)
{
	free(u->parts);
	memset(u, 0, sizeof *u);
}

/* A row of ST_UPLOAD_GET / ST_UPLOAD_ORPHANS into u (no parts). */
static void upload_cols(sqlite3_stmt *s, struct jupload *u)
{
	memset(u, 0, sizeof *u);
	util_strlcpy(u->upload_id, (const char *)sqlite3_column_text(s, 1), sizeof u->upload_id);
	util_strlcpy(u->bucket, (const char *)sqlite3_column_text(s, 2), sizeof u->bucket);
	util_strlcpy(u->key, (const char *)sqlite3_column_text(s, 3), sizeof u->key);
	u->part_size = sqlite3_column_int64(s, 4);
	u->size = sqlite3_column_int64(s, 5);
	util_strlcpy(u->tenant, (const char *)sqlite3_column_text(s, 6), sizeof u->tenant);
	util_strlcpy(u->cid, (const char *)sqlite3_column_text(s, 7), sizeof u->cid);
}

/* The parts of request rid's upload into u. */
static int upload_parts(journal *j, int64_t rid, struct jupload *u)
{
	sqlite3_stmt *p = jn_stmt(j, ST_UPLOAD_PARTS);
	if (!p)
		return -1;
	sqlite3_bind_int64(p, 1, rid);
	int rc, max = 0;
	while ((rc = sqlite3_step(p)) == SQLITE_ROW) {
		if (u->nparts == max) {
			max = max ? max * 2 : 64;
			struct jupload_part *more = realloc(u->parts, (size_t)max * sizeof *more);
			if (!more) {
				db_done(p);
				return jn_failf(j, 1, "upload parts: out of memory");
			}
			u->parts = more;
		}
		struct jupload_part *q = &u->parts[u->nparts++];
		q->num = sqlite3_column_int(p, 0);
		q->size = sqlite3_column_int64(p, 1);
		util_strlcpy(q->md5, (const char *)sqlite3_column_text(p, 2), sizeof q->md5);
		util_strlcpy(q->etag, (const char *)sqlite3_column_text(p, 3), sizeof q->etag);
	}
	db_done(p);
	return rc == SQLITE_DONE ? 0 : jn_fail(j, rc, "upload parts");
}

int journal_upload_get(journal *j, const char *tenant, const char *cid, struct jupload *u)
{
	memset(u, 0, sizeof *u);
	sqlite3_stmt *s = jn_stmt(j, ST_UPLOAD_GET);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	int rc = sqlite3_step(s), found = 0;
	if (rc == SQLITE_ROW) {
		int64_t rid = sqlite3_column_int64(s, 0);
		upload_cols(s, u);
		found = upload_parts(j, rid, u) < 0 ? -1 : 1;
		rc = SQLITE_DONE;
	}
	db_done(s);
	if (found < 0 || rc != SQLITE_DONE) {
		journal_upload_clear(u);
		return found < 0 ? -1 : jn_fail(j, rc, "upload get");
	}
	return found;
}

int journal_upload_forget(journal *j, const char *tenant, const char *cid, const char *upload_id)
{
	sqlite3_stmt *s = jn_stmt(j, ST_UPLOAD_FORGET);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	db_bind_text(s, 3, upload_id);
	return jn_run(j, s, "upload forget") < 0 ? -1 : 0;
}

int journal_upload_orphans(journal *j, journal_upload_fn *fn, void *arg)
{
	/* read them all first: fn writes to the journal (forget) */
	sqlite3_stmt *s = jn_stmt(j, ST_UPLOAD_ORPHANS);
	if (!s)
		return -1;
	struct jupload *all = NULL;
	int n = 0, max = 0, rc, bad = 0;
	while (!bad && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == max) {
			max = max ? max * 2 : 16;
			struct jupload *more = realloc(all, (size_t)max * sizeof *more);
			if (!more) {
				bad = jn_failf(j, 1, "upload orphans: out of memory");
				break;
			}
			all = more;
		}
		upload_cols(s, &all[n]);
		n++;
	}
	db_done(s);
	if (!bad && rc != SQLITE_DONE)
		bad = jn_fail(j, rc, "upload orphans");
	for (int i = 0; !bad && i < n; i++)
		if (fn(arg, &all[i]))
			break;
	free(all);
	return bad ? -1 : 0;
}
