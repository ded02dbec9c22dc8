/* journal: the SQLite journal shared by every stage (DESIGN §4).
 * Requests move by claims (one guarded UPDATE) and commits (state + event +
 * outbox in one transaction). Statements are prepared once per connection.
 * Inside a batch (group commit) a call is no transaction of its own: a
 * savepoint per call made SQLite copy every page it touched to a statement
 * journal (validate: -13% CPU, ingest: -20% without). A call that fails
 * after it changed something spoils the batch instead: journal_end rolls
 * it all back and reports the first error (the stages then exit and
 * restart, and nothing of the batch was acked or printed). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"
#include "journal.h"
#include "util.h"

enum {
	BUSY_TIMEOUT_MS = 10000,
};

static const struct jstage_info stages[JSTAGE_COUNT] = {
	[JSTAGE_INGEST]   = { "ingest",   NULL,       NULL,         "RECEIVED" },
	[JSTAGE_VALIDATE] = { "validate", "RECEIVED", "VALIDATING", "GRANTED" },
	[JSTAGE_ORDER]    = { "order",    "GRANTED",  "ORDERING",   "ORDERED" },
	[JSTAGE_FETCH]    = { "fetch",    "ORDERED",  "FETCHING",   "FETCHED" },
	[JSTAGE_PACK]     = { "pack",     "FETCHED",  "PACKING",    "PACKED" },
	[JSTAGE_S3PUT]    = { "s3-put",   "PACKED",   "UPLOADING",  "DONE" },
	[JSTAGE_SWEEP]    = { "sweep",    NULL,       NULL,         NULL },
};

static const char *const terminal_states[] = { "DENIED", "DONE", "ERROR" };

/* A request's state is terminal, or not: the conditions of the partial
 * indexes (a query uses one only if it repeats its condition verbatim). */
#define IS_TERMINAL "(state = 'DENIED' OR state = 'DONE' OR state = 'ERROR')"
#define NOT_TERMINAL "(state <> 'DENIED' AND state <> 'DONE' AND state <> 'ERROR')"

/* Schema migrations: migrations[v] takes a journal from version v to v+1. */
static const char *const migrations[JOURNAL_SCHEMA_VERSION] = {
	/* 0 -> 1 */
	"CREATE TABLE request ("
	" id INTEGER PRIMARY KEY,"
	" tenant TEXT NOT NULL,"
	" correlation_id TEXT NOT NULL,"
	" fingerprint TEXT NOT NULL,"
	" state TEXT NOT NULL,"
	" claimed_by TEXT,"
	" claimed_at INTEGER,"
	" error_type TEXT,"
	" received_at INTEGER NOT NULL,"
	" expires_at INTEGER,"
	" updated_at INTEGER NOT NULL,"
	" bytes_done INTEGER NOT NULL DEFAULT 0,"
	" bytes_total INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (tenant, correlation_id));"
	"CREATE INDEX request_state ON request(state, id);"
	"CREATE INDEX request_expiry ON request(expires_at) WHERE expires_at IS NOT NULL;"
	"CREATE TABLE event ("
	" id INTEGER PRIMARY KEY,"
	" request_id INTEGER NOT NULL REFERENCES request(id) ON DELETE CASCADE,"
	" stage TEXT NOT NULL,"
	" state TEXT NOT NULL,"
	" started_at INTEGER,"
	" at INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL DEFAULT 0,"
	" item TEXT);"
	"CREATE INDEX event_request ON event(request_id, state, id);"
	"CREATE TABLE outbox ("
	" id INTEGER PRIMARY KEY,"
	" request_id INTEGER NOT NULL REFERENCES request(id) ON DELETE CASCADE,"
	" body TEXT NOT NULL,"
	" headers TEXT,"
	" created_at INTEGER NOT NULL,"
	" sent_at INTEGER);"
	"CREATE INDEX outbox_unsent ON outbox(id) WHERE sent_at IS NULL;"
	"CREATE INDEX outbox_request ON outbox(request_id, id);",
	/* 1 -> 2: indexes for the sweeper (live requests only, so the history
	 * of ended ones is not scanned every second), list, prune and metrics */
	"DROP INDEX request_expiry;"
	"CREATE INDEX request_live_expiry ON request(expires_at)"
	" WHERE expires_at IS NOT NULL AND state NOT IN ('DENIED','DONE','ERROR');"
	"CREATE INDEX request_received ON request(received_at);"
	"CREATE INDEX request_ended ON request(updated_at) WHERE state IN ('DENIED','DONE','ERROR');"
	"CREATE INDEX event_stage ON event(stage, state, started_at, at, bytes);",
	/* 2 -> 3: orders placed with an external order service (rs-order),
	 * waiting for its answers while the request stays ORDERING */
	"CREATE TABLE IF NOT EXISTS order_wait ("
	" request_id INTEGER PRIMARY KEY REFERENCES request(id) ON DELETE CASCADE,"
	" backend TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" order_id INTEGER,"
	" suborders INTEGER,"
	" created_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL,"
	" retry_at INTEGER NOT NULL DEFAULT 0,"
	" cancelled_at INTEGER);",
	/* 3 -> 4: the partial indexes' conditions without IN lists: SQLite
	 * evaluates a list of three in a temporary table, four of them on
	 * every UPDATE of a request (a quarter of a claim's cost); the index of
	 * stage durations only over events with a duration (not ingest's) */
	"DROP INDEX request_live_expiry;"
	"CREATE INDEX request_live_expiry ON request(expires_at)"
	" WHERE expires_at IS NOT NULL AND " NOT_TERMINAL ";"
	"DROP INDEX request_ended;"
	"CREATE INDEX request_ended ON request(updated_at) WHERE " IS_TERMINAL ";"
	"DROP INDEX event_stage;"
	"CREATE INDEX event_stage ON event(stage, state, started_at, at, bytes)"
	" WHERE started_at IS NOT NULL;",
	/* 4 -> 5: responses ferry-notify set aside (they cannot be published
	 * as they are): when and why; they wait no more, nor block others */
	"ALTER TABLE outbox ADD COLUMN set_aside_at INTEGER;"
	"ALTER TABLE outbox ADD COLUMN set_aside_why TEXT;"
	"DROP INDEX outbox_unsent;"
	"CREATE INDEX outbox_unsent ON outbox(id) WHERE sent_at IS NULL AND set_aside_at IS NULL;"
	"CREATE INDEX outbox_set_aside ON outbox(id) WHERE set_aside_at IS NOT NULL;",
};

