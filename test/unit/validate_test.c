/* validate_test: the verdicts of lib/validate.c on a table of request
 * bodies (every rule of DESIGN §2, alone and combined), the Java string
 * rules, and the whole-name filenameRegExp. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "validate.h"
#include "tu.h"

/* Bodies are written with ' for " and `seq*N` for seq repeated N times. */
struct vcase {
	const char *name;
	const char *body;
	const char *users;        /* NULL unusable tenant, "-" users absent, "" [], "*" ["*"], else "a,b" */
	const char *type;         /* NULL = GRANTED */
	const char *has[5];       /* substrings of the message, in this order */
	const char *hasnt;        /* a substring the message must not hold */
	unsigned nerrors;         /* 0 = not checked */
};

#define ORDER_OK "'queries':['tags:coastline'],'user':'ana@example.org'"
#define BODY(order) "{'correlationId':'c-42','targetDelivery':'s3','order':{" order "}}"
#define WITH(extra) BODY(ORDER_OK "," extra)
#define CID(cid) "{'correlationId':'" cid "','targetDelivery':'s3','order':{" ORDER_OK "}}"
#define USER(u) BODY("'queries':['q'],'user':" u)
#define FILTERS(f) WITH("'filters':" f)
#define REGEXP(r) FILTERS("{'dataTypes':['RAWDATA'],'filenameRegExp':" r "}")
#define ANA "ana@example.org"
#define IC "INVALID_CONTENT"
#define FB "FORBIDDEN"
#define Z8 "zzzzzzzz"
#define Z64 Z8 Z8 Z8 Z8 Z8 Z8 Z8 Z8

