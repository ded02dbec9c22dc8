/* ferry-journal: the operator's tool for the journal — list, show, status,
 * replay items, pending, retry and cancel a request, the expiry sweeper,
 * prune, stats, metrics, check.
 * The queries are lib/journal's; this file parses flags and prints. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "args.h"
#include "err.h"
#include "item.h"
#include "journal.h"
#include "report.h"
#include "response.h"
#include "stage.h"
#include "util.h"
#include "workspace.h"

static const char usage[] =
	"usage: ferry-journal [-hJv] [-j journal] command [args]\n"
	"commands:\n"
	"  list [-n count] [-s state] [-S since] [-t tenant]\n"
	"  show tenant correlationId\n"
	"  status\n"
	"  item -s stage tenant correlationId\n"
	"  pending -s stage\n"
	"  retry tenant correlationId\n"
	"  cancel [-m message] [-w workspace] tenant correlationId\n"
	"  expire [-f] [-i interval] [-w workspace]\n"
	"  prune -o age\n"
	"  stats\n"
	"  metrics\n"
	"  check";

enum { PRUNE_BATCH = 500, HISTORY_MAX = 64 };

static volatile sig_atomic_t stop;

struct ctx;
typedef int cmd_fn(struct ctx *c, int argc, char **argv);

struct command {
	const char *name;
	cmd_fn *fn;
	const char *args;          /* its usage after the name */
};

struct ctx {
	const struct command *cmd;
	const char *jpath;
	journal *j;
	int json;
	int64_t now;
};

/* ---- output ---- */

static void die_usage(const struct ctx *c)
{
	err_die(EXIT_PERM, "usage: ferry-journal %s%s%s", c->cmd->name, *c->cmd->args ? " " : "",
	    c->cmd->args);
}

static void die_journal(const struct ctx *c)
{
	err_die(journal_temporary(c->j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(c->j));
}

static void die_stdout(void)
{
	err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno ? errno : EIO));
}

/* 1 once stdout failed, to stop a walk (main then exits 111) */
static int out_failed(void)
{
	return ferror(stdout) != 0;
}

static void flush_out(void)
{
	if (fflush(stdout) == EOF)
		die_stdout();
}

/* s with control characters as \xHH, padded with spaces to width */
static void put(const char *s, int width)
{
	int n = 0;
	for (s = s ? s : "-"; *s; s++, n++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f)
			n += printf("\\x%02x", ch) - 1;
		else
			putchar(ch);
	}
	for (; n < width; n++)
		putchar(' ');
}

/* one NDJSON line; o is freed */
static void put_json(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!s)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	puts(s);
	free(s);
}

/* "2026-11-23T10:00:00.000Z", or NULL for 0 */
static const char *iso(int64_t ms, char out[32])
{
	if (ms <= 0)
		return NULL;
	util_iso8601(ms, out);
	return out;
}

/* "2026-11-23T10:00:00Z" (seconds) or "-" */
static const char *when(int64_t ms, char out[32])
{
	if (ms <= 0)
		return "-";
	util_iso8601(ms, out);
	memcpy(out + 19, "Z", 2);
	return out;
}

static const struct {
	int64_t below, unit, sub;
	const char *fmt;
} spans[] = {
	{ 1000, 1, 1, "%s%lldms" },
	{ 60000, 1000, 100, "%s%lld.%llds" },
	{ 3600000, 60000, 1000, "%s%lldm%02llds" },
	{ 86400000, 3600000, 60000, "%s%lldh%02lldm" },
	{ INT64_MAX, 86400000, 3600000, "%s%lldd%02lldh" },
};

/* "850ms", "12.3s", "5m02s", "3h04m", "2d03h" */
static const char *span(int64_t ms, char out[32])
{
	int64_t a = ms < 0 ? -ms : ms;
	size_t i = 0;
	while (a >= spans[i].below)
		i++;
	snprintf(out, 32, spans[i].fmt, ms < 0 ? "-" : "", (long long)(a / spans[i].unit),
	    (long long)(a % spans[i].unit / spans[i].sub));
	return out;
}

/* "123 B", "4.5 MB" (SI units, as in the stages' log lines) */
static const char *size(double n, char out[32])
{
	static const char *const unit[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	int u = 0;
	for (; n >= 1000 && u < 5; u++)
		n /= 1000;
	snprintf(out, 32, u ? "%.1f %s" : "%.0f %s", n, unit[u]);
	return out;
}

/* ---- arguments ---- */

static const struct {
	const char *suffix;
	int64_t ms;
} units[] = {
	{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	{ "d", 86400000 }, { "w", 604800000 },
};

/* "30d", "12h", "1.5s", "500ms"; a bare number is seconds. 0 or -1. */
static int parse_span(const char *s, int64_t *ms)
{
	char *end;
	if (!isdigit((unsigned char)*s) && *s != '.')
		return -1;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !isfinite(v) || v > 1e9)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
		if (strcmp(end, units[i].suffix) == 0) {
			*ms = (int64_t)(v * (double)units[i].ms + 0.5);   /* v >= 0; no libm */
			return 0;
		}
	}
	return -1;
}