/* These must be spelled exactly as in the partial indexes above for SQLite
 * to use them; journal_test checks the lists against the stage table. */
#define TERMINAL "('DENIED','DONE','ERROR')"
#define BUSY "('VALIDATING','ORDERING','FETCHING','PACKING','UPLOADING')"
#define LIVE "('RECEIVED','VALIDATING','GRANTED','ORDERING','ORDERED','FETCHING'," \
	"'FETCHED','PACKING','PACKED','UPLOADING')"
#define REQUEST_COLS "id, tenant, correlation_id, fingerprint, state, claimed_by, error_type," \
	" received_at, coalesce(expires_at, 0), updated_at, coalesce(claimed_at, 0)," \
	" bytes_done, bytes_total"
#define OUTBOX_COLS "o.id, r.tenant, r.correlation_id, o.body, o.headers, o.created_at," \
	" coalesce(o.sent_at, 0), coalesce(o.set_aside_at, 0), o.set_aside_why"
/* an outbox row still to publish: the condition of the partial index */
#define UNSENT "sent_at IS NULL AND set_aside_at IS NULL"

enum st {
	ST_FIND, ST_INSERT_REQ, ST_INSERT_EVENT, ST_CLAIM, ST_FINISH,
	ST_PROGRESS, ST_TAKEBACK, ST_IDS_IN_STATE, ST_INPUT_BY_ID, ST_EXPIRED_IDS,
	ST_LATEST_BY_ID, ST_GET, ST_HISTORY, ST_INPUT_ITEM,
	ST_OUTBOX_PUT_ID, ST_OUTBOX_UNSENT, ST_RESEND,
	ST_OUTBOX_OF, ST_COUNT_STATE, ST_COUNT_ERROR, ST_TOTAL_REQUESTS, ST_RECEIVED_SINCE,
	ST_UNSENT_COUNT, ST_OLDEST_UNSENT, ST_DELIVERED, ST_PRUNE, ST_BUSY_OWNERS, ST_STILL_CLAIMED,
	ST_NEXT_EXPIRY,
	ST_WAIT_PUT, ST_WAIT_UPDATE, ST_WAIT_CANCELLED, ST_WAIT_FORGET, ST_WAIT_GET, ST_WAIT_ALL,
	ST_WAIT_REATTACH, ST_DATA_VERSION, ST_OUTBOX_SENT_RUN, ST_SET_ASIDE, ST_SET_ASIDE_COUNT,
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_COUNT
};

