/* ferry-amqp-ingest: consume delivery requests from RabbitMQ, journal them
 * as RECEIVED in group commits (synchronous=FULL), ack each batch with one
 * `multiple` ack only after its commit, then print the items on stdout.
 * Messages nobody can answer are rejected without requeue (dead-lettered). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "err.h"
#include "item.h"
#include "journal.h"
#include "stage.h"
#include "util.h"

static const char usage[] =
    "usage: ferry-amqp-ingest [-1hv] [-j journal] [-u url] [-p prefetch] [-b batch]";

static volatile sig_atomic_t stop;

struct opts {
	const char *journal, *url;
	int prefetch, batch;
	int once;          /* -1: exit when the queue stays empty for a second */
};

/* One consumed message and what the batch decided for it. */
struct slot {
	struct bus_msg m;
	cJSON *item;
	enum journal_reg reg;
	int committed;
	char *response;   /* DENIED for a reused correlationId, for fd 3 */
};

/* Why nobody can be answered for this message, or NULL if somebody can. */
static const char *unanswerable(const struct bus_msg *m, cJSON **body)
{
	char why[128];
	*body = NULL;
	if (!m->tenant)
		return "no regards.tenant header";
	*body = item_parse(m->body, m->len, why, sizeof why);
	if (!*body)
		return "body is not a JSON object";
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(*body, "correlationId");
	if (!cid)
		return "no correlationId";
	if (!cJSON_IsString(cid))
		return "correlationId is not a string";
	return NULL;
}

static cJSON *make_item(const struct bus_msg *m, cJSON *body, int64_t now)
{
	char ts[32];
	cJSON *item = cJSON_CreateObject(), *headers = cJSON_CreateObject();
	util_iso8601(now, ts);
	cJSON_AddStringToObject(item, "tenant", m->tenant);
	cJSON_AddStringToObject(item, "correlationId",
	    cJSON_GetObjectItemCaseSensitive(body, "correlationId")->valuestring);
	cJSON_AddStringToObject(item, "receivedAt", ts);
	if (m->has_priority)
		cJSON_AddNumberToObject(headers, "priority", m->priority);
	if (m->app_id)
		cJSON_AddStringToObject(headers, "app_id", m->app_id);
	cJSON_AddItemToObject(item, "headers", headers);
	cJSON_AddItemToObject(item, "request", body);
	return item;
}

/* Journal the batch in one transaction. 0, or -1 (nothing acked then). */
static int commit_batch(journal *j, struct slot *s, int n)
{
	if (journal_begin(j) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (!s[i].item)
			continue;
		if (stage_register(j, JSTAGE_INGEST, s[i].item, "RECEIVED", &s[i].reg) < 0) {
			char label[160];
			err_log(ERR_ERROR, item_label(s[i].item, label, sizeof label), "%s",
			    journal_error(j));
			continue;   /* left unacked: redelivered later */
		}
		s[i].committed = 1;
		if (stage_duplicate(j, s[i].item, s[i].reg, s[i].m.redelivered, &s[i].response) < 0)
			err_log(ERR_ERROR, NULL, "%s", journal_error(j));
	}
	return journal_end(j);
}

/* Settle the batch with the broker: rejects first (so the multiple ack
 * below cannot cover them), then one ack up to the last committed tag. */
static int settle(bus *b, struct slot *s, int n)
{
	uint64_t last = 0;
	for (int i = 0; i < n; i++) {
		if (!s[i].item) {
			if (bus_reject(b, s[i].m.tag, 0) < 0)
				return -1;
		} else if (s[i].committed) {
			last = s[i].m.tag;
		}
	}
	/* a message whose journaling failed goes back to the queue now, before
	 * the multiple ack could swallow it */
	for (int i = 0; i < n; i++)
		if (s[i].item && !s[i].committed && bus_reject(b, s[i].m.tag, 1) < 0)
			return -1;
	return last ? bus_ack(b, last, 1) : 0;
}

static void emit(struct slot *s, int n)
{
	for (int i = 0; i < n; i++) {
		if (!s[i].committed)
			continue;
		if (s[i].reg == JREG_NEW) {
			if (item_write(1, s[i].item) < 0)
				err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
		} else if (s[i].response) {
			stage_fd3(s[i].response);
		}
	}
}

