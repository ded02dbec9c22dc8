/* fetch: the transfer engine (see fetch.h). A fixed set of slots, each one
 * easy handle, takes the remote files in turn, so memory and descriptors stay
 * bounded for any order size. Redirects are followed here, not by libcurl,
 * so every hop is checked against allowed_hosts before it is requested. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "fetch.h"
#include "fileurl.h"
#include "item.h"
#include "md5.h"
#include "names.h"
#include "rsorder.h"
#include "s3.h"
#include "util.h"
#include "workspace.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

enum { MAX_HOPS = 10, EBODY = 256, PROGRESS_MS = 1000, POLL_MS = 200 };
enum kind { K_FILE, K_HTTP, K_S3 };
enum slot_state { S_IDLE, S_RUNNING, S_WAITING };

struct src {
	cJSON *obj;
	const char *url, *name, *pid, *md5;
	int64_t size;
	enum kind kind;
	int rsorder;              /* sent with the rs-order JWT: 202 means "not yet" */
};

struct run;

struct slot {
	CURL *h;
	struct run *run;
	struct src *src;          /* the file it has, NULL when idle */
	size_t index;             /* its position in the order */
	enum slot_state state;
	int64_t retry_at;         /* monotonic ms, when S_WAITING */
	int fd;
	md5 *md5;
	int64_t got;              /* bytes of the file in the workspace so far */
	int64_t from;             /* this attempt asks for the bytes from here on
	                             (a Range): those before were kept */
	int keep;                 /* -1 status unknown yet, 1 keep the body, 0 drop it */
	int toobig, werr;
	int temp, bad;            /* temporary failures, wrong contents */
	int hops;
	char *url;                /* this request's URL: the source's or a redirect's */
	struct curl_slist *hdrs;
	char ebody[EBODY];        /* the start of an error body (S3 error codes) */
	size_t elen;
	char path[PATH_MAX];
};

struct fetch {
	struct fetch_opts o;
	CURLM *m;
	struct slot *slots;
};

struct run {
	fetch *f;
	const struct fetch_job *job;
	struct fetch_result *r;
	struct src *srcs;
	size_t n, next;           /* next: the next source to give a slot */
	int64_t done, total;      /* bytes, for progress */
	int64_t last_progress;
	int over;                 /* the result is decided */
	char dir[PATH_MAX];       /* <workspace>/files */
};

/* ---- results ---- */