static const char *const sql[ST_COUNT] = {
	/* prepared once: sqlite3_exec would parse them at every transaction */
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_FIND] = "SELECT id, fingerprint, state, coalesce(claimed_at, 0) FROM request"
	    " WHERE tenant = ?1 AND correlation_id = ?2",
	[ST_INSERT_REQ] = "INSERT INTO request (tenant, correlation_id, fingerprint, state,"
	    " received_at, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_INSERT_EVENT] = "INSERT INTO event (request_id, stage, state, started_at, at, bytes, item)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_CLAIM] = "UPDATE request SET state = ?1, claimed_by = ?2, claimed_at = ?3, updated_at = ?3,"
	    " bytes_done = 0, bytes_total = 0"
	    " WHERE tenant = ?4 AND correlation_id = ?5 AND state = ?6",
	/* a commit looks its row up (ST_FIND), then changes it by id, in one
	 * transaction: UPDATE … RETURNING costs SQLite a temporary table */
	[ST_FINISH] = "UPDATE request SET state = ?1, claimed_by = NULL, updated_at = ?2,"
	    " error_type = coalesce(?3, error_type),"
	    " expires_at = CASE WHEN ?4 > 0 THEN ?4 ELSE expires_at END,"
	    " claimed_at = ?5 WHERE id = ?6",
	[ST_PROGRESS] = "UPDATE request SET bytes_done = ?1, bytes_total = ?2, updated_at = ?3"
	    " WHERE tenant = ?4 AND correlation_id = ?5",
	[ST_TAKEBACK] = "UPDATE request SET state = ?1, claimed_by = NULL, updated_at = ?2 WHERE state = ?3"
	    " AND id NOT IN (SELECT request_id FROM order_wait)",
	[ST_IDS_IN_STATE] = "SELECT id FROM request WHERE state = ?1 ORDER BY id",
	[ST_INPUT_BY_ID] = "SELECT r.tenant, r.correlation_id,"
	    " (SELECT item FROM event e WHERE e.request_id = r.id AND e.state = ?2"
	    "  ORDER BY e.id DESC LIMIT 1)"
	    " FROM request r WHERE r.id = ?1 AND r.state = ?2",
	[ST_EXPIRED_IDS] = "SELECT id FROM request INDEXED BY request_live_expiry"
	    " WHERE expires_at IS NOT NULL AND expires_at <= ?1"
	    " AND " NOT_TERMINAL " ORDER BY expires_at, id",
	[ST_LATEST_BY_ID] = "SELECT r.tenant, r.correlation_id,"
	    " (SELECT item FROM event e WHERE e.request_id = r.id AND e.item IS NOT NULL"
	    "  ORDER BY e.id DESC LIMIT 1)"
	    " FROM request r WHERE r.id = ?1 AND " NOT_TERMINAL,
	[ST_GET] = "SELECT " REQUEST_COLS " FROM request WHERE tenant = ?1 AND correlation_id = ?2",
	[ST_HISTORY] = "SELECT e.id, e.stage, e.state, e.item, coalesce(e.started_at, 0), e.at, e.bytes"
	    " FROM event e JOIN request r ON r.id = e.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2 ORDER BY e.id",
	[ST_INPUT_ITEM] = "SELECT e.item FROM event e JOIN request r ON r.id = e.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2 AND e.state = ?3 AND e.item IS NOT NULL"
	    " ORDER BY e.id DESC LIMIT 1",
	[ST_OUTBOX_PUT_ID] = "INSERT INTO outbox (request_id, body, headers, created_at)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[ST_OUTBOX_UNSENT] = "SELECT " OUTBOX_COLS " FROM outbox o JOIN request r ON r.id = o.request_id"
	    " WHERE o." UNSENT " AND o.id > ?1 ORDER BY o.id LIMIT ?2",
	[ST_RESEND] = "INSERT INTO outbox (request_id, body, headers, created_at)"
	    " SELECT o.request_id, o.body, o.headers, ?3 FROM outbox o JOIN request r"
	    " ON r.id = o.request_id WHERE r.tenant = ?1 AND r.correlation_id = ?2"
	    " ORDER BY o.id DESC LIMIT 1",
	[ST_OUTBOX_OF] = "SELECT " OUTBOX_COLS " FROM outbox o JOIN request r ON r.id = o.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2 ORDER BY o.id",
	[ST_COUNT_STATE] = "SELECT state, count(*) FROM request GROUP BY state ORDER BY state",
	[ST_COUNT_ERROR] = "SELECT error_type, count(*) FROM request WHERE error_type IS NOT NULL"
	    " GROUP BY error_type ORDER BY error_type",
	[ST_TOTAL_REQUESTS] = "SELECT count(*) FROM request",
	[ST_RECEIVED_SINCE] = "SELECT count(*) FROM request WHERE received_at >= ?1",
	[ST_UNSENT_COUNT] = "SELECT count(*) FROM outbox WHERE " UNSENT,
	[ST_SET_ASIDE_COUNT] = "SELECT count(*) FROM outbox WHERE set_aside_at IS NOT NULL",
	[ST_OLDEST_UNSENT] = "SELECT coalesce((SELECT created_at FROM outbox WHERE " UNSENT
	    " ORDER BY id LIMIT 1), 0)",
	/* every s3-put DONE event has its claim time: the partial index holds it */
	[ST_DELIVERED] = "SELECT coalesce(sum(bytes), 0) FROM event"
	    " WHERE stage = 's3-put' AND state = 'DONE' AND started_at IS NOT NULL",
	[ST_PRUNE] = "DELETE FROM request WHERE id IN (SELECT id FROM request INDEXED BY request_ended"
	    " WHERE " IS_TERMINAL " AND updated_at < ?1 AND NOT EXISTS"
	    " (SELECT 1 FROM outbox o WHERE o.request_id = request.id AND o." UNSENT ")"
	    " LIMIT ?2)",
	[ST_BUSY_OWNERS] = "SELECT id, tenant, correlation_id, state, claimed_by FROM request"
	    " WHERE state IN " BUSY " ORDER BY id",
	[ST_NEXT_EXPIRY] = "SELECT min(expires_at) FROM request INDEXED BY request_live_expiry"
	    " WHERE expires_at IS NOT NULL AND expires_at > ?1 AND " NOT_TERMINAL,
	[ST_WAIT_PUT] = "INSERT INTO order_wait (request_id, backend, status, created_at, updated_at)"
	    " SELECT id, ?3, ?4, ?5, ?5 FROM request WHERE tenant = ?1 AND correlation_id = ?2"
	    " AND state = ?6 ON CONFLICT (request_id) DO UPDATE SET backend = ?3, status = ?4,"
	    " order_id = NULL, suborders = NULL, created_at = ?5, updated_at = ?5, retry_at = 0,"
	    " cancelled_at = NULL",
	[ST_WAIT_UPDATE] = "UPDATE order_wait SET status = ?3, updated_at = ?4,"
	    " order_id = CASE WHEN ?5 > 0 THEN ?5 ELSE order_id END,"
	    " suborders = CASE WHEN ?6 > 0 THEN ?6 ELSE suborders END, retry_at = ?7"
	    " WHERE request_id = (SELECT id FROM request WHERE tenant = ?1 AND correlation_id = ?2)",
	[ST_WAIT_CANCELLED] = "UPDATE order_wait SET cancelled_at = ?3"
	    " WHERE request_id = (SELECT id FROM request WHERE tenant = ?1 AND correlation_id = ?2)",
	[ST_WAIT_FORGET] = "DELETE FROM order_wait"
	    " WHERE request_id = (SELECT id FROM request WHERE tenant = ?1 AND correlation_id = ?2)",
	[ST_WAIT_GET] = "SELECT r.tenant, r.correlation_id, r.state, w.backend, w.status,"
	    " coalesce(w.order_id, 0), coalesce(w.suborders, 0), w.retry_at, coalesce(r.expires_at, 0),"
	    " w.cancelled_at IS NOT NULL, w.request_id, w.updated_at"
	    " FROM order_wait w JOIN request r ON r.id = w.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2",
	[ST_WAIT_ALL] = "SELECT r.tenant, r.correlation_id, r.state, w.backend, w.status,"
	    " coalesce(w.order_id, 0), coalesce(w.suborders, 0), w.retry_at, coalesce(r.expires_at, 0),"
	    " w.cancelled_at IS NOT NULL, w.request_id, w.updated_at"
	    " FROM order_wait w JOIN request r ON r.id = w.request_id"
	    " WHERE w.request_id > ?1 ORDER BY w.request_id LIMIT 1",
	[ST_WAIT_REATTACH] = "UPDATE request SET claimed_by = ?1 WHERE state = ?2"
	    " AND id IN (SELECT request_id FROM order_wait)",
	[ST_DATA_VERSION] = "PRAGMA data_version",
	[ST_OUTBOX_SENT_RUN] = "UPDATE outbox SET sent_at = ?3 WHERE id BETWEEN ?1 AND ?2"
	    " AND sent_at IS NULL",
	[ST_SET_ASIDE] = "UPDATE outbox SET set_aside_at = ?2, set_aside_why = ?3"
	    " WHERE id = ?1 AND " UNSENT,
	[ST_STILL_CLAIMED] = "SELECT count(*) FROM request WHERE id = ?1 AND state = ?2"
	    " AND claimed_by IS ?3",
};

struct journal {
	sqlite3 *db;
	char *path;
	int in_batch;
	int batch_failed;         /* a call changed rows, then failed */
	char batch_err[480];      /* its error, reported by journal_end */
	int batch_temporary;
	int64_t tx_changes;       /* total changes when the current call began */
	/* The row the last lookup found in the current batch, for the commit
	 * that usually follows (validate: lookup, judge, commit), valid while
	 * nothing was written since (no other connection writes in a batch). */
	struct {
		int64_t changes;      /* total changes when found; -1 = none */
		int64_t id, claimed;
		char state[16], tenant[72], cid[1024];
	} memo;
	int temporary;
	char owner[64];
	char err[512];
	sqlite3_stmt *st[ST_COUNT];
};

const struct jstage_info *journal_stage(enum jstage s)
{
	return (unsigned)s < JSTAGE_COUNT ? &stages[s] : NULL;
}

int journal_stage_byname(const char *name)
{
	for (int i = 0; i < JSTAGE_COUNT; i++)
		if (strcmp(stages[i].name, name) == 0)
			return i;
	return -1;
}

