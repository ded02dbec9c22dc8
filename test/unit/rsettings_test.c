/* rsettings_test: rs-delivery's settings over a tenant file (lib/rsettings.c)
 * — the exact JSON of the HATEOAS entries as REGARDS's Gson writes them,
 * the names filter, masking, the links each state gives, update and reset
 * (the new file text, nothing written for an unchanged value), and every
 * refusal with its REGARDS class. */
#include <errno.h>
#include <stdlib.h>

#include "rsettings.h"
#include "tu.h"

#define PATH "/etc/ferry/tenants/p1.json"
#define BASE "http://h:1"

static const char file[] =
    "{\"request_ttl\":2,\"users\":[\"ana\"],\"catalog\":\"/c.db\","
    "\"s3_server\":{\"host\":\"s3\",\"key\":\"AKID\",\"secret\":\"TOPSECRET\"}}";

static int get(const char *json, const char *const *names, size_t n, char **out)
{
	char err[512];
	return rsettings_get("p1", PATH, json, strlen(json), 0100600, names, n, BASE, out, err,
	    sizeof err);
}

static void test_the_entries_are_regards_json_exactly(void)
{
	char *out = NULL;
	TU_EQ_INT(get(file, NULL, 0, &out), RSETTINGS_OK);
	TU_EQ_STR(out,
	    "[{\"content\":{\"name\":\"s3_server\",\"description\":\"S3 server to place orders.\","
	    "\"defaultValue\":{\"scheme\":\"https\",\"host\":\"rs-minio\",\"port\":9000,"
	    "\"region\":\"fr-regards-1\",\"key\":\"default-key\",\"secret\":\"default-secret\"},"
	    "\"value\":{\"host\":\"s3\",\"key\":\"*******\",\"secret\":\"*******\"}},"
	    "\"links\":[{\"rel\":\"self\",\"href\":\"http://h:1/settings{?names}\"},"
	    "{\"rel\":\"update\",\"href\":\"http://h:1/settings/s3_server\"},"
	    "{\"rel\":\"reset\",\"href\":\"http://h:1/settings/s3_server\"}]},"
	    "{\"content\":{\"name\":\"delivery_bucket\",\"description\":\"Bucket on which the ZIP "
	    "archives will be dropped once orders have been completed.\","
	    "\"defaultValue\":\"default-delivery-bucket\",\"value\":\"default-delivery-bucket\"},"
	    "\"links\":[{\"rel\":\"self\",\"href\":\"http://h:1/settings{?names}\"},"
	    "{\"rel\":\"update\",\"href\":\"http://h:1/settings/delivery_bucket\"}]},"
	    "{\"content\":{\"name\":\"request_ttl\",\"description\":\"Maximum retention time of a "
	    "delivery request in hours.\",\"defaultValue\":12,\"value\":2},"
	    "\"links\":[{\"rel\":\"self\",\"href\":\"http://h:1/settings{?names}\"},"
	    "{\"rel\":\"update\",\"href\":\"http://h:1/settings/request_ttl\"},"
	    "{\"rel\":\"reset\",\"href\":\"http://h:1/settings/request_ttl\"}]},"
	    "{\"content\":{\"name\":\"build_bucket\",\"description\":\"Temporary bucket on which "
	    "available files will be transferred before building final zips.\","
	    "\"defaultValue\":\"default-build-bucket\",\"value\":\"default-build-bucket\"},"
	    "\"links\":[{\"rel\":\"self\",\"href\":\"http://h:1/settings{?names}\"}]},"
	    "{\"content\":{\"name\":\"order_size_limit_bytes\",\"description\":\"Maximum size in "
	    "octets allowed for a delivery order. This value should not be greater than a suborder "
	    "size in order microservice as delivery does not allow order with multiple suborders.\","
	    "\"defaultValue\":5368709120,\"value\":5368709120},"
	    "\"links\":[{\"rel\":\"self\",\"href\":\"http://h:1/settings{?names}\"},"
	    "{\"rel\":\"update\",\"href\":\"http://h:1/settings/order_size_limit_bytes\"}]}]");
	TU_CHECK(!strstr(out, "TOPSECRET") && !strstr(out, "AKID"));
	free(out);
}

