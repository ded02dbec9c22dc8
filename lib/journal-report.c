/* journal-report: the journal seen by an operator (ferry-journal) and its
 * upkeep — the stage of a state, lists, counts, totals, stage durations,
 * pruning of ended requests, and the checks of journal_check. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "db.h"
#include "journal-int.h"

int journal_state_stage(const char *state, int *busy)
{
	for (int i = 0; i < JSTAGE_COUNT; i++) {
		const struct jstage_info *s = &jn_stages[i];
		if ((s->busy && !strcmp(state, s->busy)) || (s->input && !strcmp(state, s->input))) {
			*busy = s->busy && !strcmp(state, s->busy);
			return i;
		}
	}
	return -1;
}

/* Bind :name if the statement has it: text when given, else num. */
static void bind_named(sqlite3_stmt *s, const char *name, const char *text, int64_t num)
{
	int i = sqlite3_bind_parameter_index(s, name);
	if (i > 0 && text)
		db_bind_text(s, i, text);
	else if (i > 0)
		sqlite3_bind_int64(s, i, num);
}

/* The SELECT of journal_list for the filters that are set. */
static void list_sql(const struct jfilter *f, char *q, size_t cap)
{
	const char *where[4];
	int n = 0;
	if (f->tenant)
		where[n++] = "tenant = :tenant";
	if (f->state)
		where[n++] = "state = :state";
	if (f->live)
		where[n++] = "state IN " LIVE;
	if (f->since_ms > 0)
		where[n++] = "received_at >= :since";
	size_t len = (size_t)snprintf(q, cap, "SELECT " REQUEST_COLS " FROM request");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(q + len, cap - len, "%s%s", i ? " AND " : " WHERE ", where[i]);
	snprintf(q + len, cap - len, " ORDER BY received_at DESC, id DESC%s",
	    f->limit > 0 ? " LIMIT :limit" : "");
}

int journal_list(journal *j, const struct jfilter *f, journal_request_fn *fn, void *arg)
{
	char q[1024];
	sqlite3_stmt *s;
	list_sql(f, q, sizeof q);
	int rc = sqlite3_prepare_v2(j->db, q, -1, &s, NULL), count = 0;
	if (rc != SQLITE_OK)
		return jn_fail(j, rc, "list");
	bind_named(s, ":tenant", f->tenant, 0);
	bind_named(s, ":state", f->state, 0);
	bind_named(s, ":since", NULL, f->since_ms);
	bind_named(s, ":limit", NULL, f->limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct jrequest r;
		jn_request_row(s, &r, jn_col_borrow);
		count++;
		if (fn(arg, &r)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		jn_fail(j, rc, "list");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? count : -1;
}

int journal_count_by(journal *j, enum jcount by, journal_count_fn *fn, void *arg)
{
	sqlite3_stmt *s = jn_stmt(j, by == JCOUNT_STATE ? ST_COUNT_STATE : ST_COUNT_ERROR);
	if (!s)
		return -1;
	int rc, count = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		count++;
		if (fn(arg, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1))) {
			rc = SQLITE_DONE;
			break;
		}
	}
	db_done(s);
	return rc == SQLITE_DONE ? count : jn_fail(j, rc, "count");
}

/* One integer from statement q, bound with ?1 = arg when it takes one. */
static int scalar(journal *j, enum st q, int64_t arg, int64_t *out)
{
	sqlite3_stmt *s = jn_stmt(j, q);
	if (!s)
		return -1;
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, arg);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	db_done(s);
	return rc == SQLITE_ROW ? 0 : jn_fail(j, rc, "totals");
}

