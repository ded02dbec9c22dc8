/* driver: the main of the data-path stages: the reader of stdin, the
 * worker threads and the verdicts (see driver.h). It is the part of lib/
 * that logs and exits, through lib/err, because the log lines of the loop
 * (skips, recoveries, verdicts) and its fatal journal failures are the
 * same in every stage. Threads: main (stdin, tick, wake-ups, the cancel
 * watch), K workers (each with its own journal connection, tenant cache
 * and context) and lib/lineq's writer. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "err.h"
#include "item.h"
#include "lineq.h"
#include "response.h"
#include "stage.h"
#include "tenants.h"
#include "util.h"
#include "workspace.h"

static volatile sig_atomic_t stop;

enum { WATCH_MS = 1000 };   /* journal changes and cancels looked at this often */

struct run;

struct worker {
	struct run *rn;
	pthread_t thread;
	journal *j;
	tenants *tenants;
	void *ctx;
	volatile sig_atomic_t stop;   /* its job's: stop asked, or the request ended */
	/* under rn->mu: what it holds */
	int claiming, busy, cancelled;
	char *tenant, *cid;
};

struct run {
	struct driver *d;
	journal *j;                /* the main thread's */
	tenants *tenants;          /* the main thread's */
	lineq *out;
	int nworkers;
	struct worker *w;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	unsigned long seq;         /* bumped by every wake-up */
	int quit;
	char *cursor;              /* the tenant served last (round robin) */
	unsigned long dropped;     /* stdout lines dropped, as last reported */
};

void driver_init(struct driver *d, const char *prog, enum jstage stage)
{
	d->prog = prog;
	d->stage = stage;
	d->journal = util_env("FERRY_JOURNAL", "/var/lib/ferry/journal.db");
	d->tenants = util_env("FERRY_TENANTS", "/etc/ferry/tenants");
	d->workspace = util_env("FERRY_WORKSPACE", "/var/lib/ferry/workspace");
	d->ctx = NULL;
	d->work = NULL;
	d->tick = NULL;
	d->wait_fd = NULL;
	d->worker_new = NULL;
	d->worker_free = NULL;
	d->run = NULL;
	d->workers = 0;
	d->retry_max_ms = 300000;
	char var[64], *end;
	const char *name = journal_stage(stage)->name, *v;
	size_t n = (size_t)snprintf(var, sizeof var, "FERRY_");
	for (; *name && n < 40; name++)
		if (*name != '-')
			var[n++] = (char)toupper((unsigned char)*name);
	snprintf(var + n, sizeof var - n, "_WORKERS");
	if (!(v = getenv(var)) || !*v)
		v = getenv("FERRY_WORKERS"), util_strlcpy(var, "FERRY_WORKERS", sizeof var);
	if (v && *v) {
		long k = strtol(v, &end, 10);
		if (*end || k < 1 || k > DRIVER_MAX_WORKERS)
			err_die(EXIT_PERM, "%s: not a number of workers from 1 to %d: %s", var,
			    DRIVER_MAX_WORKERS, v);
		d->workers = (int)k;
	}
	if ((v = getenv("FERRY_RETRY_MAX")) && *v) {
		long sec = strtol(v, &end, 10);
		if (*end || sec < 1 || sec > 86400)
			err_die(EXIT_PERM, "FERRY_RETRY_MAX: not a number of seconds from 1 to 86400: %s", v);
		d->retry_max_ms = sec * 1000;
	}
}

int driver_default_workers(enum jstage stage)
{
	switch (stage) {
	case JSTAGE_ORDER: return 8;
	case JSTAGE_FETCH: return 4;
	case JSTAGE_PACK: return 2;
	case JSTAGE_S3PUT: return 4;
	default: return 1;
	}
}

int64_t driver_backoff_ms(int64_t n, int64_t max_ms)
{
	int64_t ms = 1000;
	for (int64_t i = 0; i < n && ms < max_ms; i++)
		ms *= 2;
	return ms < max_ms ? ms : max_ms;
}

