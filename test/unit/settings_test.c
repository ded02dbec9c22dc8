/* settings_test: tenant file <-> REGARDS settings list (lib/settings.c) —
 * names and order, REGARDS defaults, masking of secrets and keeping them on
 * import, merge and removal, every error a PUT can meet (shape, unknown
 * names, values judged by tenant_parse), and the atomic private write. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "settings.h"
#include "tenant.h"
#include "tu.h"

#define PATH "/etc/ferry/tenants/p1.json"
#define COMMANDS "/usr/lib/ferry/order:/bin/x"   /* FERRY_ORDER_COMMANDS */

static const char full[] =
    "{\"request_ttl\":0.5,\"order_size_limit_bytes\":1000,"
    "\"s3_server\":{\"scheme\":\"http\",\"host\":\"h\",\"port\":9000,\"region\":\"eu-west-3\","
    "\"key\":\"AKIDKEY\",\"secret\":\"TOPSECRET\"},\"delivery_bucket\":\"my.bucket-1\","
    "\"users\":[\"ana@example.org\",\"bob\"],\"catalog\":\"/var/lib/c.db\",\"order_command\":null,"
    "\"max_suborders\":3,\"suborder_max_bytes\":10,\"suborder_max_files\":2,"
    "\"source_s3_server\":{\"host\":\"src\",\"key\":\"SRCKEY\",\"secret\":\"SRCSECRET\"},"
    "\"file_roots\":[\"/data\",\"/srv\"],\"allowed_hosts\":[\"example.org\"],"
    "\"compression\":\"deflate\",\"multipart_part_size\":5242880,\"multipart_threshold\":0,"
    "\"upload_parallel\":64,"
    "\"presign_ttl_seconds\":3600}";

static const char full_list[] =
    "[{\"name\":\"request_ttl\",\"value\":0.5},"
    "{\"name\":\"s3_server\",\"value\":{\"scheme\":\"http\",\"host\":\"h\",\"port\":9000,"
    "\"region\":\"eu-west-3\",\"key\":\"*******\",\"secret\":\"*******\"}},"
    "{\"name\":\"delivery_bucket\",\"value\":\"my.bucket-1\"},"
    "{\"name\":\"order_size_limit_bytes\",\"value\":1000},"
    "{\"name\":\"users\",\"value\":[\"ana@example.org\",\"bob\"]},"
    "{\"name\":\"catalog\",\"value\":\"/var/lib/c.db\"},"
    "{\"name\":\"max_suborders\",\"value\":3},"
    "{\"name\":\"suborder_max_bytes\",\"value\":10},"
    "{\"name\":\"suborder_max_files\",\"value\":2},"
    "{\"name\":\"source_s3_server\",\"value\":{\"host\":\"src\",\"key\":\"*******\","
    "\"secret\":\"*******\"}},"
    "{\"name\":\"file_roots\",\"value\":[\"/data\",\"/srv\"]},"
    "{\"name\":\"allowed_hosts\",\"value\":[\"example.org\"]},"
    "{\"name\":\"compression\",\"value\":\"deflate\"},"
    "{\"name\":\"multipart_part_size\",\"value\":5242880},"
    "{\"name\":\"multipart_threshold\",\"value\":0},"
    "{\"name\":\"upload_parallel\",\"value\":64},"
    "{\"name\":\"presign_ttl_seconds\",\"value\":3600}]\n";

static int export(const char *json, unsigned mode, char **out, char *err, size_t n)
{
	return settings_export("p1", PATH, json, strlen(json), mode, out, err, n);
}

static int import(const char *cur, const char *body, char **out, char *err, size_t n)
{
	size_t len;
	return settings_import("p1", PATH, cur, cur ? strlen(cur) : 0, body, strlen(body),
	    COMMANDS, out, &len, err, n);
}

static tenant *load(const char *json)
{
	tenant *t = NULL;
	char err[256];
	if (tenant_parse("p1", PATH, json, strlen(json), 0100600, &t, NULL, NULL, err, sizeof err) < 0)
		printf("# %s\n", err);
	return t;
}

