/* catalog_test: lib/catalog — products added, replaced and refused (with
 * the field named), files resolved in order and filtered as order.filters
 * say, listing that round-trips, schema checks, and a 20,000-file resolve. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "catalog.h"
#include "tu.h"

#define MD5A "0cc175b9c0f1b6a831c399e269772661"

static catalog *fresh(const char *name)
{
	char path[256], err[512];
	catalog *c = NULL;
	snprintf(path, sizeof path, "%s/%s", tu_tmpdir(), name);
	if (!TU_EQ_INT(catalog_open(path, 1, &c, err, sizeof err), 0)) {
		printf("# %s\n", err);
		exit(2);
	}
	return c;
}

static int add(catalog *c, const char *json)
{
	cJSON *p = cJSON_Parse(json);
	if (!p) {
		printf("# bad fixture %s\n", json);
		exit(2);
	}
	int rc = catalog_add(c, p);
	cJSON_Delete(p);
	return rc;
}

/* "productId_version/name" of every file resolved, space separated */
struct seen {
	char buf[1024];
	int stop_after;
};

static int collect(void *arg, const struct catalog_file *f)
{
	struct seen *s = arg;
	size_t n = strlen(s->buf);
	snprintf(s->buf + n, sizeof s->buf - n, "%s%s_%lld/%s", n ? " " : "", f->product_id,
	    (long long)f->version, f->name);
	return s->stop_after && --s->stop_after == 0;
}

static const char *resolve1(catalog *c, const char *q, struct seen *s)
{
	s->buf[0] = '\0';
	if (catalog_resolve(c, &q, 1, collect, s) < 0)
		printf("# %s\n", catalog_error(c));
	return s->buf;
}

