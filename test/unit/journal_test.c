/* journal_test: the journal's contract — schema and migrations, register /
 * claim / commit / outbox, recovery, batches, claim races between processes,
 * kill -9 in the middle of a batch commit, and the inspection and upkeep
 * calls of ferry-journal (list, totals, durations, prune, check). */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "journal.h"
#include "util.h"
#include "tu.h"

static char path[512];

static journal *jopen(void)
{
	char err[512];
	journal *j = NULL;
	int temp;
	if (!TU_CHECK(journal_open(path, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp) == 0))
		printf("# open: %s\n", err);
	return j;
}

static void fresh(void)
{
	snprintf(path, sizeof path, "%s/journal.db", tu_tmpdir());
}

/* a raw sqlite query returning one integer, to look behind the API */
static long long raw_int(const char *q)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	long long v = -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return -2;
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, q, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	return v;
}

/* a raw sqlite statement, foreign keys off (to break the journal on purpose) */
static int raw_exec(const char *q)
{
	sqlite3 *db;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return -1;
	sqlite3_busy_timeout(db, 10000);
	char *err = NULL;
	int rc = sqlite3_exec(db, q, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		printf("# raw_exec: %s: %s\n", q, err ? err : "?");
	sqlite3_free(err);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

static int reg(journal *j, const char *tenant, const char *cid, const char *fp,
    const char *state, enum journal_reg *out)
{
	struct jregister r = {
		.tenant = tenant, .cid = cid, .fingerprint = fp, .state = state,
		.stage = JSTAGE_INGEST, .received_ms = 1000, .item = "{\"x\":1}",
	};
	return journal_register(j, &r, out);
}

static void test_open_creates_schema_in_wal_mode(void)
{
	fresh();
	journal *j = jopen();
	journal_close(j);
	TU_EQ_INT(raw_int("PRAGMA user_version"), JOURNAL_SCHEMA_VERSION);
	TU_EQ_INT(raw_int("SELECT count(*) FROM sqlite_master WHERE name IN ('request','event','outbox')"), 3);
	TU_EQ_INT(raw_int("SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
	j = jopen(); /* reopen: no migration, no error */
	journal_close(j);
}

/* Several processes creating the same new journal at once all succeed. */
static void test_concurrent_creation_of_a_new_journal(void)
{
	for (int round = 0; round < 5; round++) {
		fresh();
		pid_t pids[4];
		for (int i = 0; i < 4; i++) {
			if ((pids[i] = fork()) == 0) {
				char err[512];
				journal *j;
				int temp;
				int rc = journal_open(path, i % 2 ? JOURNAL_SYNC_FULL : JOURNAL_SYNC_NORMAL,
				    &j, err, sizeof err, &temp);
				if (rc < 0)
					printf("# child %d: %s\n", i, err);
				journal_close(rc < 0 ? NULL : j);
				_exit(rc < 0);
			}
		}
		int failed = 0;
		for (int i = 0; i < 4; i++) {
			int st;
			waitpid(pids[i], &st, 0);
			failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
		}
		TU_EQ_INT(failed, 0);
	}
}

static void test_newer_schema_is_refused_permanently(void)
{
	fresh();
	journal_close(jopen());
	raw_int("PRAGMA user_version = 99");
	char err[512];
	journal *j;
	int temp = -1;
	TU_EQ_INT(journal_open(path, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp), -1);
	TU_CHECK(strstr(err, "newer") != NULL);
	TU_CHECK(strstr(err, path) != NULL);
	TU_EQ_INT(temp, 0);
}

static void test_unopenable_paths_name_the_path(void)
{
	char err[512];
	journal *j;
	int temp;
	snprintf(path, sizeof path, "%s/no/such/dir/j.db", tu_tmpdir());
	TU_EQ_INT(journal_open(path, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp), -1);
	TU_CHECK(strstr(err, path) != NULL);
	/* a file that is not a database */
	snprintf(path, sizeof path, "%s/notadb", tu_tmpdir());
	FILE *f = fopen(path, "w");
	fputs("this is not sqlite, just text long enough to look like a header......\n", f);
	fclose(f);
	TU_EQ_INT(journal_open(path, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp), -1);
	TU_CHECK(strstr(err, "not a database") != NULL);
}

static void test_register_dedupes_on_tenant_and_correlation_id(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	TU_EQ_INT(reg(j, "p1", "c-1", "fpA", "RECEIVED", &r), 0);
	TU_EQ_INT(r, JREG_NEW);
	TU_EQ_INT(reg(j, "p1", "c-1", "fpA", "RECEIVED", &r), 0);
	TU_EQ_INT(r, JREG_SAME);
	TU_EQ_INT(reg(j, "p1", "c-1", "fpB", "RECEIVED", &r), 0);
	TU_EQ_INT(r, JREG_CONFLICT);
	TU_EQ_INT(reg(j, "p2", "c-1", "fpB", "RECEIVED", &r), 0);
	TU_EQ_INT(r, JREG_NEW);
	TU_EQ_INT(reg(j, "p2", "c-2", "fpB", "NOSUCHSTATE", &r), -1);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request"), 2);
	TU_EQ_INT(raw_int("SELECT count(*) FROM event"), 2);
}

/* the sweeper ends (tenant, cid) in state (DENIED, ERROR, DONE) */
static void end_as(journal *j, const char *cid, const char *state)
{
	struct jcommit c = {
		.tenant = "p1", .cid = cid, .stage = JSTAGE_SWEEP, .state = state,
		.item = "{\"ended\":1}", .error_type = strcmp(state, "DONE") ? "INTERNAL_ERROR" : NULL,
	};
	TU_EQ_INT(journal_commit(j, &c), 1);
}

static int reg_full(journal *j, const char *cid, const char *fp, enum jstage st, int redelivered,
    const char *item, enum journal_reg *out)
{
	struct jregister r = {
		.tenant = "p1", .cid = cid, .fingerprint = fp, .state = "RECEIVED", .stage = st,
		.received_ms = 1000, .item = item, .redelivered = redelivered,
	};
	return journal_register(j, &r, out);
}

static int events_by_submission(void *arg, const struct jevent *e)
{
	int64_t *by = arg;   /* by[n]: events of submission n */
	if (e->submission >= 1 && e->submission < 4)
		by[e->submission]++;
	return 0;
}

/* An ended request's correlationId sent again by a client is a new
 * submission of the same row (rs-delivery keeps no row of an ended
 * request); copies of the same message are not. */
static void test_register_again_after_the_end_is_a_new_submission(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	struct jrequest q;
	struct jregister look = { .tenant = "p1", .cid = "c-1", .fingerprint = "fpA",
		.state = "RECEIVED", .stage = JSTAGE_INGEST };
	TU_EQ_INT(reg_full(j, "c-1", "fpA", JSTAGE_INGEST, 0, "{\"s\":1}", &r), 0);
	TU_EQ_INT(r, JREG_NEW);
	end_as(j, "c-1", "DENIED");
	/* the broker's redelivery of the same message: a copy */
	TU_EQ_INT(reg_full(j, "c-1", "fpA", JSTAGE_INGEST, 1, "{\"s\":1}", &r), 0);
	TU_EQ_INT(r, JREG_SAME);
	/* a stage fed the ended request's item by hand: as before */
	TU_EQ_INT(reg_full(j, "c-1", "fpA", JSTAGE_VALIDATE, 0, "{\"s\":1}", &r), 0);
	TU_EQ_INT(r, JREG_SAME);
	TU_EQ_INT(reg_full(j, "c-1", "fpB", JSTAGE_VALIDATE, 0, "{\"s\":1}", &r), 0);
	TU_EQ_INT(r, JREG_CONFLICT);
	/* the client sends it again, same body: submission 2 */
	TU_EQ_INT(journal_lookup(j, &look, &r), 1);
	TU_EQ_INT(r, JREG_AGAIN);
	TU_EQ_INT(reg_full(j, "c-1", "fpA", JSTAGE_INGEST, 0, "{\"s\":2}", &r), 0);
	TU_EQ_INT(r, JREG_AGAIN);
	TU_EQ_INT(journal_get(j, "p1", "c-1", &q), 1);
	TU_EQ_STR(q.state, "RECEIVED");
	TU_EQ_INT(q.submission, 2);
	TU_CHECK(q.error_type == NULL);
	journal_request_clear(&q);
	/* in flight now: the same body is a copy, another a conflict */
	TU_EQ_INT(reg_full(j, "c-1", "fpA", JSTAGE_INGEST, 0, "{}", &r), 0);
	TU_EQ_INT(r, JREG_SAME);
	TU_EQ_INT(reg_full(j, "c-1", "fpB", JSTAGE_INGEST, 0, "{}", &r), 0);
	TU_EQ_INT(r, JREG_CONFLICT);
	/* ERROR, then another body: submission 3, whose input is its own */
	end_as(j, "c-1", "ERROR");
	TU_EQ_INT(reg_full(j, "c-1", "fpB", JSTAGE_INGEST, 0, "{\"s\":3}", &r), 0);
	TU_EQ_INT(r, JREG_AGAIN);
	char *in = journal_input_item(j, JSTAGE_VALIDATE, "p1", "c-1");
	TU_EQ_STR(in, "{\"s\":3}");
	free(in);
	/* DONE: the same body is answered again, another is submission 4 */
	end_as(j, "c-1", "DONE");
	TU_EQ_INT(reg_full(j, "c-1", "fpB", JSTAGE_INGEST, 0, "{}", &r), 0);
	TU_EQ_INT(r, JREG_SAME);
	int64_t by[4] = { 0 };
	TU_EQ_INT(journal_history(j, "p1", "c-1", events_by_submission, by), 6);
	TU_EQ_INT(by[1], 2);   /* RECEIVED, DENIED */
	TU_EQ_INT(by[2], 2);   /* RECEIVED, ERROR */
	TU_EQ_INT(by[3], 2);   /* RECEIVED, DONE */
	TU_EQ_INT(reg_full(j, "c-1", "fpC", JSTAGE_INGEST, 0, "{}", &r), 0);
	TU_EQ_INT(r, JREG_AGAIN);
	TU_EQ_INT(journal_get(j, "p1", "c-1", &q), 1);
	TU_EQ_INT(q.submission, 4);
	journal_request_clear(&q);
	/* the validate stage takes it up like any other */
	TU_EQ_INT(journal_claim(j, JSTAGE_VALIDATE, "p1", "c-1"), 1);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request"), 1);
}

static void test_claim_commit_and_outbox(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	reg(j, "p1", "c-1", "fp", "RECEIVED", &r);
	TU_EQ_INT(journal_claim(j, JSTAGE_FETCH, "p1", "c-1"), 0);     /* wrong stage */
	TU_EQ_INT(journal_claim(j, JSTAGE_VALIDATE, "p1", "c-1"), 1);
	TU_EQ_INT(journal_claim(j, JSTAGE_VALIDATE, "p1", "c-1"), 0);  /* already busy */
	struct jrequest q;
	TU_EQ_INT(journal_get(j, "p1", "c-1", &q), 1);
	TU_EQ_STR(q.state, "VALIDATING");
	TU_CHECK(q.claimed_by && strstr(q.claimed_by, "pid:"));
	journal_request_clear(&q);

	struct jcommit c = {
		.tenant = "p1", .cid = "c-1", .stage = JSTAGE_VALIDATE, .state = "GRANTED",
		.item = "{\"granted\":true}", .response = "{\"status\":\"GRANTED\"}",
		.headers = "{\"regards.tenant\":\"p1\"}", .expires_ms = 5000,
	};
	struct jcommit wrong = c;
	wrong.stage = JSTAGE_ORDER;
	TU_EQ_INT(journal_commit(j, &wrong), 0);                       /* guard */
	TU_EQ_INT(journal_commit(j, &c), 1);
	TU_EQ_INT(journal_commit(j, &c), 0);                           /* twice: guard */
	TU_EQ_INT(journal_get(j, "p1", "c-1", &q), 1);
	TU_EQ_STR(q.state, "GRANTED");
	TU_EQ_INT(q.expires_ms, 5000);
	TU_CHECK(q.claimed_by == NULL);
	journal_request_clear(&q);
	TU_EQ_INT(journal_get(j, "p1", "nope", &q), 0);

	char *in = journal_input_item(j, JSTAGE_ORDER, "p1", "c-1");
	TU_EQ_STR(in, "{\"granted\":true}");
	free(in);
	in = journal_input_item(j, JSTAGE_VALIDATE, "p1", "c-1");
	TU_EQ_STR(in, "{\"x\":1}");
	free(in);
	TU_CHECK(journal_input_item(j, JSTAGE_FETCH, "p1", "c-1") == NULL);
	TU_EQ_STR(journal_error(j), "");

	/* a response without a state change, and a resend of the latest */
	TU_EQ_INT(journal_outbox_put(j, "p1", "c-1", "{\"status\":\"DENIED\"}", NULL), 0);
	TU_EQ_INT(journal_outbox_put(j, "p1", "nope", "{}", NULL), -1);
	TU_EQ_INT(journal_resend_latest(j, "p1", "c-1"), 1);
	TU_EQ_INT(journal_resend_latest(j, "p1", "nope"), 0);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM outbox WHERE sent_at IS NULL"), 3);
	TU_EQ_INT(raw_int("SELECT count(*) FROM outbox WHERE id = 3 AND body LIKE '%DENIED%'"), 1);
}

struct seen { int n; int64_t ids[16]; char bodies[16][64]; };

static int collect_outbox(void *arg, const struct joutbox *o)
{
	struct seen *s = arg;
	s->ids[s->n] = o->id;
	snprintf(s->bodies[s->n], sizeof s->bodies[0], "%s/%s %s", o->tenant, o->cid, o->body);
	return ++s->n == 16;
}

/* A fresh journal, two requests p1/a and p1/b, outbox rows 1 (a), 2 (b), 3 (a) */
static journal *three_rows(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	reg(j, "p1", "a", "fp", "RECEIVED", &r);
	reg(j, "p1", "b", "fp", "RECEIVED", &r);
	journal_outbox_put(j, "p1", "a", "1", NULL);
	journal_outbox_put(j, "p1", "b", "2", NULL);
	journal_outbox_put(j, "p1", "a", "3", NULL);
	return j;
}

static void test_outbox_in_order_and_marked_sent(void)
{
	journal *j = three_rows();
	struct seen s = { 0 };
	TU_EQ_INT(journal_outbox_unsent(j, 0, 10, collect_outbox, &s), 3);
	TU_EQ_STR(s.bodies[0], "p1/a 1");
	TU_EQ_STR(s.bodies[1], "p1/b 2");
	TU_EQ_STR(s.bodies[2], "p1/a 3");
	memset(&s, 0, sizeof s);
	TU_EQ_INT(journal_outbox_unsent(j, 1, 1, collect_outbox, &s), 1);
	TU_EQ_STR(s.bodies[0], "p1/b 2");
	int64_t ids[] = { 1, 2 };
	TU_EQ_INT(journal_outbox_mark_sent(j, ids, 2), 0);
	memset(&s, 0, sizeof s);
	TU_EQ_INT(journal_outbox_unsent(j, 0, 10, collect_outbox, &s), 1);
	TU_EQ_STR(s.bodies[0], "p1/a 3");
	/* confirms out of order, with holes: exactly those ids are marked */
	for (int k = 4; k <= 9; k++)
		TU_EQ_INT(journal_outbox_put(j, "p1", "a", "{}", NULL), 0);
	int64_t some[] = { 9, 4, 7, 5, 4 };
	TU_EQ_INT(journal_outbox_mark_sent(j, some, 5), 0);
	memset(&s, 0, sizeof s);
	TU_EQ_INT(journal_outbox_unsent(j, 0, 10, collect_outbox, &s), 3);
	TU_EQ_INT(s.ids[0], 3);
	TU_EQ_INT(s.ids[1], 6);
	TU_EQ_INT(s.ids[2], 8);
	journal_close(j);
}

struct pend { int n; char what[8][128]; };

static int collect_pending(void *arg, const char *t, const char *c, const char *item)
{
	struct pend *p = arg;
	snprintf(p->what[p->n], sizeof p->what[0], "%s/%s %s", t, c, item ? item : "(null)");
	return ++p->n == 8;
}

static void test_takeback_and_pending_return_input_items(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	struct jregister rg = {
		.tenant = "p1", .cid = "a", .fingerprint = "fp", .state = "ORDERED",
		.stage = JSTAGE_ORDER, .item = "{\"files\":[]}",
	};
	journal_register(j, &rg, &r);
	rg.cid = "b";
	journal_register(j, &rg, &r);
	rg.cid = "c";
	journal_register(j, &rg, &r);
	TU_EQ_INT(journal_claim(j, JSTAGE_FETCH, "p1", "b"), 1);
	struct pend p = { 0 };
	TU_EQ_INT(journal_pending(j, JSTAGE_FETCH, collect_pending, &p), 2);
	TU_EQ_STR(p.what[0], "p1/a {\"files\":[]}");
	TU_EQ_STR(p.what[1], "p1/c {\"files\":[]}");
	TU_EQ_INT(journal_takeback(j, JSTAGE_FETCH), 1);
	memset(&p, 0, sizeof p);
	TU_EQ_INT(journal_pending(j, JSTAGE_FETCH, collect_pending, &p), 3);
	TU_EQ_STR(p.what[1], "p1/b {\"files\":[]}");
	TU_EQ_INT(journal_pending(j, JSTAGE_PACK, collect_pending, &p), 0);
	journal_close(j);
}

static int count_events(void *arg, const struct jevent *e)
{
	int *n = arg;
	(void)e;
	(*n)++;
	return 0;
}

static void test_sweep_ends_any_non_terminal_request(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	struct jregister rg = {
		.tenant = "p1", .cid = "a", .fingerprint = "fp", .state = "RECEIVED",
		.stage = JSTAGE_INGEST, .item = "{}", .expires_ms = 100,
	};
	journal_register(j, &rg, &r);
	rg.cid = "b";
	rg.expires_ms = 9000000000000LL;
	journal_register(j, &rg, &r);
	struct pend p = { 0 };
	int64_t first = 0;
	TU_EQ_INT(journal_next_expiry(j, 0, &first), 1);
	TU_EQ_INT(first, 100);
	TU_EQ_INT(journal_next_expiry(j, 100, &first), 1);   /* the one after a's */
	TU_EQ_INT(first, 9000000000000LL);
	TU_EQ_INT(journal_expired(j, 1000, collect_pending, &p), 1);
	TU_EQ_STR(p.what[0], "p1/a {}");
	struct jcommit c = { .tenant = "p1", .cid = "a", .stage = JSTAGE_SWEEP, .state = "ERROR",
		.error_type = "EXPIRED", .response = "{\"status\":\"ERROR\"}" };
	TU_EQ_INT(journal_commit(j, &c), 1);
	TU_EQ_INT(journal_commit(j, &c), 0);   /* terminal: never twice */
	memset(&p, 0, sizeof p);
	TU_EQ_INT(journal_expired(j, 1000, collect_pending, &p), 0);
	int64_t next = 0;
	TU_EQ_INT(journal_next_expiry(j, 0, &next), 1);   /* a is ended: b's is next */
	TU_EQ_INT(next, 9000000000000LL);
	TU_EQ_INT(journal_next_expiry(j, 9000000000000LL, &next), 0);
	int n = 0;
	TU_EQ_INT(journal_history(j, "p1", "a", count_events, &n), 2);
	TU_EQ_INT(n, 2);
	journal_close(j);
}

static void test_live_item_is_the_latest_item_of_a_request_not_ended(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	struct jregister rg = {
		.tenant = "p1", .cid = "a", .fingerprint = "fp", .state = "GRANTED",
		.stage = JSTAGE_VALIDATE, .item = "{\"granted\":1}",
	};
	journal_register(j, &rg, &r);
	TU_EQ_INT(journal_claim(j, JSTAGE_ORDER, "p1", "a"), 1);
	struct jcommit c = { .tenant = "p1", .cid = "a", .stage = JSTAGE_ORDER, .state = "ORDERED",
		.item = "{\"ordered\":1}" };
	TU_EQ_INT(journal_commit(j, &c), 1);
	struct pend p = { 0 };
	TU_EQ_INT(journal_live_item(j, "p1", "a", collect_pending, &p), 1);
	TU_EQ_STR(p.what[0], "p1/a {\"ordered\":1}");
	TU_EQ_INT(journal_live_item(j, "p1", "nope", collect_pending, &p), 0);
	struct jcommit end = { .tenant = "p1", .cid = "a", .stage = JSTAGE_SWEEP, .state = "ERROR",
		.error_type = "INTERNAL_ERROR", .response = "{}" };
	TU_EQ_INT(journal_commit(j, &end), 1);
	TU_EQ_INT(journal_live_item(j, "p1", "a", collect_pending, &p), 0);
	TU_EQ_INT(p.n, 1);
	journal_close(j);
}

static void test_batch_is_all_or_nothing_and_bad_calls_spoil_only_themselves(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	TU_EQ_INT(journal_begin(j), 0);
	reg(j, "p1", "a", "fp", "RECEIVED", &r);
	TU_EQ_INT(reg(j, "p1", "bad", "fp", "NOSTATE", &r), -1);
	reg(j, "p1", "b", "fp", "RECEIVED", &r);
	TU_EQ_INT(journal_outbox_put(j, "p1", "ghost", "{}", NULL), -1);
	TU_EQ_INT(journal_end(j), 0);
	TU_EQ_INT(journal_begin(j), 0);
	reg(j, "p1", "c", "fp", "RECEIVED", &r);
	TU_EQ_INT(journal_abort(j), 0);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request"), 2);
	TU_EQ_INT(raw_int("SELECT count(*) FROM outbox"), 0);
}

/* A call failing after it changed rows (here an event insert refused by a
 * trigger, after the state update of its commit) spoils the whole batch:
 * journal_end rolls everything back and reports that call's error. */
static void test_a_call_failing_half_way_spoils_the_batch(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	reg(j, "p1", "a", "fp", "RECEIVED", &r);
	reg(j, "p1", "b", "fp", "RECEIVED", &r);
	journal_close(j);
	TU_EQ_INT(raw_exec("CREATE TRIGGER boom BEFORE INSERT ON event WHEN NEW.item = 'boom'"
	    " BEGIN SELECT RAISE(ABORT, 'refused by boom'); END"), 0);
	j = jopen();
	struct jcommit ok = { .tenant = "p1", .cid = "a", .stage = JSTAGE_VALIDATE,
		.state = "GRANTED", .item = "{}", .response = "{}", .claim = 1 };
	struct jcommit bad = ok;
	bad.cid = "b";
	bad.item = "boom";
	TU_EQ_INT(journal_begin(j), 0);
	TU_EQ_INT(journal_commit(j, &ok), 1);
	TU_EQ_INT(journal_commit(j, &bad), -1);
	TU_CHECK(strstr(journal_error(j), "refused by boom") != NULL);
	TU_EQ_INT(journal_commit(j, &ok), -1);          /* the batch is spoiled */
	TU_EQ_INT(journal_end(j), -1);
	TU_CHECK(strstr(journal_error(j), "refused by boom") != NULL);
	TU_CHECK(strstr(journal_error(j), "batch rolled back") != NULL);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE state = 'RECEIVED'"), 2);
	TU_EQ_INT(raw_int("SELECT count(*) FROM outbox"), 0);
	/* the next batch starts clean; a guard that fails spoils nothing */
	TU_EQ_INT(journal_begin(j), 0);
	TU_EQ_INT(journal_commit(j, &ok), 1);
	TU_EQ_INT(journal_commit(j, &ok), 0);           /* GRANTED now: guard */
	TU_EQ_INT(journal_end(j), 0);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE state = 'GRANTED'"), 1);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE claimed_at > 0 AND claimed_by IS NULL"), 1);
	TU_EQ_INT(raw_int("SELECT count(*) FROM event WHERE stage = 'validate' AND started_at > 0"), 1);
	TU_EQ_INT(raw_int("SELECT count(*) FROM outbox"), 1);
}

/* A commit that is its own claim takes the request from the stage's input
 * state, not from any other; outside a batch it is its own transaction. */
static void test_commit_with_claim_guards_on_the_input_state(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	reg(j, "p1", "a", "fp", "RECEIVED", &r);
	reg(j, "p1", "o", "fp", "GRANTED", &r);
	struct jcommit c = { .tenant = "p1", .cid = "a", .stage = JSTAGE_VALIDATE,
		.state = "DENIED", .error_type = "FORBIDDEN", .claim = 1 };
	struct jcommit order = c;
	order.cid = "o";
	TU_EQ_INT(journal_commit(j, &order), 0);        /* GRANTED is not validate's input */
	TU_EQ_INT(journal_commit(j, &c), 1);
	TU_EQ_INT(journal_commit(j, &c), 0);
	order.stage = JSTAGE_ORDER;
	order.state = "ORDERED";
	TU_EQ_INT(journal_commit(j, &order), 1);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE state = 'DENIED'"
	    " AND error_type = 'FORBIDDEN'"), 1);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE state = 'ORDERED'"), 1);
}

