/* rsadmin: ask rs-admin whether a user belongs to a project, with the
 * answers cache and the per-tenant pause after a failure (see rsadmin.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "jwt.h"
#include "rsadmin.h"
#include "util.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0"
#endif

/* One answer: the key is "tenant\nurl\nuser" (a tenant name has no '\n'),
 * so one project's answer is never another's and a new url asks again. */
struct entry {
	uint64_t hash;
	char *key;
	int answer;
	int64_t written_ms, expires_ms;
};

/* A tenant's rs-admin that failed: not asked again before until_ms. */
struct down {
	char *key;                 /* "tenant\nurl" */
	int failures;              /* in a row */
	int64_t until_ms;
};

struct rsadmin {
	struct entry *e;
	size_t n;
	struct down *d;
	size_t nd;
	unsigned long asked;
};

rsadmin *rsadmin_new(void)
{
	rsadmin *c = calloc(1, sizeof *c);
	if (c && !(c->e = calloc(RSADMIN_CACHE_MAX, sizeof *c->e))) {
		free(c);
		return NULL;
	}
	return c;
}

void rsadmin_free(rsadmin *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].key);
	for (size_t i = 0; i < c->nd; i++)
		free(c->d[i].key);
	free(c->e);
	free(c->d);
	free(c);
}

unsigned long rsadmin_asked(const rsadmin *c)
{
	return c->asked;
}

size_t rsadmin_cache_size(const rsadmin *c)
{
	return c->n;
}

/* ---- the cache ---- */

static char *key_of(const char *tenant, const char *url, const char *user)
{
	size_t n = strlen(tenant) + strlen(url) + (user ? strlen(user) + 1 : 0) + 2;
	char *k = malloc(n);
	if (k && user)
		snprintf(k, n, "%s\n%s\n%s", tenant, url, user);
	else if (k)
		snprintf(k, n, "%s\n%s", tenant, url);
	return k;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct entry *find(rsadmin *c, const char *key, uint64_t h)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].hash == h && strcmp(c->e[i].key, key) == 0)
			return &c->e[i];
	return NULL;
}

int rsadmin_cache_get(rsadmin *c, const char *tenant, const char *url, const char *user,
    int64_t now_ms)
{
	char *key = key_of(tenant, url, user);
	if (!key)
		return RSADMIN_UNAVAILABLE;
	struct entry *e = find(c, key, fnv1a(key));
	free(key);
	return e && e->expires_ms > now_ms ? e->answer : RSADMIN_UNAVAILABLE;
}

/* A free slot: a new one, else the first expired, else the oldest. */
static struct entry *slot(rsadmin *c, int64_t now_ms)
{
	if (c->n < RSADMIN_CACHE_MAX)
		return &c->e[c->n++];
	struct entry *old = &c->e[0];
	for (size_t i = 0; i < c->n; i++) {
		if (c->e[i].expires_ms <= now_ms)
			return free(c->e[i].key), &c->e[i];
		if (c->e[i].written_ms < old->written_ms)
			old = &c->e[i];
	}
	free(old->key);
	return old;
}

int rsadmin_cache_put(rsadmin *c, const char *tenant, const char *url, const char *user,
    int answer, int64_t now_ms, int64_t ttl_ms)
{
	char *key = key_of(tenant, url, user);
	if (!key)
		return -1;
	uint64_t h = fnv1a(key);
	struct entry *e = find(c, key, h);
	if (e)
		free(e->key);
	else
		e = slot(c, now_ms);
	*e = (struct entry){ h, key, answer, now_ms, now_ms + ttl_ms };
	return 0;
}

/* ---- the pause after a failure ---- */

static struct down *down_of(rsadmin *c, const char *key, int add)
{
	for (size_t i = 0; i < c->nd; i++)
		if (strcmp(c->d[i].key, key) == 0)
			return &c->d[i];
	if (!add)
		return NULL;
	struct down *d = realloc(c->d, (c->nd + 1) * sizeof *d);
	char *k = strdup(key);
	if (d)
		c->d = d;
	if (!d || !k) {
		free(k);
		return NULL;
	}
	d = &c->d[c->nd++];
	*d = (struct down){ k, 0, 0 };
	return d;
}

static void failed(rsadmin *c, const char *key, int64_t now_ms)
{
	struct down *d = down_of(c, key, 1);
	if (!d)
		return;
	int64_t ms = RSADMIN_DOWN_MIN_MS;
	for (int i = 0; i < d->failures && ms < RSADMIN_DOWN_MAX_MS; i++)
		ms *= 2;
	d->failures++;
	d->until_ms = now_ms + (ms < RSADMIN_DOWN_MAX_MS ? ms : RSADMIN_DOWN_MAX_MS);
}

static void answered(rsadmin *c, const char *key)
{
	struct down *d = down_of(c, key, 0);
	if (d)
		d->failures = 0, d->until_ms = 0;
}

/* ---- the request ---- */

