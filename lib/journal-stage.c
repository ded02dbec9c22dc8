/* journal-stage: the stage protocol over the journal — register, look up,
 * claim, commit (state + event + outbox row), progress, take back, the
 * requests waiting or expired, a request and its history — and the outbox
 * ferry-notify publishes from. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "db.h"
#include "journal-int.h"
#include "util.h"

static int insert_event(journal *j, int64_t req, const char *stage, const char *state,
    int64_t started, int64_t at, int64_t bytes, const char *item)
{
	sqlite3_stmt *s = jn_stmt(j, ST_INSERT_EVENT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, req);
	db_bind_text(s, 2, stage);
	db_bind_text(s, 3, state);
	if (started > 0)
		sqlite3_bind_int64(s, 4, started);
	sqlite3_bind_int64(s, 5, at);
	sqlite3_bind_int64(s, 6, bytes);
	db_bind_text(s, 7, item);
	return jn_run(j, s, "insert event") < 0 ? -1 : 0;
}

/* The row of (tenant, cid), by ST_FIND: 1 and its id, state and claim
 * time (0 if none) and, with fp, whether its fingerprint is fp; 0 if there
 * is none; -1. */
static int row_of(journal *j, const char *tenant, const char *cid, int64_t *id,
    char state[16], int64_t *claimed, const char *fp, int *same)
{
	sqlite3_stmt *s = jn_stmt(j, ST_FIND);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *have = (const char *)sqlite3_column_text(s, 1);
		const char *st = (const char *)sqlite3_column_text(s, 2);
		*id = sqlite3_column_int64(s, 0);
		*claimed = sqlite3_column_int64(s, 3);
		util_strlcpy(state, st ? st : "", 16);
		if (same)
			*same = have && fp && strcmp(have, fp) == 0;
	}
	db_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return jn_fail(j, rc, "find request");
	return rc == SQLITE_ROW;
}

/* 1 if (tenant, cid) exists, with its id, state and fingerprint-match;
 * 0 if not, -1. In a batch, what it found is kept for the commit that
 * usually follows. */
static int find(journal *j, const char *tenant, const char *cid, const char *fp, int *same,
    int64_t *id, char state[16])
{
	int64_t claimed;
	int found = row_of(j, tenant, cid, id, state, &claimed, fp, same);
	j->memo.changes = -1;
	if (found == 1 && j->in_batch && strlen(tenant) < sizeof j->memo.tenant &&
	    strlen(cid) < sizeof j->memo.cid) {
		j->memo.changes = sqlite3_total_changes64(j->db);
		j->memo.id = *id;
		j->memo.claimed = claimed;
		memcpy(j->memo.state, state, sizeof j->memo.state);
		strcpy(j->memo.tenant, tenant);
		strcpy(j->memo.cid, cid);
	}
	return found;
}

/* What a registration of r makes of the row found in `state` (see enum
 * journal_reg). */
static enum journal_reg classify(const struct jregister *r, const char *state, int same)
{
	if (!journal_state_terminal(state) || r->stage != JSTAGE_INGEST)
		return same ? JREG_SAME : JREG_CONFLICT;
	if (same && (r->redelivered || strcmp(state, "DONE") == 0))
		return JREG_SAME;
	return JREG_AGAIN;
}

/* The memo of find() for (tenant, cid) if still true: 1, else 0. */
static int memo_get(journal *j, const char *tenant, const char *cid, int64_t *id,
    char state[16], int64_t *claimed)
{
	if (!j->in_batch || j->memo.changes < 0 ||
	    j->memo.changes != sqlite3_total_changes64(j->db) ||
	    strcmp(j->memo.tenant, tenant) != 0 || strcmp(j->memo.cid, cid) != 0)
		return 0;
	*id = j->memo.id;
	memcpy(state, j->memo.state, sizeof j->memo.state);
	*claimed = j->memo.claimed;
	return 1;
}

/* The row of r, written by ST_INSERT_REQ (a new request) or ST_RENEW (a
 * new submission of the row `id`), then its first event. */