static int result(struct run *rn, enum fetch_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int result(struct run *rn, enum fetch_status st, const char *fmt, ...)
{
	va_list ap;
	/* FORBIDDEN wins over any other failure; else the first one is told */
	if (rn->over && (rn->r->status == FETCH_FORBIDDEN || st != FETCH_FORBIDDEN))
		return -1;
	rn->over = 1;
	rn->r->status = st;
	va_start(ap, fmt);
	vsnprintf(rn->r->message, sizeof rn->r->message, fmt, ap);
	va_end(ap);
	return -1;
}

static void note(struct run *rn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct run *rn, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (!rn->job->note)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	rn->job->note(rn->job->arg, line);
}

/* ---- the order's files ---- */

static const char *str_field(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int kind_of(const char *url, enum kind *k)
{
	static const struct { const char *prefix; enum kind k; } kinds[] = {
		{ "file:", K_FILE }, { "http://", K_HTTP }, { "https://", K_HTTP }, { "s3://", K_S3 },
	};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strncasecmp(url, kinds[i].prefix, strlen(kinds[i].prefix)) == 0) {
			*k = kinds[i].k;
			return 0;
		}
	return -1;
}

/* read file i of the order into s; -1 with the result set when malformed */
static int scan_one(struct run *rn, size_t i, cJSON *o, struct src *s)
{
	s->obj = o;
	s->name = str_field(o, "name");
	s->pid = str_field(o, "productId");
	s->url = str_field(o, "url");
	s->md5 = str_field(o, "md5");
	const char *bad = !cJSON_IsObject(o) ? "is not an object" : !s->name ? "has no name" :
	    !s->pid ? "has no productId" : !s->url ? "has no url" :
	    !s->md5 || !util_is_hex(s->md5, 32) ? "has no md5 of 32 hex digits" :
	    item_int(o, "size", &s->size) < 0 || s->size < 0 ? "has no whole size" :
	    kind_of(s->url, &s->kind) < 0 ? "has a URL that is not file, http, https or s3" : NULL;
	if (bad)
		return result(rn, FETCH_FAILED, "file %zu of the order %s", i + 1, bad);
	cJSON_DeleteItemFromObjectCaseSensitive(o, "path");   /* never trust one given */
	return 0;
}

static int set_path(struct run *rn, cJSON *o, const char *path)
{
	if (!cJSON_AddStringToObject(o, "path", path))
		return result(rn, FETCH_FAILED, "out of memory");
	return 0;
}

/* why a file:// source cannot be taken; the size found goes to the log only */
static int local_failed(struct run *rn, struct src *s, int rc, const char *why,
    const struct stat *st)
{
	if (rc != FILEURL_BAD)
		note(rn, "%s/%s: %s", s->pid, s->name, why);
	if (rc == FILEURL_SIZE)
		note(rn, "%s/%s: %" PRId64 " bytes, the order says %" PRId64, s->pid, s->name,
		    (int64_t)st->st_size, s->size);
	switch (rc) {
	case FILEURL_FORBIDDEN:
		return result(rn, FETCH_FORBIDDEN, "file %s/%s is outside the tenant's file_roots",
		    s->pid, s->name);
	case FILEURL_MISSING:
		return result(rn, FETCH_FAILED, "file %s/%s not found", s->pid, s->name);
	case FILEURL_NOTREG:
		return result(rn, FETCH_FAILED, "file %s/%s is not a regular file", s->pid, s->name);
	case FILEURL_SIZE:
		return result(rn, FETCH_FAILED, "file %s/%s does not have the %" PRId64 " bytes the "
		    "order says", s->pid, s->name, s->size);
	default:
		return result(rn, FETCH_FAILED, "file %s/%s: bad file URL: %s", s->pid, s->name, why);
	}
}

/* a file:// source: inside file_roots, opened there as ferry-pack will
 * (fileurl_open), a regular file of the catalog size */
static int check_local(struct run *rn, struct src *s)
{
	const tenant *t = rn->job->tenant;
	char real[PATH_MAX], why[2 * PATH_MAX];
	struct stat st;
	int rc = fileurl_resolve(s->url, t->file_roots, t->nfile_roots, real, sizeof real,
	    why, sizeof why);
	if (rc == FILEURL_OK) {
		int fd = fileurl_open(real, t->file_roots, t->nfile_roots, s->size, &st, why,
		    sizeof why);
		rc = fd < 0 ? fd : FILEURL_OK;
		if (fd >= 0)
			close(fd);
	}
	if (rc != FILEURL_OK)
		return local_failed(rn, s, rc, why, &st);
	rn->r->nlocal++;
	return set_path(rn, s->obj, real);
}

/* the host of an http(s) URL into host; 0, or -1 if it is not one */
static int http_host(const char *url, char *host, size_t len)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *h = NULL;
	int rc = -1;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK &&
	    (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0)) {
		size_t n = strlen(h);
		int v6 = n >= 2 && h[0] == '[' && h[n - 1] == ']';
		snprintf(host, len, "%.*s", (int)(n - 2 * v6), h + v6);
		rc = 0;
	}
	curl_free(scheme);
	curl_free(h);
	curl_url_cleanup(u);
	return rc;
}

/* allowed_hosts absent or []: none; ["*"]: any */
static int host_allowed(const tenant *t, const char *host)
{
	if (tenant_any(t->allowed_hosts, t->nallowed_hosts))
		return 1;
	for (size_t i = 0; i < t->nallowed_hosts; i++) {
		const char *a = t->allowed_hosts[i];
		size_t n = strlen(a);
		int v6 = n >= 2 && a[0] == '[' && a[n - 1] == ']';
		if (strlen(host) == n - 2 * v6 && strncasecmp(host, a + v6, n - 2 * v6) == 0)
			return 1;
	}
	return 0;
}

static int check_http(struct run *rn, struct src *s)
{
	char host[512];
	if (http_host(s->url, host, sizeof host) < 0)
		return result(rn, FETCH_FAILED, "file %s/%s: bad URL", s->pid, s->name);
	if (!host_allowed(rn->job->tenant, host))
		return result(rn, FETCH_FORBIDDEN, "file %s/%s: host %s is not in the tenant's "
		    "allowed_hosts (\"*\" allows any host)", s->pid, s->name, host);
	return 0;
}

/* source_buckets absent or []: none; ["*"]: any the tenant's credentials
 * can read */