/* Consume until the connection breaks or we are told to stop. 0 on stop. */
static int consume(journal *j, bus *b, const struct opts *o)
{
	struct slot *s = calloc((size_t)o->batch, sizeof *s);
	int rc = 0;
	if (!s)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	while (!stop) {
		int n = 0, got = 0;
		while (n < o->batch && (got = bus_next(b, n ? 0 : 1000, &s[n].m)) == 1) {
			cJSON *body;
			const char *why = unanswerable(&s[n].m, &body);
			if (why) {
				err_warn("rejecting message %llu (dead-lettered): %s",
				    (unsigned long long)s[n].m.tag, why);
				cJSON_Delete(body);
			} else {
				s[n].item = make_item(&s[n].m, body, util_now_ms());
			}
			n++;
		}
		if (got < 0 && n == 0) {
			rc = -1;
			break;
		}
		if (n == 0) {
			if (o->once)
				stop = 1;
			continue;
		}
		if (commit_batch(j, s, n) < 0) {
			err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
		}
		if (settle(b, s, n) < 0)
			rc = -1;
		emit(s, n);
		for (int i = 0; i < n; i++) {
			bus_msg_clear(&s[i].m);
			cJSON_Delete(s[i].item);
			free(s[i].response);
			memset(&s[i], 0, sizeof s[i]);
		}
		if (rc < 0 || got < 0) {
			rc = -1;
			break;
		}
	}
	free(s);
	return rc;
}

/* Items journaled but perhaps never printed (killed in between): print them
 * again; ferry-request-validate skips what it already has. */
static int reprint(void *arg, const char *tenant, const char *cid, const char *item)
{
	(void)arg;
	(void)tenant;
	(void)cid;
	if (item && (util_write_all(1, item, strlen(item)) < 0 || util_write_all(1, "\n", 1) < 0))
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
	return 0;
}

static void parse(int argc, char **argv, struct opts *o)
{
	int c;
	o->journal = util_env("FERRY_JOURNAL", "/var/lib/ferry/journal.db");
	o->url = util_env("FERRY_AMQP_URL", BUS_DEFAULT_URL);
	o->prefetch = 1000;
	o->batch = 500;
	o->once = 0;
	while ((c = getopt(argc, argv, "1hvj:u:p:b:")) != -1) {
		switch (c) {
		case '1': o->once = 1; break;
		case 'h': puts(usage); exit(0);
		case 'v': err_verbose(1); break;
		case 'j': o->journal = optarg; break;
		case 'u': o->url = optarg; break;
		case 'p': o->prefetch = atoi(optarg); break;
		case 'b': o->batch = atoi(optarg); break;
		default: err_die(EXIT_PERM, "%s", usage);
		}
	}
	if (optind != argc || o->prefetch < 1 || o->prefetch > 65535 || o->batch < 1)
		err_die(EXIT_PERM, "%s", usage);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bus_names names;
	char err[512];
	journal *j;
	int temp, backoff = 1;

	err_init("ferry-amqp-ingest");
	if (stage_fd3_init() < 0)
		err_die(EXIT_TEMP, "unable to open /dev/null: %s", strerror(errno));
	parse(argc, argv, &o);
	util_signals(&stop);
	bus_names_from_env(&names);
	if (bus_url_check(o.url, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	if (journal_open(o.journal, JOURNAL_SYNC_FULL, &j, err, sizeof err, &temp) < 0)
		err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
	journal_set_owner(j, "ingest");
	if (journal_pending(j, JSTAGE_VALIDATE, reprint, NULL) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));

	while (!stop) {
		bus *b = bus_connect(o.url, &names, err, sizeof err);
		if (b && bus_consume(b, names.request_queue, o.prefetch) < 0) {
			snprintf(err, sizeof err, "%s", bus_error(b));
			bus_close(b);
			b = NULL;
		}
		if (!b) {
			err_warn("%s; retrying in %d s", err, backoff);
			if (o.once && backoff >= 8)
				err_die(EXIT_TEMP, "broker unreachable; giving up (-1 mode)");
			sleep((unsigned)backoff);
			backoff = util_backoff_next(backoff);
			continue;
		}
		err_info("consuming %s", names.request_queue);
		int64_t connected = util_mono_ms();
		if (consume(j, b, &o) < 0 && !stop)
			err_warn("broker connection lost: %s; reconnecting", bus_error(b));
		bus_close(b);
		if (util_mono_ms() - connected < 2000 && !stop) {
			sleep((unsigned)backoff);
			backoff = util_backoff_next(backoff);
		} else {
			backoff = 1;
		}
	}
	journal_close(j);
	return 0;
}
