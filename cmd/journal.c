/* ferry-journal: the operator's tool for the journal — list, show, status,
 * replay items, pending, the expiry sweeper, prune, stats, metrics, check.
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

#include "err.h"
#include "item.h"
#include "journal.h"
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

static void jstr(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
}

static void jtime(cJSON *o, const char *key, int64_t ms)
{
	char t[32];
	if (ms > 0) {
		util_iso8601(ms, t);
		cJSON_AddStringToObject(o, key, t);
	}
}

/* text as JSON when it parses, else as a string */
static void jraw(cJSON *o, const char *key, const char *text)
{
	cJSON *v = text ? cJSON_Parse(text) : NULL;
	if (v)
		cJSON_AddItemToObject(o, key, v);
	else
		jstr(o, key, text);
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
		jstr(o, "tenant", r->tenant);
		jstr(o, "correlationId", r->cid);
		jstr(o, "state", r->state);
		jstr(o, "errorType", r->error_type);
		jtime(o, "receivedAt", r->received_ms);
		jtime(o, "updatedAt", r->updated_ms);
		jtime(o, "expiresAt", r->expires_ms);
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

static int show_event_json(void *arg, const struct jevent *e)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)e->id);
	jstr(o, "stage", e->stage);
	jstr(o, "state", e->state);
	jtime(o, "startedAt", e->started_ms);
	jtime(o, "at", e->at_ms);
	if (e->started_ms > 0)
		cJSON_AddNumberToObject(o, "seconds", (double)(e->at_ms - e->started_ms) / 1000.0);
	cJSON_AddNumberToObject(o, "bytes", (double)e->bytes);
	jraw(o, "item", e->item);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

static int show_event_text(void *arg, const struct jevent *e)
{
	char t[32], d[32], b[32];
	(void)arg;
	util_iso8601(e->at_ms, t);
	printf("%-25s %-9s %-11s %-9s %s\n", t, e->stage, e->state,
	    e->started_ms > 0 ? span(e->at_ms - e->started_ms, d) : "-",
	    e->bytes > 0 ? size((double)e->bytes, b) : "-");
	return out_failed();
}

static int show_response_json(void *arg, const struct joutbox *o)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double)o->id);
	jtime(r, "createdAt", o->created_ms);
	cJSON_AddBoolToObject(r, "sent", o->sent_ms > 0);
	jtime(r, "sentAt", o->sent_ms);
	jraw(r, "body", o->body);
	jraw(r, "headers", o->headers);
	cJSON_AddItemToArray(arg, r);
	return 0;
}

static int show_response_text(void *arg, const struct joutbox *o)
{
	char t1[32], t2[32];
	(void)arg;
	util_iso8601(o->created_ms, t1);
	if (o->sent_ms > 0)
		util_iso8601(o->sent_ms, t2);
	printf("%-25s %-25s ", t1, o->sent_ms > 0 ? t2 : "unsent");
	put(o->body, 0);
	putchar('\n');
	return out_failed();
}

static void show_json(struct ctx *c, const struct jrequest *r)
{
	cJSON *o = cJSON_CreateObject(), *ev = cJSON_CreateArray(), *out = cJSON_CreateArray();
	jstr(o, "tenant", r->tenant);
	jstr(o, "correlationId", r->cid);
	jstr(o, "state", r->state);
	jstr(o, "errorType", r->error_type);
	jtime(o, "receivedAt", r->received_ms);
	jtime(o, "expiresAt", r->expires_ms);
	jtime(o, "updatedAt", r->updated_ms);
	jstr(o, "claimedBy", r->claimed_by);
	jtime(o, "claimedAt", r->claimed_by ? r->claimed_ms : 0);
	cJSON_AddItemToObject(o, "events", ev);
	cJSON_AddItemToObject(o, "responses", out);
	if (journal_history(c->j, r->tenant, r->cid, show_event_json, ev) < 0 ||
	    journal_outbox_of(c->j, r->tenant, r->cid, show_response_json, out) < 0)
		die_journal(c);
	put_json(o);
}

