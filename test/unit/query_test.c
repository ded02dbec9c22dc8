/* query_test: lib/query's grammar (the tree each query parses to), what
 * each query selects from a small catalog, the errors and their positions,
 * and the limits that keep hostile queries harmless. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "query.h"
#include "tu.h"

static const struct { const char *text, *tree; } trees[] = {
	{ "*", "*" },
	{ "*:*", "*" },
	{ "  tags:a  ", "tags:\"a\"" },
	{ "tags:*", "tags:*" },
	{ "tags:a b", "(AND tags:\"a\" *:\"b\")" },
	{ "a OR b c", "(OR *:\"a\" (AND *:\"b\" *:\"c\"))" },
	{ "a && b || c", "(OR (AND *:\"a\" *:\"b\") *:\"c\")" },
	{ "a AND b AND c", "(AND *:\"a\" *:\"b\" *:\"c\")" },
	{ "(a AND b) AND c", "(AND *:\"a\" *:\"b\" *:\"c\")" },
	{ "a AND (b OR c)", "(AND *:\"a\" (OR *:\"b\" *:\"c\"))" },
	{ "NOT a", "(NOT *:\"a\")" },
	{ "!a", "(NOT *:\"a\")" },
	{ "-a +b", "(AND (NOT *:\"a\") *:\"b\")" },
	{ "-(a b)", "(NOT (AND *:\"a\" *:\"b\"))" },
	{ "NOT NOT a", "(NOT (NOT *:\"a\"))" },
	{ "tags:(a OR b*)", "(OR tags:\"a\" tags:b*)" },
	{ "tags:(a OR dataset:b)", "(OR tags:\"a\" dataset:\"b\")" },
	{ "x:\"q \\\" z\"", "properties.x:\"q \\\" z\"" },
	{ "properties.version:3", "properties.version:\"3\"" },
	{ "id:P1 providerId:P2 productId:P3", "(AND productId:\"P1\" productId:\"P2\" productId:\"P3\")" },
	{ "tag:a", "tags:\"a\"" },
	{ "tags:a\\*b", "tags:\"a*b\"" },
	{ "tags:a\\*b*", "tags:a\\*b*" },
	{ "tags:a?c", "tags:a?c" },
	{ "tags:\"a*\"", "tags:\"a*\"" },
	{ "tags:URN:AIP:X", "tags:\"URN:AIP:X\"" },
	{ "Platform:S2", "properties.Platform:\"S2\"" },
	{ "ANDROID and or", "(AND *:\"ANDROID\" *:\"and\" *:\"or\")" },
	{ "S2A-MSI", "*:\"S2A-MSI\"" },
	{ "a\\ b", "*:\"a b\"" },
	{ "tags:\"\"", "tags:\"\"" },
	{ "\u00e9t\u00e9", "*:\"\u00e9t\u00e9\"" },
};

static void test_queries_parse_to_the_expected_tree(void)
{
	for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++) {
		char err[256] = "", buf[512];
		query *q = query_parse(trees[i].text, err, sizeof err);
		if (!TU_CHECK(q != NULL)) {
			printf("# %s: %s\n", trees[i].text, err);
			continue;
		}
		size_t n = query_format(q, buf, sizeof buf);
		TU_EQ_INT(n, strlen(buf));
		if (!TU_EQ_STR(buf, trees[i].tree))
			printf("# query %s\n", trees[i].text);
		TU_EQ_INT(query_check(trees[i].text, err, sizeof err), 0);
		query_free(q);
	}
	query_free(NULL);
}

static const struct { const char *text, *err; } errors[] = {
	{ "", "query \"\": empty query" },
	{ " \t ", "query \" \t \": empty query" },
	{ "tags:(a", "query \"tags:(a\": missing ) at position 6" },
	{ "a)", "query \"a)\": unexpected ) at position 2" },
	{ "()", "query \"()\": unexpected ) at position 2" },
	{ "a AND", "query \"a AND\": missing term at position 6" },
	{ "NOT", "query \"NOT\": missing term at position 4" },
	{ "AND a", "query \"AND a\": unexpected AND at position 1" },
	{ "a OR OR b", "query \"a OR OR b\": unexpected OR at position 6" },
	{ "a || && b", "query \"a || && b\": unexpected && at position 6" },
	{ "tags:", "query \"tags:\": missing value after : at position 6" },
	{ "tags: a", "query \"tags: a\": missing value after : at position 6" },
	{ ":a", "query \":a\": missing field name before : at position 1" },
	{ "x \"abc", "query \"x \"abc\": missing closing \" at position 3" },
	{ "a - b", "query \"a - b\": - without a term at position 3" },
	{ "ta*gs:x", "query \"ta*gs:x\": wildcards in field names are not supported at position 1" },
	{ "a\\", "query \"a\\\": nothing to escape after \\ at position 2" },
	{ "tags:[a TO b]", "query \"tags:[a TO b]\": [ is not supported (no ranges, fuzzy or "
	  "boosted terms; quote or escape it) at position 6" },
	{ "a~2", "query \"a~2\": ~ is not supported (no ranges, fuzzy or boosted terms; "
	  "quote or escape it) at position 2" },
	{ "\u00e9t\u00e9 AND", "query \"\u00e9t\u00e9 AND\": missing term at position 8" },
};

static void test_bad_queries_are_refused_naming_the_position(void)
{
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
		char err[256] = "";
		errno = 0;
		query *q = query_parse(errors[i].text, err, sizeof err);
		TU_CHECK(q == NULL);
		TU_EQ_INT(errno, EINVAL);
		if (!TU_EQ_STR(err, errors[i].err))
			printf("# query %s\n", errors[i].text);
		query_free(q);
		err[0] = '\0';
		TU_EQ_INT(query_check(errors[i].text, err, sizeof err), -1);
		TU_EQ_STR(err, errors[i].err);
	}
}

/* n copies of s followed by tail, malloc'd */
static char *repeat(const char *head, size_t n, const char *s, const char *tail)
{
	size_t k = strlen(s);
	char *out = malloc(strlen(head) + n * k + strlen(tail) + 1), *o = out;
	o += sprintf(o, "%s", head);
	for (size_t i = 0; i < n; i++, o += k)
		memcpy(o, s, k);
	strcpy(o, tail);
	return out;
}

