/* s3_test: lib/s3.c without an S3 server: key and query encoding, URLs,
 * the XML of S3 answers, how failures are classed, backoff, and the upload's
 * own checks, retries and deadline against a loopback port that refuses. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "md5.h"
#include "s3.h"
#include "util.h"
#include "tu.h"

static void test_key_encoding_follows_sigv4(void)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "c-42/P1_1.zip", "c-42/P1_1.zip" },
		{ "a b/c d.zip", "a%20b/c%20d.zip" },
		{ "caf\xc3\xa9", "caf%C3%A9" },
		{ "\xe6\x97\xa5\xe6\x9c\xac", "%E6%97%A5%E6%9C%AC" },
		{ "a+b", "a%2Bb" },
		{ "~tilde.-_", "~tilde.-_" },
		{ "a//b/", "a//b/" },
		{ "100%", "100%25" },
		{ "!'()*&=?#", "%21%27%28%29%2A%26%3D%3F%23" },
		{ "../x", "../x" },
		{ "", "" },
	};
	char out[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		TU_EQ_INT(s3_key_encode(cases[i].in, out, sizeof out), 0);
		if (!TU_EQ_STR(out, cases[i].out))
			printf("# case %zu\n", i);
	}
	TU_EQ_INT(s3_query_encode("a/b+c=d e", out, sizeof out), 0);
	TU_EQ_STR(out, "a%2Fb%2Bc%3Dd%20e");
}

static void test_key_encoding_refuses_what_does_not_fit(void)
{
	char out[8];
	TU_EQ_INT(s3_key_encode("abcdefg", out, sizeof out), 0);      /* 7 + NUL fits */
	TU_EQ_STR(out, "abcdefg");
	errno = 0;
	TU_EQ_INT(s3_key_encode("abcdefgh", out, sizeof out), -1);
	TU_EQ_INT(errno, ENAMETOOLONG);
	TU_EQ_INT(s3_key_encode("abcd ", out, sizeof out), 0);        /* %20 fits exactly */
	TU_EQ_STR(out, "abcd%20");
	TU_EQ_INT(s3_key_encode("abcde ", out, sizeof out), -1);
	TU_EQ_INT(s3_key_encode("abcd", out, 1), -1);
}

static void test_url_is_path_style(void)
{
	struct tenant_s3 srv = { .scheme = "http", .host = "127.0.0.1", .port = 9000,
	    .region = "us-east-1", .key = "k", .secret = "s" };
	char url[512];
	TU_EQ_INT(s3_url(&srv, "deliveries", "c 1/P1_1.zip", NULL, url, sizeof url), 0);
	TU_EQ_STR(url, "http://127.0.0.1:9000/deliveries/c%201/P1_1.zip");
	TU_EQ_INT(s3_url(&srv, "b", "k+", "partNumber=2&uploadId=x", url, sizeof url), 0);
	TU_EQ_STR(url, "http://127.0.0.1:9000/b/k%2B?partNumber=2&uploadId=x");
	TU_EQ_INT(s3_url(&srv, "b", "k", "", url, sizeof url), 0);
	TU_EQ_STR(url, "http://127.0.0.1:9000/b/k");
	srv.scheme = "https", srv.host = "::1", srv.port = 443;
	TU_EQ_INT(s3_url(&srv, "b", "k", "uploads=", url, sizeof url), 0);
	TU_EQ_STR(url, "https://[::1]:443/b/k?uploads=");
	TU_EQ_INT(s3_url(&srv, "b", "k", NULL, url, 20), -1);
}

