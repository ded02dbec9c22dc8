/* ferry-httpd: a small HTTP server for operators — a tenant's settings in
 * the REGARDS dynamic-settings shape (read and write), a request's record,
 * the Prometheus metrics, a health check; and rs-delivery's own settings
 * REST (/settings, lib/rsettings) and its export and import files
 * (/microservice/configuration) for the REGARDS admin UI, the tenant
 * taken from a REGARDS JWT. It keeps no state of its own: the tenant files
 * and the journal are the truth, read afresh on every request. Bearer-token
 * auth on everything but /healthz; loopback by default. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <microhttpd.h>
#include <sodium.h>

#include "args.h"
#include "err.h"
#include "journal.h"
#include "jwt.h"
#include "report.h"
#include "rsettings.h"
#include "settings.h"
#include "tenant.h"
#include "util.h"

static const char usage[] =
	"usage: ferry-httpd [-hv] [-j journal] [-t tenants] [-l address] [-p port] [-T tokenfile]"
	" [-R regards-jwt-secret-file]";

enum {
	BODY_MAX = 1 << 20,       /* a settings list is a few kB */
	CONN_MAX = 32,
	TIMEOUT_S = 30,
	TOKEN_MIN = 16,
	TOKEN_MAX = 4096,
	NSEG = 4,
	NAMES_MAX = 5,            /* rs-delivery has five settings: more names match nothing */
};

static volatile sig_atomic_t stop;

struct server {
	const char *jpath, *tdir;
	const char *commands;          /* FERRY_ORDER_COMMANDS: what a PUT may set */
	unsigned char key[crypto_generichash_KEYBYTES];   /* random, for the token hash */
	unsigned char token[crypto_generichash_BYTES];    /* keyed hash of the token */
	int have_token;                /* -T given: ferry's own endpoints are on */
	char *jwt_key;                 /* REGARDS's jwt.signing-key.HS512 (-R); NULL: /settings off */
	char self[NI_MAXHOST + 16];    /* host:port listened on, for links without a Host */
	pthread_mutex_t put_lock;      /* one settings write at a time: read, merge, rename */
};

/* One HTTP request, from its headers to its end. */
struct call {
	const struct route *route;
	struct MHD_Connection *conn;
	char *tenant;                  /* /settings: the REGARDS token's tenant */
	char *user;                    /* and its subject, for the log */
	char *seg[NSEG];               /* the path's segments, percent-decoded */
	int nseg;
	char *body;                    /* may hold secrets: wiped when freed */
	size_t len, cap;
	int too_big, replied;
	struct MHD_PostProcessor *pp;  /* a multipart upload: its "file" part is the body */
	int has_file, bad_form;
};

struct reply {
	int status;
	const char *type;
	char *body;                    /* malloc'd; NULL = out of memory */
	size_t len;
	const char *allow;             /* 405 */
	const char *disposition;       /* Content-Disposition */
};

typedef void handler_fn(struct server *s, struct call *c, struct reply *r);

/* ---- replies ---- */

static void reply_text(struct reply *r, int status, const char *type, const char *text)
{
	r->status = status;
	r->type = type;
	r->len = strlen(text);
	r->body = strdup(text);
}

/* o as one line + "\n"; o is freed */
static void reply_json(struct reply *r, int status, cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	r->status = status;
	r->type = "application/json";
	r->body = NULL;
	if (!s)
		return;
	r->len = strlen(s) + 1;
	if ((r->body = malloc(r->len + 1)))
		snprintf(r->body, r->len + 1, "%s\n", s);
	free(s);
}

/* {"error":"..."} */
static void reply_error(struct reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct reply *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cJSON *o = cJSON_CreateObject();
	if (o)
		cJSON_AddStringToObject(o, "error", msg);
	reply_json(r, status, o);
}

