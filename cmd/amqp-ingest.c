/* ferry-amqp-ingest: consume delivery requests from RabbitMQ, journal them
 * as RECEIVED in group commits (synchronous=FULL), ack each batch with one
 * `multiple` ack only after its commit, then print the items on stdout.
 * Messages nobody can answer (no tenant name in regards.tenant, no
 * correlationId, ...) are rejected without requeue (dead-lettered).
 * Scale-out (FERRY_INSTANCE, FERRY_INSTANCES): each instance forwards the
 * shared request queue, unchanged, to the queue of the instance that owns
 * tenant/correlationId (rendezvous hashing over the static list of all
 * instances, so every instance agrees and no broker state can reorder
 * it), acks only once the broker confirmed the copy, and journals its own
 * queue: an id always meets the same journal, so duplicates are
 * recognised.
 * MULTI vhost mode (FERRY_VHOST_MODE=multi, REGARDS's VirtualHostMode
 * MULTI): one connection per tenant of FERRY_TENANTS, each consuming the
 * request queue in that tenant's vhost (the regards.tenant header must
 * name that tenant);
 * a vhost that fails is retried on its own while the others go on. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "bus.h"
#include "err.h"
#include "item.h"
#include "journal.h"
#include "jsonstrict.h"
#include "stage.h"
#include "tenant.h"
#include "util.h"

static const char usage[] =
    "usage: ferry-amqp-ingest [-1hv] [-i instance -I instances] [-j journal] [-u url]"
    " [-p prefetch] [-b batch] [-l linger_ms]";

enum { CONFIRM_TIMEOUT_MS = 30000 };

static volatile sig_atomic_t stop;

struct opts {
	const char *journal, *url;
	const char *instance;   /* scale-out name, or NULL */
	const char *instances;  /* the names of all instances, or NULL */
	int prefetch, batch;
	int linger;        /* ms a busy batch waits to fill up */
	int once;          /* -1: exit when the queue stays empty for a second */
};

/* One consumed message and what the batch decided for it. */
struct slot {
	struct bus_msg m;
	cJSON *item;
	enum journal_reg reg;
	char *text;       /* the item as journaled, printed once */
	int committed;
};

/* The broker side. `in` delivers the requests this process journals: the
 * request queue, or in scale-out mode the instance's queue. In scale-out
 * mode `shared` delivers the request queue, forwarded on `out` (publisher
 * confirms, nothing consumed there, so no delivery mixes with confirms). */
struct links {
	bus *in, *shared, *out;
	const char *queue;        /* what `in` consumes */
	struct bus_route route;
	struct bus_members members;   /* every instance, owners of the ids */
};

/* One message of the shared queue being forwarded. */
struct fwd {
	struct bus_msg m;
	int bad;                  /* nobody can be answered: dead-lettered */
	int confirmed;            /* 1 confirmed, -1 nacked or returned */
};

/* Why nobody can be answered for this message, or NULL if somebody can. A
 * body that is not strict JSON (jsonstrict) is refused whole, as Jackson
 * refuses it: ferry would read something else than what was sent. */
static const char *unanswerable(const struct bus_msg *m, cJSON **body, char *why, size_t len)
{
	const char *bad;
	*body = NULL;
	if (!m->tenant)
		return "no regards.tenant header";
	/* nothing else is journaled, echoed or made a path of */
	if (m->tenant_len != strlen(m->tenant) || !tenant_name_ok(m->tenant))
		return "regards.tenant header is not a tenant name"
		    " (1 to 64 of [A-Za-z0-9_.-], not . or ..)";
	if ((bad = jsonstrict_text(m->body, m->len)))
		return bad;
	*body = item_parse(m->body, m->len, why, len);
	if (!*body)
		return "body is not a JSON object";
	if ((bad = jsonstrict_keys(*body, why, len)))
		return bad;
	const cJSON *cid = cJSON_GetObjectItemCaseSensitive(*body, "correlationId");
	if (!cid)
		return "no correlationId";
	if (!cJSON_IsString(cid))
		return "correlationId is not a string";
	return NULL;
}

/* In MULTI vhost mode (tenant not NULL) a message still carries its tenant
 * in the regards.tenant header, as REGARDS's publishers always set it and
 * its listener requires it (RabbitBatchMessageListener: MISSING_TENANT);
 * one without is refused by unanswerable as in SINGLE mode. One whose
 * header names another tenant than the vhost's is refused: a client of one
 * vhost may not speak for another tenant. NULL, or why it is refused. */
