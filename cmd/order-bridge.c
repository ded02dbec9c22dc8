/* ferry-order-bridge: GRANTED -> ORDERED. Resolves order.queries, filtered by
 * order.filters, to the list of files of the delivery, from the tenant's
 * embedded catalog or its order_command, and applies the tenant's limits
 * (order size, suborders); or orders them from REGARDS rs-order, whose
 * answers come later on AMQP: such requests wait ORDERING, recorded in the
 * journal, while the bridge goes on with others. Adds "files" and
 * "totalSize" to the item. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "args.h"
#include "bus.h"
#include "catalog.h"
#include "driver.h"
#include "err.h"
#include "item.h"
#include "ordercmd.h"
#include "rsorder.h"
#include "util.h"
#include "validate.h"

static const char usage[] =
    "usage: ferry-order-bridge [-hv] [-c workers] [-j journal] [-t tenants] [-w workspace] [-T timeout]";

/* The rs-order side: two connections, one publishing with confirms, one
 * consuming ferry's response queue (confirms would swallow deliveries on a
 * shared one). Connected only once a tenant has used rs-order. */
struct rso {
	struct rsorder_names n;
	bus *pub, *sub;
	int64_t retry_ms;       /* monotonic: the next connection attempt */
	int backoff;            /* seconds */
	int down;               /* an outage was reported */
	_Atomic int wanted;     /* some order waits: connect (set by workers too) */
	_Atomic int64_t next_scan_ms;   /* 0: a worker placed an order, scan now */
	int in_hand;            /* requests waiting on rs-order, as counted by the last scan */
};

struct ctx {
	int timeout_s;          /* for an order command */
	struct driver *d;
	struct rso rso;
};

/* The files gathered for one request, and the limits they are held to. */
struct order {
	const tenant *t;
	catalog_filter *filter;
	cJSON *files;
	uint64_t total, sub_bytes, sub_files, suborders;
	int64_t nfiles;
	char why[1024];         /* a refused file or a broken limit */
	const char *error_type;
};

/* Count suborders as rs-order cuts them: a new one when the next file would
 * take the current one over suborder_max_bytes or suborder_max_files. */
static void count_suborder(struct order *o, uint64_t size)
{
	if (o->suborders == 0 || o->sub_files + 1 > o->t->suborder_max_files ||
	    (o->sub_files > 0 && o->sub_bytes + size > o->t->suborder_max_bytes)) {
		o->suborders++;
		o->sub_bytes = 0;
		o->sub_files = 0;
	}
	o->sub_bytes += size;
	o->sub_files++;
}

static int over_limit(struct order *o)
{
	const tenant *t = o->t;
	if (t->order_size_limit_bytes && o->total > t->order_size_limit_bytes) {
		o->error_type = "ORDER_LIMIT_REACHED";
		snprintf(o->why, sizeof o->why, "order size %" PRIu64 " bytes is over the limit of %"
		    PRIu64 " bytes", o->total, t->order_size_limit_bytes);
		return 1;
	}
	if (t->max_suborders && o->suborders > t->max_suborders) {
		o->error_type = "TOO_MANY_SUBORDERS";
		snprintf(o->why, sizeof o->why, "the order needs more than %" PRIu64 " suborder%s"
		    " (at most %" PRIu64 " files and %" PRIu64 " bytes each)", t->max_suborders,
		    t->max_suborders == 1 ? "" : "s", t->suborder_max_files, t->suborder_max_bytes);
		return 1;
	}
	return 0;
}

/* The filenameRegExp costs too much (the request is GRANTED already, so it
 * ends ERROR; INVALID_CONTENT says that the request, not ferry, is at
 * fault and that sending it again is no use). */
static void regexp_refused(struct order *o, const char *name)
{
	int e = errno;
	o->error_type = e == E2BIG || e == ETIME ? "INVALID_CONTENT" : "INTERNAL_ERROR";
	if (e == E2BIG)
		snprintf(o->why, sizeof o->why, "filenameRegExp is too costly: matching file name "
		    "%s needs more than %d backtracking steps; simplify the expression", name,
		    VALIDATE_MATCH_LIMIT);
	else if (e == ETIME)
		snprintf(o->why, sizeof o->why, "filenameRegExp is too costly: matching %" PRIu64
		    " file names used up the %d s allowed a request; simplify the expression",
		    catalog_filter_matched(o->filter), CATALOG_FILTER_BUDGET_MS / 1000);
	else
		snprintf(o->why, sizeof o->why, "filenameRegExp on %s: %s", name, strerror(e));
}

