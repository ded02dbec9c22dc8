/* journal: the one SQLite file every stage shares (DESIGN §4). Only this
 * module touches SQLite. Requests move through states by claims (one guarded
 * UPDATE) and commits (state + event + outbox row in one transaction); the
 * event log is the audit trail and the replay source. The module is
 * journal.c (core), journal-stage.c (stage protocol, outbox),
 * journal-report.c (reports, upkeep) and journal-order.c (order waits),
 * sharing the private journal-int.h. */
#ifndef FERRY_JOURNAL_H
#define FERRY_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_SCHEMA_VERSION 8

typedef struct journal journal;

enum journal_sync { JOURNAL_SYNC_NORMAL, JOURNAL_SYNC_FULL };

/* The stages of the pipeline and their states. A stage takes requests in
 * `input`, holds them in `busy` while it works, and leaves them in `output`
 * (or a terminal state). JSTAGE_SWEEP is the expiry sweeper / operator:
 * it may end any non-terminal request. */
enum jstage {
	JSTAGE_INGEST, JSTAGE_VALIDATE, JSTAGE_ORDER, JSTAGE_FETCH,
	JSTAGE_PACK, JSTAGE_S3PUT, JSTAGE_SWEEP, JSTAGE_COUNT
};

struct jstage_info {
	const char *name;     /* "fetch" */
	const char *input;    /* "ORDERED"; NULL for ingest and sweep */
	const char *busy;     /* "FETCHING" */
	const char *output;   /* "FETCHED" */
};

const struct jstage_info *journal_stage(enum jstage s);
int journal_stage_byname(const char *name);           /* enum jstage or -1 */
int journal_state_terminal(const char *state);        /* DENIED DONE ERROR */
int journal_state_known(const char *state);

/* Open (create if absent, migrate if older) the journal at path. The
 * directory must exist. On failure -1 and a one-line reason in err naming
 * the path; *temporary is set to 1 when the failure may pass (locked). */
int journal_open(const char *path, enum journal_sync sync, journal **out,
    char *err, size_t errlen, int *temporary);
void journal_close(journal *j);
/* reason of the last failed call, and whether it was temporary (busy) */
const char *journal_error(const journal *j);
int journal_temporary(const journal *j);
/* tag written to claimed_by ("fetch:1234"); default "<pid>" */
void journal_set_owner(journal *j, const char *owner);

/* Group commit: everything between begin and end is one transaction; each
 * call inside is its own savepoint, so one failed call does not undo the
 * others. Outside begin/end every call commits by itself. */
int journal_begin(journal *j);
int journal_end(journal *j);
int journal_abort(journal *j);

/* Registration: a request seen for the first time, or again.
 * NEW: first seen. SAME: (tenant, cid) is there with the same body, and
 * the message is one more copy of it (in flight or DONE, or a broker
 * redelivery). CONFLICT: in flight with another body (nothing is written:
 * no answer could tell the client which request it is about). AGAIN: the
 * client sends the id again after its request ended — DENIED or ERROR
 * with any body, DONE with another — as rs-delivery, which keeps no row of
 * an ended request, takes it for a new one: the row starts over as
 * submission n + 1 (its history stays). Only ingest's registrations (a
 * message from a client) make AGAIN; a stage fed an ended request's item
 * by hand gets SAME or CONFLICT as before. */
enum journal_reg { JREG_NEW, JREG_SAME, JREG_CONFLICT, JREG_AGAIN };
struct jregister {
	const char *tenant, *cid;
	const char *fingerprint;   /* of the request body (item_fingerprint) */
	const char *state;         /* usually RECEIVED; a stage's input state
	                              when a stage is fed an unknown item */
	enum jstage stage;         /* who registers it, for the event */
	int64_t received_ms;
	int64_t expires_ms;        /* 0 = not known yet */
	const char *item;          /* the item JSON as emitted in `state` */
	int absent;                /* the caller found it unknown in this batch
	                              (journal_lookup): no need to look again */
	int redelivered;           /* the broker's redelivery of a message:
	                              a copy, never a new submission */
};
/* NEW or AGAIN: row (re)written with its event. SAME/CONFLICT: nothing
 * written. 0 or -1. */