/* Two processes, released together, claim the same 300 requests in
 * shuffled orders; every request must be won by exactly one of them. */
static int claimer(const char *name, int go)
{
	char err[512], x;
	journal *j;
	int temp, wins = 0;
	if (journal_open(path, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp) < 0)
		return -1;
	journal_set_owner(j, name);
	int order[300];
	unsigned seed = (unsigned)getpid();
	for (int k = 0; k < 300; k++)
		order[k] = k;
	for (int k = 299; k > 0; k--) {   /* each claimer its own shuffled order */
		int o = rand_r(&seed) % (k + 1), t = order[k];
		order[k] = order[o];
		order[o] = t;
	}
	(void)!read(go, &x, 1);   /* EOF when the parent releases both */
	for (int k = 0; k < 300; k++) {
		char cid[16];
		snprintf(cid, sizeof cid, "c%d", order[k]);
		int rc = journal_claim(j, JSTAGE_VALIDATE, "p1", cid);
		if (rc < 0)
			return -1;
		wins += rc;
	}
	journal_close(j);
	return wins;
}

static void test_claim_race_between_processes_has_one_winner(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	journal_begin(j);
	for (int k = 0; k < 300; k++) {
		char cid[16];
		snprintf(cid, sizeof cid, "c%d", k);
		reg(j, "p1", cid, "fp", "RECEIVED", &r);
	}
	journal_end(j);
	journal_close(j);
	int fds[2][2], go[2];
	pid_t pids[2];
	if (pipe(go) < 0)
		abort();
	for (int i = 0; i < 2; i++) {
		if (pipe(fds[i]) < 0 || (pids[i] = fork()) < 0)
			abort();
		if (pids[i] == 0) {
			close(go[1]);
			int w = claimer(i ? "B" : "A", go[0]);
			(void)!write(fds[i][1], &w, sizeof w);
			_exit(0);
		}
		close(fds[i][1]);
	}
	close(go[0]);
	usleep(100000);   /* let both open the journal, then release them */
	close(go[1]);
	int total = 0;
	for (int i = 0; i < 2; i++) {
		int w = -1, st;
		TU_EQ_INT(read(fds[i][0], &w, sizeof w), sizeof w);
		close(fds[i][0]);
		waitpid(pids[i], &st, 0);
		TU_CHECK(w >= 0);
		printf("# claimer %c won %d\n", 'A' + i, w);
		total += w;
	}
	TU_EQ_INT(total, 300);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE state = 'VALIDATING'"), 300);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE claimed_by LIKE 'A:%'") +
	    raw_int("SELECT count(*) FROM request WHERE claimed_by LIKE 'B:%'"), 300);
}