static void test_export_names_regards_settings_first_and_masks_secrets(void)
{
	char *out = NULL, err[256] = "";
	TU_EQ_INT(export(full, 0100600, &out, err, sizeof err), SETTINGS_OK);
	TU_EQ_STR(out, full_list);
	TU_CHECK(out && !strstr(out, "TOPSECRET") && !strstr(out, "SRCSECRET"));
	TU_CHECK(out && !strstr(out, "AKIDKEY") && !strstr(out, "SRCKEY"));
	free(out);
}

static void test_export_gives_regards_defaults_and_skips_unset_keys(void)
{
	char *out = NULL, err[256] = "";
	TU_EQ_INT(export("{\"order_command\":null,\"x_note\":\"mine\"}", 0100644, &out, err,
	    sizeof err), SETTINGS_OK);
	TU_EQ_STR(out, "[{\"name\":\"request_ttl\",\"value\":12},"
	    "{\"name\":\"order_size_limit_bytes\",\"value\":5368709120}]\n");
	free(out);
}

static void test_export_refuses_a_file_the_stages_would_refuse(void)
{
	char *out = NULL, err[256] = "";
	TU_EQ_INT(export("{\"request_ttl\":-1}", 0100600, &out, err, sizeof err), SETTINGS_CURRENT);
	TU_CHECK(out == NULL);
	TU_CHECK(strstr(err, PATH ": request_ttl: must be a number > 0") != NULL);
	TU_EQ_INT(export(full, 0100640, &out, err, sizeof err), SETTINGS_CURRENT);
	TU_CHECK(strstr(err, "readable by group/others") != NULL);
	TU_CHECK(!strstr(err, "TOPSECRET"));
	TU_EQ_INT(export("{\"request_ttl\":", 0100600, &out, err, sizeof err), SETTINGS_CURRENT);
}

static void test_export_import_export_is_identical_and_keeps_secrets(void)
{
	char *list = NULL, *file = NULL, *again = NULL, err[256] = "";
	TU_EQ_INT(export(full, 0100600, &list, err, sizeof err), SETTINGS_OK);
	TU_EQ_INT(import(full, list, &file, err, sizeof err), SETTINGS_OK);
	TU_EQ_STR(err, "");
	if (!file)
		return;
	TU_EQ_INT(export(file, 0100600, &again, err, sizeof err), SETTINGS_OK);
	TU_EQ_STR(again, list);
	tenant *t = load(file);
	TU_CHECK(t != NULL);
	if (t) {
		TU_EQ_STR(t->s3.key, "AKIDKEY");
		TU_EQ_STR(t->s3.secret, "TOPSECRET");
		TU_EQ_STR(t->source_s3.secret, "SRCSECRET");
		TU_EQ_INT(t->presign_ttl_seconds, 3600);
		TU_CHECK(t->request_ttl_hours == 0.5);
	}
	tenant_free(t);
	free(list);
	free(file);
	free(again);
}

static void test_import_merges_and_null_removes(void)
{
	char *file = NULL, *list = NULL, err[256] = "";
	TU_EQ_INT(import("{\"request_ttl\":2,\"users\":[\"a\"],\"x_note\":\"kept\"}",
	    "[{\"name\":\"users\",\"value\":null},{\"name\":\"compression\",\"value\":\"store\"},"
	    "{\"name\":\"build_bucket\",\"value\":\"ignored\"}]", &file, err, sizeof err),
	    SETTINGS_OK);
	TU_CHECK(file && strstr(file, "\"x_note\":\t\"kept\"") && !strstr(file, "users") &&
	    !strstr(file, "build_bucket"));
	tenant *t = file ? load(file) : NULL;
	TU_CHECK(t && t->users == NULL && t->request_ttl_hours == 2 &&
	    t->compression == TENANT_COMP_STORE);
	tenant_free(t);
	TU_EQ_INT(export(file ? file : "{}", 0100600, &list, err, sizeof err), SETTINGS_OK);
	TU_EQ_STR(list, "[{\"name\":\"request_ttl\",\"value\":2},"
	    "{\"name\":\"order_size_limit_bytes\",\"value\":5368709120},"
	    "{\"name\":\"compression\",\"value\":\"store\"}]\n");
	free(file);
	free(list);
}

