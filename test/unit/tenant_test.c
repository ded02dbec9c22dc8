/* tenant_test: loading and validating tenant files (lib/tenant.c) — good
 * and bad settings, defaults, unknown keys, secrets in readable files, two
 * order backends, tenant names, missing files. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tenant.h"
#include "tenants.h"
#include "util.h"
#include "tu.h"

#define S3 "\"s3_server\":{\"host\":\"127.0.0.1\",\"key\":\"AKIDSECRETKEY\",\"secret\":\"TOPSECRET\"}"

static int parse(const char *json, unsigned mode, tenant **t, char *err, size_t n)
{
	return tenant_parse("p1", "/etc/ferry/tenants/p1.json", json, strlen(json),
	    mode, t, NULL, NULL, err, n);
}

static void test_good_files_load_with_their_values(void)
{
	static const char json[] =
	    "{\"request_ttl\":0.5,\"order_size_limit_bytes\":1000,"
	    "\"s3_server\":{\"scheme\":\"http\",\"host\":\"h\",\"port\":9000,\"region\":\"eu-west-3\","
	    "\"key\":\"k\",\"secret\":\"s\"},\"delivery_bucket\":\"my.bucket-1\","
	    "\"users\":[\"ana@example.org\",\"bob\"],\"catalog\":\"/var/lib/c.db\",\"order_command\":null,"
	    "\"max_suborders\":3,\"suborder_max_bytes\":10,\"suborder_max_files\":2,"
	    "\"file_roots\":[\"/data\",\"/srv\"],\"allowed_hosts\":[\"example.org\"],"
	    "\"compression\":\"deflate\",\"multipart_part_size\":5242880,\"upload_parallel\":64,"
	    "\"presign_ttl_seconds\":604800}";
	tenant *t;
	char err[256] = "";
	TU_EQ_INT(parse(json, 0100600, &t, err, sizeof err), 0);
	TU_EQ_STR(err, "");
	if (!t)
		return;
	TU_EQ_STR(t->name, "p1");
	TU_EQ_STR(t->path, "/etc/ferry/tenants/p1.json");
	TU_CHECK(t->request_ttl_hours == 0.5);
	TU_EQ_INT(t->order_size_limit_bytes, 1000);
	TU_EQ_INT(t->has_s3, 1);
	TU_EQ_STR(t->s3.scheme, "http");
	TU_EQ_STR(t->s3.host, "h");
	TU_EQ_INT(t->s3.port, 9000);
	TU_EQ_STR(t->s3.region, "eu-west-3");
	TU_EQ_STR(t->s3.key, "k");
	TU_EQ_STR(t->s3.secret, "s");
	TU_EQ_STR(t->delivery_bucket, "my.bucket-1");
	TU_EQ_INT(t->nusers, 2);
	TU_EQ_STR(t->users[1], "bob");
	TU_EQ_STR(t->catalog, "/var/lib/c.db");
	TU_CHECK(t->order_command == NULL);
	TU_EQ_INT(t->max_suborders, 3);
	TU_EQ_INT(t->suborder_max_bytes, 10);
	TU_EQ_INT(t->suborder_max_files, 2);
	TU_EQ_INT(t->nfile_roots, 2);
	TU_EQ_STR(t->file_roots[0], "/data");
	TU_EQ_INT(t->nallowed_hosts, 1);
	TU_EQ_STR(t->allowed_hosts[0], "example.org");
	TU_EQ_INT(t->compression, TENANT_COMP_DEFLATE);
	TU_EQ_INT(t->multipart_part_size, 5242880);
	TU_EQ_INT(t->upload_parallel, 64);
	TU_EQ_INT(t->presign_ttl_seconds, 604800);
	TU_CHECK(tenant_user_allowed(t, "ana@example.org"));
	TU_CHECK(!tenant_user_allowed(t, "ana@example.org "));
	TU_CHECK(!tenant_user_allowed(t, "eve"));
	TU_CHECK(!tenant_user_allowed(t, NULL));
	tenant_free(t);
	tenant_free(NULL);
}

static void test_defaults_fill_what_is_absent(void)
{
	tenant *t;
	char err[256];
	TU_EQ_INT(parse("{}", 0100644, &t, err, sizeof err), 0);
	if (!t)
		return;
	TU_CHECK(t->request_ttl_hours == 12);
	TU_EQ_INT(t->order_size_limit_bytes, 5368709120LL);
	TU_EQ_INT(t->has_s3, 0);
	TU_CHECK(t->s3.host == NULL && t->delivery_bucket == NULL);
	TU_CHECK(t->users == NULL && t->catalog == NULL && t->order_command == NULL);
	TU_EQ_INT(t->max_suborders, 0);
	TU_EQ_INT(t->suborder_max_bytes, 104857600);
	TU_EQ_INT(t->suborder_max_files, 5000);
	TU_EQ_INT(t->nfile_roots, 0);
	TU_EQ_INT(t->nallowed_hosts, 0);
	TU_EQ_INT(t->compression, TENANT_COMP_AUTO);
	TU_EQ_INT(t->multipart_part_size, 16777216);
	TU_EQ_INT(t->upload_parallel, 4);
	TU_EQ_INT(t->presign_ttl_seconds, 0);
	TU_CHECK(!tenant_user_allowed(t, "anyone"));     /* users absent: nobody */
	tenant_free(t);

	TU_EQ_INT(parse("{" S3 ",\"users\":[]}", 0100600, &t, err, sizeof err), 0);
	if (!t)
		return;
	TU_EQ_STR(t->s3.scheme, "https");
	TU_EQ_INT(t->s3.port, 443);
	TU_EQ_STR(t->s3.region, "us-east-1");
	TU_CHECK(t->users != NULL && t->nusers == 0);
	TU_CHECK(!tenant_user_allowed(t, "anyone"));
	tenant_free(t);

	TU_EQ_INT(parse("{\"s3_server\":{\"scheme\":\"http\",\"host\":\"h\",\"key\":\"k\",\"secret\":\"s\"}}",
	    0100600, &t, err, sizeof err), 0);
	if (t)
		TU_EQ_INT(t->s3.port, 80);
	tenant_free(t);
}