/* an ISO 8601 instant, a date (midnight UTC), or an age before now */
static int parse_since(const char *s, int64_t now, int64_t *ms)
{
	char day[32];
	int64_t age;
	if (util_parse_iso8601(s, ms) == 0)
		return 0;
	if (strlen(s) == 10 && snprintf(day, sizeof day, "%sT00:00:00Z", s) > 0 &&
	    util_parse_iso8601(day, ms) == 0)
		return 0;
	if (parse_span(s, &age) < 0)
		return -1;
	*ms = now - age;
	return 0;
}

/* getopt for a command; -h prints its usage, a bad option dies with it */
static int opt(struct ctx *c, int argc, char **argv, const char *opts)
{
	int ch = getopt(argc, argv, opts);
	if (ch == '?' && optopt == 'h') {
		printf("usage: ferry-journal %s%s%s\n", c->cmd->name, *c->cmd->args ? " " : "",
		    c->cmd->args);
		exit(fflush(stdout) == EOF ? EXIT_TEMP : 0);
	}
	if (ch == '?' || ch == ':') {
		if (ch == ':')
			err_error("option -%c needs an argument", optopt);
		else
			err_error("unknown option -%c", optopt);
		die_usage(c);
	}
	return ch;
}

static enum jstage stage_arg(struct ctx *c, const char *name)
{
	int s = journal_stage_byname(name);
	const struct jstage_info *si = s < 0 ? NULL : journal_stage(s);
	if (!si || !si->input) {
		err_error("%s: not a stage that takes items (validate, order, fetch, pack, s3-put)",
		    name);
		die_usage(c);
	}
	return (enum jstage)s;
}

/* Open the journal. Only the sweeper creates one: the other commands read
 * an existing journal, and a mistyped -j should not leave an empty one. */
static void open_journal(struct ctx *c, int create)
{
	char err[512];
	int temp;
	if (!create && access(c->jpath, F_OK) < 0)
		err_die(errno == ENOENT ? EXIT_PERM : EXIT_TEMP, "journal %s: %s", c->jpath,
		    strerror(errno));
	if (journal_open(c->jpath, JOURNAL_SYNC_NORMAL, &c->j, err, sizeof err, &temp) < 0)
		err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
	journal_set_owner(c->j, "journal");
	c->now = util_now_ms();
}

/* ---- list ---- */

static int list_row(void *arg, const struct jrequest *r)
{
	struct ctx *c = arg;
	char t1[32], t2[32];
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		report_request(o, r);
		put_json(o);
	} else {
		printf("%-21s %-21s ", when(r->received_ms, t1), when(r->updated_ms, t2));
		put(r->state, 12);
		put(r->error_type, 20);
		put(r->tenant, 13);
		put(r->cid, 0);
		putchar('\n');
	}
	return stop || out_failed();
}

static int cmd_list(struct ctx *c, int argc, char **argv)
{
	struct jfilter f = { 0 };
	const char *since = NULL;
	char *end;
	int ch;
	while ((ch = opt(c, argc, argv, "+:n:s:S:t:")) != -1) {
		switch (ch) {
		case 'n':
			f.limit = strtoll(optarg, &end, 10);
			if (*end || end == optarg || f.limit < 1)
				die_usage(c);
			break;
		case 's': f.state = optarg; break;
		case 'S': since = optarg; break;
		case 't': f.tenant = optarg; break;
		}
	}
	if (optind != argc)
		die_usage(c);
	if (f.state && !journal_state_known(f.state))
		err_die(EXIT_PERM, "%s: not a state of ferry", f.state);
	if (since && parse_since(since, util_now_ms(), &f.since_ms) < 0)
		err_die(EXIT_PERM, "%s: not a date (2026-11-23, 2026-11-23T10:00:00Z) nor an age"
		    " (30m, 2h, 7d)", since);
	open_journal(c, 0);
	if (!c->json)
		printf("%-21s %-21s %-11s %-19s %-12s %s\n", "RECEIVED", "UPDATED", "STATE", "ERROR",
		    "TENANT", "CORRELATION-ID");
	if (journal_list(c->j, &f, list_row, c) < 0)
		die_journal(c);
	return 0;
}

/* ---- show ---- */

/* arg: the submission of the event before (a client sent the id again
 * after its end: the events of each submission after the first under a
 * line of their own) */