/* REGARDS's error body, a ServerErrorResponse: {"messages":["..."]} */
static void reply_messages(struct reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_messages(struct reply *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "messages");
	cJSON *m = cJSON_CreateString(msg);
	if (a && m)
		cJSON_AddItemToArray(a, m);
	else
		cJSON_Delete(m);
	r->status = status;
	r->type = "application/json";
	r->body = rsettings_gson_escape(o && a ? cJSON_PrintUnformatted(o) : NULL);
	r->len = r->body ? strlen(r->body) : 0;
	cJSON_Delete(o);
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct call *c,
    const char *method, const char *url, struct reply *r)
{
	c->replied = 1;
	if (!r->body) {
		err_error("%s %s: %s", method, url, strerror(ENOMEM));
		return MHD_NO;
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(r->len, r->body,
	    MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(r->body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r->status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    "Bearer realm=\"ferry\"");
	if (r->allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (r->disposition)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, r->disposition);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	/* the raw path: percent-encoded, never a token or a secret */
	err_info("%s %s %d", method, url, r->status);
	return ret;
}

/* ---- the journal ---- */

/* Open the journal for one request (SQLite: one connection per thread).
 * An absent journal is not created: that is the stages' job. */
static journal *open_journal(const struct server *s, struct reply *r)
{
	char err[512];
	int temp = 0;
	journal *j = NULL;
	struct stat st;
	if (stat(s->jpath, &st) < 0) {
		snprintf(err, sizeof err, "journal %s: %s", s->jpath, strerror(errno));
		temp = 1;
	} else if (journal_open(s->jpath, JOURNAL_SYNC_NORMAL, &j, err, sizeof err, &temp) == 0) {
		return j;
	}
	err_error("%s", err);
	reply_error(r, temp ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR,
	    "%s", err);
	return NULL;
}

static void journal_failed(journal *j, struct reply *r)
{
	err_error("%s", journal_error(j));
	reply_error(r, journal_temporary(j) ? MHD_HTTP_SERVICE_UNAVAILABLE :
	    MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", journal_error(j));
}

/* ---- handlers ---- */

/* The journal opens and answers a read (the lookup of a request that
 * cannot exist touches the request table and its index). No detail in the
 * body: this endpoint needs no token. */
static void h_health(struct server *s, struct call *c, struct reply *r)
{
	struct jrequest req;
	(void)c;
	journal *j = open_journal(s, r);
	int rc = j ? journal_get(j, "", "", &req) : -1;
	if (j && rc < 0)
		err_error("%s", journal_error(j));
	if (rc >= 0)
		journal_request_clear(&req);
	journal_close(j);
	free(r->body);
	if (rc < 0)
		reply_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "unavailable\n");
	else
		reply_text(r, MHD_HTTP_OK, "text/plain", "ok\n");
}

static void h_metrics(struct server *s, struct call *c, struct reply *r)
{
	char *text = NULL;
	size_t len = 0;
	(void)c;
	journal *j = open_journal(s, r);
	if (!j)
		return;
	FILE *f = open_memstream(&text, &len);
	int rc = f ? report_metrics(j, util_now_ms(), f) : -2, werr = 0;
	if (f) {
		werr = ferror(f);
		werr |= fclose(f) == EOF;
	}
	if (rc == -1)
		journal_failed(j, r);
	else if (rc < 0 || werr)
		reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", strerror(ENOMEM));
	if (rc < 0 || werr) {
		free(text);
	} else {
		r->status = MHD_HTTP_OK;
		r->type = "text/plain; version=0.0.4";
		r->body = text;
		r->len = len;
	}
	journal_close(j);
}

/* status, history and responses as `ferry-journal -J show`, plus the
 * progress line of `ferry-journal -J status` */
static void h_request(struct server *s, struct call *c, struct reply *r)
{
	struct jrequest req;
	journal *j = open_journal(s, r);
	if (!j)
		return;
	int rc = journal_get(j, c->seg[1], c->seg[2], &req);
	if (rc < 0) {
		journal_failed(j, r);
	} else if (rc == 0) {
		reply_error(r, MHD_HTTP_NOT_FOUND, "no such request");
	} else {
		cJSON *o = report_show(j, &req);
		if (!o && *journal_error(j)) {
			journal_failed(j, r);
		} else {
			if (o)
				cJSON_AddItemToObject(o, "progress", report_status(&req, util_now_ms()));
			reply_json(r, MHD_HTTP_OK, o);       /* NULL: out of memory */
		}
	}
	journal_request_clear(&req);
	journal_close(j);
}

static int tenant_arg(struct call *c, struct reply *r)
{
	const char *t = c->seg[1];
	if (tenant_name_ok(t))
		return 0;
	reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid tenant name \"%.*s\"",
	    (int)util_utf8_cut(t, strlen(t), 64), t);
	return -1;
}

static int settings_status(int rc)
{
	return rc == SETTINGS_BAD ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* the export of the tenant's file text */
static void export(struct server *s, const char *t, const char *text, size_t len, unsigned mode,
    int status, struct reply *r)
{
	char path[4096], err[1024], *out = NULL;
	settings_path(s->tdir, t, path, sizeof path);
	int rc = settings_export(t, path, text, len, mode, &out, err, sizeof err);
	if (rc < 0) {
		err_error("%s", err);
		reply_error(r, settings_status(rc), "%s", err);
		return;
	}
	r->status = status;
	r->type = "application/json";
	r->body = out;
	r->len = strlen(out);
}

static void h_settings_get(struct server *s, struct call *c, struct reply *r)
{
	char err[1024], *buf = NULL;
	size_t len = 0;
	unsigned mode = 0;
	if (tenant_arg(c, r) < 0)
		return;
	if (settings_read(s->tdir, c->seg[1], &buf, &len, &mode, err, sizeof err) < 0) {
		if (errno == ENOENT) {
			reply_error(r, MHD_HTTP_NOT_FOUND, "no such tenant");
			return;
		}
		err_error("%s", err);
		reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
		return;
	}
	export(s, c->seg[1], buf, len, mode, MHD_HTTP_OK, r);
	settings_free_text(buf, len);
}

/* read, merge, check, write, under the lock; errors leave the file as it was */
static void put_locked(struct server *s, struct call *c, struct reply *r)
{
	char path[4096], err[1024], *cur = NULL, *out = NULL;
	size_t curlen = 0, outlen = 0;
	unsigned mode = 0;
	int created = 0;
	const char *t = c->seg[1];
	settings_path(s->tdir, t, path, sizeof path);
	if (settings_read(s->tdir, t, &cur, &curlen, &mode, err, sizeof err) < 0 && errno != ENOENT) {
		err_error("%s", err);
		reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
		return;
	}
	int rc = settings_import(t, path, cur, curlen, c->body ? c->body : "", c->len, s->commands,
	    &out, &outlen, err, sizeof err);
	if (rc < 0) {
		if (rc != SETTINGS_BAD)
			err_error("%s", err);
		reply_error(r, settings_status(rc), "%s", err);
	} else if (settings_write(s->tdir, t, out, outlen, &created, err, sizeof err) < 0) {
		err_error("%s", err);
		reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
	} else {
		err_log(ERR_INFO, t, "settings %s %s", created ? "created in" : "written to", path);
		export(s, t, out, outlen, 0100600, created ? MHD_HTTP_CREATED : MHD_HTTP_OK, r);
	}
	settings_free_text(cur, curlen);
	settings_free_text(out, outlen);
}

static void h_settings_put(struct server *s, struct call *c, struct reply *r)
{
	if (tenant_arg(c, r) < 0)
		return;
	pthread_mutex_lock(&s->put_lock);
	put_locked(s, c, r);
	pthread_mutex_unlock(&s->put_lock);
}

static char *decode(const char *s, const char *end);

/* ---- rs-delivery's settings REST (REGARDS DynamicTenantSettingController) ---- */

/* the first value of a comma-separated forwarded header, if it is made of
 * chars (a proxy's header, but a client may send one: never trusted beyond
 * building links) */
static int forwarded(struct MHD_Connection *conn, const char *name, const char *chars,
    char *out, size_t n)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
	if (!v)
		return 0;
	while (*v == ' ')
		v++;
	size_t len = strcspn(v, ", ");
	if (len == 0 || len >= n || strspn(v, chars) < len)
		return 0;
	memcpy(out, v, len);
	out[len] = '\0';
	return 1;
}

/* The scheme, host and prefix links start with, as Spring's
 * ForwardedHeaderFilter (which REGARDS registers) and
 * ServletUriComponentsBuilder make them: X-Forwarded-Proto, -Host, -Port
 * and -Prefix when present, else http and the Host header; the scheme's
 * default port left out. */
static void link_base(const struct server *s, struct MHD_Connection *conn, char *out, size_t n)
{
	static const char hostc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_:[]";
	char proto[8] = "http", host[256], port[8] = "", prefix[256] = "";
	if (forwarded(conn, "X-Forwarded-Proto", "htps", proto, sizeof proto) &&
	    strcmp(proto, "http") != 0 && strcmp(proto, "https") != 0)
		strcpy(proto, "http");
	if (!forwarded(conn, "X-Forwarded-Host", hostc, host, sizeof host) &&
	    !forwarded(conn, MHD_HTTP_HEADER_HOST, hostc, host, sizeof host))
		util_strlcpy(host, s->self, sizeof host);
	/* host[:port], IPv6 literals in brackets */
	char *colon = strrchr(host, ':');
	if (colon && (!strchr(host, ']') || colon > strchr(host, ']'))) {
		util_strlcpy(port, colon + 1, sizeof port);
		*colon = '\0';
	}
	forwarded(conn, "X-Forwarded-Port", "0123456789", port, sizeof port);
	forwarded(conn, "X-Forwarded-Prefix",
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_~/%", prefix,
	    sizeof prefix);
	size_t pl = strlen(prefix);
	while (pl > 0 && prefix[pl - 1] == '/')
		prefix[--pl] = '\0';
	if (*prefix && *prefix != '/')
		*prefix = '\0';
	int dflt = !*port || (strcmp(proto, "http") == 0 && strcmp(port, "80") == 0) ||
	    (strcmp(proto, "https") == 0 && strcmp(port, "443") == 0);
	snprintf(out, n, "%s://%s%s%s%s", proto, host, dflt ? "" : ":", dflt ? "" : port, prefix);
}

/* ?names= as Spring binds a Set<String>: one value is split at commas and
 * each part trimmed, several values are taken as they are; '+' is a space. */
struct names {
	char *v[NAMES_MAX + 1];
	size_t n;
	int given;                     /* a non-empty set was asked for */
};

static void names_add(struct names *ns, const char *name, size_t len)
{
	static const char *const known[] = { "s3_server", "delivery_bucket", "request_ttl",
		"build_bucket", "order_size_limit_bytes" };
	ns->given = 1;
	for (size_t i = 0; i < NAMES_MAX; i++)
		if (strlen(known[i]) == len && memcmp(known[i], name, len) == 0 && ns->n < NAMES_MAX)
			ns->v[ns->n++] = (char *)known[i];
}

static char *query_decode(const char *raw)
{
	char *t = strdup(raw);
	for (char *p = t; p && *p; p++)
		if (*p == '+')
			*p = ' ';
	char *d = t ? decode(t, t + strlen(t)) : NULL;
	free(t);
	return d;
}

struct names_ctx {
	int count;
	char *values[64];
};

static enum MHD_Result names_arg(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct names_ctx *nc = cls;
	(void)kind;
	char *k = key ? query_decode(key) : NULL;
	if (k && strcmp(k, "names") == 0 && nc->count < 64)
		nc->values[nc->count++] = query_decode(value ? value : "");
	free(k);
	return MHD_YES;
}

static void names_of(struct MHD_Connection *conn, struct names *ns)
{
	struct names_ctx nc = { 0 };
	memset(ns, 0, sizeof *ns);
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, names_arg, &nc);
	for (int i = 0; i < nc.count; i++) {
		const char *v = nc.values[i] ? nc.values[i] : "";
		if (nc.count > 1) {
			names_add(ns, v, strlen(v));
			continue;
		}
		for (const char *p = v; *v; p += *p == ',') {
			size_t len = strcspn(p, ",");
			const char *a = p, *b = p + len;
			while (a < b && (unsigned char)*a <= ' ')
				a++;
			while (b > a && (unsigned char)b[-1] <= ' ')
				b--;
			names_add(ns, a, (size_t)(b - a));
			p += len;
			if (!*p)
				break;
		}
	}
	for (int i = 0; i < nc.count; i++)
		free(nc.values[i]);
	if (ns->given && ns->n == 0)
		ns->v[ns->n++] = "";     /* a set of unknown names: nothing matches */
}