static const struct vcase cases[] = {
	/* granted */
	{ "minimal request", BODY(ORDER_OK), ANA, NULL, { NULL }, NULL, 0 },
	{ "full request", REGEXP("'.*\\\\.nc'"), ANA, NULL, { NULL }, NULL, 0 },
	{ "both data types", FILTERS("{'dataTypes':['RAWDATA','QUICKLOOK']}"), ANA, NULL,
	  { NULL }, NULL, 0 },
	{ "null filters", FILTERS("null"), ANA, NULL, { NULL }, NULL, 0 },
	{ "null filenameRegExp", REGEXP("null"), ANA, NULL, { NULL }, NULL, 0 },
	{ "empty filenameRegExp", REGEXP("''"), ANA, NULL, { NULL }, NULL, 0 },
	{ "unknown fields ignored",
	  "{'x':1,'correlationId':'c','targetDelivery':'s3','order':{" ORDER_OK ",'y':[1],"
	  "'filters':{'dataTypes':['QUICKLOOK'],'z':{}}},'w':null}", ANA, NULL, { NULL }, NULL, 0 },
	{ "sizeLimitInBytes ignored whatever it is", WITH("'sizeLimitInBytes':'lots'"), ANA, NULL,
	  { NULL }, NULL, 0 },
	{ "negative sizeLimitInBytes ignored", WITH("'sizeLimitInBytes':-5"), ANA, NULL,
	  { NULL }, NULL, 0 },
	{ "java-style regexp", REGEXP("'^S1.*_(GRD|SLC)\\\\.zip$'"), ANA, NULL, { NULL }, NULL, 0 },
	{ "java \\uXXXX and \\p{L} in regexp", REGEXP("'\\\\u00e9\\\\p{L}+\\\\.nc'"), ANA, NULL,
	  { NULL }, NULL, 0 },
	{ "any user when users is [\"*\"]", USER("'zoe'"), "*", NULL, { NULL }, NULL, 0 },
	{ "nobody when users is absent", USER("'zoe'"), "-", FB,
	  { "[FORBIDDEN] Unknown user : zoe at user: rejected value [zoe]." }, NULL, 1 },
	{ "nobody when users is []", USER("'zoe'"), "", FB, { "Unknown user : zoe" }, NULL, 1 },
	{ "listed user", USER("'bob'"), "ana@example.org,bob", NULL, { NULL }, NULL, 0 },
	{ "255-char correlationId", CID("`a*255`"), ANA, NULL, { NULL }, NULL, 0 },
	{ "255 e-acute correlationId", CID("`\xC3\xA9*255`"), ANA, NULL, { NULL }, NULL, 0 },
	{ "127 emoji = 254 UTF-16 units", CID("`\xF0\x9F\x98\x80*127`"), ANA, NULL,
	  { NULL }, NULL, 0 },
	{ "nbsp is not blank (String.trim)", CID("\\u00a0"), ANA, NULL, { NULL }, NULL, 0 },
	{ "em space is not blank (String.trim)", CID("\\u2003"), ANA, NULL, { NULL }, NULL, 0 },
	{ "128-char user", USER("'`u*128`'"), "*", NULL, { NULL }, NULL, 0 },
	{ "255-char order.correlationId", WITH("'correlationId':'`x*255`'"), ANA, NULL,
	  { NULL }, NULL, 0 },

	/* correlationId */
	{ "256-char correlationId", CID("`a*256`"), ANA, IC,
	  { "[Size] provided correlation identifier must not exceed 255 characters. "
	    "at correlationId: rejected value [aaaa", "\xE2\x80\xA6] (256 characters)." },
	  NULL, 1 },
	{ "256 e-acute correlationId", CID("`\xC3\xA9*256`"), ANA, IC,
	  { "[Size]", "(256 characters)" }, NULL, 1 },
	{ "128 emoji = 256 UTF-16 units", CID("`\xF0\x9F\x98\x80*128`"), ANA, IC,
	  { "[Size]", "(256 characters)" }, NULL, 1 },
	{ "empty correlationId", CID(""), ANA, IC,
	  { "[NotBlank] correlation identifier is required to track this delivery. "
	    "at correlationId: rejected value []." }, NULL, 1 },
	{ "spaces correlationId", CID("   "), ANA, IC, { "[NotBlank]", "rejected value [   ]" },
	  NULL, 1 },
	{ "tab newline correlationId", CID("\\t\\n\\r "), ANA, IC, { "[NotBlank]" }, NULL, 1 },
	{ "control-char correlationId is blank", CID("\\u0001\\u001f"), ANA, IC,
	  { "[NotBlank]" }, NULL, 1 },
	{ "huge correlationId quoted short", CID("`z*100000`"), ANA, IC,
	  { "rejected value [" Z64 "\xE2\x80\xA6] (100000 characters)." }, Z64 "z", 1 },

	/* targetDelivery, order */
	{ "targetDelivery missing",
	  "{'correlationId':'c','order':{" ORDER_OK "}}", ANA, IC,
	  { "[NotBlank] targetDelivery is mandatory at targetDelivery: rejected value [null]." },
	  NULL, 1 },
	{ "targetDelivery null",
	  "{'correlationId':'c','targetDelivery':null,'order':{" ORDER_OK "}}", ANA, IC,
	  { "[NotBlank] targetDelivery is mandatory" }, NULL, 1 },
	{ "targetDelivery empty",
	  "{'correlationId':'c','targetDelivery':'','order':{" ORDER_OK "}}", ANA, IC,
	  { "rejected value []." }, NULL, 1 },
	{ "targetDelivery whitespace",
	  "{'correlationId':'c','targetDelivery':' \\t\\n','order':{" ORDER_OK "}}", ANA, IC,
	  { "[NotBlank] targetDelivery" }, NULL, 1 },
	{ "targetDelivery a number",
	  "{'correlationId':'c','targetDelivery':5,'order':{" ORDER_OK "}}", ANA, IC,
	  { "[typeMismatch] must be a string at targetDelivery: rejected value [5]." }, NULL, 1 },
	{ "order missing", "{'correlationId':'c','targetDelivery':'s3'}", ANA, IC,
	  { "[NotNull] order is mandatory at order: rejected value [null]." }, "FORBIDDEN", 1 },
	{ "order null", "{'correlationId':'c','targetDelivery':'s3','order':null}", ANA, IC,
	  { "[NotNull] order is mandatory" }, NULL, 1 },
	{ "order a string", "{'correlationId':'c','targetDelivery':'s3','order':'x'}", ANA, IC,
	  { "[typeMismatch] must be an object at order: rejected value [x]." }, NULL, 1 },

	/* queries */
	{ "queries missing", BODY("'user':'ana@example.org'"), ANA, IC,
	  { "[NotEmpty] list of queries should not be empty at order.queries: "
	    "rejected value [null]." }, NULL, 1 },
	{ "queries empty", BODY("'queries':[],'user':'ana@example.org'"), ANA, IC,
	  { "at order.queries: rejected value [[]]." }, NULL, 1 },
	{ "queries an object", BODY("'queries':{'q':1},'user':'ana@example.org'"), ANA, IC,
	  { "[typeMismatch] must be an array of strings at order.queries: "
	    "rejected value [{\"q\":1}]." }, NULL, 1 },
	{ "queries a string", BODY("'queries':'q','user':'ana@example.org'"), ANA, IC,
	  { "must be an array of strings at order.queries: rejected value [q]" }, NULL, 1 },
	{ "queries not all strings", BODY("'queries':['a',1,null],'user':'ana@example.org'"), ANA, IC,
	  { "[typeMismatch] must be a string at order.queries[1]: rejected value [1].",
	    ", [typeMismatch] must be a string at order.queries[2]: rejected value [null]." },
	  "queries[0]", 2 },
	{ "huge object quoted short",
	  BODY("'queries':{'a':'`x*1000`','b':2},'user':'ana@example.org'"), ANA, IC,
	  { "rejected value [{\xE2\x80\xA6}] (2 members)." }, "xxxxxxxxxxxxxxxxxxxxxxx", 1 },

	/* user and tenant */
	{ "user missing", BODY("'queries':['q']"), ANA, FB,
	  { "[FORBIDDEN] User should be present at user: rejected value [null]." }, NULL, 1 },
	{ "user null", USER("null"), "*", FB, { "User should be present" }, NULL, 1 },
	{ "unknown user", USER("'bob'"), ANA, FB,
	  { "[FORBIDDEN] Unknown user : bob at user: rejected value [bob]." }, NULL, 1 },
	{ "user a number", USER("42"), ANA, IC,
	  { "[typeMismatch] must be a string at order.user: rejected value [42]." }, "FORBIDDEN", 1 },
	{ "129-char user", USER("'`u*129`'"), "*", IC,
	  { "[Size] user must not exceed 128 characters. at order.user: rejected value [uuu",
	    "(129 characters)." }, NULL, 1 },
	{ "129-char unknown user", USER("'`u*129`'"), ANA, FB,
	  { "[FORBIDDEN] Unknown user : uuu", "[Size] user must not exceed 128" }, NULL, 2 },
	{ "empty user is nobody", USER("''"), "*", FB, { "Unknown user : " }, NULL, 1 },
	{ "whitespace user is nobody", USER("' \\t'"), "*", FB, { "Unknown user : " }, NULL, 1 },
	{ "unusable tenant", BODY(ORDER_OK), NULL, FB,
	  { "[FORBIDDEN] Delivery is not configured for tenant p1 at tenant: rejected value [p1]." },
	  "Unknown user", 1 },
	{ "unusable tenant and no user", BODY("'queries':['q']"), NULL, FB,
	  { "not configured for tenant p1", "User should be present" }, NULL, 2 },
	{ "unusable tenant wins over content",
	  "{'correlationId':' ','targetDelivery':'s3','order':{'queries':[],'user':'a'}}", NULL, FB,
	  { "[FORBIDDEN] Delivery is not configured", ", [NotBlank] correlation identifier",
	    ", [NotEmpty] list of queries" }, NULL, 3 },
	{ "unknown user wins over content",
	  "{'correlationId':'','order':{'queries':[],'user':'eve'}}", ANA, FB,
	  { "[FORBIDDEN] Unknown user : eve", "[NotBlank] correlation identifier",
	    "[NotBlank] targetDelivery", "[NotEmpty] list of queries" }, NULL, 4 },
	{ "bad filter with a known user is content only", FILTERS("{}"), "*", IC,
	  { "[NotEmpty] There should be" }, "FORBIDDEN", 1 },
	{ "no user and bad filters",
	  BODY("'queries':['q'],'filters':{'dataTypes':['X']}"), ANA, FB,
	  { "User should be present", "order.filters.dataTypes[0]: rejected value [X]" }, NULL, 2 },
	{ "invalid UTF-8 user shown as U+FFFD", USER("'\xFF\xFE'"), ANA, FB,
	  { "Unknown user : \xEF\xBF\xBD\xEF\xBF\xBD at user" }, NULL, 1 },

	/* order.correlationId */
	{ "256-char order.correlationId", WITH("'correlationId':'`x*256`'"), ANA, IC,
	  { "[Size] provided correlationId must not exceed 255 characters. "
	    "at order.correlationId" }, NULL, 1 },
	{ "order.correlationId a number", WITH("'correlationId':7"), ANA, IC,
	  { "must be a string at order.correlationId: rejected value [7]." }, NULL, 1 },

	/* filters */
	{ "empty filters", FILTERS("{}"), ANA, IC,
	  { "[NotEmpty] There should be at least one datatype to order. DataType can be RAWDATA "
	    "or QUICKLOOK at order.filters.dataTypes: rejected value [null]." }, NULL, 1 },
	{ "empty dataTypes", FILTERS("{'dataTypes':[]}"), ANA, IC,
	  { "at order.filters.dataTypes: rejected value [[]]." }, NULL, 1 },
	{ "null dataTypes", FILTERS("{'dataTypes':null}"), ANA, IC, { "[NotEmpty]" }, NULL, 1 },
	{ "filters a string", FILTERS("'RAWDATA'"), ANA, IC,
	  { "[typeMismatch] must be an object at order.filters: rejected value [RAWDATA]." },
	  NULL, 1 },
	{ "dataTypes a string", FILTERS("{'dataTypes':'RAWDATA'}"), ANA, IC,
	  { "must be an array of strings at order.filters.dataTypes: rejected value [RAWDATA]." },
	  NULL, 1 },
	{ "unknown data type", FILTERS("{'dataTypes':['RAWDATA','FOO']}"), ANA, IC,
	  { "[typeMismatch] unknown data type, DataType can be RAWDATA or QUICKLOOK at "
	    "order.filters.dataTypes[1]: rejected value [FOO]." }, "dataTypes[0]", 1 },
	{ "data types are case-sensitive", FILTERS("{'dataTypes':['rawdata']}"), ANA, IC,
	  { "rejected value [rawdata]" }, NULL, 1 },
	{ "QUICKLOOK_SD is not a request data type", FILTERS("{'dataTypes':['QUICKLOOK_SD']}"),
	  ANA, IC, { "rejected value [QUICKLOOK_SD]" }, NULL, 1 },
	{ "data type a number", FILTERS("{'dataTypes':[1]}"), ANA, IC,
	  { "must be a string at order.filters.dataTypes[0]: rejected value [1]." }, NULL, 1 },
	{ "unclosed group", REGEXP("'('"), ANA, IC,
	  { "[PatternSyntax] invalid regular expression (missing closing parenthesis at offset 1) "
	    "at order.filters.filenameRegExp: rejected value [(]." }, NULL, 1 },
	{ "unclosed class", REGEXP("'[a-'"), ANA, IC,
	  { "missing terminating ] for character class at offset 3", "rejected value [[a-]." },
	  NULL, 1 },
	{ "dangling quantifier", REGEXP("'*x'"), ANA, IC,
	  { "quantifier does not follow a repeatable item at offset 0" }, NULL, 1 },
	{ "\\C is not Java", REGEXP("'a\\\\Cb'"), ANA, IC, { "[PatternSyntax]" }, NULL, 1 },
	{ "filenameRegExp a number", REGEXP("3"), ANA, IC,
	  { "must be a string at order.filters.filenameRegExp: rejected value [3]." }, NULL, 1 },

	/* several errors */
	{ "every content error listed",
	  "{'correlationId':'','targetDelivery':1,'order':{'queries':[],'user':'ana@example.org',"
	  "'filters':{'dataTypes':['RAWDATA','BAD'],'filenameRegExp':'('}}}", ANA, IC,
	  { "[NotBlank] correlation identifier is required to track this delivery. at correlationId: "
	    "rejected value []., [typeMismatch] must be a string at targetDelivery: rejected value "
	    "[1]., [NotEmpty] list of queries should not be empty at order.queries: rejected value "
	    "[[]]., [typeMismatch] unknown data type", "dataTypes[1]: rejected value [BAD]., "
	    "[PatternSyntax]" }, NULL, 5 },
};