static void show_text(struct ctx *c, const struct jrequest *r)
{
	static const char *const label[] = { "request", "state", "error type", "received",
		"expires", "updated", "claimed by" };
	char t[3][32];
	const char *value[] = { NULL, r->state, r->error_type, iso(r->received_ms, t[0]),
		iso(r->expires_ms, t[1]), iso(r->updated_ms, t[2]), r->claimed_by };
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
	if (journal_history(c->j, r->tenant, r->cid, show_event_text, NULL) < 0)
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

struct progress {
	const char *stage;
	int busy;
	double rate;          /* bytes/s since the claim; < 0 unknown */
};

static struct progress progress_of(const struct ctx *c, const struct jrequest *r)
{
	struct progress p = { .stage = "-", .rate = -1 };
	int s = journal_state_stage(r->state, &p.busy);
	if (s >= 0)
		p.stage = journal_stage(s)->name;
	if (p.busy && r->claimed_ms > 0 && c->now > r->claimed_ms)
		p.rate = (double)r->bytes_done * 1000.0 / (double)(c->now - r->claimed_ms);
	return p;
}

static void status_json(const struct ctx *c, const struct jrequest *r, const struct progress *p)
{
	cJSON *o = cJSON_CreateObject();
	jstr(o, "tenant", r->tenant);
	jstr(o, "correlationId", r->cid);
	jstr(o, "state", r->state);
	jstr(o, "stage", p->stage);
	cJSON_AddBoolToObject(o, "busy", p->busy);
	if (p->busy) {
		jstr(o, "claimedBy", r->claimed_by);
		jtime(o, "claimedAt", r->claimed_ms);
		cJSON_AddNumberToObject(o, "bytesDone", (double)r->bytes_done);
		cJSON_AddNumberToObject(o, "bytesTotal", (double)r->bytes_total);
	}
	if (p->rate >= 0)
		cJSON_AddNumberToObject(o, "bytesPerSecond", (double)(int64_t)(p->rate + 0.5));
	jtime(o, "receivedAt", r->received_ms);
	cJSON_AddNumberToObject(o, "ageSeconds", (double)(c->now - r->received_ms) / 1000.0);
	jtime(o, "expiresAt", r->expires_ms);
	if (r->expires_ms > 0)
		cJSON_AddNumberToObject(o, "expiresInSeconds",
		    (double)(r->expires_ms - c->now) / 1000.0);
	put_json(o);
}

static void status_text(const struct ctx *c, const struct jrequest *r, const struct progress *p)
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
}

static int status_row(void *arg, const struct jrequest *r)
{
	struct ctx *c = arg;
	struct progress p = progress_of(c, r);
	if (c->json)
		status_json(c, r, &p);
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
		jstr(o, "tenant", tenant);
		jstr(o, "correlationId", cid);
		jtime(o, "expiresAt", expires);
		jtime(o, "endedAt", ended);
		cJSON_AddNumberToObject(o, "lateMs", (double)(ended - expires));
		put_json(o);
	} else {
		put(tenant, 0);
		putchar('/');
		put(cid, 0);
		util_iso8601(expires, t);
		printf(": ERROR EXPIRED: expired at %s, ended %s late\n", t, span(ended - expires, late));
	}
	flush_out();
}

/* The response and headers of an EXPIRED end; NULL on ENOMEM. */
static char *expired_response(const char *tenant, const char *cid, const char *text,
    int64_t expires, char **headers)
{
	char t[32], msg[128], err[64];
	cJSON *item = text ? item_parse(text, strlen(text), err, sizeof err) : NULL;
	util_iso8601(expires, t);
	snprintf(msg, sizeof msg, "The request date has reached the expiration limit '%s'", t);
	*headers = item ? stage_headers(item) : response_headers(tenant, NULL);
	cJSON_Delete(item);
	return response_body(cid, "ERROR", msg, "EXPIRED", NULL, NULL);
}

static void remove_workspace(const struct sweep *sw, const char *tenant, const char *cid)
{
	char dir[4096], label[600];
	snprintf(label, sizeof label, "%s/%s", tenant, cid);
	if (workspace_path(sw->workspace, tenant, cid, dir, sizeof dir) < 0)
		err_log(ERR_WARNING, label, "no workspace path: %s", strerror(errno));
	else if (workspace_remove(dir) < 0)
		err_log(ERR_WARNING, label, "unable to remove %s: %s", dir, strerror(errno));
}

static int expire_one(void *arg, const char *tenant, const char *cid, const char *text)
{
	struct sweep *sw = arg;
	struct jrequest r;
	char label[600], *headers = NULL;
	snprintf(label, sizeof label, "%s/%s", tenant, cid);
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
	char *body = expired_response(tenant, cid, text, expires, &headers);
	struct jcommit cm = {
		.tenant = tenant, .cid = cid, .stage = JSTAGE_SWEEP, .state = "ERROR",
		.response = body, .headers = headers, .error_type = "EXPIRED",
	};
	int rc = body && headers ? journal_commit(sw->c->j, &cm) : -1;
	int64_t ended = util_now_ms();
	if (rc < 0) {
		err_log(ERR_ERROR, label, "%s", body && headers ? journal_error(sw->c->j)
		    : strerror(ENOMEM));
		sw->failed = 1;
		sw->temporary |= !body || !headers || journal_temporary(sw->c->j);
	} else if (rc == 0) {
		err_log(ERR_INFO, label, "ended meanwhile; not expired");
	} else {
		stage_fd3(body);
		remove_workspace(sw, tenant, cid);
		err_log(ERR_INFO, label, "ERROR EXPIRED, %lld ms after its expiry",
		    (long long)(ended - expires));
		expired_line(sw->c, tenant, cid, expires, ended);
	}
	free(body);
	free(headers);
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
		jtime(o, "updatedBefore", c->now - ms);
		put_json(o);
	} else {
		printf("%lld request%s pruned\n", (long long)n, n == 1 ? "" : "s");
	}
	return 0;
}

