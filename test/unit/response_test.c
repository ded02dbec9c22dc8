/* response_test: response bodies (field order, omission, escapes, the
 * 4096-byte cap on character boundaries), DONE bodies with ferry's
 * downloadUrl extension (left out whole when it does not fit) and outbox
 * headers of lib/response.c, every body parsed back with cJSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "response.h"
#include "util.h"
#include "tu.h"

#define MD5 "0123456789abcdef0123456789abcdef"

static char *repeat(const char *prefix, const char *seq, size_t n)
{
	size_t p = strlen(prefix), k = strlen(seq);
	char *s = malloc(p + k * n + 1);
	memcpy(s, prefix, p);
	for (size_t i = 0; i < n; i++)
		memcpy(s + p + i * k, seq, k);
	s[p + k * n] = '\0';
	return s;
}

/* body is valid UTF-8 JSON within the cap; returns it parsed */
static cJSON *parse_ok(const char *body)
{
	if (!TU_CHECK(body != NULL))
		return NULL;
	size_t n = strlen(body);
	TU_CHECK(n <= RESPONSE_MAX);
	TU_CHECK(util_utf8_valid(body, n));
	cJSON *j = cJSON_Parse(body);
	TU_CHECK(cJSON_IsObject(j));
	return j;
}

static const char *str(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void expect_body(char *got, const char *want)
{
	TU_EQ_STR(got, want);
	cJSON_Delete(parse_ok(got));
	free(got);
}

static void test_fields_in_regards_order_and_nulls_omitted(void)
{
	expect_body(response_body("c-42", "GRANTED", NULL, NULL, NULL, NULL),
	    "{\"correlationId\":\"c-42\",\"status\":\"GRANTED\"}");
	expect_body(response_body("c-42", "DENIED", "bad", "INVALID_CONTENT", NULL, NULL),
	    "{\"correlationId\":\"c-42\",\"status\":\"DENIED\",\"errorType\":\"INVALID_CONTENT\","
	    "\"message\":\"bad\"}");
	expect_body(response_body("c-42", "DONE", NULL, NULL, "s3://b/c-42/P1_1.zip", MD5),
	    "{\"correlationId\":\"c-42\",\"status\":\"DONE\",\"url\":\"s3://b/c-42/P1_1.zip\","
	    "\"md5\":\"" MD5 "\"}");
	expect_body(response_body("c", "ERROR", "m", "EMPTY_ORDER", "u", MD5),
	    "{\"correlationId\":\"c\",\"status\":\"ERROR\",\"errorType\":\"EMPTY_ORDER\","
	    "\"message\":\"m\",\"url\":\"u\",\"md5\":\"" MD5 "\"}");
	expect_body(response_body(NULL, NULL, NULL, NULL, NULL, NULL), "{}");
	expect_body(response_body("", "DENIED", "", NULL, NULL, NULL),
	    "{\"correlationId\":\"\",\"status\":\"DENIED\",\"message\":\"\"}");
}

static void test_strings_are_escaped_and_made_valid_utf8(void)
{
	const char *msg = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f \xC3\xA9\xF0\x9F\x98\x80";
	char *body = response_body("c", "DENIED", msg, NULL, NULL, NULL);
	TU_EQ_STR(body, "{\"correlationId\":\"c\",\"status\":\"DENIED\",\"message\":"
	    "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xC3\xA9\xF0\x9F\x98\x80\"}");
	cJSON *j = parse_ok(body);
	TU_EQ_STR(str(j, "message"), msg);
	cJSON_Delete(j);
	free(body);
	/* invalid bytes, truncated sequences, overlongs, surrogates -> U+FFFD */
	expect_body(response_body("c\xFF", "DENIED", "a\xC3" "b\xC0\xAF\xED\xA0\x80", NULL, NULL, NULL),
	    "{\"correlationId\":\"c\xEF\xBF\xBD\",\"status\":\"DENIED\",\"message\":"
	    "\"a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"}");
}

/* A message of prefix + seq*n cut to fit: valid, parses back, ends in "…",
 * the kept part is a prefix of the original, and the cut wasted < 1 char. */
static void check_cut(const char *prefix, const char *seq, size_t n, size_t esc_per_char)
{
	char *msg = repeat(prefix, seq, n);
	char *body = response_body("c-42", "ERROR", msg, "INTERNAL_ERROR", NULL, NULL);
	cJSON *j = parse_ok(body);
	const char *m = str(j, "message");
	if (TU_CHECK(m != NULL)) {
		size_t ml = strlen(m);
		TU_CHECK(ml >= 3 && strcmp(m + ml - 3, "\xE2\x80\xA6") == 0);
		if (util_utf8_valid(msg, strlen(msg)))
			TU_CHECK(strncmp(m, msg, ml - 3) == 0);
		TU_CHECK(strlen(body) > RESPONSE_MAX - esc_per_char);
	}
	TU_EQ_STR(str(j, "correlationId"), "c-42");
	TU_EQ_STR(str(j, "errorType"), "INTERNAL_ERROR");
	cJSON_Delete(j);
	free(body);
	free(msg);
}

static void test_long_messages_cut_on_a_character_boundary(void)
{
	static const struct { const char *seq; size_t esc; } seqs[] = {
		{ "a", 1 }, { "\xC3\xA9", 2 }, { "\xE2\x82\xAC", 3 }, { "\xF0\x9F\x98\x80", 4 },
		{ "\"", 2 }, { "\x01", 6 }, { "\xFF", 3 },
	};
	static const char *const prefixes[] = { "", "x", "xy", "xyz" };
	for (size_t i = 0; i < sizeof seqs / sizeof *seqs; i++)
		for (size_t p = 0; p < 4; p++)
			check_cut(prefixes[p], seqs[i].seq, 5000, seqs[i].esc);
}

static void test_a_message_that_fits_is_kept_whole(void)
{
	/* overhead of {"correlationId":"c","status":"DENIED","message":""} */
	size_t over = strlen("{\"correlationId\":\"c\",\"status\":\"DENIED\",\"message\":\"\"}");
	char *msg = repeat("", "m", RESPONSE_MAX - over);
	char *body = response_body("c", "DENIED", msg, NULL, NULL, NULL);
	TU_EQ_INT(strlen(body), RESPONSE_MAX);
	TU_CHECK(strstr(body, "\xE2\x80\xA6") == NULL);
	free(body);
	free(msg);
	msg = repeat("", "m", RESPONSE_MAX - over + 1);
	body = response_body("c", "DENIED", msg, NULL, NULL, NULL);
	TU_EQ_INT(strlen(body), RESPONSE_MAX);
	TU_CHECK(strstr(body, "m\xE2\x80\xA6\"}") != NULL);
	free(body);
	free(msg);
}

static void test_an_over_long_correlation_id_is_cut_after_the_message(void)
{
	char *cid = repeat("", "\xC3\xA9", 3000);
	char *body = response_body(cid, "DENIED", "a message", "INVALID_CONTENT", NULL, NULL);
	cJSON *j = parse_ok(body);
	TU_EQ_STR(str(j, "message"), "");
	const char *c = str(j, "correlationId");
	if (TU_CHECK(c != NULL)) {
		TU_CHECK(strlen(c) > 3900);
		TU_CHECK(strcmp(c + strlen(c) - 3, "\xE2\x80\xA6") == 0);
		TU_CHECK(strncmp(c, cid, strlen(c) - 3) == 0);
	}
	cJSON_Delete(j);
	free(body);
	free(cid);
	/* a cid of 255 worst-case characters fits beside a huge message */
	cid = repeat("", "\x01", 255);
	char *msg = repeat("", "m", 10000);
	body = response_body(cid, "DENIED", msg, "INVALID_CONTENT", NULL, NULL);
	j = parse_ok(body);
	TU_EQ_STR(str(j, "correlationId"), cid);
	cJSON_Delete(j);
	free(body);
	free(msg);
	free(cid);
}

static void test_what_cannot_be_cut_is_refused(void)
{
	char *url = repeat("s3://b/", "u", 5000);
	errno = 0;
	TU_CHECK(response_body("c", "DONE", NULL, NULL, url, MD5) == NULL);
	TU_EQ_INT(errno, EMSGSIZE);
	free(url);
}

#define DL "http://127.0.0.1:9000/deliveries/c-42/P1_1.zip?X-Amz-Signature=ab"

static void test_done_has_download_url_after_md5(void)
{
	int dropped = -1;
	expect_body(response_body_done("c-42", "s3://b/c-42/P1_1.zip", MD5, DL, &dropped),
	    "{\"correlationId\":\"c-42\",\"status\":\"DONE\",\"url\":\"s3://b/c-42/P1_1.zip\","
	    "\"md5\":\"" MD5 "\",\"downloadUrl\":\"" DL "\"}");
	TU_EQ_INT(dropped, 0);
	/* none asked: the very body response_body gives */
	char *plain = response_body("c-42", "DONE", NULL, NULL, "s3://b/c-42/P1_1.zip", MD5);
	expect_body(response_body_done("c-42", "s3://b/c-42/P1_1.zip", MD5, NULL, &dropped), plain);
	TU_EQ_INT(dropped, 0);
	expect_body(response_body_done("c-42", "s3://b/c-42/P1_1.zip", MD5, NULL, NULL), plain);
	free(plain);
	/* escaped like every field */
	expect_body(response_body_done("c", "u", MD5, "h\"\\", NULL),
	    "{\"correlationId\":\"c\",\"status\":\"DONE\",\"url\":\"u\",\"md5\":\"" MD5 "\","
	    "\"downloadUrl\":\"h\\\"\\\\\"}");
}

/* the body with downloadUrl of exactly RESPONSE_MAX bytes keeps it; one
 * byte more and downloadUrl goes whole (warned by the caller), nothing
 * else is cut: not the correlationId, not the url */
static void test_a_download_url_that_does_not_fit_is_left_out(void)
{
	const char *cid = "c-\xC3\xA9\x01";
	char *plain = response_body("c-\xC3\xA9\x01", "DONE", NULL, NULL, "s3://b/k", MD5);
	size_t over = strlen(plain) + strlen(",\"downloadUrl\":\"\"");
	char *dl = repeat("http://h/", "a", RESPONSE_MAX - over - strlen("http://h/"));
	int dropped = -1;
	char *body = response_body_done(cid, "s3://b/k", MD5, dl, &dropped);
	TU_EQ_INT(dropped, 0);
	TU_EQ_INT(strlen(body), RESPONSE_MAX);
	cJSON *j = parse_ok(body);
	TU_EQ_STR(str(j, "downloadUrl"), dl);
	cJSON_Delete(j);
	free(body);
	free(dl);
	dl = repeat("http://h/", "a", RESPONSE_MAX - over - strlen("http://h/") + 1);
	body = response_body_done(cid, "s3://b/k", MD5, dl, &dropped);
	TU_EQ_INT(dropped, 1);
	TU_EQ_STR(body, plain);
	j = parse_ok(body);
	TU_EQ_STR(str(j, "correlationId"), cid);
	TU_CHECK(str(j, "downloadUrl") == NULL);
	cJSON_Delete(j);
	free(body);
	free(dl);
	/* a URL far too long, and one that is all escapes */
	dl = repeat("", "\x01", 2000);
	body = response_body_done(cid, "s3://b/k", MD5, dl, &dropped);
	TU_EQ_INT(dropped, 1);
	TU_EQ_STR(body, plain);
	free(body);
	free(dl);
	free(plain);
	/* a url too long for any body is refused as by response_body */
	char *url = repeat("s3://b/", "u", 5000);
	errno = 0;
	TU_CHECK(response_body_done("c", url, MD5, DL, &dropped) == NULL);
	TU_EQ_INT(errno, EMSGSIZE);
	free(url);
}

static void expect_headers(const char *tenant, const char *item_headers, const char *want)
{
	cJSON *h = item_headers ? cJSON_Parse(item_headers) : NULL;
	char *got = response_headers(tenant, h);
	TU_EQ_STR(got, want);
	free(got);
	cJSON_Delete(h);
}

static void test_headers_carry_tenant_priority_and_app_id(void)
{
	expect_headers("p1", "{\"priority\":3,\"app_id\":\"client\",\"x\":1}",
	    "{\"regards.tenant\":\"p1\",\"priority\":3,\"app_id\":\"client\"}");
	expect_headers("p1", "{\"priority\":0}", "{\"regards.tenant\":\"p1\",\"priority\":0}");
	expect_headers("p1", "{\"priority\":255}", "{\"regards.tenant\":\"p1\",\"priority\":255}");
	expect_headers("p1", "{}", "{\"regards.tenant\":\"p1\"}");
	expect_headers("p1", NULL, "{\"regards.tenant\":\"p1\"}");
	expect_headers(NULL, "{\"app_id\":\"a\"}", "{\"app_id\":\"a\"}");
	expect_headers("p1", "{\"priority\":256,\"app_id\":\"\"}", "{\"regards.tenant\":\"p1\"}");
	expect_headers("p1", "{\"priority\":-1,\"app_id\":7}", "{\"regards.tenant\":\"p1\"}");
	expect_headers("p1", "{\"priority\":1.5}", "{\"regards.tenant\":\"p1\"}");
	expect_headers("p1", "{\"priority\":\"3\"}", "{\"regards.tenant\":\"p1\"}");
	expect_headers("p1", "{\"app_id\":\"a\\u0000b\"}", "{\"regards.tenant\":\"p1\",\"app_id\":\"a\"}");
}

static void test_app_id_cut_to_an_amqp_shortstr(void)
{
	char *app = repeat("ab", "\xE2\x82\xAC", 200);   /* 602 bytes */
	cJSON *h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "app_id", app);
	char *got = response_headers("p1", h);
	cJSON *j = cJSON_Parse(got);
	const char *a = str(j, "app_id");
	if (TU_CHECK(a != NULL)) {
		TU_EQ_INT(strlen(a), 254);                    /* 2 + 84 * 3 */
		TU_CHECK(util_utf8_valid(a, strlen(a)));
		TU_CHECK(strncmp(a, app, strlen(a)) == 0);
	}
	cJSON_Delete(j);
	free(got);
	cJSON_Delete(h);
	free(app);
	h = cJSON_CreateObject();
	cJSON_AddStringToObject(h, "app_id", "x\xFFy");
	got = response_headers("p1", h);
	TU_EQ_STR(got, "{\"regards.tenant\":\"p1\",\"app_id\":\"x\xEF\xBF\xBDy\"}");
	free(got);
	cJSON_Delete(h);
}

