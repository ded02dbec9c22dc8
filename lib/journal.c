/* journal: the core of the SQLite journal shared by every stage (DESIGN §4):
 * open, configure and migrate, the stage table, errors, the prepared
 * statements, transactions and batches. The stage protocol is in
 * journal-stage.c, reports and upkeep in journal-report.c, order-service
 * waits in journal-order.c; what they share is in journal-int.h.
 * Requests move by claims (one guarded UPDATE) and commits (state + event +
 * outbox in one transaction). Statements are prepared once per connection.
 * Inside a batch (group commit) a call is no transaction of its own: a
 * savepoint per call made SQLite copy every page it touched to a statement
 * journal (validate: -13% CPU, ingest: -20% without). A call that fails
 * after it changed something spoils the batch instead: journal_end rolls
 * it all back and reports the first error (the stages then exit and
 * restart, and nothing of the batch was acked or printed). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"
#include "journal-int.h"
#include "util.h"

enum {
	BUSY_TIMEOUT_MS = 10000,
};

const struct jstage_info jn_stages[JSTAGE_COUNT] = {
	[JSTAGE_INGEST]   = { "ingest",   NULL,       NULL,         "RECEIVED" },
	[JSTAGE_VALIDATE] = { "validate", "RECEIVED", "VALIDATING", "GRANTED" },
	[JSTAGE_ORDER]    = { "order",    "GRANTED",  "ORDERING",   "ORDERED" },
	[JSTAGE_FETCH]    = { "fetch",    "ORDERED",  "FETCHING",   "FETCHED" },
	[JSTAGE_PACK]     = { "pack",     "FETCHED",  "PACKING",    "PACKED" },
	[JSTAGE_S3PUT]    = { "s3-put",   "PACKED",   "UPLOADING",  "DONE" },
	[JSTAGE_SWEEP]    = { "sweep",    NULL,       NULL,         NULL },
};

static const char *const terminal_states[] = { "DENIED", "DONE", "ERROR" };

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
	/* 5 -> 6: the journal is the queue between stages: a request set aside
	 * after a temporary failure waits in its input state until
	 * next_attempt_at; workers take the oldest due request of each tenant
	 * in turn (request_queue); counters that outlive pruning */
	"ALTER TABLE request ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE request ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE request ADD COLUMN last_error TEXT;"
	"CREATE INDEX request_queue ON request(state, tenant, id, next_attempt_at);"
	"CREATE TABLE counter (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;",
	/* 6 -> 7: resumable uploads: a multipart upload's id and the parts S3
	 * acknowledged, until it is completed or aborted (journal-upload.c) */
	"CREATE TABLE upload ("
	" request_id INTEGER PRIMARY KEY REFERENCES request(id) ON DELETE CASCADE,"
	" upload_id TEXT NOT NULL,"
	" bucket TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" part_size INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL);"
	"CREATE TABLE upload_part ("
	" request_id INTEGER NOT NULL REFERENCES upload(request_id) ON DELETE CASCADE,"
	" num INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" md5 TEXT NOT NULL,"
	" etag TEXT NOT NULL,"
	" PRIMARY KEY (request_id, num)) WITHOUT ROWID;",
	/* 7 -> 8: a correlationId sent again after its request ended (DENIED,
	 * ERROR, or DONE with another body) is a new submission of the same
	 * row: the row's number of it, and each event's, so the history keeps
	 * every submission and a replay takes the current one's items */
	("ALTER TABLE request ADD COLUMN submission INTEGER NOT NULL DEFAULT 1;"
	 "ALTER TABLE event ADD COLUMN submission INTEGER NOT NULL DEFAULT 1;"),
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
	[ST_INSERT_EVENT] = "INSERT INTO event (request_id, stage, state, started_at, at, bytes, item,"
	    " submission) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
	    " (SELECT submission FROM request WHERE id = ?1))",
	/* a new submission of an ended request: the row starts again (the
	 * parameters of ST_INSERT_REQ) */
	[ST_RENEW] = "UPDATE request SET submission = submission + 1, fingerprint = ?3, state = ?4,"
	    " claimed_by = NULL, claimed_at = NULL, error_type = NULL, received_at = ?5,"
	    " expires_at = ?6, updated_at = ?7, bytes_done = 0, bytes_total = 0, attempts = 0,"
	    " next_attempt_at = 0, last_error = NULL WHERE tenant = ?1 AND correlation_id = ?2",
	[ST_RENEW_ORDER] = "DELETE FROM order_wait WHERE request_id = ?1",
	[ST_CLAIM] = "UPDATE request SET state = ?1, claimed_by = ?2, claimed_at = ?3, updated_at = ?3,"
	    " bytes_done = 0, bytes_total = 0"
	    " WHERE tenant = ?4 AND correlation_id = ?5 AND state = ?6",
	/* a commit looks its row up (ST_FIND), then changes it by id, in one
	 * transaction: UPDATE … RETURNING costs SQLite a temporary table */
	[ST_FINISH] = "UPDATE request SET state = ?1, claimed_by = NULL, updated_at = ?2,"
	    /* ?7: the new state is terminal (an IN list here would cost SQLite
	     * a temporary table at every commit) */
	    " attempts = CASE WHEN ?7 THEN attempts ELSE 0 END,"
	    " last_error = CASE WHEN ?7 THEN last_error ELSE NULL END,"
	    " next_attempt_at = 0,"
	    " error_type = coalesce(?3, error_type),"
	    " expires_at = CASE WHEN ?4 > 0 THEN ?4 ELSE expires_at END,"
	    " claimed_at = ?5 WHERE id = ?6",
	[ST_PROGRESS] = "UPDATE request SET bytes_done = ?1, bytes_total = ?2, updated_at = ?3"
	    " WHERE tenant = ?4 AND correlation_id = ?5",
	[ST_TAKEBACK] = "UPDATE request SET state = ?1, claimed_by = NULL, updated_at = ?2 WHERE state = ?3"
	    " AND id NOT IN (SELECT request_id FROM order_wait)",
	[ST_IDS_IN_STATE] = "SELECT id FROM request WHERE state = ?1 ORDER BY id",
	/* set aside in an input state by a batch stage (attempts > 0 there:
	 * every commit that moves a request on sets attempts to 0) */
	[ST_DEFER_INPUT] = "UPDATE request SET updated_at = ?2, attempts = attempts + 1,"
	    " last_error = ?3, next_attempt_at = ?4"
	    " WHERE tenant = ?5 AND correlation_id = ?6 AND state = ?1",
	[ST_ASIDE_DUE_IDS] = "SELECT id FROM request WHERE state = ?1 AND attempts > 0"
	    " AND next_attempt_at <= ?2 ORDER BY id",
	[ST_ASIDE_NEXT] = "SELECT count(*), min(next_attempt_at) FROM request"
	    " WHERE state = ?1 AND attempts > 0",
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
	[ST_HISTORY] = "SELECT e.id, e.stage, e.state, e.item, coalesce(e.started_at, 0), e.at, e.bytes,"
	    " e.submission"
	    " FROM event e JOIN request r ON r.id = e.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2 ORDER BY e.id",
	[ST_INPUT_ITEM] = "SELECT e.item FROM event e JOIN request r ON r.id = e.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2 AND e.state = ?3 AND e.item IS NOT NULL"
	    " AND e.submission = r.submission ORDER BY e.id DESC LIMIT 1",
	[ST_OUTBOX_PUT_ID] = "INSERT INTO outbox (request_id, body, headers, created_at)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[ST_OUTBOX_UNSENT] = "SELECT " OUTBOX_COLS " FROM outbox o JOIN request r ON r.id = o.request_id"
	    " WHERE o." UNSENT " AND o.id > ?1 ORDER BY o.id LIMIT ?2",
	[ST_OUTBOX_UNSENT_TENANT] = "SELECT " OUTBOX_COLS " FROM outbox o JOIN request r"
	    " ON r.id = o.request_id WHERE o." UNSENT " AND o.id > ?1 AND r.tenant = ?3"
	    " ORDER BY o.id LIMIT ?2",
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
	[ST_NEXT_TENANT] = "SELECT tenant FROM request INDEXED BY request_queue"
	    " WHERE state = ?1 AND tenant > ?2 AND next_attempt_at <= ?3 ORDER BY tenant, id LIMIT 1",
	[ST_TENANT_OLDEST] = "SELECT id, correlation_id, attempts FROM request INDEXED BY request_queue"
	    " WHERE state = ?1 AND tenant = ?2 AND next_attempt_at <= ?3 ORDER BY id LIMIT 1",
	[ST_CLAIM_ID] = "UPDATE request SET state = ?1, claimed_by = ?2, claimed_at = ?3,"
	    " updated_at = ?3, bytes_done = 0, bytes_total = 0 WHERE id = ?4 AND state = ?5",
	[ST_ITEM_OF] = "SELECT item FROM event WHERE request_id = ?1 AND state = ?2"
	    " AND item IS NOT NULL ORDER BY id DESC LIMIT 1",
	[ST_NEXT_DUE] = "SELECT count(*), min(next_attempt_at) FROM request INDEXED BY request_queue"
	    " WHERE state = ?1",
	[ST_DEFER] = "UPDATE request SET state = ?1, claimed_by = NULL, updated_at = ?2,"
	    " attempts = attempts + 1, last_error = ?3, next_attempt_at = ?4"
	    " WHERE tenant = ?5 AND correlation_id = ?6 AND state = ?7",
	[ST_COUNT_UP] = "INSERT INTO counter (name, n) VALUES (?1, 1)"
	    " ON CONFLICT (name) DO UPDATE SET n = n + 1",
	[ST_RETRY_NOW] = "UPDATE request SET next_attempt_at = 0, updated_at = ?3"
	    " WHERE tenant = ?1 AND correlation_id = ?2 AND state IN " INPUT,
	[ST_RETRIES] = "SELECT coalesce((SELECT n FROM counter WHERE name = 'retries'), 0)",
	[ST_WAITING_RETRY] = "SELECT count(*) FROM request INDEXED BY request_queue"
	    " WHERE state IN " INPUT " AND next_attempt_at > ?1",
	[ST_OLDEST_BY_STATE] = "SELECT state, min(received_at), min(updated_at) FROM request"
	    " WHERE state IN " LIVE " GROUP BY state ORDER BY state",
	[ST_UPLOAD_PUT] = "INSERT OR REPLACE INTO upload (request_id, upload_id, bucket, key,"
	    " part_size, size, created_at) SELECT id, ?3, ?4, ?5, ?6, ?7, ?8 FROM request"
	    " WHERE tenant = ?1 AND correlation_id = ?2",
	[ST_UPLOAD_PARTS_DROP] = "DELETE FROM upload_part WHERE request_id ="
	    " (SELECT id FROM request WHERE tenant = ?1 AND correlation_id = ?2)",
	[ST_UPLOAD_PART] = "INSERT OR REPLACE INTO upload_part (request_id, num, size, md5, etag)"
	    " SELECT u.request_id, ?4, ?5, ?6, ?7 FROM upload u JOIN request r ON r.id = u.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2 AND u.upload_id = ?3",
	[ST_UPLOAD_GET] = "SELECT u.request_id, u.upload_id, u.bucket, u.key, u.part_size, u.size,"
	    " r.tenant, r.correlation_id FROM upload u JOIN request r ON r.id = u.request_id"
	    " WHERE r.tenant = ?1 AND r.correlation_id = ?2",
	[ST_UPLOAD_PARTS] = "SELECT num, size, md5, etag FROM upload_part WHERE request_id = ?1"
	    " ORDER BY num",
	[ST_UPLOAD_FORGET] = "DELETE FROM upload WHERE upload_id = ?3 AND request_id ="
	    " (SELECT id FROM request WHERE tenant = ?1 AND correlation_id = ?2)",
	[ST_UPLOAD_ORPHANS] = "SELECT u.request_id, u.upload_id, u.bucket, u.key, u.part_size,"
	    " u.size, r.tenant, r.correlation_id FROM upload u JOIN request r ON r.id = u.request_id"
	    " WHERE r.state NOT IN ('PACKED','UPLOADING') ORDER BY u.request_id",
	[ST_STILL_CLAIMED] = "SELECT count(*) FROM request WHERE id = ?1 AND state = ?2"
	    " AND claimed_by IS ?3",
};