int journal_register(journal *j, const struct jregister *r, enum journal_reg *out);
/* What journal_register would make of r, reading only: 1 and *out when
 * (tenant, cid) is registered (AGAIN: journal_register must still be
 * called), 0 not known, -1 error. */
int journal_lookup(journal *j, const struct jregister *r, enum journal_reg *out);
/* NEW or AGAIN: the registration wrote the row (the item goes on) */
#define JREG_WRITTEN(reg) ((reg) == JREG_NEW || (reg) == JREG_AGAIN)

/* Claim: move (tenant, cid) from the stage's input state to its busy state
 * in one statement. 1 claimed, 0 not in the input state, -1 error. */
int journal_claim(journal *j, enum jstage s, const char *tenant, const char *cid);

/* ---- The queue: requests waiting in a stage's input state ----
 * A request set aside after a temporary failure waits there too, until its
 * next_attempt_at; attempts and last_error say how it went. */
struct jwork {
	int64_t id;
	char *tenant, *cid;
	char *item;                 /* the item the previous stage emitted; NULL if none */
	int64_t attempts;           /* times set aside before this claim */
};
/* Claim the next request due (next_attempt_at <= now_ms) in the stage's
 * input state, tenants in turn: the oldest of the first tenant after
 * `after` (name order, wrapping round; "" or NULL: from the first) that has
 * one. 1 and *w (journal_work_clear frees it), 0 none due, -1. */
int journal_claim_next(journal *j, enum jstage s, const char *after, int64_t now_ms,
    struct jwork *w);
void journal_work_clear(struct jwork *w);
/* Whether requests wait in the stage's input state: 1 and *ms the earliest
 * next_attempt_at among them (0: one is due now), 0 none, -1. */
int journal_next_due(journal *j, enum jstage s, int64_t *ms);
/* Set a claimed request aside: from the stage's busy state back to its
 * input state, attempts + 1, last_error why, next_attempt_at next_ms; the
 * retries counter + 1. 1, 0 not in the busy state, -1. */
int journal_defer(journal *j, enum jstage s, const char *tenant, const char *cid,
    const char *why, int64_t next_ms);
/* a request with its item, for the walks below; non-zero stops the walk */
typedef int journal_item_fn(void *arg, const char *tenant, const char *cid,
    const char *item);
/* The same for a stage whose commit is its claim (ferry-request-validate's
 * batches): a request still in the stage's input state is set aside there
 * (attempts + 1, last_error, next_attempt_at next_ms, retries + 1). 1, 0 not
 * in the input state, -1. */
int journal_defer_input(journal *j, enum jstage s, const char *tenant, const char *cid,
    const char *why, int64_t next_ms);
/* Requests so set aside in the stage's input state (attempts > 0): 1 and
 * *ms the earliest next_attempt_at among them, 0 none, -1. */
int journal_aside_next(journal *j, enum jstage s, int64_t *ms);
/* fn (as journal_pending's) on each of them due at now_ms, oldest first.
 * Returns the number visited or -1. */
int journal_aside_due(journal *j, enum jstage s, int64_t now_ms, journal_item_fn *fn,
    void *arg);
/* Operator: a request waiting in an input state is due now. 1, 0 it waits
 * in no input state, -1. */
int journal_retry_now(journal *j, const char *tenant, const char *cid);

/* Commit a stage's result: new state, an event holding the emitted item, and
 * optionally one outbox row, in one transaction. Guard: the request must be
 * in the stage's busy state (any non-terminal state for JSTAGE_SWEEP).
 * 1 committed, 0 guard failed (not ours any more), -1 error. */
struct jcommit {
	const char *tenant, *cid;
	enum jstage stage;
	const char *state;          /* output, DENIED, ERROR, ... */
	const char *item;           /* event item JSON, or NULL */
	const char *response;       /* outbox body JSON, or NULL */
	const char *headers;        /* outbox headers JSON (tenant, priority, app_id) */
	const char *error_type;     /* for DENIED/ERROR */
	int64_t expires_ms;         /* > 0: set expires_at */
	int64_t bytes;              /* bytes this stage moved (history) */
	int claim;                  /* the commit is the claim too: guard on the
	                               input state (for work done inside the
	                               caller's batch, which nobody sees) */
};
int journal_commit(journal *j, const struct jcommit *c);