static int write_request(journal *j, enum st st, int64_t id, const struct jregister *r, int64_t now)
{
	sqlite3_stmt *s = jn_stmt(j, st);
	if (!s)
		return -1;
	db_bind_text(s, 1, r->tenant);
	db_bind_text(s, 2, r->cid);
	db_bind_text(s, 3, r->fingerprint);
	db_bind_text(s, 4, r->state);
	sqlite3_bind_int64(s, 5, r->received_ms > 0 ? r->received_ms : now);
	if (r->expires_ms > 0)
		sqlite3_bind_int64(s, 6, r->expires_ms);
	sqlite3_bind_int64(s, 7, now);
	if (jn_run(j, s, st == ST_RENEW ? "register again" : "insert request") < 0)
		return -1;
	if (st == ST_INSERT_REQ)
		id = sqlite3_last_insert_rowid(j->db);
	return insert_event(j, id, jn_stages[r->stage].name, r->state, 0, now, 0, r->item);
}

int journal_lookup(journal *j, const struct jregister *r, enum journal_reg *out)
{
	int64_t id;
	char state[16];
	int same = 0, found = find(j, r->tenant, r->cid, r->fingerprint, &same, &id, state);
	if (found == 1)
		*out = classify(r, state, same);
	return found;
}

/* The row `id` starts over as a new submission of r, with its event. */
static int renew_request(journal *j, int64_t id, const struct jregister *r, int64_t now)
{
	/* the ended submission's order: the new one places its own (a cancel
	 * of an rs-order order still due goes with it; order-bridge sends it
	 * within a second of the ERROR, so a client is seldom that quick) */
	sqlite3_stmt *s = jn_stmt(j, ST_RENEW_ORDER);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (jn_run(j, s, "register again") < 0)
		return -1;
	return write_request(j, ST_RENEW, id, r, now);
}

int journal_register(journal *j, const struct jregister *r, enum journal_reg *out)
{
	if (!r->tenant || !r->cid || !r->fingerprint || !r->state || (unsigned)r->stage >= JSTAGE_COUNT)
		return jn_failf(j, 0, "register: tenant, correlationId, fingerprint and state are required");
	if (!journal_state_known(r->state))
		return jn_failf(j, 0, "register: unknown state %s", r->state);
	if (jn_tx_begin(j) < 0)
		return -1;
	/* absent is only true inside the batch the caller looked it up in */
	int64_t id = 0, now = util_now_ms();
	char state[16];
	int same = 0, found = j->in_batch && r->absent ? 0 :
	    find(j, r->tenant, r->cid, r->fingerprint, &same, &id, state);
	if (found < 0)
		goto rollback;
	*out = found ? classify(r, state, same) : JREG_NEW;
	if (*out == JREG_NEW && write_request(j, ST_INSERT_REQ, 0, r, now) < 0)
		goto rollback;
	if (*out == JREG_AGAIN && renew_request(j, id, r, now) < 0)
		goto rollback;
	return jn_tx_commit(j);
rollback:
	jn_tx_rollback(j);
	return -1;
}

int journal_claim(journal *j, enum jstage st, const char *tenant, const char *cid)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->input)
		return jn_failf(j, 0, "claim: stage %s takes no input", si ? si->name : "?");
	sqlite3_stmt *s = jn_stmt(j, ST_CLAIM);
	if (!s)
		return -1;
	db_bind_text(s, 1, si->busy);
	db_bind_text(s, 2, j->owner);
	sqlite3_bind_int64(s, 3, util_now_ms());
	db_bind_text(s, 4, tenant);
	db_bind_text(s, 5, cid);
	db_bind_text(s, 6, si->input);
	int n = jn_run(j, s, "claim");
	return n < 0 ? -1 : n > 0;
}

static int state_busy(const char *state)
{
	for (int i = 0; i < JSTAGE_COUNT; i++)
		if (jn_stages[i].busy && strcmp(state, jn_stages[i].busy) == 0)
			return 1;
	return 0;
}

/* The guarded state change of a commit: 1 and the row id, 0 guard failed.
 * The guard: the request is in the stage's busy state (or its input state
 * for a commit that is its own claim); for the sweeper, in any state but a
 * terminal one (its claim time is kept if it was busy). */