static int show_event_text(void *arg, const struct jevent *e)
{
	char t[32], d[32], b[32];
	int64_t *sub = arg;
	if (e->submission != *sub && e->submission > 1)
		printf("-- submission %lld: the correlationId sent again after its end\n",
		    (long long)e->submission);
	*sub = e->submission;
	util_iso8601(e->at_ms, t);
	printf("%-25s %-9s %-11s %-9s %s\n", t, e->stage, e->state,
	    e->started_ms > 0 ? span(e->at_ms - e->started_ms, d) : "-",
	    e->bytes > 0 ? size((double)e->bytes, b) : "-");
	return out_failed();
}

static int show_response_text(void *arg, const struct joutbox *o)
{
	char t1[32], t2[32];
	(void)arg;
	util_iso8601(o->created_ms, t1);
	if (o->sent_ms > 0)
		util_iso8601(o->sent_ms, t2);
	printf("%-25s %-25s ", t1, o->sent_ms > 0 ? t2 : o->set_aside_ms > 0 ? "set aside" : "unsent");
	put(o->body, 0);
	putchar('\n');
	if (o->set_aside_ms > 0) {
		util_iso8601(o->set_aside_ms, t2);
		printf("%-25s set aside at %s: ", "", t2);
		put(o->set_aside_why ? o->set_aside_why : "-", 0);
		putchar('\n');
	}
	return out_failed();
}

static void show_json(struct ctx *c, const struct jrequest *r)
{
	cJSON *o = report_show(c->j, r);
	if (!o && *journal_error(c->j))
		die_journal(c);
	put_json(o);
}

static void show_text(struct ctx *c, const struct jrequest *r)
{
	static const char *const label[] = { "request", "state", "error type", "received",
		"expires", "updated", "claimed by", "attempts", "last error", "next try", "submission" };
	char t[4][32], n[24], sub[24];
	int64_t before = 1;
	snprintf(n, sizeof n, "%lld", (long long)r->attempts);
	snprintf(sub, sizeof sub, "%lld", (long long)r->submission);
	const char *value[] = { NULL, r->state, r->error_type, iso(r->received_ms, t[0]),
		iso(r->expires_ms, t[1]), iso(r->updated_ms, t[2]), r->claimed_by, n,
		r->last_error, iso(r->next_attempt_ms, t[3]), sub };
	printf("%-11s ", label[0]);
	put(r->tenant, 0);
	putchar('/');
	put(r->cid, 0);
	putchar('\n');
	for (size_t i = 1; i < sizeof label / sizeof *label; i++) {
		printf("%-11s ", label[i]);
		put(value[i], 0);
		putchar('\n');
	}
	printf("\n%-25s %-9s %-11s %-9s %s\n", "AT", "STAGE", "STATE", "TOOK", "BYTES");
	if (journal_history(c->j, r->tenant, r->cid, show_event_text, &before) < 0)
		die_journal(c);
	printf("\n%-25s %-25s %s\n", "CREATED", "SENT", "RESPONSE");
	if (journal_outbox_of(c->j, r->tenant, r->cid, show_response_text, NULL) < 0)
		die_journal(c);
}

static int cmd_show(struct ctx *c, int argc, char **argv)
{
	struct jrequest r;
	while (opt(c, argc, argv, "+:") != -1)
		;
	if (argc - optind != 2)
		die_usage(c);
	open_journal(c, 0);
	int rc = journal_get(c->j, argv[optind], argv[optind + 1], &r);
	if (rc < 0)
		die_journal(c);
	if (rc == 0) {
		err_log(ERR_ERROR, NULL, "%s/%s: no such request", argv[optind], argv[optind + 1]);
		return EXIT_NO;
	}
	if (c->json)
		show_json(c, &r);
	else
		show_text(c, &r);
	journal_request_clear(&r);
	return 0;
}

/* ---- status ---- */

static void status_json(const struct ctx *c, const struct jrequest *r)
{
	put_json(report_status(r, c->now));
}

/* the line under a request set aside: "set aside 2 times, next try
 * 2026-11-23T10:00:25Z (in 25.0s): why" */
static void status_retry(const struct ctx *c, const struct jrequest *r,
    const struct report_progress *p)
{
	char t[32], in[32];
	printf("%-11s set aside %lld time%s", "", (long long)r->attempts, r->attempts == 1 ? "" : "s");
	if (!p->busy && r->next_attempt_ms > c->now)
		printf(", next try %s (in %s)", when(r->next_attempt_ms, t),
		    span(r->next_attempt_ms - c->now, in));
	else if (!p->busy)
		fputs(", next try now", stdout);
	if (r->last_error) {
		fputs(": ", stdout);
		put(r->last_error, 0);
	}
	putchar('\n');
}