/* 0 is "off" as absent is; 1 and 604800 (7 days) are the bounds */
static void test_presign_ttl_bounds_are_accepted(void)
{
	static const int ok[] = { 0, 1, 3600, 604800 };
	char json[64], err[256];
	tenant *t;
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		snprintf(json, sizeof json, "{\"presign_ttl_seconds\":%d}", ok[i]);
		TU_EQ_INT(parse(json, 0100644, &t, err, sizeof err), 0);
		if (t)
			TU_EQ_INT(t->presign_ttl_seconds, ok[i]);
		tenant_free(t);
	}
}

/* each bad text, and the start of the message it must give */
static const struct { const char *json; const char *err; } bad[] = {
	{ "{\"request_ttl\":\"12h\"}", "request_ttl: must be a number > 0 and <= 876000 (hours), got \"12h\"" },
	{ "{\"request_ttl\":0}", "request_ttl: must be a number > 0" },
	{ "{\"request_ttl\":-1}", "request_ttl: must be a number > 0" },
	{ "{\"request_ttl\":1e9}", "request_ttl: must be a number > 0" },
	{ "{\"order_size_limit_bytes\":-1}", "order_size_limit_bytes: must be an integer >= 0, got -1" },
	{ "{\"order_size_limit_bytes\":1.5}", "order_size_limit_bytes: must be an integer >= 0, got 1.5" },
	{ "{\"order_size_limit_bytes\":1e300}", "order_size_limit_bytes: must be an integer" },
	{ "{\"order_size_limit_bytes\":\"5\"}", "order_size_limit_bytes: must be an integer" },
	{ "{\"order_size_limit_bytes\":9007199254740994}", "order_size_limit_bytes: must be an integer" },
	{ "{\"s3_server\":[]}", "s3_server: must be an object" },
	{ "{\"s3_server\":{\"scheme\":\"ftp\",\"host\":\"h\",\"key\":\"k\",\"secret\":\"s\"}}",
	  "s3_server.scheme: must be \"http\" or \"https\", got \"ftp\"" },
	{ "{\"s3_server\":{\"key\":\"k\",\"secret\":\"s\"}}", "s3_server.host: is required" },
	{ "{\"s3_server\":{\"host\":\"\",\"key\":\"k\",\"secret\":\"s\"}}", "s3_server.host: must be a non-empty string" },
	{ "{\"s3_server\":{\"host\":\"h\",\"secret\":\"s\"}}", "s3_server.key: is required" },
	{ "{\"s3_server\":{\"host\":\"h\",\"key\":\"k\"}}", "s3_server.secret: is required" },
	{ "{\"s3_server\":{\"host\":\"h\",\"port\":0,\"key\":\"k\",\"secret\":\"s\"}}",
	  "s3_server.port: must be an integer from 1 to 65535, got 0" },
	{ "{\"s3_server\":{\"host\":\"h\",\"port\":65536,\"key\":\"k\",\"secret\":\"s\"}}", "s3_server.port: must be" },
	{ "{\"s3_server\":{\"host\":\"h\",\"region\":7,\"key\":\"k\",\"secret\":\"s\"}}", "s3_server.region: must be" },
	{ "{\"s3_server\":{\"host\":\"h\",\"key\":12345,\"secret\":\"s\"}}", "s3_server.key: must be a non-empty string" },
	{ "{\"s3_server\":{\"host\":\"h\",\"key\":\"k\",\"secret\":false}}", "s3_server.secret: must be a non-empty string" },
	{ "{\"delivery_bucket\":\"ab\"}", "delivery_bucket: must be an S3 bucket name" },
	{ "{\"delivery_bucket\":\"My-Bucket\"}", "delivery_bucket: must be an S3 bucket name" },
	{ "{\"delivery_bucket\":\"a..b\"}", "delivery_bucket: must be" },
	{ "{\"delivery_bucket\":\"-abc\"}", "delivery_bucket: must be" },
	{ "{\"delivery_bucket\":\"abc_d\"}", "delivery_bucket: must be" },
	{ "{\"delivery_bucket\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	  "delivery_bucket: must be" },
	{ "{\"users\":\"ana\"}", "users: must be an array of strings, got \"ana\"" },
	{ "{\"users\":[\"ana\",3]}", "users: must be an array of strings, got [\"ana\",3]" },
	{ "{\"catalog\":5}", "catalog: must be a non-empty string or null, got 5" },
	{ "{\"catalog\":\"\"}", "catalog: must be a non-empty string or null" },
	{ "{\"order_command\":[\"/bin/x\"]}", "order_command: must be a non-empty string or null" },
	{ "{\"max_suborders\":-2}", "max_suborders: must be an integer >= 0" },
	{ "{\"suborder_max_bytes\":0}", "suborder_max_bytes: must be an integer > 0, got 0" },
	{ "{\"suborder_max_files\":0}", "suborder_max_files: must be an integer > 0" },
	{ "{\"file_roots\":[\"data\"]}", "file_roots: must be an array of absolute paths, got [\"data\"]" },
	{ "{\"file_roots\":\"/data\"}", "file_roots: must be an array of absolute paths" },
	{ "{\"allowed_hosts\":[\"\"]}", "allowed_hosts: must be an array of non-empty strings" },
	{ "{\"allowed_hosts\":[\"*\",\"h\"]}", "allowed_hosts: \"*\" (any) must be its only entry" },
	{ "{\"users\":[\"ana\",\"*\"]}", "users: \"*\" (any) must be its only entry" },
	{ "{\"source_buckets\":[\"b-1\",\"*\"]}", "source_buckets: \"*\" (any) must be its only entry" },
	{ "{\"source_buckets\":[\"*\",\"*\"]}", "source_buckets: \"*\" (any) must be its only entry" },
	{ "{\"source_buckets\":[\"B\"]}", "source_buckets: must be an array of S3 bucket names, or [\"*\"]" },
	{ "{\"compression\":\"zstd\"}", "compression: must be \"store\", \"deflate\" or \"auto\", got \"zstd\"" },
	{ "{\"compression\":null}", "compression: must be" },
	{ "{\"multipart_part_size\":5242879}", "multipart_part_size: must be an integer from 5242880 to 5368709120" },
	{ "{\"multipart_part_size\":5368709121}", "multipart_part_size: must be" },
	{ "{\"upload_parallel\":0}", "upload_parallel: must be an integer from 1 to 64, got 0" },
	{ "{\"upload_parallel\":65}", "upload_parallel: must be an integer from 1 to 64, got 65" },
	{ "{\"upload_parallel\":4,\"upload_parallel\":5}", "upload_parallel: is given twice" },
	{ "{\"presign_ttl_seconds\":604801}",
	  "presign_ttl_seconds: must be an integer from 0 to 604800 (seconds; 0 = no downloadUrl), got 604801" },
	{ "{\"presign_ttl_seconds\":-1}", "presign_ttl_seconds: must be an integer from 0 to 604800" },
	{ "{\"presign_ttl_seconds\":1.5}", "presign_ttl_seconds: must be an integer from 0 to 604800" },
	{ "{\"presign_ttl_seconds\":\"3600\"}", "presign_ttl_seconds: must be an integer from 0 to 604800" },
	{ "{\"presign_ttl_seconds\":true}", "presign_ttl_seconds: must be an integer from 0 to 604800" },
	{ "{\"catalog\":\"/c.db\",\"order_command\":\"/bin/o\"}",
	  "catalog and order_command are both set; a tenant has exactly one order backend" },
	{ "[]", "not a JSON object" },
	{ "{\"a\":", "invalid JSON near byte" },
	{ "{} x", "invalid JSON near byte 4" },
	{ "", "invalid JSON near byte 1" },
};

/* users, allowed_hosts, source_buckets: absent or [] allow nothing,
 * ["*"] anything, a list what it names; "*" with other entries is refused */
static void test_access_lists_absent_empty_any_or_named(void)
{
	static const struct { const char *json; int any_user, ana, any_host, any_bucket; } cases[] = {
		{ "{}", 0, 0, 0, 0 },
		{ "{\"users\":[],\"allowed_hosts\":[],\"source_buckets\":[]}", 0, 0, 0, 0 },
		{ "{\"users\":[\"*\"],\"allowed_hosts\":[\"*\"],\"source_buckets\":[\"*\"]}",
		  1, 1, 1, 1 },
		{ "{\"users\":[\"ana\"],\"allowed_hosts\":[\"h\"],\"source_buckets\":[\"b-1\"]}",
		  0, 1, 0, 0 },
	};
	char err[512];
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		tenant *t = NULL;
		if (!TU_EQ_INT(parse(cases[i].json, 0100600, &t, err, sizeof err), 0)) {
			printf("# %s: %s\n", cases[i].json, err);
			continue;
		}
		TU_EQ_INT(tenant_user_allowed(t, "someone"), cases[i].any_user);
		TU_EQ_INT(tenant_user_allowed(t, "ana"), cases[i].ana);
		TU_EQ_INT(tenant_user_allowed(t, NULL), cases[i].any_user);
		TU_EQ_INT(tenant_any(t->allowed_hosts, t->nallowed_hosts), cases[i].any_host);
		TU_EQ_INT(tenant_any(t->source_buckets, t->nsource_buckets), cases[i].any_bucket);
		tenant_free(t);
	}
}