static int rsettings_status(int rc)
{
	switch (rc) {
	case RSETTINGS_UNKNOWN: return MHD_HTTP_NOT_FOUND;
	case RSETTINGS_FORBIDDEN: return MHD_HTTP_FORBIDDEN;
	case RSETTINGS_INVALID: return 422;
	case RSETTINGS_BODY: return MHD_HTTP_BAD_REQUEST;
	default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

/* the token's tenant file; -1 replied */
static int rs_read(struct server *s, struct call *c, char **buf, size_t *len, unsigned *mode,
    struct reply *r)
{
	char err[1024];
	if (settings_read(s->tdir, c->tenant, buf, len, mode, err, sizeof err) == 0)
		return 0;
	if (errno == ENOENT) {
		reply_messages(r, MHD_HTTP_NOT_FOUND, "tenant %s has no settings in ferry", c->tenant);
	} else {
		err_error("%s", err);
		reply_messages(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
	}
	return -1;
}

static void rs_body(struct reply *r, int status, char *out)
{
	r->status = status;
	r->type = "application/json";
	r->body = out;
	r->len = out ? strlen(out) : 0;
}

/* a read's answer: 200 with out, or the error (logged); rc */
static int rs_answer(struct reply *r, int rc, const char *err, char *out)
{
	if (rc < 0) {
		err_error("%s", err);
		reply_messages(r, rsettings_status(rc), "%s", err);
	} else {
		rs_body(r, MHD_HTTP_OK, out);
	}
	return rc;
}

static void h_rs_get(struct server *s, struct call *c, struct reply *r)
{
	char err[1024], base[1024], *buf = NULL, *out = NULL, path[4096];
	size_t len = 0;
	unsigned mode = 0;
	struct names ns;
	if (rs_read(s, c, &buf, &len, &mode, r) < 0)
		return;
	names_of(c->conn, &ns);
	link_base(s, c->conn, base, sizeof base);
	settings_path(s->tdir, c->tenant, path, sizeof path);
	int rc = rsettings_get(c->tenant, path, buf, len, mode, (const char *const *)ns.v, ns.n,
	    base, &out, err, sizeof err);
	settings_free_text(buf, len);
	rs_answer(r, rc, err, out);
}

/* PUT (body) or DELETE (no body) of /settings/{name}, under the lock */
static void rs_change(struct server *s, struct call *c, struct reply *r, int put)
{
	char err[1024], base[1024], path[4096], *cur = NULL, *file = NULL, *out = NULL;
	size_t curlen = 0, filelen = 0;
	unsigned mode = 0;
	int created = 0, rc;
	const char *name = c->seg[1];
	if (rs_read(s, c, &cur, &curlen, &mode, r) < 0)
		return;
	link_base(s, c->conn, base, sizeof base);
	settings_path(s->tdir, c->tenant, path, sizeof path);
	if (put)
		rc = rsettings_update(c->tenant, path, cur, curlen, mode, name, c->body ? c->body : "",
		    c->len, base, &file, &filelen, &out, err, sizeof err);
	else
		rc = rsettings_reset(c->tenant, path, cur, curlen, mode, name, base, &file, &filelen,
		    &out, err, sizeof err);
	if (rc < 0) {
		if (rc == RSETTINGS_CURRENT || rc == RSETTINGS_NOMEM)
			err_error("%s", err);
		reply_messages(r, rsettings_status(rc), "%s", err);
	} else if (file && settings_write(s->tdir, c->tenant, file, filelen, &created, err,
	    sizeof err) < 0) {
		err_error("%s", err);
		reply_messages(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
		free(out);
	} else {
		if (file)
			err_log(ERR_INFO, c->tenant, "setting %s %s by %s in %s", name,
			    put ? "updated" : "reset", c->user, path);
		rs_body(r, MHD_HTTP_OK, out);
	}
	settings_free_text(cur, curlen);
	settings_free_text(file, filelen);
}

static void h_rs_put(struct server *s, struct call *c, struct reply *r)
{
	pthread_mutex_lock(&s->put_lock);
	rs_change(s, c, r, 1);
	pthread_mutex_unlock(&s->put_lock);
}

static void h_rs_reset(struct server *s, struct call *c, struct reply *r)
{
	pthread_mutex_lock(&s->put_lock);
	rs_change(s, c, r, 0);
	pthread_mutex_unlock(&s->put_lock);
}

/* ---- the admin UI's export and import (REGARDS ModuleManagerController) ---- */

static void h_rs_export(struct server *s, struct call *c, struct reply *r)
{
	char err[1024], path[4096], *buf = NULL, *out = NULL;
	size_t len = 0;
	unsigned mode = 0;
	if (rs_read(s, c, &buf, &len, &mode, r) < 0)
		return;
	settings_path(s->tdir, c->tenant, path, sizeof path);
	int rc = rsettings_config_export(c->tenant, path, buf, len, mode, &out, err, sizeof err);
	settings_free_text(buf, len);
	if (rs_answer(r, rc, err, out) == 0)
		r->disposition = "attachment; filename=\"config-rs-delivery.json\"";
}

static void import_locked(struct server *s, struct call *c, struct reply *r)
{
	char err[1024], path[4096], *cur = NULL, *file = NULL, *report = NULL;
	size_t curlen = 0, filelen = 0;
	unsigned mode = 0;
	int created = 0, status = 0;
	if (rs_read(s, c, &cur, &curlen, &mode, r) < 0)
		return;
	settings_path(s->tdir, c->tenant, path, sizeof path);
	int rc = rsettings_config_import(c->tenant, path, cur, curlen, mode, c->body ? c->body : "",
	    c->len, &file, &filelen, &status, &report, err, sizeof err);
	if (rc < 0) {
		err_error("%s: configuration import by %s: %s", c->tenant, c->user, err);
		reply_messages(r, rsettings_status(rc), "%s", err);
	} else if (file && settings_write(s->tdir, c->tenant, file, filelen, &created, err,
	    sizeof err) < 0) {
		err_error("%s", err);
		reply_messages(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
		free(report);
	} else {
		err_log(ERR_INFO, c->tenant, "configuration imported by %s: %d, %s", c->user, status,
		    file ? path : "nothing changed");
		if (report)
			err_log(ERR_WARNING, c->tenant, "import report: %s", report);
		rs_body(r, status, report ? report : strdup(""));
	}
	settings_free_text(cur, curlen);
	settings_free_text(file, filelen);
}

static void h_rs_import(struct server *s, struct call *c, struct reply *r)
{
	if (!c->has_file) {
		/* MissingServletRequestPartException */
		reply_messages(r, MHD_HTTP_BAD_REQUEST, "Required part 'file' is not present.");
		return;
	}
	pthread_mutex_lock(&s->put_lock);
	import_locked(s, c, r);
	pthread_mutex_unlock(&s->put_lock);
}

/* ---- routing ---- */

static const struct route {
	const char *pat[NSEG];         /* NULL: any segment */
	int nseg;
	const char *method;
	handler_fn *fn;
	const char *allow;
} routes[] = {
	{ { "metrics" }, 1, "GET", h_metrics, "GET, HEAD" },
	{ { "tenants", NULL, "settings" }, 3, "GET", h_settings_get, "GET, HEAD, PUT" },
	{ { "tenants", NULL, "settings" }, 3, "PUT", h_settings_put, "GET, HEAD, PUT" },
	{ { "requests", NULL, NULL }, 3, "GET", h_request, "GET, HEAD" },
	{ { "settings" }, 1, "GET", h_rs_get, "GET, HEAD" },
	{ { "settings", NULL }, 2, "PUT", h_rs_put, "PUT, DELETE" },
	{ { "settings", NULL }, 2, "DELETE", h_rs_reset, "PUT, DELETE" },
	{ { "microservice", "configuration" }, 2, "GET", h_rs_export, "GET, HEAD, POST" },
	{ { "microservice", "configuration" }, 2, "POST", h_rs_import, "GET, HEAD, POST" },
};
enum { NROUTES = sizeof routes / sizeof *routes };

static const struct route health = { { "healthz" }, 1, "GET", h_health, "GET, HEAD" };

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = (char)(ch | 0x20);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* one segment of [s, end), %XX decoded; NULL when malformed or %00 */
static char *decode(const char *s, const char *end)
{
	char *out = malloc((size_t)(end - s) + 1), *o = out;
	for (; out && s < end; s++) {
		int hi, lo;
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		if (end - s < 3 || (hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0 ||
		    (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		*o++ = (char)(hi << 4 | lo);
		s += 2;
	}
	if (out)
		*o = '\0';
	return out;
}

/* url split at '/' into c->seg; 1 done, 0 too many segments, -1 bad */
static int split(struct call *c, const char *url)
{
	if (*url != '/')
		return -1;
	for (const char *s = url + 1;; ) {
		const char *end = strchr(s, '/');
		if (!end)
			end = s + strlen(s);
		if (c->nseg == NSEG)
			return 0;
		if (!(c->seg[c->nseg] = decode(s, end)))
			return -1;
		c->nseg++;
		if (!*end)
			return 1;
		s = end + 1;
	}
}

static int path_matches(const struct route *rt, const struct call *c)
{
	if (rt->nseg != c->nseg)
		return 0;
	for (int i = 0; i < c->nseg; i++)
		if (rt->pat[i] ? strcmp(rt->pat[i], c->seg[i]) != 0 : !*c->seg[i])
			return 0;
	return 1;
}

/* HEAD is a GET whose body MHD leaves out */
static int method_matches(const struct route *rt, const char *method)
{
	return strcmp(rt->method, method) == 0 ||
	    (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
}

/* the route for the call, or NULL and a 404/405 reply */
static const struct route *find_route(struct call *c, const char *method, struct reply *r)
{
	const char *allow = NULL;
	for (int i = 0; i < NROUTES; i++) {
		if (!path_matches(&routes[i], c))
			continue;
		if (method_matches(&routes[i], method))
			return &routes[i];
		allow = routes[i].allow;
	}
	if (allow) {
		reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here", method);
		r->allow = allow;
	} else {
		reply_error(r, MHD_HTTP_NOT_FOUND, "no such resource");
	}
	return NULL;
}

/* The token compared in constant time: keyed hashes of both have one
 * length, so neither the length nor the bytes of the token leak. */
static int authorized(const struct server *s, struct MHD_Connection *conn)
{
	unsigned char got[crypto_generichash_BYTES];
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	for (h += 7; *h == ' '; h++)
		;
	crypto_generichash(got, sizeof got, (const unsigned char *)h, strlen(h), s->key,
	    sizeof s->key);
	return s->have_token && sodium_memcmp(got, s->token, sizeof got) == 0;
}

static int is_config_path(const char *url)
{
	return strcmp(url, "/microservice/configuration") == 0;
}

static int is_rs_path(const char *url)
{
	return strcmp(url, "/settings") == 0 || strncmp(url, "/settings/", 10) == 0 ||
	    is_config_path(url);
}

/* A REGARDS caller of /settings, as its security filters judge one
 * (PublicAuthenticationFilter, JWTAuthenticationFilter, JWTService
 * .parseToken, the voters of @ResourceAccess(role = ADMIN), PROJECT_ADMIN for
 * /microservice/configuration): no bearer token is PUBLIC with a scope
 * (403) and nobody without (401); a token that fails parseToken is 401; a
 * role below the endpoint's is 403. The tenant is the token's,
 * never the scope's. 0 admitted (c->tenant, c->user), -1 replied. */
static int regards_auth(struct server *s, struct call *c, struct MHD_Connection *conn,
    const char *url, const char *method, struct reply *r)
{
	struct jwt_user u;
	const char *what;
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncmp(h, "Bearer", 6) != 0) {
		const char *scope = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "scope");
		if (!scope || !*scope)
			scope = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "scope");
		if (scope && *scope)
			reply_messages(r, MHD_HTTP_FORBIDDEN, "Access is denied");
		else
			reply_messages(r, MHD_HTTP_UNAUTHORIZED,
			    "[REGARDS PUBLIC FILTER] Missing 'scope' header or param %s@%s", url, method);
		return -1;
	}
	for (h += 6; *h && (unsigned char)*h <= ' '; h++)
		;
	int rc = jwt_regards_parse((const unsigned char *)s->jwt_key, strlen(s->jwt_key), h,
	    util_now_ms(), &u, &what);
	if (rc != JWT_VALID) {
		static const char *const why[] = { "", "malformed", "not HS512", "bad signature",
			"expired", "not valid yet", "missing claim" };
		if (rc < 0)
			reply_messages(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		else
			reply_messages(r, MHD_HTTP_UNAUTHORIZED, "invalid REGARDS token: %s (%s)",
			    why[rc], what);
		return -1;
	}
	if (!(is_config_path(url) ? jwt_role_project_admin(u.role) : jwt_role_admin(u.role)) ||
	    !tenant_name_ok(u.tenant)) {
		/* the role's rights, or a tenant ferry cannot have */
		reply_messages(r, MHD_HTTP_FORBIDDEN, "Access is denied");
		jwt_user_clear(&u);
		return -1;
	}
	c->tenant = u.tenant;
	c->user = u.login;
	u.tenant = u.login = NULL;
	jwt_user_clear(&u);
	return 0;
}

/* At the headers: health, auth, route, body size. 0 go on, -1 replied
 * (r holds the reply). */
static int admit(struct server *s, struct call *c, struct MHD_Connection *conn,
    const char *url, const char *method, struct reply *r)
{
	if (strcmp(url, "/healthz") == 0) {
		c->nseg = 1;
		if (!method_matches(&health, method)) {
			reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here", method);
			r->allow = health.allow;
			return -1;
		}
		c->route = &health;
		return 0;
	}
	if (s->jwt_key && is_rs_path(url)) {
		if (regards_auth(s, c, conn, url, method, r) < 0)
			return -1;
	} else if (!authorized(s, conn)) {
		reply_error(r, MHD_HTTP_UNAUTHORIZED, "a valid bearer token is required");
		return -1;
	}
	if (!s->jwt_key && is_rs_path(url)) {
		reply_error(r, MHD_HTTP_NOT_FOUND, "no such resource");
		return -1;
	}
	int rc = split(c, url);
	if (rc < 0) {
		reply_error(r, MHD_HTTP_BAD_REQUEST, "malformed path");
		return -1;
	}
	if (!(c->route = rc ? find_route(c, method, r) : NULL)) {
		if (!rc)
			reply_error(r, MHD_HTTP_NOT_FOUND, "no such resource");
		return -1;
	}
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > BODY_MAX) {
		reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than %d bytes", BODY_MAX);
		return -1;
	}
	if (c->route->fn == h_rs_import) {
		/* @PostMapping(consumes = MULTIPART_FORM_DATA) */
		const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_TYPE);
		if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0) {
			reply_messages(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "Content-Type '%.100s' is "
			    "not supported", ct ? ct : "");
			return -1;
		}
	}
	return 0;
}

static void take(struct call *c, const char *data, size_t n);

/* a part of a multipart body: the one named "file" is kept as the body */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *filename, const char *type, const char *encoding, const char *data,
    uint64_t off, size_t size)
{
	struct call *c = cls;
	(void)kind, (void)filename, (void)type, (void)encoding, (void)off;
	if (key && strcmp(key, "file") == 0) {
		c->has_file = 1;
		take(c, data, size);
	}
	return MHD_YES;
}

/* keep the body, up to BODY_MAX; beyond that it is read and dropped */
static void take(struct call *c, const char *data, size_t n)
{
	if (c->too_big || n > BODY_MAX - c->len) {
		c->too_big = 1;
		return;
	}
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + n)
			cap *= 2;
		/* not realloc: the old buffer may hold a secret, wipe it */
		char *b = malloc(cap);
		if (!b) {
			c->too_big = 1;
			return;
		}
		if (c->len)
			memcpy(b, c->body, c->len);
		settings_free_text(c->body, c->len);
		c->body = b;
		c->cap = cap;
	}
	memcpy(c->body + c->len, data, n);
	c->len += n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload, size_t *upload_size,
    void **con_cls)
{
	struct server *s = cls;
	struct call *c = *con_cls;
	struct reply r = { .status = 0 };
	(void)version;
	if (!c) {
		if (!(*con_cls = c = calloc(1, sizeof *c)))
			return MHD_NO;
		c->conn = conn;
		if (admit(s, c, conn, url, method, &r) < 0)
			return send_reply(conn, c, method, url, &r);
		if (strcmp(c->route->method, "PUT") != 0 && strcmp(c->route->method, "POST") != 0) {
			c->route->fn(s, c, &r);
			return send_reply(conn, c, method, url, &r);
		}
		if (c->route->fn == h_rs_import &&
		    !(c->pp = MHD_create_post_processor(conn, 16 * 1024, on_part, c))) {
			reply_messages(&r, MHD_HTTP_BAD_REQUEST, "the multipart body has no boundary");
			return send_reply(conn, c, method, url, &r);
		}
		return MHD_YES;                   /* the body comes next */
	}
	if (c->replied) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!c->pp)
			take(c, upload, *upload_size);
		else if (MHD_post_process(c->pp, upload, *upload_size) != MHD_YES)
			c->bad_form = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (c->too_big)
		reply_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than %d bytes",
		    BODY_MAX);
	else if (c->bad_form)
		reply_messages(&r, MHD_HTTP_BAD_REQUEST, "the multipart body cannot be read");
	else
		c->route->fn(s, c, &r);
	return send_reply(conn, c, method, url, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode why)
{
	struct call *c = *con_cls;
	(void)cls, (void)conn, (void)why;
	if (!c)
		return;
	for (int i = 0; i < c->nseg; i++)
		free(c->seg[i]);
	if (c->pp)
		MHD_destroy_post_processor(c->pp);
	settings_free_text(c->body, c->len);     /* may hold secrets */
	free(c->tenant);
	free(c->user);
	free(c);
	*con_cls = NULL;
}