static void test_split_url(void)
{
	char b[16];
	const char *key = NULL;
	TU_EQ_INT(s3_split_url("s3://data/a b/c.nc", b, sizeof b, &key), 0);
	TU_EQ_STR(b, "data");
	TU_EQ_STR(key, "a b/c.nc");
	static const char *bad[] = { "s3://", "s3:///k", "s3://b", "s3://b/", "http://b/k",
	    "s3://a-bucket-name-too-long/k" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (!TU_EQ_INT(s3_split_url(bad[i], b, sizeof b, &key), -1))
			printf("# case %s\n", bad[i]);
}

static void test_xml_initiate_and_error(void)
{
	static const char init[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	    "<Bucket>deliveries</Bucket><Key>c-1/P1_1.zip</Key>"
	    "<UploadId>VXBsb2FkIElE.ZW-x_y</UploadId></InitiateMultipartUploadResult>";
	static const char err[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>"
	    "<Code>SignatureDoesNotMatch</Code><Message>a &amp; b &lt;c&gt; &quot;d&quot; "
	    "&apos;e&apos; caf&#233; &#x41;&#x1F600; &bogus; &#;</Message>"
	    "<RequestId>1</RequestId></Error>";
	char v[128];
	TU_EQ_INT(s3_xml_value(init, sizeof init - 1, "UploadId", v, sizeof v), 19);
	TU_EQ_STR(v, "VXBsb2FkIElE.ZW-x_y");
	TU_EQ_INT(s3_xml_value(init, sizeof init - 1, "Key", v, sizeof v), 12);
	TU_EQ_STR(v, "c-1/P1_1.zip");
	TU_EQ_INT(s3_xml_value(err, sizeof err - 1, "Code", v, sizeof v), 21);
	TU_EQ_STR(v, "SignatureDoesNotMatch");
	TU_CHECK(s3_xml_value(err, sizeof err - 1, "Message", v, sizeof v) > 0);
	TU_EQ_STR(v, "a & b <c> \"d\" 'e' caf\xc3\xa9 A\xf0\x9f\x98\x80 &bogus; &#;");
	TU_EQ_INT(s3_xml_value(err, sizeof err - 1, "UploadId", v, sizeof v), -1);
	TU_EQ_INT(s3_xml_value(init, 40, "UploadId", v, sizeof v), -1);   /* cut short */
	TU_EQ_INT(s3_xml_value("<A>open", 7, "A", v, sizeof v), -1);
	TU_EQ_INT(s3_xml_value("<A></A>", 7, "A", v, sizeof v), 0);
	TU_EQ_STR(v, "");
	TU_EQ_INT(s3_xml_value(init, sizeof init - 1, "UploadId", v, 5), 4);   /* cut to fit */
	TU_EQ_STR(v, "VXBs");
	TU_EQ_INT(s3_xml_value(NULL, 0, "A", v, sizeof v), -1);
}

static void test_classify_temporary_and_permanent(void)
{
	static const char denied[] = "<Error><Code>SignatureDoesNotMatch</Code>"
	    "<Message>no match</Message></Error>";
	static const char slow[] = "<Error><Code>SlowDown</Code><Message>Reduce</Message></Error>";
	static const char rto[] = "<Error><Code>RequestTimeout</Code><Message>x</Message></Error>";
	static const char digest[] = "<Error><Code>BadDigest</Code><Message>md5</Message></Error>";
	static const char inner[] = "<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code>"
	    "<Message>We encountered an internal error</Message></Error>";
	static const char done[] = "<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag>"
	    "</CompleteMultipartUploadResult>";
	static const struct {
		int cc; long http; const char *body; enum s3_class cls; const char *code;
	} cases[] = {
		{ CURLE_OK, 200, "", S3_OK, "" },
		{ CURLE_OK, 200, done, S3_OK, "" },
		{ CURLE_OK, 204, NULL, S3_OK, "" },
		{ CURLE_OK, 403, denied, S3_PERMANENT, "SignatureDoesNotMatch" },
		{ CURLE_OK, 404, "", S3_PERMANENT, "" },
		{ CURLE_OK, 301, "", S3_PERMANENT, "" },
		{ CURLE_OK, 503, slow, S3_TEMPORARY, "SlowDown" },
		{ CURLE_OK, 500, "", S3_TEMPORARY, "" },
		{ CURLE_OK, 408, "", S3_TEMPORARY, "" },
		{ CURLE_OK, 429, "", S3_TEMPORARY, "" },
		{ CURLE_OK, 400, rto, S3_TEMPORARY, "RequestTimeout" },
		{ CURLE_OK, 400, digest, S3_MISMATCH, "BadDigest" },
		{ CURLE_OK, 200, inner, S3_TEMPORARY, "InternalError" },
		{ CURLE_COULDNT_CONNECT, 0, NULL, S3_TEMPORARY, "" },
		{ CURLE_OPERATION_TIMEDOUT, 0, NULL, S3_TEMPORARY, "" },
		{ CURLE_SEND_ERROR, 100, NULL, S3_TEMPORARY, "" },
		{ CURLE_COULDNT_RESOLVE_HOST, 0, NULL, S3_TEMPORARY, "" },
		{ CURLE_PEER_FAILED_VERIFICATION, 0, NULL, S3_PERMANENT, "" },
		{ CURLE_URL_MALFORMAT, 0, NULL, S3_PERMANENT, "" },
	};
	struct s3_status st;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *b = cases[i].body;
		s3_classify(cases[i].cc, NULL, cases[i].http, b, b ? strlen(b) : 0, &st);
		if (!TU_EQ_INT(st.cls, cases[i].cls) || !TU_EQ_STR(st.code, cases[i].code))
			printf("# case %zu\n", i);
	}
}

static void test_status_text(void)
{
	struct s3_status st;
	char buf[256];
	static const char denied[] = "<Error><Code>AccessDenied</Code>"
	    "<Message>Access Denied</Message></Error>";
	s3_classify(CURLE_OK, NULL, 403, denied, sizeof denied - 1, &st);
	TU_EQ_STR(s3_status_text(&st, buf, sizeof buf), "403 AccessDenied: Access Denied");
	TU_EQ_STR(st.message, "Access Denied");
	s3_classify(CURLE_OK, NULL, 405, "", 0, &st);
	TU_EQ_STR(s3_status_text(&st, buf, sizeof buf), "405");
	s3_classify(CURLE_COULDNT_CONNECT, "Failed to connect: refused", 0, NULL, 0, &st);
	TU_EQ_STR(s3_status_text(&st, buf, sizeof buf), "Failed to connect: refused");
	s3_classify(CURLE_COULDNT_CONNECT, "", 0, NULL, 0, &st);
	TU_EQ_STR(st.message, curl_easy_strerror(CURLE_COULDNT_CONNECT));
}

static void test_backoff_doubles_to_30s(void)
{
	static const int64_t want[] = { 1000, 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
	for (int i = 0; i < 8; i++)
		TU_EQ_INT(s3_backoff_ms(i), want[i]);
	TU_EQ_INT(s3_backoff_ms(1000), 30000);
}

/* ---- uploads against a loopback port nobody listens on ---- */

static int refusing_port(int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	*fd = socket(AF_INET, SOCK_STREAM, 0);
	/* bound but not listening: connections are refused, and no one else gets it */
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(*fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	return ntohs(a.sin_port);
}

static const char *write_file(const char *name, size_t n, char md5hex[33])
{
	static char path[512];
	snprintf(path, sizeof path, "%s/%s", tu_tmpdir(), name);
	char *buf = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)('a' + i % 26);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TU_EQ_INT(util_write_all(fd, buf, n), 0);
	close(fd);
	md5_buf(buf, n, md5hex);
	free(buf);
	return path;
}

struct seen { int notes; int64_t done; };

static void count_note(void *arg, const char *line)
{
	struct seen *s = arg;
	s->notes++;
	TU_CHECK(strstr(line, "trying again") != NULL);
	TU_CHECK(strstr(line, "secret-value") == NULL);
}

static void test_upload_checks_the_file_first(void)
{
	struct tenant_s3 srv = { "http", "127.0.0.1", 1, "us-east-1", "key", "secret-value" };
	char md5hex[33];
	const char *path = write_file("a.zip", 1000, md5hex);
	struct s3_upload u = { .srv = &srv, .bucket = "b", .key = "c/a.zip", .path = path,
	    .size = 1000, .md5 = md5hex, .part_size = 5242880, .parallel = 2 };
	struct s3_upload_result r;
	u.size = 999;
	TU_EQ_INT(s3_upload_file(&u, &r), -1);
	TU_EQ_INT(r.cls, S3_MISMATCH);
	TU_CHECK(strstr(r.message, "1000 bytes, expected 999") != NULL);
	u.size = 1000, u.md5 = "not-an-md5";
	TU_EQ_INT(s3_upload_file(&u, &r), -1);
	TU_EQ_INT(r.cls, S3_PERMANENT);
	u.md5 = md5hex, u.path = "/nonexistent/a.zip";
	TU_EQ_INT(s3_upload_file(&u, &r), -1);
	TU_EQ_INT(r.cls, S3_PERMANENT);
	TU_CHECK(strstr(r.message, "No such file") != NULL);
}

static void upload_until(const char *name, size_t n, int64_t deadline,
    volatile sig_atomic_t *stop, enum s3_class want, int64_t max_ms, int min_notes)
{
	int sock, port = refusing_port(&sock);
	TU_CHECK(port > 0);
	struct tenant_s3 srv = { "http", "127.0.0.1", port, "us-east-1", "key", "secret-value" };
	char md5hex[33];
	struct seen seen = { 0, 0 };
	const char *path = write_file(name, n, md5hex);
	struct s3_upload u = { .srv = &srv, .bucket = "b", .key = "c/a.zip", .path = path,
	    .size = n, .md5 = md5hex, .part_size = 5242880, .parallel = 2,
	    .ctl = { deadline, stop }, .note = count_note, .arg = &seen };
	struct s3_upload_result r;
	int64_t t0 = util_mono_ms();
	TU_EQ_INT(s3_upload_file(&u, &r), -1);
	int64_t took = util_mono_ms() - t0;
	TU_EQ_INT(r.cls, want);
	TU_CHECK(took < max_ms);
	TU_CHECK(seen.notes >= min_notes);
	if (want == S3_EXPIRED)
		TU_CHECK(strstr(r.message, "Couldn't connect") != NULL);
	close(sock);
}

static void test_refused_is_retried_until_the_deadline(void)
{
	/* 1 s + 2 s of backoff fit in 3.5 s: two notes, then EXPIRED */
	upload_until("small.zip", 1000, util_now_ms() + 3500, NULL, S3_EXPIRED, 5000, 2);
	/* a multipart upload fails at CreateMultipartUpload the same way */
	upload_until("big.zip", 6 << 20, util_now_ms() + 1500, NULL, S3_EXPIRED, 3000, 1);
}

static void test_stop_flag_ends_at_once(void)
{
	static volatile sig_atomic_t stop = 1;
	upload_until("stop.zip", 1000, 0, &stop, S3_STOPPED, 1000, 0);
}

static size_t sink(void *arg, const void *buf, size_t len)
{
	(void)arg, (void)buf;
	return len;
}

static void test_get_and_head_report_one_attempt(void)
{
	int sock, port = refusing_port(&sock);
	struct tenant_s3 srv = { "http", "127.0.0.1", port, "us-east-1", "key", "secret-value" };
	struct s3_ctl ctl = { 0, NULL, 0 };
	struct s3_status st;
	uint64_t size = 1;
	char etag[80];
	TU_EQ_INT(s3_get(&srv, "b", "k", 10, sink, NULL, &ctl, &st), -1);
	TU_EQ_INT(st.cls, S3_TEMPORARY);
	TU_CHECK(strncmp(st.message, "GetObject: ", 11) == 0);
	TU_EQ_INT(s3_head(&srv, "b", "k", &ctl, &size, etag, &st), -1);
	TU_EQ_INT(st.cls, S3_TEMPORARY);
	TU_CHECK(strncmp(st.message, "HeadObject: ", 12) == 0);
	TU_EQ_INT(size, 1);
	static volatile sig_atomic_t stop = 1;
	ctl.stop = &stop;
	TU_EQ_INT(s3_get(&srv, "b", "k", 0, sink, NULL, &ctl, &st), -1);
	TU_EQ_INT(st.cls, S3_STOPPED);
	close(sock);
}

static void test_etag_rule(void)
{
	static const struct { const char *etag; int ok; } cases[] = {
		{ "0123456789abcdef0123456789abcdef", 1 },
		{ "0123456789abcdef0123456789abcdef-12", 1 },
		{ "", 0 }, { "a b", 0 }, { "a\"b", 0 }, { "a\x7f", 0 }, { "\xc3\xa9", 0 },
		{ "tab\there", 0 },
		{ "1234567890123456789012345678901234567890123456789012345678901234", 1 },
		{ "12345678901234567890123456789012345678901234567890123456789012345", 0 },
		{ "&<>", 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		if (!TU_EQ_INT(s3_etag_ok(cases[i].etag), cases[i].ok))
			fprintf(stderr, "# etag \"%s\"\n", cases[i].etag);
}

/* The Complete body grows with what it holds: 1,000 parts of the longest
 * ETag that escapes worst (5 bytes a character) fit, byte for byte. */
static void test_complete_xml_holds_escaped_etags(void)
{
	enum { N = 1000 };
	static char etags[N][S3_ETAG_ROOM];
	for (int i = 0; i < N; i++)
		memset(etags[i], i % 2 ? '&' : '<', S3_ETAG_ROOM - 1);
	size_t len = 0;
	char *xml = s3_complete_xml((const char (*)[S3_ETAG_ROOM])etags, N, &len);
	TU_CHECK(xml != NULL);
	if (!xml)
		return;
	size_t part = strlen("<Part><PartNumber></PartNumber><ETag>\"\"</ETag></Part>");
	size_t want = strlen("<CompleteMultipartUpload></CompleteMultipartUpload>");
	for (int i = 1; i <= N; i++)
		want += part + (size_t)snprintf(NULL, 0, "%d", i) +
		    (S3_ETAG_ROOM - 1) * strlen(i % 2 ? "&lt;" : "&amp;");
	TU_EQ_INT(len, want);
	TU_EQ_INT(strlen(xml), len);
	TU_CHECK(strstr(xml, "<Part><PartNumber>1000</PartNumber><ETag>\"&amp;&amp;") != NULL);
	TU_CHECK(strcmp(xml + len - 26, "</CompleteMultipartUpload>") == 0);
	char first[128], want_first[128];
	snprintf(want_first, sizeof want_first, "\"%s\"", etags[0]);
	TU_EQ_INT(s3_xml_value(xml, len, "ETag", first, sizeof first), S3_ETAG_ROOM + 1);
	TU_EQ_STR(first, want_first);
	free(xml);
}

/* AWS's multipart ETag: md5 of the parts' raw md5s, "-" and their count */
static void test_multipart_etag_is_aws(void)
{
	static const unsigned char md5s[2][16] = {   /* md5("a"), md5("b") */
		{ 0x0c, 0xc1, 0x75, 0xb9, 0xc0, 0xf1, 0xb6, 0xa8, 0x31, 0xc3, 0x99, 0xe2, 0x69,
		  0x77, 0x26, 0x61 },
		{ 0x92, 0xeb, 0x5f, 0xfe, 0xe6, 0xae, 0x2f, 0xec, 0x3a, 0xd7, 0x1c, 0x77, 0x75,
		  0x31, 0x57, 0x8f },
	};
	char etag[S3_ETAG_ROOM];
	s3_multipart_etag(md5s, 2, etag);
	TU_EQ_STR(etag, "96e024ba2074fe77e8e965ba43a704be-2");
	TU_CHECK(s3_etag_ok(etag));
}

TU_MAIN(
	TU(test_key_encoding_follows_sigv4),
	TU(test_key_encoding_refuses_what_does_not_fit),
	TU(test_url_is_path_style),
	TU(test_split_url),
	TU(test_xml_initiate_and_error),
	TU(test_classify_temporary_and_permanent),
	TU(test_status_text),
	TU(test_backoff_doubles_to_30s),
	TU(test_upload_checks_the_file_first),
	TU(test_refused_is_retried_until_the_deadline),
	TU(test_stop_flag_ends_at_once),
	TU(test_get_and_head_report_one_attempt),
	TU(test_etag_rule),
	TU(test_complete_xml_holds_escaped_etags),
	TU(test_multipart_etag_is_aws)
)