/* rs-order acts for order.user and ferry signs its token: users "*"
 * there would let the publisher choose whom ferry speaks for */
static void test_rs_order_with_users_any_is_refused(void)
{
	static const char rso[] = "\"rs_order\":{\"url\":\"http://h\",\"jwt_secret\":\"k\"}";
	char json[256], err[512];
	tenant *t = (tenant *)1;
	snprintf(json, sizeof json, "{%s,\"users\":[\"*\"]}", rso);
	TU_EQ_INT(parse(json, 0100600, &t, err, sizeof err), -1);
	TU_CHECK(t == NULL);
	TU_EQ_STR(err, "/etc/ferry/tenants/p1.json: users: \"*\" cannot be used with rs_order: "
	    "ferry signs rs-order tokens for the request's order.user, so users (or rs_admin) must "
	    "say who may order");
	snprintf(json, sizeof json, "{%s,\"users\":[\"ana\"]}", rso);
	TU_EQ_INT(parse(json, 0100600, &t, err, sizeof err), 0);
	if (t) {
		TU_CHECK(tenant_user_allowed(t, "ana") && !tenant_user_allowed(t, "bob"));
		tenant_free(t);
	}
	snprintf(json, sizeof json, "{%s}", rso);
	TU_EQ_INT(parse(json, 0100600, &t, err, sizeof err), 0);
	if (t) {
		TU_CHECK(!tenant_user_allowed(t, "ana"));
		tenant_free(t);
	}
}