/* A child registers a batch of 2000 requests and is killed with SIGKILL
 * around its commit; after reopening, the batch is wholly there or absent. */
static void test_kill_9_during_batch_commit_leaves_all_or_nothing(void)
{
	fresh();
	journal_close(jopen());
	int whole = 0, none = 0;
	srand((unsigned)time(NULL));
	for (int round = 0; round < 12; round++) {
		int sync[2];
		if (pipe(sync) < 0)
			abort();
		pid_t pid = fork();
		if (pid == 0) {
			char err[512], cid[32];
			journal *j;
			int temp;
			enum journal_reg r;
			close(sync[0]);
			if (journal_open(path, JOURNAL_SYNC_FULL, &j, err, sizeof err, &temp) < 0)
				_exit(1);
			journal_begin(j);
			for (int k = 0; k < 2000; k++) {
				snprintf(cid, sizeof cid, "r%d-%d", round, k);
				reg(j, "p1", cid, "fp", "RECEIVED", &r);
			}
			(void)!write(sync[1], "x", 1);
			journal_end(j);
			for (;;)
				pause();
		}
		close(sync[1]);
		char x;
		TU_EQ_INT(read(sync[0], &x, 1), 1);
		close(sync[0]);
		struct timespec d = { 0, (rand() % 4000) * 1000L };
		nanosleep(&d, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		char q[128];
		snprintf(q, sizeof q, "SELECT count(*) FROM request WHERE correlation_id LIKE 'r%d-%%'", round);
		long long n = raw_int(q);
		snprintf(q, sizeof q, "SELECT count(*) FROM event e JOIN request r ON r.id = e.request_id"
		    " WHERE r.correlation_id LIKE 'r%d-%%'", round);
		long long ev = raw_int(q);
		TU_CHECK(n == 0 || n == 2000);
		TU_EQ_INT(ev, n);
		whole += n == 2000;
		none += n == 0;
	}
	printf("# batches committed whole: %d, absent: %d\n", whole, none);
	TU_EQ_INT(raw_int("SELECT integrity_check = 'ok' FROM pragma_integrity_check"), 1);
	journal_close(jopen());
}

/* ---- inspection and upkeep ---- */

static void reg_at(journal *j, const char *tenant, const char *cid, const char *state,
    int64_t received_ms)
{
	enum journal_reg r;
	struct jregister rg = {
		.tenant = tenant, .cid = cid, .fingerprint = "fp", .state = state,
		.stage = JSTAGE_INGEST, .received_ms = received_ms, .item = "{}",
	};
	TU_EQ_INT(journal_register(j, &rg, &r), 0);
}

/* What schema 5 changed, undone (to make an older journal) */
#define UNDO_8 "ALTER TABLE event DROP COLUMN submission; ALTER TABLE request DROP COLUMN submission; "
#define UNDO_7 UNDO_8 "DROP TABLE upload_part; DROP TABLE upload; "
#define UNDO_6 UNDO_7 "DROP INDEX request_queue; DROP TABLE counter;" \
	" ALTER TABLE request DROP COLUMN last_error; ALTER TABLE request DROP COLUMN next_attempt_at;" \
	" ALTER TABLE request DROP COLUMN attempts;"
#define UNDO_5 UNDO_6 " DROP INDEX outbox_set_aside; DROP INDEX outbox_unsent;" \
	" ALTER TABLE outbox DROP COLUMN set_aside_why; ALTER TABLE outbox DROP COLUMN set_aside_at;" \
	" CREATE INDEX outbox_unsent ON outbox(id) WHERE sent_at IS NULL;"

/* A journal of schema 1, as ferry 0.1 wrote it, is migrated with its rows. */
static void test_schema_1_is_migrated_keeping_its_rows(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "old", "GRANTED", 1000);
	journal_close(j);
	raw_exec("DROP INDEX request_live_expiry; DROP INDEX request_received;"
	    " DROP INDEX request_ended; DROP INDEX event_stage;"
	    " CREATE INDEX request_expiry ON request(expires_at) WHERE expires_at IS NOT NULL;"
	    " DROP TABLE order_wait;" UNDO_5 " PRAGMA user_version = 1");
	j = jopen();
	journal_close(j);
	TU_EQ_INT(raw_int("PRAGMA user_version"), JOURNAL_SCHEMA_VERSION);
	TU_EQ_INT(raw_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"
	    " ('request_live_expiry','request_received','request_ended','event_stage')"), 4);
	TU_EQ_INT(raw_int("SELECT count(*) FROM sqlite_master WHERE name = 'request_expiry'"), 0);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE correlation_id = 'old'"), 1);
}