static int finish(journal *j, const struct jcommit *c, int64_t now, int64_t *id, int64_t *claimed)
{
	int any = c->stage == JSTAGE_SWEEP;
	char state[16];
	int found = memo_get(j, c->tenant, c->cid, id, state, claimed) ? 1 :
	    row_of(j, c->tenant, c->cid, id, state, claimed, NULL, NULL);
	if (found <= 0)
		return found;
	int busy = state_busy(state);
	if (any ? journal_state_terminal(state) : strcmp(state, jn_stages[c->stage].busy) != 0 &&
	    !(c->claim && strcmp(state, jn_stages[c->stage].input) == 0))
		return 0;
	if (!busy)
		*claimed = c->claim ? now : 0;
	sqlite3_stmt *s = jn_stmt(j, ST_FINISH);
	if (!s)
		return -1;
	db_bind_text(s, 1, c->state);
	sqlite3_bind_int64(s, 2, now);
	db_bind_text(s, 3, c->error_type);
	sqlite3_bind_int64(s, 4, c->expires_ms);
	if (*claimed)
		sqlite3_bind_int64(s, 5, *claimed);
	sqlite3_bind_int64(s, 6, *id);
	sqlite3_bind_int(s, 7, journal_state_terminal(c->state));
	return jn_run(j, s, "commit state") < 0 ? -1 : 1;
}

/* The outbox row of a request whose id the caller holds. */
static int outbox_insert_id(journal *j, int64_t id, const char *body, const char *headers,
    int64_t now)
{
	sqlite3_stmt *s = jn_stmt(j, ST_OUTBOX_PUT_ID);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	db_bind_text(s, 2, body);
	db_bind_text(s, 3, headers);
	sqlite3_bind_int64(s, 4, now);
	return jn_run(j, s, "insert outbox") < 0 ? -1 : 0;
}

static int outbox_insert(journal *j, const char *tenant, const char *cid,
    const char *body, const char *headers, int64_t now)
{
	int64_t id, claimed;
	char state[16];
	int found = row_of(j, tenant, cid, &id, state, &claimed, NULL, NULL);
	if (found == 0)
		return jn_failf(j, 0, "outbox: no request %s/%s", tenant, cid);
	return found < 0 ? -1 : outbox_insert_id(j, id, body, headers, now);
}

int journal_commit(journal *j, const struct jcommit *c)
{
	if ((unsigned)c->stage >= JSTAGE_COUNT || c->stage == JSTAGE_INGEST || !c->state ||
	    !journal_state_known(c->state))
		return jn_failf(j, 0, "commit: bad stage or state %s", c->state ? c->state : "(none)");
	int64_t now = util_now_ms(), id = 0, claimed = 0;
	if (jn_tx_begin(j) < 0)
		return -1;
	int found = finish(j, c, now, &id, &claimed);
	if (found <= 0)
		goto rollback;
	if (insert_event(j, id, jn_stages[c->stage].name, c->state, claimed, now, c->bytes, c->item) < 0)
		goto rollback;
	if (c->response && outbox_insert_id(j, id, c->response, c->headers, now) < 0)
		goto rollback;
	return jn_tx_commit(j) < 0 ? -1 : 1;
rollback:
	jn_tx_rollback(j);
	return found == 0 ? 0 : -1;
}

int journal_progress(journal *j, const char *tenant, const char *cid, int64_t doneb, int64_t total)
{
	sqlite3_stmt *s = jn_stmt(j, ST_PROGRESS);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, doneb);
	sqlite3_bind_int64(s, 2, total);
	sqlite3_bind_int64(s, 3, util_now_ms());
	db_bind_text(s, 4, tenant);
	db_bind_text(s, 5, cid);
	return jn_run(j, s, "progress") < 0 ? -1 : 0;
}

int journal_takeback(journal *j, enum jstage st)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->busy)
		return 0;
	sqlite3_stmt *s = jn_stmt(j, ST_TAKEBACK);
	if (!s)
		return -1;
	db_bind_text(s, 1, si->input);
	sqlite3_bind_int64(s, 2, util_now_ms());
	db_bind_text(s, 3, si->busy);
	return jn_run(j, s, "take back");
}

/* ids selected by statement q (bound with one text or int64 argument) */
static int collect_ids(journal *j, enum st q, const char *text, int64_t num,
    int64_t **ids, size_t *n)
{
	sqlite3_stmt *s = jn_stmt(j, q);
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	if (!s)
		return -1;
	if (text)
		db_bind_text(s, 1, text);
	if (!text || sqlite3_bind_parameter_count(s) > 1)
		sqlite3_bind_int64(s, text ? 2 : 1, num);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			int64_t *p = realloc(*ids, cap * sizeof *p);
			if (!p) {
				db_done(s);
				return jn_failf(j, 0, "%s", strerror(ENOMEM));
			}
			*ids = p;
		}
		(*ids)[(*n)++] = sqlite3_column_int64(s, 0);
	}
	db_done(s);
	return rc == SQLITE_DONE ? 0 : jn_fail(j, rc, "select");
}