/* the path as sent: segments are split first and decoded one by one, so
 * that %2F stays inside its segment */
static size_t raw_path(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls, (void)conn;
	return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[1024];
	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\r\n")] = '\0';
	err_warn("libmicrohttpd: %s", msg);
}

/* ---- setup ---- */

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int token_ok(const char *t, size_t n)
{
	static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-._~+/";
	size_t i = strspn(t, ok);
	while (i < n && t[i] == '=')
		i++;
	return i == n && n >= TOKEN_MIN;
}

static void load_token(struct server *s, const char *file)
{
	char buf[TOKEN_MAX + 2];
	struct stat st;
	ssize_t n = 0, r;
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0)
		err_die(EXIT_PERM, "token file %s: %s", file, strerror(errno));
	if (!S_ISREG(st.st_mode))
		err_die(EXIT_PERM, "token file %s: not a regular file", file);
	if (st.st_mode & (S_IRGRP | S_IROTH))
		err_die(EXIT_PERM, "token file %s: readable by group/others (mode %04o); chmod 600 it",
		    file, (unsigned)st.st_mode & 07777);
	while (n < TOKEN_MAX + 1 && ((r = read(fd, buf + n, (size_t)(TOKEN_MAX + 1 - n))) > 0 ||
	    (r < 0 && errno == EINTR)))
		n += r > 0 ? r : 0;
	if (n < 0 || r < 0)
		err_die(EXIT_PERM, "token file %s: %s", file, strerror(errno));
	close(fd);
	while (n > 0 && strchr(" \t\r\n", buf[n - 1]))
		n--;
	buf[n] = '\0';
	if (n > TOKEN_MAX || !token_ok(buf, (size_t)n))
		err_die(EXIT_PERM, "token file %s: must hold one token of %d to %d characters of"
		    " A-Z a-z 0-9 - . _ ~ + / (then = padding)", file, TOKEN_MIN, TOKEN_MAX);
	randombytes_buf(s->key, sizeof s->key);
	crypto_generichash(s->token, sizeof s->token, (const unsigned char *)buf, (size_t)n, s->key,
	    sizeof s->key);
	s->have_token = 1;
	sodium_memzero(buf, sizeof buf);
}

