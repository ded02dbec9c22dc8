/* rsadmin_test: the rs-admin lookup's pieces (lib/rsadmin.c) — the URL of a
 * user, what a status means, the answers cache (per tenant and url, expiry,
 * eviction) and the pause after a failure, on a port nobody listens on. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rsadmin.h"
#include "tenant.h"
#include "tu.h"

static void test_the_url_of_a_user_is_one_path_segment(void)
{
	static const struct { const char *user, *want; } cases[] = {
		{ "ana@example.org", "http://a:1/users/email/ana@example.org" },
		{ "a b/c?d#e%f", "http://a:1/users/email/a%20b%2Fc%3Fd%23e%25f" },
		{ "Zo\xc3\xab+x~y_z-1.2", "http://a:1/users/email/Zo%C3%AB%2Bx~y_z-1.2" },
		{ "..", "http://a:1/users/email/.." },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *u = rsadmin_url("http://a:1", cases[i].user);
		TU_EQ_STR(u, cases[i].want);
		free(u);
	}
}

static void test_status_200_belongs_404_does_not_others_are_no_answer(void)
{
	TU_EQ_INT(rsadmin_status_answer(200), RSADMIN_MEMBER);
	TU_EQ_INT(rsadmin_status_answer(404), RSADMIN_UNKNOWN);
	static const long other[] = { 0, 201, 204, 302, 400, 401, 403, 500, 502, 503 };
	for (size_t i = 0; i < sizeof other / sizeof *other; i++)
		TU_EQ_INT(rsadmin_status_answer(other[i]), RSADMIN_UNAVAILABLE);
}

static void test_cache_keeps_answers_per_tenant_and_url_until_they_expire(void)
{
	rsadmin *c = rsadmin_new();
	TU_CHECK(c != NULL);
	if (!c)
		return;
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "ana", 1000), RSADMIN_UNAVAILABLE);
	TU_EQ_INT(rsadmin_cache_put(c, "p1", "http://a", "ana", RSADMIN_MEMBER, 1000, 300000), 0);
	TU_EQ_INT(rsadmin_cache_put(c, "p1", "http://a", "eve", RSADMIN_UNKNOWN, 1000, 300000), 0);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "ana", 1000), RSADMIN_MEMBER);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "eve", 300999), RSADMIN_UNKNOWN);
	/* 5 minutes after it was written, an answer is gone */
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "ana", 301000), RSADMIN_UNAVAILABLE);
	/* one project's answer is not another's, nor another rs-admin's */
	TU_EQ_INT(rsadmin_cache_get(c, "p2", "http://a", "ana", 2000), RSADMIN_UNAVAILABLE);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://b", "ana", 2000), RSADMIN_UNAVAILABLE);
	/* a new answer replaces the old */
	TU_EQ_INT(rsadmin_cache_put(c, "p1", "http://a", "ana", RSADMIN_UNKNOWN, 2000, 300000), 0);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "ana", 2000), RSADMIN_UNKNOWN);
	TU_EQ_INT((int)rsadmin_cache_size(c), 2);
	rsadmin_free(c);
}

static void test_a_full_cache_drops_expired_then_oldest(void)
{
	rsadmin *c = rsadmin_new();
	char user[32];
	TU_CHECK(c != NULL);
	if (!c)
		return;
	for (int i = 0; i < RSADMIN_CACHE_MAX; i++) {
		snprintf(user, sizeof user, "u%d", i);
		/* u0 is short-lived; the others were written in order */
		rsadmin_cache_put(c, "p1", "http://a", user, RSADMIN_MEMBER, 1000 + i, i ? 600000 : 10);
	}
	TU_EQ_INT((int)rsadmin_cache_size(c), RSADMIN_CACHE_MAX);
	rsadmin_cache_put(c, "p1", "http://a", "new1", RSADMIN_MEMBER, 5000, 600000);
	TU_EQ_INT((int)rsadmin_cache_size(c), RSADMIN_CACHE_MAX);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "new1", 5000), RSADMIN_MEMBER);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "u1", 5000), RSADMIN_MEMBER);
	/* nothing expired now: the oldest (u1) goes */
	rsadmin_cache_put(c, "p1", "http://a", "new2", RSADMIN_MEMBER, 6000, 600000);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "u1", 6000), RSADMIN_UNAVAILABLE);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "u2", 6000), RSADMIN_MEMBER);
	TU_EQ_INT(rsadmin_cache_get(c, "p1", "http://a", "new2", 6000), RSADMIN_MEMBER);
	rsadmin_free(c);
}

/* a loopback port with no listener: connections are refused at once */
static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof a;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &n) < 0)
		return -1;
	close(s);
	return ntohs(a.sin_port);
}

static void test_no_answer_is_not_cached_and_pauses_the_tenant(void)
{
	char url[64], why[512];
	int port = closed_port();
	TU_CHECK(port > 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
	tenant t = { .name = "p1", .has_rs_admin = 1,
	    .rs_admin = { .url = url, .jwt_secret = "k", .timeout_seconds = 2, .cache_seconds = 300 } };
	rsadmin *c = rsadmin_new();
	if (!c)
		return;
	int64_t now = 1700000000000;
	TU_EQ_INT(rsadmin_check(c, &t, "ana", now, why, sizeof why), RSADMIN_UNAVAILABLE);
	TU_EQ_INT((int)rsadmin_asked(c), 1);
	TU_CHECK(strstr(why, url) != NULL);
	TU_EQ_INT((int)rsadmin_cache_size(c), 0);
	/* paused: another user of the tenant is not asked for 2 s */
	TU_EQ_INT(rsadmin_check(c, &t, "bob", now + 1999, why, sizeof why), RSADMIN_UNAVAILABLE);
	TU_EQ_INT((int)rsadmin_asked(c), 1);
	TU_CHECK(strstr(why, "failed 1 time in a row") != NULL);
	/* a cached answer is still given while paused */
	rsadmin_cache_put(c, "p1", url, "cid", RSADMIN_MEMBER, now, 300000);
	TU_EQ_INT(rsadmin_check(c, &t, "cid", now + 1000, why, sizeof why), RSADMIN_MEMBER);
	/* then asked again; a second failure pauses 4 s */
	TU_EQ_INT(rsadmin_check(c, &t, "bob", now + 2000, why, sizeof why), RSADMIN_UNAVAILABLE);
	TU_EQ_INT((int)rsadmin_asked(c), 2);
	TU_EQ_INT(rsadmin_check(c, &t, "bob", now + 5999, why, sizeof why), RSADMIN_UNAVAILABLE);
	TU_EQ_INT((int)rsadmin_asked(c), 2);
	TU_EQ_INT(rsadmin_check(c, &t, "bob", now + 6000, why, sizeof why), RSADMIN_UNAVAILABLE);
	TU_EQ_INT((int)rsadmin_asked(c), 3);
	/* another tenant on the same rs-admin has its own pause */
	t.name = "p2";
	TU_EQ_INT(rsadmin_check(c, &t, "bob", now + 6001, why, sizeof why), RSADMIN_UNAVAILABLE);
	TU_EQ_INT((int)rsadmin_asked(c), 4);
	rsadmin_free(c);
}

TU_MAIN(
	TU(test_the_url_of_a_user_is_one_path_segment),
	TU(test_status_200_belongs_404_does_not_others_are_no_answer),
	TU(test_cache_keeps_answers_per_tenant_and_url_until_they_expire),
	TU(test_a_full_cache_drops_expired_then_oldest),
	TU(test_no_answer_is_not_cached_and_pauses_the_tenant)
)