static void status_text(const struct ctx *c, const struct jrequest *r,
    const struct report_progress *p)
{
	char done[32], total[32], bytes[72] = "-", rate[48] = "-", age[32], exp[32] = "-";
	if (p->busy && r->bytes_total > 0)
		snprintf(bytes, sizeof bytes, "%s/%s", size((double)r->bytes_done, done),
		    size((double)r->bytes_total, total));
	else if (p->busy && r->bytes_done > 0)
		size((double)r->bytes_done, bytes);
	if (p->rate >= 0)
		snprintf(rate, sizeof rate, "%s/s", size(p->rate, done));
	if (r->expires_ms > 0)
		span(r->expires_ms - c->now, exp);
	printf("%-11s %-9s %-21s %-12s %-8s %-8s ", r->state, p->stage, bytes, rate,
	    span(c->now - r->received_ms, age), exp);
	put(r->tenant, 0);
	putchar('/');
	put(r->cid, 0);
	putchar('\n');
	if (r->attempts > 0 || r->last_error)
		status_retry(c, r, p);
}

static int status_row(void *arg, const struct jrequest *r)
{
	struct ctx *c = arg;
	struct report_progress p = report_progress(r, c->now);
	if (c->json)
		status_json(c, r);
	else
		status_text(c, r, &p);
	return stop || out_failed();
}

static int cmd_status(struct ctx *c, int argc, char **argv)
{
	struct jfilter f = { .live = 1 };
	while (opt(c, argc, argv, "+:") != -1)
		;
	if (optind != argc)
		die_usage(c);
	open_journal(c, 0);
	if (!c->json)
		printf("%-11s %-9s %-21s %-12s %-8s %-8s %s\n", "STATE", "STAGE", "PROGRESS", "RATE",
		    "AGE", "EXPIRES", "REQUEST");
	if (journal_list(c->j, &f, status_row, c) < 0)
		die_journal(c);
	return 0;
}

/* ---- item, pending ---- */

static void put_item(const char *item)
{
	fputs(item, stdout);
	putchar('\n');
	flush_out();
}

static int cmd_item(struct ctx *c, int argc, char **argv)
{
	const char *sname = NULL;
	int ch;
	while ((ch = opt(c, argc, argv, "+:s:")) != -1)
		sname = optarg;
	if (!sname || argc - optind != 2)
		die_usage(c);
	enum jstage s = stage_arg(c, sname);
	const char *tenant = argv[optind], *cid = argv[optind + 1];
	open_journal(c, 0);
	char *item = journal_input_item(c->j, s, tenant, cid);
	if (!item && *journal_error(c->j))
		die_journal(c);
	if (!item) {
		struct jrequest r;
		int known = journal_get(c->j, tenant, cid, &r);
		journal_request_clear(&r);
		err_log(ERR_ERROR, NULL, "%s/%s: %s", tenant, cid, known > 0 ?
		    "never waited for this stage" : "no such request");
		return EXIT_NO;
	}
	put_item(item);
	free(item);
	return 0;
}

static int pending_row(void *arg, const char *tenant, const char *cid, const char *item)
{
	(void)arg;
	if (item)
		put_item(item);
	else
		err_log(ERR_WARNING, NULL, "%s/%s: no item journaled; skipped", tenant, cid);
	return stop;
}

static int cmd_pending(struct ctx *c, int argc, char **argv)
{
	const char *sname = NULL;
	int ch;
	while ((ch = opt(c, argc, argv, "+:s:")) != -1)
		sname = optarg;
	if (!sname || optind != argc)
		die_usage(c);
	enum jstage s = stage_arg(c, sname);
	open_journal(c, 0);
	if (journal_pending(c->j, s, pending_row, c) < 0)
		die_journal(c);
	return 0;
}

/* ---- retry, cancel ---- */

/* "tenant/correlationId", the label of a request's messages */
static const char *who(const char *tenant, const char *cid, char out[600])
{
	snprintf(out, 600, "%s/%s", tenant, cid);
	return out;
}

static void put_who(const char *tenant, const char *cid)
{
	put(tenant, 0);
	putchar('/');
	put(cid, 0);
}

/* why the command cannot act on tenant/cid (its row in r when got > 0) */
static int refuse(const char *tenant, const char *cid, int got, const struct jrequest *r,
    const char *why)
{
	char label[600];
	if (got > 0)
		err_log(ERR_ERROR, who(tenant, cid, label), "%s: %s", r->state, why);
	else
		err_log(ERR_ERROR, who(tenant, cid, label), "no such request");
	return EXIT_NO;
}

static void retried_line(const struct ctx *c, const struct jrequest *r)
{
	struct report_progress p = report_progress(r, c->now);
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		report_request(o, r);
		report_str(o, "stage", p.stage);
		put_json(o);
		return;
	}
	put_who(r->tenant, r->cid);
	printf(": %s: due now for %s", r->state, p.stage);
	if (r->attempts > 0)
		printf(" (set aside %lld time%s)", (long long)r->attempts, r->attempts == 1 ? "" : "s");
	putchar('\n');
}