static void test_names_filter_keeps_regards_order(void)
{
	const char *const two[] = { "order_size_limit_bytes", "request_ttl" };
	const char *const none[] = { "users" };
	char *out = NULL;
	TU_EQ_INT(get(file, two, 2, &out), RSETTINGS_OK);
	TU_CHECK(strstr(out, "request_ttl") < strstr(out, "order_size_limit_bytes"));
	TU_CHECK(!strstr(out, "s3_server"));
	free(out);
	TU_EQ_INT(get(file, none, 1, &out), RSETTINGS_OK);
	TU_EQ_STR(out, "[]");
	free(out);
}

static void test_an_invalid_file_is_the_current_file_s_fault(void)
{
	char *out = NULL, err[512];
	TU_EQ_INT(rsettings_get("p1", PATH, "{\"request_ttl\":-1}", 18, 0100600, NULL, 0, BASE, &out,
	    err, sizeof err), RSETTINGS_CURRENT);
	TU_CHECK(out == NULL);
	TU_CHECK(strstr(err, "request_ttl") != NULL);
	/* a secret in a file others can read: refused as the stages refuse it */
	TU_EQ_INT(rsettings_get("p1", PATH, file, strlen(file), 0100644, NULL, 0, BASE, &out,
	    err, sizeof err), RSETTINGS_CURRENT);
}

static int update(const char *name, const char *body, char **nf, size_t *nl, char **out,
    char *err, size_t n)
{
	return rsettings_update("p1", PATH, file, strlen(file), 0100600, name, body, strlen(body),
	    BASE, nf, nl, out, err, n);
}

static void test_update_writes_the_key_and_keeps_secrets(void)
{
	char *nf = NULL, *out = NULL, err[512];
	size_t nl = 0;
	TU_EQ_INT(update("request_ttl", "{\"name\":\"x\",\"defaultValue\":1,\"value\":24}", &nf, &nl,
	    &out, err, sizeof err), RSETTINGS_OK);
	TU_CHECK(nf && strstr(nf, "\"request_ttl\":\t24") && strstr(nf, "TOPSECRET"));
	TU_CHECK(strstr(out, "\"value\":24},") != NULL);
	free(nf);
	free(out);
	/* the S3 server with its masks: key and secret kept */
	TU_EQ_INT(update("s3_server", "{\"value\":{\"host\":\"s4\",\"key\":\"*******\","
	    "\"secret\":\"*******\"}}", &nf, &nl, &out, err, sizeof err), RSETTINGS_OK);
	TU_CHECK(strstr(nf, "\"s4\"") && strstr(nf, "TOPSECRET") && strstr(nf, "AKID"));
	TU_CHECK(!strstr(out, "TOPSECRET"));
	free(nf);
	free(out);
	/* the value it has: nothing to write */
	TU_EQ_INT(update("request_ttl", "{\"value\":2}", &nf, &nl, &out, err, sizeof err),
	    RSETTINGS_OK);
	TU_CHECK(nf == NULL && out != NULL);
	free(out);
}

static void test_update_refusals(void)
{
	char *nf = NULL, *out = NULL, err[512];
	size_t nl = 0;
	TU_EQ_INT(update("users", "{\"value\":1}", &nf, &nl, &out, err, sizeof err),
	    RSETTINGS_UNKNOWN);
	TU_EQ_STR(err, "Entity fr.cnes.regards.framework.modules.tenant.settings.domain."
	    "DynamicTenantSetting with id : users doesn't exist");
	TU_EQ_INT(update("build_bucket", "{\"value\":\"b\"}", &nf, &nl, &out, err, sizeof err),
	    RSETTINGS_FORBIDDEN);
	TU_EQ_STR(err, "Tenant Setting Modification not allowed");
	TU_EQ_INT(update("request_ttl", "{\"value\":null}", &nf, &nl, &out, err, sizeof err),
	    RSETTINGS_INVALID);
	TU_EQ_STR(err, "Invalid Tenant Setting: request_ttl. Cause: parameter [request time to live] "
	    "must be a valid positive number");
	TU_EQ_INT(update("request_ttl", "{\"value\":\"x\"}", &nf, &nl, &out, err, sizeof err),
	    RSETTINGS_INVALID);
	TU_CHECK(strncmp(err, "Invalid Tenant Setting: request_ttl. Cause: " PATH ": request_ttl:",
	    strlen("Invalid Tenant Setting: request_ttl. Cause: " PATH ": request_ttl:")) == 0);
	TU_EQ_INT(update("s3_server", "{\"value\":{\"host\":\"h\",\"key\":\"k\",\"secret\":\"\"}}",
	    &nf, &nl, &out, err, sizeof err), RSETTINGS_INVALID);
	TU_EQ_INT(update("request_ttl", "[{\"value\":1}]", &nf, &nl, &out, err, sizeof err),
	    RSETTINGS_BODY);
	TU_EQ_INT(update("request_ttl", "{\"value\":1} x", &nf, &nl, &out, err, sizeof err),
	    RSETTINGS_BODY);
	TU_CHECK(nf == NULL && out == NULL);
}