static void test_import_creates_a_tenant_from_nothing(void)
{
	char *file = NULL, err[256] = "";
	TU_EQ_INT(import(NULL, "[{\"name\":\"request_ttl\",\"value\":24},"
	    "{\"name\":\"s3_server\",\"value\":{\"host\":\"h\",\"key\":\"K\",\"secret\":\"NEWSECRET\"}}]",
	    &file, err, sizeof err), SETTINGS_OK);
	tenant *t = file ? load(file) : NULL;
	TU_CHECK(t && t->request_ttl_hours == 24 && t->has_s3);
	if (t)
		TU_EQ_STR(t->s3.secret, "NEWSECRET");
	tenant_free(t);
	free(file);
}

static const struct {
	const char *cur, *body, *msg;
	int rc;
} bad[] = {
	{ "{}", "[{\"name\":\"request_ttl\"", "invalid JSON near byte", SETTINGS_BAD },
	{ "{}", "{\"request_ttl\":12}", "settings: must be a JSON array", SETTINGS_BAD },
	{ "{}", "[{\"name\":\"request_ttl\"}]", "settings[0]: must be an object", SETTINGS_BAD },
	{ "{}", "[{\"name\":\"request_ttl\",\"value\":1},12]", "settings[1]: must be an object",
	  SETTINGS_BAD },
	{ "{}", "[{\"name\":\"foo\",\"value\":1},{\"name\":\"request_ttl\",\"value\":1},"
	  "{\"name\":\"bar\",\"value\":2}]", "unknown settings: foo, bar", SETTINGS_BAD },
	{ "{}", "[{\"name\":\"upload_parallel\",\"value\":1},{\"name\":\"upload_parallel\",\"value\":2}]",
	  "setting upload_parallel: is given twice", SETTINGS_BAD },
	{ "{}", "[{\"name\":\"request_ttl\",\"value\":-1}]",
	  PATH ": request_ttl: must be a number > 0 and <= 876000 (hours), got -1", SETTINGS_BAD },
	{ "{}", "[{\"name\":\"request_ttl\",\"value\":\"12\"}]", "request_ttl: must be a number",
	  SETTINGS_BAD },
	{ "{}", "[{\"name\":\"delivery_bucket\",\"value\":\"Bad_Bucket\"}]",
	  "delivery_bucket: must be an S3 bucket name", SETTINGS_BAD },
	{ "{\"catalog\":\"/c.db\"}", "[{\"name\":\"order_command\",\"value\":\"/bin/x\"}]",
	  "catalog and order_command are both set", SETTINGS_BAD },
	{ "{}", "[{\"name\":\"s3_server\",\"value\":{\"host\":\"h\",\"key\":\"K\",\"secret\":\"*******\"}}]",
	  "s3_server.secret: is the mask \"*******\" but the tenant has no secret to keep", SETTINGS_BAD },
	{ "{}", "[{\"name\":\"s3_server\",\"value\":{\"host\":\"h\",\"port\":0,\"key\":\"K\","
	  "\"secret\":\"TOPSECRET\"}}]", "s3_server.port: must be an integer from 1 to 65535",
	  SETTINGS_BAD },
	{ "{}", "[{\"name\":\"order_command\",\"value\":\"/bin/sh\"}]",
	  "order_command /bin/sh is not one of the commands listed in FERRY_ORDER_COMMANDS",
	  SETTINGS_BAD },
	{ "{\"order_command\":\"/opt/old\"}", "[{\"name\":\"order_command\",\"value\":\"/usr/lib/ferry\"}]",
	  "order_command /usr/lib/ferry is not one of the commands listed", SETTINGS_BAD },
	{ "{\"request_ttl\":", "[]", PATH ": invalid JSON near byte", SETTINGS_CURRENT },
	{ "[1]", "[]", PATH ": not a JSON object", SETTINGS_CURRENT },
};