/* Progress of the busy stage (ferry-journal status). 0 or -1. */
int journal_progress(journal *j, const char *tenant, const char *cid,
    int64_t done, int64_t total);

/* Recovery at start: put back this stage's busy requests to its input
 * state, but those waiting on an order service (journal_order_wait), which
 * stay where they are. Returns how many, or -1. */
int journal_takeback(journal *j, enum jstage s);

/* Requests waiting in the stage's input state, oldest first, each with the
 * item the previous stage emitted (its input). fn returning non-zero stops
 * the walk. Returns the number visited or -1. Safe to write from fn. */
int journal_pending(journal *j, enum jstage s, journal_item_fn *fn, void *arg);

/* Non-terminal requests whose expires_at <= now_ms, with their latest item. */
int journal_expired(journal *j, int64_t now_ms, journal_item_fn *fn, void *arg);
/* fn once with (tenant, cid) and its latest item, when the request is not
 * terminal (for an operator ending it). 1, 0 when it is terminal or
 * unknown, -1. */
int journal_live_item(journal *j, const char *tenant, const char *cid, journal_item_fn *fn,
    void *arg);
/* The earliest expires_at later than after_ms of the non-terminal requests:
 * 1 and *ms, 0 when there is none, -1. For the sweeper, to wake when the
 * next one is due. */
int journal_next_expiry(journal *j, int64_t after_ms, int64_t *ms);

/* One request row. Strings are malloc'd; journal_request_clear frees them. */
struct jrequest {
	int64_t id;
	char *tenant, *cid, *fingerprint, *state, *claimed_by, *error_type;
	int64_t received_ms, expires_ms, updated_ms, claimed_ms;
	int64_t bytes_done, bytes_total;
	int64_t attempts;          /* set aside so far in this state's stage */
	int64_t next_attempt_ms;   /* when it may be claimed again; 0 = now */
	char *last_error;          /* the temporary failure that set it aside, or NULL */
	int64_t submission;        /* 1, + 1 each time the id is sent again after its end */
};
int journal_get(journal *j, const char *tenant, const char *cid, struct jrequest *out); /* 1, 0 absent, -1 */
void journal_request_clear(struct jrequest *r);

/* Events of one request, oldest first. */
struct jevent {
	int64_t id;
	const char *stage, *state, *item;   /* item may be NULL */
	int64_t started_ms, at_ms, bytes;
	int64_t submission;                 /* of the request, 1 the first (journal_register) */
};
typedef int journal_event_fn(void *arg, const struct jevent *e);
int journal_history(journal *j, const char *tenant, const char *cid,
    journal_event_fn *fn, void *arg);       /* count of events, or -1 */
/* The item as stage s received it (latest event in s's input state),
 * malloc'd; NULL with journal_error() "" when there is none. */
char *journal_input_item(journal *j, enum jstage s, const char *tenant, const char *cid);

/* Outbox of responses (published by ferry-notify). */
struct joutbox {
	int64_t id;
	const char *tenant, *cid, *body, *headers;
	int64_t created_ms;
	int64_t sent_ms;             /* 0 = not published yet */
	int64_t set_aside_ms;        /* > 0: set aside then, never to be published */
	const char *set_aside_why;   /* why, or NULL */
};
typedef int journal_outbox_fn(void *arg, const struct joutbox *o);
/* a response that changes no state (e.g. DENIED for a reused correlationId) */
int journal_outbox_put(journal *j, const char *tenant, const char *cid,
    const char *body, const char *headers);
/* unsent rows with id > after_id, ascending, at most limit; count or -1 */
int journal_outbox_unsent(journal *j, int64_t after_id, int limit,
    journal_outbox_fn *fn, void *arg);
/* the same, the rows of tenant's requests only (NULL: every row) */
int journal_outbox_unsent_of(journal *j, const char *tenant, int64_t after_id, int limit,
    journal_outbox_fn *fn, void *arg);
/* mark the rows sent (ids are sorted in place); 0 or -1 */
int journal_outbox_mark_sent(journal *j, int64_t *ids, size_t n);
/* Set an unsent row aside: it cannot be published as it is (ferry-notify
 * found it unencodable), so it is no longer unsent, nor keeps its request
 * from being pruned; the rows after it go on. 0 or -1. */