/* A journal of schema 4: its unsent rows stay unsent, none set aside. */
static void test_schema_4_is_migrated_keeping_its_unsent_rows(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "old", "GRANTED", 1000);
	journal_outbox_put(j, "p1", "old", "{}", NULL);
	journal_close(j);
	raw_exec(UNDO_5 " PRAGMA user_version = 4");
	j = jopen();
	struct seen s = { 0 };
	TU_EQ_INT(journal_outbox_unsent(j, 0, 10, collect_outbox, &s), 1);
	journal_close(j);
	TU_EQ_INT(raw_int("PRAGMA user_version"), JOURNAL_SCHEMA_VERSION);
	TU_EQ_INT(raw_int("SELECT count(*) FROM outbox WHERE set_aside_at IS NULL"), 1);
	TU_EQ_INT(raw_int("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"
	    " ('outbox_unsent','outbox_set_aside')"), 2);
}

struct names { int n; char v[32][96]; };

static int collect_request(void *arg, const struct jrequest *r)
{
	struct names *x = arg;
	snprintf(x->v[x->n], sizeof x->v[0], "%s/%s %s", r->tenant, r->cid, r->state);
	return ++x->n == 32;
}

struct problems { int n; char v[16][256]; };

static int collect_problem(void *arg, const struct jproblem *p)
{
	struct problems *x = arg;
	snprintf(x->v[x->n], sizeof x->v[0], "%s %s/%s %s", p->check, p->tenant ? p->tenant : "-",
	    p->cid ? p->cid : "-", p->detail);
	return ++x->n == 16;
}