/* rs_admin: its defaults (REGARDS' 5-minute cache), its key in a file,
 * and what it cannot go with */
static void test_rs_admin_loads_with_defaults_and_its_rules(void)
{
	char dir[] = "/tmp/tenant_test.XXXXXX", key[64], json[512], err[512];
	tenant *t = NULL;
	TU_CHECK(mkdtemp(dir) != NULL);
	snprintf(key, sizeof key, "%s/admin.key", dir);
	int fd = open(key, O_WRONLY | O_CREAT | O_EXCL, 0600);
	TU_CHECK(fd >= 0 && write(fd, "k3y-of-rs-admin\n", 16) == 16);
	close(fd);
	snprintf(json, sizeof json, "{\"rs_admin\":{\"url\":\"http://adm:9034//\","
	    "\"jwt_secret_file\":\"%s\"}}", key);
	if (TU_EQ_INT(parse(json, 0100644, &t, err, sizeof err), 0)) {
		TU_CHECK(t->has_rs_admin);
		TU_EQ_STR(t->rs_admin.url, "http://adm:9034");
		TU_EQ_STR(t->rs_admin.jwt_secret, "k3y-of-rs-admin");
		TU_EQ_INT(t->rs_admin.timeout_seconds, 3);
		TU_EQ_INT(t->rs_admin.cache_seconds, 300);
		TU_CHECK(!tenant_user_allowed(t, "ana"));   /* the list is still the list */
		tenant_free(t);
	} else {
		printf("# %s\n", err);
	}
	TU_EQ_INT(parse("{\"rs_admin\":{\"url\":\"https://a\",\"jwt_secret\":\"k\","
	    "\"timeout_seconds\":30,\"cache_seconds\":0},\"users\":[\"ana\"]}", 0100600, &t,
	    err, sizeof err), 0);
	if (t) {
		TU_EQ_INT(t->rs_admin.timeout_seconds, 30);
		TU_EQ_INT(t->rs_admin.cache_seconds, 0);
		TU_CHECK(tenant_user_allowed(t, "ana"));
		tenant_free(t);
	}
	static const struct { const char *json, *err; } bad[] = {
		{ "{\"rs_admin\":{\"url\":\"http://a\"}}",
		  "rs_admin: needs exactly one of jwt_secret and jwt_secret_file" },
		{ "{\"rs_admin\":{\"url\":\"http://a\",\"jwt_secret\":\"k\","
		  "\"jwt_secret_file\":\"/k\"}}",
		  "rs_admin: needs exactly one of jwt_secret and jwt_secret_file" },
		{ "{\"rs_admin\":{\"jwt_secret\":\"k\"}}", "rs_admin.url: is required" },
		{ "{\"rs_admin\":{\"url\":\"ftp://a\",\"jwt_secret\":\"k\"}}",
		  "rs_admin.url: must be an http:// or https:// URL, got \"ftp://a\"" },
		{ "{\"rs_admin\":{\"url\":\"http://a\",\"jwt_secret\":\"k\",\"timeout_seconds\":0}}",
		  "rs_admin.timeout_seconds: must be an integer from 1 to 30, got 0" },
		{ "{\"rs_admin\":{\"url\":\"http://a\",\"jwt_secret\":\"k\",\"cache_seconds\":3601}}",
		  "rs_admin.cache_seconds: must be an integer from 0 to 3600, got 3601" },
		{ "{\"rs_admin\":{\"url\":\"http://a\",\"jwt_secret_file\":\"/nonexistent/k\"}}",
		  "rs_admin.jwt_secret_file: /nonexistent/k: No such file or directory" },
		{ "{\"rs_admin\":{\"url\":\"http://a\",\"jwt_secret\":\"k\"},\"users\":[\"*\"]}",
		  "users: \"*\" cannot be used with rs_admin: anyone would be let in before rs-admin "
		  "is asked" },
		{ "{\"rs_admin\":[]}", "rs_admin: must be an object" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char want[512];
		t = (tenant *)1;
		TU_EQ_INT(parse(bad[i].json, 0100600, &t, err, sizeof err), -1);
		TU_CHECK(t == NULL);
		snprintf(want, sizeof want, "/etc/ferry/tenants/p1.json: %s", bad[i].err);
		TU_EQ_STR(err, want);
	}
	/* a key in clear is a secret of the file */
	TU_EQ_INT(parse("{\"rs_admin\":{\"url\":\"http://a\",\"jwt_secret\":\"S3CR3T\"}}",
	    0100644, &t, err, sizeof err), -1);
	TU_CHECK(strstr(err, "holds secrets") != NULL && !strstr(err, "S3CR3T"));
	/* with rs_order, rs-admin may be the one who says who orders */
	TU_EQ_INT(parse("{\"rs_admin\":{\"url\":\"http://a\",\"jwt_secret\":\"k\"},"
	    "\"rs_order\":{\"url\":\"http://o\",\"jwt_secret\":\"k\"}}", 0100600, &t, err,
	    sizeof err), 0);
	tenant_free(t);
	unlink(key);
	rmdir(dir);
}

static void test_bad_settings_name_file_and_key(void)
{
	const char *prefix = "/etc/ferry/tenants/p1.json: ";
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tenant *t = (tenant *)1;
		char err[512] = "";
		int rc = parse(bad[i].json, 0100600, &t, err, sizeof err);
		TU_EQ_INT(rc, -1);
		TU_CHECK(t == NULL);
		int ok = strncmp(err, prefix, strlen(prefix)) == 0 &&
		    strncmp(err + strlen(prefix), bad[i].err, strlen(bad[i].err)) == 0;
		if (!TU_CHECK(ok))
			printf("# %s: got \"%s\", want \"%s%s...\"\n", bad[i].json, err, prefix, bad[i].err);
		TU_CHECK(!strstr(err, "12345") && !strstr(err, "TOPSECRET"));
		TU_CHECK(!strchr(err, '\n'));
		if (rc == 0)
			tenant_free(t);
	}
}

