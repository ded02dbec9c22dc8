/* driver: the main of the stages (see driver.h): settings, the verdicts'
 * commits, stdin registration, and driver_run, which opens what the run
 * needs and hands it to the pool of workers (driver-pool.c) or to the
 * batches (driver-batch.c). The driver is the part of lib/ that logs and
 * exits, through lib/err, because the log lines of the loop (skips,
 * recoveries, verdicts) and its fatal journal failures are the same in
 * every stage. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver-int.h"
#include "err.h"
#include "item.h"
#include "response.h"
#include "stage.h"
#include "util.h"
#include "workspace.h"

volatile sig_atomic_t drv_stop;

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
	d->batch = 0;
	d->ok_status = NULL;
	d->retry_max_ms = 300000;
	d->worker_nice = 10;
	char var[64], *end;
	const char *name = journal_stage(stage)->name, *v;
	size_t n = (size_t)snprintf(var, sizeof var, "FERRY_");
	for (; *name && n < 40; name++)
		if (*name != '-')
			var[n++] = (char)toupper((unsigned char)*name);
	snprintf(var + n, sizeof var - n, "_WORKERS");
	if (stage == JSTAGE_VALIDATE)   /* batches: no workers, no retries */
		return;
	if (!(v = getenv(var)) || !*v)
		v = getenv("FERRY_WORKERS"), util_strlcpy(var, "FERRY_WORKERS", sizeof var);
	if (v && *v) {
		long k = strtol(v, &end, 10);
		if (*end || k < 1 || k > DRIVER_MAX_WORKERS)
			err_die(EXIT_PERM, "%s: not a number of workers from 1 to %d: %s", var,
			    DRIVER_MAX_WORKERS, v);
		d->workers = (int)k;
	}
	if ((v = getenv("FERRY_WORKER_NICE")) && *v) {
		long n = strtol(v, &end, 10);
		if (*end || n < 0 || n > 19)
			err_die(EXIT_PERM, "FERRY_WORKER_NICE: not a niceness from 0 to 19: %s", v);
		d->worker_nice = (int)n;
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

void drv_warn_key(void *arg, const char *file, const char *key)
{
	(void)arg;
	err_warn("%s: %s: unknown setting ignored", file, key);
}

int64_t drv_deadline(journal *j, const cJSON *item)
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
void drv_journal_fatal(journal *j, const char *label)
{
	err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s%s%s", label ? label : "",
	    label ? ": " : "", journal_error(j));
}

/* The response to a verdict, or NULL when it has none; *fail set when it
 * should have one and none could be made. */
static char *response_of(struct run *rn, const struct driver_job *job,
    const struct driver_result *r, int *fail)
{
	char *body = NULL;
	int want = 1;
	if (r->verdict == DRIVER_ERROR)
		body = response_body(job->cid, "ERROR", r->message, r->error_type, NULL, NULL);
	else if (r->verdict == DRIVER_DENY)
		body = response_body(job->cid, "DENIED", r->message, r->error_type, NULL, NULL);
	else if (rn->d->stage == JSTAGE_S3PUT)
		body = done_body(job, r);
	else if (rn->d->ok_status)
		body = response_body(job->cid, rn->d->ok_status, NULL, NULL, NULL, NULL);
	else
		want = 0;
	*fail = want && !body;
	return body;
}

int drv_commit(struct run *rn, journal *j, struct driver_job *job,
    const struct driver_result *r, struct drv_batch *b)
{
	const struct jstage_info *si = journal_stage(rn->d->stage);
	int ok = r->verdict == DRIVER_OK, fail, last = rn->d->stage == JSTAGE_S3PUT;
	const char *state = ok ? si->output : r->verdict == DRIVER_DENY ? "DENIED" : "ERROR";
	char *body = response_of(rn, job, r, &fail), *headers = NULL, *text = item_print(job->item);
	if (body)
		headers = stage_headers(job->item);
	struct jcommit c = {
		.tenant = job->tenant_name, .cid = job->cid, .stage = rn->d->stage,
		.state = state, .item = text, .response = body, .headers = headers,
		.error_type = ok ? NULL : r->error_type, .bytes = r->bytes,
		.expires_ms = r->expires_ms, .claim = b != NULL,
	};
	int rc = text && !fail && (!body || headers) ? journal_commit(j, &c) : -1;
	if (rc < 0 && (!text || fail || !headers))
		err_log(ERR_ERROR, job->label, "%s", strerror(ENOMEM));
	else if (rc < 0)
		err_log(ERR_ERROR, job->label, "%s", journal_error(j));
	if (rc > 0 && ok)
		err_log(ERR_INFO, job->label, "%s", state);
	else if (rc > 0)
		err_log(ERR_INFO, job->label, "%s %s: %s", state, r->error_type, r->message);
	if (rc > 0 && b && body) {
		b->responses[b->nresponses++] = body;
		body = NULL;
	} else if (rc > 0) {
		stage_fd3(body);
	}
	if (rc > 0 && ok && !last && b) {
		b->lines[b->nlines++] = text;
		text = NULL;
	} else if (rc > 0 && ok && !last && lineq_put(rn->out, text) < 0) {
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
	}
	free(body);
	free(headers);
	free(text);
	return rc;
}