/* One candidate file: filter, count, keep. Non-zero stops the walk. */
static int take(struct order *o, const struct catalog_file *f)
{
	int keep = catalog_filter_match(o->filter, f);
	if (keep < 0) {
		regexp_refused(o, f->name);
		return 1;
	}
	if (!keep)
		return 0;
	cJSON *j = catalog_file_json(f);
	if (!j) {
		o->error_type = "INTERNAL_ERROR";
		snprintf(o->why, sizeof o->why, "%s", strerror(ENOMEM));
		return 1;
	}
	cJSON_AddItemToArray(o->files, j);
	o->nfiles++;
	o->total += (uint64_t)f->size;
	count_suborder(o, (uint64_t)f->size);
	return over_limit(o);
}

static int from_catalog(void *arg, const struct catalog_file *f)
{
	return take(arg, f);
}

static int from_command(void *arg, const cJSON *line, char *why, size_t len)
{
	struct order *o = arg;
	struct catalog_file f;
	char err[512];
	if (catalog_file_parse(line, &f, err, sizeof err) < 0) {
		snprintf(why, len, "order command printed an invalid file: %s", err);
		o->error_type = "INTERNAL_ERROR";
		return 1;
	}
	if (take(o, &f)) {
		snprintf(why, len, "%s", o->why);
		return 1;
	}
	return 0;
}

/* queries as a C array (pointers into the item) */
static const char **queries_of(const cJSON *order, size_t *n)
{
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(order, "queries"), *e;
	const char **out = calloc((size_t)cJSON_GetArraySize(q) + 1, sizeof *out);
	*n = 0;
	if (out)
		cJSON_ArrayForEach(e, q)
			if (cJSON_IsString(e))
				out[(*n)++] = e->valuestring;
	return out;
}

static void resolve_catalog(struct order *o, const cJSON *order, struct driver_result *r)
{
	char err[1024];
	catalog *c;
	size_t nq;
	if (catalog_open(o->t->catalog, 0, &c, err, sizeof err) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "catalog unavailable: %s", err);
		return;
	}
	const char **q = queries_of(order, &nq);
	int rc = q ? catalog_resolve(c, q, nq, from_catalog, o) : -1;
	if (rc < 0 && !o->error_type)
		driver_fail(r, "INTERNAL_ERROR", "catalog: %s", q ? catalog_error(c) : strerror(ENOMEM));
	free(q);
	catalog_close(c);
}

/* Run the order command, again after a pause while it asks to (111). */
static void resolve_command(struct order *o, struct driver_job *job, struct ctx *ctx,
    struct driver_result *r)
{
	char *text = item_print(job->item);
	for (int pause = 1; text; pause = util_backoff_next(pause)) {
		struct ordercmd_result res;
		cJSON_Delete(o->files);
		o->files = cJSON_CreateArray();
		o->total = o->sub_bytes = o->sub_files = o->suborders = 0;
		o->nfiles = 0;
		o->error_type = NULL;
		if (ordercmd_run(o->t->order_command, text, ctx->timeout_s * 1000, job->stop,
		    from_command, o, &res) < 0 || res.status == ORDERCMD_FAILED) {
			driver_fail(r, o->error_type ? o->error_type : "INTERNAL_ERROR", "%s", res.message);
			break;
		}
		if (res.status == ORDERCMD_STOPPED) {
			r->verdict = DRIVER_ABANDON;
			break;
		}
		if (res.status == ORDERCMD_OK)
			break;
		if (util_now_ms() + pause * 1000 > job->hold_ms) {
			r->verdict = DRIVER_RETRY;
			snprintf(r->message, sizeof r->message, "order command: %s", res.message);
			break;
		}
		err_log(ERR_WARNING, job->label, "order command: %s; again in %d s", res.message, pause);
		for (int s = 0; s < pause * 10 && !*job->stop; s++)
			usleep(100000);
		if (*job->stop) {
			r->verdict = DRIVER_ABANDON;
			break;
		}
		if (job->expires_ms && util_now_ms() >= job->expires_ms) {
			char when[32];
			util_iso8601(job->expires_ms, when);
			driver_fail(r, "EXPIRED", "The request date has reached the expiration limit '%s'",
			    when);
			break;
		}
	}
	if (!text)
		driver_fail(r, "INTERNAL_ERROR", "%s", strerror(ENOMEM));
	free(text);
}

