/* journal-order: orders placed with an external order service (rs-order),
 * waiting in the journal for its answers while the request stays ORDERING
 * (table order_wait). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "db.h"
#include "journal-int.h"
#include "util.h"

int journal_order_wait(journal *j, const char *tenant, const char *cid, const char *backend,
    const char *status)
{
	sqlite3_stmt *s = jn_stmt(j, ST_WAIT_PUT);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	db_bind_text(s, 3, backend);
	db_bind_text(s, 4, status);
	sqlite3_bind_int64(s, 5, util_now_ms());
	db_bind_text(s, 6, jn_stages[JSTAGE_ORDER].busy);
	int n = jn_run(j, s, "order wait");
	return n < 0 ? -1 : n > 0;
}

int journal_order_update(journal *j, const struct jorder *o)
{
	sqlite3_stmt *s = jn_stmt(j, ST_WAIT_UPDATE);
	if (!s)
		return -1;
	db_bind_text(s, 1, o->tenant);
	db_bind_text(s, 2, o->cid);
	db_bind_text(s, 3, o->status);
	sqlite3_bind_int64(s, 4, util_now_ms());
	sqlite3_bind_int64(s, 5, o->order_id);
	sqlite3_bind_int64(s, 6, o->suborders);
	sqlite3_bind_int64(s, 7, o->retry_at);
	int n = jn_run(j, s, "order update");
	return n < 0 ? -1 : n > 0;
}

/* statement q on (tenant, cid) [, now]: changed rows > 0, or -1 */
static int order_touch(journal *j, enum st q, const char *tenant, const char *cid, int now)
{
	sqlite3_stmt *s = jn_stmt(j, q);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	if (now)
		sqlite3_bind_int64(s, 3, util_now_ms());
	int n = jn_run(j, s, "order wait");
	return n < 0 ? -1 : n > 0;
}

int journal_order_cancelled(journal *j, const char *tenant, const char *cid)
{
	return order_touch(j, ST_WAIT_CANCELLED, tenant, cid, 1);
}

int journal_order_forget(journal *j, const char *tenant, const char *cid)
{
	return order_touch(j, ST_WAIT_FORGET, tenant, cid, 0);
}

static void order_row(sqlite3_stmt *s, struct jorder *o)
{
	o->tenant = jn_col_borrow(s, 0);
	o->cid = jn_col_borrow(s, 1);
	o->state = jn_col_borrow(s, 2);
	o->backend = jn_col_borrow(s, 3);
	o->status = jn_col_borrow(s, 4);
	o->order_id = sqlite3_column_int64(s, 5);
	o->suborders = sqlite3_column_int64(s, 6);
	o->retry_at = sqlite3_column_int64(s, 7);
	o->expires_ms = sqlite3_column_int64(s, 8);
	o->cancelled = sqlite3_column_int(s, 9);
	o->updated_ms = sqlite3_column_int64(s, 11);
}

int journal_order_get(journal *j, const char *tenant, const char *cid, journal_order_fn *fn,
    void *arg)
{
	sqlite3_stmt *s = jn_stmt(j, ST_WAIT_GET);
	struct jorder o;
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		order_row(s, &o);
		fn(arg, &o);
	}
	db_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return jn_fail(j, rc, "order get");
	return rc == SQLITE_ROW;
}

/* one row at a time, the statement reset before fn (so fn may write), going
 * on after the row's id whatever fn did */
int journal_order_all(journal *j, journal_order_fn *fn, void *arg)
{
	int64_t after = 0;
	int n = 0;
	for (;;) {
		sqlite3_stmt *s = jn_stmt(j, ST_WAIT_ALL);
		struct jorder o;
		if (!s)
			return -1;
		sqlite3_bind_int64(s, 1, after);
		int rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			db_done(s);
			return rc == SQLITE_DONE ? n : jn_fail(j, rc, "order list");
		}
		order_row(s, &o);
		struct jorder copy = o;
		after = sqlite3_column_int64(s, 10);
		char *t = strdup(o.tenant), *c = strdup(o.cid), *st = strdup(o.state),
		    *b = strdup(o.backend), *ss = strdup(o.status);
		db_done(s);
		int stop = 0;
		if (t && c && st && b && ss) {
			copy.tenant = t, copy.cid = c, copy.state = st, copy.backend = b, copy.status = ss;
			stop = fn(arg, &copy);
			n++;
		}
		free(t), free(c), free(st), free(b), free(ss);
		if (!(t && c && st && b && ss))
			return jn_failf(j, 0, "%s", strerror(ENOMEM));
		if (stop)
			return n;
	}
}

int journal_order_reattach(journal *j)
{
	sqlite3_stmt *s = jn_stmt(j, ST_WAIT_REATTACH);
	if (!s)
		return -1;
	db_bind_text(s, 1, j->owner);
	db_bind_text(s, 2, jn_stages[JSTAGE_ORDER].busy);
	return jn_run(j, s, "order reattach");
}