int journal_state_terminal(const char *state)
{
	for (size_t i = 0; i < sizeof terminal_states / sizeof *terminal_states; i++)
		if (strcmp(state, terminal_states[i]) == 0)
			return 1;
	return 0;
}

int journal_state_known(const char *state)
{
	if (journal_state_terminal(state))
		return 1;
	for (int i = 0; i < JSTAGE_COUNT; i++) {
		const struct jstage_info *s = &stages[i];
		if ((s->input && !strcmp(state, s->input)) || (s->busy && !strcmp(state, s->busy)) ||
		    (s->output && !strcmp(state, s->output)))
			return 1;
	}
	return 0;
}


/* Record a failure of `what` with SQLite's reason; always returns -1. */
static int fail(journal *j, int rc, const char *what)
{
	const char *why = j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc);
	int sys = j->db ? sqlite3_system_errno(j->db) : 0;
	if (sys && (rc & 0xff) != SQLITE_CONSTRAINT)
		snprintf(j->err, sizeof j->err, "journal %s: %s: %s (%s)", j->path, what, why, strerror(sys));
	else
		snprintf(j->err, sizeof j->err, "journal %s: %s: %s", j->path, what, why);
	j->temporary = db_temporary(rc);
	return -1;
}

static int failf(journal *j, int temporary, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int failf(journal *j, int temporary, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(j->err, sizeof j->err, "journal %s: ", j->path);
	va_start(ap, fmt);
	vsnprintf(j->err + n, sizeof j->err - (size_t)n, fmt, ap);
	va_end(ap);
	j->temporary = temporary;
	return -1;
}

const char *journal_error(const journal *j) { return j->err; }
int journal_temporary(const journal *j) { return j->temporary; }

void journal_set_owner(journal *j, const char *owner)
{
	snprintf(j->owner, sizeof j->owner, "%s:%ld", owner, (long)getpid());
}

static int exec(journal *j, const char *s, const char *what)
{
	int rc = sqlite3_exec(j->db, s, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(j, rc, what);
}

/* The cached statement for q, reset and unbound, or NULL (error recorded). */
static sqlite3_stmt *stmt(journal *j, enum st q)
{
	int rc;
	sqlite3_stmt *s = db_cached(j->db, &j->st[q], sql[q], &rc);
	if (!s)
		fail(j, rc, "prepare");
	return s;
}




/* BEGIN IMMEDIATE or COMMIT: 0 or -1 (error recorded). */
static int tx_step(journal *j, enum st q, const char *what)
{
	sqlite3_stmt *s = stmt(j, q);
	if (!s)
		return -1;
	int rc = sqlite3_step(s);
	db_done(s);
	return rc == SQLITE_DONE ? 0 : fail(j, rc, what);
}

/* ROLLBACK, keeping the error that led to it (stmt() would record its
 * own on a failed prepare). */
static void rollback(journal *j)
{
	int rc;
	sqlite3_stmt *s = db_cached(j->db, &j->st[ST_ROLLBACK], sql[ST_ROLLBACK], &rc);
	if (s) {
		sqlite3_step(s);
		db_done(s);
	} else {
		sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	}
}

/* Run a statement that returns no rows; the number of changed rows or -1. */
static int run(journal *j, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	db_done(s);
	if (rc != SQLITE_DONE)
		return fail(j, rc, what);
	return sqlite3_changes(j->db);
}

/* Transactions: a call is its own transaction, or part of the batch (see
 * the top of the file). */
static int tx_begin(journal *j)
{
	if (j->in_batch) {
		if (j->batch_failed)
			return failf(j, j->batch_temporary, "batch spoiled by an earlier error");
		j->tx_changes = sqlite3_total_changes64(j->db);
		return 0;
	}
	return tx_step(j, ST_BEGIN, "begin");
}

static int tx_commit(journal *j)
{
	if (j->in_batch)
		return 0;
	if (tx_step(j, ST_COMMIT, "commit") < 0) {
		char saved[sizeof j->err];
		int temp = j->temporary;
		memcpy(saved, j->err, sizeof saved);
		rollback(j);
		memcpy(j->err, saved, sizeof saved);
		j->temporary = temp;
		return -1;
	}
	return 0;
}

/* After a failed call: its own transaction is rolled back; in a batch, if
 * it had changed rows, the batch is spoiled (j->err keeps the error). */
static void tx_rollback(journal *j)
{
	if (!j->in_batch) {
		rollback(j);
		return;
	}
	if (!j->batch_failed && sqlite3_total_changes64(j->db) != j->tx_changes) {
		j->batch_failed = 1;
		j->batch_temporary = j->temporary;
		util_strlcpy(j->batch_err, j->err, sizeof j->batch_err);
	}
}

static int pragma_int(journal *j, const char *q, int64_t *out)
{
	int rc = db_pragma_int(j->db, q, out);
	return rc == SQLITE_ROW ? 0 : fail(j, rc, q);
}

/* Bring the schema to JOURNAL_SCHEMA_VERSION in one write transaction. */
static int migrate(journal *j)
{
	int64_t v;
	if (pragma_int(j, "PRAGMA user_version", &v) < 0)
		return -1;
	if (v > JOURNAL_SCHEMA_VERSION)
		return failf(j, 0, "schema version %lld is newer than this ferry knows (%d); "
		    "use a newer ferry", (long long)v, JOURNAL_SCHEMA_VERSION);
	if (v == JOURNAL_SCHEMA_VERSION)
		return 0;
	if (exec(j, "BEGIN IMMEDIATE", "migrate") < 0)
		return -1;
	/* another process may have migrated while we waited for the lock */
	if (pragma_int(j, "PRAGMA user_version", &v) < 0)
		goto rollback;
	for (; v < JOURNAL_SCHEMA_VERSION; v++)
		if (exec(j, migrations[v], "migrate") < 0)
			goto rollback;
	char set[64];
	snprintf(set, sizeof set, "PRAGMA user_version = %d", JOURNAL_SCHEMA_VERSION);
	if (exec(j, set, "migrate") < 0 || exec(j, "COMMIT", "migrate") < 0)
		goto rollback;
	return 0;
rollback:
	sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* PRAGMA journal_mode = WAL; 1 if WAL is in force. Switching a new file to
 * WAL needs a lock SQLite will not wait for through the busy handler when
 * another process is creating the same journal, so wait here. */
static int set_wal(journal *j)
{
	for (int waited = 0;; waited += 20) {
		sqlite3_stmt *s;
		int rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(s);
			if (rc == SQLITE_ROW) {
				int wal = !strcmp((const char *)sqlite3_column_text(s, 0), "wal");
				sqlite3_finalize(s);
				return wal;
			}
			sqlite3_finalize(s);
		}
		if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			return fail(j, rc, "open");
		if (waited >= BUSY_TIMEOUT_MS)
			return fail(j, rc, "open");
		usleep(20000);
	}
}

static int configure(journal *j, enum journal_sync sync)
{
	db_busy_wait(j->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(j->db, 1);
	int wal = set_wal(j);
	if (wal < 0)
		return -1;
	if (!wal)
		return failf(j, 0, "cannot use WAL mode (is it on a network filesystem?)");
	if (exec(j, "PRAGMA foreign_keys = ON", "open") < 0)
		return -1;
	/* Every call in a group commit is a savepoint, whose undo pages SQLite
	 * writes to a statement journal: a temporary file, unless temp_store
	 * is MEMORY (validate: 22 pwrite calls a request, 1 with it; sys time
	 * of 50,000 requests 0.99 s -> 0.23 s). */
	if (exec(j, "PRAGMA temp_store = MEMORY", "open") < 0)
		return -1;
	return exec(j, sync == JOURNAL_SYNC_FULL ? "PRAGMA synchronous = FULL"
	    : "PRAGMA synchronous = NORMAL", "open");
}

int journal_open(const char *path, enum journal_sync sync, journal **out,
    char *err, size_t errlen, int *temporary)
{
	journal *j = calloc(1, sizeof *j);
	*out = NULL;
	if (temporary)
		*temporary = 0;
	if (!j || !(j->path = strdup(path))) {
		free(j);
		snprintf(err, errlen, "journal %s: %s", path, strerror(ENOMEM));
		return -1;
	}
	snprintf(j->owner, sizeof j->owner, "pid:%ld", (long)getpid());
	db_init();
	int rc = sqlite3_open_v2(path, &j->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		fail(j, rc, "unable to open");
	if (rc != SQLITE_OK || configure(j, sync) < 0 || migrate(j) < 0) {
		util_strlcpy(err, j->err, errlen);
		if (temporary)
			*temporary = j->temporary;
		journal_close(j);
		return -1;
	}
	*out = j;
	return 0;
}

void journal_close(journal *j)
{
	if (!j)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(j->st[i]);
	sqlite3_close(j->db);
	free(j->path);
	free(j);
}

int journal_begin(journal *j)
{
	if (j->in_batch)
		return failf(j, 0, "begin: a batch is already open");
	if (tx_step(j, ST_BEGIN, "begin batch") < 0)
		return -1;
	j->in_batch = 1;
	j->batch_failed = 0;
	j->memo.changes = -1;
	return 0;
}

int journal_end(journal *j)
{
	if (!j->in_batch)
		return failf(j, 0, "end: no batch open");
	j->in_batch = 0;
	if (j->batch_failed) {
		rollback(j);
		snprintf(j->err, sizeof j->err, "%s (batch rolled back)", j->batch_err);
		j->temporary = j->batch_temporary;
		return -1;
	}
	if (tx_step(j, ST_COMMIT, "commit batch") < 0) {
		char saved[sizeof j->err];
		memcpy(saved, j->err, sizeof saved);
		rollback(j);
		memcpy(j->err, saved, sizeof saved);
		return -1;
	}
	return 0;
}

int journal_abort(journal *j)
{
	if (!j->in_batch)
		return 0;
	j->in_batch = 0;
	j->batch_failed = 0;
	return tx_step(j, ST_ROLLBACK, "abort batch");
}

static int insert_event(journal *j, int64_t req, const char *stage, const char *state,
    int64_t started, int64_t at, int64_t bytes, const char *item)
{
	sqlite3_stmt *s = stmt(j, ST_INSERT_EVENT);
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
	return run(j, s, "insert event") < 0 ? -1 : 0;
}

/* The row of (tenant, cid), by ST_FIND: 1 and its id, state and claim
 * time (0 if none) and, with fp, whether its fingerprint is fp; 0 if there
 * is none; -1. */
static int row_of(journal *j, const char *tenant, const char *cid, int64_t *id,
    char state[16], int64_t *claimed, const char *fp, int *same)
{
	sqlite3_stmt *s = stmt(j, ST_FIND);
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
		return fail(j, rc, "find request");
	return rc == SQLITE_ROW;
}

/* 1 and fingerprint-match if (tenant, cid) exists, 0 if not, -1. In a
 * batch, what it found is kept for the commit that usually follows. */
static int find(journal *j, const char *tenant, const char *cid, const char *fp, int *same)
{
	int64_t id, claimed;
	char state[16];
	int found = row_of(j, tenant, cid, &id, state, &claimed, fp, same);
	j->memo.changes = -1;
	if (found == 1 && j->in_batch && strlen(tenant) < sizeof j->memo.tenant &&
	    strlen(cid) < sizeof j->memo.cid) {
		j->memo.changes = sqlite3_total_changes64(j->db);
		j->memo.id = id;
		j->memo.claimed = claimed;
		memcpy(j->memo.state, state, sizeof j->memo.state);
		strcpy(j->memo.tenant, tenant);
		strcpy(j->memo.cid, cid);
	}
	return found;
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

static int insert_request(journal *j, const struct jregister *r, int64_t now)
{
	sqlite3_stmt *s = stmt(j, ST_INSERT_REQ);
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
	if (run(j, s, "insert request") < 0)
		return -1;
	return insert_event(j, sqlite3_last_insert_rowid(j->db), stages[r->stage].name,
	    r->state, 0, now, 0, r->item);
}

int journal_lookup(journal *j, const char *tenant, const char *cid, const char *fingerprint,
    enum journal_reg *out)
{
	int same = 0, found = find(j, tenant, cid, fingerprint, &same);
	if (found == 1)
		*out = same ? JREG_SAME : JREG_CONFLICT;
	return found;
}

int journal_register(journal *j, const struct jregister *r, enum journal_reg *out)
{
	if (!r->tenant || !r->cid || !r->fingerprint || !r->state || (unsigned)r->stage >= JSTAGE_COUNT)
		return failf(j, 0, "register: tenant, correlationId, fingerprint and state are required");
	if (!journal_state_known(r->state))
		return failf(j, 0, "register: unknown state %s", r->state);
	if (tx_begin(j) < 0)
		return -1;
	/* absent is only true inside the batch the caller looked it up in */
	int same = 0, found = j->in_batch && r->absent ? 0 :
	    find(j, r->tenant, r->cid, r->fingerprint, &same);
	if (found < 0)
		goto rollback;
	if (found) {
		*out = same ? JREG_SAME : JREG_CONFLICT;
	} else {
		*out = JREG_NEW;
		if (insert_request(j, r, util_now_ms()) < 0)
			goto rollback;
	}
	return tx_commit(j);
rollback:
	tx_rollback(j);
	return -1;
}

int journal_claim(journal *j, enum jstage st, const char *tenant, const char *cid)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->input)
		return failf(j, 0, "claim: stage %s takes no input", si ? si->name : "?");
	sqlite3_stmt *s = stmt(j, ST_CLAIM);
	if (!s)
		return -1;
	db_bind_text(s, 1, si->busy);
	db_bind_text(s, 2, j->owner);
	sqlite3_bind_int64(s, 3, util_now_ms());
	db_bind_text(s, 4, tenant);
	db_bind_text(s, 5, cid);
	db_bind_text(s, 6, si->input);
	int n = run(j, s, "claim");
	return n < 0 ? -1 : n > 0;
}

static int state_busy(const char *state)
{
	for (int i = 0; i < JSTAGE_COUNT; i++)
		if (stages[i].busy && strcmp(state, stages[i].busy) == 0)
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
	if (any ? journal_state_terminal(state) : strcmp(state, stages[c->stage].busy) != 0 &&
	    !(c->claim && strcmp(state, stages[c->stage].input) == 0))
		return 0;
	if (!busy)
		*claimed = c->claim ? now : 0;
	sqlite3_stmt *s = stmt(j, ST_FINISH);
	if (!s)
		return -1;
	db_bind_text(s, 1, c->state);
	sqlite3_bind_int64(s, 2, now);
	db_bind_text(s, 3, c->error_type);
	sqlite3_bind_int64(s, 4, c->expires_ms);
	if (*claimed)
		sqlite3_bind_int64(s, 5, *claimed);
	sqlite3_bind_int64(s, 6, *id);
	return run(j, s, "commit state") < 0 ? -1 : 1;
}

/* The outbox row of a request whose id the caller holds. */
static int outbox_insert_id(journal *j, int64_t id, const char *body, const char *headers,
    int64_t now)
{
	sqlite3_stmt *s = stmt(j, ST_OUTBOX_PUT_ID);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	db_bind_text(s, 2, body);
	db_bind_text(s, 3, headers);
	sqlite3_bind_int64(s, 4, now);
	return run(j, s, "insert outbox") < 0 ? -1 : 0;
}

static int outbox_insert(journal *j, const char *tenant, const char *cid,
    const char *body, const char *headers, int64_t now)
{
	int64_t id, claimed;
	char state[16];
	int found = row_of(j, tenant, cid, &id, state, &claimed, NULL, NULL);
	if (found == 0)
		return failf(j, 0, "outbox: no request %s/%s", tenant, cid);
	return found < 0 ? -1 : outbox_insert_id(j, id, body, headers, now);
}

int journal_commit(journal *j, const struct jcommit *c)
{
	if ((unsigned)c->stage >= JSTAGE_COUNT || c->stage == JSTAGE_INGEST || !c->state ||
	    !journal_state_known(c->state))
		return failf(j, 0, "commit: bad stage or state %s", c->state ? c->state : "(none)");
	int64_t now = util_now_ms(), id = 0, claimed = 0;
	if (tx_begin(j) < 0)
		return -1;
	int found = finish(j, c, now, &id, &claimed);
	if (found <= 0)
		goto rollback;
	if (insert_event(j, id, stages[c->stage].name, c->state, claimed, now, c->bytes, c->item) < 0)
		goto rollback;
	if (c->response && outbox_insert_id(j, id, c->response, c->headers, now) < 0)
		goto rollback;
	return tx_commit(j) < 0 ? -1 : 1;
rollback:
	tx_rollback(j);
	return found == 0 ? 0 : -1;
}

int journal_progress(journal *j, const char *tenant, const char *cid, int64_t doneb, int64_t total)
{
	sqlite3_stmt *s = stmt(j, ST_PROGRESS);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, doneb);
	sqlite3_bind_int64(s, 2, total);
	sqlite3_bind_int64(s, 3, util_now_ms());
	db_bind_text(s, 4, tenant);
	db_bind_text(s, 5, cid);
	return run(j, s, "progress") < 0 ? -1 : 0;
}

int journal_takeback(journal *j, enum jstage st)
{
	const struct jstage_info *si = journal_stage(st);
	if (!si || !si->busy)
		return 0;
	sqlite3_stmt *s = stmt(j, ST_TAKEBACK);
	if (!s)
		return -1;
	db_bind_text(s, 1, si->input);
	sqlite3_bind_int64(s, 2, util_now_ms());
	db_bind_text(s, 3, si->busy);
	return run(j, s, "take back");
}

/* ids selected by statement q (bound with one text or int64 argument) */
static int collect_ids(journal *j, enum st q, const char *text, int64_t num,
    int64_t **ids, size_t *n)
{
	sqlite3_stmt *s = stmt(j, q);
	size_t cap = 0;
	*ids = NULL;
	*n = 0;
	if (!s)
		return -1;
	if (text)
		db_bind_text(s, 1, text);
	else
		sqlite3_bind_int64(s, 1, num);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			int64_t *p = realloc(*ids, cap * sizeof *p);
			if (!p) {
				db_done(s);
				return failf(j, 0, "%s", strerror(ENOMEM));
			}
			*ids = p;
		}
		(*ids)[(*n)++] = sqlite3_column_int64(s, 0);
	}
	db_done(s);
	return rc == SQLITE_DONE ? 0 : fail(j, rc, "select");
}