/* 50,000 bytes of \xff, 150,000 as U+FFFD: a header no frame could hold */
static void test_a_huge_invalid_tenant_is_cut_to_the_header_bound(void)
{
	char *t = malloc(50001);
	memset(t, 0xFF, 50000);
	t[50000] = '\0';
	char *got = response_headers(t, NULL);
	cJSON *j = cJSON_Parse(got);
	const char *v = str(j, "regards.tenant");
	if (TU_CHECK(v != NULL)) {
		TU_EQ_INT(strlen(v), 255);                    /* 85 x U+FFFD */
		TU_CHECK(util_utf8_valid(v, strlen(v)));
	}
	cJSON_Delete(j);
	free(got);
	free(t);
}

/* props_env(app, prio, cid): response_props_from_env's result with those
 * values set (NULL: unset) */
static int props_env(const char *app, const char *prio, const char *cid,
    struct response_props *p)
{
	const char *names[] = { "FERRY_APP_ID", "FERRY_RESPONSE_PRIORITY",
		"FERRY_RESPONSE_CORRELATION_ID" };
	const char *vals[] = { app, prio, cid };
	for (int i = 0; i < 3; i++)
		if (vals[i])
			setenv(names[i], vals[i], 1);
		else
			unsetenv(names[i]);
	char err[128];
	return response_props_from_env(p, err, sizeof err);
}

