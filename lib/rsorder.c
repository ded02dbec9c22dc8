/* rsorder: rs-order's messages and REST calls (see rsorder.h). Bodies are
 * GSON's: absent fields are left out, never null. The listing is read
 * whole, every page, before ferry-fetch downloads anything, because
 * rs-order drops a stored file from it once downloaded (OrderDataFileService). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "item.h"
#include "jwt.h"
#include "rsorder.h"
#include "util.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

enum { MAX_PAGE_BYTES = 16 << 20, MAX_PAGES = 100000, TIMEOUT_S = 60 };

#define EXCHANGE(type) "regards.broadcast." type

void rsorder_names_from_env(struct rsorder_names *n)
{
	n->url = util_env("FERRY_RSORDER_AMQP_URL", util_env("FERRY_AMQP_URL", BUS_DEFAULT_URL));
	n->request_exchange = util_env("FERRY_RSORDER_REQUEST_EXCHANGE", EXCHANGE(RSORDER_REQUEST_TYPE));
	n->cancel_exchange = util_env("FERRY_RSORDER_CANCEL_EXCHANGE", EXCHANGE(RSORDER_CANCEL_TYPE));
	n->response_exchange = util_env("FERRY_RSORDER_RESPONSE_EXCHANGE",
	    EXCHANGE(RSORDER_RESPONSE_TYPE));
	n->queue = util_env("FERRY_RSORDER_QUEUE", RSORDER_QUEUE);
}

void rsorder_msg(struct rsorder_msg *m, const char *exchange, const char *type,
    const char *tenant, const char *body)
{
	m->names[0] = "regards.tenant", m->values[0] = tenant;
	m->names[1] = "regards.converter", m->values[1] = "GSON";
	m->names[2] = "regards.type", m->values[2] = type;
	m->pub = (struct bus_pub){
		.exchange = exchange, .routing_key = "", .body = body, .len = strlen(body),
		.app_id = "REGARDS", .content_type = "application/json", .content_encoding = "UTF-8",
		.persistent = 1, .has_priority = 1, .priority = 1, .timestamp = (int64_t)time(NULL),
		.hnames = m->names, .hvalues = m->values, .nheaders = 3,
	};
}

static const cJSON *get(const cJSON *o, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(o, k);
}

char *rsorder_request_body(const cJSON *item, const tenant *t, char *err, size_t errlen)
{
	const cJSON *order = get(get(item, "request"), "order");
	const cJSON *queries = get(order, "queries"), *filters = get(order, "filters");
	const char *user = item_str(order, "user"), *cid = item_str(item, "correlationId");
	if (!cJSON_IsArray(queries) || !user || !cid) {
		snprintf(err, errlen, "the request has no %s", !cJSON_IsArray(queries) ?
		    "order.queries" : !user ? "order.user" : "correlationId");
		return NULL;
	}
	if (!tenant_user_allowed(t, user)) {
		snprintf(err, errlen, "Unknown user : %s", user);
		errno = EACCES;
		return NULL;
	}
	cJSON *b = cJSON_CreateObject();
	cJSON *q = cJSON_Duplicate(queries, 1);
	cJSON *f = filters && !cJSON_IsNull(filters) ? cJSON_Duplicate(filters, 1) : NULL;
	char *out = NULL;
	if (b && q && (f || !filters || cJSON_IsNull(filters))) {
		cJSON_AddItemToObject(b, "queries", q);
		q = NULL;
		if (f)
			cJSON_AddItemToObject(b, "filters", f);
		f = NULL;
		if (cJSON_AddStringToObject(b, "correlationId", cid) &&
		    cJSON_AddStringToObject(b, "user", user) &&
		    (!t->order_size_limit_bytes ||
		     cJSON_AddNumberToObject(b, "sizeLimitInBytes", (double)t->order_size_limit_bytes)))
			out = cJSON_PrintUnformatted(b);
	}
	cJSON_Delete(q);
	cJSON_Delete(f);
	cJSON_Delete(b);
	if (!out)
		snprintf(err, errlen, "%s", strerror(ENOMEM));
	return out;
}

char *rsorder_cancel_body(const char *cid, int64_t order_id)
{
	cJSON *b = cJSON_CreateObject();
	char *out = NULL;
	if (b && cJSON_AddStringToObject(b, "correlationId", cid) &&
	    cJSON_AddNumberToObject(b, "orderId", (double)order_id))
		out = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	return out;
}

static const char *const status_names[] = {
	[RSORDER_GRANTED] = "GRANTED", [RSORDER_DENIED] = "DENIED",
	[RSORDER_SUBORDER_DONE] = "SUBORDER_DONE", [RSORDER_DONE] = "DONE",
	[RSORDER_FAILED] = "FAILED",
};

static int64_t int_or_0(const cJSON *o, const char *k)
{
	int64_t v;
	return item_int(o, k, &v) == 0 ? v : 0;
}

int rsorder_resp_parse(const char *body, size_t len, struct rsorder_resp *r)
{
	char why[64];
	memset(r, 0, sizeof *r);
	r->json = item_parse(body, len, why, sizeof why);
	r->cid = item_str(r->json, "correlationId");
	r->status_name = item_str(r->json, "status");
	if (!r->cid || !r->status_name)
		goto bad;
	size_t i = 0;
	while (i < sizeof status_names / sizeof *status_names && strcmp(status_names[i], r->status_name))
		i++;
	if (i == sizeof status_names / sizeof *status_names)
		goto bad;
	r->status = (enum rsorder_status)i;
	r->message = item_str(r->json, "message");
	r->error_type = item_str(r->json, "errorType");
	r->order_id = int_or_0(r->json, "orderId");
	r->suborders = int_or_0(r->json, "totalSubOrders");
	r->sub_order_id = int_or_0(r->json, "subOrderId");
	r->errors = int_or_0(r->json, "errors");
	return 0;
bad:
	rsorder_resp_clear(r);
	return -1;
}

void rsorder_resp_clear(struct rsorder_resp *r)
{
	cJSON_Delete(r->json);
	memset(r, 0, sizeof *r);
}

const char *rsorder_error_type(const char *e)
{
	static const char *const same[] = {
		"FORBIDDEN", "EMPTY_ORDER", "INVALID_CONTENT", "ORDER_LIMIT_REACHED",
	};
	for (size_t i = 0; e && i < sizeof same / sizeof *same; i++)
		if (strcmp(e, same[i]) == 0)
			return same[i];
	return "INTERNAL_ERROR";
}

/* ---- REST ---- */