int journal_outbox_set_aside(journal *j, int64_t id, const char *why);
/* queue the request's latest response again: 1 queued, 0 it has none, -1 */
int journal_resend_latest(journal *j, const char *tenant, const char *cid);

/* ---- Orders waiting on an external order service (rs-order) ----
 * A request the order stage has placed with such a service stays in the
 * stage's busy state (ORDERING) while a row of order_wait records where the
 * order stands; journal_takeback leaves it there. The row outlives the
 * request's end, until the stage forgets it (after cancelling the order
 * when the request ended in ERROR). */
struct jorder {
	const char *tenant, *cid;
	const char *state;          /* the request's state */
	const char *backend;        /* "rs-order" */
	const char *status;         /* the stage's own word: QUEUED, SENT, GRANTED, ... */
	int64_t order_id;           /* 0 = not known yet */
	int64_t suborders;          /* 0 = not known yet */
	int64_t retry_at;           /* ms; when to try a failed step again (0 = now) */
	int64_t expires_ms;         /* the request's, 0 = none */
	int64_t updated_ms;         /* the row's last change */
	int cancelled;              /* journal_order_cancelled was called */
};
typedef int journal_order_fn(void *arg, const struct jorder *o);
/* Record (or start again) the order of a request in the order stage's busy
 * state, with status. 1, 0 when the request is not in that state, -1. */
int journal_order_wait(journal *j, const char *tenant, const char *cid, const char *backend,
    const char *status);
/* Set status and retry_at, and order_id and suborders when > 0 (else they
 * are kept), of (o->tenant, o->cid). 1, 0 no such row, -1. */
int journal_order_update(journal *j, const struct jorder *o);
int journal_order_cancelled(journal *j, const char *tenant, const char *cid);  /* 1, 0, -1 */
int journal_order_forget(journal *j, const char *tenant, const char *cid);     /* 1, 0, -1 */
/* fn once with the row of (tenant, cid): 1, 0 when there is none, -1. The
 * strings last until fn returns. */
int journal_order_get(journal *j, const char *tenant, const char *cid, journal_order_fn *fn,
    void *arg);
/* Every row, oldest first; fn may write; fn returning non-zero stops the
 * walk. The count visited, or -1. */
int journal_order_all(journal *j, journal_order_fn *fn, void *arg);
/* Claim again, for this connection's owner, the waiting requests still in
 * the order stage's busy state (at a restart). The count, or -1. */
int journal_order_reattach(journal *j);

/* changes by other connections since open bump this (PRAGMA data_version) */
int64_t journal_data_version(journal *j);

/* ---- Inspection and upkeep (ferry-journal) ---- */

/* The stage that holds `state` (its busy state, *busy = 1) or takes it next
 * (its input state, *busy = 0); -1 for terminal and unknown states. */
int journal_state_stage(const char *state, int *busy);

/* Which requests journal_list visits; zero fields do not filter. */
struct jfilter {
	const char *tenant;
	const char *state;
	int live;                  /* only non-terminal requests */
	int64_t since_ms;          /* received at or after */
	int64_t limit;             /* at most this many */
};
/* The strings of *r belong to the journal and last until fn returns. */
typedef int journal_request_fn(void *arg, const struct jrequest *r);
/* Requests matching f, newest received first; fn returning non-zero stops
 * the walk. The count visited, or -1. */
int journal_list(journal *j, const struct jfilter *f, journal_request_fn *fn, void *arg);

/* Every outbox row of one request, sent or not, oldest first; count or -1. */
int journal_outbox_of(journal *j, const char *tenant, const char *cid,
    journal_outbox_fn *fn, void *arg);

/* Requests counted by state, or by errorType (those that have one), in key
 * order. The number of keys, or -1. */
enum jcount { JCOUNT_STATE, JCOUNT_ERROR_TYPE };
typedef int journal_count_fn(void *arg, const char *key, int64_t n);
int journal_count_by(journal *j, enum jcount by, journal_count_fn *fn, void *arg);