static int bucket_allowed(const tenant *t, const char *bucket)
{
	if (tenant_any(t->source_buckets, t->nsource_buckets))
		return 1;
	for (size_t i = 0; i < t->nsource_buckets; i++)
		if (strcmp(t->source_buckets[i], bucket) == 0)
			return 1;
	return 0;
}

static int check_s3(struct run *rn, struct src *s)
{
	char bucket[256];
	const char *key;
	if (s3_split_url(s->url, bucket, sizeof bucket, &key) < 0)
		return result(rn, FETCH_FAILED, "file %s/%s: bad s3:// URL", s->pid, s->name);
	if (!tenant_source_s3(rn->job->tenant))
		return result(rn, FETCH_FAILED, "file %s/%s: s3:// source, but the tenant has no "
		    "source_s3_server nor s3_server", s->pid, s->name);
	if (!bucket_allowed(rn->job->tenant, bucket))
		return result(rn, FETCH_FORBIDDEN, "file %s/%s: bucket %s is not in the tenant's "
		    "source_buckets (\"*\" allows any bucket)", s->pid, s->name, bucket);
	if (util_dot_segment(key))
		return result(rn, FETCH_FORBIDDEN, "file %s/%s: s3:// key with a \".\" or \"..\" "
		    "segment", s->pid, s->name);
	return 0;
}

/* Every file is checked before anything is downloaded; a forbidden one
 * ends it all at once, whatever else is wrong. */
static int check_all(struct run *rn, cJSON *files)
{
	static int (*const check[])(struct run *, struct src *) = {
		[K_FILE] = check_local, [K_HTTP] = check_http, [K_S3] = check_s3,
	};
	size_t i = 0;
	for (cJSON *o = files->child; o; o = o->next, i++) {
		struct src *s = &rn->srcs[i];
		if (scan_one(rn, i, o, s) < 0)
			continue;
		check[s->kind](rn, s);
		if (rn->over && rn->r->status == FETCH_FORBIDDEN)
			return -1;
		if (s->kind != K_FILE)
			rn->total += s->size;
	}
	return rn->over ? -1 : 0;
}

/* ---- callbacks ---- */

static int expired(const struct fetch_job *job)
{
	return job->expires_ms && util_now_ms() >= job->expires_ms;
}

static int stopped(const struct fetch_job *job)
{
	return job->stop && *job->stop;
}

/* in flight too, the deadline and a stop end a transfer */
static int on_xfer(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct slot *sl = arg;
	(void)dt, (void)dn, (void)ut, (void)un;
	return stopped(sl->run->job) || expired(sl->run->job);
}

/* Back to an empty file (a server that sent the whole file to a Range). */
static int restart_file(struct slot *sl)
{
	if (ftruncate(sl->fd, 0) < 0 || lseek(sl->fd, 0, SEEK_SET) < 0) {
		sl->werr = errno;
		return -1;
	}
	md5_reset(sl->md5);
	sl->got = sl->from = 0;
	return 0;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct slot *sl = arg;
	size_t len = size * nmemb;
	if (sl->keep < 0) {
		long code = 0;
		curl_easy_getinfo(sl->h, CURLINFO_RESPONSE_CODE, &code);
		sl->keep = code >= 200 && code < 300;
		if (sl->keep && sl->from > 0 && code != 206 && restart_file(sl) < 0)
			return 0;      /* the whole file came instead of the rest: start again */
	}
	if (!sl->keep) {
		size_t n = len < EBODY - 1 - sl->elen ? len : EBODY - 1 - sl->elen;
		memcpy(sl->ebody + sl->elen, p, n);
		sl->elen += n;
		sl->ebody[sl->elen] = '\0';
		return len;
	}
	if (sl->got + (int64_t)len > sl->src->size) {
		sl->toobig = 1;
		return 0;
	}
	if (util_write_all(sl->fd, p, len) < 0) {
		sl->werr = errno;
		return 0;
	}
	md5_update(sl->md5, p, len);
	sl->got += (int64_t)len;
	return len;
}

/* ---- requests ---- */

