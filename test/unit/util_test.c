/* util_test: the helpers of lib/util.c — ISO 8601 time stamps both ways,
 * UTF-8 validation and cutting, hex, bounded copies. */
#include <stdint.h>
#include <stdlib.h>

#include "util.h"
#include "tu.h"

static void test_iso8601_round_trips(void)
{
	static const struct { int64_t ms; const char *text; } cases[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1795428000123, "2026-11-23T10:00:00.123Z" },
		{ 1709164800000, "2024-02-29T00:00:00.000Z" },
		{ 951782400999, "2000-02-29T00:00:00.999Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ -86400000, "1969-12-31T00:00:00.000Z" },
		{ 253402300799999, "9999-12-31T23:59:59.999Z" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[32];
		int64_t back = 42;
		util_iso8601(cases[i].ms, out);
		TU_EQ_STR(out, cases[i].text);
		TU_EQ_INT(util_parse_iso8601(out, &back), 0);
		TU_EQ_INT(back, cases[i].ms);
	}
	int64_t now = util_now_ms(), back = 0;
	char out[32];
	util_iso8601(now, out);
	TU_EQ_INT(util_parse_iso8601(out, &back), 0);
	TU_EQ_INT(back, now);
}

static void test_iso8601_parses_offsets_and_fractions(void)
{
	static const struct { const char *text; int64_t ms; } cases[] = {
		{ "2026-11-23T10:00:00Z", 1795428000000 },
		{ "2026-11-23T12:00:00+02:00", 1795428000000 },
		{ "2026-11-23T04:30:00-05:30", 1795428000000 },
		{ "2026-11-23T10:00:00+00:00", 1795428000000 },
		{ "2026-11-23T10:00:00.5Z", 1795428000500 },
		{ "2026-11-23T10:00:00.12Z", 1795428000120 },
		{ "2026-11-23T10:00:00.123456Z", 1795428000123 },
		{ "2026-11-24T01:00:00.250+15:00", 1795428000250 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t ms = 0;
		if (!TU_EQ_INT(util_parse_iso8601(cases[i].text, &ms), 0))
			printf("# %s\n", cases[i].text);
		TU_EQ_INT(ms, cases[i].ms);
	}
}

static void test_iso8601_rejects_invalid_dates(void)
{
	static const char *const bad[] = {
		"", "2026", "2026-11-23", "2026-11-23T10:00:00", "2026-11-23T10:00Z",
		"2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-11-00T00:00:00Z",
		"2026-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-11-23T24:00:00Z", "2026-11-23T10:60:00Z", "2026-11-23T10:00:61Z",
		"2026-11-23 10:00:00Z", "2026-11-23t10:00:00Z", "2026-11-23T10:00:00z",
		"2026-+1-23T10:00:00Z", "2026-11-23T-1:00:00Z", " 2026-11-23T10:00:00Z",
		"+026-11-23T10:00:00Z", "2026-11-23T10:00:00Zx", "2026-11-23T10:00:00.Z",
		"2026-11-23T10:00:00+2:00", "2026-11-23T10:00:00+24:00", "2026-11-23T10:00:00+02:60",
		"2026-11-23T10:00:00+0200", "2026-11-23T10:00:00+02:00Z", "2026-11-23T10:00:00 Z",
		"2026-1-23T10:00:00Z", "20261-11-23T10:00:00Z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms = 77;
		if (!TU_EQ_INT(util_parse_iso8601(bad[i], &ms), -1))
			printf("# accepted \"%s\"\n", bad[i]);
		TU_EQ_INT(ms, 77);
	}
}

static size_t seq_len(unsigned char c)
{
	return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static void test_utf8_cut_never_splits_a_character(void)
{
	/* a, é (2), € (3), 😀 (4), b, 𐍈 (4), ü (2) */
	static const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "b\xf0\x90\x8d\x88\xc3\xbc";
	size_t len = sizeof s - 1;
	for (size_t max = 0; max <= len + 2; max++) {
		size_t cut = util_utf8_cut(s, len, max);
		TU_CHECK(cut <= max || (max >= len && cut == len));
		TU_CHECK(util_utf8_valid(s, cut));
		/* the longest such prefix: the next character would not fit */
		if (cut < len)
			TU_CHECK(cut + seq_len((unsigned char)s[cut]) > max);
	}
	TU_EQ_INT(util_utf8_cut(s, len, 2), 1);
	TU_EQ_INT(util_utf8_cut(s, len, 3), 3);
	TU_EQ_INT(util_utf8_cut(s, len, 9), 6);
	TU_EQ_INT(util_utf8_cut(s, len, 10), 10);
	TU_EQ_INT(util_utf8_cut("abc", 3, 99), 3);
	TU_EQ_INT(util_utf8_cut("abc", 3, 0), 0);
}

static void test_utf8_valid_accepts_only_well_formed(void)
{
	static const struct { const char *s; int ok; } cases[] = {
		{ "", 1 }, { "plain ascii", 1 }, { "\xc3\xa9", 1 }, { "\xe2\x82\xac", 1 },
		{ "\xf0\x9f\x98\x80", 1 }, { "\xf4\x8f\xbf\xbf", 1 }, { "\xed\x9f\xbf", 1 },
		{ "\xee\x80\x80", 1 }, { "\xc2\x80", 1 }, { "\xe0\xa0\x80", 1 }, { "\xf0\x90\x80\x80", 1 },
		{ "\xc0\x80", 0 }, { "\xc1\xbf", 0 }, { "\xe0\x80\x80", 0 }, { "\xe0\x9f\xbf", 0 },
		{ "\xf0\x80\x80\x80", 0 }, { "\xf0\x8f\xbf\xbf", 0 },            /* overlongs */
		{ "\xed\xa0\x80", 0 }, { "\xed\xbf\xbf", 0 },                     /* surrogates */
		{ "\xe2\x82", 0 }, { "\xf0\x9f\x98", 0 }, { "a\xc3", 0 },          /* truncated */
		{ "\x80", 0 }, { "\xbf", 0 }, { "\xc3\x28", 0 }, { "\xe2\x28\xa1", 0 },
		{ "\xf4\x90\x80\x80", 0 }, { "\xf5\x80\x80\x80", 0 }, { "\xf8\x88\x80\x80\x80", 0 },
		{ "\xfe", 0 }, { "\xff", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (!TU_EQ_INT(util_utf8_valid(cases[i].s, strlen(cases[i].s)), cases[i].ok))
			printf("# case %zu\n", i);
	/* the length bounds the check, not a NUL */
	TU_EQ_INT(util_utf8_valid("\xc3\xa9", 1), 0);
	TU_EQ_INT(util_utf8_valid("a\0b", 3), 1);
}

static void test_hex_and_is_hex(void)
{
	static const unsigned char in[] = { 0x00, 0x01, 0xab, 0xff, 0x7f };
	char out[11];
	util_hex(in, sizeof in, out);
	TU_EQ_STR(out, "0001abff7f");
	TU_EQ_INT(util_is_hex("0123456789abcdefABCDEF", 22), 1);
	TU_EQ_INT(util_is_hex("", 0), 1);
	TU_EQ_INT(util_is_hex("abc", 4), 0);
	TU_EQ_INT(util_is_hex("abcd", 3), 0);
	TU_EQ_INT(util_is_hex("abcg", 4), 0);
	TU_EQ_INT(util_is_hex(" abc", 4), 0);
	TU_EQ_INT(util_is_hex("0x12", 4), 0);
}

static void test_strlcpy_truncates_and_terminates(void)
{
	char buf[4] = "zzz";
	TU_EQ_INT(util_strlcpy(buf, "abcdef", sizeof buf), 6);
	TU_EQ_STR(buf, "abc");
	TU_EQ_INT(util_strlcpy(buf, "ab", sizeof buf), 2);
	TU_EQ_STR(buf, "ab");
	TU_EQ_INT(util_strlcpy(buf, "x", 0), 1);
	TU_EQ_STR(buf, "ab");
}

TU_MAIN(
	TU(test_iso8601_round_trips),
	TU(test_iso8601_parses_offsets_and_fractions),
	TU(test_iso8601_rejects_invalid_dates),
	TU(test_utf8_cut_never_splits_a_character),
	TU(test_utf8_valid_accepts_only_well_formed),
	TU(test_hex_and_is_hex),
	TU(test_strlcpy_truncates_and_terminates)
)
