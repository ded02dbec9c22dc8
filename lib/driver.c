/* driver: the shared loop of the data-path stages (see driver.h). It is the
 * one part of lib/ that logs, through lib/err, because the log lines of the
 * loop (skips, recoveries, verdicts) are the same in every stage. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "err.h"
#include "item.h"
#include "response.h"
#include "stage.h"
#include "tenants.h"
#include "util.h"
#include "workspace.h"

static volatile sig_atomic_t stop;

struct run {
	struct driver *d;
	journal *j;
	tenants *tenants;
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
	d->run = NULL;
}

int driver_option(struct driver *d, int ch, const char *arg)
{
	switch (ch) {
	case 'v': err_verbose(1); return 1;
	case 'j': d->journal = arg; return 1;
	case 't': d->tenants = arg; return 1;
	case 'w': d->workspace = arg; return 1;
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

/* Commit the result; 1 done, 0 the claim was lost, -1 journal error. */
static int commit(struct run *rn, struct driver_job *job, const struct driver_result *r)
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
	int rc = text && (body || (ok && !last)) ? journal_commit(rn->j, &c) : -1;
	if (rc < 0 && !text)
		err_log(ERR_ERROR, job->label, "%s", strerror(ENOMEM));
	else if (rc < 0)
		err_log(ERR_ERROR, job->label, "%s", journal_error(rn->j));
	if (rc > 0) {
		stage_fd3(body);
		if (ok)
			err_log(ERR_INFO, job->label, "%s", state);
		else
			err_log(ERR_INFO, job->label, "ERROR %s: %s", r->error_type, r->message);
	}
	free(body);
	free(headers);
	free(text);
	return rc;
}

/* Commit a verdict, then remove the workspace of an ended request and print
 * the item of one that goes on: 1, 0 no longer ours, -1 (not fatal). */
static int conclude(struct run *rn, struct driver_job *job, const struct driver_result *r,
    const char *ws)
{
	int rc = commit(rn, job, r);
	if (rc == 0)
		err_log(ERR_WARNING, job->label, "no longer ours (expired or ended elsewhere); dropped");
	if (rc < 0)
		err_die(journal_temporary(rn->j) ? EXIT_TEMP : EXIT_PERM, "%s: giving up",
		    job->label);
	int ended = r->verdict != DRIVER_OK || rn->d->stage == JSTAGE_S3PUT || rc == 0;
	if (ended && ws && workspace_remove(ws) < 0)
		err_log(ERR_WARNING, job->label, "unable to remove %s: %s", ws, strerror(errno));
	if (rc > 0 && r->verdict == DRIVER_OK && rn->d->stage != JSTAGE_S3PUT &&
	    item_write(1, job->item) < 0)
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
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
		.cid = item_str(item, "correlationId"), .label = label, .j = rn->j, .stop = &stop,
	};
	if (!job.tenant_name || !job.cid)
		return -1;
	int have_ws = workspace_path(d->workspace, job.tenant_name, job.cid, ws, sizeof ws) == 0;
	return conclude(rn, &job, r, have_ws ? ws : NULL);
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

/* Work on a claimed request and commit what came of it. */
static void work(struct run *rn, struct driver_job *job)
{
	struct driver_result r = { .verdict = DRIVER_OK };
	const char *why = NULL;
	int fresh;
	char ws[4096], when[32];
	job->tenant = tenants_get(rn->tenants, job->tenant_name, &why, &fresh);
	job->expires_ms = deadline(rn->j, job->item);
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
		rn->d->work(rn->d->ctx, job, &r);
	}
	if (r.verdict == DRIVER_ABANDON) {
		err_log(ERR_INFO, job->label, "abandoned; taken back at the next start");
		return;
	}
	if (r.verdict == DRIVER_PENDING) {
		err_log(ERR_INFO, job->label, "waiting");
		return;
	}
	conclude(rn, job, &r, have_ws ? ws : NULL);
}

/* The journal failed before the item was ours. A temporary failure (the
 * journal locked longer than the busy timeout) ends the stage: the item is
 * gone from stdin, and only the recovery at the next start takes it back;
 * skipping it would leave the request waiting until it expires. */