static void test_properties_are_regards_by_default(void)
{
	struct response_props p;
	TU_EQ_INT(props_env(NULL, NULL, NULL, &p), 0);
	TU_EQ_STR(p.app_id, "REGARDS");
	TU_EQ_INT(p.priority, 1);
	TU_EQ_INT(p.correlation_id, 1);
	TU_EQ_INT(props_env("", "", "", &p), 0);          /* empty means the default */
	TU_EQ_STR(p.app_id, "REGARDS");
	TU_EQ_INT(p.priority, 1);
	cJSON *h = cJSON_Parse("{\"priority\":7}");
	TU_EQ_INT(response_priority(&p, h), 1);           /* not the request's */
	TU_EQ_INT(props_env("ferry-a", "request", "0", &p), 0);
	TU_EQ_STR(p.app_id, "ferry-a");
	TU_EQ_INT(p.correlation_id, 0);
	TU_EQ_INT(response_priority(&p, h), 7);
	TU_EQ_INT(response_priority(&p, NULL), -1);
	cJSON_Delete(h);
	h = cJSON_Parse("{\"priority\":1.5}");
	TU_EQ_INT(response_priority(&p, h), -1);
	cJSON_Delete(h);
	TU_EQ_INT(props_env(NULL, "0", NULL, &p), 0);
	TU_EQ_INT(p.priority, 0);
	TU_EQ_INT(props_env(NULL, "255", NULL, &p), 0);
	TU_EQ_INT(p.priority, 255);
}