/* ---- the rs-order backend ---- */

enum { CONFIRM_MS = 10000, SCAN_MS = 1000, LIST_RETRY_MS = 5000, PREFETCH = 50 };
/* how long the row of a request ended before rs-order answered waits for
 * an orderId to cancel */
#define GRANTED_GRACE_MS (24 * 3600 * 1000LL)

static void rso_close(struct rso *r)
{
	bus_close(r->pub);
	bus_close(r->sub);
	r->pub = r->sub = NULL;
}

static void rso_down(struct rso *r, const char *why)
{
	rso_close(r);
	if (!r->down)
		err_warn("rs-order: amqp: %s; orders wait, trying again", why);
	r->down = 1;
	r->retry_ms = util_mono_ms() + r->backoff * 1000;
	r->backoff = util_backoff_next(r->backoff);
}

/* Both connections, the exchanges rs-order and its clients declare, and
 * ferry's queue bound to the response exchange. 0, or -1 (retried later). */
static int rso_connect(struct rso *r)
{
	char err[512];
	const char *ex[] = { r->n.request_exchange, r->n.cancel_exchange, r->n.response_exchange };
	char q[256];
	if (r->pub && r->sub)
		return 0;
	if (util_mono_ms() < r->retry_ms)
		return -1;
	if (bus_open(r->n.url, &r->pub, err, sizeof err) < 0) {
		rso_down(r, err);
		return -1;
	}
	int rc = bus_confirm_select(r->pub);
	for (size_t i = 0; rc == 0 && i < sizeof ex / sizeof *ex; i++)
		rc = bus_declare_exchange(r->pub, ex[i], "fanout");
	if (rc < 0) {
		snprintf(err, sizeof err, "%s", bus_error(r->pub));
		rso_down(r, err);
		return -1;
	}
	if (bus_open(r->n.url, &r->sub, err, sizeof err) < 0) {
		rso_down(r, err);
		return -1;
	}
	if (bus_listen(r->sub, r->n.queue, r->n.response_exchange, q, sizeof q) < 0 ||
	    bus_consume(r->sub, r->n.queue, PREFETCH) < 0) {
		snprintf(err, sizeof err, "%s", bus_error(r->sub));
		rso_down(r, err);
		return -1;
	}
	err_info("rs-order: consuming %s", r->n.queue);
	r->down = 0;
	r->backoff = 1;
	return 0;
}

struct confirm {
	uint64_t seq;
	int done, ok;
};

static void on_confirm(void *arg, uint64_t seq, int ok)
{
	struct confirm *c = arg;
	if (seq == c->seq)
		c->done = 1, c->ok = ok;
}

/* Publish one message and wait for the broker's confirm: 0, or -1. */
static int rso_publish(struct rso *r, const char *exchange, const char *type,
    const char *tn, const char *body)
{
	struct rsorder_msg m;
	struct confirm c = { 0 };
	if (rso_connect(r) < 0)
		return -1;
	rsorder_msg(&m, exchange, type, tn, body);
	int64_t until = util_mono_ms() + CONFIRM_MS;
	int rc = bus_publish(r->pub, &m.pub, &c.seq);
	while (rc == 0 && !c.done && util_mono_ms() < until)
		rc = bus_confirms(r->pub, (int)(until - util_mono_ms()), on_confirm, &c);
	if (rc < 0 || !c.done || !c.ok) {
		char err[300];
		snprintf(err, sizeof err, "publish to %s: %s", exchange, rc < 0 ? bus_error(r->pub) :
		    !c.done ? "no confirm" : "refused by the broker");
		rso_down(r, err);
		return -1;
	}
	return 0;
}

/* The item the bridge got for a request (journaled as GRANTED), or a
 * minimal one when there is none. */
static cJSON *input_item(journal *j, const char *tn, const char *cid)
{
	char why[64];
	char *text = journal_input_item(j, JSTAGE_ORDER, tn, cid);
	cJSON *item = text ? item_parse(text, strlen(text), why, sizeof why) : NULL;
	free(text);
	if (!item && (item = cJSON_CreateObject())) {
		cJSON_AddStringToObject(item, "tenant", tn);
		cJSON_AddStringToObject(item, "correlationId", cid);
	}
	return item;
}