static void journal_failed(struct run *rn, const char *label)
{
	if (journal_temporary(rn->j))
		err_die(EXIT_TEMP, "%s: %s", label, journal_error(rn->j));
	err_log(ERR_ERROR, label, "%s", journal_error(rn->j));
}

/* Register if unknown, answer a reused correlationId, claim, work. */
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
	struct driver_job job = {
		.item = item, .tenant_name = item_str(item, "tenant"),
		.cid = item_str(item, "correlationId"), .label = label, .j = rn->j, .stop = &stop,
	};
	rc = journal_claim(rn->j, rn->d->stage, job.tenant_name, job.cid);
	if (rc < 0)
		journal_failed(rn, label);
	else if (rc == 0)
		err_log(ERR_INFO, label, "not waiting for %s; skipped", si->name);
	else
		work(rn, &job);
}

/* Wait up to a second for stdin (unless it ended) or the tick's descriptor:
 * 1 when stdin has something. */
static int wait_input(struct driver *d, int eof)
{
	struct pollfd p[2] = { { .fd = eof ? -1 : 0, .events = POLLIN },
		{ .fd = d->wait_fd ? d->wait_fd(d->ctx) : -1, .events = POLLIN } };
	if (poll(p, 2, 1000) <= 0)
		return 0;
	return !eof && (p[0].revents & (POLLIN | POLLHUP | POLLERR));
}

static int recover_one(void *arg, const char *tenant, const char *cid, const char *text)
{
	struct run *rn = arg;
	char err[128];
	cJSON *item = text ? item_parse(text, strlen(text), err, sizeof err) : NULL;
	if (!item) {
		err_log(ERR_ERROR, NULL, "%s/%s: journaled item unreadable: skipped", tenant, cid);
		return stop;
	}
	handle(rn, item);
	cJSON_Delete(item);
	return stop;
}

/* Take up the requests waiting in the input state; fatal on a journal error
 * (the next start does it then). */
static void rescan(struct run *rn)
{
	if (journal_pending(rn->j, rn->d->stage, recover_one, rn) < 0)
		err_die(EXIT_TEMP, "%s", journal_error(rn->j));
}

/* A line that is no item is most likely torn: a writer killed mid-line
 * left a fragment in the FIFO and the next writer's first line was glued
 * to it. Both items were committed before they were printed, so the
 * journal has them waiting in the input state: take them up now rather
 * than at the next start. */
static void bad_line(struct run *rn, const item_reader *r)
{
	err_error("stdin: %s: line skipped; taking up what waits in the journal",
	    item_reader_error(r));
	rescan(rn);
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
	if (!rn.tenants || !r)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	int back = journal_takeback(rn.j, d->stage);
	if (back < 0)
		err_die(EXIT_TEMP, "%s", journal_error(rn.j));
	rescan(&rn);
	if (back > 0)
		err_info("took back %d interrupted request%s", back, back == 1 ? "" : "s");
	d->run = &rn;
	int in_hand = d->tick ? d->tick(d->ctx, d) : 0, eof = 0;
	while (!stop) {
		cJSON *item;
		if (d->tick && (eof || !item_buffered(r))) {
			int ready = wait_input(d, eof);
			in_hand = d->tick(d->ctx, d);
			if (eof && in_hand <= 0)
				break;
			if (eof || !ready)
				continue;
		}
		int rc = item_read(r, &item);
		if (rc == ITEM_EOF && d->tick && !stop) {
			eof = 1;
			continue;
		}
		if (rc == ITEM_EOF)
			break;
		if (rc == ITEM_BAD) {
			bad_line(&rn, r);
			continue;
		}
		if (rc == ITEM_IOERR) {
			if (errno == EINTR)
				continue;
			err_die(EXIT_TEMP, "unable to read stdin: %s", strerror(errno));
		}
		handle(&rn, item);
		cJSON_Delete(item);
	}
	(void)in_hand;
	d->run = NULL;
	item_reader_free(r);
	tenants_free(rn.tenants);
	journal_close(rn.j);
	return 0;
}