static void test_bad_properties_are_refused(void)
{
	struct response_props p;
	const char *prios[] = { "256", "-1", "+1", " 1", "1x", "high", "Request" };
	for (size_t i = 0; i < sizeof prios / sizeof *prios; i++)
		TU_EQ_INT(props_env(NULL, prios[i], NULL, &p), -1);
	const char *cids[] = { "yes", "2", "00", "true" };
	for (size_t i = 0; i < sizeof cids / sizeof *cids; i++)
		TU_EQ_INT(props_env(NULL, NULL, cids[i], &p), -1);
	char *long_app = repeat("", "a", 256);
	TU_EQ_INT(props_env(long_app, NULL, NULL, &p), -1);
	long_app[255] = '\0';
	TU_EQ_INT(props_env(long_app, NULL, NULL, &p), 0);
	free(long_app);
	TU_EQ_INT(props_env("a\tb", NULL, NULL, &p), -1);
	TU_EQ_INT(props_env("caf\xC3\xA9", NULL, NULL, &p), -1);
	props_env(NULL, NULL, NULL, &p);
}

/* Each expected url printed by OpenJDK 17's
 * new java.net.URI("s3", "deliveries", "/" + key, null).toString(),
 * as rs-delivery's DeliveryZipUploadService builds it. */