/* The SQL lists of live, busy and terminal states agree with the stages. */
static void test_state_lists_agree_with_the_stage_table(void)
{
	fresh();
	journal *j = jopen();
	int live = 0, busy;
	char cid[32];
	for (int i = 0; i < JSTAGE_COUNT; i++) {
		const struct jstage_info *si = journal_stage(i);
		const char *states[] = { si->input, si->busy };
		for (int k = 0; k < 2; k++) {
			if (!states[k])
				continue;
			TU_EQ_INT(journal_state_stage(states[k], &busy), i);
			TU_EQ_INT(busy, k == 1);
			snprintf(cid, sizeof cid, "%s", states[k]);
			reg_at(j, "p1", cid, states[k], 1000);
			live++;
		}
	}
	int64_t next = -1;
	TU_EQ_INT(journal_next_expiry(j, 0, &next), 0);     /* none has an expiry yet */
	TU_EQ_INT(next, -1);
	TU_EQ_INT(journal_state_stage("DONE", &busy), -1);
	TU_EQ_INT(journal_state_stage("NOPE", &busy), -1);
	reg_at(j, "p1", "d", "DONE", 1000);
	struct names x = { 0 };
	struct jfilter f = { .live = 1 };
	TU_EQ_INT(journal_list(j, &f, collect_request, &x), live);
	TU_EQ_INT(live, 10);
	/* check knows every live state, and checks the owners of the busy ones:
	 * registered busy, they are claimed by nobody; DONE has no response */
	struct problems p = { 0 };
	int dead = 0;
	TU_EQ_INT(journal_check(j, collect_problem, &p), 6);
	for (int i = 0; i < p.n; i++)
		dead += strncmp(p.v[i], "dead-owner ", 11) == 0;
	TU_EQ_INT(dead, 5);
	TU_EQ_STR(p.v[0], "no-response p1/d DONE: ended without a response in the outbox");
	journal_close(j);
}

static void test_list_filters_newest_first(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "a", "RECEIVED", 1000);
	reg_at(j, "p1", "b", "DENIED", 3000);
	reg_at(j, "p2", "c", "GRANTED", 2000);
	reg_at(j, "p2", "d", "DONE", 4000);
	struct names x = { 0 };
	struct jfilter all = { 0 };
	TU_EQ_INT(journal_list(j, &all, collect_request, &x), 4);
	TU_EQ_STR(x.v[0], "p2/d DONE");
	TU_EQ_STR(x.v[1], "p1/b DENIED");
	TU_EQ_STR(x.v[3], "p1/a RECEIVED");
	struct jfilter cases[] = {
		{ .tenant = "p1" }, { .state = "GRANTED" }, { .live = 1 }, { .since_ms = 2500 },
		{ .limit = 1 }, { .tenant = "p2", .live = 1 }, { .tenant = "p3" },
	};
	const char *first[] = { "p1/b DENIED", "p2/c GRANTED", "p2/c GRANTED", "p2/d DONE",
		"p2/d DONE", "p2/c GRANTED", NULL };
	int count[] = { 2, 1, 2, 2, 1, 1, 0 };
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		memset(&x, 0, sizeof x);
		TU_EQ_INT(journal_list(j, &cases[i], collect_request, &x), count[i]);
		if (first[i])
			TU_EQ_STR(x.v[0], first[i]);
	}
	memset(&x, 0, sizeof x);
	struct jfilter odd = { .tenant = "p1'; DROP TABLE request; --" };
	TU_EQ_INT(journal_list(j, &odd, collect_request, &x), 0);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request"), 4);
}

static int collect_outbox_sent(void *arg, const struct joutbox *o)
{
	struct seen *s = arg;
	s->ids[s->n] = o->sent_ms;
	snprintf(s->bodies[s->n], sizeof s->bodies[0], "%s/%s %s", o->tenant, o->cid, o->body);
	return ++s->n == 16;
}

static void test_outbox_of_a_request_shows_sent_and_unsent(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "a", "RECEIVED", 1000);
	reg_at(j, "p1", "b", "RECEIVED", 1000);
	journal_outbox_put(j, "p1", "a", "1", NULL);
	journal_outbox_put(j, "p1", "b", "2", NULL);
	journal_outbox_put(j, "p1", "a", "3", NULL);
	int64_t first = 1;
	journal_outbox_mark_sent(j, &first, 1);
	struct seen s = { 0 };
	TU_EQ_INT(journal_outbox_of(j, "p1", "a", collect_outbox_sent, &s), 2);
	TU_EQ_STR(s.bodies[0], "p1/a 1");
	TU_CHECK(s.ids[0] > 0);
	TU_EQ_STR(s.bodies[1], "p1/a 3");
	TU_EQ_INT(s.ids[1], 0);
	TU_EQ_INT(journal_outbox_of(j, "p1", "nope", collect_outbox_sent, &s), 0);
	journal_close(j);
}

struct counts { int n; char v[16][64]; };

static int collect_count(void *arg, const char *key, int64_t n)
{
	struct counts *c = arg;
	snprintf(c->v[c->n], sizeof c->v[0], "%s=%lld", key, (long long)n);
	return ++c->n == 16;
}

