/* fuzz validate: the request validator (lib/validate), whole body and
 * tenant. The input's first line is the tenant's configuration (tenant
 * "p1"; unusable if it does not load), the rest the request body. The
 * body's filenameRegExp, when it compiles, is also matched against a few
 * names. Properties: the verdict is consistent (denied iff errors, the
 * errorType of the errors found, FORBIDDEN without a tenant), the message is
 * valid UTF-8 within VALIDATE_MESSAGE_MAX and lists one "[Code] ..." per
 * error. The body goes through ingest's strict JSON checks (jsonstrict)
 * too: accepted bytes are UTF-8 with no raw control character inside a
 * string, and every object of an accepted body has distinct keys. */
#include <errno.h>

#include "fuzz.h"
#include "jsonstrict.h"
#include "util.h"
#include "validate.h"

FUZZ_TARGET("validate");

static void check_verdict(const struct validation *v, const cJSON *body, const tenant *t)
{
	size_t n = strnlen(v->message, sizeof v->message);
	FUZZ_CHECK(n < sizeof v->message);
	FUZZ_CHECK(util_utf8_valid(v->message, n));
	FUZZ_CHECK(v->denied == (v->nforbidden + v->ncontent > 0));
	FUZZ_CHECK(v->denied == (n > 0));
	if (!t && cJSON_IsObject(body))   /* a non-object is judged before access */
		FUZZ_CHECK(v->nforbidden > 0);
	if (!v->denied) {
		FUZZ_CHECK(v->error_type == NULL);
		return;
	}
	FUZZ_CHECK(v->message[0] == '[');
	FUZZ_CHECK(strcmp(v->error_type, v->nforbidden ? "FORBIDDEN" : "INVALID_CONTENT") == 0);
	if (v->nforbidden)
		FUZZ_CHECK(strncmp(v->message, "[FORBIDDEN]", 11) == 0);
}

static void check_regexp(const cJSON *body)
{
	static const char *const names[] = {
		"a.nc", "", "P1_1/data/file-0001.nc", "\xc3\xa9t\xc3\xa9.txt", "bad\xff\xfe.nc",
		"line\nbreak", "QUICKLOOK_SD.png",
	};
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(body, "order"), "filters");
	const char *re = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "filenameRegExp"));
	validate_regexp *code;
	char err[160];
	if (!re)
		return;
	if (validate_regexp_compile(re, &code, err, sizeof err) < 0) {
		FUZZ_CHECK(errno == EINVAL && strstr(err, " at offset "));
		return;
	}
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		int rc = validate_regexp_match(code, names[i]);
		FUZZ_CHECK(rc == 0 || rc == 1 || (rc == -1 && errno == E2BIG));
	}
	validate_regexp_free(code);
}

/* what jsonstrict accepts has no raw control byte within quotes */
static void check_strict(const char *text, size_t len, const cJSON *body)
{
	char why[120];
	if (jsonstrict_text(text, len))
		return;
	FUZZ_CHECK(util_utf8_valid(text, len));
	int in = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		FUZZ_CHECK(!(in && c < 0x20));
		if (in && c == '\\')
			i++;
		else if (c == '"')
			in = !in;
	}
	const char *r = body ? jsonstrict_keys(body, why, sizeof why) : NULL;
	FUZZ_CHECK(!r || (r == why && strnlen(why, sizeof why) < sizeof why &&
	    util_utf8_valid(why, strlen(why))));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t tlen = nl ? (size_t)(nl - data) : 0;
	const char *btext = (const char *)data + (nl ? tlen + 1 : 0);
	size_t blen = size - (size_t)(btext - (const char *)data);
	tenant *t = NULL;
	char err[300];
	if (tlen > 0 && tenant_parse("p1", "p1.json", (const char *)data, tlen, 0100600, &t,
	    NULL, NULL, err, sizeof err) < 0)
		t = NULL;
	cJSON *body = cJSON_ParseWithLength(btext, blen);
	check_strict(btext, blen, body);
	if (body) {
		struct validation v;
		FUZZ_CHECK(validate_request(body, "p1", t, &v) == 0);
		check_verdict(&v, body, t);
		/* an unknown tenant by a hostile name, quoted in the message */
		FUZZ_CHECK(validate_request(body, btext[0] ? "p\xff\xfe\xe2\x80" : NULL, NULL, &v) == 0);
		check_verdict(&v, body, NULL);
		check_regexp(body);
		cJSON_Delete(body);
	}
	tenant_free(t);
	return 0;
}