static void test_s3_url_quoted_as_java_uri(void)
{
	static const char *const table[][2] = {
		{ "c 1+\xC3\xA9/\xC3\xBC~%/P1 1+\xC3\xA4.zip",
		  "s3://deliveries/c%201+\xC3\xA9/\xC3\xBC~%25/P1%201+\xC3\xA4.zip" },
		{ "a/b.zip", "s3://deliveries/a/b.zip" },
		{ "x!$&'()*+,;=:@-._~/y.zip", "s3://deliveries/x!$&'()*+,;=:@-._~/y.zip" },
		{ "q?r#s[t]u{v}w|x\\y^z`\"<>.zip",
		  "s3://deliveries/q%3Fr%23s%5Bt%5Du%7Bv%7Dw%7Cx%5Cy%5Ez%60%22%3C%3E.zip" },
		{ "ctl/a\tb.zip", "s3://deliveries/ctl/a%09b.zip" },
		{ "del/x\x7Fy.zip", "s3://deliveries/del/x%7Fy.zip" },
		{ "ideo\xE3\x80\x80x.zip", "s3://deliveries/ideo%E3%80%80x.zip" },
		{ "euro\xE2\x82\xAC/\xF0\x9D\x84\x9E.zip",
		  "s3://deliveries/euro\xE2\x82\xAC/\xF0\x9D\x84\x9E.zip" },
		{ "a\xC2\xA0" "b/c\xE2\x80\x83" "d/e\xC2\x85" "f/g\xE2\x80\xA8h\xE2\x80\xA9i/j\xE2\x80\x8B"
		  "k/l\xC2\xAD" "m/n\xE1\x9A\x80o/p\xE2\x80\xAFq\xE2\x81\x9F" "r/s\xC2\x9F" "t\xC2\xA1u",
		  "s3://deliveries/a%C2%A0b/c%E2%80%83d/e%C2%85f/g%E2%80%A8h%E2%80%A9i/j\xE2\x80\x8B"
		  "k/l\xC2\xAD" "m/n%E1%9A%80o/p%E2%80%AFq%E2%81%9F" "r/s%C2%9F" "t\xC2\xA1u" },
	};
	char out[512];
	for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
		TU_EQ_INT(response_s3_url("deliveries", table[i][0], out, sizeof out), 0);
		TU_EQ_STR(out, table[i][1]);
	}
	/* invalid UTF-8 (no Java string holds it): each byte quoted */
	TU_EQ_INT(response_s3_url("b", "x\xFFy\xC3", out, sizeof out), 0);
	TU_EQ_STR(out, "s3://b/x%FFy%C3");
	/* the exact fit, and one byte short */
	TU_EQ_INT(response_s3_url("b", "a b", out, 13), 0);
	TU_EQ_STR(out, "s3://b/a%20b");
	errno = 0;
	TU_EQ_INT(response_s3_url("b", "a b", out, 12), -1);
	TU_EQ_INT(errno, ENAMETOOLONG);
	TU_EQ_INT(response_s3_url("bucket", "", out, 6), -1);
}

TU_MAIN(TU(test_fields_in_regards_order_and_nulls_omitted),
    TU(test_strings_are_escaped_and_made_valid_utf8),
    TU(test_long_messages_cut_on_a_character_boundary),
    TU(test_a_message_that_fits_is_kept_whole),
    TU(test_an_over_long_correlation_id_is_cut_after_the_message),
    TU(test_what_cannot_be_cut_is_refused),
    TU(test_done_has_download_url_after_md5),
    TU(test_a_download_url_that_does_not_fit_is_left_out),
    TU(test_headers_carry_tenant_priority_and_app_id),
    TU(test_app_id_cut_to_an_amqp_shortstr),
    TU(test_a_huge_invalid_tenant_is_cut_to_the_header_bound),
    TU(test_properties_are_regards_by_default),
    TU(test_bad_properties_are_refused),
    TU(test_s3_url_quoted_as_java_uri))