static void rso_fail(struct ctx *c, const char *tn, const char *cid, const char *type,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* End a waiting request with ERROR type. */
static void rso_fail(struct ctx *c, const char *tn, const char *cid, const char *type,
    const char *fmt, ...)
{
	struct driver_result r = { .verdict = DRIVER_ERROR, .error_type = type };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r.message, sizeof r.message, fmt, ap);
	va_end(ap);
	cJSON *item = input_item(driver_journal(c->d), tn, cid);
	if (!item)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	driver_finish(c->d, item, &r);
	cJSON_Delete(item);
}

/* A request's row as it stood when a message came. */
struct row {
	int found;
	char state[32], status[32];
	int64_t order_id, suborders, retry_at, expires_ms;
};

static int copy_row(void *arg, const struct jorder *o)
{
	struct row *w = arg;
	w->found = 1;
	snprintf(w->state, sizeof w->state, "%s", o->state);
	snprintf(w->status, sizeof w->status, "%s", o->status);
	w->order_id = o->order_id;
	w->suborders = o->suborders;
	return 0;
}

static void set_status(struct ctx *c, const char *tn, const char *cid, const char *status,
    int64_t order_id, int64_t suborders, int64_t retry_at)
{
	struct jorder o = { .tenant = tn, .cid = cid, .status = status, .order_id = order_id,
		.suborders = suborders, .retry_at = retry_at };
	journal *j = driver_journal(c->d);
	if (journal_order_update(j, &o) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
}

/* DONE: list the order's files, every page, and send the item on. */
static void rso_complete(struct ctx *c, const char *tn, const char *cid, int64_t order_id)
{
	char label[160], err[512];
	const char *why = NULL;
	cJSON *files = NULL;
	int64_t total = 0;
	snprintf(label, sizeof label, "%s/%s", tn, cid);
	const tenant *t = driver_tenant(c->d, tn, &why);
	if (!t || !t->has_rs_order) {
		rso_fail(c, tn, cid, "INTERNAL_ERROR", "tenant %s has no rs_order any more%s%s",
		    tn, why ? ": " : "", why ? why : "");
		return;
	}
	cJSON *item = input_item(driver_journal(c->d), tn, cid);
	const char *user = item_str(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(item, "request"), "order"), "user");
	int rc = user ? rsorder_list_files(t, user, order_id, &files, &total, err, sizeof err)
	    : RSORDER_PERMANENT;
	if (!user)
		snprintf(err, sizeof err, "the request has no order.user");
	if (rc == RSORDER_TEMPORARY) {
		err_log(ERR_WARNING, label, "rs-order order %" PRId64 ": listing the files: %s; "
		    "again in %d s", order_id, err, LIST_RETRY_MS / 1000);
		set_status(c, tn, cid, "DONE", 0, 0, util_now_ms() + LIST_RETRY_MS);
	} else if (rc == RSORDER_PERMANENT) {
		rso_fail(c, tn, cid, "INTERNAL_ERROR", "rs-order order %" PRId64 ": listing the "
		    "files: %s", order_id, err);
	} else if (cJSON_GetArraySize(files) == 0) {
		cJSON_Delete(files);
		rso_fail(c, tn, cid, "EMPTY_ORDER", "rs-order order %" PRId64 " lists no available "
		    "file", order_id);
	} else {
		int n = cJSON_GetArraySize(files);
		struct driver_result r = { .verdict = DRIVER_OK };
		cJSON_DeleteItemFromObjectCaseSensitive(item, "files");
		cJSON_DeleteItemFromObjectCaseSensitive(item, "totalSize");
		cJSON_AddItemToObject(item, "files", files);
		cJSON_AddNumberToObject(item, "totalSize", (double)total);
		err_log(ERR_INFO, label, "rs-order order %" PRId64 ": %d file%s, %" PRId64 " bytes",
		    order_id, n, n == 1 ? "" : "s", total);
		if (driver_finish(c->d, item, &r) > 0)
			set_status(c, tn, cid, "ORDERED", 0, 0, 0);
	}
	cJSON_Delete(item);
}

/* SUBORDER_DONE and DONE: more suborders than the tenant allows, or files
 * in error, end the request (the cancel goes at the next scan). 1 if so. */