/* ' -> ", `seq*N` -> seq N times */
static char *expand(const char *src)
{
	size_t cap = strlen(src) + 1, len = 0;
	for (const char *p = strchr(src, '`'); p; p = strchr(strchr(p + 1, '`') + 1, '`')) {
		const char *star = strchr(p, '*');
		cap += (size_t)(star - p) * strtoul(star + 1, NULL, 10);
	}
	char *out = malloc(cap);
	for (const char *p = src; *p; ) {
		if (*p == '`') {
			const char *star = strchr(p, '*');
			char *end;
			unsigned long n = strtoul(star + 1, &end, 10);
			for (unsigned long i = 0; i < n; i++, len += (size_t)(star - p - 1))
				memcpy(out + len, p + 1, (size_t)(star - p - 1));
			p = end + 1;
		} else {
			out[len++] = *p == '\'' ? '"' : *p;
			p++;
		}
	}
	out[len] = '\0';
	return out;
}

static void check_message(const struct vcase *c, const struct validation *v)
{
	const char *at = v->message;
	for (size_t i = 0; i < sizeof c->has / sizeof *c->has && c->has[i]; i++) {
		const char *found = strstr(at, c->has[i]);
		if (!TU_CHECK(found != NULL))
			printf("# %s: \"%s\" not in order in \"%.300s\"\n", c->name, c->has[i], v->message);
		else
			at = found + strlen(c->has[i]);
	}
	if (c->hasnt && !TU_CHECK(strstr(v->message, c->hasnt) == NULL))
		printf("# %s: \"%s\" in \"%.300s\"\n", c->name, c->hasnt, v->message);
	TU_CHECK(util_utf8_valid(v->message, strlen(v->message)));
	TU_CHECK(strlen(v->message) < VALIDATE_MESSAGE_MAX);
}