static int set_common(struct slot *sl)
{
	const struct fetch_opts *o = &sl->run->f->o;
	CURL *h = sl->h;
	CURLcode c = CURLE_OK;
	curl_easy_reset(h);
	c |= curl_easy_setopt(h, CURLOPT_URL, sl->url);
	c |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	c |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	c |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	c |= curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
	c |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s);
	c |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	c |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, o->stall_s);
	c |= curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	c |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	c |= curl_easy_setopt(h, CURLOPT_WRITEDATA, sl);
	c |= curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xfer);
	c |= curl_easy_setopt(h, CURLOPT_XFERINFODATA, sl);
	c |= curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	c |= curl_easy_setopt(h, CURLOPT_PRIVATE, sl);
	return c == CURLE_OK ? 0 : -1;
}

/* A URL under an rs-order tenant's rs_order.url (redirects included) is
 * asked with the JWT of the file's user, as rs-delivery's
 * IOrderDataFileClient does; the token is wiped once in the headers. */
static int rsorder_auth(struct run *rn, struct slot *sl)
{
	char *h = NULL;
	int rc = rsorder_auth_header(rn->job->tenant, sl->url, str_field(sl->src->obj, "user"), &h);
	sl->src->rsorder = rc > 0;
	if (rc <= 0)
		return rc;
	sl->hdrs = curl_slist_append(NULL, h);
	sodium_memzero(h, strlen(h));
	free(h);
	if (!sl->hdrs || curl_easy_setopt(sl->h, CURLOPT_HTTPHEADER, sl->hdrs) != CURLE_OK)
		return -1;
	return 0;
}

/* send sl->url: a GET, SigV4-signed for s3:// sources */
static int request(struct run *rn, struct slot *sl)
{
	curl_slist_free_all(sl->hdrs);
	sl->hdrs = NULL;
	sl->keep = -1;
	sl->elen = 0;
	sl->ebody[0] = '\0';
	int rc = set_common(sl);
	char range[32];
	snprintf(range, sizeof range, "%" PRId64 "-", sl->from);
	if (rc == 0 && sl->from > 0 && curl_easy_setopt(sl->h, CURLOPT_RANGE, range) != CURLE_OK)
		rc = -1;
	if (rc == 0 && sl->src->kind == K_S3) {
		rc = s3_curl_auth(sl->h, tenant_source_s3(rn->job->tenant), NULL, &sl->hdrs);
		if (rc == 0 && curl_easy_setopt(sl->h, CURLOPT_HTTPHEADER, sl->hdrs) != CURLE_OK)
			rc = -1;
	}
	if (rc == 0 && sl->src->kind == K_HTTP)
		rc = rsorder_auth(rn, sl);
	if (rc == 0 && curl_multi_add_handle(rn->f->m, sl->h) != CURLM_OK)
		rc = -1;
	if (rc < 0)
		return result(rn, FETCH_FAILED, "file %s/%s: unable to set up the transfer",
		    sl->src->pid, sl->src->name);
	sl->state = S_RUNNING;
	return 0;
}

static int source_url(struct run *rn, struct slot *sl)
{
	char bucket[256], url[8192];
	const char *key;
	free(sl->url);
	sl->url = NULL;
	if (sl->src->kind == K_HTTP)
		sl->url = strdup(sl->src->url);
	else if (s3_split_url(sl->src->url, bucket, sizeof bucket, &key) == 0 &&
	    s3_url(tenant_source_s3(rn->job->tenant), bucket, key, NULL, url, sizeof url) == 0)
		sl->url = strdup(url);
	else
		return result(rn, FETCH_FAILED, "file %s/%s: s3:// URL too long",
		    sl->src->pid, sl->src->name);
	return sl->url ? 0 : result(rn, FETCH_FAILED, "out of memory");
}

/* The bytes of the file already in the workspace (a download cut, or a
 * run interrupted during it), read into the slot's md5: how many, 0 when
 * there is nothing to go on from. */