int driver_option(struct driver *d, int ch, const char *arg)
{
	switch (ch) {
	case 'v': err_verbose(1); return 1;
	case 'j': d->journal = arg; return 1;
	case 't': d->tenants = arg; return 1;
	case 'w': d->workspace = arg; return 1;
	case 'c': {
		char *end;
		long k = strtol(arg, &end, 10);
		if (*end || k < 1 || k > DRIVER_MAX_WORKERS)
			err_die(EXIT_PERM, "-c: not a number of workers from 1 to %d: %s",
			    DRIVER_MAX_WORKERS, arg);
		d->workers = (int)k;
		return 1;
	}
	default: return 0;
	}
}

void driver_fail(struct driver_result *r, const char *error_type, const char *fmt, ...)
{
	va_list ap;
	r->verdict = DRIVER_ERROR;
	r->error_type = error_type;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof r->message, fmt, ap);
	va_end(ap);
}

static void warn_key(void *arg, const char *file, const char *key)
{
	(void)arg;
	err_warn("%s: %s: unknown setting ignored", file, key);
}

static int64_t deadline(journal *j, const cJSON *item)
{
	int64_t ms;
	const char *s = item_str(item, "expiresAt");
	struct jrequest r;
	if (s && util_parse_iso8601(s, &ms) == 0)
		return ms;
	ms = 0;
	if (journal_get(j, item_str(item, "tenant"), item_str(item, "correlationId"), &r) == 1)
		ms = r.expires_ms;
	journal_request_clear(&r);
	return ms;
}

/* The DONE response; a downloadUrl that would not fit is left out (warned). */
static char *done_body(const struct driver_job *job, const struct driver_result *r)
{
	int dropped;
	char *body = response_body_done(job->cid, r->url, r->md5, r->download_url, &dropped);
	if (body && dropped)
		err_log(ERR_WARNING, job->label,
		    "downloadUrl left out: the DONE response would exceed %d bytes", RESPONSE_MAX);
	return body;
}

/* Die on a journal failure: the requests claimed are taken back at the
 * next start (the supervisor's restart). */
static void journal_fatal(journal *j, const char *label)
{
	err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s%s%s", label ? label : "",
	    label ? ": " : "", journal_error(j));
}

/* Commit the result; 1 done, 0 the claim was lost, -1 journal error. */
static int commit(struct run *rn, journal *j, struct driver_job *job,
    const struct driver_result *r)
{
	const struct jstage_info *si = journal_stage(rn->d->stage);
	int ok = r->verdict == DRIVER_OK, last = rn->d->stage == JSTAGE_S3PUT;
	const char *state = ok ? si->output : "ERROR";
	char *body = NULL, *headers = NULL, *text = item_print(job->item);
	if (!ok)
		body = response_body(job->cid, "ERROR", r->message, r->error_type, NULL, NULL);
	else if (last)
		body = done_body(job, r);
	if (body)
		headers = stage_headers(job->item);
	struct jcommit c = {
		.tenant = job->tenant_name, .cid = job->cid, .stage = rn->d->stage,
		.state = state, .item = text, .response = body, .headers = headers,
		.error_type = ok ? NULL : r->error_type, .bytes = r->bytes,
	};
	int rc = text && (body || (ok && !last)) ? journal_commit(j, &c) : -1;
	if (rc < 0 && !text)
		err_log(ERR_ERROR, job->label, "%s", strerror(ENOMEM));
	else if (rc < 0)
		err_log(ERR_ERROR, job->label, "%s", journal_error(j));
	if (rc > 0) {
		stage_fd3(body);
		if (ok)
			err_log(ERR_INFO, job->label, "%s", state);
		else
			err_log(ERR_INFO, job->label, "ERROR %s: %s", r->error_type, r->message);
	}
	if (rc > 0 && ok && !last && lineq_put(rn->out, text) < 0)
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
	free(body);
	free(headers);
	free(text);
	return rc;
}