static int loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	return memcmp(a, &in6addr_loopback, sizeof *a) == 0;
}

/* a numeric address and the port into ss */
static void listen_addr(const char *addr, const char *port, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
		.ai_socktype = SOCK_STREAM }, *ai;
	char *end;
	long p = strtol(port, &end, 10);
	if (*end || end == port || p < 0 || p > 65535)
		err_die(EXIT_PERM, "port %s: not a port number (0 to 65535)", port);
	int rc = getaddrinfo(addr, port, &hints, &ai);
	if (rc != 0)
		err_die(EXIT_PERM, "address %s: not a numeric IPv4 or IPv6 address (%s)", addr,
		    gai_strerror(rc));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
}

static struct MHD_Daemon *start(struct server *s, const struct sockaddr_storage *ss)
{
	unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_ERROR_LOG | (ss->ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	/* the port again, only for libmicrohttpd's messages: SOCK_ADDR binds */
	uint16_t port = ntohs(ss->ss_family == AF_INET6 ?
	    ((const struct sockaddr_in6 *)ss)->sin6_port : ((const struct sockaddr_in *)ss)->sin_port);
	return MHD_start_daemon(flags, port, NULL, NULL, on_request, s,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,     /* first, for every message */
	    MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_MAX,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TIMEOUT_S,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	    MHD_OPTION_UNESCAPE_CALLBACK, raw_path, NULL,
	    MHD_OPTION_END);
}

int main(int argc, char **argv)
{
	struct server s = {
		.jpath = util_env("FERRY_JOURNAL", "/var/lib/ferry/journal.db"),
		.tdir = util_env("FERRY_TENANTS", "/etc/ferry/tenants"),
		.commands = util_env("FERRY_ORDER_COMMANDS", NULL),
	};
	const char *addr = util_env("FERRY_HTTPD_LISTEN", "127.0.0.1");
	const char *port = util_env("FERRY_HTTPD_PORT", "8484");
	const char *tokfile = util_env("FERRY_HTTPD_TOKEN_FILE", NULL);
	const char *jwtfile = util_env("FERRY_REGARDS_JWT_SECRET_FILE", NULL);
	struct sockaddr_storage ss;
	sigset_t block, old;
	char host[NI_MAXHOST];
	int ch;

	err_init("ferry-httpd");
	args_init(argc, argv);
	while ((ch = getopt(argc, argv, "hvj:t:l:p:T:R:")) != -1) {
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'v': err_verbose(1); break;
		case 'j': s.jpath = optarg; break;
		case 't': s.tdir = optarg; break;
		case 'l': addr = optarg; break;
		case 'p': port = optarg; break;
		case 'T': tokfile = optarg; break;
		case 'R': jwtfile = optarg; break;
		default: args_usage(usage);
		}
	}
	if (optind != argc)
		args_usage(usage);
	if (!tokfile && !jwtfile)
		err_die(EXIT_PERM, "no token file: give -T file or FERRY_HTTPD_TOKEN_FILE "
		    "(or -R file or FERRY_REGARDS_JWT_SECRET_FILE for /settings alone)");
	if (sodium_init() < 0)
		err_die(EXIT_TEMP, "unable to initialize libsodium");
	listen_addr(addr, port, &ss);
	if (tokfile)
		load_token(&s, tokfile);
	if (jwtfile) {
		char err[4200];
		if (jwt_secret_read(jwtfile, &s.jwt_key, err, sizeof err) < 0)
			err_die(EXIT_PERM, "REGARDS JWT secret file %s", err);
	}
	if (pthread_mutex_init(&s.put_lock, NULL) != 0)
		err_die(EXIT_TEMP, "unable to create a mutex");