static void test_import_errors_say_what_and_hold_no_secret(void)
{
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *file = (char *)"unset", err[256] = "";
		printf("# case %zu: %s\n", i, bad[i].body);
		TU_EQ_INT(import(bad[i].cur, bad[i].body, &file, err, sizeof err), bad[i].rc);
		TU_CHECK(file == NULL);
		if (!strstr(err, bad[i].msg))
			printf("# got: %s\n", err);
		TU_CHECK(strstr(err, bad[i].msg) != NULL);
		TU_CHECK(!strstr(err, "TOPSECRET") && strchr(err, '\n') == NULL);
	}
}

static void test_a_masked_secret_keeps_the_current_one_a_new_one_replaces_it(void)
{
	char *file = NULL, err[256] = "";
	const char *cur = "{\"s3_server\":{\"host\":\"h\",\"key\":\"OLDKEY\",\"secret\":\"OLDSECRET\"}}";
	TU_EQ_INT(import(cur, "[{\"name\":\"s3_server\",\"value\":{\"host\":\"h2\","
	    "\"key\":\"*******\",\"secret\":\"NEWSECRET\"}}]", &file, err, sizeof err), SETTINGS_OK);
	tenant *t = file ? load(file) : NULL;
	TU_CHECK(t != NULL);
	if (t) {
		TU_EQ_STR(t->s3.host, "h2");
		TU_EQ_STR(t->s3.key, "OLDKEY");
		TU_EQ_STR(t->s3.secret, "NEWSECRET");
	}
	tenant_free(t);
	free(file);
}

/* order_command runs as the service: a PUT sets only a listed one */
static void test_order_command_only_from_the_list(void)
{
	char *file = NULL, err[256] = "";
	size_t len;
	const char *cur = "{\"order_command\":\"/opt/old\"}";
	TU_EQ_INT(import(cur, "[{\"name\":\"request_ttl\",\"value\":2}]", &file, err, sizeof err),
	    SETTINGS_OK);       /* kept as it is */
	free(file);
	TU_EQ_INT(import(cur, "[{\"name\":\"order_command\",\"value\":\"/opt/old\"}]", &file, err,
	    sizeof err), SETTINGS_OK);
	free(file);
	TU_EQ_INT(import(cur, "[{\"name\":\"order_command\",\"value\":null}]", &file, err,
	    sizeof err), SETTINGS_OK);
	free(file);
	TU_EQ_INT(import(cur, "[{\"name\":\"order_command\",\"value\":\"/usr/lib/ferry/order\"}]",
	    &file, err, sizeof err), SETTINGS_OK);
	TU_CHECK(file && strstr(file, "/usr/lib/ferry/order"));
	free(file);
	const char *body = "[{\"name\":\"order_command\",\"value\":\"/usr/lib/ferry/order\"}]";
	file = NULL;
	TU_EQ_INT(settings_import("p1", PATH, NULL, 0, body, strlen(body), NULL, &file, &len, err,
	    sizeof err), SETTINGS_BAD);
	TU_CHECK(file == NULL);
	TU_EQ_STR(err, "order_command /usr/lib/ferry/order is not one of the commands listed in "
	    "FERRY_ORDER_COMMANDS (none is)");
	TU_EQ_INT(settings_import("p1", PATH, NULL, 0, body, strlen(body), "/usr/lib/ferry/order2:"
	    "/usr/lib/ferry", &file, &len, err, sizeof err), SETTINGS_BAD);
}

static int warnings;
static void count_warning(void *arg, const char *file, const char *key)
{
	(void)arg, (void)file;
	printf("# tenant_parse does not know %s\n", key);
	warnings++;
}

/* the table of lib/settings.c against lib/tenant.c's rules */
static void test_every_setting_is_a_key_tenant_parse_knows(void)
{
	char *list = NULL, *file = NULL, err[256] = "";
	tenant *t = NULL;
	TU_EQ_INT(export(full, 0100600, &list, err, sizeof err), SETTINGS_OK);
	TU_EQ_INT(import(NULL, list ? list : "[]", &file, err, sizeof err), SETTINGS_BAD);
	TU_EQ_STR(err, "s3_server.key: is the mask \"*******\" but the tenant has no key to keep");
	free(file);
	TU_EQ_INT(import(full, list ? list : "[]", &file, err, sizeof err), SETTINGS_OK);
	warnings = 0;
	if (file)
		TU_EQ_INT(tenant_parse("p1", PATH, file, strlen(file), 0100600, &t, count_warning, NULL,
		    err, sizeof err), 0);
	TU_EQ_INT(warnings, 0);
	tenant_free(t);
	free(list);
	free(file);
}