/* For each id, load (tenant, cid, item) with q (?1 = id, ?2 = state) and
 * call fn; rows that no longer match are skipped. */
static int walk(journal *j, enum st q, const char *state, const int64_t *ids, size_t n,
    journal_item_fn *fn, void *arg)
{
	int visited = 0;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = jn_stmt(j, q);
		if (!s)
			return -1;
		sqlite3_bind_int64(s, 1, ids[i]);
		if (state)
			db_bind_text(s, 2, state);
		int rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			db_done(s);
			if (rc != SQLITE_DONE)
				return jn_fail(j, rc, "load item");
			continue;
		}
		char *t = db_col_dup(s, 0), *c = db_col_dup(s, 1), *item = db_col_dup(s, 2);
		db_done(s);
		int stop = t && c ? fn(arg, t, c, item) : 0;
		visited++;
		free(t);
		free(c);
		free(item);
		if (stop)
			break;
	}
	return visited;
}

int journal_pending(journal *j, enum jstage st, journal_item_fn *fn, void *arg)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->input)
		return 0;
	int64_t *ids;
	size_t n;
	if (collect_ids(j, ST_IDS_IN_STATE, si->input, 0, &ids, &n) < 0)
		return -1;
	int rc = walk(j, ST_INPUT_BY_ID, si->input, ids, n, fn, arg);
	free(ids);
	return rc;
}

int journal_aside_due(journal *j, enum jstage st, int64_t now_ms, journal_item_fn *fn,
    void *arg)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->input)
		return 0;
	int64_t *ids;
	size_t n;
	if (collect_ids(j, ST_ASIDE_DUE_IDS, si->input, now_ms, &ids, &n) < 0)
		return -1;
	int rc = walk(j, ST_INPUT_BY_ID, si->input, ids, n, fn, arg);
	free(ids);
	return rc;
}

int journal_expired(journal *j, int64_t now_ms, journal_item_fn *fn, void *arg)
{
	int64_t *ids;
	size_t n;
	if (collect_ids(j, ST_EXPIRED_IDS, NULL, now_ms, &ids, &n) < 0)
		return -1;
	int rc = walk(j, ST_LATEST_BY_ID, NULL, ids, n, fn, arg);
	free(ids);
	return rc;
}

int journal_live_item(journal *j, const char *tenant, const char *cid, journal_item_fn *fn,
    void *arg)
{
	struct jrequest r;
	int rc = journal_get(j, tenant, cid, &r);
	int64_t id = r.id;
	journal_request_clear(&r);
	return rc <= 0 ? rc : walk(j, ST_LATEST_BY_ID, NULL, &id, 1, fn, arg);
}

int journal_next_expiry(journal *j, int64_t after_ms, int64_t *ms)
{
	sqlite3_stmt *s = jn_stmt(j, ST_NEXT_EXPIRY);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, after_ms);
	int rc = sqlite3_step(s), found = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		*ms = sqlite3_column_int64(s, 0);
		found = 1;
	}
	db_done(s);
	return rc == SQLITE_ROW ? found : jn_fail(j, rc, "next expiry");
}

int journal_get(journal *j, const char *tenant, const char *cid, struct jrequest *r)
{
	memset(r, 0, sizeof *r);
	sqlite3_stmt *s = jn_stmt(j, ST_GET);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		jn_request_row(s, r, db_col_dup);
	db_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return jn_fail(j, rc, "get request");
	if (rc == SQLITE_ROW && (!r->tenant || !r->cid || !r->state)) {
		journal_request_clear(r);
		return jn_failf(j, 0, "%s", strerror(ENOMEM));
	}
	return rc == SQLITE_ROW;
}

void journal_request_clear(struct jrequest *r)
{
	free(r->tenant);
	free(r->cid);
	free(r->fingerprint);
	free(r->state);
	free(r->claimed_by);
	free(r->error_type);
	free(r->last_error);
	memset(r, 0, sizeof *r);
}

