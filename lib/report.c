/* report: the journal's records, progress, counts and metrics as the
 * operator tools show them (see report.h). Queries are lib/journal's; this
 * file only shapes their answers. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "util.h"

void report_str(cJSON *o, const char *key, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, key, v);
}

void report_time(cJSON *o, const char *key, int64_t ms)
{
	char t[32];
	if (ms > 0) {
		util_iso8601(ms, t);
		cJSON_AddStringToObject(o, key, t);
	}
}

void report_raw(cJSON *o, const char *key, const char *text)
{
	cJSON *v = text ? cJSON_Parse(text) : NULL;
	if (v)
		cJSON_AddItemToObject(o, key, v);
	else
		report_str(o, key, text);
}

/* ---- show ---- */

static int event_json(void *arg, const struct jevent *e)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)e->id);
	report_str(o, "stage", e->stage);
	report_str(o, "state", e->state);
	cJSON_AddNumberToObject(o, "submission", (double)e->submission);
	report_time(o, "startedAt", e->started_ms);
	report_time(o, "at", e->at_ms);
	if (e->started_ms > 0)
		cJSON_AddNumberToObject(o, "seconds", (double)(e->at_ms - e->started_ms) / 1000.0);
	cJSON_AddNumberToObject(o, "bytes", (double)e->bytes);
	report_raw(o, "item", e->item);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

static int response_json(void *arg, const struct joutbox *o)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double)o->id);
	report_time(r, "createdAt", o->created_ms);
	cJSON_AddBoolToObject(r, "sent", o->sent_ms > 0);
	report_time(r, "sentAt", o->sent_ms);
	report_time(r, "setAsideAt", o->set_aside_ms);
	if (o->set_aside_ms > 0)
		report_str(r, "setAsideWhy", o->set_aside_why);
	report_raw(r, "body", o->body);
	report_raw(r, "headers", o->headers);
	cJSON_AddItemToArray(arg, r);
	return 0;
}

/* how a request set aside after temporary failures stands; nothing when
 * it never was */
static void attempts_json(cJSON *o, const struct jrequest *r)
{
	if (r->attempts > 0)
		cJSON_AddNumberToObject(o, "attempts", (double)r->attempts);
	report_str(o, "lastError", r->last_error);
	report_time(o, "nextAttemptAt", r->next_attempt_ms);
}

void report_request(cJSON *o, const struct jrequest *r)
{
	report_str(o, "tenant", r->tenant);
	report_str(o, "correlationId", r->cid);
	report_str(o, "state", r->state);
	report_str(o, "errorType", r->error_type);
	report_time(o, "receivedAt", r->received_ms);
	report_time(o, "expiresAt", r->expires_ms);
	report_time(o, "updatedAt", r->updated_ms);
	attempts_json(o, r);
}