static int cmd_retry(struct ctx *c, int argc, char **argv)
{
	struct jrequest r = { 0 };
	while (opt(c, argc, argv, "+:") != -1)
		;
	if (argc - optind != 2)
		die_usage(c);
	const char *tenant = argv[optind], *cid = argv[optind + 1];
	open_journal(c, 0);
	int due = journal_retry_now(c->j, tenant, cid);
	int got = due < 0 ? -1 : journal_get(c->j, tenant, cid, &r), rc = 0;
	if (got < 0)
		die_journal(c);
	if (due > 0 && got > 0)
		retried_line(c, &r);
	else
		rc = refuse(tenant, cid, got, &r, got > 0 && journal_state_terminal(r.state) ?
		    "ended; nothing to try again" : "a stage is working on it; not waiting");
	journal_request_clear(&r);
	return rc;
}

/* How an operator or the sweeper ends a request. */
struct end {
	struct ctx *c;
	const char *workspace;
	const char *error_type, *message;
	const char *why;           /* of a failed end */
	int temporary;             /* it may pass */
};

static void remove_workspace(const char *root, const char *tenant, const char *cid)
{
	char dir[4096], label[600];
	who(tenant, cid, label);
	if (workspace_path(root, tenant, cid, dir, sizeof dir) < 0)
		err_log(ERR_WARNING, label, "no workspace path: %s", strerror(errno));
	else if (workspace_remove(dir) < 0)
		err_log(ERR_WARNING, label, "unable to remove %s: %s", dir, strerror(errno));
}

/* End the request ERROR e->error_type: its response, with the headers of
 * its latest item (text), to the outbox and fd 3, then its workspace
 * removed (a stage working on it stops, and removes it too). 1 ended, 0
 * it ended meanwhile, -1 (e->why, e->temporary). */
static int end_request(struct end *e, const char *tenant, const char *cid, const char *text)
{
	char err[64];
	cJSON *item = text ? item_parse(text, strlen(text), err, sizeof err) : NULL;
	char *headers = item ? stage_headers(item) : response_headers(tenant, NULL);
	cJSON_Delete(item);
	char *body = response_body(cid, "ERROR", e->message, e->error_type, NULL, NULL);
	struct jcommit cm = {
		.tenant = tenant, .cid = cid, .stage = JSTAGE_SWEEP, .state = "ERROR",
		.response = body, .headers = headers, .error_type = e->error_type,
	};
	int rc = body && headers ? journal_commit(e->c->j, &cm) : -1;
	if (rc < 0) {
		e->why = body && headers ? journal_error(e->c->j) : strerror(ENOMEM);
		e->temporary = !body || !headers || journal_temporary(e->c->j);
	} else if (rc > 0) {
		stage_fd3(body);
		remove_workspace(e->workspace, tenant, cid);
	}
	free(body);
	free(headers);
	return rc;
}

struct cancel {
	struct end e;
	const char *was;           /* the state it was cancelled in */
	int rc;                    /* end_request's */
};

static void cancelled_line(const struct ctx *c, const struct cancel *k, const char *tenant,
    const char *cid)
{
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		report_str(o, "tenant", tenant);
		report_str(o, "correlationId", cid);
		report_str(o, "state", "ERROR");
		report_str(o, "errorType", k->e.error_type);
		report_str(o, "message", k->e.message);
		report_str(o, "previousState", k->was);
		report_time(o, "endedAt", util_now_ms());
		put_json(o);
		return;
	}
	put_who(tenant, cid);
	printf(": ERROR %s (was %s): ", k->e.error_type, k->was);
	put(k->e.message, 0);
	putchar('\n');
}

static int cancel_one(void *arg, const char *tenant, const char *cid, const char *text)
{
	struct cancel *k = arg;
	k->rc = end_request(&k->e, tenant, cid, text);
	return 1;
}

