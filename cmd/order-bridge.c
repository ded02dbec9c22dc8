/* ferry-order-bridge: GRANTED -> ORDERED. Resolves order.queries, filtered by
 * order.filters, to the list of files of the delivery, from the tenant's
 * embedded catalog or its order_command, and applies the tenant's limits
 * (order size, suborders). Adds "files" and "totalSize" to the item. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "driver.h"
#include "err.h"
#include "item.h"
#include "ordercmd.h"
#include "util.h"

static const char usage[] =
    "usage: ferry-order-bridge [-hv] [-j journal] [-t tenants] [-w workspace] [-T timeout]";

struct ctx {
	int timeout_s;          /* for an order command */
};

/* The files gathered for one request, and the limits they are held to. */
struct order {
	const tenant *t;
	const catalog_filter *filter;
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

/* One candidate file: filter, count, keep. Non-zero stops the walk. */
static int take(struct order *o, const struct catalog_file *f)
{
	int keep = catalog_filter_match(o->filter, f);
	if (keep < 0) {
		o->error_type = "INTERNAL_ERROR";
		snprintf(o->why, sizeof o->why, "filenameRegExp on %s: %s", f->name,
		    errno == E2BIG ? "the expression runs away" : strerror(errno));
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

static void order_work(void *arg, struct driver_job *job, struct driver_result *r)
{
	struct ctx *ctx = arg;
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
		driver_fail(r, "INTERNAL_ERROR", "tenant %s has no order backend (catalog or "
		    "order_command)", job->tenant_name);
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
	struct ctx ctx = { .timeout_s = 300 };
	int ch;
	err_init("ferry-order-bridge");
	driver_init(&d, "ferry-order-bridge", JSTAGE_ORDER);
	while ((ch = getopt(argc, argv, "h" DRIVER_OPTS "T:")) != -1) {
		if (driver_option(&d, ch, optarg))
			continue;
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'T': ctx.timeout_s = atoi(optarg); break;
		default: err_die(EXIT_PERM, "%s", usage);
		}
	}
	if (optind != argc || ctx.timeout_s < 1)
		err_die(EXIT_PERM, "%s", usage);
	d.work = order_work;
	d.ctx = &ctx;
	return driver_run(&d);
}