/* For each id, load (tenant, cid, item) with q (?1 = id, ?2 = state) and
 * call fn; rows that no longer match are skipped. */
static int walk(journal *j, enum st q, const char *state, const int64_t *ids, size_t n,
    journal_item_fn *fn, void *arg)
{
	int visited = 0;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = stmt(j, q);
		if (!s)
			return -1;
		sqlite3_bind_int64(s, 1, ids[i]);
		if (state)
			db_bind_text(s, 2, state);
		int rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			db_done(s);
			if (rc != SQLITE_DONE)
				return fail(j, rc, "load item");
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

/* The column as a string owned by the statement (until its next step). The
 * cast is for struct jrequest, whose strings are malloc'd in journal_get;
 * callers of journal_list get them through a const struct. */
static char *col_borrow(sqlite3_stmt *s, int i)
{
	return (char *)sqlite3_column_text(s, i);
}

/* A row of REQUEST_COLS into r, strings copied or borrowed by str. */
static void request_row(sqlite3_stmt *s, struct jrequest *r, char *(*str)(sqlite3_stmt *, int))
{
	r->id = sqlite3_column_int64(s, 0);
	r->tenant = str(s, 1);
	r->cid = str(s, 2);
	r->fingerprint = str(s, 3);
	r->state = str(s, 4);
	r->claimed_by = str(s, 5);
	r->error_type = str(s, 6);
	r->received_ms = sqlite3_column_int64(s, 7);
	r->expires_ms = sqlite3_column_int64(s, 8);
	r->updated_ms = sqlite3_column_int64(s, 9);
	r->claimed_ms = sqlite3_column_int64(s, 10);
	r->bytes_done = sqlite3_column_int64(s, 11);
	r->bytes_total = sqlite3_column_int64(s, 12);
}

int journal_next_expiry(journal *j, int64_t after_ms, int64_t *ms)
{
	sqlite3_stmt *s = stmt(j, ST_NEXT_EXPIRY);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, after_ms);
	int rc = sqlite3_step(s), found = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		*ms = sqlite3_column_int64(s, 0);
		found = 1;
	}
	db_done(s);
	return rc == SQLITE_ROW ? found : fail(j, rc, "next expiry");
}