static void test_counts_and_totals(void)
{
	fresh();
	journal *j = jopen();
	int64_t now = 1000000000000LL;
	reg_at(j, "p1", "a", "RECEIVED", now - 10);
	reg_at(j, "p1", "b", "RECEIVED", now - 7200000);
	reg_at(j, "p1", "c", "RECEIVED", now - 2 * 86400000LL);
	TU_EQ_INT(journal_claim(j, JSTAGE_VALIDATE, "p1", "c"), 1);
	struct jcommit cm = { .tenant = "p1", .cid = "c", .stage = JSTAGE_VALIDATE,
		.state = "DENIED", .error_type = "FORBIDDEN", .response = "{}" };
	TU_EQ_INT(journal_commit(j, &cm), 1);
	/* a stage's events carry the time of its claim (started_at) */
	raw_exec("INSERT INTO event (request_id, stage, state, started_at, at, bytes)"
	    " VALUES (1, 's3-put', 'DONE', 4, 5, 1000), (2, 's3-put', 'DONE', 4, 5, 234),"
	    " (2, 'fetch', 'FETCHED', 4, 5, 99999)");
	struct counts c = { 0 };
	TU_EQ_INT(journal_count_by(j, JCOUNT_STATE, collect_count, &c), 2);
	TU_EQ_STR(c.v[0], "DENIED=1");
	TU_EQ_STR(c.v[1], "RECEIVED=2");
	memset(&c, 0, sizeof c);
	TU_EQ_INT(journal_count_by(j, JCOUNT_ERROR_TYPE, collect_count, &c), 1);
	TU_EQ_STR(c.v[0], "FORBIDDEN=1");
	struct jtotals t;
	TU_EQ_INT(journal_totals(j, now, &t), 0);
	TU_EQ_INT(t.requests, 3);
	TU_EQ_INT(t.received_hour, 1);
	TU_EQ_INT(t.received_day, 2);
	TU_EQ_INT(t.outbox_unsent, 1);
	TU_CHECK(t.oldest_unsent_ms > 0);
	TU_EQ_INT(t.bytes_delivered, 1234);
	TU_EQ_INT(t.schema_version, JOURNAL_SCHEMA_VERSION);
	int64_t one = 1;
	journal_outbox_mark_sent(j, &one, 1);
	TU_EQ_INT(journal_totals(j, now, &t), 0);
	TU_EQ_INT(t.outbox_unsent, 0);
	TU_EQ_INT(t.oldest_unsent_ms, 0);
	journal_close(j);
}

struct hist { int n; char v[8][128]; };

static int collect_hist(void *arg, const struct jdurations *d)
{
	struct hist *h = arg;
	snprintf(h->v[h->n], sizeof h->v[0], "%s n=%lld sum=%.3f le=%lld,%lld,%lld", d->stage,
	    (long long)d->count, d->sum_s, (long long)d->le[0], (long long)d->le[1],
	    (long long)d->le[2]);
	return ++h->n == 8;
}

static void test_durations_are_a_cumulative_histogram_per_stage(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "a", "RECEIVED", 1000);
	/* fetch: 5 ms, 500 ms, 2 s, 20 s; pack: 1 s; an untimed ingest event */
	raw_exec("INSERT INTO event (request_id, stage, state, started_at, at) VALUES"
	    " (1, 'fetch', 'FETCHED', 1000, 1005), (1, 'fetch', 'FETCHED', 1000, 1500),"
	    " (1, 'fetch', 'ERROR', 1000, 3000), (1, 'fetch', 'FETCHED', 1000, 21000),"
	    " (1, 'pack', 'PACKED', 1000, 2000)");
	double bounds[] = { 0.01, 1, 10 };
	struct hist h = { 0 };
	TU_EQ_INT(journal_durations(j, bounds, 3, collect_hist, &h), 2);
	TU_EQ_STR(h.v[0], "fetch n=4 sum=22.505 le=1,2,3");
	TU_EQ_STR(h.v[1], "pack n=1 sum=1.000 le=0,1,1");
	double many[JOURNAL_MAX_BOUNDS + 1] = { 0 };
	TU_EQ_INT(journal_durations(j, many, JOURNAL_MAX_BOUNDS + 1, collect_hist, &h), -1);
	journal_close(j);
}

/* Sweeping a busy request keeps its claim time as the event's start; a
 * waiting one has no claim of its own, so no duration. */
static void test_sweep_records_a_duration_only_for_busy_requests(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "busy", "ORDERED", 1000);
	reg_at(j, "p1", "waiting", "RECEIVED", 1000);
	TU_EQ_INT(journal_claim(j, JSTAGE_FETCH, "p1", "busy"), 1);
	TU_EQ_INT(journal_claim(j, JSTAGE_VALIDATE, "p1", "waiting"), 1);
	struct jcommit cm = { .tenant = "p1", .cid = "waiting", .stage = JSTAGE_VALIDATE,
		.state = "GRANTED" };
	TU_EQ_INT(journal_commit(j, &cm), 1);
	struct jcommit sw = { .tenant = "p1", .cid = "busy", .stage = JSTAGE_SWEEP,
		.state = "ERROR", .error_type = "EXPIRED", .response = "{}" };
	TU_EQ_INT(journal_commit(j, &sw), 1);
	sw.cid = "waiting";
	TU_EQ_INT(journal_commit(j, &sw), 1);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM event e JOIN request r ON r.id = e.request_id"
	    " WHERE e.stage = 'sweep' AND r.correlation_id = 'busy' AND e.started_at > 0"), 1);
	TU_EQ_INT(raw_int("SELECT count(*) FROM event e JOIN request r ON r.id = e.request_id"
	    " WHERE e.stage = 'sweep' AND r.correlation_id = 'waiting' AND e.started_at IS NULL"), 1);
}

static void test_prune_deletes_old_ended_requests_whose_responses_are_sent(void)
{
	fresh();
	journal *j = jopen();
	const char *cids[] = { "old-sent-1", "old-sent-2", "old-sent-3", "old-unsent", "new-sent",
		"old-live" };
	for (int i = 0; i < 6; i++) {
		reg_at(j, "p1", cids[i], i == 5 ? "FETCHING" : "DONE", 1000);
		journal_outbox_put(j, "p1", cids[i], "{}", NULL);
	}
	raw_exec("UPDATE outbox SET sent_at = 1 WHERE request_id <> 4;"
	    " UPDATE request SET updated_at = 1000 WHERE correlation_id LIKE 'old-%';"
	    " UPDATE request SET updated_at = 9000 WHERE correlation_id = 'new-sent'");
	TU_EQ_INT(journal_prune(j, 5000, 2), 3);   /* two batches of 2, the last short */
	TU_EQ_INT(journal_prune(j, 5000, 2), 0);
	TU_EQ_INT(journal_prune(j, 5000, 0), -1);
	journal_close(j);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request"), 3);
	TU_EQ_INT(raw_int("SELECT count(*) FROM request WHERE correlation_id IN"
	    " ('old-unsent','new-sent','old-live')"), 3);
	TU_EQ_INT(raw_int("SELECT count(*) FROM event"), 3);
	TU_EQ_INT(raw_int("SELECT count(*) FROM outbox"), 3);
}

static int collect_set_aside(void *arg, const struct joutbox *o)
{
	struct seen *s = arg;
	s->ids[s->n] = o->set_aside_ms;
	snprintf(s->bodies[s->n], sizeof s->bodies[0], "%s", o->set_aside_why ? o->set_aside_why : "-");
	return ++s->n == 16;
}

/* A row set aside is no longer unsent: the rows after it come, it is
 * counted and shown with its reason; a sent row cannot be set aside. */
static void test_a_row_set_aside_no_longer_waits_and_is_shown(void)
{
	journal *j = three_rows();
	TU_EQ_INT(journal_outbox_set_aside(j, 2, "publish: too big"), 0);
	struct seen s = { 0 };
	TU_EQ_INT(journal_outbox_unsent(j, 0, 10, collect_outbox, &s), 2);
	TU_EQ_INT(s.ids[0], 1);
	TU_EQ_INT(s.ids[1], 3);
	int64_t one = 1;
	TU_EQ_INT(journal_outbox_mark_sent(j, &one, 1), 0);
	TU_EQ_INT(journal_outbox_set_aside(j, 1, "late"), 0);
	struct jtotals t;
	TU_EQ_INT(journal_totals(j, (int64_t)time(NULL) * 1000, &t), 0);
	TU_EQ_INT(t.outbox_unsent, 1);
	TU_EQ_INT(t.outbox_set_aside, 1);
	memset(&s, 0, sizeof s);
	TU_EQ_INT(journal_outbox_of(j, "p1", "b", collect_set_aside, &s), 1);
	TU_CHECK(s.ids[0] > 0);
	TU_EQ_STR(s.bodies[0], "publish: too big");
	memset(&s, 0, sizeof s);
	TU_EQ_INT(journal_outbox_of(j, "p1", "a", collect_set_aside, &s), 2);
	TU_EQ_INT(s.ids[0], 0);
	TU_EQ_STR(s.bodies[0], "-");
	struct problems x = { 0 };
	TU_EQ_INT(journal_check(j, collect_problem, &x), 1);
	TU_EQ_STR(x.v[0], "set-aside p1/b RECEIVED: a response ferry-notify set aside"
	    " (it cannot be published)");
	journal_close(j);
}