static void test_reset_removes_the_key(void)
{
	char *nf = NULL, *out = NULL, err[512];
	size_t nl = 0;
	TU_EQ_INT(rsettings_reset("p1", PATH, file, strlen(file), 0100600, "request_ttl", BASE, &nf,
	    &nl, &out, err, sizeof err), RSETTINGS_OK);
	TU_CHECK(nf && !strstr(nf, "request_ttl") && strstr(nf, "TOPSECRET"));
	TU_CHECK(strstr(out, "\"defaultValue\":12,\"value\":12}") != NULL);
	TU_CHECK(!strstr(out, "\"reset\""));
	free(nf);
	free(out);
	/* at its default already: nothing written */
	TU_EQ_INT(rsettings_reset("p1", PATH, file, strlen(file), 0100600, "delivery_bucket", BASE,
	    &nf, &nl, &out, err, sizeof err), RSETTINGS_OK);
	TU_CHECK(nf == NULL);
	free(out);
	TU_EQ_INT(rsettings_reset("p1", PATH, file, strlen(file), 0100600, "build_bucket", BASE,
	    &nf, &nl, &out, err, sizeof err), RSETTINGS_FORBIDDEN);
}

static void test_gson_escape(void)
{
	char *s = rsettings_gson_escape(strdup("{\"a\":\"<b>&'=\\\"\"}"));
	TU_EQ_STR(s, "{\"a\":\"\\u003cb\\u003e\\u0026\\u0027\\u003d\\\"\"}");
	free(s);
	s = rsettings_gson_escape(strdup("\"a\xe2\x80\xa8" "b\xe2\x80\xa9\xe2\x80\xaa\""));
	TU_EQ_STR(s, "\"a\\u2028b\\u2029\xe2\x80\xaa\"");
	free(s);
	TU_CHECK(rsettings_gson_escape(NULL) == NULL);
}

/* ---- the export and import files ---- */

#define DTS "fr.cnes.regards.framework.modules.tenant.settings.domain.DynamicTenantSetting"