static void test_deep_nesting_is_refused_not_a_crash(void)
{
	char err[256];
	char *ok = repeat("", QUERY_MAX_DEPTH, "(", "a");
	char *closed = repeat(ok, QUERY_MAX_DEPTH, ")", "");
	TU_EQ_INT(query_check(closed, err, sizeof err), 0);
	static const char *const units[] = { "(", "NOT ", "!", "-", "+" };
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		char *deep = repeat("", 10000, units[i], "a");
		TU_EQ_INT(query_check(deep, err, sizeof err), -1);
		if (!TU_CHECK(strstr(err, "nested deeper than 100 at position") != NULL))
			printf("# %s: %s\n", units[i], err);
		free(deep);
	}
	char *over = repeat("", QUERY_MAX_DEPTH + 1, "(", "a");
	TU_EQ_INT(query_check(over, err, sizeof err), -1);
	TU_CHECK(strstr(err, "nested deeper than 100 at position 101") != NULL);
	/* the message quotes the query cut to 64 characters */
	TU_CHECK(strstr(err, "(((\xe2\x80\xa6\"") != NULL);
	free(ok);
	free(closed);
	free(over);
}

static void test_too_many_terms_or_bytes_are_refused(void)
{
	char err[256];
	char *max = repeat("a", QUERY_MAX_TERMS - 1, " OR a", "");
	char *over = repeat("a", QUERY_MAX_TERMS, " OR a", "");
	TU_EQ_INT(query_check(max, err, sizeof err), 0);
	TU_EQ_INT(query_check(over, err, sizeof err), -1);
	TU_CHECK(strstr(err, "more than 1024 terms") != NULL);
	char *longq = repeat("", QUERY_MAX_LENGTH + 1, " ", "");
	longq[0] = 'a';
	TU_EQ_INT(query_check(longq, err, sizeof err), -1);
	TU_CHECK(strstr(err, "longer than 65536 bytes") != NULL);
	free(max);
	free(over);
	free(longq);
}