static pid_t dead_pid(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

static void test_check_reports_each_kind_of_problem(void)
{
	fresh();
	journal *j = jopen();
	const char *cids[] = { "ok", "no-event", "no-response", "bogus", "dead", "alive" };
	for (int i = 0; i < 6; i++) {
		reg_at(j, "p1", cids[i], i < 3 ? "DONE" : "ORDERED", 1000);
		journal_outbox_put(j, "p1", cids[i], "{}", NULL);
	}
	TU_EQ_INT(journal_claim(j, JSTAGE_FETCH, "p1", "alive"), 1);
	struct problems x = { 0 };
	TU_EQ_INT(journal_check(j, collect_problem, &x), 0);
	char q[256];
	snprintf(q, sizeof q, "UPDATE request SET state = 'FETCHING', claimed_by = 'fetch:%ld'"
	    " WHERE correlation_id = 'dead'", (long)dead_pid());
	raw_exec(q);
	raw_exec("DELETE FROM event WHERE request_id = 2; DELETE FROM outbox WHERE request_id = 3;"
	    " UPDATE request SET state = 'LIMBO' WHERE id = 4;"
	    " INSERT INTO outbox (request_id, body, created_at) VALUES (99, '{}', 1)");
	TU_EQ_INT(journal_check(j, collect_problem, &x), 5);
	TU_CHECK(strstr(x.v[0], "foreign-key -/- outbox row 7 refers to a missing request") == x.v[0]);
	TU_EQ_STR(x.v[1], "no-event p1/no-event DONE: no event in its history");
	TU_EQ_STR(x.v[2], "no-response p1/no-response DONE: ended without a response in the outbox");
	TU_EQ_STR(x.v[3], "unknown-state p1/bogus LIMBO: not a state of ferry");
	TU_CHECK(strstr(x.v[4], "dead-owner p1/dead FETCHING: claimed by fetch:") == x.v[4]);
	journal_close(j);
}

static void test_check_stops_at_a_corrupt_file(void)
{
	fresh();
	journal *j = jopen();
	for (int i = 0; i < 400; i++) {
		char cid[16];
		snprintf(cid, sizeof cid, "c%d", i);
		reg_at(j, "p1", cid, "RECEIVED", 1000 + i);
	}
	journal_close(j);
	raw_exec("PRAGMA wal_checkpoint(TRUNCATE)");
	/* overwrite part of a page of the request_received index in place */
	long long page = raw_int("SELECT rootpage FROM sqlite_master WHERE name = 'request_received'");
	FILE *f = fopen(path, "r+b");
	TU_CHECK(f && page > 1);
	if (!f)
		return;
	fseek(f, (page - 1) * 4096 + 200, SEEK_SET);
	for (int i = 0; i < 64; i++)
		fputc(0x5a, f);
	fclose(f);
	char err[512];
	int temp;
	if (journal_open(path, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp) < 0) {
		TU_CHECK(strstr(err, "malformed") != NULL);   /* also a detection */
		printf("# corruption found by open: %s\n", err);
		return;
	}
	struct problems x = { 0 };
	int n = journal_check(j, collect_problem, &x);
	printf("# check found %d problem(s): %s\n", n, n > 0 ? x.v[0] : journal_error(j));
	TU_CHECK(n > 0 || n == -1);
	if (n > 0)
		TU_CHECK(strncmp(x.v[0], "integrity ", 10) == 0);
	journal_close(j);
}

/* The queue: the oldest due request of each tenant in turn, wrapping round. */
static void test_claim_next_takes_tenants_in_turn(void)
{
	fresh();
	journal *j = jopen();
	const char *order[][2] = { { "a", "a0" }, { "a", "a1" }, { "a", "a2" }, { "b", "b0" },
		{ "a", "a3" }, { "c", "c0" } };
	for (size_t i = 0; i < sizeof order / sizeof *order; i++)
		reg_at(j, order[i][0], order[i][1], "GRANTED", 1000 + (int64_t)i);
	reg_at(j, "b", "elsewhere", "ORDERED", 900);
	const char *want[] = { "a/a0", "b/b0", "c/c0", "a/a1", "a/a2", "a/a3" };
	char cursor[16] = "", got[32];
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		struct jwork w;
		TU_EQ_INT(journal_claim_next(j, JSTAGE_ORDER, cursor, util_now_ms(), &w), 1);
		snprintf(got, sizeof got, "%s/%s", w.tenant, w.cid);
		TU_EQ_STR(got, want[i]);
		TU_EQ_STR(w.item, "{}");
		TU_EQ_INT(w.attempts, 0);
		snprintf(cursor, sizeof cursor, "%s", w.tenant);
		journal_work_clear(&w);
	}
	struct jwork w;
	TU_EQ_INT(journal_claim_next(j, JSTAGE_ORDER, cursor, util_now_ms(), &w), 0);
	TU_CHECK(w.tenant == NULL && w.cid == NULL);
	int64_t due = -1;
	TU_EQ_INT(journal_next_due(j, JSTAGE_ORDER, &due), 0);   /* all ORDERING now */
	TU_EQ_INT(journal_next_due(j, JSTAGE_FETCH, &due), 1);
	TU_EQ_INT(due, 0);
	journal_close(j);
}

/* A temporary failure sets a request aside until its next attempt; the
 * operator's retry makes it due now; a commit starts the next stage afresh. */
static void test_defer_sets_a_request_aside_until_due(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "c1", "PACKED", 1000);
	struct jwork w;
	int64_t now = util_now_ms(), due = 0;
	TU_EQ_INT(journal_claim_next(j, JSTAGE_S3PUT, NULL, now, &w), 1);
	journal_work_clear(&w);
	TU_EQ_INT(journal_defer(j, JSTAGE_S3PUT, "p1", "c1", "S3 unreachable", now + 60000), 1);
	TU_EQ_INT(journal_defer(j, JSTAGE_S3PUT, "p1", "c1", "again", now + 60000), 0);  /* not busy */
	struct jrequest r;
	TU_EQ_INT(journal_get(j, "p1", "c1", &r), 1);
	TU_EQ_STR(r.state, "PACKED");
	TU_EQ_INT(r.attempts, 1);
	TU_EQ_INT(r.next_attempt_ms, now + 60000);
	TU_EQ_STR(r.last_error, "S3 unreachable");
	journal_request_clear(&r);
	TU_EQ_INT(journal_claim_next(j, JSTAGE_S3PUT, NULL, now, &w), 0);
	TU_EQ_INT(journal_next_due(j, JSTAGE_S3PUT, &due), 1);
	TU_EQ_INT(due, now + 60000);
	struct jtotals t;
	TU_EQ_INT(journal_totals(j, now, &t), 0);
	TU_EQ_INT(t.retries, 1);
	TU_EQ_INT(t.waiting_retry, 1);
	TU_EQ_INT(journal_retry_now(j, "p1", "c1"), 1);
	TU_EQ_INT(journal_totals(j, now, &t), 0);
	TU_EQ_INT(t.waiting_retry, 0);
	TU_EQ_INT(journal_claim_next(j, JSTAGE_S3PUT, NULL, now, &w), 1);
	TU_EQ_INT(w.attempts, 1);
	journal_work_clear(&w);
	TU_EQ_INT(journal_retry_now(j, "p1", "c1"), 0);        /* UPLOADING waits for nobody */
	struct jcommit c = { .tenant = "p1", .cid = "c1", .stage = JSTAGE_S3PUT, .state = "ERROR",
		.item = "{}", .response = "{}", .error_type = "EXPIRED" };
	TU_EQ_INT(journal_commit(j, &c), 1);
	TU_EQ_INT(journal_get(j, "p1", "c1", &r), 1);
	TU_EQ_INT(r.attempts, 1);                              /* kept on a terminal state */
	TU_EQ_STR(r.last_error, "S3 unreachable");
	journal_request_clear(&r);
	/* on a state that goes on, the next stage starts with none */
	reg_at(j, "p1", "c2", "FETCHED", 1000);
	TU_EQ_INT(journal_claim_next(j, JSTAGE_PACK, NULL, now, &w), 1);
	journal_work_clear(&w);
	TU_EQ_INT(journal_defer(j, JSTAGE_PACK, "p1", "c2", "busy", now), 1);
	TU_EQ_INT(journal_claim_next(j, JSTAGE_PACK, NULL, now, &w), 1);
	journal_work_clear(&w);
	struct jcommit c2 = { .tenant = "p1", .cid = "c2", .stage = JSTAGE_PACK, .state = "PACKED",
		.item = "{}" };
	TU_EQ_INT(journal_commit(j, &c2), 1);
	TU_EQ_INT(journal_get(j, "p1", "c2", &r), 1);
	TU_EQ_INT(r.attempts, 0);
	TU_CHECK(r.last_error == NULL);
	journal_request_clear(&r);
	TU_EQ_INT(journal_totals(j, now, &t), 0);
	TU_EQ_INT(t.retries, 2);
	journal_close(j);
}