char *rsadmin_url(const char *base, const char *user)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(base), m = strlen(user);
	char *u = malloc(n + sizeof "/users/email/" + 3 * m);
	if (!u)
		return NULL;
	char *p = u + sprintf(u, "%s/users/email/", base);
	/* a path segment: RFC 3986 unreserved characters and '@' as they are
	 * ('@' is a pchar), every other byte %XX, so a '/' stays in the segment */
	for (const unsigned char *s = (const unsigned char *)user; *s; s++)
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    strchr("-._~@", *s)) {
			*p++ = (char)*s;
		} else {
			*p++ = '%';
			*p++ = hex[*s >> 4];
			*p++ = hex[*s & 15];
		}
	*p = '\0';
	return u;
}

int rsadmin_status_answer(long status)
{
	/* UserVerifyService: "belongs" is HttpStatus.OK; Feign's dismiss404
	 * hands a 404 back as a response, not an error */
	return status == 200 ? RSADMIN_MEMBER : status == 404 ? RSADMIN_UNKNOWN : RSADMIN_UNAVAILABLE;
}

/* the body is not needed (UserVerifyService looks at the status only) */
static size_t drop(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p, (void)arg;
	return size * nmemb;
}

static char *bearer(const tenant *t, int64_t now_ms)
{
	char *jwt, *h;
	if (jwt_regards(t->rs_admin.jwt_secret, t->name, RSADMIN_APP, RSADMIN_ROLE,
	    now_ms / 1000 + RSADMIN_TOKEN_TTL_S, &jwt) < 0)
		return NULL;
	size_t n = strlen(jwt) + sizeof "Authorization: Bearer ";
	if ((h = malloc(n)))
		snprintf(h, n, "Authorization: Bearer %s", jwt);
	jwt_free(jwt);
	return h;
}

static void wipe_list(struct curl_slist *l)
{
	for (struct curl_slist *s = l; s; s = s->next)
		sodium_memzero(s->data, strlen(s->data));
	curl_slist_free_all(l);
}

/* GET the user's record: the HTTP status, or 0 with why */
static long ask(const tenant *t, const char *url, int64_t now_ms, char *why, size_t whylen)
{
	long code = 0, timeout = t->rs_admin.timeout_seconds;
	char *auth = bearer(t, now_ms);
	CURL *h = auth ? curl_easy_init() : NULL;
	struct curl_slist *l = NULL, *n;
	/* what Feign sends for the client's produces/consumes */
	const char *hdrs[] = { auth, "Accept: application/json", "Content-Type: application/json" };
	int ok = h != NULL;
	for (size_t i = 0; ok && i < sizeof hdrs / sizeof *hdrs; i++)
		if ((ok = (n = curl_slist_append(l, hdrs[i])) != NULL))
			l = n;
	if (auth) {
		sodium_memzero(auth, strlen(auth));
		free(auth);
	}
	if (!ok) {
		if (h)
			curl_easy_cleanup(h);
		wipe_list(l);
		snprintf(why, whylen, "%s", strerror(ENOMEM));
		return 0;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, drop);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	wipe_list(l);
	if (rc != CURLE_OK) {
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
		return 0;
	}
	snprintf(why, whylen, "HTTP %ld%s", code, code == 401 ?
	    " (is jwt_secret rs-admin's key?)" : code == 403 ? " (the system role was refused)" : "");
	return code;
}

int rsadmin_check(rsadmin *c, const tenant *t, const char *user, int64_t now_ms,
    char *why, size_t whylen)
{
	const struct tenant_rsadmin *a = &t->rs_admin;
	int answer = rsadmin_cache_get(c, t->name, a->url, user, now_ms);
	if (answer != RSADMIN_UNAVAILABLE)
		return answer;
	char *dkey = key_of(t->name, a->url, NULL), *url = rsadmin_url(a->url, user);
	struct down *d = dkey ? down_of(c, dkey, 0) : NULL;
	if (!dkey || !url) {
		snprintf(why, whylen, "%s", strerror(ENOMEM));
	} else if (d && d->until_ms > now_ms) {
		char when[32];
		util_iso8601(d->until_ms, when);
		snprintf(why, whylen, "rs-admin %s failed %d time%s in a row; not asked again before %s",
		    a->url, d->failures, d->failures == 1 ? "" : "s", when);
	} else {
		char what[160];
		c->asked++;
		answer = rsadmin_status_answer(ask(t, url, now_ms, what, sizeof what));
		if (answer == RSADMIN_UNAVAILABLE) {
			failed(c, dkey, now_ms);
			snprintf(why, whylen, "rs-admin GET %s/users/email/...: %s", a->url, what);
		} else {
			answered(c, dkey);
			if (a->cache_seconds > 0 && rsadmin_cache_put(c, t->name, a->url, user, answer,
			    now_ms, (int64_t)a->cache_seconds * 1000) < 0)
				errno = 0;   /* not kept: asked again next time */
		}
	}
	free(dkey);
	free(url);
	return answer;
}
