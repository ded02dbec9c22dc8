/* ferry-notify: publish the journal's outbox on the response exchange, in
 * order, with pipelined publisher confirms; a row is marked sent only after
 * the broker acked it. A row that cannot be sent as it is (the bus refuses
 * it, the connection intact) is set aside, not retried: no row holds up
 * the others. New rows are noticed by polling PRAGMA data_version every
 * few milliseconds (no query, no busy loop while nothing changes).
 * MULTI vhost mode (FERRY_VHOST_MODE=multi): each tenant of FERRY_TENANTS
 * has a connection to its own vhost, publishing its tenant's rows only,
 * in order; a vhost that fails is retried on its own while the others go
 * on. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "args.h"
#include "bus.h"
#include "err.h"
#include "journal.h"
#include "response.h"
#include "tenant.h"
#include "util.h"

static const char usage[] =
    "usage: ferry-notify [-1hv] [-j journal] [-u url] [-w window] [-i interval_ms]";

static volatile sig_atomic_t stop;

struct opts {
	const char *journal, *url;
	int window, interval, once;
};

/* Outbox ids of published, unconfirmed messages, by sequence number, on
 * one connection: every row, or in MULTI vhost mode one tenant's. */
struct flight {
	bus *b;
	const char *tenant;      /* whose rows, or NULL: all */
	char url[1024];
	int64_t seen_version;    /* journal_data_version at the last look */
	int idle;                /* that look found fewer rows than room */
	int64_t retry_at;        /* MULTI: when b is NULL, util_mono_ms() to connect */
	int backoff;
	const struct bus_names *names;
	const struct response_props *props;
	int64_t *ids;            /* ring indexed by seq % (4 * window) */
	int window;
	int64_t last_id;         /* highest outbox id published on this connection */
	int64_t *acked;          /* confirmed ids waiting to be marked sent */
	size_t nacked;
	int64_t resend_from;     /* > 0: a nack asks to publish again from here */
	int failed;
	/* a row the bus refused (it cannot be sent as it is), to set aside */
	int64_t aside_id;
	char aside_label[400], aside_why[256];
};

static const char *json_str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The bus refused row o: remember it for set_aside, and skip it. */
static void refused(struct flight *f, const struct joutbox *o)
{
	size_t t = util_utf8_cut(o->tenant, strlen(o->tenant), 64);
	size_t c = util_utf8_cut(o->cid, strlen(o->cid), 255);
	snprintf(f->aside_label, sizeof f->aside_label, "%.*s/%.*s", (int)t, o->tenant, (int)c,
	    o->cid);
	util_strlcpy(f->aside_why, bus_error(f->b), sizeof f->aside_why);
	f->aside_id = o->id;
	f->last_id = o->id;
}

/* Mark the refused row set aside, then say so, once: it waits no more and
 * keeps no response behind it waiting. */