static int cmd_cancel(struct ctx *c, int argc, char **argv)
{
	struct cancel k = { .e = { .c = c, .error_type = "INTERNAL_ERROR",
		.message = "cancelled by an operator",
		.workspace = util_env("FERRY_WORKSPACE", "/var/lib/ferry/workspace") } };
	struct jrequest r;
	char label[600];
	int ch, n = 0;
	const char *operand[3] = { NULL, NULL, NULL };
	/* options before or after the operands: cancel p1 c-42 -m "why" */
	while (optind < argc) {
		if ((ch = opt(c, argc, argv, "+:m:w:")) == -1) {
			if (optind < argc && n < 3)
				operand[n++] = argv[optind];
			optind += optind < argc;
			continue;
		}
		switch (ch) {
		case 'm': k.e.message = optarg; break;
		case 'w': k.e.workspace = optarg; break;
		}
	}
	if (!*k.e.message)
		err_error("-m: an empty message tells the client nothing");
	if (n != 2 || !*k.e.message)
		die_usage(c);
	const char *tenant = operand[0], *cid = operand[1];
	open_journal(c, 0);
	int got = journal_get(c->j, tenant, cid, &r);
	if (got < 0)
		die_journal(c);
	k.was = got > 0 ? r.state : NULL;
	if (got > 0 && !journal_state_terminal(r.state) &&
	    journal_live_item(c->j, tenant, cid, cancel_one, &k) < 0)
		die_journal(c);
	if (k.rc < 0)
		err_die(k.e.temporary ? EXIT_TEMP : EXIT_PERM, "%s: %s", who(tenant, cid, label),
		    k.e.why);
	if (k.rc > 0) {
		err_log(ERR_INFO, who(tenant, cid, label), "cancelled in %s: ERROR %s", k.was,
		    k.e.error_type);
		cancelled_line(c, &k, tenant, cid);
	} else if (got > 0 && !journal_state_terminal(r.state)) {
		err_log(ERR_ERROR, who(tenant, cid, label), "ended meanwhile; not cancelled");
	} else {
		refuse(tenant, cid, got, &r, "ended already; nothing to cancel");
	}
	journal_request_clear(&r);
	return k.rc > 0 ? 0 : EXIT_NO;
}

/* ---- expire ---- */

struct sweep {
	struct ctx *c;
	const char *workspace;
	int failed, temporary;    /* of this pass */
	int64_t cutoff;           /* the pass ended what expired by then */
};

static void expired_line(const struct ctx *c, const char *tenant, const char *cid,
    int64_t expires, int64_t ended)
{
	char t[32], late[32];
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		report_str(o, "tenant", tenant);
		report_str(o, "correlationId", cid);
		report_time(o, "expiresAt", expires);
		report_time(o, "endedAt", ended);
		cJSON_AddNumberToObject(o, "lateMs", (double)(ended - expires));
		put_json(o);
	} else {
		put_who(tenant, cid);
		util_iso8601(expires, t);
		printf(": ERROR EXPIRED: expired at %s, ended %s late\n", t, span(ended - expires, late));
	}
	flush_out();
}

static int expire_one(void *arg, const char *tenant, const char *cid, const char *text)
{
	struct sweep *sw = arg;
	struct jrequest r;
	char label[600], t[32], msg[128];
	who(tenant, cid, label);
	int got = journal_get(sw->c->j, tenant, cid, &r);
	if (got < 0) {
		err_log(ERR_ERROR, label, "%s", journal_error(sw->c->j));
		sw->failed = 1;
		sw->temporary |= journal_temporary(sw->c->j);
	}
	if (got <= 0 || r.expires_ms <= 0) {
		journal_request_clear(&r);
		return stop;     /* gone meanwhile (pruned), or failed: next pass */
	}
	int64_t expires = r.expires_ms;
	journal_request_clear(&r);
	util_iso8601(expires, t);
	snprintf(msg, sizeof msg, "The request date has reached the expiration limit '%s'", t);
	struct end e = { .c = sw->c, .workspace = sw->workspace, .error_type = "EXPIRED",
		.message = msg };
	int rc = end_request(&e, tenant, cid, text);
	int64_t ended = util_now_ms();
	if (rc < 0) {
		err_log(ERR_ERROR, label, "%s", e.why);
		sw->failed = 1;
		sw->temporary |= e.temporary;
	} else if (rc == 0) {
		err_log(ERR_INFO, label, "ended meanwhile; not expired");
	} else {
		err_log(ERR_INFO, label, "ERROR EXPIRED, %lld ms after its expiry",
		    (long long)(ended - expires));
		expired_line(sw->c, tenant, cid, expires, ended);
	}
	return stop;
}

/* One pass; 0, or -1 when something failed (sw->temporary tells how). */
static int sweep_once(struct sweep *sw)
{
	sw->failed = sw->temporary = 0;
	sw->cutoff = util_now_ms();
	if (journal_expired(sw->c->j, sw->cutoff, expire_one, sw) < 0) {
		sw->failed = 1;
		sw->temporary = journal_temporary(sw->c->j);
		err_log(ERR_ERROR, NULL, "%s", journal_error(sw->c->j));
	}
	return sw->failed ? -1 : 0;
}

/* Sleep until the next known expiry, or interval ms at most. Every 100 ms
 * a cheap look at PRAGMA data_version tells whether another process wrote
 * to the journal: a request granted meanwhile may be due sooner. Requests
 * due at the last pass and still there could not be ended: they are not
 * waited for (that would spin), the interval is. */
static void nap(struct sweep *sw, int64_t interval)
{
	int64_t now = util_now_ms(), end = now + interval, seen = -2, next;
	while (!stop && now < end) {
		int64_t v = journal_data_version(sw->c->j);
		if (v != seen && journal_next_expiry(sw->c->j, sw->cutoff, &next) > 0 && next < end)
			end = next + 1;
		seen = v;
		int64_t ms = end - now < 100 ? end - now : 100;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000L };
		if (ms > 0)
			nanosleep(&ts, NULL);   /* a signal cuts it short */
		now = util_now_ms();
	}
}

