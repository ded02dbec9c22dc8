/* journal_test: the journal's contract — schema and migrations, register /
 * claim / commit / outbox, recovery, batches, claim races between processes
 * and kill -9 in the middle of a batch commit. */
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

static void test_outbox_in_order_and_marked_sent(void)
{
	fresh();
	journal *j = jopen();
	enum journal_reg r;
	reg(j, "p1", "a", "fp", "RECEIVED", &r);
	reg(j, "p1", "b", "fp", "RECEIVED", &r);
	journal_outbox_put(j, "p1", "a", "1", NULL);
	journal_outbox_put(j, "p1", "b", "2", NULL);
	journal_outbox_put(j, "p1", "a", "3", NULL);
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
	TU_EQ_INT(journal_expired(j, 1000, collect_pending, &p), 1);
	TU_EQ_STR(p.what[0], "p1/a {}");
	struct jcommit c = { .tenant = "p1", .cid = "a", .stage = JSTAGE_SWEEP, .state = "ERROR",
		.error_type = "EXPIRED", .response = "{\"status\":\"ERROR\"}" };
	TU_EQ_INT(journal_commit(j, &c), 1);
	TU_EQ_INT(journal_commit(j, &c), 0);   /* terminal: never twice */
	memset(&p, 0, sizeof p);
	TU_EQ_INT(journal_expired(j, 1000, collect_pending, &p), 0);
	int n = 0;
	TU_EQ_INT(journal_history(j, "p1", "a", count_events, &n), 2);
	TU_EQ_INT(n, 2);
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

TU_MAIN(
	TU(test_open_creates_schema_in_wal_mode),
	TU(test_concurrent_creation_of_a_new_journal),
	TU(test_newer_schema_is_refused_permanently),
	TU(test_unopenable_paths_name_the_path),
	TU(test_register_dedupes_on_tenant_and_correlation_id),
	TU(test_claim_commit_and_outbox),
	TU(test_outbox_in_order_and_marked_sent),
	TU(test_takeback_and_pending_return_input_items),
	TU(test_sweep_ends_any_non_terminal_request),
	TU(test_batch_is_all_or_nothing_and_bad_calls_spoil_only_themselves),
	TU(test_claim_race_between_processes_has_one_winner),
	TU(test_kill_9_during_batch_commit_leaves_all_or_nothing)
)