static const struct {
	enum st q;
	size_t field;      /* offsetof in struct jtotals */
	int64_t ago;       /* the statement's ?1 is now - ago */
} totals[] = {
	{ ST_TOTAL_REQUESTS, offsetof(struct jtotals, requests), 0 },
	{ ST_RECEIVED_SINCE, offsetof(struct jtotals, received_hour), 3600000 },
	{ ST_RECEIVED_SINCE, offsetof(struct jtotals, received_day), 86400000 },
	{ ST_UNSENT_COUNT, offsetof(struct jtotals, outbox_unsent), 0 },
	{ ST_SET_ASIDE_COUNT, offsetof(struct jtotals, outbox_set_aside), 0 },
	{ ST_OLDEST_UNSENT, offsetof(struct jtotals, oldest_unsent_ms), 0 },
	{ ST_DELIVERED, offsetof(struct jtotals, bytes_delivered), 0 },
	{ ST_RETRIES, offsetof(struct jtotals, retries), 0 },
	{ ST_WAITING_RETRY, offsetof(struct jtotals, waiting_retry), 0 },
};

int journal_totals(journal *j, int64_t now_ms, struct jtotals *t)
{
	memset(t, 0, sizeof *t);
	/* a deferred transaction: one snapshot, no write lock */
	if (!j->in_batch && jn_exec(j, "BEGIN", "totals") < 0)
		return -1;
	int rc = jn_pragma_int(j, "PRAGMA user_version", &t->schema_version);
	for (size_t i = 0; rc == 0 && i < sizeof totals / sizeof *totals; i++)
		rc = scalar(j, totals[i].q, now_ms - totals[i].ago,
		    (int64_t *)(void *)((char *)t + totals[i].field));
	if (!j->in_batch)
		sqlite3_exec(j->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void durations_sql(size_t n, char *q, size_t cap)
{
	size_t len = (size_t)snprintf(q, cap,
	    "SELECT stage, count(*), coalesce(sum(at - started_at), 0)");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(q + len, cap - len, ", sum(at - started_at <= ?%zu)", i + 1);
	snprintf(q + len, cap - len,
	    " FROM event WHERE started_at IS NOT NULL GROUP BY stage ORDER BY stage");
}

int journal_durations(journal *j, const double *bounds, size_t n,
    journal_durations_fn *fn, void *arg)
{
	char q[2048];
	int64_t le[JOURNAL_MAX_BOUNDS];
	sqlite3_stmt *s;
	if (n > JOURNAL_MAX_BOUNDS)
		return jn_failf(j, 0, "durations: at most %d bounds", JOURNAL_MAX_BOUNDS);
	durations_sql(n, q, sizeof q);
	int rc = sqlite3_prepare_v2(j->db, q, -1, &s, NULL), count = 0;
	if (rc != SQLITE_OK)
		return jn_fail(j, rc, "durations");
	for (size_t i = 0; i < n; i++)
		sqlite3_bind_double(s, (int)i + 1, bounds[i] * 1000.0);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct jdurations d = {
			.stage = (const char *)sqlite3_column_text(s, 0),
			.count = sqlite3_column_int64(s, 1),
			.sum_s = (double)sqlite3_column_int64(s, 2) / 1000.0,
			.le = le,
		};
		for (size_t i = 0; i < n; i++)
			le[i] = sqlite3_column_int64(s, 3 + (int)i);
		count++;
		if (d.stage && fn(arg, &d)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		jn_fail(j, rc, "durations");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? count : -1;
}

int64_t journal_prune(journal *j, int64_t before_ms, int batch)
{
	int64_t total = 0;
	if (batch < 1)
		return jn_failf(j, 0, "prune: the batch must hold at least one request");
	for (;;) {
		sqlite3_stmt *s = jn_stmt(j, ST_PRUNE);
		if (!s || jn_tx_begin(j) < 0)
			return -1;
		sqlite3_bind_int64(s, 1, before_ms);
		sqlite3_bind_int(s, 2, batch);
		int n = jn_run(j, s, "prune");
		if (n < 0) {
			jn_tx_rollback(j);
			return -1;
		}
		if (jn_tx_commit(j) < 0)
			return -1;
		total += n;
		if (n < batch)
			return total;
	}
}

/* Where journal_check's problems go; fn returning non-zero stops it. */
struct report {
	journal_problem_fn *fn;
	void *arg;
	int found, stop;
};

static void report(struct report *r, const char *check, const char *tenant, const char *cid,
    const char *detail)
{
	struct jproblem p = { .check = check, .tenant = tenant, .cid = cid, .detail = detail };
	r->found++;
	r->stop = r->fn(r->arg, &p) != 0;
}

/* Report each line of an integrity_check row but its "*** in database" title. */
static void report_lines(struct report *r, const char *check, const char *text)
{
	char line[512];
	while (text && *text && !r->stop) {
		size_t n = strcspn(text, "\n");
		snprintf(line, sizeof line, "%.*s", (int)n, text);
		if (strncmp(line, "*** ", 4) != 0)
			report(r, check, NULL, NULL, line);
		text += n + (text[n] == '\n');
	}
}

/* Report each row of a PRAGMA check; 1 row "ok" is no problem. */
static int check_pragma(journal *j, const char *pragma, const char *check, struct report *r)
{
	sqlite3_stmt *s;
	char detail[512];
	int rc = sqlite3_prepare_v2(j->db, pragma, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return jn_fail(j, rc, check);
	while (!r->stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(s, 0);
		if (sqlite3_column_count(s) == 1 && a && !strcmp(a, "ok"))
			continue;
		if (sqlite3_column_count(s) == 1) {
			report_lines(r, check, a ? a : "?");
			continue;
		}
		/* foreign_key_check: table, rowid, parent, fkid */
		snprintf(detail, sizeof detail, "%s row %lld refers to a missing %s",
		    a ? a : "?", (long long)sqlite3_column_int64(s, 1),
		    (const char *)sqlite3_column_text(s, 2));
		report(r, check, NULL, NULL, detail);
	}
	if (!r->stop && rc != SQLITE_DONE)
		jn_fail(j, rc, check);
	sqlite3_finalize(s);
	return r->stop || rc == SQLITE_DONE ? 0 : -1;
}

static const struct {
	const char *check, *what, *sql;
} row_checks[] = {
	{ "no-event", "no event in its history",
	  "SELECT tenant, correlation_id, state FROM request r WHERE NOT EXISTS"
	  " (SELECT 1 FROM event e WHERE e.request_id = r.id) ORDER BY id" },
	{ "no-response", "ended without a response in the outbox",
	  "SELECT tenant, correlation_id, state FROM request r WHERE state IN " TERMINAL
	  " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.request_id = r.id) ORDER BY id" },
	{ "set-aside", "a response ferry-notify set aside (it cannot be published)",
	  "SELECT r.tenant, r.correlation_id, r.state FROM outbox o JOIN request r"
	  " ON r.id = o.request_id WHERE o.set_aside_at IS NOT NULL ORDER BY o.id" },
	{ "unknown-state", "not a state of ferry",
	  "SELECT tenant, correlation_id, state FROM request WHERE state NOT IN " LIVE
	  " AND state NOT IN " TERMINAL " ORDER BY id" },
};

/* Report each request row_checks[k] selects. */
static int check_rows(journal *j, size_t k, struct report *r)
{
	sqlite3_stmt *s;
	char detail[512];
	int rc = sqlite3_prepare_v2(j->db, row_checks[k].sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return jn_fail(j, rc, row_checks[k].check);
	while (!r->stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		snprintf(detail, sizeof detail, "%s: %s", (const char *)sqlite3_column_text(s, 2),
		    row_checks[k].what);
		report(r, row_checks[k].check, (const char *)sqlite3_column_text(s, 0),
		    (const char *)sqlite3_column_text(s, 1), detail);
	}
	if (!r->stop && rc != SQLITE_DONE)
		jn_fail(j, rc, row_checks[k].check);
	sqlite3_finalize(s);
	return r->stop || rc == SQLITE_DONE ? 0 : -1;
}

/* 1 if the process named by an owner tag ("fetch:1234") runs on this host */
static int owner_alive(const char *owner)
{
	const char *c = owner ? strrchr(owner, ':') : NULL;
	char *end;
	if (!c)
		return 0;
	errno = 0;
	long pid = strtol(c + 1, &end, 10);
	if (*end || end == c + 1 || pid <= 0 || errno)
		return 0;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

struct claim { int64_t id; char *tenant, *cid, *state, *owner; };

static void claims_free(struct claim *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].tenant);
		free(c[i].cid);
		free(c[i].state);
		free(c[i].owner);
	}
	free(c);
}

/* Busy requests whose owner is not running, as read in one snapshot. */
static int dead_claims(journal *j, struct claim **out, size_t *n)
{
	sqlite3_stmt *s = jn_stmt(j, ST_BUSY_OWNERS);
	size_t cap = 0;
	int rc;
	*out = NULL;
	*n = 0;
	if (!s)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (owner_alive((const char *)sqlite3_column_text(s, 4)))
			continue;
		if (*n == cap) {
			struct claim *p = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof *p);
			if (!p) {
				db_done(s);
				return jn_failf(j, 0, "%s", strerror(ENOMEM));
			}
			*out = p;
		}
		struct claim *c = &(*out)[(*n)++];
		c->id = sqlite3_column_int64(s, 0);
		c->tenant = db_col_dup(s, 1);
		c->cid = db_col_dup(s, 2);
		c->state = db_col_dup(s, 3);
		c->owner = db_col_dup(s, 4);
	}
	db_done(s);
	return rc == SQLITE_DONE ? 0 : jn_fail(j, rc, "dead-owner");
}

/* 1 if request id is still in state, claimed by owner (a new snapshot) */
static int still_claimed(journal *j, const struct claim *c)
{
	sqlite3_stmt *s = jn_stmt(j, ST_STILL_CLAIMED);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, c->id);
	db_bind_text(s, 2, c->state);
	db_bind_text(s, 3, c->owner);
	int rc = sqlite3_step(s), still = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	db_done(s);
	return rc == SQLITE_ROW ? still : jn_fail(j, rc, "dead-owner");
}