static int cmd_expire(struct ctx *c, int argc, char **argv)
{
	struct sweep sw = { .c = c, .workspace = util_env("FERRY_WORKSPACE", "/var/lib/ferry/workspace") };
	int64_t interval = 1000;
	int ch, follow = 0;
	while ((ch = opt(c, argc, argv, "+:fi:w:")) != -1) {
		switch (ch) {
		case 'f': follow = 1; break;
		case 'i':
			if (parse_span(optarg, &interval) < 0 || interval < 10 || interval > 3600000)
				err_die(EXIT_PERM, "-i %s: not an interval from 10ms to 1h", optarg);
			break;
		case 'w': sw.workspace = optarg; break;
		}
	}
	if (optind != argc)
		die_usage(c);
	util_signals(&stop);
	open_journal(c, 1);
	if (follow)
		err_info("sweeping every %lld ms", (long long)interval);
	do {
		if (sweep_once(&sw) < 0 && !(follow && sw.temporary))
			err_die(sw.temporary ? EXIT_TEMP : EXIT_PERM, "giving up");
		if (follow)
			nap(&sw, interval);
	} while (follow && !stop);
	return 0;
}

/* ---- prune ---- */

static int cmd_prune(struct ctx *c, int argc, char **argv)
{
	const char *age = NULL;
	int64_t ms;
	int ch;
	while ((ch = opt(c, argc, argv, "+:o:")) != -1)
		age = optarg;
	if (!age || optind != argc)
		die_usage(c);
	if (parse_span(age, &ms) < 0)
		err_die(EXIT_PERM, "-o %s: not an age (30d, 12h, 90m)", age);
	open_journal(c, 0);
	int64_t n = journal_prune(c->j, c->now - ms, PRUNE_BATCH);
	if (n < 0)
		die_journal(c);
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "pruned", (double)n);
		report_time(o, "updatedBefore", c->now - ms);
		put_json(o);
	} else {
		printf("%lld request%s pruned\n", (long long)n, n == 1 ? "" : "s");
	}
	return 0;
}

/* ---- stats, metrics ---- */

static void load_counts(struct ctx *c, struct report_tally *states, struct report_tally *errors)
{
	if (report_counts(c->j, states, errors) < 0)
		die_journal(c);
}

static cJSON *tally_json(const struct report_tally *t)
{
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; i < t->n; i++)
		if (t->e[i].v)
			cJSON_AddNumberToObject(o, t->e[i].key, (double)t->e[i].v);
	return o;
}

static void stats_json(const struct ctx *c, const struct jtotals *t,
    const struct report_tally *states, const struct report_tally *errors)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "requests", (double)t->requests);
	cJSON_AddItemToObject(o, "states", tally_json(states));
	cJSON_AddItemToObject(o, "errorTypes", tally_json(errors));
	cJSON_AddNumberToObject(o, "receivedLastHour", (double)t->received_hour);
	cJSON_AddNumberToObject(o, "receivedLastDay", (double)t->received_day);
	cJSON_AddNumberToObject(o, "outboxUnsent", (double)t->outbox_unsent);
	cJSON_AddNumberToObject(o, "outboxSetAside", (double)t->outbox_set_aside);
	cJSON_AddNumberToObject(o, "retries", (double)t->retries);
	cJSON_AddNumberToObject(o, "waitingRetry", (double)t->waiting_retry);
	if (t->oldest_unsent_ms > 0)
		cJSON_AddNumberToObject(o, "oldestUnsentSeconds",
		    (double)(c->now - t->oldest_unsent_ms) / 1000.0);
	cJSON_AddNumberToObject(o, "bytesDelivered", (double)t->bytes_delivered);
	cJSON_AddNumberToObject(o, "schemaVersion", (double)t->schema_version);
	put_json(o);
}