static int run_case(const struct vcase *c)
{
	char *users[4], *list = c->users ? strdup(c->users) : NULL, *save = NULL;
	tenant t = { .name = "p1" };
	if (list && strcmp(list, "-") != 0) {     /* "-": users absent */
		t.users = users;
		for (char *u = strtok_r(list, ",", &save); u && t.nusers < 4; u = strtok_r(NULL, ",", &save))
			users[t.nusers++] = u;
	}
	char *text = expand(c->body);
	cJSON *body = cJSON_Parse(text);
	struct validation v;
	int ok = TU_CHECK(body != NULL) && TU_EQ_INT(validate_request(body, "p1",
	    c->users ? &t : NULL, &v), 0);
	if (ok) {
		ok &= TU_EQ_INT(v.denied, c->type != NULL);
		ok &= TU_EQ_STR(v.error_type, c->type);
		if (c->nerrors)
			ok &= TU_EQ_INT(v.nforbidden + v.ncontent, c->nerrors);
		if (!c->type)
			ok &= TU_EQ_STR(v.message, "");
		check_message(c, &v);
		if (!ok)
			printf("# case \"%s\": %s %s\n", c->name, v.error_type ? v.error_type : "GRANTED",
			    v.message);
	}
	cJSON_Delete(body);
	free(text);
	free(list);
	return ok;
}