static void set_aside(journal *j, struct flight *f)
{
	if (journal_outbox_set_aside(j, f->aside_id, f->aside_why) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
	err_log(ERR_ERROR, f->aside_label, "response %lld set aside, never to be published: %s",
	    (long long)f->aside_id, f->aside_why);
	f->aside_id = 0;
}

static int publish_row(void *arg, const struct joutbox *o)
{
	struct flight *f = arg;
	cJSON *h = o->headers ? cJSON_Parse(o->headers) : NULL;
	const char *tenant = json_str(h, "regards.tenant");
	int prio = response_priority(f->props, h);
	const char *hn[] = { "regards.tenant", "regards.converter", "regards.type" };
	const char *hv[] = { tenant ? tenant : o->tenant, RESPONSE_CONVERTER, RESPONSE_TYPE };
	struct bus_pub p = {
		.exchange = f->names->response_exchange,
		.body = o->body, .len = strlen(o->body),
		.app_id = f->props->app_id,
		.content_type = "application/json", .content_encoding = "UTF-8",
		.persistent = 1,
		.has_priority = prio >= 0, .priority = prio >= 0 ? prio : 0,
		.timestamp = o->created_ms / 1000,
		.hnames = hn, .hvalues = hv, .nheaders = 3,
	};
	/* correlation_id is an AMQP shortstr: at most 255 bytes. Only an invalid
	 * (over 255 characters) correlationId, already DENIED, is ever cut. */
	char cid[256];
	size_t cut = util_utf8_cut(o->cid, strlen(o->cid), 255);
	memcpy(cid, o->cid, cut);
	cid[cut] = '\0';
	p.correlation_id = f->props->correlation_id ? cid : NULL;
	uint64_t seq;
	int rc = bus_publish(f->b, &p, &seq);
	cJSON_Delete(h);
	if (rc == BUS_REFUSED) {
		refused(f, o);
		return 1;
	}
	if (rc < 0) {
		f->failed = 1;
		return 1;
	}
	f->ids[seq % (4 * (uint64_t)f->window)] = o->id;
	f->last_id = o->id;
	return 0;
}

static void confirmed(void *arg, uint64_t seq, int ok)
{
	struct flight *f = arg;
	int64_t id = f->ids[seq % (4 * (uint64_t)f->window)];
	if (ok) {
		f->acked[f->nacked++] = id;
	} else if (f->resend_from == 0 || id < f->resend_from) {
		err_warn("broker refused response %lld; publishing it again", (long long)id);
		f->resend_from = id;
	}
}

static void mark_sent(journal *j, struct flight *f)
{
	if (f->nacked == 0)
		return;
	if (journal_outbox_mark_sent(j, f->acked, f->nacked) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
	err_info("%zu responses confirmed", f->nacked);
	f->nacked = 0;
}

/* Publish from the outbox what the window has room for (*room), if the
 * journal changed or the last look was not idle: the rows published, or
 * -1 when the connection failed. */
static int publish_some(journal *j, struct flight *f, int64_t v, int *room)
{
	int n = 0;
	*room = f->window - (int)bus_unconfirmed(f->b);
	if (f->resend_from) {
		f->last_id = f->resend_from - 1;
		f->resend_from = 0;
	}
	if (*room > 0 && (v != f->seen_version || !f->idle)) {
		bus_cork(f->b, 1);
		n = journal_outbox_unsent_of(j, f->tenant, f->last_id, *room, publish_row, f);
		bus_cork(f->b, 0);
		if (n < 0)
			err_die(EXIT_TEMP, "%s", journal_error(j));
		if (f->failed)
			return -1;
		f->seen_version = v;
		f->idle = n < *room;
		if (f->aside_id) {
			set_aside(j, f);
			f->idle = 0;   /* our own write leaves data_version as it is */
		}
	}
	return n;
}

static int64_t data_version(journal *j)
{
	int64_t v = journal_data_version(j);
	if (v < 0)
		err_die(EXIT_TEMP, "%s", journal_error(j));
	return v;
}

/* Publish and confirm until the connection fails (-1), stop, or in -1 mode
 * until the outbox is empty (0). */
static int pump(journal *j, struct flight *f, const struct opts *o)
{
	f->seen_version = -1;
	f->idle = 0;
	while (!stop) {
		int room, n = publish_some(j, f, data_version(j), &room);
		if (n < 0)
			return -1;
		uint64_t waiting = bus_unconfirmed(f->b);
		if (o->once && n == 0 && waiting == 0 && f->nacked == 0)
			return 0;
		if (bus_confirms(f->b, n > 0 && room > n ? 0 : o->interval, confirmed, f) < 0)
			return -1;
		mark_sent(j, f);
	}
	return 0;
}

/* A fresh start on connection b: unconfirmed rows of a lost connection go
 * again. */
static void flight_reset(struct flight *f, bus *b)
{
	f->b = b;
	f->last_id = 0;
	f->failed = 0;
	f->resend_from = 0;
	f->nacked = 0;
	f->seen_version = -1;
	f->idle = 0;
}

/* Connect, declare, select confirms: a bus, or NULL and why in err (a
 * queue declared with other arguments exits 100). */
static bus *connect_confirming(const char *url, const struct bus_names *names, char *err,
    size_t errlen)
{
	int mismatch;
	bus *b = bus_connect(url, names, &mismatch, err, errlen);
	if (!b && mismatch)
		err_die(EXIT_PERM, "%s", err);
	if (b && bus_confirm_select(b) < 0) {
		snprintf(err, errlen, "%s", bus_error(b));
		bus_close(b);
		b = NULL;
	}
	return b;
}

static void flight_later(struct flight *f, const struct opts *o)
{
	bus_close(f->b);
	f->b = NULL;
	if (o->once && f->backoff >= 8)
		err_die(EXIT_TEMP, "tenant %s: broker unreachable; giving up (-1 mode)", f->tenant);
	f->retry_at = util_mono_ms() + 1000 * (int64_t)f->backoff;
	f->backoff = util_backoff_next(f->backoff);
}

static void flight_open(struct flight *f, const struct opts *o)
{
	char err[512];
	bus *b = connect_confirming(f->url, f->names, err, sizeof err);
	if (b) {
		flight_reset(f, b);
		return;
	}
	err_warn("tenant %s: %s; retrying in %d s", f->tenant, err, f->backoff);
	flight_later(f, o);
}

/* MULTI vhost mode: every tenant's flight in turn, each on its vhost. In
 * -1 mode, returns once every outbox row of those tenants is confirmed. */
static void pump_vhosts(journal *j, struct flight *fs, size_t n, const struct opts *o)
{
	bus **up = calloc(n, sizeof *up);
	if (!up)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	while (!stop) {
		int64_t now = util_mono_ms(), v = data_version(j);
		int busy = 0, wait = o->interval;
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			struct flight *f = &fs[i];
			int room, got = 0;
			if (!f->b && now >= f->retry_at)
				flight_open(f, o);
			if (f->b && (got = publish_some(j, f, v, &room)) < 0) {
				err_warn("tenant %s: broker connection lost: %s; reconnecting", f->tenant,
				    bus_error(f->b));
				flight_later(f, o);
			}
			if (f->b) {
				up[k++] = f->b;
				busy |= got > 0 || bus_unconfirmed(f->b) > 0 || f->nacked > 0;
				if (got > 0 && room > got)
					wait = 0;
			} else if (f->retry_at - now < wait) {
				wait = f->retry_at > now ? (int)(f->retry_at - now) : 0;
			}
		}
		if (o->once && !busy && k == n)
			break;
		if (bus_wait(up, k, wait) < 0)
			err_die(EXIT_TEMP, "poll: %s", strerror(errno));
		for (size_t i = 0; i < n; i++) {
			struct flight *f = &fs[i];
			if (f->b && bus_confirms(f->b, 0, confirmed, f) < 0) {
				err_warn("tenant %s: broker connection lost: %s; reconnecting", f->tenant,
				    bus_error(f->b));
				flight_later(f, o);
			}
			mark_sent(j, f);
			if (f->b && f->nacked == 0)
				f->backoff = 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		bus_close(fs[i].b);
		fs[i].b = NULL;
	}
	free(up);
}

/* The flights of MULTI vhost mode, one per tenant of FERRY_TENANTS (exit
 * 100 when there is none, or two share a vhost). */
static struct flight *flights_make(const struct opts *o, const struct flight *model,
    char ***names, size_t *n)
{
	const char *dir = util_env("FERRY_TENANTS", "/etc/ferry/tenants");
	char err[1024];
	if (bus_vhost_tenants(dir, names, n, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	struct flight *fs = calloc(*n, sizeof *fs);
	if (!fs)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	for (size_t i = 0; i < *n; i++) {
		struct flight *f = &fs[i];
		*f = *model;
		f->tenant = (*names)[i];
		f->backoff = 1;
		f->ids = calloc(4 * (size_t)o->window, sizeof *f->ids);
		f->acked = calloc((size_t)o->window, sizeof *f->acked);
		if (!f->ids || !f->acked)
			err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
		if (bus_tenant_url(o->url, f->tenant, f->url, sizeof f->url) < 0)
			err_die(EXIT_PERM, "tenant %s: its vhost URL does not fit", f->tenant);
	}
	return fs;
}

static void parse(int argc, char **argv, struct opts *o)
{
	int c;
	o->journal = util_env("FERRY_JOURNAL", "/var/lib/ferry/journal.db");
	o->url = util_env("FERRY_AMQP_URL", BUS_DEFAULT_URL);
	o->window = 1000;
	o->interval = 5;
	o->once = 0;
	while ((c = getopt(argc, argv, "1hvj:u:w:i:")) != -1) {
		switch (c) {
		case '1': o->once = 1; break;
		case 'h': puts(usage); exit(0);
		case 'v': err_verbose(1); break;
		case 'j': o->journal = optarg; break;
		case 'u': o->url = optarg; break;
		case 'w': o->window = atoi(optarg); break;
		case 'i': o->interval = atoi(optarg); break;
		default: args_usage(usage);
		}
	}
	if (optind != argc || o->window < 1 || o->window > 100000 || o->interval < 1)
		args_usage(usage);
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bus_names names;
	char err[512];
	journal *j;
	int temp, backoff = 1;

	err_init("ferry-notify");
	args_init(argc, argv);
	parse(argc, argv, &o);
	util_signals(&stop);
	if (bus_names_from_env(&names, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	struct response_props props;
	if (response_props_from_env(&props, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	if (bus_url_check(o.url, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	if (journal_open(o.journal, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp) < 0)
		err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
	journal_set_owner(j, "notify");
	struct flight f = { .names = &names, .props = &props, .window = o.window };
	/* the ring is wider than the window: confirms may come out of order */
	f.ids = calloc(4 * (size_t)o.window, sizeof *f.ids);
	f.acked = calloc((size_t)o.window, sizeof *f.acked);
	if (!f.ids || !f.acked)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));

	if (names.vhost_mode == BUS_VHOST_MULTI) {
		char **tenants;
		size_t n;
		struct flight *fs = flights_make(&o, &f, &tenants, &n);
		pump_vhosts(j, fs, n, &o);
		for (size_t i = 0; i < n; i++) {
			free(fs[i].ids);
			free(fs[i].acked);
		}
		free(fs);
		tenant_names_free(tenants, n);
		stop = 1;
	}
	while (!stop) {
		bus *b = connect_confirming(o.url, &names, err, sizeof err);
		if (!b) {
			err_warn("%s; retrying in %d s", err, backoff);
			if (o.once && backoff >= 8)
				err_die(EXIT_TEMP, "broker unreachable; giving up (-1 mode)");
			sleep((unsigned)backoff);
			backoff = util_backoff_next(backoff);
			continue;
		}
		int64_t connected = util_mono_ms();
		flight_reset(&f, b);
		int r = pump(j, &f, &o);
		if (r < 0 && !stop)
			err_warn("broker connection lost: %s; reconnecting", bus_error(b));
		bus_close(b);
		if (r == 0)
			break;
		/* a connection that fails at once (broker refusing, bad message)
		 * must not become a tight loop */
		if (util_mono_ms() - connected < 2000) {
			sleep((unsigned)backoff);
			backoff = util_backoff_next(backoff);
		} else {
			backoff = 1;
		}
	}
	free(f.ids);
	free(f.acked);
	journal_close(j);
	return 0;
}