/* No token is signed for a user the tenant does not list: rs-order would
 * take it for that user's (tenant_parse refuses users "*" with rs_order).
 * With rs_admin, a user rs-admin knew when the request was GRANTED
 * (ferry-request-validate) is as good as listed. */
static char *bearer(const tenant *t, const char *user)
{
	char *jwt, *h = NULL;
	const struct tenant_rsorder *r = &t->rs_order;
	if (!tenant_user_allowed(t, user) && !t->has_rs_admin) {
		errno = EACCES;
		return NULL;
	}
	if (jwt_regards(r->jwt_secret, t->name, user, r->role,
	    (int64_t)time(NULL) + r->token_ttl_seconds, &jwt) < 0)
		return NULL;
	size_t n = strlen(jwt) + sizeof "Authorization: Bearer ";
	if ((h = malloc(n)))
		snprintf(h, n, "Authorization: Bearer %s", jwt);
	jwt_free(jwt);
	return h;
}

int rsorder_auth_header(const tenant *t, const char *url, const char *user, char **header)
{
	*header = NULL;
	if (!t->has_rs_order || !user)
		return 0;
	size_t n = strlen(t->rs_order.url);
	if (strncasecmp(url, t->rs_order.url, n) != 0 || (url[n] != '/' && url[n] != '\0'))
		return 0;
	*header = bearer(t, user);
	return *header ? 1 : -1;
}

