/* driver-pool: K worker threads on the journal's queue (see driver.h). The
 * main thread reads stdin (each line registers its request if unknown and
 * wakes a worker), runs the tick, and once a second wakes every worker when
 * the journal changed (PRAGMA data_version) and stops the work of requests
 * ended elsewhere. Each worker has its own journal connection, tenant
 * cache and context; it claims the next request due, tenants in turn,
 * works on it and acts on the verdict; it sleeps when nothing is due,
 * until a wake-up or the earliest request set aside is due. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "driver-int.h"
#include "err.h"
#include "item.h"
#include "util.h"
#include "workspace.h"

enum { WATCH_MS = 1000 };   /* journal changes and cancels looked at this often */

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
		drv_journal_fatal(j, job->label);
	if (rc == 0) {
		err_log(ERR_WARNING, job->label, "no longer ours (expired or ended elsewhere); dropped");
		return;
	}
	util_iso8601(next, when);
	err_log(ERR_WARNING, job->label, "%s; set aside (attempt %lld), again at %s", r->message,
	    (long long)job->attempts + 1, when);
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
	job->expires_ms = drv_deadline(w->j, job->item);
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
		drv_remove_workspace(job, have_ws ? ws : NULL);
	} else if (r.verdict == DRIVER_ABANDON) {
		err_log(ERR_INFO, job->label, "abandoned; taken back at the next start");
	} else if (r.verdict == DRIVER_PENDING) {
		err_log(ERR_INFO, job->label, "waiting");
	} else if (r.verdict == DRIVER_RETRY) {
		defer(rn, w->j, job, &r);
	} else {
		drv_conclude(rn, w->j, job, &r, have_ws ? ws : NULL);
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
	drv_conclude(w->rn, w->j, &job, &r, NULL);
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
		drv_journal_fatal(w->j, NULL);
	struct timespec ts;
	int64_t wait = rc == 1 ? due - util_now_ms() : 3600 * 1000;
	if (wait < 10)
		wait = 10;
	if (wait > 3600 * 1000)
		wait = 3600 * 1000;
	ts = util_abstime(wait);
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
	/* the data path yields the CPU to the intake (and the order commands
	 * started from here inherit it); only this thread, not the process */
	if (rn->d->worker_nice &&
	    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), rn->d->worker_nice) < 0)
		err_warn("worker niceness %d not set: %s", rn->d->worker_nice, strerror(errno));
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
			drv_journal_fatal(w->j, NULL);
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
		w->stop = drv_stop || rn->quit;
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

/* A line of stdin: register its request if unknown, answer a reused
 * correlationId, and wake a worker. The item of a request the journal
 * knows is the journal's (what the previous stage committed). */
static void handle(struct run *rn, cJSON *item)
{
	char label[160];
	const struct jstage_info *si = journal_stage(rn->d->stage);
	item_label(item, label, sizeof label);
	if (!drv_register(rn, item, label))
		return;
	if (err_is_verbose()) {
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
			drv_journal_fatal(rn->j, NULL);
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
		drv_journal_fatal(rn->j, NULL);
	return rc == 0;
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
	for (int i = 0; i < rn->nworkers; i++) {
		struct worker *w = &rn->w[i];
		w->rn = rn;
		if (journal_open(d->journal, JOURNAL_SYNC_NORMAL, &w->j, err, sizeof err, &temp) < 0)
			err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
		journal_set_owner(w->j, journal_stage(d->stage)->name);
		if (!(w->tenants = tenants_new(d->tenants, drv_warn_key, NULL)))
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
		if (drv_stop)
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
	} while (!drv_stop && item_buffered(r));
	return 0;
}

void drv_pool_run(struct run *rn)
{
	struct driver *d = rn->d;
	workers_start(rn);
	int in_hand = d->tick ? d->tick(d->ctx, d) : 0, eof = 0;
	int64_t version = journal_data_version(rn->j), watched = util_mono_ms();
	while (!drv_stop) {
		int ready = !eof && item_buffered(rn->in);
		if (!ready)
			ready = wait_input(d, eof, eof ? 200 : WATCH_MS);
		if (ready && read_stdin(rn, rn->in))
			eof = 1;
		if (d->tick)
			in_hand = d->tick(d->ctx, d);
		if (util_mono_ms() - watched >= WATCH_MS || eof) {
			watched = util_mono_ms();
			int64_t v = journal_data_version(rn->j);
			if (v != version) {
				version = v;
				wake(rn, 1);
				watch_cancels(rn);
			}
			drv_report_dropped(rn);
		}
		if (eof && in_hand <= 0 && drained(rn))
			break;
	}
	workers_stop(rn);
}
