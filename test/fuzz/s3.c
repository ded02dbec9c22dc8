/* fuzz s3: the S3 key encoder (lib/s3: s3_key_encode, s3_query_encode),
 * with s3_split_url and the S3 answer reader s3_xml_value/s3_classify on
 * the same bytes.
 * Properties: an encoded key holds only unreserved characters, '/' (keys
 * only) and %XX with uppercase hex; it decodes back to the input; it fits
 * exactly when the room is enough; the XML value fits its buffer; an
 * s3:// URL split joins back; the input's lines as part ETags (up to 79
 * bytes each, as a part keeps them) make a Complete body of exactly the
 * escaped length, and s3_etag_ok accepts exactly the sane ones. */
#include "fuzz.h"
#include "s3.h"

FUZZ_TARGET("s3");

enum { BIG = 3 * 4096 + 1 };

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void check_encoding(const char *in, int keep_slash, size_t small)
{
	static char out[BIG], cut[BIG], back[BIG];
	size_t need = 1;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++)
		need += unreserved(*p) || (keep_slash && *p == '/') ? 1 : 3;
	int rc = keep_slash ? s3_key_encode(in, out, sizeof out) : s3_query_encode(in, out, sizeof out);
	FUZZ_CHECK(rc == (need <= sizeof out ? 0 : -1));
	if (rc < 0)
		return;
	FUZZ_CHECK(strlen(out) + 1 == need);
	size_t n = 0;
	for (const char *p = out; *p; p++) {
		if (*p == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			FUZZ_CHECK(hi >= 0 && lo >= 0);
			back[n++] = (char)(hi << 4 | lo);
			p += 2;
		} else {
			FUZZ_CHECK(unreserved((unsigned char)*p) || (keep_slash && *p == '/'));
			back[n++] = *p;
		}
	}
	back[n] = '\0';
	FUZZ_CHECK(strcmp(back, in) == 0);
	/* less room: the same text, or -1 exactly when it does not fit */
	rc = keep_slash ? s3_key_encode(in, cut, small) : s3_query_encode(in, cut, small);
	FUZZ_CHECK(rc == (need <= small ? 0 : -1));
	if (rc == 0)
		FUZZ_CHECK(strcmp(cut, out) == 0);
}

static void check_xml(const uint8_t *data, size_t size, size_t small)
{
	static const char *const tags[] = { "Code", "Message", "UploadId", "ETag" };
	char out[512];
	/* an exact-size copy, so that reading past the end is seen */
	char *xml = malloc(size ? size : 1);
	if (!xml)
		abort();
	memcpy(xml, data, size);
	for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
		int n = s3_xml_value(xml, size, tags[i], out, small);
		FUZZ_CHECK(n < (int)small);
		if (n >= 0)
			FUZZ_CHECK(strlen(out) <= (size_t)n);   /* &#0; is refused, NUL bytes may be copied */
	}
	struct s3_status st;
	char line[700];
	s3_classify(0, NULL, 200 + (long)(size % 400), xml, size, &st);
	FUZZ_CHECK(memchr(st.code, '\0', sizeof st.code) && memchr(st.message, '\0', sizeof st.message));
	s3_status_text(&st, line, sizeof line);
	free(xml);
}

/* "s3://bucket/key": split, it joins back */
static void check_split(const char *url, size_t small)
{
	char bucket[128], *joined;
	const char *key;
	size_t room = small < sizeof bucket ? small : sizeof bucket;
	if (s3_split_url(url, bucket, room, &key) < 0)
		return;
	size_t n = strlen(bucket);
	FUZZ_CHECK(n > 0 && n < room && !strchr(bucket, '/') && key[0]);
	if (!(joined = malloc(n + strlen(key) + 7)))
		abort();
	sprintf(joined, "s3://%s/%s", bucket, key);
	FUZZ_CHECK(strcmp(joined, url) == 0);
	free(joined);
}

/* the lines of the input as the ETags of a multipart upload's parts */
static void check_complete(const uint8_t *data, size_t size)
{
	enum { PARTS = 64 };
	static char etags[PARTS][S3_ETAG_ROOM];
	int n = 0;
	size_t want = strlen("<CompleteMultipartUpload></CompleteMultipartUpload>");
	for (size_t i = 0; i < size && n < PARTS; n++) {
		size_t k = 0, sane = 1;
		for (; i < size && data[i] != '\n'; i++)
			if (k + 1 < S3_ETAG_ROOM && data[i]) {
				unsigned char c = data[i];
				sane &= c > ' ' && c <= '~' && c != '"';
				etags[n][k++] = (char)c;
				want += c == '&' ? 5 : c == '<' || c == '>' ? 4 : 1;
			}
		i++;
		etags[n][k] = '\0';
		FUZZ_CHECK(s3_etag_ok(etags[n]) == (int)(sane && k > 0 && k <= S3_ETAG_MAX));
		want += strlen("<Part><PartNumber></PartNumber><ETag>\"\"</ETag></Part>") +
		    (size_t)snprintf(NULL, 0, "%d", n + 1);
	}
	size_t len = 0;
	char *xml = s3_complete_xml((const char (*)[S3_ETAG_ROOM])etags, n, &len);
	if (!xml)
		abort();
	FUZZ_CHECK(len == want && strlen(xml) == len);
	free(xml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	size_t small = size % 97 + 1;
	check_split(s, small);
	check_encoding(s, 1, small);
	check_encoding(s, 0, small);
	check_xml(data, size, small < 512 ? small : 512);
	check_complete(data, size);
	free(s);
	return 0;
}