/* A claim seen dead is reported only if it still holds after kill(2): the
 * owner may have committed and exited in between. */
static int check_owners(journal *j, struct report *r)
{
	struct claim *c;
	size_t n;
	char detail[512];
	int rc = dead_claims(j, &c, &n);
	for (size_t i = 0; rc == 0 && !r->stop && i < n; i++) {
		int still = -1;
		if (c[i].tenant && c[i].cid && c[i].state)
			still = still_claimed(j, &c[i]);
		else
			jn_failf(j, 0, "%s", strerror(ENOMEM));
		if (still < 0)
			rc = -1;
		if (still <= 0)
			continue;
		snprintf(detail, sizeof detail, "%s: claimed by %s, which no longer runs", c[i].state,
		    c[i].owner ? c[i].owner : "nobody");
		report(r, "dead-owner", c[i].tenant, c[i].cid, detail);
	}
	claims_free(c, n);
	return rc;
}

int journal_check(journal *j, journal_problem_fn *fn, void *arg)
{
	struct report r = { .fn = fn, .arg = arg };
	if (check_pragma(j, "PRAGMA integrity_check", "integrity", &r) < 0)
		return -1;
	if (r.found)   /* the rest would read a database that cannot be trusted */
		return r.found;
	int rc = check_pragma(j, "PRAGMA foreign_key_check", "foreign-key", &r);
	for (size_t k = 0; rc == 0 && k < sizeof row_checks / sizeof *row_checks; k++)
		rc = check_rows(j, k, &r);
	if (rc == 0)
		rc = check_owners(j, &r);
	return rc < 0 ? -1 : r.found;
}

int journal_oldest_by_state(journal *j, journal_oldest_fn *fn, void *arg)
{
	sqlite3_stmt *s = jn_stmt(j, ST_OLDEST_BY_STATE);
	if (!s)
		return -1;
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		n++;
		if (fn(arg, (const char *)sqlite3_column_text(s, 0), sqlite3_column_int64(s, 1),
		    sqlite3_column_int64(s, 2)))
			break;
	}
	db_done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : jn_fail(j, rc, "oldest by state");
}