static int rso_refused(struct ctx *c, const char *tn, const struct rsorder_resp *r)
{
	const char *why = NULL;
	const tenant *t = driver_tenant(c->d, tn, &why);
	if (!t) {
		rso_fail(c, tn, r->cid, "FORBIDDEN", "[FORBIDDEN] Delivery is not configured for "
		    "tenant %s", tn);
		return 1;
	}
	if (t->max_suborders && (uint64_t)r->suborders > t->max_suborders) {
		rso_fail(c, tn, r->cid, "TOO_MANY_SUBORDERS", "Cannot deliver request %s : rs-order "
		    "order %" PRId64 " has %" PRId64 " sub-orders, more than the %" PRIu64 " allowed",
		    r->cid, r->order_id, r->suborders, t->max_suborders);
		return 1;
	}
	if (r->errors > 0) {
		rso_fail(c, tn, r->cid, rsorder_error_type(r->error_type), "%s",
		    r->message ? r->message : "rs-order reports files in error");
		return 1;
	}
	return 0;
}

/* One OrderResponseDtoEvent. Responses to orders ferry did not place (every
 * client of rs-order gets them all), or to requests already ended, only
 * teach the orderId, for the cancel. */
static void rso_message(struct ctx *c, const struct bus_msg *m)
{
	struct rsorder_resp r;
	struct row w = { 0 };
	char label[160];
	journal *j = driver_journal(c->d);
	if (!m->tenant || rsorder_resp_parse(m->body, m->len, &r) < 0) {
		err_warn("rs-order: a response without regards.tenant, correlationId or known status: "
		    "ignored");
		return;
	}
	if (journal_order_get(j, m->tenant, r.cid, copy_row, &w) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
	snprintf(label, sizeof label, "%s/%s", m->tenant, r.cid);
	if (w.found && r.order_id && !w.order_id)
		set_status(c, m->tenant, r.cid, w.status, r.order_id, 0, 0);
	if (!w.found || strcmp(w.state, journal_stage(JSTAGE_ORDER)->busy) != 0) {
		rsorder_resp_clear(&r);
		return;
	}
	err_log(ERR_INFO, label, "rs-order: %s%s%s", r.status_name, r.error_type ? " " : "",
	    r.error_type ? r.error_type : "");
	switch (r.status) {
	case RSORDER_GRANTED:
		set_status(c, m->tenant, r.cid, "GRANTED", r.order_id, 0, 0);
		break;
	case RSORDER_DENIED:
	case RSORDER_FAILED:
		set_status(c, m->tenant, r.cid, r.status_name, r.order_id, 0, 0);
		rso_fail(c, m->tenant, r.cid, rsorder_error_type(r.error_type), "%s",
		    r.message ? r.message : r.status_name);
		break;
	case RSORDER_SUBORDER_DONE:
		if (!rso_refused(c, m->tenant, &r))
			set_status(c, m->tenant, r.cid, strcmp(w.status, "DONE") ? "SUBORDER_DONE" : "DONE",
			    r.order_id, r.suborders, 0);
		break;
	case RSORDER_DONE:
		if (!rso_refused(c, m->tenant, &r)) {
			set_status(c, m->tenant, r.cid, "DONE", r.order_id, r.suborders, 0);
			rso_complete(c, m->tenant, r.cid, r.order_id ? r.order_id : w.order_id);
		}
		break;
	}
	rsorder_resp_clear(&r);
}

static void rso_drain(struct ctx *c)
{
	struct rso *r = &c->rso;
	struct bus_msg m;
	int got;
	while (r->sub && (got = bus_next(r->sub, 0, &m)) != 0) {
		if (got < 0) {
			char err[300];
			snprintf(err, sizeof err, "%s", bus_error(r->sub));
			rso_down(r, err);
			return;
		}
		rso_message(c, &m);
		if (bus_ack(r->sub, m.tag, 0) < 0)
			rso_down(r, "ack failed");
		bus_msg_clear(&m);
	}
	/* lets librabbitmq answer the broker's heartbeats on the idle one */
	if (r->pub && bus_confirms(r->pub, 0, on_confirm, &(struct confirm){ 0 }) < 0)
		rso_down(r, bus_error(r->pub));
}

static void rso_send_request(struct ctx *c, const struct jorder *o)
{
	char err[256];
	const char *why = NULL;
	const tenant *t = driver_tenant(c->d, o->tenant, &why);
	cJSON *item = input_item(driver_journal(c->d), o->tenant, o->cid);
	char *body = t && item ? rsorder_request_body(item, t, err, sizeof err) : NULL;
	int unknown = item && !body && errno == EACCES;
	cJSON_Delete(item);
	if (!t)
		rso_fail(c, o->tenant, o->cid, "FORBIDDEN", "[FORBIDDEN] Delivery is not configured "
		    "for tenant %s", o->tenant);
	else if (!body)
		rso_fail(c, o->tenant, o->cid, unknown ? "FORBIDDEN" : "INTERNAL_ERROR", "%s",
		    item ? err : strerror(ENOMEM));
	else if (rso_publish(&c->rso, c->rso.n.request_exchange, RSORDER_REQUEST_TYPE, o->tenant,
	    body) == 0)
		set_status(c, o->tenant, o->cid, "SENT", 0, 0, 0);
	free(body);
}

/* A request that ended in ERROR after rs-order gave an orderId: cancel
 * the order (CleanOrderService does as much). 0, or -1 to retry. */
static int rso_cancel(struct ctx *c, const struct jorder *o)
{
	char *body = rsorder_cancel_body(o->cid, o->order_id);
	int rc = body ? rso_publish(&c->rso, c->rso.n.cancel_exchange, RSORDER_CANCEL_TYPE,
	    o->tenant, body) : -1;
	free(body);
	if (rc == 0) {
		char label[160];
		snprintf(label, sizeof label, "%s/%s", o->tenant, o->cid);
		err_log(ERR_INFO, label, "rs-order order %" PRId64 " cancelled", o->order_id);
		journal_order_cancelled(driver_journal(c->d), o->tenant, o->cid);
	}
	return rc;
}

static int rso_scan_one(void *arg, const struct jorder *o)
{
	struct ctx *c = arg;
	journal *j = driver_journal(c->d);
	char when[32];
	if (journal_state_terminal(o->state)) {
		int error = !strcmp(o->state, "ERROR");
		int cancel = error && o->order_id && !o->cancelled;
		/* ended before rs-order's GRANTED came: its orderId may still come */
		int await = error && !o->order_id && !strcmp(o->status, "SENT") &&
		    util_now_ms() - o->updated_ms < GRANTED_GRACE_MS;
		if (cancel && rso_cancel(c, o) < 0) {
			c->rso.in_hand++;     /* tried again at the next scan */
			return 0;
		}
		if (!cancel && await)
			return 0;
		if (journal_order_forget(j, o->tenant, o->cid) < 0)
			err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
		return 0;
	}
	/* ordered: kept until the request ends, for the cancel of an ERROR */
	if (strcmp(o->state, journal_stage(JSTAGE_ORDER)->busy) != 0)
		return 0;
	c->rso.in_hand++;
	if (o->expires_ms && o->expires_ms <= util_now_ms()) {
		util_iso8601(o->expires_ms, when);
		rso_fail(c, o->tenant, o->cid, "EXPIRED", "The request date has reached the "
		    "expiration limit '%s'", when);
	} else if (!strcmp(o->status, "QUEUED")) {
		rso_send_request(c, o);
	} else if (!strcmp(o->status, "DONE") && o->retry_at <= util_now_ms()) {
		rso_complete(c, o->tenant, o->cid, o->order_id);
	}
	return 0;
}

/* The driver's tick: messages first, then (once a second, or at once
 * after a new order) the journal's waiting orders. */
static int rso_tick(void *arg, struct driver *d)
{
	struct ctx *c = arg;
	struct rso *r = &c->rso;
	journal *j = driver_journal(d);
	c->d = d;
	if (r->wanted)
		rso_connect(r);
	rso_drain(c);
	if (util_mono_ms() < r->next_scan_ms)
		return r->in_hand;
	r->next_scan_ms = util_mono_ms() + SCAN_MS;
	r->in_hand = 0;
	if (journal_order_all(j, rso_scan_one, c) < 0)
		err_die(journal_temporary(j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(j));
	if (r->in_hand && !r->wanted) {
		/* orders left waiting by an earlier run: ours now */
		int n = journal_order_reattach(j);
		if (n > 0)
			err_info("rs-order: %d order%s waiting from before", n, n == 1 ? "" : "s");
		r->wanted = 1;
		rso_connect(r);
		rso_drain(c);
	}
	return r->in_hand;
}

static int rso_fd(void *arg)
{
	struct ctx *c = arg;
	return c->rso.sub ? bus_fd(c->rso.sub) : -1;
}

/* An rs-order tenant's request: recorded as waiting (QUEUED), published at
 * the next tick, which comes at once. */
static void order_rsorder(struct ctx *ctx, struct driver_job *job, struct driver_result *r)
{
	char err[256];
	char *body = rsorder_request_body(job->item, job->tenant, err, sizeof err);
	free(body);
	if (!body) {
		driver_fail(r, errno == EACCES ? "FORBIDDEN" : "INTERNAL_ERROR", "%s", err);
		return;
	}
	int rc = journal_order_wait(job->j, job->tenant_name, job->cid, "rs-order", "QUEUED");
	if (rc < 0)
		err_die(journal_temporary(job->j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(job->j));
	if (rc == 0) {
		driver_fail(r, "INTERNAL_ERROR", "the request left ORDERING");
		return;
	}
	ctx->rso.wanted = 1;
	ctx->rso.next_scan_ms = 0;
	r->verdict = DRIVER_PENDING;
}

static void order_work(void *arg, struct driver_job *job, struct driver_result *r)
{
	struct ctx *ctx = arg;
	if (job->tenant->has_rs_order) {
		order_rsorder(ctx, job, r);
		return;
	}
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(job->item, "request");
	const cJSON *order = cJSON_GetObjectItemCaseSensitive(req, "order");
	char err[512];
	catalog_filter *filter;
	if (catalog_filter_from_json(cJSON_GetObjectItemCaseSensitive(order, "filters"), &filter,
	    err, sizeof err) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "%s", err);
		return;
	}
	struct order o = { .t = job->tenant, .filter = filter, .files = cJSON_CreateArray() };
	if (job->tenant->catalog)
		resolve_catalog(&o, order, r);
	else if (job->tenant->order_command)
		resolve_command(&o, job, ctx, r);
	else
		driver_fail(r, "INTERNAL_ERROR", "tenant %s has no order backend (catalog, "
		    "order_command or rs_order)", job->tenant_name);
	catalog_filter_free(filter);
	if (r->verdict == DRIVER_OK && o.error_type)
		driver_fail(r, o.error_type, "%s", o.why);
	else if (r->verdict == DRIVER_OK && o.nfiles == 0)
		driver_fail(r, "EMPTY_ORDER", "no file matches the order");
	if (r->verdict != DRIVER_OK) {
		cJSON_Delete(o.files);
		return;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(job->item, "files");
	cJSON_DeleteItemFromObjectCaseSensitive(job->item, "totalSize");
	cJSON_AddItemToObject(job->item, "files", o.files);
	cJSON_AddNumberToObject(job->item, "totalSize", (double)o.total);
	err_log(ERR_INFO, job->label, "%" PRId64 " file%s, %" PRIu64 " bytes, %" PRIu64 " suborder%s",
	    o.nfiles, o.nfiles == 1 ? "" : "s", o.total, o.suborders, o.suborders == 1 ? "" : "s");
}

int main(int argc, char **argv)
{
	struct driver d;
	struct ctx ctx = { .timeout_s = 300, .rso = { .backoff = 1 } };
	int ch;
	err_init("ferry-order-bridge");
	args_init(argc, argv);
	driver_init(&d, "ferry-order-bridge", JSTAGE_ORDER);
	while ((ch = getopt(argc, argv, "h" DRIVER_OPTS "T:")) != -1) {
		if (driver_option(&d, ch, optarg))
			continue;
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'T': ctx.timeout_s = atoi(optarg); break;
		default: args_usage(usage);
		}
	}
	if (optind != argc || ctx.timeout_s < 1)
		args_usage(usage);
	rsorder_names_from_env(&ctx.rso.n);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		err_die(EXIT_TEMP, "unable to set up libcurl");
	d.work = order_work;
	d.ctx = &ctx;
	d.tick = rso_tick;
	d.wait_fd = rso_fd;
	ctx.d = &d;
	int rc = driver_run(&d);
	rso_close(&ctx.rso);
	curl_global_cleanup();
	return rc;
}