int journal_get(journal *j, const char *tenant, const char *cid, struct jrequest *r)
{
	memset(r, 0, sizeof *r);
	sqlite3_stmt *s = stmt(j, ST_GET);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		request_row(s, r, db_col_dup);
	db_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail(j, rc, "get request");
	if (rc == SQLITE_ROW && (!r->tenant || !r->cid || !r->state)) {
		journal_request_clear(r);
		return failf(j, 0, "%s", strerror(ENOMEM));
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
	memset(r, 0, sizeof *r);
}

int journal_history(journal *j, const char *tenant, const char *cid,
    journal_event_fn *fn, void *arg)
{
	sqlite3_stmt *s = stmt(j, ST_HISTORY);
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
		};
		count++;
		if (fn(arg, &e)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	db_done(s);
	return rc == SQLITE_DONE ? count : fail(j, rc, "history");
}

char *journal_input_item(journal *j, enum jstage st, const char *tenant, const char *cid)
{
	const struct jstage_info *si = journal_stage(st);
	j->err[0] = '\0';
	if (!si || !si->input) {
		failf(j, 0, "stage %s has no input", si ? si->name : "?");
		return NULL;
	}
	sqlite3_stmt *s = stmt(j, ST_INPUT_ITEM);
	if (!s)
		return NULL;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	db_bind_text(s, 3, si->input);
	int rc = sqlite3_step(s);
	char *item = rc == SQLITE_ROW ? db_col_dup(s, 0) : NULL;
	db_done(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		fail(j, rc, "input item");
	return item;
}

int journal_outbox_put(journal *j, const char *tenant, const char *cid,
    const char *body, const char *headers)
{
	if (tx_begin(j) < 0)
		return -1;
	if (outbox_insert(j, tenant, cid, body, headers, util_now_ms()) < 0) {
		tx_rollback(j);
		return -1;
	}
	return tx_commit(j);
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
	return rc == SQLITE_DONE ? count : fail(j, rc, "outbox");
}

int journal_outbox_unsent(journal *j, int64_t after_id, int limit,
    journal_outbox_fn *fn, void *arg)
{
	sqlite3_stmt *s = stmt(j, ST_OUTBOX_UNSENT);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int(s, 2, limit);
	return outbox_rows(j, s, fn, arg);
}

int journal_outbox_of(journal *j, const char *tenant, const char *cid,
    journal_outbox_fn *fn, void *arg)
{
	sqlite3_stmt *s = stmt(j, ST_OUTBOX_OF);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	return outbox_rows(j, s, fn, arg);
}

int journal_outbox_set_aside(journal *j, int64_t id, const char *why)
{
	if (tx_begin(j) < 0)
		return -1;
	sqlite3_stmt *s = stmt(j, ST_SET_ASIDE);
	if (!s) {
		tx_rollback(j);
		return -1;
	}
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, util_now_ms());
	db_bind_text(s, 3, why);
	if (run(j, s, "set aside") < 0) {
		tx_rollback(j);
		return -1;
	}
	return tx_commit(j);
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
	if (tx_begin(j) < 0)
		return -1;
	for (size_t i = 0, k; i < n; i = k) {
		for (k = i + 1; k < n && ids[k] <= ids[k - 1] + 1; k++)
			;
		sqlite3_stmt *s = stmt(j, ST_OUTBOX_SENT_RUN);
		if (!s)
			goto rollback;
		sqlite3_bind_int64(s, 1, ids[i]);
		sqlite3_bind_int64(s, 2, ids[k - 1]);
		sqlite3_bind_int64(s, 3, now);
		if (run(j, s, "mark sent") < 0)
			goto rollback;
	}
	return tx_commit(j);
rollback:
	tx_rollback(j);
	return -1;
}

int journal_resend_latest(journal *j, const char *tenant, const char *cid)
{
	sqlite3_stmt *s = stmt(j, ST_RESEND);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	sqlite3_bind_int64(s, 3, util_now_ms());
	int n = run(j, s, "resend");
	return n < 0 ? -1 : n > 0;
}

int64_t journal_data_version(journal *j)
{
	sqlite3_stmt *s = stmt(j, ST_DATA_VERSION);
	if (!s)
		return -1;
	int rc = sqlite3_step(s);
	int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	db_done(s);
	if (rc != SQLITE_ROW)
		return fail(j, rc, "data version");
	return v;
}

/* ---- Inspection and upkeep (ferry-journal) ---- */

int journal_state_stage(const char *state, int *busy)
{
	for (int i = 0; i < JSTAGE_COUNT; i++) {
		const struct jstage_info *s = &stages[i];
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
		return fail(j, rc, "list");
	bind_named(s, ":tenant", f->tenant, 0);
	bind_named(s, ":state", f->state, 0);
	bind_named(s, ":since", NULL, f->since_ms);
	bind_named(s, ":limit", NULL, f->limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct jrequest r;
		request_row(s, &r, col_borrow);
		count++;
		if (fn(arg, &r)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		fail(j, rc, "list");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? count : -1;
}

int journal_count_by(journal *j, enum jcount by, journal_count_fn *fn, void *arg)
{
	sqlite3_stmt *s = stmt(j, by == JCOUNT_STATE ? ST_COUNT_STATE : ST_COUNT_ERROR);
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
	return rc == SQLITE_DONE ? count : fail(j, rc, "count");
}

/* One integer from statement q, bound with ?1 = arg when it takes one. */
static int scalar(journal *j, enum st q, int64_t arg, int64_t *out)
{
	sqlite3_stmt *s = stmt(j, q);
	if (!s)
		return -1;
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, arg);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	db_done(s);
	return rc == SQLITE_ROW ? 0 : fail(j, rc, "totals");
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
};

int journal_totals(journal *j, int64_t now_ms, struct jtotals *t)
{
	memset(t, 0, sizeof *t);
	/* a deferred transaction: one snapshot, no write lock */
	if (!j->in_batch && exec(j, "BEGIN", "totals") < 0)
		return -1;
	int rc = pragma_int(j, "PRAGMA user_version", &t->schema_version);
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
		return failf(j, 0, "durations: at most %d bounds", JOURNAL_MAX_BOUNDS);
	durations_sql(n, q, sizeof q);
	int rc = sqlite3_prepare_v2(j->db, q, -1, &s, NULL), count = 0;
	if (rc != SQLITE_OK)
		return fail(j, rc, "durations");
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
		fail(j, rc, "durations");
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? count : -1;
}

int64_t journal_prune(journal *j, int64_t before_ms, int batch)
{
	int64_t total = 0;
	if (batch < 1)
		return failf(j, 0, "prune: the batch must hold at least one request");
	for (;;) {
		sqlite3_stmt *s = stmt(j, ST_PRUNE);
		if (!s || tx_begin(j) < 0)
			return -1;
		sqlite3_bind_int64(s, 1, before_ms);
		sqlite3_bind_int(s, 2, batch);
		int n = run(j, s, "prune");
		if (n < 0) {
			tx_rollback(j);
			return -1;
		}
		if (tx_commit(j) < 0)
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
		return fail(j, rc, check);
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
		fail(j, rc, check);
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
		return fail(j, rc, row_checks[k].check);
	while (!r->stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		snprintf(detail, sizeof detail, "%s: %s", (const char *)sqlite3_column_text(s, 2),
		    row_checks[k].what);
		report(r, row_checks[k].check, (const char *)sqlite3_column_text(s, 0),
		    (const char *)sqlite3_column_text(s, 1), detail);
	}
	if (!r->stop && rc != SQLITE_DONE)
		fail(j, rc, row_checks[k].check);
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
	sqlite3_stmt *s = stmt(j, ST_BUSY_OWNERS);
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
				return failf(j, 0, "%s", strerror(ENOMEM));
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
	return rc == SQLITE_DONE ? 0 : fail(j, rc, "dead-owner");
}

/* 1 if request id is still in state, claimed by owner (a new snapshot) */
static int still_claimed(journal *j, const struct claim *c)
{
	sqlite3_stmt *s = stmt(j, ST_STILL_CLAIMED);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, c->id);
	db_bind_text(s, 2, c->state);
	db_bind_text(s, 3, c->owner);
	int rc = sqlite3_step(s), still = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
	db_done(s);
	return rc == SQLITE_ROW ? still : fail(j, rc, "dead-owner");
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
			failf(j, 0, "%s", strerror(ENOMEM));
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

/* ---- orders waiting on an external order service ---- */

int journal_order_wait(journal *j, const char *tenant, const char *cid, const char *backend,
    const char *status)
{
	sqlite3_stmt *s = stmt(j, ST_WAIT_PUT);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	db_bind_text(s, 3, backend);
	db_bind_text(s, 4, status);
	sqlite3_bind_int64(s, 5, util_now_ms());
	db_bind_text(s, 6, stages[JSTAGE_ORDER].busy);
	int n = run(j, s, "order wait");
	return n < 0 ? -1 : n > 0;
}

int journal_order_update(journal *j, const struct jorder *o)
{
	sqlite3_stmt *s = stmt(j, ST_WAIT_UPDATE);
	if (!s)
		return -1;
	db_bind_text(s, 1, o->tenant);
	db_bind_text(s, 2, o->cid);
	db_bind_text(s, 3, o->status);
	sqlite3_bind_int64(s, 4, util_now_ms());
	sqlite3_bind_int64(s, 5, o->order_id);
	sqlite3_bind_int64(s, 6, o->suborders);
	sqlite3_bind_int64(s, 7, o->retry_at);
	int n = run(j, s, "order update");
	return n < 0 ? -1 : n > 0;
}

/* statement q on (tenant, cid) [, now]: changed rows > 0, or -1 */
static int order_touch(journal *j, enum st q, const char *tenant, const char *cid, int now)
{
	sqlite3_stmt *s = stmt(j, q);
	if (!s)
		return -1;
	db_bind_text(s, 1, tenant);
	db_bind_text(s, 2, cid);
	if (now)
		sqlite3_bind_int64(s, 3, util_now_ms());
	int n = run(j, s, "order wait");
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
	o->tenant = col_borrow(s, 0);
	o->cid = col_borrow(s, 1);
	o->state = col_borrow(s, 2);
	o->backend = col_borrow(s, 3);
	o->status = col_borrow(s, 4);
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
	sqlite3_stmt *s = stmt(j, ST_WAIT_GET);
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
		return fail(j, rc, "order get");
	return rc == SQLITE_ROW;
}

/* one row at a time, the statement reset before fn (so fn may write), going
 * on after the row's id whatever fn did */
int journal_order_all(journal *j, journal_order_fn *fn, void *arg)
{
	int64_t after = 0;
	int n = 0;
	for (;;) {
		sqlite3_stmt *s = stmt(j, ST_WAIT_ALL);
		struct jorder o;
		if (!s)
			return -1;
		sqlite3_bind_int64(s, 1, after);
		int rc = sqlite3_step(s);
		if (rc != SQLITE_ROW) {
			db_done(s);
			return rc == SQLITE_DONE ? n : fail(j, rc, "order list");
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
			return failf(j, 0, "%s", strerror(ENOMEM));
		if (stop)
			return n;
	}
}

int journal_order_reattach(journal *j)
{
	sqlite3_stmt *s = stmt(j, ST_WAIT_REATTACH);
	if (!s)
		return -1;
	db_bind_text(s, 1, j->owner);
	db_bind_text(s, 2, stages[JSTAGE_ORDER].busy);
	return run(j, s, "order reattach");
}