static int64_t kept_bytes(struct slot *sl)
{
	struct stat st;
	char buf[65536];
	int64_t at = 0;
	if (fstat(sl->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size >= sl->src->size)
		return 0;
	while (at < st.st_size) {
		ssize_t n = pread(sl->fd, buf, sizeof buf, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		md5_update(sl->md5, buf, (size_t)n);
		at += n;
	}
	if (at != st.st_size || lseek(sl->fd, (off_t)at, SEEK_SET) < 0) {
		md5_reset(sl->md5);
		return 0;
	}
	return at;
}

/* A new download of the slot's file, from its first URL: of the rest of
 * it (a Range) when resume is set and part of it is in the workspace. */
static int attempt(struct run *rn, struct slot *sl, int resume)
{
	if (sl->fd >= 0)
		close(sl->fd);
	sl->fd = open(sl->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (sl->fd < 0)
		return result(rn, FETCH_FAILED, "file %s/%s: unable to create it in the workspace: %s",
		    sl->src->pid, sl->src->name, strerror(errno));
	md5_reset(sl->md5);
	sl->got = sl->from = resume ? kept_bytes(sl) : 0;
	if (sl->from > 0)
		note(rn, "%s/%s: %" PRId64 " of %" PRId64 " bytes already there; asking for the rest",
		    sl->src->pid, sl->src->name, sl->from, sl->src->size);
	else if (ftruncate(sl->fd, 0) < 0)
		return result(rn, FETCH_FAILED, "file %s/%s: unable to write it in the workspace: %s",
		    sl->src->pid, sl->src->name, strerror(errno));
	sl->toobig = sl->werr = sl->hops = 0;
	if (source_url(rn, sl) < 0)
		return -1;
	return request(rn, sl);
}

/* ---- slots ---- */

static void slot_release(struct run *rn, struct slot *sl)
{
	if (sl->state == S_RUNNING)
		curl_multi_remove_handle(rn->f->m, sl->h);
	if (sl->fd >= 0)
		close(sl->fd);
	sl->fd = -1;
	sl->state = S_IDLE;
	sl->src = NULL;
}

/* <dir>/<index>-<name>: the name sanitized, one component, cut to 200 bytes */
static int local_name(struct run *rn, struct slot *sl)
{
	char clean[1100];
	if (names_sanitize(sl->src->name, clean, sizeof clean) < 0)
		util_strlcpy(clean, "file", sizeof clean);
	for (char *p = clean; *p; p++)
		if (*p == '/')
			*p = '_';
	size_t cut = util_utf8_cut(clean, strlen(clean), 200);
	int n = snprintf(sl->path, sizeof sl->path, "%s/%zu-%.*s", rn->dir, sl->index, (int)cut, clean);
	if (n < 0 || (size_t)n >= sizeof sl->path)
		return result(rn, FETCH_FAILED, "workspace path too long");
	return 0;
}

static void progress(struct run *rn, int force)
{
	int64_t now = util_mono_ms(), done = rn->done;
	if (!rn->job->progress || (!force && now - rn->last_progress < PROGRESS_MS))
		return;
	for (int i = 0; i < rn->f->o.parallel; i++)
		if (rn->f->slots[i].state == S_RUNNING)
			done += rn->f->slots[i].got;
	rn->last_progress = now;
	rn->job->progress(rn->job->arg, done, rn->total);
}

static void slot_done(struct run *rn, struct slot *sl, int64_t downloaded)
{
	if (set_path(rn, sl->src->obj, sl->path) < 0)
		return;
	rn->done += sl->src->size;
	rn->r->bytes += downloaded;
	rn->r->nremote++;
	slot_release(rn, sl);
}

/* the file is already in the workspace (a run interrupted after it) */
static int already_there(struct slot *sl)
{
	struct stat st;
	char hex[33];
	if (lstat(sl->path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != sl->src->size)
		return 0;
	return md5_file(sl->path, hex, NULL) == 0 && md5_equal(hex, sl->src->md5);
}

/* give the slot the next remote file */
static void slot_take(struct run *rn, struct slot *sl)
{
	while (rn->next < rn->n && rn->srcs[rn->next].kind == K_FILE)
		rn->next++;
	if (rn->next >= rn->n)
		return;
	sl->index = rn->next;
	sl->src = &rn->srcs[rn->next++];
	sl->temp = sl->bad = 0;
	if (local_name(rn, sl) < 0)
		return;
	if (already_there(sl)) {
		rn->r->nreused++;
		slot_done(rn, sl, 0);
		return;
	}
	attempt(rn, sl, 1);
}

/* ---- the end of a transfer ---- */

static int temporary_code(CURLcode c)
{
	static const CURLcode temp[] = {
		CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
		CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2, CURLE_PARTIAL_FILE, CURLE_OPERATION_TIMEDOUT,
		CURLE_SSL_CONNECT_ERROR, CURLE_GOT_NOTHING, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
		CURLE_HTTP2_STREAM, CURLE_HTTP3, CURLE_QUIC_CONNECT_ERROR,
	};
	for (size_t i = 0; i < sizeof temp / sizeof temp[0]; i++)
		if (c == temp[i])
			return 1;
	return 0;
}

static int temporary_status(long code)
{
	return code == 408 || code == 429 || code >= 500;
}

static void retry_later(struct run *rn, struct slot *sl, const char *why)
{
	const struct fetch_opts *o = &rn->f->o;
	int64_t wait = o->backoff_ms;
	for (int i = 0; i < sl->temp && wait < o->backoff_max_ms; i++)
		wait *= 2;
	if (wait > o->backoff_max_ms)
		wait = o->backoff_max_ms;
	if (rn->job->hold_ms && util_now_ms() + wait > rn->job->hold_ms) {
		result(rn, FETCH_TEMPORARY, "unable to fetch %s/%s for now: %s", sl->src->pid,
		    sl->src->name, why);
		return;
	}
	sl->temp++;
	if (sl->fd >= 0)
		close(sl->fd);
	sl->fd = -1;
	sl->state = S_WAITING;
	sl->retry_at = util_mono_ms() + wait;
	note(rn, "%s/%s: %s; retry in %" PRId64 " s", sl->src->pid, sl->src->name, why,
	    (wait + 999) / 1000);
}

/* " (NoSuchKey)" from an S3 error body, else "" */
static void s3_code(const struct slot *sl, char *out, size_t len)
{
	char code[64];
	out[0] = '\0';
	if (s3_xml_value(sl->ebody, sl->elen, "Code", code, sizeof code) > 0)
		snprintf(out, len, " (%s)", code);
}

static void redirected(struct run *rn, struct slot *sl, long code)
{
	char *loc = NULL, host[512];
	struct src *s = sl->src;
	curl_easy_getinfo(sl->h, CURLINFO_REDIRECT_URL, &loc);
	if (!loc || s->kind != K_HTTP) {
		result(rn, FETCH_FAILED, "unable to fetch %s/%s: HTTP %ld", s->pid, s->name, code);
		return;
	}
	if (http_host(loc, host, sizeof host) < 0 || !host_allowed(rn->job->tenant, host)) {
		result(rn, FETCH_FORBIDDEN, "file %s/%s: redirected to a host not in the tenant's "
		    "allowed_hosts (\"*\" allows any host)", s->pid, s->name);
		return;
	}
	if (++sl->hops > MAX_HOPS) {
		result(rn, FETCH_FAILED, "unable to fetch %s/%s: more than %d redirects",
		    s->pid, s->name, MAX_HOPS);
		return;
	}
	char *next = strdup(loc);    /* loc belongs to the handle, reset next */
	if (!next) {
		result(rn, FETCH_FAILED, "out of memory");
		return;
	}
	free(sl->url);
	sl->url = next;
	request(rn, sl);
}

/* a 2xx body arrived whole: check it, or download again */
static void check_body(struct run *rn, struct slot *sl)
{
	struct src *s = sl->src;
	char hex[33] = "";
	if (!sl->toobig && sl->got == s->size) {
		md5_final_hex(sl->md5, hex);
		if (md5_equal(hex, s->md5)) {
			slot_done(rn, sl, sl->got);
			return;
		}
	}
	if (++sl->bad < rn->f->o.attempts) {
		note(rn, "%s/%s: %s; downloading it again", s->pid, s->name,
		    hex[0] ? "checksum mismatch" : "size mismatch");
		attempt(rn, sl, 0);
	} else if (hex[0]) {
		result(rn, FETCH_FAILED, "checksum mismatch for %s/%s after %d attempts: expected %s, got %s",
		    s->pid, s->name, sl->bad, s->md5, hex);
	} else {
		result(rn, FETCH_FAILED, "size mismatch for %s/%s after %d attempts: expected %" PRId64
		    " bytes, got %s%" PRId64, s->pid, s->name, sl->bad, s->size,
		    sl->toobig ? "more than " : "", sl->got);
	}
}

static void expire(struct run *rn)
{
	char when[32];
	util_iso8601(rn->job->expires_ms, when);
	result(rn, FETCH_EXPIRED, "The request date has reached the expiration limit '%s'", when);
}

/* a full disk may pass; other write errors will not */
static void write_failed(struct run *rn, struct slot *sl)
{
	if (sl->werr == ENOSPC || sl->werr == EDQUOT)
		retry_later(rn, sl, strerror(sl->werr));
	else
		result(rn, FETCH_FAILED, "file %s/%s: unable to write it in the workspace: %s",
		    sl->src->pid, sl->src->name, strerror(sl->werr));
}

static void finished(struct run *rn, struct slot *sl, CURLcode c)
{
	long code = 0;
	char why[300], s3c[80];
	struct src *s = sl->src;
	curl_multi_remove_handle(rn->f->m, sl->h);
	sl->state = S_IDLE;
	curl_easy_getinfo(sl->h, CURLINFO_RESPONSE_CODE, &code);
	if (c == CURLE_ABORTED_BY_CALLBACK && stopped(rn->job))
		result(rn, FETCH_STOPPED, "stopped");
	else if (c == CURLE_ABORTED_BY_CALLBACK)
		expire(rn);
	else if (c == CURLE_WRITE_ERROR && sl->werr)
		write_failed(rn, sl);
	else if (c == CURLE_WRITE_ERROR && sl->toobig)
		check_body(rn, sl);
	else if (c != CURLE_OK && temporary_code(c))
		retry_later(rn, sl, curl_easy_strerror(c));
	else if (c != CURLE_OK)
		result(rn, FETCH_FAILED, "unable to fetch %s/%s: %s", s->pid, s->name, curl_easy_strerror(c));
	else if (code == 416 && sl->from > 0) {
		note(rn, "%s/%s: the server cannot send the rest (HTTP 416); downloading it again",
		    s->pid, s->name);
		attempt(rn, sl, 0);
	} else if (code == 202 && s->rsorder)
		retry_later(rn, sl, "HTTP 202 (rs-order: not available yet)");
	else if (code >= 200 && code < 300)
		check_body(rn, sl);
	else if (code >= 300 && code < 400)
		redirected(rn, sl, code);
	else if (temporary_status(code)) {
		snprintf(why, sizeof why, "HTTP %ld", code);
		retry_later(rn, sl, why);
	} else {
		s3_code(sl, s3c, sizeof s3c);
		result(rn, FETCH_FAILED, "unable to fetch %s/%s: HTTP %ld%s", s->pid, s->name, code, s3c);
	}
}

/* ---- the loop ---- */

static int all_idle(const struct run *rn)
{
	for (int i = 0; i < rn->f->o.parallel; i++)
		if (rn->f->slots[i].state != S_IDLE)
			return 0;
	return 1;
}

/* fill idle slots, restart the waiting ones whose time came; the poll
 * timeout until the next retry */
static long schedule(struct run *rn)
{
	long timeout = POLL_MS;
	int64_t now = util_mono_ms();
	for (int i = 0; i < rn->f->o.parallel && !rn->over; i++) {
		struct slot *sl = &rn->f->slots[i];
		while (sl->state == S_IDLE && rn->next < rn->n && !rn->over)
			slot_take(rn, sl);
		if (sl->state == S_WAITING && sl->retry_at <= now)
			attempt(rn, sl, 1);
		else if (sl->state == S_WAITING && sl->retry_at - now < timeout)
			timeout = (long)(sl->retry_at - now);
	}
	return timeout;
}

/* handle the transfers that ended; how many */
static int reap(struct run *rn)
{
	CURLMsg *msg;
	int left, n = 0;
	while ((msg = curl_multi_info_read(rn->f->m, &left)))
		if (msg->msg == CURLMSG_DONE) {
			struct slot *sl = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
			finished(rn, sl, msg->data.result);
			n++;
		}
	return n;
}

static void transfer(struct run *rn)
{
	int running;
	while (!rn->over) {
		if (stopped(rn->job))
			result(rn, FETCH_STOPPED, "stopped");
		else if (expired(rn->job))
			expire(rn);
		long timeout = rn->over ? 0 : schedule(rn);
		if (rn->over || (all_idle(rn) && rn->next >= rn->n))
			break;
		if (curl_multi_perform(rn->f->m, &running) != CURLM_OK) {
			result(rn, FETCH_FAILED, "libcurl failed");
			break;
		}
		int ended = reap(rn);
		progress(rn, 0);
		/* a slot that came free is given its next file before any wait */
		if (!ended && !rn->over &&
		    curl_multi_poll(rn->f->m, NULL, 0, (int)timeout, NULL) != CURLM_OK)
			result(rn, FETCH_FAILED, "libcurl failed");
	}
	for (int i = 0; i < rn->f->o.parallel; i++)
		slot_release(rn, &rn->f->slots[i]);
}

/* Remote files bigger than the whole workspace filesystem can never land:
 * an error now, where a disk full for the moment (ENOSPC while writing) is
 * waited out. Waiting here would hold the stage until the request expires. */
static int room(struct run *rn)
{
	struct statvfs fs;
	if (statvfs(rn->dir, &fs) < 0)
		return 0;    /* unknown: the writes will tell */
	uint64_t cap = (uint64_t)fs.f_blocks * fs.f_frsize;
	if ((uint64_t)rn->total <= cap)
		return 0;
	return result(rn, FETCH_FAILED, "the order's remote files (%" PRId64 " bytes) cannot fit "
	    "in the workspace (a filesystem of %" PRIu64 " bytes)", rn->total, cap);
}

static int files_dir(struct run *rn)
{
	struct stat st;
	if (!rn->job->workspace)
		return result(rn, FETCH_FAILED, "no workspace");
	int n = snprintf(rn->dir, sizeof rn->dir, "%s/files", rn->job->workspace);
	if (n < 0 || (size_t)n >= sizeof rn->dir)
		return result(rn, FETCH_FAILED, "workspace path too long");
	if (workspace_make(rn->dir) < 0 || lstat(rn->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return result(rn, FETCH_FAILED, "unable to make the workspace: %s", strerror(errno));
	return room(rn);
}

int fetch_files(fetch *f, const struct fetch_job *job, cJSON *files, struct fetch_result *r)
{
	struct run rn = { .f = f, .job = job, .r = r };
	memset(r, 0, sizeof *r);
	for (int i = 0; i < f->o.parallel; i++)
		f->slots[i].run = &rn;
	if (!cJSON_IsArray(files))
		return result(&rn, FETCH_FAILED, "the item has no files array");
	rn.n = (size_t)cJSON_GetArraySize(files);
	rn.srcs = calloc(rn.n ? rn.n : 1, sizeof *rn.srcs);
	if (!rn.srcs)
		return result(&rn, FETCH_FAILED, "out of memory");
	if (check_all(&rn, files) == 0) {
		int remote = 0;
		for (size_t i = 0; i < rn.n && !remote; i++)
			remote = rn.srcs[i].kind != K_FILE;
		if (remote && files_dir(&rn) == 0) {
			rn.last_progress = util_mono_ms();
			progress(&rn, 1);
			transfer(&rn);
			if (!rn.over)
				progress(&rn, 1);
		}
	}
	free(rn.srcs);
	return rn.over ? -1 : 0;
}

/* ---- the engine ---- */

static void defaults(struct fetch_opts *o)
{
	if (o->parallel < 1 || o->parallel > 64)
		o->parallel = 4;
	if (o->attempts < 1)
		o->attempts = 3;
	if (o->backoff_ms < 1)
		o->backoff_ms = 1000;
	if (o->backoff_max_ms < o->backoff_ms)
		o->backoff_max_ms = o->backoff_ms > 30000 ? o->backoff_ms : 30000;
	if (o->connect_timeout_s < 1)
		o->connect_timeout_s = 30;
	if (o->stall_s < 1)
		o->stall_s = 60;
}

fetch *fetch_new(const struct fetch_opts *opts)
{
	fetch *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	if (opts)
		f->o = *opts;
	defaults(&f->o);
	f->m = curl_multi_init();
	f->slots = calloc((size_t)f->o.parallel, sizeof *f->slots);
	if (!f->m || !f->slots) {
		fetch_free(f);
		return NULL;
	}
	for (int i = 0; i < f->o.parallel; i++) {
		struct slot *sl = &f->slots[i];
		sl->fd = -1;
		sl->h = curl_easy_init();
		sl->md5 = md5_new();
		if (!sl->h || !sl->md5) {
			fetch_free(f);
			return NULL;
		}
	}
	return f;
}

void fetch_free(fetch *f)
{
	if (!f)
		return;
	for (int i = 0; f->slots && i < f->o.parallel; i++) {
		struct slot *sl = &f->slots[i];
		curl_easy_cleanup(sl->h);
		md5_free(sl->md5);
		curl_slist_free_all(sl->hdrs);
		free(sl->url);
		if (sl->fd >= 0)
			close(sl->fd);
	}
	free(f->slots);
	if (f->m)
		curl_multi_cleanup(f->m);
	free(f);
}