/* Totals, read in one snapshot. */
struct jtotals {
	int64_t requests;
	int64_t received_hour, received_day;   /* received in the hour / day before now */
	int64_t outbox_unsent;                 /* neither sent nor set aside */
	int64_t outbox_set_aside;
	int64_t oldest_unsent_ms;              /* created_at of the oldest unsent; 0 = none */
	int64_t bytes_delivered;               /* bytes of the s3-put DONE events */
	int64_t retries;                       /* requests set aside, ever (a counter) */
	int64_t waiting_retry;                 /* live requests whose next attempt is due later */
	int64_t schema_version;
};
int journal_totals(journal *j, int64_t now_ms, struct jtotals *t);   /* 0 or -1 */

/* The oldest live request of each non-terminal state: fn(arg, state,
 * received_ms of the oldest, updated_ms of the least recently changed),
 * states in key order. The number of states, or -1. */
typedef int journal_oldest_fn(void *arg, const char *state, int64_t received_ms,
    int64_t updated_ms);
int journal_oldest_by_state(journal *j, journal_oldest_fn *fn, void *arg);

/* How long each stage's work took (event started_at -> at), per stage, as
 * a cumulative histogram: le[i] counts the events that took at most
 * bounds[i] seconds. Stages with no timed event are not visited. */
enum { JOURNAL_MAX_BOUNDS = 32 };
struct jdurations {
	const char *stage;
	int64_t count;
	double sum_s;
	const int64_t *le;
};
typedef int journal_durations_fn(void *arg, const struct jdurations *d);
int journal_durations(journal *j, const double *bounds, size_t n,
    journal_durations_fn *fn, void *arg);   /* stages visited, or -1 */

/* Delete the terminal requests last updated before before_ms whose
 * responses are all sent (or set aside), with their events and outbox rows, in
 * transactions of at most batch requests. The number deleted, or -1 (the
 * batches committed before the failure stay deleted). */
int64_t journal_prune(journal *j, int64_t before_ms, int batch);

/* Consistency: PRAGMA integrity_check and foreign_key_check, then requests
 * without events ("no-event"), terminal ones without a response
 * ("no-response"), responses ferry-notify set aside ("set-aside"), unknown
 * states ("unknown-state"), and busy ones whose claiming process no
 * longer runs on this host ("dead-owner"). Reports,
 * fixes nothing. The number of problems, or -1. */
struct jproblem {
	const char *check;          /* "integrity", "foreign-key", "no-event", ... */
	const char *tenant, *cid;   /* NULL for whole-journal problems */
	const char *detail;
};
typedef int journal_problem_fn(void *arg, const struct jproblem *p);
int journal_check(journal *j, journal_problem_fn *fn, void *arg);

/* Resumable uploads (journal-upload.c): a multipart upload's id and the
 * parts S3 acknowledged, from its creation until it is completed or
 * aborted, so that a restarted ferry-s3-put resumes it. */
struct jupload_part {
	int num;
	int64_t size;
	char md5[33];                /* hex, as sent in Content-MD5 */
	char etag[80];               /* as S3 answered */
};
struct jupload {
	char tenant[72], cid[1024];
	char upload_id[1024], bucket[256], key[1200];
	int64_t part_size, size;
	int nparts;                  /* parts acknowledged, ascending numbers */
	struct jupload_part *parts;
};
/* A new upload of the request (any earlier record and its parts go). */
int journal_upload_begin(journal *j, const char *tenant, const char *cid, const char *bucket,
    const char *key, const char *upload_id, int64_t part_size, int64_t size);
/* A part S3 acknowledged, of the request's upload upload_id. */
int journal_upload_part(journal *j, const char *tenant, const char *cid, const char *upload_id,
    const struct jupload_part *part);
/* The request's upload: 1 (u filled; journal_upload_clear it), 0 none, -1. */
int journal_upload_get(journal *j, const char *tenant, const char *cid, struct jupload *u);
void journal_upload_clear(struct jupload *u);
/* The upload is completed or aborted: its record goes. */
int journal_upload_forget(journal *j, const char *tenant, const char *cid, const char *upload_id);
/* fn for each upload whose request is no longer PACKED or UPLOADING (ended,
 * or sent back to an earlier stage): uploads nobody will complete.
 * Stops when fn returns non-zero; 0 or -1. */
typedef int journal_upload_fn(void *arg, const struct jupload *u);
int journal_upload_orphans(journal *j, journal_upload_fn *fn, void *arg);

#endif