/* the other way: every key tenant_parse knows can be set through settings
 * (a null value removes it: known, and nothing else to satisfy) */
static void test_every_tenant_key_is_a_setting(void)
{
	const char *k;
	int n = 0;
	for (size_t i = 0; (k = tenant_key(i)); i++, n++) {
		char body[128], *file = NULL, err[256] = "";
		snprintf(body, sizeof body, "[{\"name\":\"%s\",\"value\":null}]", k);
		int rc = import("{}", body, &file, err, sizeof err);
		if (rc != SETTINGS_OK)
			fprintf(stderr, "# %s: %s\n", k, err);
		TU_EQ_INT(rc, SETTINGS_OK);
		free(file);
	}
	TU_CHECK(n >= 18);
}

static int entries(const char *dir)
{
	int n = 0;
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, "..") != 0);
	if (d)
		closedir(d);
	return n;
}

static void test_write_is_atomic_private_and_read_back(void)
{
	const char *dir = tu_tmpdir();
	char path[512], *buf = NULL, err[256] = "";
	size_t len = 0;
	unsigned mode = 0;
	int created = -1;
	struct stat st;
	snprintf(path, sizeof path, "%s/p1.json", dir);
	TU_EQ_INT(settings_read(dir, "p1", &buf, &len, &mode, err, sizeof err), -1);
	TU_EQ_INT(errno, ENOENT);
	umask(022);
	TU_EQ_INT(settings_write(dir, "p1", "{}\n", 3, &created, err, sizeof err), 0);
	TU_EQ_INT(created, 1);
	TU_EQ_INT(stat(path, &st), 0);
	TU_EQ_INT(st.st_mode & 07777, 0600);
	TU_EQ_INT(settings_write(dir, "p1", full, strlen(full), &created, err, sizeof err), 0);
	TU_EQ_INT(created, 0);
	TU_EQ_INT(entries(dir), 1);              /* no temporary file left */
	TU_EQ_INT(settings_read(dir, "p1", &buf, &len, &mode, err, sizeof err), 0);
	TU_EQ_INT(len, strlen(full));
	TU_CHECK(buf && memcmp(buf, full, len) == 0);
	TU_EQ_INT(mode & 07777, 0600);
	settings_free_text(buf, len);
	TU_EQ_INT(settings_write(dir, "../p1", "{}", 2, &created, err, sizeof err), -1);
	TU_EQ_INT(settings_write("/nonexistent-dir", "p1", "{}", 2, &created, err, sizeof err), -1);
	TU_CHECK(strstr(err, "unable to create /nonexistent-dir/.p1.json.") != NULL);
	TU_EQ_INT(settings_read(dir, "..", &buf, &len, &mode, err, sizeof err), -1);
	snprintf(path, sizeof path, "%s/d.json", dir);
	TU_EQ_INT(mkdir(path, 0700), 0);
	TU_EQ_INT(settings_read(dir, "d", &buf, &len, &mode, err, sizeof err), -1);
	TU_CHECK(strstr(err, "not a regular file") != NULL);
}

TU_MAIN(
	TU(test_order_command_only_from_the_list),
	TU(test_export_names_regards_settings_first_and_masks_secrets),
	TU(test_export_gives_regards_defaults_and_skips_unset_keys),
	TU(test_export_refuses_a_file_the_stages_would_refuse),
	TU(test_export_import_export_is_identical_and_keeps_secrets),
	TU(test_import_merges_and_null_removes),
	TU(test_import_creates_a_tenant_from_nothing),
	TU(test_import_errors_say_what_and_hold_no_secret),
	TU(test_a_masked_secret_keeps_the_current_one_a_new_one_replaces_it),
	TU(test_every_setting_is_a_key_tenant_parse_knows),
	TU(test_every_tenant_key_is_a_setting),
	TU(test_write_is_atomic_private_and_read_back)
)
