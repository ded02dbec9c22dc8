/* driver-batch: the intake's way to run (ferry-request-validate): one
 * thread reads stdin in batches (what is already waiting, up to
 * driver.batch items) and judges each batch as one transaction — register
 * if unknown, answer a reused correlationId, work, commit (the commit is
 * the claim: nobody sees the busy state of a batch) — then queues the
 * items that go on for stdout and writes the responses to fd 3. At start,
 * and after a torn line, the requests waiting in the input state are
 * judged the same way, a batch at a time. A temporary failure (DRIVER_RETRY:
 * rs-admin did not answer) sets the request aside where it is, in the input
 * state, with the pool's backoff; while stdin is quiet the thread wakes at
 * least once a second to judge again those whose time has come, and at the
 * end of stdin it waits for them before it exits. A journal failure of a
 * batch ends the stage (nothing of the batch was printed; the next start
 * takes it up again). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "driver-int.h"
#include "err.h"
#include "item.h"
#include "stage.h"
#include "util.h"

struct batch {
	struct run *rn;
	cJSON **items;             /* read or recovered, judged together */
	int n, max;
	int torn;                  /* a bad line was read: take up the journal's */
	struct drv_batch out;
};

enum { WAKE_MS = 1000 };   /* set-aside requests looked at this often */

/* Set the request aside in the input state until its backoff is due. */
static void defer(struct run *rn, struct driver_job *job, const struct driver_result *r)
{
	struct jrequest jr;
	char when[32];
	int64_t attempts = 0;
	if (journal_get(rn->j, job->tenant_name, job->cid, &jr) == 1)
		attempts = jr.attempts;
	journal_request_clear(&jr);
	int64_t next = util_now_ms() + driver_backoff_ms(attempts + 1, rn->d->retry_max_ms);
	int rc = journal_defer_input(rn->j, rn->d->stage, job->tenant_name, job->cid, r->message,
	    next);
	if (rc < 0)
		drv_journal_fatal(rn->j, job->label);
	if (rc == 0) {
		err_log(ERR_INFO, job->label, "not waiting for %s; skipped",
		    journal_stage(rn->d->stage)->name);
		return;
	}
	util_iso8601(next, when);
	err_log(ERR_WARNING, job->label, "%s; set aside (attempt %lld), again at %s", r->message,
	    (long long)attempts + 1, when);
}

/* Work on one item of the batch and commit its verdict. */
static void judge(struct batch *b, cJSON *item, int from_stdin)
{
	struct run *rn = b->rn;
	char label[160];
	const char *why = NULL;
	int fresh;
	item_label(item, label, sizeof label);
	if (from_stdin && !drv_register(rn, item, label))
		return;
	struct driver_job job = {
		.item = item, .tenant_name = item_str(item, "tenant"),
		.cid = item_str(item, "correlationId"), .label = label, .j = rn->j, .stop = &drv_stop,
	};
	job.tenant = tenants_get(rn->tenants, job.tenant_name, &why, &fresh);
	job.tenant_why = why;
	if (!job.tenant && fresh)
		err_log(ERR_ERROR, label, "tenant unusable: %s", why);
	struct driver_result r = { .verdict = DRIVER_OK };
	rn->d->work(rn->d->ctx, &job, &r);
	if (r.verdict == DRIVER_RETRY) {
		defer(rn, &job, &r);
		return;
	}
	if (r.verdict == DRIVER_ABANDON || r.verdict == DRIVER_PENDING) {
		err_log(ERR_INFO, label, "left waiting; taken up at the next start");
		return;
	}
	int rc = drv_commit(rn, rn->j, &job, &r, &b->out);
	if (rc == 0)
		err_log(ERR_INFO, label, "not waiting for %s; skipped", journal_stage(rn->d->stage)->name);
}

/* Judge b's items as one transaction, then print and answer. */
static void run_batch(struct batch *b, int from_stdin)
{
	struct run *rn = b->rn;
	if (journal_begin(rn->j) < 0)
		drv_journal_fatal(rn->j, NULL);
	tenants_hold(rn->tenants, 1);
	for (int i = 0; i < b->n; i++)
		judge(b, b->items[i], from_stdin);
	tenants_hold(rn->tenants, 0);
	if (journal_end(rn->j) < 0)
		drv_journal_fatal(rn->j, NULL);
	if (lineq_put_lines(rn->out, (const char *const *)b->out.lines, b->out.nlines) < 0)
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
	for (int i = 0; i < b->out.nlines; i++)
		free(b->out.lines[i]);
	stage_fd3_lines(b->out.responses, b->out.nresponses);
	for (int i = 0; i < b->out.nresponses; i++)
		free(b->out.responses[i]);
	b->out.nlines = b->out.nresponses = 0;
	for (int i = 0; i < b->n; i++)
		cJSON_Delete(b->items[i]);
	b->n = 0;
}