static void test_long_rejected_values_are_cut(void)
{
	char json[400], err[512];
	tenant *t;
	snprintf(json, sizeof json, "{\"catalog\":[\"%0300d\"]}", 0);
	TU_EQ_INT(parse(json, 0100600, &t, err, sizeof err), -1);
	TU_CHECK(strlen(err) < 200);
	TU_CHECK(strstr(err, "...") != NULL);
}

static void test_secrets_never_appear_in_messages(void)
{
	char err[512];
	tenant *t;
	TU_EQ_INT(parse("{" S3 ",\"upload_parallel\":0}", 0100600, &t, err, sizeof err), -1);
	TU_CHECK(strstr(err, "upload_parallel") != NULL);
	TU_CHECK(!strstr(err, "AKIDSECRETKEY") && !strstr(err, "TOPSECRET"));
	TU_EQ_INT(parse("{\"s3_server\":\"AKIDSECRETKEY\"}", 0100600, &t, err, sizeof err), -1);
	TU_CHECK(strstr(err, "s3_server: must be an object") != NULL);
	TU_CHECK(!strstr(err, "AKIDSECRETKEY"));
}

struct warned { int n; char keys[4][64]; };

static void on_warn(void *arg, const char *file, const char *key)
{
	struct warned *w = arg;
	TU_EQ_STR(file, "/etc/ferry/tenants/p1.json");
	if (w->n < 4)
		util_strlcpy(w->keys[w->n], key, sizeof w->keys[0]);
	w->n++;
}