const struct jstage_info *journal_stage(enum jstage s)
{
	return (unsigned)s < JSTAGE_COUNT ? &jn_stages[s] : NULL;
}

int journal_stage_byname(const char *name)
{
	for (int i = 0; i < JSTAGE_COUNT; i++)
		if (strcmp(jn_stages[i].name, name) == 0)
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
		const struct jstage_info *s = &jn_stages[i];
		if ((s->input && !strcmp(state, s->input)) || (s->busy && !strcmp(state, s->busy)) ||
		    (s->output && !strcmp(state, s->output)))
			return 1;
	}
	return 0;
}

int jn_fail(journal *j, int rc, const char *what)
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

int jn_failf(journal *j, int temporary, const char *fmt, ...)
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

int jn_exec(journal *j, const char *s, const char *what)
{
	int rc = sqlite3_exec(j->db, s, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : jn_fail(j, rc, what);
}

sqlite3_stmt *jn_stmt(journal *j, enum st q)
{
	int rc;
	sqlite3_stmt *s = db_cached(j->db, &j->st[q], sql[q], &rc);
	if (!s)
		jn_fail(j, rc, "prepare");
	return s;
}

/* BEGIN IMMEDIATE or COMMIT: 0 or -1 (error recorded). */
static int tx_step(journal *j, enum st q, const char *what)
{
	sqlite3_stmt *s = jn_stmt(j, q);
	if (!s)
		return -1;
	int rc = sqlite3_step(s);
	db_done(s);
	return rc == SQLITE_DONE ? 0 : jn_fail(j, rc, what);
}

/* ROLLBACK, keeping the error that led to it (jn_stmt() would record its
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

int jn_run(journal *j, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	db_done(s);
	if (rc != SQLITE_DONE)
		return jn_fail(j, rc, what);
	return sqlite3_changes(j->db);
}

/* Transactions: a call is its own transaction, or part of the batch (see
 * the top of the file). */
int jn_tx_begin(journal *j)
{
	if (j->in_batch) {
		if (j->batch_failed)
			return jn_failf(j, j->batch_temporary, "batch spoiled by an earlier error");
		j->tx_changes = sqlite3_total_changes64(j->db);
		return 0;
	}
	return tx_step(j, ST_BEGIN, "begin");
}

int jn_tx_commit(journal *j)
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
void jn_tx_rollback(journal *j)
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

int jn_pragma_int(journal *j, const char *q, int64_t *out)
{
	int rc = db_pragma_int(j->db, q, out);
	return rc == SQLITE_ROW ? 0 : jn_fail(j, rc, q);
}

/* The column as a string owned by the statement (until its next step). The
 * cast is for struct jrequest, whose strings are malloc'd in journal_get;
 * callers of journal_list get them through a const struct. */
char *jn_col_borrow(sqlite3_stmt *s, int i)
{
	return (char *)sqlite3_column_text(s, i);
}

/* A row of REQUEST_COLS into r, strings copied or borrowed by str. */
void jn_request_row(sqlite3_stmt *s, struct jrequest *r, char *(*str)(sqlite3_stmt *, int))
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
	r->attempts = sqlite3_column_int64(s, 13);
	r->next_attempt_ms = sqlite3_column_int64(s, 14);
	r->last_error = str(s, 15);
	r->submission = sqlite3_column_int64(s, 16);
}