static void stats_text(const struct ctx *c, const struct jtotals *t,
    const struct report_tally *states, const struct report_tally *errors)
{
	char a[32], b[32];
	printf("%-20s %lld\n", "requests", (long long)t->requests);
	for (int i = 0; i < states->n; i++)
		if (states->e[i].v)
			printf("  %-18s %lld\n", states->e[i].key, (long long)states->e[i].v);
	int64_t nerr = 0;
	for (int i = 0; i < errors->n; i++)
		nerr += errors->e[i].v;
	printf("%-20s %lld\n", "errors", (long long)nerr);
	for (int i = 0; i < errors->n; i++)
		if (errors->e[i].v)
			printf("  %-18s %lld\n", errors->e[i].key, (long long)errors->e[i].v);
	printf("%-20s %lld\n", "received last hour", (long long)t->received_hour);
	printf("%-20s %lld\n", "received last day", (long long)t->received_day);
	printf("%-20s %lld\n", "outbox unsent", (long long)t->outbox_unsent);
	printf("%-20s %lld\n", "outbox set aside", (long long)t->outbox_set_aside);
	printf("%-20s %lld\n", "retries", (long long)t->retries);
	printf("%-20s %lld\n", "waiting retry", (long long)t->waiting_retry);
	printf("%-20s %s\n", "oldest unsent", t->oldest_unsent_ms > 0 ?
	    span(c->now - t->oldest_unsent_ms, a) : "-");
	printf("%-20s %s\n", "bytes delivered", size((double)t->bytes_delivered, b));
	printf("%-20s %lld\n", "schema version", (long long)t->schema_version);
}

static int cmd_stats(struct ctx *c, int argc, char **argv)
{
	struct report_tally states = { 0 }, errors = { 0 };
	struct jtotals t;
	while (opt(c, argc, argv, "+:") != -1)
		;
	if (optind != argc)
		die_usage(c);
	open_journal(c, 0);
	if (journal_totals(c->j, c->now, &t) < 0)
		die_journal(c);
	load_counts(c, &states, &errors);
	if (c->json)
		stats_json(c, &t, &states, &errors);
	else
		stats_text(c, &t, &states, &errors);
	return 0;
}

static int cmd_metrics(struct ctx *c, int argc, char **argv)
{
	while (opt(c, argc, argv, "+:") != -1)
		;
	if (optind != argc)
		die_usage(c);
	open_journal(c, 0);
	if (report_metrics(c->j, c->now, stdout) < 0)
		die_journal(c);
	return 0;
}

/* ---- check ---- */

static int problem_row(void *arg, const struct jproblem *p)
{
	struct ctx *c = arg;
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		report_str(o, "check", p->check);
		report_str(o, "tenant", p->tenant);
		report_str(o, "correlationId", p->cid);
		report_str(o, "detail", p->detail);
		put_json(o);
	} else {
		printf("%s: ", p->check);
		if (p->tenant) {
			put(p->tenant, 0);
			putchar('/');
			put(p->cid, 0);
			fputs(": ", stdout);
		}
		put(p->detail, 0);
		putchar('\n');
	}
	return stop || out_failed();
}

static int cmd_check(struct ctx *c, int argc, char **argv)
{
	while (opt(c, argc, argv, "+:") != -1)
		;
	if (optind != argc)
		die_usage(c);
	open_journal(c, 0);
	int n = journal_check(c->j, problem_row, c);
	if (n < 0)
		die_journal(c);
	if (n == 0 && !c->json)
		puts("ok");
	return n > 0 ? EXIT_NO : 0;
}

/* ---- main ---- */

static const struct command commands[] = {
	{ "list", cmd_list, "[-n count] [-s state] [-S since] [-t tenant]" },
	{ "show", cmd_show, "tenant correlationId" },
	{ "status", cmd_status, "" },
	{ "item", cmd_item, "-s stage tenant correlationId" },
	{ "pending", cmd_pending, "-s stage" },
	{ "retry", cmd_retry, "tenant correlationId" },
	{ "cancel", cmd_cancel, "[-m message] [-w workspace] tenant correlationId" },
	{ "expire", cmd_expire, "[-f] [-i interval] [-w workspace]" },
	{ "prune", cmd_prune, "-o age" },
	{ "stats", cmd_stats, "" },
	{ "metrics", cmd_metrics, "" },
	{ "check", cmd_check, "" },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct ctx c = { .jpath = util_env("FERRY_JOURNAL", "/var/lib/ferry/journal.db") };
	int ch;

	err_init("ferry-journal");
	args_init(argc, argv);
	if (stage_fd3_init() < 0)
		err_die(EXIT_TEMP, "unable to open /dev/null: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "+:hJvj:")) != -1) {
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'J': c.json = 1; break;
		case 'v': err_verbose(1); break;
		case 'j': c.jpath = optarg; break;
		default:
			err_die(EXIT_PERM, "%s; usage: ferry-journal [-hJv] [-j journal] command [args]"
			    " (-h lists the commands)", args_bad_option());
		}
	}
	if (optind >= argc || !(c.cmd = find_command(argv[optind])))
		err_die(EXIT_PERM, "%s%s: usage: ferry-journal [-hJv] [-j journal] command [args]"
		    " (-h lists the commands)", optind < argc ? "unknown command " : "no command",
		    optind < argc ? argv[optind] : "");
	argc -= optind;
	argv += optind;
	optind = 1;
	int rc = c.cmd->fn(&c, argc, argv);
	journal_close(c.j);
	if (fflush(stdout) == EOF || ferror(stdout))
		die_stdout();
	return rc;
}