int journal_history(journal *j, const char *tenant, const char *cid,
    journal_event_fn *fn, void *arg)
{
	sqlite3_stmt *s = jn_stmt(j, ST_HISTORY);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	int rc, count = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct jevent e = {
			.id = sqlite3_column_int64(s, 0),
			.stage = (const char *)sqlite3_column_text(s, 1),
			.state = (const char *)sqlite3_column_text(s, 2),
			.item = (const char *)sqlite3_column_text(s, 3),
			.started_ms = sqlite3_column_int64(s, 4),
			.at_ms = sqlite3_column_int64(s, 5),
			.bytes = sqlite3_column_int64(s, 6),
			.submission = sqlite3_column_int64(s, 7),
		};
		count++;
		if (fn(arg, &e)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	db_done(s);
	return rc == SQLITE_DONE ? count : jn_fail(j, rc, "history");
}

char *journal_input_item(journal *j, enum jstage st, const char *tenant, const char *cid)
{
	const struct jstage_info *si = journal_stage(st);
	j->err[0] = '\0';
	if (!si || !si->input) {
		jn_failf(j, 0, "stage %s has no input", si ? si->name : "?");
		return NULL;
	}
	sqlite3_stmt *s = jn_stmt(j, ST_INPUT_ITEM);
	if (!s)
		return NULL;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	db_bind_text(s, 3, si->input);
	int rc = sqlite3_step(s);
	char *item = rc == SQLITE_ROW ? db_col_dup(s, 0) : NULL;
	db_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		jn_fail(j, rc, "input item");
	return item;
}

/* ---- the queue ---- */

/* The first tenant after `after` with a request due; 1, 0 none, -1. */
static int next_tenant(journal *j, const char *input, const char *after, int64_t now,
    char **tenant)
{
	sqlite3_stmt *s = jn_stmt(j, ST_NEXT_TENANT);
	if (!s)
		return -1;
	db_bind_text(s, 1, input);
	db_bind_text(s, 2, after ? after : "");
	sqlite3_bind_int64(s, 3, now);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && !(*tenant = db_col_dup(s, 0)))
		rc = SQLITE_NOMEM;
	db_done(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : jn_fail(j, rc, "claim next");
}

/* The oldest due request of w->tenant into w; 1, 0 none, -1. */
static int tenant_oldest(journal *j, const char *input, int64_t now, struct jwork *w)
{
	sqlite3_stmt *s = jn_stmt(j, ST_TENANT_OLDEST);
	if (!s)
		return -1;
	db_bind_text(s, 1, input);
	db_bind_text(s, 2, w->tenant);
	sqlite3_bind_int64(s, 3, now);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		w->id = sqlite3_column_int64(s, 0);
		w->attempts = sqlite3_column_int64(s, 2);
		if (!(w->cid = db_col_dup(s, 1)))
			rc = SQLITE_NOMEM;
	}
	db_done(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : jn_fail(j, rc, "claim next");
}

/* Claim w->id and read its input item; 1, 0 taken by another, -1. */
static int claim_id(journal *j, const struct jstage_info *si, int64_t now, struct jwork *w)
{
	sqlite3_stmt *s = jn_stmt(j, ST_ITEM_OF);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, w->id);
	db_bind_text(s, 2, si->input);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL &&
	    !(w->item = db_col_dup(s, 0)))
		rc = SQLITE_NOMEM;
	db_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return jn_fail(j, rc, "claim next");
	if (!(s = jn_stmt(j, ST_CLAIM_ID)))
		return -1;
	db_bind_text(s, 1, si->busy);
	db_bind_text(s, 2, j->owner);
	sqlite3_bind_int64(s, 3, now);
	sqlite3_bind_int64(s, 4, w->id);
	db_bind_text(s, 5, si->input);
	int n = jn_run(j, s, "claim next");
	return n < 0 ? -1 : n > 0;
}