static int recover_one(void *arg, const char *tenant, const char *cid, const char *text)
{
	struct batch *b = arg;
	char err[128];
	cJSON *item = text ? item_parse(text, strlen(text), err, sizeof err) : NULL;
	if (!item) {
		err_log(ERR_ERROR, NULL, "%s/%s: journaled item unreadable; skipped", tenant, cid);
		return drv_stop;
	}
	b->items[b->n++] = item;
	if (b->n == b->max)
		run_batch(b, 0);
	return drv_stop;
}

/* Judge the requests waiting in the input state, a batch at a time. */
static void take_up(struct batch *b)
{
	if (journal_pending(b->rn->j, b->rn->d->stage, recover_one, b) < 0)
		drv_journal_fatal(b->rn->j, NULL);
	if (b->n)
		run_batch(b, 0);
}

/* Judge the set-aside requests whose time has come, a batch at a time. */
static void take_up_due(struct batch *b)
{
	if (journal_aside_due(b->rn->j, b->rn->d->stage, util_now_ms(), recover_one, b) < 0)
		drv_journal_fatal(b->rn->j, NULL);
	if (b->n)
		run_batch(b, 0);
}

/* Wait until stdin has a line (1), or a second passed or the first set-aside
 * request is due (0). at_eof: stdin is done with, only the clock counts. */
static int wait_input(struct batch *b, int at_eof)
{
	int64_t due = 0, now = util_now_ms(), ms = WAKE_MS;
	if (!at_eof && item_buffered(b->rn->in))
		return 1;
	int rc = journal_aside_next(b->rn->j, b->rn->d->stage, &due);
	if (rc < 0)
		drv_journal_fatal(b->rn->j, NULL);
	if (rc > 0 && due - now < ms)
		ms = due > now ? due - now : 0;
	struct pollfd p = { .fd = 0, .events = POLLIN };
	int n = poll(&p, at_eof ? 0 : 1, (int)ms);
	return n > 0;
}

/* A bad line is most likely torn (the writer killed mid-line, its fragment
 * glued to the next line): both items wait in the journal, taken up after
 * the batch rather than at the next start. */
static void bad_line(void *arg, const char *reason)
{
	struct batch *b = arg;
	err_error("stdin: %s: line skipped; taking up what waits in the journal", reason);
	b->torn = 1;
}

void drv_batch_run(struct run *rn)
{
	int max = rn->d->batch;
	struct batch b = { .rn = rn, .max = max };
	b.items = calloc((size_t)max, sizeof *b.items);
	b.out.lines = calloc((size_t)max, sizeof *b.out.lines);
	b.out.responses = calloc((size_t)max * 2, sizeof *b.out.responses);
	if (!b.items || !b.out.lines || !b.out.responses)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	take_up(&b);
	int at_eof = 0;
	int64_t due;
	while (!drv_stop) {
		if (!wait_input(&b, at_eof)) {
			take_up_due(&b);
			int rc = at_eof ? journal_aside_next(rn->j, rn->d->stage, &due) : 1;
			if (rc < 0)
				drv_journal_fatal(rn->j, NULL);
			if (rc == 0)
				break;   /* stdin done with, nothing set aside */
			continue;
		}
		int n = stage_read_batch(rn->in, 0, b.items, max, bad_line, &b);
		if (n < 0 && errno != EINTR)
			err_die(EXIT_TEMP, "unable to read stdin: %s", strerror(errno));
		if (n > 0) {
			b.n = n;
			run_batch(&b, 1);
		}
		if (b.torn) {
			b.torn = 0;
			take_up(&b);
		} else if (n == 0) {
			/* the end of stdin: done, once nothing set aside waits */
			int rc = journal_aside_next(rn->j, rn->d->stage, &due);
			if (rc < 0)
				drv_journal_fatal(rn->j, NULL);
			if (rc == 0)
				break;
			at_eof = 1;
		}
		drv_report_dropped(rn);
	}
	free(b.items);
	free(b.out.lines);
	free(b.out.responses);
}