static const char *vhost_tenant(const struct bus_msg *m, const char *tenant)
{
	if (!tenant || !m->tenant)
		return NULL;
	if (m->tenant_len != strlen(tenant) || strcmp(m->tenant, tenant) != 0)
		return "regards.tenant header is not the tenant of the vhost it came from";
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
		if (stage_register_text(j, JSTAGE_INGEST, s[i].item, "RECEIVED", s[i].m.redelivered,
		    &s[i].reg, &s[i].text) < 0) {
			char label[160];
			err_log(ERR_ERROR, item_label(s[i].item, label, sizeof label), "%s",
			    journal_error(j));
			continue;   /* left unacked: redelivered later */
		}
		s[i].committed = 1;
		if (stage_duplicate(j, s[i].item, s[i].reg, s[i].m.redelivered) < 0)
			err_log(ERR_ERROR, NULL, "%s", journal_error(j));
	}
	return journal_end(j);
}

/* Settle the batch with the broker: rejects first (so the multiple ack
 * below cannot cover them), then one ack up to the last committed tag.
 * A message for a request in flight with another body is dead-lettered:
 * kept for the operator, answered by nobody (stage_duplicate). */
static int settle(bus *b, struct slot *s, int n)
{
	uint64_t last = 0;
	for (int i = 0; i < n; i++) {
		if (!s[i].item || (s[i].committed && s[i].reg == JREG_CONFLICT)) {
			if (s[i].item)
				stage_conflict_log(s[i].item, "dead-lettered");
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
	char **lines = malloc((size_t)n * sizeof *lines);
	int k = 0;
	if (!lines)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	for (int i = 0; i < n; i++) {
		if (!s[i].committed)
			continue;
		if (JREG_WRITTEN(s[i].reg) && s[i].text)
			lines[k++] = s[i].text;
	}
	if (item_write_lines(1, lines, k) < 0)
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
	free(lines);
}

static void slots_clear(struct slot *s, int n)
{
	for (int i = 0; i < n; i++) {
		bus_msg_clear(&s[i].m);
		cJSON_Delete(s[i].item);
		free(s[i].text);
		memset(&s[i], 0, sizeof s[i]);
	}
}

/* A batch of at least this many says the broker has more than ingest
 * keeps up with: the next one lingers to fill up (fewer, larger commits:
 * -12% CPU a request under load), while a trickle is never held back. */
enum { BUSY_BATCH = 64 };

/* How long the next message of a batch started at `first` may be waited
 * for: 0 unless the batch before was a busy one. */
static int linger_left(const struct opts *o, int busy, int64_t first)
{
	if (!busy || o->linger == 0)
		return 0;
	int64_t left = first + o->linger - util_mono_ms();
	return left > 0 ? (int)left : 0;
}

/* Journal one batch from `in`: wait up to wait_ms for its first message;
 * `tenant`: the vhost's, in MULTI vhost mode, else NULL. The number of
 * messages handled, or -1 when the connection is lost. */
static int journal_step(journal *j, bus *in, const struct opts *o, struct slot *s, int wait_ms,
    const char *tenant)
{
	static int busy;   /* the previous batch was a busy one */
	int n = 0, got = 0, rc;
	int64_t first = 0;
	while (n < o->batch &&
	    (got = bus_next(in, n ? linger_left(o, busy, first) : wait_ms, &s[n].m)) == 1) {
		if (n == 0)
			first = util_mono_ms();
		cJSON *body = NULL;
		char text[160];
		const char *why = vhost_tenant(&s[n].m, tenant);
		if (!why)
			why = unanswerable(&s[n].m, &body, text, sizeof text);
		/* the redelivery of a shared-queue message, forwarded again */
		if (o->instance && s[n].m.routed_redelivery)
			s[n].m.redelivered = 1;
		if (why) {
			err_warn("rejecting message %llu (dead-lettered): %s",
			    (unsigned long long)s[n].m.tag, why);
			cJSON_Delete(body);
		} else {
			s[n].item = make_item(&s[n].m, body, util_now_ms());
		}
		n++;
	}
	busy = n >= BUSY_BATCH;
	if (n == 0)
		return got < 0 ? -1 : 0;
	if (commit_batch(j, s, n) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
	err_info("batch of %d journaled", n);
	rc = settle(in, s, n);
	emit(s, n);
	slots_clear(s, n);
	return rc < 0 || got < 0 ? -1 : n;
}

struct confirm_ctx {
	struct fwd *f;
	const int *order;         /* the k-th forwarded message is f[order[k]] */
	uint64_t first;           /* its sequence number is first + k */
};

static void on_confirm(void *arg, uint64_t seq, int ok)
{
	struct confirm_ctx *c = arg;
	c->f[c->order[seq - c->first]].confirmed = ok ? 1 : -1;
}

/* Every confirm was settled by route_step; a late one is for nobody. */
static void ignore_confirm(void *arg, uint64_t seq, int ok)
{
	(void)arg;
	(void)seq;
	(void)ok;
}

/* Settle the shared-queue messages of a forwarded batch: dead-letter the
 * bad ones, requeue those the broker did not take, then one multiple ack.
 * 0, 1 when some were requeued, -1 when the connection is lost. */
static int settle_forwarded(bus *shared, struct fwd *f, int n)
{
	uint64_t last = 0;
	int requeued = 0;
	for (int i = 0; i < n; i++) {
		if (f[i].bad || f[i].confirmed < 0) {
			if (bus_reject(shared, f[i].m.tag, !f[i].bad) < 0)
				return -1;
			requeued += !f[i].bad;
		} else {
			last = f[i].m.tag;
		}
	}
	if (requeued)
		err_warn("%d messages not taken by the owner exchange (an instance queue deleted?); requeued",
		    requeued);
	if (last && bus_ack(shared, last, 1) < 0)
		return -1;
	return requeued > 0;
}

/* Forward f, an answerable message, to the instance owning its
 * tenant/correlationId: 1 (its sequence number in *seq), 0 when it cannot
 * be sent as it is (then dead-lettered), -1 when the connection is lost. */
static int forward_one(struct links *l, struct fwd *f, const cJSON *body, uint64_t *seq)
{
	char key[256];
	bus_route_key(f->m.tenant, item_str(body, "correlationId"), key);
	const char *owner = bus_route_owner(l->members.names, l->members.n, key);
	int rc = bus_forward(l->out, &f->m, l->route.exchange, owner, seq);
	if (rc == BUS_REFUSED) {
		err_warn("rejecting message %llu (dead-lettered): %s", (unsigned long long)f->m.tag,
		    bus_error(l->out));
		f->bad = 1;
		return 0;
	}
	return rc < 0 ? -1 : 1;
}

/* Forward one batch from the shared queue to the owner exchange, with the
 * name of the instance owning tenant/correlationId as routing key; ack the
 * originals once the broker confirmed the copies. A crash in between only
 * duplicates a copy, and the redelivered original's copy carries
 * BUS_REDELIVERED_HEADER, so the owning instance takes it for what it is.
 * The number handled, or -1 (connection lost). */
static int route_step(struct links *l, const struct opts *o, struct fwd *f, int *order,
    int wait_ms)
{
	struct confirm_ctx c = { f, order, 0 };
	int n = 0, nf = 0, got = 0, rc = 0;
	while (rc == 0 && n < o->batch &&
	    (got = bus_next(l->shared, n ? 0 : wait_ms, &f[n].m)) == 1) {
		cJSON *body;
		char text[160];
		const char *why = unanswerable(&f[n].m, &body, text, sizeof text);
		uint64_t seq;
		int fw = why ? 0 : forward_one(l, &f[n], body, &seq);
		if (why) {
			err_warn("rejecting message %llu (dead-lettered): %s",
			    (unsigned long long)f[n].m.tag, why);
			f[n].bad = 1;
		} else if (fw < 0) {
			rc = -1;
		} else if (fw) {
			if (nf == 0)
				c.first = seq;
			order[nf++] = n;
		}
		cJSON_Delete(body);
		n++;
	}
	int64_t deadline = util_mono_ms() + CONFIRM_TIMEOUT_MS;
	while (rc == 0 && got >= 0 && bus_unconfirmed(l->out) > 0) {
		int64_t left = deadline - util_mono_ms();
		if (left <= 0) {
			err_warn("no publisher confirms for %d s; reconnecting", CONFIRM_TIMEOUT_MS / 1000);
			rc = -1;
		} else if (bus_confirms(l->out, (int)left, on_confirm, &c) < 0) {
			rc = -1;
		}
	}
	/* on failure nothing is settled: the broker redelivers the originals */
	if (rc == 0 && got >= 0 && n > 0) {
		rc = settle_forwarded(l->shared, f, n);
		if (rc > 0)
			sleep(1);   /* not a hot loop while nothing is bound */
	}
	for (int i = 0; i < n; i++) {
		bus_msg_clear(&f[i].m);
		memset(&f[i], 0, sizeof f[i]);
	}
	return rc < 0 || got < 0 ? -1 : n;
}

static void links_close(struct links *l)
{
	bus_close(l->in);
	bus_close(l->shared);
	bus_close(l->out);
	l->in = l->shared = l->out = NULL;
}

/* Connect, declare, and start consuming. 0, or -1 and why in err. */
static int links_open(struct links *l, const struct opts *o, const struct bus_names *n, char *err,
    size_t errlen)
{
	bus *b;
	int mismatch;
	if (!(l->in = bus_connect(o->url, n, &mismatch, err, errlen))) {
		if (mismatch)
			err_die(EXIT_PERM, "%s", err);
		return -1;
	}
	if (o->instance) {
		int rc = bus_declare_route(l->in, n, &l->members);
		if (rc == BUS_MISMATCH)
			err_die(EXIT_PERM, "%s", bus_error(l->in));
		if (rc < 0)
			goto fail_in;
		if (bus_open(o->url, &l->out, err, errlen) < 0 ||
		    bus_open(o->url, &l->shared, err, errlen) < 0)
			goto fail;
		bus_keep_properties(l->shared);
		if (bus_confirm_select(l->out) < 0) {
			b = l->out;
			goto fail_bus;
		}
		if (bus_consume(l->shared, n->request_queue, o->prefetch) < 0) {
			b = l->shared;
			goto fail_bus;
		}
	}
	if (bus_consume(l->in, l->queue, o->prefetch) < 0)
		goto fail_in;
	return 0;
fail_in:
	b = l->in;
fail_bus:
	snprintf(err, errlen, "%s", bus_error(b));
fail:
	links_close(l);
	return -1;
}

/* Consume until a connection breaks or we are told to stop. 0 on stop. */
static int consume(journal *j, struct links *l, const struct opts *o)
{
	struct slot *s = calloc((size_t)o->batch, sizeof *s);
	struct fwd *f = o->instance ? calloc((size_t)o->batch, sizeof *f) : NULL;
	int *order = o->instance ? calloc((size_t)o->batch, sizeof *order) : NULL;
	int rc = 0;
	if (!s || (o->instance && (!f || !order)))
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	while (!stop) {
		int routed = 0, journaled, wait = 1000;
		if (l->shared) {
			bus *both[] = { l->in, l->shared };
			if (bus_wait(both, 2, 1000) < 0)
				err_die(EXIT_TEMP, "poll: %s", strerror(errno));
			wait = 0;
			/* keeps the publishing connection's heartbeats going */
			if (bus_confirms(l->out, 0, ignore_confirm, NULL) < 0 ||
			    (routed = route_step(l, o, f, order, 0)) < 0) {
				rc = -1;
				break;
			}
		}
		if ((journaled = journal_step(j, l->in, o, s, wait, NULL)) < 0) {
			rc = -1;
			break;
		}
		if (routed == 0 && journaled == 0 && o->once)
			stop = 1;
	}
	free(order);
	free(f);
	free(s);
	return rc;
}

/* MULTI vhost mode: a tenant's vhost, consumed on a connection of its own. */
struct vlink {
	const char *tenant;
	char url[1024];
	bus *b;                   /* NULL while it waits to connect again */
	int64_t retry_at;         /* util_mono_ms() */
	int backoff;              /* seconds */
};

static void vlink_later(struct vlink *v, const struct opts *o)
{
	bus_close(v->b);
	v->b = NULL;
	if (o->once && v->backoff >= 8)
		err_die(EXIT_TEMP, "tenant %s: broker unreachable; giving up (-1 mode)", v->tenant);
	v->retry_at = util_mono_ms() + 1000 * (int64_t)v->backoff;
	v->backoff = util_backoff_next(v->backoff);
}

/* Connect to v's vhost, declare, consume; on failure try again later
 * (a queue declared with other arguments exits 100). */
static void vlink_open(struct vlink *v, const struct opts *o, const struct bus_names *n)
{
	char err[512];
	int mismatch;
	if (!(v->b = bus_connect(v->url, n, &mismatch, err, sizeof err))) {
		if (mismatch)
			err_die(EXIT_PERM, "tenant %s: %s", v->tenant, err);
	} else if (bus_consume(v->b, n->request_queue, o->prefetch) < 0) {
		snprintf(err, sizeof err, "%s", bus_error(v->b));
	} else {
		char vhost[256];
		bus_tenant_vhost(v->tenant, vhost, sizeof vhost);
		err_info("consuming %s in vhost %s (tenant %s)", n->request_queue, vhost, v->tenant);
		return;
	}
	err_warn("tenant %s: %s; retrying in %d s", v->tenant, err, v->backoff);
	vlink_later(v, o);
}

/* The vlinks of every tenant of FERRY_TENANTS (exit 100 when there is
 * none, or two share a vhost: REGARDS lower-cases the tenant's name). */
static struct vlink *vlinks_make(const struct opts *o, char ***names, size_t *n)
{
	const char *dir = util_env("FERRY_TENANTS", "/etc/ferry/tenants");
	char err[1024];
	if (bus_vhost_tenants(dir, names, n, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	struct vlink *v = calloc(*n, sizeof *v);
	if (!v)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	for (size_t i = 0; i < *n; i++) {
		v[i].tenant = (*names)[i];
		v[i].backoff = 1;
		if (bus_tenant_url(o->url, v[i].tenant, v[i].url, sizeof v[i].url) < 0)
			err_die(EXIT_PERM, "tenant %s: its vhost URL does not fit", v[i].tenant);
	}
	return v;
}

/* MULTI vhost mode: every tenant's vhost in turn, one batch each a round,
 * so that no tenant's backlog holds another's up. */
static void consume_vhosts(journal *j, struct vlink *v, size_t n, const struct opts *o,
    const struct bus_names *names)
{
	struct slot *s = calloc((size_t)o->batch, sizeof *s);
	bus **up = calloc(n, sizeof *up);
	if (!s || !up)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	while (!stop) {
		int64_t now = util_mono_ms(), wait = 1000;
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (!v[i].b && now >= v[i].retry_at)
				vlink_open(&v[i], o, names);
			if (v[i].b)
				up[k++] = v[i].b;
			else if (v[i].retry_at - now < wait)
				wait = v[i].retry_at > now ? v[i].retry_at - now : 0;
		}
		int ready = bus_wait(up, k, (int)wait);
		if (ready < 0)
			err_die(EXIT_TEMP, "poll: %s", strerror(errno));
		int handled = 0;
		for (size_t i = 0; i < n && ready; i++) {
			if (!v[i].b)
				continue;
			int got = journal_step(j, v[i].b, o, s, 0, v[i].tenant);
			if (got < 0) {
				err_warn("tenant %s: broker connection lost: %s; reconnecting", v[i].tenant,
				    bus_error(v[i].b));
				vlink_later(&v[i], o);
			} else if (got > 0) {
				v[i].backoff = 1;
				handled += got;
			}
		}
		if (o->once && !ready && handled == 0 && k == n)
			stop = 1;
	}
	for (size_t i = 0; i < n; i++) {
		bus_close(v[i].b);
		v[i].b = NULL;
	}
	free(up);
	free(s);
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

/* Which connection failed, and why. */
static const char *lost_reason(const struct links *l)
{
	bus *const all[] = { l->in, l->shared, l->out };
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		if (all[i] && *bus_error(all[i]))
			return bus_error(all[i]);
	return "connection lost";
}

static void parse(int argc, char **argv, struct opts *o)
{
	int c;
	o->journal = util_env("FERRY_JOURNAL", "/var/lib/ferry/journal.db");
	o->url = util_env("FERRY_AMQP_URL", BUS_DEFAULT_URL);
	o->prefetch = 1000;
	o->batch = 500;
	o->linger = 10;
	o->once = 0;
	o->instance = util_env("FERRY_INSTANCE", NULL);
	o->instances = util_env("FERRY_INSTANCES", NULL);
	while ((c = getopt(argc, argv, "1hvi:I:j:u:p:b:l:")) != -1) {
		switch (c) {
		case '1': o->once = 1; break;
		case 'h': puts(usage); exit(0);
		case 'i': o->instance = *optarg ? optarg : NULL; break;
		case 'I': o->instances = *optarg ? optarg : NULL; break;
		case 'v': err_verbose(1); break;
		case 'j': o->journal = optarg; break;
		case 'u': o->url = optarg; break;
		case 'p': o->prefetch = atoi(optarg); break;
		case 'b': o->batch = atoi(optarg); break;
		case 'l': o->linger = atoi(optarg); break;
		default: args_usage(usage);
		}
	}
	if (optind != argc || o->prefetch < 1 || o->prefetch > 65535 || o->batch < 1 ||
	    o->linger < 0 || o->linger > 1000)
		args_usage(usage);
}

/* Check the scale-out settings (exit 100 when they cannot work) and name
 * what l consumes and forwards to. */
static void scale_out(const struct opts *o, const struct bus_names *names, struct links *l)
{
	char err[256];
	if (!o->instance)
		err_die(EXIT_PERM, "FERRY_INSTANCES (-I) is set but not FERRY_INSTANCE (-i): "
		    "name this instance, or unset both");
	if (bus_route_names(names, o->instance, &l->route) < 0)
		err_die(EXIT_PERM, "instance name %s: want 1 to 64 of [A-Za-z0-9_.-]", o->instance);
	if (!o->instances)
		err_die(EXIT_PERM, "instance %s: FERRY_INSTANCES (-I) is not set: "
		    "list the names of all instances, the same on each", o->instance);
	if (bus_members_parse(names, o->instances, &l->members, err, sizeof err) < 0)
		err_die(EXIT_PERM, "FERRY_INSTANCES: %s", err);
	size_t i = 0;
	while (i < l->members.n && strcmp(l->members.names[i], o->instance) != 0)
		i++;
	if (i == l->members.n)
		err_die(EXIT_PERM, "instance %s is not in FERRY_INSTANCES (%s)", o->instance,
		    o->instances);
	l->queue = l->route.queue;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bus_names names;
	struct links l = { 0 };
	char err[512];
	journal *j;
	int temp, backoff = 1;

	err_init("ferry-amqp-ingest");
	args_init(argc, argv);
	if (stage_fd3_init() < 0)
		err_die(EXIT_TEMP, "unable to open /dev/null: %s", strerror(errno));
	parse(argc, argv, &o);
	util_signals(&stop);
	if (bus_names_from_env(&names, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	if (bus_url_check(o.url, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	l.queue = names.request_queue;
	int multi = names.vhost_mode == BUS_VHOST_MULTI;
	if (multi && (o.instance || o.instances))
		err_die(EXIT_PERM, "FERRY_VHOST_MODE=multi does not scale out: "
		    "unset FERRY_INSTANCE and FERRY_INSTANCES (-i, -I)");
	if (o.instance || o.instances)
		scale_out(&o, &names, &l);
	if (journal_open(o.journal, JOURNAL_SYNC_FULL, &j, err, sizeof err, &temp) < 0)
		err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
	journal_set_owner(j, "ingest");
	if (journal_pending(j, JSTAGE_VALIDATE, reprint, NULL) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));

	if (multi) {
		char **tenants;
		size_t n;
		struct vlink *v = vlinks_make(&o, &tenants, &n);
		consume_vhosts(j, v, n, &o, &names);
		free(v);
		tenant_names_free(tenants, n);
	}
	while (!stop && !multi) {
		if (links_open(&l, &o, &names, err, sizeof err) < 0) {
			err_warn("%s; retrying in %d s", err, backoff);
			if (o.once && backoff >= 8)
				err_die(EXIT_TEMP, "broker unreachable; giving up (-1 mode)");
			sleep((unsigned)backoff);
			backoff = util_backoff_next(backoff);
			continue;
		}
		if (o.instance)
			err_info("consuming %s, forwarding %s to %s for %zu instances", l.queue,
			    names.request_queue, l.route.exchange, l.members.n);
		else
			err_info("consuming %s", l.queue);
		int64_t connected = util_mono_ms();
		if (consume(j, &l, &o) < 0 && !stop)
			err_warn("broker connection lost: %s; reconnecting", lost_reason(&l));
		links_close(&l);
		if (util_mono_ms() - connected < 2000 && !stop) {
			sleep((unsigned)backoff);
			backoff = util_backoff_next(backoff);
		} else {
			backoff = 1;
		}
	}
	journal_close(j);
	bus_members_free(&l.members);
	return 0;
}