static void remove_workspace(const struct driver_job *job, const char *ws)
{
	if (ws && workspace_remove(ws) < 0)
		err_log(ERR_WARNING, job->label, "unable to remove %s: %s", ws, strerror(errno));
}

/* Commit a verdict, then remove the workspace of an ended request (the
 * item of one that goes on is queued for stdout by commit): 1, 0 no longer
 * ours; fatal on a journal error. */
static int conclude(struct run *rn, journal *j, struct driver_job *job,
    const struct driver_result *r, const char *ws)
{
	int rc = commit(rn, j, job, r);
	if (rc == 0)
		err_log(ERR_WARNING, job->label, "no longer ours (expired or ended elsewhere); dropped");
	if (rc < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s: giving up", job->label);
	if (r->verdict != DRIVER_OK || rn->d->stage == JSTAGE_S3PUT || rc == 0)
		remove_workspace(job, ws);
	return rc;
}

/* Set the request aside until its backoff is due (never past its deadline,
 * where the sweeper, or the next claim, ends it EXPIRED). */
static void defer(struct run *rn, journal *j, struct driver_job *job, const struct driver_result *r)
{
	char when[32];
	int64_t now = util_now_ms(), next = now + driver_backoff_ms(job->attempts + 1,
	    rn->d->retry_max_ms);
	if (job->expires_ms && next > job->expires_ms)
		next = job->expires_ms;
	int rc = journal_defer(j, rn->d->stage, job->tenant_name, job->cid, r->message, next);
	if (rc < 0)
		journal_fatal(j, job->label);
	if (rc == 0) {
		err_log(ERR_WARNING, job->label, "no longer ours (expired or ended elsewhere); dropped");
		return;
	}
	util_iso8601(next, when);
	err_log(ERR_WARNING, job->label, "%s; set aside (attempt %lld), again at %s", r->message,
	    (long long)job->attempts + 1, when);
}

journal *driver_journal(struct driver *d)
{
	return ((struct run *)d->run)->j;
}

const tenant *driver_tenant(struct driver *d, const char *name, const char **why)
{
	int fresh;
	return tenants_get(((struct run *)d->run)->tenants, name, why, &fresh);
}

int driver_finish(struct driver *d, cJSON *item, struct driver_result *r)
{
	struct run *rn = d->run;
	char label[160], ws[4096];
	item_label(item, label, sizeof label);
	struct driver_job job = {
		.item = item, .tenant_name = item_str(item, "tenant"),
		.cid = item_str(item, "correlationId"), .label = label, .j = rn->j, .stop = &stop,
	};
	if (!job.tenant_name || !job.cid)
		return -1;
	int have_ws = workspace_path(d->workspace, job.tenant_name, job.cid, ws, sizeof ws) == 0;
	return conclude(rn, rn->j, &job, r, have_ws ? ws : NULL);
}

char **driver_source_roots(const struct driver_job *job, size_t *n)
{
	size_t nf = job->tenant ? job->tenant->nfile_roots : 0;
	char **v = malloc((nf + 1) * sizeof *v);
	if (!v)
		return NULL;
	for (size_t i = 0; i < nf; i++)
		v[i] = job->tenant->file_roots[i];
	*n = nf;
	if (job->workspace)
		v[(*n)++] = (char *)job->workspace;   /* read only: fileurl_open takes char *const * */
	return v;
}

/* Work on a claimed request and act on its verdict. */
static void work(struct worker *w, struct driver_job *job)
{
	struct run *rn = w->rn;
	struct driver_result r = { .verdict = DRIVER_OK };
	const char *why = NULL;
	int fresh;
	char ws[4096], when[32];
	job->tenant = tenants_get(w->tenants, job->tenant_name, &why, &fresh);
	job->expires_ms = deadline(w->j, job->item);
	int have_ws = workspace_path(rn->d->workspace, job->tenant_name, job->cid, ws, sizeof ws) == 0;
	job->workspace = have_ws ? ws : NULL;
	if (!job->tenant) {
		if (fresh)
			err_log(ERR_ERROR, job->label, "tenant unusable: %s", why);
		driver_fail(&r, "FORBIDDEN", "[FORBIDDEN] Delivery is not configured for tenant %s",
		    job->tenant_name);
	} else if (job->expires_ms && job->expires_ms <= util_now_ms()) {
		util_iso8601(job->expires_ms, when);
		driver_fail(&r, "EXPIRED", "The request date has reached the expiration limit '%s'", when);
	} else if (!have_ws) {
		driver_fail(&r, "INTERNAL_ERROR", "no workspace path: %s", strerror(errno));
	} else {
		rn->d->work(w->ctx, job, &r);
	}
	pthread_mutex_lock(&rn->mu);
	int cancelled = w->cancelled;
	pthread_mutex_unlock(&rn->mu);
	if (cancelled && r.verdict != DRIVER_PENDING) {
		err_log(ERR_INFO, job->label, "ended elsewhere (cancelled or expired); work stopped");
		remove_workspace(job, have_ws ? ws : NULL);
	} else if (r.verdict == DRIVER_ABANDON) {
		err_log(ERR_INFO, job->label, "abandoned; taken back at the next start");
	} else if (r.verdict == DRIVER_PENDING) {
		err_log(ERR_INFO, job->label, "waiting");
	} else if (r.verdict == DRIVER_RETRY) {
		defer(rn, w->j, job, &r);
	} else {
		conclude(rn, w->j, job, &r, have_ws ? ws : NULL);
	}
}

/* A claimed request whose journaled item cannot be read ends ERROR. */
static void unreadable(struct worker *w, const struct jwork *jw, const char *why)
{
	char label[160];
	snprintf(label, sizeof label, "%s/%s", jw->tenant, jw->cid);
	err_log(ERR_ERROR, label, "journaled item unreadable: %s", why);
	cJSON *item = cJSON_CreateObject();
	if (!item || !cJSON_AddStringToObject(item, "tenant", jw->tenant) ||
	    !cJSON_AddStringToObject(item, "correlationId", jw->cid))
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	struct driver_job job = {
		.item = item, .tenant_name = jw->tenant, .cid = jw->cid, .label = label, .j = w->j,
	};
	struct driver_result r;
	driver_fail(&r, "INTERNAL_ERROR", "the journaled item of the request is unreadable: %s", why);
	conclude(w->rn, w->j, &job, &r, NULL);
	cJSON_Delete(item);
}

static void run_job(struct worker *w, const struct jwork *jw)
{
	char err[128], label[160];
	cJSON *item = jw->item ? item_parse(jw->item, strlen(jw->item), err, sizeof err) : NULL;
	if (!item) {
		unreadable(w, jw, jw->item ? err : "none");
		return;
	}
	item_label(item, label, sizeof label);
	struct driver_job job = {
		.item = item, .tenant_name = jw->tenant, .cid = jw->cid, .label = label, .j = w->j,
		.stop = &w->stop, .hold_ms = util_now_ms() + DRIVER_HOLD_MS, .attempts = jw->attempts,
	};
	work(w, &job);
	cJSON_Delete(item);
}

/* ---- waking the workers ---- */

static void wake(struct run *rn, int all)
{
	pthread_mutex_lock(&rn->mu);
	rn->seq++;
	if (all)
		pthread_cond_broadcast(&rn->wake);
	else
		pthread_cond_signal(&rn->wake);
	pthread_mutex_unlock(&rn->mu);
}

/* Nothing was due when seq was read: sleep until a wake-up, or until the
 * earliest request set aside is due. */
static void idle(struct worker *w, unsigned long seq)
{
	struct run *rn = w->rn;
	int64_t due = 0;
	int rc = journal_next_due(w->j, rn->d->stage, &due);
	if (rc < 0)
		journal_fatal(w->j, NULL);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t wait = rc == 1 ? due - util_now_ms() : 3600 * 1000;
	if (wait < 10)
		wait = 10;
	if (wait > 3600 * 1000)
		wait = 3600 * 1000;
	ts.tv_sec += wait / 1000;
	ts.tv_nsec += (long)(wait % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rn->mu);
	w->claiming = 0;
	if (rn->seq == seq && !rn->quit)
		pthread_cond_timedwait(&rn->wake, &rn->mu, &ts);
	pthread_mutex_unlock(&rn->mu);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct run *rn = w->rn;
	for (;;) {
		char cursor[128] = "";
		pthread_mutex_lock(&rn->mu);
		if (rn->quit) {
			pthread_mutex_unlock(&rn->mu);
			break;
		}
		unsigned long seq = rn->seq;
		w->claiming = 1;
		if (rn->cursor)
			util_strlcpy(cursor, rn->cursor, sizeof cursor);
		pthread_mutex_unlock(&rn->mu);
		struct jwork jw;
		int rc = journal_claim_next(w->j, rn->d->stage, cursor, util_now_ms(), &jw);
		if (rc < 0)
			journal_fatal(w->j, NULL);
		if (rc == 0) {
			idle(w, seq);
			continue;
		}
		pthread_mutex_lock(&rn->mu);
		free(rn->cursor);
		rn->cursor = strdup(jw.tenant);
		w->tenant = jw.tenant;
		w->cid = jw.cid;
		w->busy = 1;
		w->claiming = 0;
		w->cancelled = 0;
		w->stop = stop || rn->quit;
		pthread_mutex_unlock(&rn->mu);
		run_job(w, &jw);
		pthread_mutex_lock(&rn->mu);
		w->busy = 0;
		w->tenant = w->cid = NULL;
		pthread_mutex_unlock(&rn->mu);
		journal_work_clear(&jw);
	}
	return NULL;
}

/* ---- the main thread ---- */

/* The journal failed before the item was ours. A temporary failure (the
 * journal locked longer than the busy timeout) ends the stage: the item is
 * in the journal if it was registered; the next start takes it up. */
static void journal_failed(struct run *rn, const char *label)
{
	if (journal_temporary(rn->j))
		err_die(EXIT_TEMP, "%s: %s", label, journal_error(rn->j));
	err_log(ERR_ERROR, label, "%s", journal_error(rn->j));
}

/* A line of stdin: register its request if unknown, answer a reused
 * correlationId, and wake a worker. The item of a request the journal
 * knows is the journal's (what the previous stage committed). */
static void handle(struct run *rn, cJSON *item)
{
	char label[160];
	enum journal_reg reg;
	const struct jstage_info *si = journal_stage(rn->d->stage);
	item_label(item, label, sizeof label);
	int rc = stage_register(rn->j, rn->d->stage, item, si->input, &reg);
	if (rc == -2) {
		err_error("stdin: item without tenant or correlationId: skipped");
		return;
	}
	if (rc < 0) {
		journal_failed(rn, label);
		return;
	}
	if (reg == JREG_CONFLICT) {
		char *resp = NULL;
		if (stage_duplicate(rn->j, item, reg, 0, &resp) < 0)
			err_log(ERR_ERROR, label, "%s", journal_error(rn->j));
		stage_fd3(resp);
		free(resp);
		err_log(ERR_INFO, label, "DENIED: correlationId already used with another body");
		return;
	}
	if (reg == JREG_SAME && err_is_verbose()) {
		struct jrequest r;
		if (journal_get(rn->j, item_str(item, "tenant"), item_str(item, "correlationId"), &r) == 1 &&
		    strcmp(r.state, si->input) && strcmp(r.state, si->busy))
			err_log(ERR_INFO, label, "not waiting for %s; skipped", si->name);
		journal_request_clear(&r);
	}
	wake(rn, 0);
}

/* Wait up to ms for stdin (unless it ended) or the tick's descriptor:
 * 1 when stdin has something. */
static int wait_input(struct driver *d, int eof, int ms)
{
	struct pollfd p[2] = { { .fd = eof ? -1 : 0, .events = POLLIN },
		{ .fd = d->wait_fd ? d->wait_fd(d->ctx) : -1, .events = POLLIN } };
	if (poll(p, 2, ms) <= 0)
		return 0;
	return !eof && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
}

/* Stop the work of requests ended elsewhere (ferry-journal cancel, the
 * sweeper): a worker's request no longer in the stage's busy state. */
static void watch_cancels(struct run *rn)
{
	const char *busy = journal_stage(rn->d->stage)->busy;
	for (int i = 0; i < rn->nworkers; i++) {
		struct worker *w = &rn->w[i];
		char tenant[128], cid[1024];
		pthread_mutex_lock(&rn->mu);
		int held = w->busy && !w->cancelled;
		if (held) {
			util_strlcpy(tenant, w->tenant, sizeof tenant);
			util_strlcpy(cid, w->cid, sizeof cid);
		}
		pthread_mutex_unlock(&rn->mu);
		if (!held)
			continue;
		struct jrequest r;
		int rc = journal_get(rn->j, tenant, cid, &r);
		int gone = rc == 0 || (rc == 1 && strcmp(r.state, busy) != 0);
		journal_request_clear(&r);
		if (rc < 0)
			journal_fatal(rn->j, NULL);
		if (!gone)
			continue;
		pthread_mutex_lock(&rn->mu);
		if (w->busy && w->cid && !strcmp(w->cid, cid) && !strcmp(w->tenant, tenant)) {
			w->cancelled = 1;
			w->stop = 1;
		}
		pthread_mutex_unlock(&rn->mu);
		err_log(ERR_INFO, NULL, "%s/%s: ended elsewhere; stopping its work", tenant, cid);
	}
}

/* Once stdin ended: nothing waits in the input state and no worker holds
 * a request (nor is claiming one). */
static int drained(struct run *rn)
{
	int64_t due;
	pthread_mutex_lock(&rn->mu);
	int held = 0;
	for (int i = 0; i < rn->nworkers; i++)
		held |= rn->w[i].busy || rn->w[i].claiming;
	pthread_mutex_unlock(&rn->mu);
	if (held)
		return 0;
	int rc = journal_next_due(rn->j, rn->d->stage, &due);
	if (rc < 0)
		journal_fatal(rn->j, NULL);
	return rc == 0;
}

static void report_dropped(struct run *rn)
{
	unsigned long n = lineq_dropped(rn->out);
	if (n != rn->dropped)
		err_warn("stdout full: %lu item%s not printed; the next stage takes %s from the journal",
		    n - rn->dropped, n - rn->dropped == 1 ? "" : "s", n - rn->dropped == 1 ? "it" : "them");
	rn->dropped = n;
	int e = lineq_error(rn->out);
	if (e)
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(e));
}