static void test_table_of_requests_gets_regards_verdicts(void)
{
	size_t n = sizeof cases / sizeof *cases;
	printf("# %zu cases\n", n);
	TU_CHECK(n >= 40);
	for (size_t i = 0; i < n; i++)
		run_case(&cases[i]);
}

static void test_thousands_of_errors_stay_within_the_message(void)
{
	size_t n = 3000, len = 0;
	char *q = malloc(n * 2 + 1);
	for (size_t i = 0; i < n; i++, len += 2)
		memcpy(q + len, "1,", 2);
	q[len - 1] = '\0';
	char *text = malloc(len + 200);
	snprintf(text, len + 200, "{\"correlationId\":\"c\",\"targetDelivery\":\"s3\","
	    "\"order\":{\"user\":\"bob\",\"queries\":[%s]}}", q);
	cJSON *body = cJSON_Parse(text);
	char *users[] = { "ana" };
	tenant t = { .name = "p1", .users = users, .nusers = 1 };
	struct validation v;
	TU_EQ_INT(validate_request(body, "p1", &t, &v), 0);
	TU_EQ_STR(v.error_type, "FORBIDDEN");
	TU_EQ_INT(v.nforbidden, 1);
	TU_EQ_INT(v.ncontent, n);
	TU_CHECK(strncmp(v.message, "[FORBIDDEN] Unknown user : bob", 30) == 0);
	TU_CHECK(strlen(v.message) < VALIDATE_MESSAGE_MAX);
	TU_CHECK(strlen(v.message) > VALIDATE_MESSAGE_MAX - 200);
	size_t ml = strlen(v.message);
	TU_CHECK(ml > 20 && strcmp(v.message + ml - 13, " more errors)") == 0);
	TU_CHECK(strstr(v.message, "order.queries[0]: rejected value [1].") != NULL);
	cJSON_Delete(body);
	free(text);
	free(q);
}