void drv_remove_workspace(const struct driver_job *job, const char *ws)
{
	if (ws && workspace_remove(ws) < 0)
		err_log(ERR_WARNING, job->label, "unable to remove %s: %s", ws, strerror(errno));
}

/* Commit a verdict, then remove the workspace of an ended request (the
 * item of one that goes on is queued for stdout by commit): 1, 0 no longer
 * ours; fatal on a journal error. */
int drv_conclude(struct run *rn, journal *j, struct driver_job *job,
    const struct driver_result *r, const char *ws)
{
	int rc = drv_commit(rn, j, job, r, NULL);
	if (rc == 0)
		err_log(ERR_WARNING, job->label, "no longer ours (expired or ended elsewhere); dropped");
	if (rc < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s: giving up", job->label);
	if (r->verdict != DRIVER_OK || rn->d->stage == JSTAGE_S3PUT || rc == 0)
		drv_remove_workspace(job, ws);
	return rc;
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
		.cid = item_str(item, "correlationId"), .label = label, .j = rn->j, .stop = &drv_stop,
	};
	if (!job.tenant_name || !job.cid)
		return -1;
	int have_ws = workspace_path(d->workspace, job.tenant_name, job.cid, ws, sizeof ws) == 0;
	return drv_conclude(rn, rn->j, &job, r, have_ws ? ws : NULL);
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

/* The journal failed before the item was ours. A temporary failure (the
 * journal locked longer than the busy timeout) ends the stage: the item is
 * in the journal if it was registered; the next start takes it up. */
static void journal_failed(struct run *rn, const char *label)
{
	if (journal_temporary(rn->j))
		err_die(EXIT_TEMP, "%s: %s", label, journal_error(rn->j));
	err_log(ERR_ERROR, label, "%s", journal_error(rn->j));
}

int drv_register(struct run *rn, cJSON *item, const char *label)
{
	enum journal_reg reg;
	const struct jstage_info *si = journal_stage(rn->d->stage);
	int rc = stage_register(rn->j, rn->d->stage, item, si->input, &reg);
	if (rc == -2) {
		err_error("stdin: item without tenant or correlationId: skipped");
		return 0;
	}
	if (rc < 0) {
		journal_failed(rn, label);
		return 0;
	}
	if (reg == JREG_CONFLICT) {
		stage_conflict_log(item, "skipped");
		return 0;
	}
	return 1;
}

void drv_report_dropped(struct run *rn)
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

int driver_run(struct driver *d)
{
	char err[512];
	int temp;
	struct run rn = { .d = d };
	if (stage_fd3_init() < 0)
		err_die(EXIT_TEMP, "unable to open /dev/null: %s", strerror(errno));
	util_signals(&drv_stop);
	if (journal_open(d->journal, JOURNAL_SYNC_NORMAL, &rn.j, err, sizeof err, &temp) < 0)
		err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
	journal_set_owner(rn.j, journal_stage(d->stage)->name);
	rn.tenants = tenants_new(d->tenants, drv_warn_key, NULL);
	rn.in = item_reader_new(0);
	rn.nworkers = d->batch ? 0 : d->workers > 0 ? d->workers : driver_default_workers(d->stage);
	rn.w = calloc((size_t)rn.nworkers + 1, sizeof *rn.w);
	if (!rn.tenants || !rn.in || !rn.w)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	pthread_mutex_init(&rn.mu, NULL);
	pthread_cond_init(&rn.wake, NULL);
	int back = journal_takeback(rn.j, d->stage);
	if (back < 0)
		err_die(EXIT_TEMP, "%s", journal_error(rn.j));
	if (back > 0)
		err_info("took back %d interrupted request%s", back, back == 1 ? "" : "s");
	sigset_t all, old;
	sigfillset(&all);
	/* threads started from here on leave the signals to the main thread,
	 * whose poll they interrupt */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rn.out = lineq_new(1, 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rn.out)
		err_die(EXIT_TEMP, "unable to start the stdout writer: %s", strerror(errno));
	d->run = &rn;
	if (d->batch)
		drv_batch_run(&rn);
	else
		drv_pool_run(&rn);
	drv_report_dropped(&rn);
	if (lineq_free(rn.out, drv_stop ? 2000 : -1) < 0)
		err_warn("stdout: items left unprinted at exit; the next stage takes them from the journal");
	d->run = NULL;
	item_reader_free(rn.in);
	tenants_free(rn.tenants);
	journal_close(rn.j);
	free(rn.cursor);
	free(rn.w);
	return 0;
}