static void test_unknown_keys_are_warnings(void)
{
	static const char json[] = "{\"colour\":\"red\",\"request_ttl\":1,"
	    "\"s3_server\":{\"host\":\"h\",\"key\":\"k\",\"secret\":\"s\",\"foo\":1},\"Users\":[]}";
	struct warned w = { 0, { "" } };
	tenant *t;
	char err[256];
	TU_EQ_INT(tenant_parse("p1", "/etc/ferry/tenants/p1.json", json, strlen(json), 0100600,
	    &t, on_warn, &w, err, sizeof err), 0);
	TU_EQ_INT(w.n, 3);
	TU_EQ_STR(w.keys[0], "colour");
	TU_EQ_STR(w.keys[1], "s3_server.foo");
	TU_EQ_STR(w.keys[2], "Users");
	TU_CHECK(t && t->users == NULL);
	tenant_free(t);
	/* no callback: still fine */
	TU_EQ_INT(parse(json, 0100600, &t, err, sizeof err), 0);
	tenant_free(t);
}

static void test_secret_in_readable_file_is_refused(void)
{
	static const struct { unsigned mode; int ok; } cases[] = {
		{ 0100600, 1 }, { 0100400, 1 }, { 0100700, 1 }, { 0100620, 1 },
		{ 0100644, 0 }, { 0100640, 0 }, { 0100604, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		tenant *t;
		char err[256] = "", want[160];
		int rc = parse("{" S3 "}", cases[i].mode, &t, err, sizeof err);
		TU_EQ_INT(rc, cases[i].ok ? 0 : -1);
		if (rc == 0) {
			tenant_free(t);
			continue;
		}
		snprintf(want, sizeof want, "/etc/ferry/tenants/p1.json: holds secrets but is "
		    "readable by group/others (mode %04o); chmod 600 it", cases[i].mode & 07777);
		TU_EQ_STR(err, want);
	}
	/* only the key, or only the secret, is a secret too */
	tenant *t;
	char err[256];
	TU_EQ_INT(parse("{\"s3_server\":{\"secret\":\"s\"}}", 0100644, &t, err, sizeof err), -1);
	TU_CHECK(strstr(err, "holds secrets") != NULL);
	/* no secret: a readable file is fine */
	TU_EQ_INT(parse("{\"request_ttl\":2}", 0100644, &t, err, sizeof err), 0);
	tenant_free(t);
}

static void test_source_s3_server_defaults_to_s3_server(void)
{
	tenant *t;
	char err[256] = "";
	TU_EQ_INT(parse("{\"request_ttl\":2}", 0100600, &t, err, sizeof err), 0);
	if (t)
		TU_CHECK(tenant_source_s3(t) == NULL);
	tenant_free(t);

	TU_EQ_INT(parse("{" S3 "}", 0100600, &t, err, sizeof err), 0);
	if (t) {
		TU_EQ_INT(t->has_source_s3, 0);
		TU_CHECK(tenant_source_s3(t) == &t->s3);
	}
	tenant_free(t);

	TU_EQ_INT(parse("{" S3 ",\"source_s3_server\":{\"scheme\":\"http\",\"host\":\"src\","
	    "\"port\":9001,\"key\":\"k2\",\"secret\":\"s2\"}}", 0100600, &t, err, sizeof err), 0);
	TU_EQ_STR(err, "");
	if (t) {
		const struct tenant_s3 *src = tenant_source_s3(t);
		TU_EQ_INT(t->has_source_s3, 1);
		TU_CHECK(src == &t->source_s3);
		TU_EQ_STR(src->host, "src");
		TU_EQ_INT(src->port, 9001);
		TU_EQ_STR(src->region, "us-east-1");
		TU_EQ_STR(src->key, "k2");
		TU_EQ_STR(t->s3.host, "127.0.0.1");
	}
	tenant_free(t);

	/* the same checks as s3_server, messages naming the key */
	TU_EQ_INT(parse("{\"source_s3_server\":{\"key\":\"k\",\"secret\":\"s\"}}", 0100600,
	    &t, err, sizeof err), -1);
	TU_EQ_STR(err, "/etc/ferry/tenants/p1.json: source_s3_server.host: is required");
	TU_EQ_INT(parse("{\"source_s3_server\":[]}", 0100600, &t, err, sizeof err), -1);
	TU_EQ_STR(err, "/etc/ferry/tenants/p1.json: source_s3_server: must be an object");
	/* its secret makes a readable file unusable too */
	TU_EQ_INT(parse("{\"source_s3_server\":{\"host\":\"h\",\"key\":\"k\",\"secret\":\"TOPSECRET\"}}",
	    0100640, &t, err, sizeof err), -1);
	TU_CHECK(strstr(err, "holds secrets") != NULL);
	TU_CHECK(strstr(err, "TOPSECRET") == NULL);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || util_write_all(fd, text, strlen(text)) < 0 || fchmod(fd, mode) < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static void test_load_reads_the_tenant_file(void)
{
	const char *dir = tu_tmpdir();
	char path[256], err[512], want[512];
	tenant *t;
	snprintf(path, sizeof path, "%s/p1.json", dir);

	write_file(path, "{" S3 ",\"delivery_bucket\":\"deliveries\"}", 0600);
	TU_EQ_INT(tenant_load(dir, "p1", &t, NULL, NULL, err, sizeof err), 0);
	if (t) {
		TU_EQ_STR(t->path, path);
		TU_EQ_STR(t->s3.secret, "TOPSECRET");
		TU_EQ_STR(t->delivery_bucket, "deliveries");
	}
	tenant_free(t);

	chmod(path, 0644);
	TU_EQ_INT(tenant_load(dir, "p1", &t, NULL, NULL, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: holds secrets but is readable by group/others "
	    "(mode 0644); chmod 600 it", path);
	TU_EQ_STR(err, want);

	errno = 0;
	TU_EQ_INT(tenant_load(dir, "p2", &t, NULL, NULL, err, sizeof err), -1);
	TU_EQ_INT(errno, ENOENT);
	snprintf(want, sizeof want, "%s/p2.json: no configuration for tenant", dir);
	TU_EQ_STR(err, want);
	TU_CHECK(t == NULL);

	/* a trailing slash on the directory does not double it */
	snprintf(path, sizeof path, "%s/", dir);
	TU_EQ_INT(tenant_load(path, "p2", &t, NULL, NULL, err, sizeof err), -1);
	TU_EQ_STR(err, want);

	snprintf(path, sizeof path, "%s/p3.json", dir);
	write_file(path, "{\"compression\":\"lzma\"}", 0644);
	TU_EQ_INT(tenant_load(dir, "p3", &t, NULL, NULL, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: compression: must be", path);
	TU_CHECK(strncmp(err, want, strlen(want)) == 0);
}

/* The cache sees an edited file at the next lookup, or while held (a
 * batch) at the first lookup of the next hold. */
static void test_cache_sees_edits_per_lookup_or_per_hold(void)
{
	const char *dir = tu_tmpdir(), *why;
	char path[256];
	int fresh;
	snprintf(path, sizeof path, "%s/p1.json", dir);
	write_file(path, "{\"delivery_bucket\":\"one\"}", 0600);
	tenants *c = tenants_new(dir, NULL, NULL);
	const tenant *t = tenants_get(c, "p1", &why, &fresh);
	TU_CHECK(t && strcmp(t->delivery_bucket, "one") == 0);
	write_file(path, "{\"delivery_bucket\":\"second\"}", 0600);
	t = tenants_get(c, "p1", &why, &fresh);
	TU_CHECK(t && strcmp(t->delivery_bucket, "second") == 0);

	tenants_hold(c, 1);
	t = tenants_get(c, "p1", &why, &fresh);
	TU_CHECK(t && strcmp(t->delivery_bucket, "second") == 0);
	write_file(path, "{\"delivery_bucket\":\"third\"}", 0600);
	t = tenants_get(c, "p1", &why, &fresh);   /* same hold: not checked again */
	TU_CHECK(t && strcmp(t->delivery_bucket, "second") == 0);
	tenants_hold(c, 0);
	tenants_hold(c, 1);
	t = tenants_get(c, "p1", &why, &fresh);
	TU_CHECK(t && strcmp(t->delivery_bucket, "third") == 0);
	tenants_hold(c, 0);
	tenants_free(c);
}

static void test_load_refuses_odd_files(void)
{
	const char *dir = tu_tmpdir();
	char path[256], err[512];
	tenant *t;

	snprintf(path, sizeof path, "%s/big.json", dir);
	char *big = malloc((1 << 20) + 16);
	memset(big, ' ', (1 << 20) + 15);
	memcpy(big, "{}", 2);
	big[(1 << 20) + 15] = '\0';
	write_file(path, big, 0600);
	free(big);
	TU_EQ_INT(tenant_load(dir, "big", &t, NULL, NULL, err, sizeof err), -1);
	TU_CHECK(strstr(err, "big.json: larger than 1 MiB") != NULL);

	snprintf(path, sizeof path, "%s/d.json", dir);
	TU_CHECK(mkdir(path, 0700) == 0);
	TU_EQ_INT(tenant_load(dir, "d", &t, NULL, NULL, err, sizeof err), -1);
	TU_CHECK(strstr(err, "d.json: not a regular file") != NULL);

	snprintf(path, sizeof path, "%s/f.json", dir);
	TU_CHECK(mkfifo(path, 0600) == 0);
	TU_EQ_INT(tenant_load(dir, "f", &t, NULL, NULL, err, sizeof err), -1);
	TU_CHECK(strstr(err, "f.json: not a regular file") != NULL);
}

static void test_bad_tenant_names_are_refused(void)
{
	char long65[66], long64[65], err[256];
	memset(long65, 'a', 65);
	long65[65] = '\0';
	memset(long64, 'a', 64);
	long64[64] = '\0';
	static const char *const badnames[] = {
		"..", ".", "", "a/b", "../p1", "p 1", "p1\n", "é", "p1.json/",
	};
	for (size_t i = 0; i < sizeof badnames / sizeof badnames[0]; i++) {
		TU_CHECK(!tenant_name_ok(badnames[i]));
		tenant *t;
		TU_EQ_INT(tenant_load(tu_tmpdir(), badnames[i], &t, NULL, NULL, err, sizeof err), -1);
		TU_CHECK(strncmp(err, "invalid tenant name", 19) == 0);
		TU_EQ_INT(tenant_parse(badnames[i], "x.json", "{}", 2, 0100600, &t, NULL, NULL,
		    err, sizeof err), -1);
		TU_CHECK(strncmp(err, "invalid tenant name", 19) == 0);
	}
	TU_CHECK(!tenant_name_ok(long65));
	TU_CHECK(!tenant_name_ok(NULL));
	TU_CHECK(tenant_name_ok(long64));
	static const char *const goodnames[] = { "p1", "P_1.x-y", "...", ".p", "a..b" };
	for (size_t i = 0; i < sizeof goodnames / sizeof goodnames[0]; i++)
		TU_CHECK(tenant_name_ok(goodnames[i]));
}

TU_MAIN(
	TU(test_good_files_load_with_their_values),
	TU(test_defaults_fill_what_is_absent),
	TU(test_presign_ttl_bounds_are_accepted),
	TU(test_access_lists_absent_empty_any_or_named),
	TU(test_rs_order_with_users_any_is_refused),
	TU(test_rs_admin_loads_with_defaults_and_its_rules),
	TU(test_bad_settings_name_file_and_key),
	TU(test_long_rejected_values_are_cut),
	TU(test_secrets_never_appear_in_messages),
	TU(test_unknown_keys_are_warnings),
	TU(test_secret_in_readable_file_is_refused),
	TU(test_load_reads_the_tenant_file),
	TU(test_load_refuses_odd_files),
	TU(test_cache_sees_edits_per_lookup_or_per_hold),
	TU(test_bad_tenant_names_are_refused),
	TU(test_source_s3_server_defaults_to_s3_server)
)
