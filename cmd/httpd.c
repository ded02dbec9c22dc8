/* ferry-httpd: a small HTTP server for operators — a tenant's settings in
 * the REGARDS dynamic-settings shape (read and write), a request's record,
 * the Prometheus metrics, a health check. It keeps no state of its own: the
 * tenant files and the journal are the truth, read afresh on every request.
 * Bearer-token auth on everything but /healthz; loopback by default. */
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

#include "err.h"
#include "journal.h"
#include "report.h"
#include "settings.h"
#include "tenant.h"
#include "util.h"

static const char usage[] =
	"usage: ferry-httpd [-hv] [-j journal] [-t tenants] [-l address] [-p port] [-T tokenfile]";

enum {
	BODY_MAX = 1 << 20,       /* a settings list is a few kB */
	CONN_MAX = 32,
	TIMEOUT_S = 30,
	TOKEN_MIN = 16,
	TOKEN_MAX = 4096,
	NSEG = 4,
};

static volatile sig_atomic_t stop;

struct server {
	const char *jpath, *tdir;
	const char *commands;          /* FERRY_ORDER_COMMANDS: what a PUT may set */
	unsigned char key[crypto_generichash_KEYBYTES];   /* random, for the token hash */
	unsigned char token[crypto_generichash_BYTES];    /* keyed hash of the token */
	pthread_mutex_t put_lock;      /* one settings write at a time: read, merge, rename */
};

/* One HTTP request, from its headers to its end. */
struct call {
	const struct route *route;
	char *seg[NSEG];               /* the path's segments, percent-decoded */
	int nseg;
	char *body;                    /* may hold secrets: wiped when freed */
	size_t len, cap;
	int too_big, replied;
};

struct reply {
	int status;
	const char *type;
	char *body;                    /* malloc'd; NULL = out of memory */
	size_t len;
	const char *allow;             /* 405 */
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
	return sodium_memcmp(got, s->token, sizeof got) == 0;
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
	if (!authorized(s, conn)) {
		reply_error(r, MHD_HTTP_UNAUTHORIZED, "a valid bearer token is required");
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
	return 0;
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
		if (admit(s, c, conn, url, method, &r) < 0)
			return send_reply(conn, c, method, url, &r);
		if (strcmp(c->route->method, "PUT") != 0) {
			c->route->fn(s, c, &r);
			return send_reply(conn, c, method, url, &r);
		}
		return MHD_YES;                   /* the body comes next */
	}
	if (c->replied) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (*upload_size) {
		take(c, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (c->too_big)
		reply_error(&r, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than %d bytes",
		    BODY_MAX);
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
	settings_free_text(c->body, c->len);     /* may hold secrets */
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
	struct sockaddr_storage ss;
	sigset_t block, old;
	char host[NI_MAXHOST];
	int ch;

	err_init("ferry-httpd");
	while ((ch = getopt(argc, argv, "hvj:t:l:p:T:")) != -1) {
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'v': err_verbose(1); break;
		case 'j': s.jpath = optarg; break;
		case 't': s.tdir = optarg; break;
		case 'l': addr = optarg; break;
		case 'p': port = optarg; break;
		case 'T': tokfile = optarg; break;
		default: err_die(EXIT_PERM, "%s", usage);
		}
	}
	if (optind != argc)
		err_die(EXIT_PERM, "%s", usage);
	if (!tokfile)
		err_die(EXIT_PERM, "no token file: give -T file or FERRY_HTTPD_TOKEN_FILE");
	if (sodium_init() < 0)
		err_die(EXIT_TEMP, "unable to initialize libsodium");
	listen_addr(addr, port, &ss);
	load_token(&s, tokfile);
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
	err_info(ss.ss_family == AF_INET6 ? "listening on http://[%s]:%u/" :
	    "listening on http://%s:%u/", host, info ? (unsigned)info->port : 0);

	while (!stop)
		sigsuspend(&old);
	MHD_stop_daemon(d);
	pthread_mutex_destroy(&s.put_lock);
	sodium_memzero(s.token, sizeof s.token);
	err_info("stopped");
	return 0;
}