static void test_config_export_is_rs_delivery_s_file(void)
{
	char *out = NULL, err[512];
	TU_EQ_INT(rsettings_config_export("p1", PATH, file, strlen(file), 0100600, &out, err,
	    sizeof err), RSETTINGS_OK);
	static const char head[] = "{\n  \"microservice\": \"rs-delivery\",\n  \"modules\": [\n    {\n"
	    "      \"module\": {\n        \"id\": \"delivery\",\n        \"name\": \"Delivery module\",\n"
	    "        \"description\": \"File delivery system for order microservice.\",\n"
	    "        \"version\": \"1.14.0\",\n        \"author\": \"REGARDS\",\n"
	    "        \"legalOwner\": \"CNES\",\n"
	    "        \"documentation\": \"https://github.com/RegardsOss\"\n      },\n"
	    "      \"resetBeforeImport\": true,\n      \"configuration\": [\n        {\n"
	    "          \"key\": \"" DTS "\",\n          \"value\": {\n"
	    "            \"name\": \"request_ttl\",\n";
	static const char tail[] = "          }\n        }\n      ]\n    }\n  ]\n}";
	TU_CHECK(strncmp(out, head, strlen(head)) == 0);
	TU_CHECK(strstr(out, "            \"value\": \"2\",\n            \"defaultValue\": \"12\",\n"
	    "            \"className\": \"java.lang.Integer\",\n"
	    "            \"containsSensitiveParameters\": false\n          }\n        },\n") != NULL);
	/* the value as Gson text, in S3DeliveryServer's field order, masked */
	TU_CHECK(strstr(out, "\"value\": \"{\\\"host\\\":\\\"s3\\\",\\\"key\\\":\\\"*******\\\","
	    "\\\"secret\\\":\\\"*******\\\"}\",\n") != NULL);
	TU_CHECK(!strstr(out, "TOPSECRET") && !strstr(out, "AKID"));
	/* DynamicTenantSettingService.readAll's HashSet order */
	const char *a = strstr(out, "\"request_ttl\""), *b = strstr(out, "\"s3_server\""),
	    *c = strstr(out, "\"delivery_bucket\""), *d = strstr(out, "\"order_size_limit_bytes\""),
	    *e = strstr(out, "\"build_bucket\"");
	TU_CHECK(a && b && c && d && e && a < b && b < c && c < d && d < e);
	size_t n = strlen(out);
	TU_CHECK(n > strlen(tail) && strcmp(out + n - strlen(tail), tail) == 0);
	free(out);
}

static int import(const char *cfg, char **nf, int *status, char **report, char *err)
{
	size_t nl;
	return rsettings_config_import("p1", PATH, file, strlen(file), 0100600, cfg, strlen(cfg),
	    nf, &nl, status, report, err, 512);
}

static void test_config_round_trip_changes_nothing(void)
{
	char *out = NULL, *nf = NULL, *rep = NULL, err[512];
	int status = 0;
	TU_EQ_INT(rsettings_config_export("p1", PATH, file, strlen(file), 0100600, &out, err,
	    sizeof err), RSETTINGS_OK);
	TU_EQ_INT(import(out, &nf, &status, &rep, err), RSETTINGS_OK);
	TU_EQ_INT(status, 201);
	TU_CHECK(nf == NULL && rep == NULL);
	free(out);
}

#define CFG(reset, items) "{\"microservice\":\"rs-delivery\",\"modules\":[{\"module\":" \
	"{\"id\":\"delivery\"},\"resetBeforeImport\":" reset ",\"configuration\":[" items "]}]}"
#define ITEM(name, value) "{\"key\":\"" DTS "\",\"value\":{\"name\":\"" name "\",\"value\":" \
	value "}}"

static void test_config_import_reports(void)
{
	char *nf = NULL, *rep = NULL, err[512];
	int status = 0;
	/* one of two fails: 206, the other applied */
	TU_EQ_INT(import(CFG("false", ITEM("request_ttl", "\"5\"") "," ITEM("nope", "\"1\"")), &nf,
	    &status, &rep, err), RSETTINGS_OK);
	TU_EQ_INT(status, 206);
	TU_CHECK(nf && strstr(nf, "\"request_ttl\":\t5") && strstr(nf, "TOPSECRET"));
	TU_EQ_STR(rep, "[{\"moduleInformation\":{\"id\":\"delivery\",\"name\":\"Delivery module\","
	    "\"description\":\"File delivery system for order microservice.\",\"version\":\"1.14.0\","
	    "\"author\":\"REGARDS\",\"legalOwner\":\"CNES\","
	    "\"documentation\":\"https://github.com/RegardsOss\"},\"importErrors\":[\"Failed to "
	    "import dynamic tenant setting with name \\u0027nope\\u0027. Cause: Entity " DTS
	    " with id : nope doesn\\u0027t exist\"],\"onlyErrors\":false}]");
	free(nf);
	free(rep);
	/* every item fails: 409; with the reset, what failed is at its default */
	TU_EQ_INT(import(CFG("true", ITEM("request_ttl", "\"-5\"") "," ITEM("order_size_limit_bytes",
	    "null")), &nf, &status, &rep, err), RSETTINGS_OK);
	TU_EQ_INT(status, 409);
	TU_CHECK(nf && !strstr(nf, "request_ttl") && !strstr(nf, "s3_server"));
	TU_CHECK(rep && strstr(rep, "\"onlyErrors\":true") &&
	    strstr(rep, "name \\u0027order_size_limit_bytes\\u0027. Cause: Invalid Tenant Setting: "
	    "order_size_limit_bytes. Cause: parameter [order size limit] must be a valid positive "
	    "number\"") && strstr(rep, "got -5"));
	free(nf);
	free(rep);
	/* an empty configuration is "only errors" to REGARDS too */
	TU_EQ_INT(import(CFG("false", ""), &nf, &status, &rep, err), RSETTINGS_OK);
	TU_EQ_INT(status, 409);
	TU_CHECK(nf == NULL && strstr(rep, "\"importErrors\":[],\"onlyErrors\":true"));
	free(rep);
	/* another module's file: nothing applies, 201 */
	TU_EQ_INT(import("{\"microservice\":\"rs-order\",\"modules\":[{\"module\":{\"id\":\"order\"},"
	    "\"configuration\":[" ITEM("request_ttl", "\"5\"") "]}]}", &nf, &status, &rep, err),
	    RSETTINGS_OK);
	TU_EQ_INT(status, 201);
	TU_CHECK(nf == NULL && rep == NULL);
	/* build_bucket, which ferry has not, is passed over */
	TU_EQ_INT(import(CFG("false", ITEM("build_bucket", "\"\\\"b\\\"\"")), &nf, &status, &rep,
	    err), RSETTINGS_OK);
	TU_EQ_INT(status, 201);
	TU_CHECK(nf == NULL);
}