static void test_body_not_an_object_is_invalid_content(void)
{
	cJSON *arr = cJSON_Parse("[1]");
	struct validation v;
	TU_EQ_INT(validate_request(arr, "p1", NULL, &v), 0);
	TU_EQ_STR(v.error_type, "INVALID_CONTENT");
	TU_CHECK(strstr(v.message, "must be an object at request: rejected value [[1]]") != NULL);
	cJSON_Delete(arr);
}

static void test_java_length_counts_utf16_units(void)
{
	TU_EQ_INT(validate_java_length(""), 0);
	TU_EQ_INT(validate_java_length("abc"), 3);
	TU_EQ_INT(validate_java_length("\xC3\xA9t\xC3\xA9"), 3);
	TU_EQ_INT(validate_java_length("\xE2\x82\xAC"), 1);
	TU_EQ_INT(validate_java_length("\xF0\x9F\x98\x80"), 2);
	TU_EQ_INT(validate_java_length("\xFF\xC3"), 2);             /* two U+FFFD */
	TU_EQ_INT(validate_java_length("\xED\xA0\x80"), 3);         /* CESU surrogate: 3 bad bytes */
}

static void test_blank_is_string_trim(void)
{
	TU_CHECK(validate_blank(""));
	TU_CHECK(validate_blank(" \t\r\n\v\f"));
	TU_CHECK(validate_blank("\x01\x1f "));
	TU_CHECK(!validate_blank(" a "));
	TU_CHECK(!validate_blank("\xC2\xA0"));
	TU_CHECK(!validate_blank("\xE2\x80\x83"));
}

static int match(const char *re, const char *name)
{
	validate_regexp *code;
	char err[160];
	if (validate_regexp_compile(re, &code, err, sizeof err) < 0) {
		printf("# %s: %s\n", re, err);
		return -2;
	}
	int rc = validate_regexp_match(code, name);
	validate_regexp_free(code);
	return rc;
}

static void test_regexp_matches_the_whole_name_like_java(void)
{
	TU_EQ_INT(match(".*\\.nc", "a.nc"), 1);
	TU_EQ_INT(match(".*\\.nc", "a.nc.bak"), 0);
	TU_EQ_INT(match("nc", "a.nc"), 0);
	TU_EQ_INT(match("a|ab", "ab"), 1);
	TU_EQ_INT(match("a", "a\n"), 0);
	TU_EQ_INT(match("a$", "a\n"), 0);
	TU_EQ_INT(match("^S1.*_(GRD|SLC)\\.zip$", "S1A_IW_GRDH_1SDV_GRD.zip"), 1);
	TU_EQ_INT(match("^S1.*_(GRD|SLC)\\.zip$", "S2A_GRD.zip"), 0);
	TU_EQ_INT(match("\\u00e9t\\u00e9", "\xC3\xA9t\xC3\xA9"), 1);
	TU_EQ_INT(match("\\x{e9}.", "\xC3\xA9\xF0\x9F\x98\x80"), 1);
	TU_EQ_INT(match(".", "\xC3\xA9"), 1);
	TU_EQ_INT(match(".*", "a\nb"), 0);
	TU_EQ_INT(match("\\w+", "\xC3\xA9"), 0);                      /* \w is ASCII in Java */
	TU_EQ_INT(match("\\p{L}+", "\xC3\xA9t\xC3\xA9"), 1);
	TU_EQ_INT(match("(?i)abc\\.NC", "ABC.nc"), 1);
	TU_EQ_INT(match(".*\\.nc", "\xFF.nc"), 1);                    /* U+FFFD matches . */
	TU_EQ_INT(match("\\Q*.nc\\E", "*.nc"), 1);
	TU_EQ_INT(match("a++b", "aab"), 1);
	TU_EQ_INT(match("\\Q\\x{41}\\E", "\\x{41}"), 1);
	TU_EQ_INT(match("\\\\x{2}", "\\xx"), 1);
	TU_EQ_INT(match("[\\x{41}-\\x{43}]+", "ABC"), 1);
	TU_EQ_INT(match("", ""), 1);
	TU_EQ_INT(match("", "a"), 0);
}