struct oldest { int n; char v[4][64]; };
static int collect_oldest(void *arg, const char *state, int64_t received, int64_t updated)
{
	struct oldest *o = arg;
	(void)updated;
	if (o->n < 4)
		snprintf(o->v[o->n++], sizeof o->v[0], "%s %lld", state, (long long)received);
	return 0;
}

static void test_oldest_live_request_of_each_state(void)
{
	fresh();
	journal *j = jopen();
	reg_at(j, "p1", "g2", "GRANTED", 2000);
	reg_at(j, "p2", "g1", "GRANTED", 1500);
	reg_at(j, "p1", "r1", "RECEIVED", 3000);
	reg_at(j, "p1", "d1", "DONE", 100);
	struct oldest o = { 0 };
	TU_EQ_INT(journal_oldest_by_state(j, collect_oldest, &o), 2);
	TU_EQ_STR(o.v[0], "GRANTED 1500");
	TU_EQ_STR(o.v[1], "RECEIVED 3000");
	journal_close(j);
}

static int collect_orphan(void *arg, const struct jupload *u)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s/%s %s %s;", u->tenant, u->cid, u->upload_id, u->key);
	return 0;
}

/* A multipart upload's record: parts kept as acknowledged, read back in
 * order, replaced by a new upload, an orphan once its request stops
 * uploading, gone when forgotten or when the request is pruned. */
static void test_upload_records_resume_and_orphans(void)
{
	fresh();
	journal *j = jopen();
	struct jupload u;
	char orphans[256] = "";
	reg_at(j, "p1", "c1", "UPLOADING", 1000);
	reg_at(j, "p1", "c2", "PACKED", 1000);
	TU_EQ_INT(journal_upload_get(j, "p1", "c1", &u), 0);
	TU_EQ_INT(journal_upload_begin(j, "p1", "c1", "b", "c1/P.zip", "id-1", 5242880, 12000000), 0);
	TU_CHECK(journal_upload_begin(j, "p1", "nope", "b", "k", "id-x", 5242880, 1) < 0);
	struct jupload_part p2 = { 2, 5242880, "22222222222222222222222222222222", "e2" };
	struct jupload_part p1 = { 1, 5242880, "11111111111111111111111111111111", "e1" };
	TU_EQ_INT(journal_upload_part(j, "p1", "c1", "id-1", &p2), 0);
	TU_EQ_INT(journal_upload_part(j, "p1", "c1", "id-1", &p1), 0);
	TU_EQ_INT(journal_upload_part(j, "p1", "c1", "id-other", &p1), 0);   /* not that upload: nothing */
	TU_EQ_INT(journal_upload_get(j, "p1", "c1", &u), 1);
	TU_EQ_STR(u.upload_id, "id-1");
	TU_EQ_STR(u.key, "c1/P.zip");
	TU_EQ_INT(u.part_size, 5242880);
	TU_EQ_INT(u.size, 12000000);
	TU_EQ_INT(u.nparts, 2);
	TU_EQ_INT(u.parts[0].num, 1);
	TU_EQ_STR(u.parts[1].etag, "e2");
	TU_EQ_STR(u.parts[1].md5, p2.md5);
	journal_upload_clear(&u);
	/* a new upload of the request: the old parts go */
	TU_EQ_INT(journal_upload_begin(j, "p1", "c1", "b", "c1/P.zip", "id-2", 5242880, 12000000), 0);
	TU_EQ_INT(journal_upload_get(j, "p1", "c1", &u), 1);
	TU_EQ_STR(u.upload_id, "id-2");
	TU_EQ_INT(u.nparts, 0);
	journal_upload_clear(&u);
	TU_EQ_INT(journal_upload_begin(j, "p1", "c2", "b", "c2/P.zip", "id-3", 5242880, 9), 0);
	/* PACKED and UPLOADING requests will still complete theirs */
	TU_EQ_INT(journal_upload_orphans(j, collect_orphan, orphans), 0);
	TU_EQ_STR(orphans, "");
	raw_exec("UPDATE request SET state = 'ERROR' WHERE correlation_id = 'c1'");
	raw_exec("UPDATE request SET state = 'FETCHED' WHERE correlation_id = 'c2'");
	TU_EQ_INT(journal_upload_orphans(j, collect_orphan, orphans), 0);
	TU_EQ_STR(orphans, "p1/c1 id-2 c1/P.zip;p1/c2 id-3 c2/P.zip;");
	TU_EQ_INT(journal_upload_forget(j, "p1", "c1", "id-other"), 0);   /* another id: kept */
	TU_EQ_INT(journal_upload_forget(j, "p1", "c1", "id-2"), 0);
	TU_EQ_INT(journal_upload_get(j, "p1", "c1", &u), 0);
	raw_exec("UPDATE request SET state = 'DONE', updated_at = 1 WHERE correlation_id = 'c2'");
	TU_EQ_INT(journal_prune(j, 2, 10), 1);
	TU_EQ_INT(raw_int("SELECT count(*) FROM upload"), 0);
	journal_close(j);
}

TU_MAIN(
	TU(test_open_creates_schema_in_wal_mode),
	TU(test_concurrent_creation_of_a_new_journal),
	TU(test_newer_schema_is_refused_permanently),
	TU(test_unopenable_paths_name_the_path),
	TU(test_register_dedupes_on_tenant_and_correlation_id),
	TU(test_register_again_after_the_end_is_a_new_submission),
	TU(test_claim_commit_and_outbox),
	TU(test_outbox_in_order_and_marked_sent),
	TU(test_a_row_set_aside_no_longer_waits_and_is_shown),
	TU(test_claim_next_takes_tenants_in_turn),
	TU(test_defer_sets_a_request_aside_until_due),
	TU(test_oldest_live_request_of_each_state),
	TU(test_takeback_and_pending_return_input_items),
	TU(test_sweep_ends_any_non_terminal_request),
	TU(test_live_item_is_the_latest_item_of_a_request_not_ended),
	TU(test_batch_is_all_or_nothing_and_bad_calls_spoil_only_themselves),
	TU(test_a_call_failing_half_way_spoils_the_batch),
	TU(test_commit_with_claim_guards_on_the_input_state),
	TU(test_claim_race_between_processes_has_one_winner),
	TU(test_kill_9_during_batch_commit_leaves_all_or_nothing),
	TU(test_schema_1_is_migrated_keeping_its_rows),
	TU(test_schema_4_is_migrated_keeping_its_unsent_rows),
	TU(test_state_lists_agree_with_the_stage_table),
	TU(test_list_filters_newest_first),
	TU(test_outbox_of_a_request_shows_sent_and_unsent),
	TU(test_counts_and_totals),
	TU(test_durations_are_a_cumulative_histogram_per_stage),
	TU(test_sweep_records_a_duration_only_for_busy_requests),
	TU(test_prune_deletes_old_ended_requests_whose_responses_are_sent),
	TU(test_check_reports_each_kind_of_problem),
	TU(test_check_stops_at_a_corrupt_file),
	TU(test_upload_records_resume_and_orphans)
)