/* the reset does not lose the secret a masked value refers to */
static void test_config_import_keeps_masked_secrets(void)
{
	char *nf = NULL, *rep = NULL, err[512];
	int status = 0;
	TU_EQ_INT(import(CFG("true", ITEM("s3_server", "\"{\\\"host\\\":\\\"s4\\\",\\\"key\\\":"
	    "\\\"*******\\\",\\\"secret\\\":\\\"*******\\\"}\"")), &nf, &status, &rep, err),
	    RSETTINGS_OK);
	TU_EQ_INT(status, 201);
	TU_CHECK(nf && strstr(nf, "\"s4\"") && strstr(nf, "TOPSECRET") && strstr(nf, "AKID"));
	TU_CHECK(nf && !strstr(nf, "request_ttl"));           /* reset: not in the file */
	free(nf);
}

static void test_config_malformed_changes_nothing(void)
{
	static const char *const bad[] = {
		"", "[]", "{\"modules\":3}", "{\"modules\":[{\"configuration\":[]}]}",
		CFG("1", ""), "{\"modules\":[{\"module\":{\"id\":\"delivery\"}}]}",
		CFG("true", "{\"key\":\"fr.cnes.Other\",\"value\":{}}"),
		CFG("true", ITEM("request_ttl", "5")),
		CFG("true", ITEM("request_ttl", "\"{\"")),
		CFG("true", ITEM("request_ttl", "\"5\"")) " x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *nf = NULL, *rep = NULL, err[512] = "";
		int status = 1;
		TU_EQ_INT(import(bad[i], &nf, &status, &rep, err), RSETTINGS_CONFIG);
		TU_CHECK(nf == NULL && rep == NULL && status == 0 && err[0]);
	}
	char *nf = NULL, *rep = NULL, err[512];
	int status;
	import(CFG("true", "{\"key\":\"fr.cnes.Other\",\"value\":{}}"), &nf, &status, &rep, err);
	TU_EQ_STR(err, "com.google.gson.JsonSyntaxException: java.io.IOException: "
	    "java.lang.ClassNotFoundException: fr.cnes.Other");
}

TU_MAIN(TU(test_the_entries_are_regards_json_exactly), TU(test_names_filter_keeps_regards_order),
    TU(test_an_invalid_file_is_the_current_file_s_fault),
    TU(test_update_writes_the_key_and_keeps_secrets), TU(test_update_refusals),
    TU(test_reset_removes_the_key), TU(test_gson_escape),
    TU(test_config_export_is_rs_delivery_s_file), TU(test_config_round_trip_changes_nothing),
    TU(test_config_import_reports), TU(test_config_import_keeps_masked_secrets),
    TU(test_config_malformed_changes_nothing))