/* --- what queries select, on a small catalog -------------------------- */

static const char *const fixture[] = {
	"{\"productId\":\"P1\",\"dataset\":\"coast\",\"tags\":[\"coastline\",\"sentinel\",\"50xyoff\"],"
	"\"attributes\":{\"platform\":\"S2A\",\"cloud\":12},"
	"\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"a.nc\",\"url\":\"file:///d/a.nc\",\"size\":1,"
	"\"md5\":\"0cc175b9c0f1b6a831c399e269772661\"}]}",
	"{\"productId\":\"P2\",\"version\":1,\"dataset\":\"ocean\",\"tags\":[\"ocean\"],"
	"\"attributes\":{\"platform\":\"S3B\"},"
	"\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"b.nc\",\"url\":\"file:///d/b.nc\",\"size\":1,"
	"\"md5\":\"0cc175b9c0f1b6a831c399e269772661\"}]}",
	"{\"productId\":\"P2\",\"version\":2,\"dataset\":\"ocean\",\"tags\":[\"ocean\",\"coastline\"],"
	"\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"b2.nc\",\"url\":\"file:///d/b2.nc\",\"size\":1,"
	"\"md5\":\"0cc175b9c0f1b6a831c399e269772661\"}]}",
	"{\"productId\":\"p3\",\"tags\":[\"URN:AIP:X\",\"50%_off\"],\"attributes\":{\"band\":[\"B01\",\"B02\"]},"
	"\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"c.txt\",\"url\":\"file:///d/c.txt\",\"size\":1,"
	"\"md5\":\"0cc175b9c0f1b6a831c399e269772661\"}]}",
	"{\"productId\":\"Other Thing\",\"version\":7,\"dataset\":\"Coast Line\",\"tags\":[\"with space\"],"
	"\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"d.bin\",\"url\":\"file:///d/d.bin\",\"size\":1,"
	"\"md5\":\"0cc175b9c0f1b6a831c399e269772661\"}]}",
};

static const struct { const char *text, *products; } selects[] = {
	{ "*", "Other Thing_7 P1_1 P2_1 P2_2 p3_1" },
	{ "tags:coastline", "P1_1 P2_2" },
	{ "tags:COASTLINE", "P1_1 P2_2" },
	{ "tag:coast*", "P1_1 P2_2" },
	{ "tags:c?astline", "P1_1 P2_2" },
	{ "tags:*", "Other Thing_7 P1_1 P2_1 P2_2 p3_1" },
	{ "tags:ocean AND version:2", "P2_2" },
	{ "tags:ocean version:2", "P2_2" },
	{ "tags:ocean OR tags:sentinel", "P1_1 P2_1 P2_2" },
	{ "tags:ocean || tags:sentinel", "P1_1 P2_1 P2_2" },
	{ "tags:ocean && NOT version:2", "P2_1" },
	{ "tags:ocean -version:2", "P2_1" },
	{ "tags:ocean !version:2", "P2_1" },
	{ "+tags:ocean +version:1", "P2_1" },
	{ "NOT tags:coastline", "Other Thing_7 P2_1 p3_1" },
	{ "tags:sentinel OR tags:ocean AND version:2", "P1_1 P2_2" },
	{ "tags:(ocean OR sentinel) AND version:1", "P1_1 P2_1" },
	{ "tags:(ocean sentinel)", "" },
	{ "(tags:ocean OR tags:sentinel) AND NOT (productId:P2 AND version:2)", "P1_1 P2_1" },
	{ "productId:P2", "P2_1 P2_2" },
	{ "id:p2", "P2_1 P2_2" },
	{ "productId:p*", "P1_1 P2_1 P2_2 p3_1" },
	{ "productId:\"Other Thing\"", "Other Thing_7" },
	{ "dataset:coast", "P1_1" },
	{ "dataset:\"coast line\"", "Other Thing_7" },
	{ "dataset:*", "Other Thing_7 P1_1 P2_1 P2_2" },
	{ "NOT dataset:ocean", "Other Thing_7 P1_1 p3_1" },
	{ "platform:S2A", "P1_1" },
	{ "properties.platform:s2*", "P1_1" },
	{ "platform:S?B", "P2_1" },
	{ "platform:*", "P1_1 P2_1" },
	{ "Platform:S2A", "" },
	{ "cloud:12", "P1_1" },
	{ "band:B02", "p3_1" },
	{ "band:*", "p3_1" },
	{ "tags:URN\\:AIP\\:X", "p3_1" },
	{ "tags:URN:AIP:X", "p3_1" },
	{ "tags:\"urn:aip:x\"", "p3_1" },
	{ "tags:50%_*", "p3_1" },
	{ "tags:50?_off", "p3_1" },
	{ "tags:\"50*\"", "" },
	{ "coastline", "P1_1 P2_2" },
	{ "S3B", "P2_1" },
	{ "ocean", "P2_1 P2_2" },
	{ "p1", "P1_1" },
	{ "\"with space\"", "Other Thing_7" },
	{ "coast*", "Other Thing_7 P1_1 P2_2" },
	{ "version:7", "Other Thing_7" },
	{ "version:1*", "P1_1 P2_1 p3_1" },
	{ "version:abc", "" },
	{ "tags:nothing", "" },
	{ "nothing OR *", "Other Thing_7 P1_1 P2_1 P2_2 p3_1" },
};