static void test_files_come_ordered_by_product_version_and_name(void)
{
	catalog *c = fresh("order.db");
	struct seen s = { "", 0 };
	TU_EQ_INT(add(c, "{\"productId\":\"B\",\"version\":2,\"files\":["
	    "{\"dataType\":\"RAWDATA\",\"name\":\"z\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"},"
	    "{\"dataType\":\"RAWDATA\",\"name\":\"a\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"B\",\"version\":10,\"files\":["
	    "{\"dataType\":\"RAWDATA\",\"name\":\"m\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"A\",\"files\":["
	    "{\"dataType\":\"RAWDATA\",\"name\":\"y\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_STR(resolve1(c, "*", &s), "A_1/y B_2/a B_2/z B_10/m");
	const char *two[] = { "productId:A", "version:10" };
	s.buf[0] = '\0';
	TU_EQ_INT(catalog_resolve(c, two, 2, collect, &s), 2);
	TU_EQ_STR(s.buf, "A_1/y B_10/m");
	/* a product matched by two queries comes once */
	const char *twice[] = { "productId:B", "version:2", "version:10" };
	s.buf[0] = '\0';
	TU_EQ_INT(catalog_resolve(c, twice, 3, collect, &s), 3);
	TU_EQ_STR(s.buf, "B_2/a B_2/z B_10/m");
	/* fn returning non-zero stops the walk */
	s.buf[0] = '\0';
	s.stop_after = 2;
	TU_EQ_INT(catalog_resolve(c, two, 0, collect, &s), 0);
	TU_EQ_INT(catalog_resolve(c, (const char *[]){ "*" }, 1, collect, &s), 2);
	TU_EQ_STR(s.buf, "A_1/y B_2/a");
	catalog_close(c);
}

static void test_adding_the_same_product_and_version_replaces_it(void)
{
	catalog *c = fresh("replace.db");
	struct seen s = { "", 0 };
	TU_EQ_INT(add(c, "{\"productId\":\"P\",\"tags\":[\"old\"],\"files\":["
	    "{\"dataType\":\"RAWDATA\",\"name\":\"a\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"},"
	    "{\"dataType\":\"RAWDATA\",\"name\":\"b\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"P\",\"version\":2,\"files\":["
	    "{\"dataType\":\"RAWDATA\",\"name\":\"v2\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"P\",\"version\":1,\"tags\":[\"new\"],\"files\":["
	    "{\"dataType\":\"RAWDATA\",\"name\":\"c\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_STR(resolve1(c, "*", &s), "P_1/c P_2/v2");
	TU_EQ_STR(resolve1(c, "tags:old", &s), "");
	TU_EQ_STR(resolve1(c, "tags:new", &s), "P_1/c");
	/* a refused replacement leaves the old product whole */
	TU_EQ_INT(add(c, "{\"productId\":\"P\",\"files\":["
	    "{\"dataType\":\"RAWDATA\",\"name\":\"d\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"},"
	    "{\"dataType\":\"RAWDATA\",\"name\":\"d\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), -1);
	TU_CHECK(strstr(catalog_error(c), "files[1].name: \"d\" is already a file of this product") != NULL);
	TU_EQ_STR(resolve1(c, "*", &s), "P_1/c P_2/v2");
	catalog_close(c);
}

static const struct { const char *json, *why; } refused[] = {
	{ "[]", "product: not a JSON object" },
	{ "{}", "product: productId: missing" },
	{ "{\"productId\":\"\"}", "product: productId: must be a non-empty string" },
	{ "{\"productId\":7}", "product: productId: must be a non-empty string" },
	{ "{\"productId\":\"P\",\"version\":-1}", "product \"P\": version: must be an integer >= 0" },
	{ "{\"productId\":\"P\",\"version\":1.5}", "product \"P\": version: must be an integer >= 0" },
	{ "{\"productId\":\"P\",\"version\":\"1\"}", "product \"P\": version: must be an integer >= 0" },
	{ "{\"productId\":\"P\",\"dataset\":3}", "product \"P\": dataset: must be a string" },
	{ "{\"productId\":\"P\",\"tags\":\"a\"}", "product \"P\": tags: must be an array of strings" },
	{ "{\"productId\":\"P\",\"tags\":[\"a\",\"\"]}", "product \"P\": tags[1]: must be a non-empty string" },
	{ "{\"productId\":\"P\",\"attributes\":[]}", "product \"P\": attributes: must be an object" },
	{ "{\"productId\":\"P\",\"attributes\":{\"k\":{}}}",
	  "product \"P\": attributes.k: must be a string, number, boolean or an array of them" },
	{ "{\"productId\":\"P\",\"files\":{}}", "product \"P\": files: must be an array of objects" },
	{ "{\"productId\":\"P\",\"files\":[1]}", "product \"P\": files[0]: must be an object" },
	{ "{\"productId\":\"P\",\"files\":[{\"name\":\"a\",\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}",
	  "product \"P\": files[0].dataType: missing" },
	{ "{\"productId\":\"P\",\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"\",\"url\":\"u\",\"size\":1,"
	  "\"md5\":\"" MD5A "\"}]}", "product \"P\": files[0].name: must be a non-empty string" },
	{ "{\"productId\":\"P\",\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"a\",\"size\":1,"
	  "\"md5\":\"" MD5A "\"}]}", "product \"P\": files[0].url: missing" },
	{ "{\"productId\":\"P\",\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"a\",\"url\":\"u\",\"size\":-4,"
	  "\"md5\":\"" MD5A "\"}]}", "product \"P\": files[0].size: must be an integer >= 0" },
	{ "{\"productId\":\"P\",\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"a\",\"url\":\"u\",\"size\":1e300,"
	  "\"md5\":\"" MD5A "\"}]}", "product \"P\": files[0].size: must be an integer >= 0" },
	{ "{\"productId\":\"P\",\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"a\",\"url\":\"u\",\"size\":1,"
	  "\"md5\":\"xyz\"}]}", "product \"P\": files[0].md5: must be 32 hexadecimal digits" },
	{ "{\"productId\":\"P\",\"files\":[{\"dataType\":\"RAWDATA\",\"name\":\"a\",\"url\":\"u\",\"size\":1,"
	  "\"md5\":\"" MD5A "0\"}]}", "product \"P\": files[0].md5: must be 32 hexadecimal digits" },
};

static void test_bad_products_are_refused_naming_the_field(void)
{
	catalog *c = fresh("refuse.db");
	struct seen s = { "", 0 };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		TU_EQ_INT(add(c, refused[i].json), -1);
		TU_EQ_INT(catalog_temporary(c), 0);
		if (!TU_EQ_STR(catalog_error(c), refused[i].why))
			printf("# product %s\n", refused[i].json);
	}
	TU_EQ_STR(resolve1(c, "*", &s), "");
	/* defaults and what is accepted: version 1, uppercase md5, null members */
	TU_EQ_INT(add(c, "{\"productId\":\"P\",\"version\":null,\"dataset\":null,\"tags\":null,"
	    "\"attributes\":{\"n\":null,\"b\":true,\"x\":[1.5,\"s\",null]},\"unknown\":1,\"files\":["
	    "{\"dataType\":\"X\",\"name\":\"a\",\"url\":\"u\",\"size\":0,"
	    "\"md5\":\"0CC175B9C0F1B6A831C399E269772661\"}]}"), 0);
	TU_EQ_STR(resolve1(c, "*", &s), "P_1/a");
	TU_EQ_STR(resolve1(c, "b:true x:1.5 x:s", &s), "P_1/a");
	catalog_close(c);
}

static void test_a_bad_product_in_a_batch_spoils_only_itself(void)
{
	catalog *c = fresh("batch.db");
	struct seen s = { "", 0 };
	TU_EQ_INT(catalog_begin(c), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"A\",\"files\":[{\"dataType\":\"R\",\"name\":\"a\",\"url\":\"u\","
	    "\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"B\",\"files\":[{\"dataType\":\"R\",\"name\":\"a\",\"url\":\"u\","
	    "\"size\":1,\"md5\":\"" MD5A "\"},{\"dataType\":\"R\",\"name\":\"a\",\"url\":\"u\","
	    "\"size\":1,\"md5\":\"" MD5A "\"}]}"), -1);
	TU_EQ_INT(add(c, "{\"productId\":\"C\",\"files\":[{\"dataType\":\"R\",\"name\":\"c\",\"url\":\"u\","
	    "\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(catalog_commit(c), 0);
	TU_EQ_STR(resolve1(c, "*", &s), "A_1/a C_1/c");
	TU_EQ_INT(catalog_begin(c), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"D\"}"), 0);
	TU_EQ_INT(catalog_rollback(c), 0);
	TU_EQ_INT(catalog_commit(c), -1);     /* no batch open */
	TU_EQ_STR(resolve1(c, "productId:D", &s), "");
	catalog_close(c);
}

static int print_product(void *arg, const cJSON *p)
{
	char *text = cJSON_PrintUnformatted(p);
	size_t n = strlen(arg);
	snprintf((char *)arg + n, 2048 - n, "%s\n", text);
	free(text);
	return 0;
}

static void test_list_gives_products_as_add_takes_them(void)
{
	catalog *c = fresh("list.db"), *copy;
	static const char product[] =
	    "{\"productId\":\"P\",\"version\":3,\"dataset\":\"d\",\"tags\":[\"a\",\"b\"],"
	    "\"attributes\":{\"k\":\"v\",\"multi\":[\"1\",\"2\"]},\"files\":[{\"dataType\":\"RAWDATA\","
	    "\"name\":\"f\",\"url\":\"file:///f\",\"size\":12,\"md5\":\"" MD5A "\"}]}";
	char out[2048] = "", again[2048] = "", err[512], path[300];
	TU_EQ_INT(add(c, product), 0);
	TU_EQ_INT(add(c, "{\"productId\":\"A\"}"), 0);
	TU_EQ_INT(catalog_list(c, print_product, out), 2);
	TU_EQ_STR(out, "{\"productId\":\"A\",\"version\":1,\"tags\":[],\"attributes\":{},\"files\":[]}\n"
	    "{\"productId\":\"P\",\"version\":3,\"dataset\":\"d\",\"tags\":[\"a\",\"b\"],"
	    "\"attributes\":{\"k\":\"v\",\"multi\":[\"1\",\"2\"]},\"files\":[{\"dataType\":\"RAWDATA\","
	    "\"name\":\"f\",\"url\":\"file:///f\",\"size\":12,\"md5\":\"" MD5A "\"}]}\n");
	/* a listing added to another catalog lists the same */
	snprintf(path, sizeof path, "%s/copy.db", tu_tmpdir());
	TU_EQ_INT(catalog_open(path, 1, &copy, err, sizeof err), 0);
	for (char *line = out, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		*nl = '\0';
		TU_EQ_INT(add(copy, line), 0);
		*nl = '\n';
	}
	TU_EQ_INT(catalog_list(copy, print_product, again), 2);
	TU_EQ_STR(again, out);
	catalog_close(copy);
	catalog_close(c);
}

static void test_bad_queries_fail_the_resolution_with_the_reason(void)
{
	catalog *c = fresh("badq.db");
	struct seen s = { "", 0 };
	const char *qs[] = { "*", "tags:(a" };
	TU_EQ_INT(catalog_resolve(c, qs, 2, collect, &s), -1);
	TU_EQ_STR(catalog_error(c), "query \"tags:(a\": missing ) at position 6");
	TU_EQ_INT(catalog_temporary(c), 0);
	catalog_close(c);
}

static void test_open_refuses_what_is_not_a_usable_catalog(void)
{
	const char *dir = tu_tmpdir();
	char path[300], err[512];
	catalog *c;
	snprintf(path, sizeof path, "%s/missing.db", dir);
	errno = 0;
	TU_EQ_INT(catalog_open(path, 0, &c, err, sizeof err), -1);
	TU_CHECK(strstr(err, "No such file or directory") != NULL);
	TU_CHECK(errno != EAGAIN);
	snprintf(path, sizeof path, "%s/text.db", dir);
	FILE *f = fopen(path, "w");
	fputs("this is not a database, not at all, no, it is some text\n", f);
	fclose(f);
	TU_EQ_INT(catalog_open(path, 1, &c, err, sizeof err), -1);
	TU_CHECK(strstr(err, "not a database") != NULL);
	/* an empty SQLite file is not a catalog unless we may create one */
	snprintf(path, sizeof path, "%s/empty.db", dir);
	TU_EQ_INT(catalog_open(path, 1, &c, err, sizeof err), 0);
	catalog_close(c);
	TU_EQ_INT(catalog_open(path, 0, &c, err, sizeof err), 0);
	catalog_close(c);
	snprintf(path, sizeof path, "%s/other.db", dir);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'create table x(y)'", path);
	TU_EQ_INT(system(cmd), 0);
	TU_EQ_INT(catalog_open(path, 0, &c, err, sizeof err), -1);
	TU_CHECK(strstr(err, "not a ferry catalog") != NULL);
	snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'pragma user_version = 99'", path);
	TU_EQ_INT(system(cmd), 0);
	TU_EQ_INT(catalog_open(path, 1, &c, err, sizeof err), -1);
	TU_CHECK(strstr(err, "schema version 99 is newer than this ferry knows (1)") != NULL);
}

static const struct {
	const char *types[3];
	const char *re;
	const char *kept;
} filters[] = {
	{ { NULL }, NULL, "a.nc b.txt q_sd.png q_hd.png q.png doc.pdf" },
	{ { "RAWDATA" }, NULL, "a.nc b.txt" },
	{ { "QUICKLOOK" }, NULL, "q_sd.png q_hd.png q.png" },
	{ { "QUICKLOOK_HD" }, NULL, "q_hd.png" },
	{ { "RAWDATA", "QUICKLOOK" }, ".*\\.(nc|png)", "a.nc q_sd.png q_hd.png q.png" },
	{ { NULL }, "a", "" },
	{ { NULL }, "a\\.nc", "a.nc" },
	{ { NULL }, "(?i)A\\.NC", "a.nc" },
	{ { "rawdata" }, NULL, "" },
};

static const struct catalog_file filter_files[] = {
	{ "P", 1, "RAWDATA", "a.nc", "u", 1, MD5A },
	{ "P", 1, "RAWDATA", "b.txt", "u", 1, MD5A },
	{ "P", 1, "QUICKLOOK_SD", "q_sd.png", "u", 1, MD5A },
	{ "P", 1, "QUICKLOOK_HD", "q_hd.png", "u", 1, MD5A },
	{ "P", 1, "QUICKLOOK", "q.png", "u", 1, MD5A },
	{ "P", 1, "DOCUMENT", "doc.pdf", "u", 1, MD5A },
};

static void test_filters_keep_the_data_types_and_names_asked_for(void)
{
	char err[256];
	for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
		size_t n = 0;
		while (n < 3 && filters[i].types[n])
			n++;
		catalog_filter *f;
		char kept[256] = "";
		if (!TU_EQ_INT(catalog_filter_new(filters[i].types, n, filters[i].re, &f, err, sizeof err), 0))
			continue;
		for (size_t k = 0; k < sizeof filter_files / sizeof filter_files[0]; k++)
			if (catalog_filter_match(f, &filter_files[k]) == 1)
				snprintf(kept + strlen(kept), sizeof kept - strlen(kept), "%s%s",
				    kept[0] ? " " : "", filter_files[k].name);
		if (!TU_EQ_STR(kept, filters[i].kept))
			printf("# filter %zu\n", i);
		catalog_filter_free(f);
	}
	catalog_filter *f = NULL;
	TU_EQ_INT(catalog_filter_new(NULL, 0, "(", &f, err, sizeof err), -1);
	TU_EQ_INT(errno, EINVAL);
	TU_CHECK(strstr(err, "at offset") != NULL);
	catalog_filter_free(NULL);
}

static void test_filters_from_a_request(void)
{
	static const struct { const char *json; int rc; const char *kept; } cases[] = {
		{ "null", 0, "a.nc b.txt q_sd.png q_hd.png q.png doc.pdf" },
		{ "{\"dataTypes\":[\"QUICKLOOK\"],\"filenameRegExp\":\".*_sd.*\"}", 0, "q_sd.png" },
		{ "{\"dataTypes\":[\"RAWDATA\"],\"filenameRegExp\":null}", 0, "a.nc b.txt" },
		{ "{\"filenameRegExp\":\".*\\\\.txt\"}", 0, "b.txt" },
		{ "{\"dataTypes\":[1]}", -1, NULL },
		{ "{\"dataTypes\":\"RAWDATA\"}", -1, NULL },
		{ "{\"filenameRegExp\":3}", -1, NULL },
		{ "{\"dataTypes\":null,\"unknown\":1}", 0, "a.nc b.txt q_sd.png q_hd.png q.png doc.pdf" },
		{ "[]", -1, NULL },
		{ "{\"filenameRegExp\":\"[\"}", -1, NULL },
	};
	char err[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *j = cJSON_Parse(cases[i].json);
		catalog_filter *f = NULL;
		char kept[256] = "";
		if (!TU_EQ_INT(catalog_filter_from_json(j, &f, err, sizeof err), cases[i].rc))
			printf("# %s: %s\n", cases[i].json, err);
		for (size_t k = 0; f && k < sizeof filter_files / sizeof filter_files[0]; k++)
			if (catalog_filter_match(f, &filter_files[k]) == 1)
				snprintf(kept + strlen(kept), sizeof kept - strlen(kept), "%s%s",
				    kept[0] ? " " : "", filter_files[k].name);
		if (cases[i].kept)
			TU_EQ_STR(kept, cases[i].kept);
		catalog_filter_free(f);
		cJSON_Delete(j);
	}
	catalog_filter *f = NULL;
	TU_EQ_INT(catalog_filter_from_json(NULL, &f, err, sizeof err), 0);
	catalog_filter_free(f);
}

/* A filter serves one request: the name that passes the match limits is
 * an error (E2BIG), and once the request's time budget is used up the
 * next match is one (ETIME), not a silent "drop" that would go on. */
static void test_a_costly_regexp_ends_the_request_not_the_file(void)
{
	static const struct catalog_file runaway = {
		"P", 1, "RAWDATA", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "u", 1, MD5A
	};
	char err[256];
	catalog_filter *f = NULL;
	if (!TU_EQ_INT(catalog_filter_new(NULL, 0, "(.*){6}[^\\s\\S]", &f, err, sizeof err), 0))
		return;
	errno = 0;
	TU_EQ_INT(catalog_filter_match(f, &runaway), -1);
	TU_EQ_INT(errno, E2BIG);
	catalog_filter_free(f);

	TU_EQ_INT(catalog_filter_new(NULL, 0, ".*\\.nc", &f, err, sizeof err), 0);
	TU_EQ_INT(catalog_filter_match(f, &filter_files[0]), 1);
	TU_EQ_INT(catalog_filter_match(f, &filter_files[1]), 0);
	catalog_filter_set_budget(f, 0);
	errno = 0;
	TU_EQ_INT(catalog_filter_match(f, &filter_files[0]), -1);
	TU_EQ_INT(errno, ETIME);
	TU_EQ_INT(catalog_filter_matched(f), 3);
	catalog_filter_free(f);
}

static void test_order_command_lines_are_checked_like_catalog_files(void)
{
	struct catalog_file f;
	char err[256];
	cJSON *j = cJSON_Parse("{\"productId\":\"P1\",\"dataType\":\"RAWDATA\",\"name\":\"a.nc\","
	    "\"url\":\"file:///data/a.nc\",\"size\":1234,\"md5\":\"" MD5A "\",\"extra\":1}");
	TU_EQ_INT(catalog_file_parse(j, &f, err, sizeof err), 0);
	TU_EQ_STR(f.product_id, "P1");
	TU_EQ_INT(f.version, 1);
	TU_EQ_INT(f.size, 1234);
	cJSON *o = catalog_file_json(&f);
	char *text = cJSON_PrintUnformatted(o);
	TU_EQ_STR(text, "{\"productId\":\"P1\",\"version\":1,\"dataType\":\"RAWDATA\",\"name\":\"a.nc\","
	    "\"url\":\"file:///data/a.nc\",\"size\":1234,\"md5\":\"" MD5A "\"}");
	free(text);
	cJSON_Delete(o);
	cJSON_DeleteItemFromObject(j, "md5");
	TU_EQ_INT(catalog_file_parse(j, &f, err, sizeof err), -1);
	TU_EQ_STR(err, "md5: missing");
	cJSON_Delete(j);
	j = cJSON_Parse("\"x\"");
	TU_EQ_INT(catalog_file_parse(j, &f, err, sizeof err), -1);
	TU_EQ_STR(err, "not a JSON object");
	cJSON_Delete(j);
	/* sizes beyond 32 bits survive */
	struct catalog_file big = { "P", 9, "RAWDATA", "n", "u", 5368709120LL, MD5A };
	o = catalog_file_json(&big);
	text = cJSON_PrintUnformatted(o);
	TU_CHECK(strstr(text, "\"size\":5368709120,") != NULL);
	free(text);
	cJSON_Delete(o);
}

static void test_readers_see_a_batch_only_once_committed(void)
{
	char path[300], err[512];
	catalog *w, *r;
	struct seen s = { "", 0 };
	snprintf(path, sizeof path, "%s/snap.db", tu_tmpdir());
	TU_EQ_INT(catalog_open(path, 1, &w, err, sizeof err), 0);
	TU_EQ_INT(catalog_open(path, 0, &r, err, sizeof err), 0);
	TU_EQ_INT(add(w, "{\"productId\":\"A\",\"files\":[{\"dataType\":\"R\",\"name\":\"a\","
	    "\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(catalog_begin(w), 0);
	TU_EQ_INT(add(w, "{\"productId\":\"A\",\"files\":[{\"dataType\":\"R\",\"name\":\"new\","
	    "\"url\":\"u\",\"size\":1,\"md5\":\"" MD5A "\"}]}"), 0);
	TU_EQ_INT(add(w, "{\"productId\":\"B\"}"), 0);
	TU_EQ_STR(resolve1(r, "*", &s), "A_1/a");
	TU_EQ_INT(catalog_commit(w), 0);
	TU_EQ_STR(resolve1(r, "*", &s), "A_1/new");
	TU_EQ_STR(resolve1(r, "productId:B", &s), "");    /* B has no files */
	catalog_close(r);
	catalog_close(w);
}

struct counter {
	long n;
	char last[64];
	int ordered;
};

static int count(void *arg, const struct catalog_file *f)
{
	struct counter *k = arg;
	char key[64];
	snprintf(key, sizeof key, "%s/%s", f->product_id, f->name);
	if (k->n && strcmp(key, k->last) <= 0)
		k->ordered = 0;
	snprintf(k->last, sizeof k->last, "%s", key);
	k->n++;
	return 0;
}

static long max_rss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_20000_files_resolve_in_order(void)
{
	catalog *c = fresh("big.db");
	enum { PRODUCTS = 200, FILES = 100 };
	TU_EQ_INT(catalog_begin(c), 0);
	for (int p = 0; p < PRODUCTS; p++) {
		cJSON *prod = cJSON_CreateObject(), *files = cJSON_CreateArray(), *tags = cJSON_CreateArray();
		char id[32], name[32];
		snprintf(id, sizeof id, "P%05d", p);
		cJSON_AddStringToObject(prod, "productId", id);
		cJSON_AddItemToArray(tags, cJSON_CreateString(p % 2 ? "odd" : "even"));
		cJSON_AddItemToObject(prod, "tags", tags);
		for (int i = 0; i < FILES; i++) {
			cJSON *f = cJSON_CreateObject();
			snprintf(name, sizeof name, "file-%04d.nc", FILES - i);
			cJSON_AddStringToObject(f, "dataType", "RAWDATA");
			cJSON_AddStringToObject(f, "name", name);
			cJSON_AddStringToObject(f, "url", "file:///data/some/long/path/to/the/file.nc");
			cJSON_AddNumberToObject(f, "size", 1 << 20);
			cJSON_AddStringToObject(f, "md5", MD5A);
			cJSON_AddItemToArray(files, f);
		}
		cJSON_AddItemToObject(prod, "files", files);
		TU_EQ_INT(catalog_add(c, prod), 0);
		cJSON_Delete(prod);
	}
	TU_EQ_INT(catalog_commit(c), 0);
	long before = max_rss_kb();
	struct counter k = { 0, "", 1 };
	TU_EQ_INT(catalog_resolve(c, (const char *[]){ "*" }, 1, count, &k), PRODUCTS * FILES);
	TU_EQ_INT(k.n, PRODUCTS * FILES);
	TU_CHECK(k.ordered);
	struct counter odd = { 0, "", 1 };
	TU_EQ_INT(catalog_resolve(c, (const char *[]){ "tags:odd" }, 1, count, &odd), PRODUCTS * FILES / 2);
	TU_CHECK(odd.ordered);
	/* the files are streamed, not gathered: memory does not grow with them */
	long grew = max_rss_kb() - before;
	if (!TU_CHECK(grew < 16 * 1024))
		printf("# resident set grew by %ld kB\n", grew);
	catalog_close(c);
}

TU_MAIN(
	TU(test_files_come_ordered_by_product_version_and_name),
	TU(test_adding_the_same_product_and_version_replaces_it),
	TU(test_bad_products_are_refused_naming_the_field),
	TU(test_a_bad_product_in_a_batch_spoils_only_itself),
	TU(test_list_gives_products_as_add_takes_them),
	TU(test_bad_queries_fail_the_resolution_with_the_reason),
	TU(test_open_refuses_what_is_not_a_usable_catalog),
	TU(test_filters_keep_the_data_types_and_names_asked_for),
	TU(test_filters_from_a_request),
	TU(test_a_costly_regexp_ends_the_request_not_the_file),
	TU(test_order_command_lines_are_checked_like_catalog_files),
	TU(test_readers_see_a_batch_only_once_committed),
	TU(test_20000_files_resolve_in_order)
)