/* Bring the schema to JOURNAL_SCHEMA_VERSION in one write transaction. */
static int migrate(journal *j)
{
	int64_t v;
	if (jn_pragma_int(j, "PRAGMA user_version", &v) < 0)
		return -1;
	if (v > JOURNAL_SCHEMA_VERSION)
		return jn_failf(j, 0, "schema version %lld is newer than this ferry knows (%d); "
		    "use a newer ferry", (long long)v, JOURNAL_SCHEMA_VERSION);
	if (v == JOURNAL_SCHEMA_VERSION)
		return 0;
	if (jn_exec(j, "BEGIN IMMEDIATE", "migrate") < 0)
		return -1;
	/* another process may have migrated while we waited for the lock */
	if (jn_pragma_int(j, "PRAGMA user_version", &v) < 0)
		goto rollback;
	for (; v < JOURNAL_SCHEMA_VERSION; v++)
		if (jn_exec(j, migrations[v], "migrate") < 0)
			goto rollback;
	char set[64];
	snprintf(set, sizeof set, "PRAGMA user_version = %d", JOURNAL_SCHEMA_VERSION);
	if (jn_exec(j, set, "migrate") < 0 || jn_exec(j, "COMMIT", "migrate") < 0)
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
			return jn_fail(j, rc, "open");
		if (waited >= BUSY_TIMEOUT_MS)
			return jn_fail(j, rc, "open");
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
		return jn_failf(j, 0, "cannot use WAL mode (is it on a network filesystem?)");
	if (jn_exec(j, "PRAGMA foreign_keys = ON", "open") < 0)
		return -1;
	/* Every call in a group commit is a savepoint, whose undo pages SQLite
	 * writes to a statement journal: a temporary file, unless temp_store
	 * is MEMORY (validate: 22 pwrite calls a request, 1 with it; sys time
	 * of 50,000 requests 0.99 s -> 0.23 s). */
	if (jn_exec(j, "PRAGMA temp_store = MEMORY", "open") < 0)
		return -1;
	return jn_exec(j, sync == JOURNAL_SYNC_FULL ? "PRAGMA synchronous = FULL"
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
		jn_fail(j, rc, "unable to open");
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
		return jn_failf(j, 0, "begin: a batch is already open");
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
		return jn_failf(j, 0, "end: no batch open");
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