struct seen {
	char buf[256];
};

static int collect(void *arg, const struct catalog_file *f)
{
	struct seen *s = arg;
	size_t n = strlen(s->buf);
	snprintf(s->buf + n, sizeof s->buf - n, "%s%s_%lld", n ? " " : "", f->product_id,
	    (long long)f->version);
	return 0;
}

static catalog *open_fixture(void)
{
	char path[256], err[256];
	catalog *c;
	snprintf(path, sizeof path, "%s/catalog.db", tu_tmpdir());
	if (catalog_open(path, 1, &c, err, sizeof err) < 0) {
		printf("# %s\n", err);
		exit(2);
	}
	for (size_t i = 0; i < sizeof fixture / sizeof fixture[0]; i++) {
		cJSON *p = cJSON_Parse(fixture[i]);
		if (!TU_EQ_INT(catalog_add(c, p), 0))
			printf("# %s\n", catalog_error(c));
		cJSON_Delete(p);
	}
	return c;
}

static void test_queries_select_the_expected_products(void)
{
	catalog *c = open_fixture();
	for (size_t i = 0; i < sizeof selects / sizeof selects[0]; i++) {
		struct seen s = { "" };
		const char *q = selects[i].text;
		int n = catalog_resolve(c, &q, 1, collect, &s);
		if (!TU_CHECK(n >= 0))
			printf("# %s: %s\n", q, catalog_error(c));
		if (!TU_EQ_STR(s.buf, selects[i].products))
			printf("# query %s\n", q);
	}
	catalog_close(c);
}

static void test_a_query_of_1024_terms_resolves(void)
{
	catalog *c = open_fixture();
	char *q = repeat("tags:sentinel", QUERY_MAX_TERMS - 1, " OR tags:x*", "");
	char *q2 = repeat("p3", QUERY_MAX_TERMS - 1, " -tags:x*", "");
	const char *both[] = { q, q2 };
	struct seen s = { "" };
	TU_EQ_INT(catalog_resolve(c, both, 2, collect, &s), 2);
	TU_EQ_STR(s.buf, "P1_1 p3_1");
	free(q);
	free(q2);
	catalog_close(c);
}

TU_MAIN(
	TU(test_queries_parse_to_the_expected_tree),
	TU(test_bad_queries_are_refused_naming_the_position),
	TU(test_deep_nesting_is_refused_not_a_crash),
	TU(test_too_many_terms_or_bytes_are_refused),
	TU(test_queries_select_the_expected_products),
	TU(test_a_query_of_1024_terms_resolves)
)
