/* rsadmin: whether a user belongs to a tenant's REGARDS project, asked of
 * rs-admin as rs-delivery's UserVerifyService asks it (test/rs-delivery-
 * protocol.md §4): GET <url>/users/email/<user> with the system JWT of
 * rs-delivery (FeignSecurityManager.asSystem: sub and email "rs-delivery",
 * role ROLE_SYS_rs-delivery, the tenant, HS512); 200 is a member, 404 is
 * not. Answers are kept cache_seconds (REGARDS: 5 minutes), members and
 * non-members alike. Anything else (no answer within timeout_seconds, a
 * refused connection, 401, 5xx, ...) is "unavailable": not an answer, never
 * cached, and the tenant's rs-admin is not asked again for a while (2 s
 * doubling to 30 s), so an outage costs one timeout per tenant and period,
 * not one per request. One thread only (ferry-request-validate's). */
#ifndef FERRY_RSADMIN_H
#define FERRY_RSADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "tenant.h"

enum rsadmin_answer {
	RSADMIN_UNAVAILABLE = -1,  /* no answer: try again later (why says what) */
	RSADMIN_UNKNOWN = 0,       /* rs-admin does not know the user (404) */
	RSADMIN_MEMBER = 1,        /* rs-admin knows the user (200) */
};

/* REGARDS' values: the system token's subject and role, its lifetime
 * (JWTService access_token.validity_period default), the answers' life. */
#define RSADMIN_APP "rs-delivery"
#define RSADMIN_ROLE "ROLE_SYS_" RSADMIN_APP
enum {
	RSADMIN_TOKEN_TTL_S = 7200,
	RSADMIN_CACHE_MAX = 1024,     /* answers kept, all tenants together */
	RSADMIN_DOWN_MIN_MS = 2000,   /* not asked again for this long after a failure, */
	RSADMIN_DOWN_MAX_MS = 30000,  /* doubling up to this */
};

typedef struct rsadmin rsadmin;

/* NULL on ENOMEM. The caller has run curl_global_init. */
rsadmin *rsadmin_new(void);
void rsadmin_free(rsadmin *c);

/* Whether user belongs to t's project (t->has_rs_admin): the cached answer
 * if it is younger than t->rs_admin.cache_seconds, else rs-admin's, cached.
 * RSADMIN_UNAVAILABLE with a one-line reason in why (never the token), also
 * without asking while t's rs-admin is set aside after a failure. */
int rsadmin_check(rsadmin *c, const tenant *t, const char *user, int64_t now_ms,
    char *why, size_t whylen);

/* How many times rs-admin was asked (tests, diagnostics). */
unsigned long rsadmin_asked(const rsadmin *c);

/* The pieces, for the unit tests. */
/* <base>/users/email/<user, percent-encoded as a path segment> into a
 * malloc'd string, NULL on ENOMEM. */
char *rsadmin_url(const char *base, const char *user);
/* The cached answer (RSADMIN_MEMBER or RSADMIN_UNKNOWN) for (tenant, url,
 * user) at now_ms, or RSADMIN_UNAVAILABLE when there is none alive. */
int rsadmin_cache_get(rsadmin *c, const char *tenant, const char *url, const char *user,
    int64_t now_ms);
/* Keep answer until now_ms + ttl_ms; a full cache loses its expired
 * answers, else its oldest. 0, or -1 (ENOMEM: nothing kept). */
int rsadmin_cache_put(rsadmin *c, const char *tenant, const char *url, const char *user,
    int answer, int64_t now_ms, int64_t ttl_ms);
/* Answers kept, alive or not. */
size_t rsadmin_cache_size(const rsadmin *c);
/* What an HTTP status means (0: no answer at all). */
int rsadmin_status_answer(long status);

#endif
