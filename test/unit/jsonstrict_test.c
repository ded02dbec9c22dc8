/* jsonstrict_test: what a request body must be beyond what cJSON parses:
 * UTF-8, no raw control character, no \u0000, each key once. */
#include <stdlib.h>
#include <string.h>

#include "jsonstrict.h"
#include "tu.h"

#define TEXT(s) s, sizeof s - 1   /* the bytes of a literal, NULs included */

static void test_text_rules(void)
{
	static const struct { const char *body; size_t len; const char *why; } cases[] = {
		{ TEXT("{\"a\":\"x\"}"), NULL },
		{ TEXT("{\t\"a\" :\r\n 1}\n"), NULL },
		{ TEXT("{\"a\":\"h\xc3\xa9 \xf0\x9d\x84\x9e\"}"), NULL },
		{ TEXT("{\"a\":\"\\\\u0000\"}"), NULL },          /* a backslash, then text */
		{ TEXT("{\"a\":\"\\n\\t\\u0001\\\"\"}"), NULL },   /* escapes are fine */
		{ TEXT("{\"a\":\"rawnul\0tail\"}"), "body holds a raw control character" },
		{ TEXT("{\"a\":\"tab\there\"}"), "body holds a raw control character" },
		{ TEXT("{\"a\":\"nl\nhere\"}"), "body holds a raw control character" },
		{ TEXT("{\"a\":1}\x01"), "body holds a raw control character" },
		{ TEXT("\x0c{\"a\":1}"), "body holds a raw control character" },
		{ TEXT("{\"a\":\"nul\\u0000x\"}"), "body holds a NUL (\\u0000): it cannot be read as sent" },
		{ TEXT("{\"\\u0000\":1}"), "body holds a NUL (\\u0000): it cannot be read as sent" },
		{ TEXT("{\"a\":\"\xff\"}"), "body is not well-formed UTF-8" },
		{ TEXT("{\"a\":\"\xc0\xaf\"}"), "body is not well-formed UTF-8" },   /* overlong '/' */
		{ TEXT("{\"a\":\"\xed\xa0\x80\"}"), "body is not well-formed UTF-8" }, /* surrogate */
		{ TEXT("{\"a\":\"cut\xe2\x9c\"}"), "body is not well-formed UTF-8" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const char *why = jsonstrict_text(cases[i].body, cases[i].len);
		if (!cases[i].why)
			TU_CHECK(why == NULL);
		else if (TU_CHECK(why != NULL))
			TU_EQ_STR(why, cases[i].why);
		if (tu_failed)
			fprintf(stderr, "# case %zu\n", i);
	}
}

static const char *keys_of(const char *text, char *why, size_t len)
{
	cJSON *j = cJSON_Parse(text);
	if (!j)
		return "unparsed";
	const char *r = jsonstrict_keys(j, why, len);
	cJSON_Delete(j);
	return r;
}

static void test_duplicate_keys_anywhere(void)
{
	char why[80], many[2048];
	TU_CHECK(keys_of("{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":1},{\"a\":2}]}", why, sizeof why) == NULL);
	TU_CHECK(keys_of("{\"correlationId\":\"x\",\"correlationId\":\"y\"}", why, sizeof why) == why);
	TU_EQ_STR(why, "body holds the key \"correlationId\" twice in one object");
	TU_CHECK(keys_of("{\"o\":{\"q\":[1,{\"k\":1,\"z\":0,\"k\":2}]}}", why, sizeof why) == why);
	TU_EQ_STR(why, "body holds the key \"k\" twice in one object");
	TU_CHECK(keys_of("{\"A\":1,\"a\":2}", why, sizeof why) == NULL);   /* keys are case-sensitive */
	/* past the pairwise threshold: sorted */
	size_t n = (size_t)snprintf(many, sizeof many, "{");
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "\"k%d\":%d,", i, i);
	snprintf(many + n, sizeof many - n, "\"z\":0}");
	TU_CHECK(keys_of(many, why, sizeof why) == NULL);
	snprintf(many + n, sizeof many - n, "\"k17\":0}");
	TU_CHECK(keys_of(many, why, sizeof why) == why);
	TU_EQ_STR(why, "body holds the key \"k17\" twice in one object");
	/* a long key is cut to fit, on a character boundary */
	TU_CHECK(keys_of("{\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\":1,"
	    "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\":2}", why, 69) == why);
	TU_EQ_STR(why, "body holds the key \"\xc3\xa9\xc3\xa9\" twice in one object");
}

TU_MAIN(
	TU(test_text_rules),
	TU(test_duplicate_keys_anywhere)
)
