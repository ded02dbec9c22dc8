/* javaset_test: lib/javaset.c against what OpenJDK 17's java.util.HashSet
 * printed for the same elements (the expected orders below come from
 * adding them to a HashSet in this order and iterating over it). */
#include <stdio.h>
#include <string.h>

#include "javaset.h"
#include "tu.h"

/* the names joined by sep in the set's order */
static void joined(const char *const *s, size_t n, uint32_t add, const char *sep, char *out,
    size_t len)
{
	size_t order[64], k = javaset_order(s, n, add, order), o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < k && o < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%s", i ? sep : "", s[order[i]]);
}

static void test_string_hash(void)
{
	TU_EQ_INT(javaset_string_hash(""), 0);
	TU_EQ_INT((int32_t)javaset_string_hash("é€𝄞"), 16751501);    /* U+1D11E: a pair */
	TU_EQ_INT((int32_t)javaset_string_hash("\xff" "x"), 2031643);  /* as "\uFFFDx" */
	TU_EQ_INT((int32_t)javaset_string_hash("request_ttl"), (int32_t)0x4492043cu);
}

/* DynamicTenantSetting's hashCode is Objects.hash(name) */
static void test_settings_order(void)
{
	static const char *const s[] = { "request_ttl", "s3_server", "build_bucket",
		"delivery_bucket", "order_size_limit_bytes" };
	char out[512];
	joined(s, 5, 31, " ", out, sizeof out);
	TU_EQ_STR(out, "request_ttl s3_server delivery_bucket order_size_limit_bytes build_bucket");
}

static void test_strings_and_duplicates(void)
{
	static const char *const s[] = {
		"Failed to import dynamic tenant setting with name 'x'. Cause: y",
		"Could not reset dynamic setting with name 's3_server'. Cause: z",
		"é€𝄞", "a", "b", "a" };
	char out[512];
	joined(s, 6, 0, "|", out, sizeof out);
	TU_EQ_STR(out, "a|é€𝄞|b|Could not reset dynamic setting with name 's3_server'. Cause: z|"
	    "Failed to import dynamic tenant setting with name 'x'. Cause: y");
}

/* forty elements: the table grows to 64 buckets */
static void test_resized(void)
{
	char names[40][8], out[512];
	const char *s[40];
	for (int i = 0; i < 40; i++) {
		snprintf(names[i], sizeof names[i], "n%d", i * 7);
		s[i] = names[i];
	}
	joined(s, 40, 0, " ", out, sizeof out);
	TU_EQ_STR(out, "n0 n70 n91 n7 n98 n161 n140 n56 n77 n182 n14 n154 n231 n35 n133 n210 n196 "
	    "n273 n175 n252 n112 n217 n119 n259 n238 n63 n84 n21 n42 n49 n147 n224 n28 n126 n203 "
	    "n189 n266 n168 n245 n105");
}

TU_MAIN(
	TU(test_string_hash),
	TU(test_settings_order),
	TU(test_strings_and_duplicates),
	TU(test_resized)
)