struct buf {
	char *p;
	size_t len, cap;
	int toobig;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct buf *b = arg;
	size_t len = size * nmemb;
	if (b->len + len + 1 > MAX_PAGE_BYTES) {
		b->toobig = 1;
		return 0;
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return 0;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

/* GET url with the JWT into b: RSORDER_OK or an error (reason in err) */
static int http_get(const char *url, const char *auth, struct buf *b, char *err, size_t errlen)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL, *h1, *h2;
	long code = 0;
	if (!h)
		return snprintf(err, errlen, "unable to set up libcurl"), RSORDER_TEMPORARY;
	h1 = curl_slist_append(hdrs, auth);
	h2 = h1 ? curl_slist_append(h1, "Accept: application/json") : NULL;
	hdrs = h2 ? h2 : h1;
	b->len = 0;
	b->toobig = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	CURLcode c = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	/* the list holds the token: wipe it before it is freed */
	for (struct curl_slist *s = hdrs; s; s = s->next)
		memset(s->data, 0, strlen(s->data));
	curl_slist_free_all(hdrs);
	if (!h1 || !h2)
		return snprintf(err, errlen, "%s", strerror(ENOMEM)), RSORDER_TEMPORARY;
	if (b->toobig)
		return snprintf(err, errlen, "a page is over %d bytes", MAX_PAGE_BYTES), RSORDER_PERMANENT;
	if (c != CURLE_OK)
		return snprintf(err, errlen, "%s", curl_easy_strerror(c)), RSORDER_TEMPORARY;
	if (code == 200 && b->len)
		return RSORDER_OK;
	snprintf(err, errlen, "HTTP %ld%s", code, code == 401 ? " (is jwt_secret rs-order's key?)" :
	    code == 403 ? " (the user does not own the order)" : code == 404 ? " (no such order)" : "");
	return code == 408 || code == 429 || code >= 500 ? RSORDER_TEMPORARY : RSORDER_PERMANENT;
}

/* one listing entry ({"content":{...},"links":[]}) as a ferry file */
static cJSON *to_file(const tenant *t, const char *user, const cJSON *entry, char *err,
    size_t errlen)
{
	const cJSON *c = get(entry, "content");
	int64_t id, version, size;
	const char *pid = item_str(c, "productId"), *name = item_str(c, "filename");
	const char *md5 = item_str(c, "checksum"), *mime = item_str(c, "mimeType");
	if (item_int(c, "id", &id) < 0 || !pid || !name || !md5 || item_int(c, "filesize", &size) < 0) {
		snprintf(err, errlen, "a listed file has no %s", item_int(c, "id", &id) < 0 ? "id" :
		    !pid ? "productId" : !name ? "filename" : !md5 ? "checksum" : "filesize");
		return NULL;
	}
	if (item_int(c, "version", &version) < 0)
		version = 1;
	char url[4200];
	snprintf(url, sizeof url, "%s/orders/files/%" PRId64, t->rs_order.url, id);
	cJSON *f = cJSON_CreateObject();
	if (!f || !cJSON_AddStringToObject(f, "productId", pid) ||
	    !cJSON_AddNumberToObject(f, "version", (double)version) ||
	    !cJSON_AddStringToObject(f, "name", name) || !cJSON_AddStringToObject(f, "url", url) ||
	    !cJSON_AddNumberToObject(f, "size", (double)size) ||
	    !cJSON_AddStringToObject(f, "md5", md5) ||
	    (mime && !cJSON_AddStringToObject(f, "mimeType", mime)) ||
	    !cJSON_AddNumberToObject(f, "rsOrderFileId", (double)id) ||
	    !cJSON_AddStringToObject(f, "user", user)) {
		cJSON_Delete(f);
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		return NULL;
	}
	return f;
}

static int has_next(const cJSON *page)
{
	const cJSON *l;
	cJSON_ArrayForEach(l, get(page, "links"))
		if (item_str(l, "rel") && strcmp(item_str(l, "rel"), "next") == 0)
			return 1;
	return 0;
}

/* the entries of one page into files; 1 more pages, 0 the last, or an error */
static int take_page(const tenant *t, const char *user, const struct buf *b, cJSON *files,
    int64_t *total, char *err, size_t errlen)
{
	char why[128];
	cJSON *page = item_parse(b->p, b->len, why, sizeof why), *e;
	const cJSON *content = get(page, "content");
	if (!cJSON_IsArray(content)) {
		cJSON_Delete(page);
		snprintf(err, errlen, "the listing is not a page: %s", page ? "no content" : why);
		return RSORDER_PERMANENT;
	}
	cJSON_ArrayForEach(e, content) {
		cJSON *f = to_file(t, user, e, err, errlen);
		if (!f) {
			cJSON_Delete(page);
			return RSORDER_PERMANENT;
		}
		*total += (int64_t)item_num(f, "size", 0);
		cJSON_AddItemToArray(files, f);
	}
	int more = has_next(page) && cJSON_GetArraySize(content) > 0;
	cJSON_Delete(page);
	return more;
}

int rsorder_list_files(const tenant *t, const char *user, int64_t order_id, cJSON **files,
    int64_t *total, char *err, size_t errlen)
{
	struct buf b = { 0 };
	char url[4400];
	int rc = RSORDER_OK;
	*files = cJSON_CreateArray();
	*total = 0;
	char *auth = bearer(t, user);
	if (!auth && errno == EACCES) {
		snprintf(err, errlen, "user %s is not in the tenant's users: no token is signed "
		    "for it", user);
		rc = RSORDER_PERMANENT;
	} else if (!*files || !auth) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		rc = RSORDER_TEMPORARY;
	}
	for (int page = 0; rc == RSORDER_OK && page < MAX_PAGES; page++) {
		snprintf(url, sizeof url, "%s/orders/%" PRId64 "/files/available?page=%d&size=%d&sort=id,asc",
		    t->rs_order.url, order_id, page, t->rs_order.page_size);
		rc = http_get(url, auth, &b, err, errlen);
		if (rc != RSORDER_OK)
			break;
		int more = take_page(t, user, &b, *files, total, err, errlen);
		if (more <= 0) {
			rc = more < 0 ? more : RSORDER_OK;
			break;
		}
	}
	free(b.p);
	jwt_free(auth);
	if (rc != RSORDER_OK) {
		cJSON_Delete(*files);
		*files = NULL;
	}
	return rc;
}