static void test_regexp_errors_name_reason_and_offset(void)
{
	validate_regexp *code = (validate_regexp *)1;
	char err[160];
	errno = 0;
	TU_EQ_INT(validate_regexp_compile("ab(", &code, err, sizeof err), -1);
	TU_EQ_INT(errno, EINVAL);
	TU_CHECK(code == NULL);
	TU_EQ_STR(err, "missing closing parenthesis at offset 3");
	TU_EQ_INT(validate_regexp_compile("\xFF", &code, err, sizeof err), -1);
	TU_CHECK(strstr(err, "UTF-8 error") != NULL);
	TU_EQ_INT(validate_regexp_compile("(", &code, err, 8), -1);
	TU_EQ_INT(strlen(err), 7);
	TU_EQ_INT(validate_regexp_compile("(", &code, NULL, 0), -1);
}

/* Backtracking past the match limits is an error (E2BIG), never a "no
 * match": with PCRE2's defaults (.*){6}[^\s\S] takes 4.5 million steps
 * on a 34-character name and then says "no match". */
static void test_runaway_backtracking_is_an_error_not_a_no_match(void)
{
	static const struct { const char *re; size_t len; } runaway[] = {
		{ "(.*){6}[^\\s\\S]", 34 },
		{ "(a|aa)+(a|aa)+[bc]", 40 },
		{ "(a+)+[bc]", 30 },
		{ "(.*){12}[^\\s\\S]", 255 },
	};
	char name[256];
	for (size_t i = 0; i < sizeof runaway / sizeof *runaway; i++) {
		memset(name, 'a', runaway[i].len);
		name[runaway[i].len] = '\0';
		errno = 0;
		TU_EQ_INT(match(runaway[i].re, name), -1);
		TU_EQ_INT(errno, E2BIG);
	}
	/* the same expressions on names they settle at once */
	TU_EQ_INT(match("(.*){6}[^\\s\\S]", ""), 0);
	TU_EQ_INT(match("(a|aa)+(a|aa)+[bc]", "aaac"), 1);
}

/* A name matched with one compiled regexp after another stays right: the
 * match data and limits are the regexp's, reused. */
static void test_regexp_is_compiled_once_for_many_names(void)
{
	validate_regexp *re;
	char err[160], name[40];
	TU_EQ_INT(validate_regexp_compile("(.*){6}[^\\s\\S]|.*\\.nc", &re, err, sizeof err), 0);
	memset(name, 'a', 34);
	name[34] = '\0';
	for (int i = 0; i < 3; i++) {
		TU_EQ_INT(validate_regexp_match(re, "x.nc"), 1);
		errno = 0;
		TU_EQ_INT(validate_regexp_match(re, name), -1);
		TU_EQ_INT(errno, E2BIG);
	}
	validate_regexp_free(re);
	validate_regexp_free(NULL);
}

TU_MAIN(TU(test_table_of_requests_gets_regards_verdicts),
    TU(test_thousands_of_errors_stay_within_the_message),
    TU(test_body_not_an_object_is_invalid_content),
    TU(test_java_length_counts_utf16_units),
    TU(test_blank_is_string_trim),
    TU(test_regexp_matches_the_whole_name_like_java),
    TU(test_regexp_errors_name_reason_and_offset),
    TU(test_runaway_backtracking_is_an_error_not_a_no_match),
    TU(test_regexp_is_compiled_once_for_many_names))