	/* the server's threads inherit the blocked signals: only this thread
	 * takes SIGTERM/SIGINT/SIGHUP, in sigsuspend below */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	if (util_signals(&stop) < 0 || sigprocmask(SIG_BLOCK, &block, &old) < 0)
		err_die(EXIT_TEMP, "unable to set signal handlers: %s", strerror(errno));
	struct MHD_Daemon *d = start(&s, &ss);
	if (!d)
		err_die(EXIT_TEMP, "unable to listen on %s port %s: %s", addr, port,
		    strerror(errno ? errno : EADDRINUSE));
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	getnameinfo((const struct sockaddr *)&ss, sizeof ss, host, sizeof host, NULL, 0,
	    NI_NUMERICHOST);
	if (!loopback((const struct sockaddr *)&ss))
		err_warn("listening on %s, not a loopback address: without TLS the token and the"
		    " settings cross the network in clear", host);
	snprintf(s.self, sizeof s.self, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
	    info ? (unsigned)info->port : 0);
	err_info("listening on http://%s/", s.self);

	while (!stop)
		sigsuspend(&old);
	MHD_stop_daemon(d);
	pthread_mutex_destroy(&s.put_lock);
	sodium_memzero(s.token, sizeof s.token);
	jwt_free(s.jwt_key);
	err_info("stopped");
	return 0;
}