/* ---- stats, metrics ---- */

/* A small key -> count table, seeded with the keys always shown. */
struct tally {
	int n;
	struct { char key[64]; int64_t v; } e[48];
};

static void tally_set(struct tally *t, const char *key, int64_t v)
{
	int i = 0;
	while (i < t->n && strcmp(t->e[i].key, key) != 0)
		i++;
	if (i == t->n && t->n == (int)(sizeof t->e / sizeof *t->e))
		return;
	if (i == t->n)
		util_strlcpy(t->e[t->n++].key, key, sizeof t->e[0].key);
	t->e[i].v = v;
}

static int tally_fn(void *arg, const char *key, int64_t n)
{
	if (key)
		tally_set(arg, key, n);
	return 0;
}

static const char *const error_types[] = {
	"INVALID_CONTENT", "FORBIDDEN", "ORDER_LIMIT_REACHED", "TOO_MANY_SUBORDERS",
	"EMPTY_ORDER", "EXPIRED", "INTERNAL_ERROR",
};

/* every state in pipeline order, then errorTypes; both with zeros */
static void seed(struct tally *states, struct tally *errors)
{
	for (int i = 0; i < JSTAGE_COUNT; i++) {
		const struct jstage_info *s = journal_stage(i);
		const char *names[] = { s->input, s->busy, s->output };
		for (int k = 0; k < 3; k++)
			if (names[k])
				tally_set(states, names[k], 0);
	}
	tally_set(states, "DENIED", 0);
	tally_set(states, "ERROR", 0);
	for (size_t i = 0; i < sizeof error_types / sizeof *error_types; i++)
		tally_set(errors, error_types[i], 0);
}

static void load_counts(struct ctx *c, struct tally *states, struct tally *errors)
{
	seed(states, errors);
	if (journal_count_by(c->j, JCOUNT_STATE, tally_fn, states) < 0 ||
	    journal_count_by(c->j, JCOUNT_ERROR_TYPE, tally_fn, errors) < 0)
		die_journal(c);
}

static cJSON *tally_json(const struct tally *t)
{
	cJSON *o = cJSON_CreateObject();
	for (int i = 0; i < t->n; i++)
		if (t->e[i].v)
			cJSON_AddNumberToObject(o, t->e[i].key, (double)t->e[i].v);
	return o;
}

static void stats_json(const struct ctx *c, const struct jtotals *t, const struct tally *states,
    const struct tally *errors)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "requests", (double)t->requests);
	cJSON_AddItemToObject(o, "states", tally_json(states));
	cJSON_AddItemToObject(o, "errorTypes", tally_json(errors));
	cJSON_AddNumberToObject(o, "receivedLastHour", (double)t->received_hour);
	cJSON_AddNumberToObject(o, "receivedLastDay", (double)t->received_day);
	cJSON_AddNumberToObject(o, "outboxUnsent", (double)t->outbox_unsent);
	if (t->oldest_unsent_ms > 0)
		cJSON_AddNumberToObject(o, "oldestUnsentSeconds",
		    (double)(c->now - t->oldest_unsent_ms) / 1000.0);
	cJSON_AddNumberToObject(o, "bytesDelivered", (double)t->bytes_delivered);
	cJSON_AddNumberToObject(o, "schemaVersion", (double)t->schema_version);
	put_json(o);
}

static void stats_text(const struct ctx *c, const struct jtotals *t, const struct tally *states,
    const struct tally *errors)
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
	printf("%-20s %s\n", "oldest unsent", t->oldest_unsent_ms > 0 ?
	    span(c->now - t->oldest_unsent_ms, a) : "-");
	printf("%-20s %s\n", "bytes delivered", size((double)t->bytes_delivered, b));
	printf("%-20s %lld\n", "schema version", (long long)t->schema_version);
}