int journal_claim_next(journal *j, enum jstage st, const char *after, int64_t now_ms,
    struct jwork *w)
{
	const struct jstage_info *si = journal_stage(st);
	memset(w, 0, sizeof *w);
	if (!si || !si->input)
		return jn_failf(j, 0, "claim: stage %s takes no input", si ? si->name : "?");
	if (jn_tx_begin(j) < 0)
		return -1;
	int rc = next_tenant(j, si->input, after, now_ms, &w->tenant);
	if (rc == 0 && after && *after)
		rc = next_tenant(j, si->input, "", now_ms, &w->tenant);   /* wrap round */
	if (rc > 0)
		rc = tenant_oldest(j, si->input, now_ms, w);
	if (rc > 0)
		rc = claim_id(j, si, now_ms, w);
	if (rc < 0) {
		jn_tx_rollback(j);
		journal_work_clear(w);
		return -1;
	}
	if (jn_tx_commit(j) < 0) {
		journal_work_clear(w);
		return -1;
	}
	if (rc == 0)
		journal_work_clear(w);
	return rc;
}

void journal_work_clear(struct jwork *w)
{
	free(w->tenant);
	free(w->cid);
	free(w->item);
	memset(w, 0, sizeof *w);
}

/* the count and earliest next_attempt_at of the requests stmt selects in
 * the stage's input state: 1 and *ms, 0 none, -1 */
static int earliest(journal *j, enum jstage st, enum st stmt, const char *what, int64_t *ms)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->input)
		return 0;
	sqlite3_stmt *s = jn_stmt(j, stmt);
	if (!s)
		return -1;
	db_bind_text(s, 1, si->input);
	int rc = sqlite3_step(s), any = 0;
	if (rc == SQLITE_ROW) {
		any = sqlite3_column_int64(s, 0) > 0;
		*ms = sqlite3_column_int64(s, 1);
	}
	db_done(s);
	return rc == SQLITE_ROW ? any : jn_fail(j, rc, what);
}

int journal_next_due(journal *j, enum jstage st, int64_t *ms)
{
	return earliest(j, st, ST_NEXT_DUE, "next due", ms);
}

/* One request set aside by stmt (ST_DEFER from the busy state, ST_DEFER_INPUT
 * in the input state) and the retries counter up, in one transaction. */
static int set_aside(journal *j, enum jstage st, enum st stmt, const char *tenant,
    const char *cid, const char *why, int64_t next_ms)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->input || (stmt == ST_DEFER && !si->busy))
		return jn_failf(j, 0, "defer: stage %s takes no input", si ? si->name : "?");
	if (jn_tx_begin(j) < 0)
		return -1;
	sqlite3_stmt *s = jn_stmt(j, stmt);
	int n = -1;
	if (s) {
		db_bind_text(s, 1, si->input);
		sqlite3_bind_int64(s, 2, util_now_ms());
		db_bind_text(s, 3, why);
		sqlite3_bind_int64(s, 4, next_ms);
		db_bind_text(s, 5, tenant);
		db_bind_text(s, 6, cid);
		if (stmt == ST_DEFER)
			db_bind_text(s, 7, si->busy);
		n = jn_run(j, s, "defer");
	}
	if (n > 0 && (s = jn_stmt(j, ST_COUNT_UP))) {
		db_bind_text(s, 1, "retries");
		if (jn_run(j, s, "defer") < 0)
			n = -1;
	} else if (n > 0) {
		n = -1;
	}
	if (n < 0) {
		jn_tx_rollback(j);
		return -1;
	}
	return jn_tx_commit(j) < 0 ? -1 : n > 0;
}

int journal_defer(journal *j, enum jstage st, const char *tenant, const char *cid,
    const char *why, int64_t next_ms)
{
	return set_aside(j, st, ST_DEFER, tenant, cid, why, next_ms);
}

int journal_defer_input(journal *j, enum jstage st, const char *tenant, const char *cid,
    const char *why, int64_t next_ms)
{
	return set_aside(j, st, ST_DEFER_INPUT, tenant, cid, why, next_ms);
}

int journal_aside_next(journal *j, enum jstage st, int64_t *ms)
{
	return earliest(j, st, ST_ASIDE_NEXT, "set aside next", ms);
}

int journal_retry_now(journal *j, const char *tenant, const char *cid)
{
	sqlite3_stmt *s = jn_stmt(j, ST_RETRY_NOW);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	sqlite3_bind_int64(s, 3, util_now_ms());
	int n = jn_run(j, s, "retry");
	return n < 0 ? -1 : n > 0;
}

int journal_outbox_put(journal *j, const char *tenant, const char *cid,
    const char *body, const char *headers)
{
	if (jn_tx_begin(j) < 0)
		return -1;
	if (outbox_insert(j, tenant, cid, body, headers, util_now_ms()) < 0) {
		jn_tx_rollback(j);
		return -1;
	}
	return jn_tx_commit(j);
}