static void workers_start(struct run *rn)
{
	struct driver *d = rn->d;
	char err[512];
	int temp;
	sigset_t all, old;
	sigfillset(&all);
	/* signals go to the main thread, whose poll they interrupt */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (!(rn->out = lineq_new(1, 0)))
		err_die(EXIT_TEMP, "unable to start the stdout writer: %s", strerror(errno));
	for (int i = 0; i < rn->nworkers; i++) {
		struct worker *w = &rn->w[i];
		w->rn = rn;
		if (journal_open(d->journal, JOURNAL_SYNC_NORMAL, &w->j, err, sizeof err, &temp) < 0)
			err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
		journal_set_owner(w->j, journal_stage(d->stage)->name);
		if (!(w->tenants = tenants_new(d->tenants, warn_key, NULL)))
			err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
		w->ctx = d->worker_new ? d->worker_new(d->ctx) : d->ctx;
		if (!w->ctx)
			err_die(EXIT_TEMP, "unable to set up worker %d: %s", i + 1, strerror(errno));
		int rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc)
			err_die(EXIT_TEMP, "unable to start worker %d: %s", i + 1, strerror(rc));
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Ask the workers to stop (their jobs abandoned when stop is set), wait. */
static void workers_stop(struct run *rn)
{
	pthread_mutex_lock(&rn->mu);
	rn->quit = 1;
	for (int i = 0; i < rn->nworkers; i++)
		if (stop)
			rn->w[i].stop = 1;
	pthread_cond_broadcast(&rn->wake);
	pthread_mutex_unlock(&rn->mu);
	for (int i = 0; i < rn->nworkers; i++) {
		struct worker *w = &rn->w[i];
		pthread_join(w->thread, NULL);
		if (rn->d->worker_free && w->ctx)
			rn->d->worker_free(w->ctx);
		tenants_free(w->tenants);
		journal_close(w->j);
	}
}

/* Read what stdin has (one item, then those already buffered). 0, or 1 at EOF. */
static int read_stdin(struct run *rn, item_reader *r)
{
	do {
		cJSON *item;
		int rc = item_read(r, &item);
		if (rc == ITEM_EOF)
			return 1;
		if (rc == ITEM_BAD) {
			/* most likely torn: a writer killed mid-line left a fragment
			 * glued to the next line; both items were committed before
			 * they were printed, so they wait in the journal */
			err_error("stdin: %s: line skipped; taking up what waits in the journal",
			    item_reader_error(r));
			wake(rn, 1);
			continue;
		}
		if (rc == ITEM_IOERR) {
			if (errno == EINTR)
				return 0;
			err_die(EXIT_TEMP, "unable to read stdin: %s", strerror(errno));
		}
		handle(rn, item);
		cJSON_Delete(item);
	} while (!stop && item_buffered(r));
	return 0;
}

int driver_run(struct driver *d)
{
	char err[512];
	int temp;
	struct run rn = { .d = d };
	if (stage_fd3_init() < 0)
		err_die(EXIT_TEMP, "unable to open /dev/null: %s", strerror(errno));
	util_signals(&stop);
	if (journal_open(d->journal, JOURNAL_SYNC_NORMAL, &rn.j, err, sizeof err, &temp) < 0)
		err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
	journal_set_owner(rn.j, journal_stage(d->stage)->name);
	rn.tenants = tenants_new(d->tenants, warn_key, NULL);
	item_reader *r = item_reader_new(0);
	rn.nworkers = d->workers > 0 ? d->workers : driver_default_workers(d->stage);
	rn.w = calloc((size_t)rn.nworkers, sizeof *rn.w);
	if (!rn.tenants || !r || !rn.w)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	pthread_mutex_init(&rn.mu, NULL);
	pthread_cond_init(&rn.wake, NULL);
	int back = journal_takeback(rn.j, d->stage);
	if (back < 0)
		err_die(EXIT_TEMP, "%s", journal_error(rn.j));
	if (back > 0)
		err_info("took back %d interrupted request%s", back, back == 1 ? "" : "s");
	d->run = &rn;
	workers_start(&rn);
	int in_hand = d->tick ? d->tick(d->ctx, d) : 0, eof = 0;
	int64_t version = journal_data_version(rn.j), watched = util_mono_ms();
	while (!stop) {
		int ready = !eof && item_buffered(r);
		if (!ready)
			ready = wait_input(d, eof, eof ? 200 : WATCH_MS);
		if (ready && read_stdin(&rn, r))
			eof = 1;
		if (d->tick)
			in_hand = d->tick(d->ctx, d);
		if (util_mono_ms() - watched >= WATCH_MS || eof) {
			watched = util_mono_ms();
			int64_t v = journal_data_version(rn.j);
			if (v != version) {
				version = v;
				wake(&rn, 1);
				watch_cancels(&rn);
			}
			report_dropped(&rn);
		}
		if (eof && in_hand <= 0 && drained(&rn))
			break;
	}
	workers_stop(&rn);
	report_dropped(&rn);
	if (lineq_free(rn.out, stop ? 2000 : -1) < 0)
		err_warn("stdout: items left unprinted at exit; the next stage takes them from the journal");
	d->run = NULL;
	item_reader_free(r);
	tenants_free(rn.tenants);
	journal_close(rn.j);
	free(rn.cursor);
	free(rn.w);
	return 0;
}