cJSON *report_show(journal *j, const struct jrequest *r)
{
	cJSON *o = cJSON_CreateObject(), *ev = cJSON_CreateArray(), *out = cJSON_CreateArray();
	if (!o || !ev || !out) {
		cJSON_Delete(o);
		cJSON_Delete(ev);
		cJSON_Delete(out);
		errno = ENOMEM;
		return NULL;
	}
	report_request(o, r);
	cJSON_AddNumberToObject(o, "submission", (double)r->submission);
	report_str(o, "claimedBy", r->claimed_by);
	report_time(o, "claimedAt", r->claimed_by ? r->claimed_ms : 0);
	cJSON_AddItemToObject(o, "events", ev);
	cJSON_AddItemToObject(o, "responses", out);
	if (journal_history(j, r->tenant, r->cid, event_json, ev) < 0 ||
	    journal_outbox_of(j, r->tenant, r->cid, response_json, out) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- status ---- */

struct report_progress report_progress(const struct jrequest *r, int64_t now_ms)
{
	struct report_progress p = { .stage = "-", .rate = -1 };
	int s = journal_state_stage(r->state, &p.busy);
	if (s >= 0)
		p.stage = journal_stage(s)->name;
	if (p.busy && r->claimed_ms > 0 && now_ms > r->claimed_ms)
		p.rate = (double)r->bytes_done * 1000.0 / (double)(now_ms - r->claimed_ms);
	return p;
}

cJSON *report_status(const struct jrequest *r, int64_t now_ms)
{
	struct report_progress p = report_progress(r, now_ms);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	report_str(o, "tenant", r->tenant);
	report_str(o, "correlationId", r->cid);
	report_str(o, "state", r->state);
	report_str(o, "stage", p.stage);
	cJSON_AddBoolToObject(o, "busy", p.busy);
	if (p.busy) {
		report_str(o, "claimedBy", r->claimed_by);
		report_time(o, "claimedAt", r->claimed_ms);
		cJSON_AddNumberToObject(o, "bytesDone", (double)r->bytes_done);
		cJSON_AddNumberToObject(o, "bytesTotal", (double)r->bytes_total);
	}
	if (p.rate >= 0)
		cJSON_AddNumberToObject(o, "bytesPerSecond", (double)(int64_t)(p.rate + 0.5));
	report_time(o, "receivedAt", r->received_ms);
	cJSON_AddNumberToObject(o, "ageSeconds", (double)(now_ms - r->received_ms) / 1000.0);
	report_time(o, "expiresAt", r->expires_ms);
	if (r->expires_ms > 0)
		cJSON_AddNumberToObject(o, "expiresInSeconds",
		    (double)(r->expires_ms - now_ms) / 1000.0);
	attempts_json(o, r);
	if (r->next_attempt_ms > 0)
		cJSON_AddNumberToObject(o, "nextAttemptInSeconds",
		    (double)(r->next_attempt_ms - now_ms) / 1000.0);
	return o;
}

/* ---- counts ---- */

static void tally_set(struct report_tally *t, const char *key, int64_t v)
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
static void seed(struct report_tally *states, struct report_tally *errors)
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

int report_counts(journal *j, struct report_tally *states, struct report_tally *errors)
{
	seed(states, errors);
	if (journal_count_by(j, JCOUNT_STATE, tally_fn, states) < 0 ||
	    journal_count_by(j, JCOUNT_ERROR_TYPE, tally_fn, errors) < 0)
		return -1;
	return 0;
}

/* ---- metrics ---- */

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

static void help(FILE *out, const char *name, const char *type, const char *text)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* a label value, escaped as the exposition format wants */
static void label(FILE *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(out, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", out);
		else
			putc(*v, out);
	}
}

static void tally_metric(FILE *out, const char *name, const char *key,
    const struct report_tally *t)
{
	for (int i = 0; i < t->n; i++) {
		fprintf(out, "%s{%s=\"", name, key);
		label(out, t->e[i].key);
		fprintf(out, "\"} %lld\n", (long long)t->e[i].v);
	}
}

static void hist_metric(FILE *out, const struct hist *h)
{
	const char *name = "ferry_stage_duration_seconds";
	help(out, name, "histogram", "Time from a stage's claim of a request to its commit.");
	for (int i = 0; i < h->n; i++) {
		for (int b = 0; b < NBOUNDS; b++) {
			fprintf(out, "%s_bucket{stage=\"", name);
			label(out, h->e[i].stage);
			fprintf(out, "\",le=\"%g\"} %lld\n", bounds[b], (long long)h->e[i].le[b]);
		}
		fprintf(out, "%s_bucket{stage=\"", name);
		label(out, h->e[i].stage);
		fprintf(out, "\",le=\"+Inf\"} %lld\n", (long long)h->e[i].count);
		fprintf(out, "%s_sum{stage=\"", name);
		label(out, h->e[i].stage);
		fprintf(out, "\"} %.3f\n", h->e[i].sum);
		fprintf(out, "%s_count{stage=\"", name);
		label(out, h->e[i].stage);
		fprintf(out, "\"} %lld\n", (long long)h->e[i].count);
	}
}

static int oldest_fn(void *arg, const char *state, int64_t received_ms, int64_t updated_ms)
{
	(void)updated_ms;
	if (state)
		tally_set(arg, state, received_ms);
	return 0;
}

/* the retries, the requests waiting for theirs, and the age of the oldest
 * live request of each state (those that have one) */
static void retry_metrics(FILE *out, const struct jtotals *t, const struct report_tally *oldest,
    int64_t now_ms)
{
	const char *age = "ferry_oldest_request_age_seconds";
	help(out, "ferry_retries_total", "counter",
	    "Times a request was set aside after a temporary failure, to be tried again.");
	fprintf(out, "ferry_retries_total %lld\n", (long long)t->retries);
	help(out, "ferry_requests_waiting_retry", "gauge",
	    "Requests set aside whose next attempt is later.");
	fprintf(out, "ferry_requests_waiting_retry %lld\n", (long long)t->waiting_retry);
	help(out, age, "gauge",
	    "Time since the oldest request in each non-terminal state was received.");
	for (int i = 0; i < oldest->n; i++) {
		fprintf(out, "%s{state=\"", age);
		label(out, oldest->e[i].key);
		fprintf(out, "\"} %.3f\n", (double)(now_ms - oldest->e[i].v) / 1000.0);
	}
}

int report_metrics(journal *j, int64_t now_ms, FILE *out)
{
	struct report_tally states = { 0 }, errors = { 0 }, oldest = { 0 };
	struct hist h = { 0 };
	struct jtotals t;
	for (int i = JSTAGE_VALIDATE; i < JSTAGE_COUNT; i++)   /* ingest claims nothing */
		util_strlcpy(h.e[h.n++].stage, journal_stage(i)->name, sizeof h.e[0].stage);
	if (journal_totals(j, now_ms, &t) < 0 ||
	    journal_durations(j, bounds, NBOUNDS, hist_fn, &h) < 0 ||
	    report_counts(j, &states, &errors) < 0 ||
	    journal_oldest_by_state(j, oldest_fn, &oldest) < 0)
		return -1;
	help(out, "ferry_requests", "gauge", "Requests in the journal, by state.");
	tally_metric(out, "ferry_requests", "state", &states);
	help(out, "ferry_requests_errors_total", "counter",
	    "Requests in the journal ended DENIED or ERROR, by errorType.");
	tally_metric(out, "ferry_requests_errors_total", "error_type", &errors);
	help(out, "ferry_bytes_delivered_total", "counter",
	    "Bytes of the zips uploaded for DONE requests.");
	fprintf(out, "ferry_bytes_delivered_total %lld\n", (long long)t.bytes_delivered);
	help(out, "ferry_outbox_unsent", "gauge", "Responses not yet published by ferry-notify.");
	fprintf(out, "ferry_outbox_unsent %lld\n", (long long)t.outbox_unsent);
	help(out, "ferry_outbox_set_aside", "gauge",
	    "Responses ferry-notify set aside: they cannot be published as they are.");
	fprintf(out, "ferry_outbox_set_aside %lld\n", (long long)t.outbox_set_aside);
	help(out, "ferry_outbox_oldest_unsent_seconds", "gauge",
	    "Age of the oldest response not yet published (0 when none).");
	fprintf(out, "ferry_outbox_oldest_unsent_seconds %.3f\n", t.oldest_unsent_ms > 0 ?
	    (double)(now_ms - t.oldest_unsent_ms) / 1000.0 : 0.0);
	retry_metrics(out, &t, &oldest, now_ms);
	hist_metric(out, &h);
	help(out, "ferry_journal_schema_version", "gauge", "Schema version of the journal.");
	fprintf(out, "ferry_journal_schema_version %lld\n", (long long)t.schema_version);
	return 0;
}