/* Step a bound statement selecting OUTBOX_COLS, calling fn per row. */
static int outbox_rows(journal *j, sqlite3_stmt *s, journal_outbox_fn *fn, void *arg)
{
	int rc, count = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct joutbox o = {
			.id = sqlite3_column_int64(s, 0),
			.tenant = (const char *)sqlite3_column_text(s, 1),
			.cid = (const char *)sqlite3_column_text(s, 2),
			.body = (const char *)sqlite3_column_text(s, 3),
			.headers = (const char *)sqlite3_column_text(s, 4),
			.created_ms = sqlite3_column_int64(s, 5),
			.sent_ms = sqlite3_column_int64(s, 6),
			.set_aside_ms = sqlite3_column_int64(s, 7),
			.set_aside_why = (const char *)sqlite3_column_text(s, 8),
		};
		count++;
		if (fn(arg, &o)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	db_done(s);
	return rc == SQLITE_DONE ? count : jn_fail(j, rc, "outbox");
}

int journal_outbox_unsent(journal *j, int64_t after_id, int limit,
    journal_outbox_fn *fn, void *arg)
{
	return journal_outbox_unsent_of(j, NULL, after_id, limit, fn, arg);
}

int journal_outbox_unsent_of(journal *j, const char *tenant, int64_t after_id, int limit,
    journal_outbox_fn *fn, void *arg)
{
	sqlite3_stmt *s = jn_stmt(j, tenant ? ST_OUTBOX_UNSENT_TENANT : ST_OUTBOX_UNSENT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int(s, 2, limit);
	if (tenant)
		db_bind_text(s, 3, tenant);
	return outbox_rows(j, s, fn, arg);
}

int journal_outbox_of(journal *j, const char *tenant, const char *cid,
    journal_outbox_fn *fn, void *arg)
{
	sqlite3_stmt *s = jn_stmt(j, ST_OUTBOX_OF);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	return outbox_rows(j, s, fn, arg);
}

int journal_outbox_set_aside(journal *j, int64_t id, const char *why)
{
	if (jn_tx_begin(j) < 0)
		return -1;
	sqlite3_stmt *s = jn_stmt(j, ST_SET_ASIDE);
	if (!s) {
		jn_tx_rollback(j);
		return -1;
	}
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, util_now_ms());
	db_bind_text(s, 3, why);
	if (jn_run(j, s, "set aside") < 0) {
		jn_tx_rollback(j);
		return -1;
	}
	return jn_tx_commit(j);
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The ids, sorted, are marked a run of consecutive ids per statement
 * (confirms of one burst are usually one run). */
int journal_outbox_mark_sent(journal *j, int64_t *ids, size_t n)
{
	int64_t now = util_now_ms();
	if (n == 0)
		return 0;
	qsort(ids, n, sizeof *ids, cmp_id);
	if (jn_tx_begin(j) < 0)
		return -1;
	for (size_t i = 0, k; i < n; i = k) {
		for (k = i + 1; k < n && ids[k] <= ids[k - 1] + 1; k++)
			;
		sqlite3_stmt *s = jn_stmt(j, ST_OUTBOX_SENT_RUN);
		if (!s)
			goto rollback;
		sqlite3_bind_int64(s, 1, ids[i]);
		sqlite3_bind_int64(s, 2, ids[k - 1]);
		sqlite3_bind_int64(s, 3, now);
		if (jn_run(j, s, "mark sent") < 0)
			goto rollback;
	}
	return jn_tx_commit(j);
rollback:
	jn_tx_rollback(j);
	return -1;
}

int journal_resend_latest(journal *j, const char *tenant, const char *cid)
{
	sqlite3_stmt *s = jn_stmt(j, ST_RESEND);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	sqlite3_bind_int64(s, 3, util_now_ms());
	int n = jn_run(j, s, "resend");
	return n < 0 ? -1 : n > 0;
}

int64_t journal_data_version(journal *j)
{
	sqlite3_stmt *s = jn_stmt(j, ST_DATA_VERSION);
	if (!s)
		return -1;
	int rc = sqlite3_step(s);
	int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	db_done(s);
	if (rc != SQLITE_ROW)
		return jn_fail(j, rc, "data version");
	return v;
}