static int cmd_stats(struct ctx *c, int argc, char **argv)
{
	struct tally states = { 0 }, errors = { 0 };
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

static const double bounds[] = { 0.01, 0.1, 1, 10, 60, 300, 600, 1800, 3600 };
enum { NBOUNDS = sizeof bounds / sizeof *bounds };

struct hist {
	int n;
	struct { char stage[32]; int64_t count, le[NBOUNDS]; double sum; } e[16];
};

static int hist_fn(void *arg, const struct jdurations *d)
{
	struct hist *h = arg;
	int i = 0;
	while (i < h->n && strcmp(h->e[i].stage, d->stage) != 0)
		i++;
	if (i == h->n && h->n == (int)(sizeof h->e / sizeof *h->e))
		return 0;
	if (i == h->n)
		util_strlcpy(h->e[h->n++].stage, d->stage, sizeof h->e[0].stage);
	h->e[i].count = d->count;
	h->e[i].sum = d->sum_s;
	memcpy(h->e[i].le, d->le, sizeof h->e[i].le);
	return 0;
}

static void help(const char *name, const char *type, const char *text)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* a label value, escaped as the exposition format wants */
static void label(const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			printf("\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", stdout);
		else
			putchar(*v);
	}
}

static void tally_metric(const char *name, const char *key, const struct tally *t)
{
	for (int i = 0; i < t->n; i++) {
		printf("%s{%s=\"", name, key);
		label(t->e[i].key);
		printf("\"} %lld\n", (long long)t->e[i].v);
	}
}

static void hist_metric(const struct hist *h)
{
	const char *name = "ferry_stage_duration_seconds";
	help(name, "histogram", "Time from a stage's claim of a request to its commit.");
	for (int i = 0; i < h->n; i++) {
		for (int b = 0; b < NBOUNDS; b++) {
			printf("%s_bucket{stage=\"", name);
			label(h->e[i].stage);
			printf("\",le=\"%g\"} %lld\n", bounds[b], (long long)h->e[i].le[b]);
		}
		printf("%s_bucket{stage=\"", name);
		label(h->e[i].stage);
		printf("\",le=\"+Inf\"} %lld\n", (long long)h->e[i].count);
		printf("%s_sum{stage=\"", name);
		label(h->e[i].stage);
		printf("\"} %.3f\n", h->e[i].sum);
		printf("%s_count{stage=\"", name);
		label(h->e[i].stage);
		printf("\"} %lld\n", (long long)h->e[i].count);
	}
}

static int cmd_metrics(struct ctx *c, int argc, char **argv)
{
	struct tally states = { 0 }, errors = { 0 };
	struct hist h = { 0 };
	struct jtotals t;
	while (opt(c, argc, argv, "+:") != -1)
		;
	if (optind != argc)
		die_usage(c);
	open_journal(c, 0);
	for (int i = JSTAGE_VALIDATE; i < JSTAGE_COUNT; i++)   /* ingest claims nothing */
		util_strlcpy(h.e[h.n++].stage, journal_stage(i)->name, sizeof h.e[0].stage);
	if (journal_totals(c->j, c->now, &t) < 0 ||
	    journal_durations(c->j, bounds, NBOUNDS, hist_fn, &h) < 0)
		die_journal(c);
	load_counts(c, &states, &errors);
	help("ferry_requests", "gauge", "Requests in the journal, by state.");
	tally_metric("ferry_requests", "state", &states);
	help("ferry_requests_errors_total", "counter",
	    "Requests in the journal ended DENIED or ERROR, by errorType.");
	tally_metric("ferry_requests_errors_total", "error_type", &errors);
	help("ferry_bytes_delivered_total", "counter", "Bytes of the zips uploaded for DONE requests.");
	printf("ferry_bytes_delivered_total %lld\n", (long long)t.bytes_delivered);
	help("ferry_outbox_unsent", "gauge", "Responses not yet published by ferry-notify.");
	printf("ferry_outbox_unsent %lld\n", (long long)t.outbox_unsent);
	help("ferry_outbox_oldest_unsent_seconds", "gauge",
	    "Age of the oldest response not yet published (0 when none).");
	printf("ferry_outbox_oldest_unsent_seconds %.3f\n", t.oldest_unsent_ms > 0 ?
	    (double)(c->now - t.oldest_unsent_ms) / 1000.0 : 0.0);
	hist_metric(&h);
	help("ferry_journal_schema_version", "gauge", "Schema version of the journal.");
	printf("ferry_journal_schema_version %lld\n", (long long)t.schema_version);
	return 0;
}

/* ---- check ---- */

static int problem_row(void *arg, const struct jproblem *p)
{
	struct ctx *c = arg;
	if (c->json) {
		cJSON *o = cJSON_CreateObject();
		jstr(o, "check", p->check);
		jstr(o, "tenant", p->tenant);
		jstr(o, "correlationId", p->cid);
		jstr(o, "detail", p->detail);
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
	if (stage_fd3_init() < 0)
		err_die(EXIT_TEMP, "unable to open /dev/null: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	opterr = 0;
	while ((ch = getopt(argc, argv, "+:hJvj:")) != -1) {
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'J': c.json = 1; break;
		case 'v': err_verbose(1); break;
		case 'j': c.jpath = optarg; break;
		default:
			err_die(EXIT_PERM, "usage: ferry-journal [-hJv] [-j journal] command [args]"
			    " (-h lists the commands)");
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
