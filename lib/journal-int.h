/* journal-int: what the pieces of the journal share (lib/journal*.c only):
 * the connection, the prepared statements' ids, the state lists of the
 * SQL, and the helpers of journal.c for errors, statements and
 * transactions. Shared functions are jn_*, apart from the public journal_*. */
#ifndef FERRY_JOURNAL_INT_H
#define FERRY_JOURNAL_INT_H

#include <stdint.h>

#include <sqlite3.h>

#include "journal.h"

extern const struct jstage_info jn_stages[JSTAGE_COUNT];

/* A request's state is terminal, or not: the conditions of the partial
 * indexes (a query uses one only if it repeats its condition verbatim). */
#define IS_TERMINAL "(state = 'DENIED' OR state = 'DONE' OR state = 'ERROR')"
#define NOT_TERMINAL "(state <> 'DENIED' AND state <> 'DONE' AND state <> 'ERROR')"

/* These must be spelled exactly as in the partial indexes of migrations[]
 * (journal.c) for SQLite to use them; journal_test checks the lists against
 * the stage table. */
#define TERMINAL "('DENIED','DONE','ERROR')"
#define BUSY "('VALIDATING','ORDERING','FETCHING','PACKING','UPLOADING')"
#define LIVE "('RECEIVED','VALIDATING','GRANTED','ORDERING','ORDERED','FETCHING'," \
	"'FETCHED','PACKING','PACKED','UPLOADING')"
/* the stages' input states, where requests wait (the queue) */
#define INPUT "('RECEIVED','GRANTED','ORDERED','FETCHED','PACKED')"
#define REQUEST_COLS "id, tenant, correlation_id, fingerprint, state, claimed_by, error_type," \
	" received_at, coalesce(expires_at, 0), updated_at, coalesce(claimed_at, 0)," \
	" bytes_done, bytes_total, attempts, next_attempt_at, last_error, submission"
#define OUTBOX_COLS "o.id, r.tenant, r.correlation_id, o.body, o.headers, o.created_at," \
	" coalesce(o.sent_at, 0), coalesce(o.set_aside_at, 0), o.set_aside_why"
/* an outbox row still to publish: the condition of the partial index */
#define UNSENT "sent_at IS NULL AND set_aside_at IS NULL"

enum st {
	ST_FIND, ST_INSERT_REQ, ST_INSERT_EVENT, ST_RENEW, ST_RENEW_ORDER, ST_CLAIM, ST_FINISH,
	ST_PROGRESS, ST_TAKEBACK, ST_IDS_IN_STATE, ST_INPUT_BY_ID, ST_EXPIRED_IDS,
	ST_LATEST_BY_ID, ST_GET, ST_HISTORY, ST_INPUT_ITEM,
	ST_OUTBOX_PUT_ID, ST_OUTBOX_UNSENT, ST_OUTBOX_UNSENT_TENANT, ST_RESEND,
	ST_OUTBOX_OF, ST_COUNT_STATE, ST_COUNT_ERROR, ST_TOTAL_REQUESTS, ST_RECEIVED_SINCE,
	ST_UNSENT_COUNT, ST_OLDEST_UNSENT, ST_DELIVERED, ST_PRUNE, ST_BUSY_OWNERS, ST_STILL_CLAIMED,
	ST_NEXT_EXPIRY,
	ST_WAIT_PUT, ST_WAIT_UPDATE, ST_WAIT_CANCELLED, ST_WAIT_FORGET, ST_WAIT_GET, ST_WAIT_ALL,
	ST_WAIT_REATTACH, ST_DATA_VERSION, ST_OUTBOX_SENT_RUN, ST_SET_ASIDE, ST_SET_ASIDE_COUNT,
	ST_NEXT_TENANT, ST_TENANT_OLDEST, ST_CLAIM_ID, ST_ITEM_OF, ST_NEXT_DUE, ST_DEFER,
	ST_COUNT_UP, ST_RETRY_NOW, ST_RETRIES, ST_WAITING_RETRY, ST_OLDEST_BY_STATE,
	ST_UPLOAD_PUT, ST_UPLOAD_PARTS_DROP, ST_UPLOAD_PART, ST_UPLOAD_GET, ST_UPLOAD_PARTS,
	ST_UPLOAD_FORGET, ST_UPLOAD_ORPHANS, ST_DEFER_INPUT, ST_ASIDE_DUE_IDS, ST_ASIDE_NEXT,
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_COUNT
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

/* Record a failure of `what` with SQLite's reason; always returns -1. */
int jn_fail(journal *j, int rc, const char *what);
/* Record a failure with a message of ours; always returns -1. */
int jn_failf(journal *j, int temporary, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* sqlite3_exec of s: 0 or -1 (error recorded as `what`) */
int jn_exec(journal *j, const char *s, const char *what);
/* The cached statement for q, reset and unbound, or NULL (error recorded). */
sqlite3_stmt *jn_stmt(journal *j, enum st q);
/* Run a statement that returns no rows; the number of changed rows or -1. */
int jn_run(journal *j, sqlite3_stmt *s, const char *what);
/* A call's transaction, or its part of the batch (see journal.c): begin,
 * commit, and after a failure roll back or spoil the batch. */
int jn_tx_begin(journal *j);
int jn_tx_commit(journal *j);
void jn_tx_rollback(journal *j);
/* A pragma returning one integer: 0 or -1 (error recorded). */
int jn_pragma_int(journal *j, const char *q, int64_t *out);
/* A column as a string owned by the statement (until its next step). */
char *jn_col_borrow(sqlite3_stmt *s, int i);
/* A row of REQUEST_COLS into r, strings copied or borrowed by str. */
void jn_request_row(sqlite3_stmt *s, struct jrequest *r, char *(*str)(sqlite3_stmt *, int));

#endif
