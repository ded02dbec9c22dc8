/* s3: S3 requests over libcurl with SigV4 (see s3.h). libcurl 7.88 signs
 * with CURLOPT_AWS_SIGV4 but needs x-amz-content-sha256 sent by us, and the
 * query string pre-sorted and pre-encoded. Every request runs on a curl
 * multi handle, so that a stop flag and a deadline can end it at any time. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "md5.h"
#include "s3.h"
#include "util.h"

#define RESP_MAX      16384            /* kept of an answer's body (error XML) */
#define FILL_STEP     (256 << 10)      /* read between two curl turns; in cache for both md5s */
#define POLL_MS       200              /* stop/deadline checks at least this often */
#define SUM_ATTEMPTS  3                /* uploads of a file whose md5 is wrong */
#define MAX_PARTS     10000            /* S3's limit */
#define MAX_PUT       5368709120ULL    /* S3's largest single PUT and part */
#define ETAG_RULE     "not printable ASCII of 1 to 64 characters"
#define EMPTY_SHA256  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- names and URLs ---------------------------------------------------- */

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

static int encode(const char *s, int keep_slash, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int keep = unreserved(*p) || (keep_slash && *p == '/');
		if (n + (keep ? 1 : 3) >= len) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (keep) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	out[n] = '\0';
	return 0;
}

int s3_key_encode(const char *key, char *out, size_t len) { return encode(key, 1, out, len); }

int s3_query_encode(const char *value, char *out, size_t len) { return encode(value, 0, out, len); }

int s3_url(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const char *query, char *out, size_t len)
{
	char enc[4096];
	int v6 = strchr(srv->host, ':') != NULL;
	if (s3_key_encode(key, enc, sizeof enc) < 0)
		return -1;
	int n = snprintf(out, len, "%s://%s%s%s:%d/%s/%s%s%s", srv->scheme, v6 ? "[" : "",
	    srv->host, v6 ? "]" : "", srv->port, bucket, enc, query && *query ? "?" : "",
	    query ? query : "");
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int s3_split_url(const char *url, char *bucket, size_t len, const char **key)
{
	const char *b, *slash;
	if (strncmp(url, "s3://", 5) != 0)
		goto bad;
	b = url + 5;
	slash = strchr(b, '/');
	if (!slash || slash == b || slash[1] == '\0' || (size_t)(slash - b) >= len)
		goto bad;
	memcpy(bucket, b, (size_t)(slash - b));
	bucket[slash - b] = '\0';
	*key = slash + 1;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int s3_curl_auth(CURL *h, const struct tenant_s3 *srv, const char *payload_sha256,
    struct curl_slist **headers)
{
	char sig[128], hdr[128];
	snprintf(sig, sizeof sig, "aws:amz:%s:s3", srv->region);
	snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s",
	    payload_sha256 ? payload_sha256 : "UNSIGNED-PAYLOAD");
	struct curl_slist *l = curl_slist_append(*headers, hdr);
	if (!l) {
		errno = ENOMEM;
		return -1;
	}
	*headers = l;
	if (curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_USERNAME, srv->key) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PASSWORD, srv->secret) != CURLE_OK) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* ---- answers: XML, classes, backoff ------------------------------------ */

static const char *find(const char *s, size_t len, const char *what)
{
	size_t n = strlen(what);
	for (size_t i = 0; n <= len && i <= len - n; i++)
		if (s[i] == what[0] && memcmp(s + i, what, n) == 0)
			return s + i;
	return NULL;
}

/* Decode one entity at s (after '&'), its text into out; bytes consumed or 0. */
static size_t entity(const char *s, size_t len, char out[5], size_t *olen)
{
	static const struct { const char *name; char c; } named[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
		size_t n = strlen(named[i].name);
		if (len >= n && memcmp(s, named[i].name, n) == 0) {
			out[0] = named[i].c;
			*olen = 1;
			return n;
		}
	}
	if (len < 3 || s[0] != '#')
		return 0;
	char *end;
	int hex = s[1] == 'x';
	unsigned long c = strtoul(s + 1 + hex, &end, hex ? 16 : 10);
	if (end == s + 1 + hex || (size_t)(end - s) >= len || *end != ';' || c == 0 || c > 0x10FFFF)
		return 0;
	unsigned char *o = (unsigned char *)out;
	if (c < 0x80) {
		o[0] = (unsigned char)c, *olen = 1;
	} else if (c < 0x800) {
		o[0] = (unsigned char)(0xC0 | c >> 6), o[1] = (unsigned char)(0x80 | (c & 63)), *olen = 2;
	} else if (c < 0x10000) {
		o[0] = (unsigned char)(0xE0 | c >> 12), o[1] = (unsigned char)(0x80 | (c >> 6 & 63));
		o[2] = (unsigned char)(0x80 | (c & 63)), *olen = 3;
	} else {
		o[0] = (unsigned char)(0xF0 | c >> 18), o[1] = (unsigned char)(0x80 | (c >> 12 & 63));
		o[2] = (unsigned char)(0x80 | (c >> 6 & 63)), o[3] = (unsigned char)(0x80 | (c & 63));
		*olen = 4;
	}
	return (size_t)(end - s) + 1;
}

int s3_xml_value(const char *xml, size_t len, const char *tag, char *out, size_t outlen)
{
	char open[80], close[80];
	if (!xml || outlen == 0 || (size_t)snprintf(open, sizeof open, "<%s>", tag) >= sizeof open)
		return -1;
	snprintf(close, sizeof close, "</%s>", tag);
	const char *a = find(xml, len, open), *b;
	if (!a)
		return -1;
	a += strlen(open);
	if (!(b = find(a, len - (size_t)(a - xml), close)))
		return -1;
	size_t n = 0;
	while (a < b) {
		char e[5];
		size_t elen = 1, used = *a == '&' ? entity(a + 1, (size_t)(b - a - 1), e, &elen) : 0;
		if (used == 0)
			e[0] = *a;
		if (n + elen >= outlen)
			break;
		memcpy(out + n, e, elen);
		n += elen;
		a += used ? used + 1 : 1;
	}
	out[n] = '\0';
	return (int)n;
}

static const struct { const char *code; enum s3_class cls; } s3_codes[] = {
	{ "RequestTimeout", S3_TEMPORARY }, { "SlowDown", S3_TEMPORARY },
	{ "InternalError", S3_TEMPORARY }, { "ServiceUnavailable", S3_TEMPORARY },
	{ "OperationAborted", S3_TEMPORARY }, { "BadDigest", S3_MISMATCH },
	{ "IncompleteBody", S3_TEMPORARY },
};

/* libcurl failures no retry can mend */
static const int curl_permanent[] = {
	CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_NOT_BUILT_IN, CURLE_OUT_OF_MEMORY,
	CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM,
	CURLE_SSL_CIPHER, CURLE_BAD_FUNCTION_ARGUMENT, CURLE_READ_ERROR, CURLE_WRITE_ERROR,
	CURLE_ABORTED_BY_CALLBACK, CURLE_FILESIZE_EXCEEDED, CURLE_TOO_MANY_REDIRECTS,
	CURLE_UNKNOWN_OPTION, CURLE_LOGIN_DENIED, CURLE_SSL_ISSUER_ERROR,
};

static enum s3_class http_class(long http, const char *code)
{
	for (size_t i = 0; i < sizeof s3_codes / sizeof s3_codes[0]; i++)
		if (strcmp(code, s3_codes[i].code) == 0)
			return s3_codes[i].cls;
	if (http >= 500 || http == 408 || http == 429)
		return S3_TEMPORARY;
	return http >= 200 && http < 300 && !*code ? S3_OK : S3_PERMANENT;
}

void s3_classify(int curl_code, const char *curl_text, long http, const char *body,
    size_t len, struct s3_status *st)
{
	memset(st, 0, sizeof *st);
	st->http = curl_code == CURLE_OK ? http : 0;   /* no whole answer otherwise */
	if (curl_code != CURLE_OK) {
		st->cls = S3_TEMPORARY;
		for (size_t i = 0; i < sizeof curl_permanent / sizeof curl_permanent[0]; i++)
			if (curl_code == curl_permanent[i])
				st->cls = S3_PERMANENT;
		util_strlcpy(st->message, curl_text && *curl_text ? curl_text :
		    curl_easy_strerror((CURLcode)curl_code), sizeof st->message);
		return;
	}
	/* a 2xx is an error only when its body is an S3 <Error> document */
	int errdoc = body && find(body, len, "<Error>") != NULL;
	if (http < 200 || http >= 300 || errdoc) {
		if (s3_xml_value(body, len, "Code", st->code, sizeof st->code) < 0)
			st->code[0] = '\0';
		if (s3_xml_value(body, len, "Message", st->message, sizeof st->message) < 0)
			st->message[0] = '\0';
		if (errdoc && !*st->code)
			util_strlcpy(st->code, "Error", sizeof st->code);
	}
	st->cls = http_class(http, st->code);
}

const char *s3_status_text(const struct s3_status *st, char *buf, size_t len)
{
	if (st->http == 0 || (st->cls != S3_TEMPORARY && st->cls != S3_PERMANENT && !*st->code))
		snprintf(buf, len, "%s", st->message);
	else
		snprintf(buf, len, "%ld%s%s%s%s", st->http, *st->code ? " " : "", st->code,
		    *st->message ? ": " : "", st->message);
	return buf;
}

int64_t s3_backoff_ms(int attempt)
{
	if (attempt < 1)
		attempt = 1;
	return attempt > 5 ? 30000 : (int64_t)1000 << (attempt - 1);
}

static enum s3_class ctl_check(const struct s3_ctl *ctl)
{
	if (ctl->stop && *ctl->stop)
		return S3_STOPPED;
	if (ctl->deadline_ms && util_now_ms() >= ctl->deadline_ms)
		return S3_EXPIRED;
	return S3_OK;
}

static void status_set(struct s3_status *st, enum s3_class cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void status_set(struct s3_status *st, enum s3_class cls, const char *fmt, ...)
{
	va_list ap;
	memset(st, 0, sizeof *st);
	st->cls = cls;
	va_start(ap, fmt);
	vsnprintf(st->message, sizeof st->message, fmt, ap);
	va_end(ap);
}

/* Sleep ms, waking for the stop flag and the deadline. */
static enum s3_class ctl_sleep(const struct s3_ctl *ctl, int64_t ms)
{
	int64_t until = util_mono_ms() + ms;
	for (;;) {
		enum s3_class c = ctl_check(ctl);
		int64_t left = until - util_mono_ms();
		if (c != S3_OK || left <= 0)
			return c;
		poll(NULL, 0, (int)(left < POLL_MS ? left : POLL_MS));
	}
}

/* ---- one request --------------------------------------------------------- */

struct spec {
	const char *op;                /* "PutObject", "UploadPart 3", ... for messages */
	const char *method;            /* GET HEAD PUT POST DELETE */
	const char *bucket, *key, *query;
	const void *body;              /* a body from memory, or */
	size_t len;
	int file;                      /* or from the file fd, read in order, */
	int fd;
	const struct s3_source *src;   /* or from src when set */
	uint64_t size;
	md5 *m;                        /* its md5 computed on the way */
	const char *content_md5;       /* base64, or NULL */
	const char *content_type;
	const char *range;
	s3_write_fn *write;            /* GET: where a 2xx body goes */
	void *warg;
};

struct req {
	CURL *h;
	struct curl_slist *hdrs;
	char op[64];
	const unsigned char *mem;
	size_t memlen, memoff;
	int file, fd;                  /* a body from fd or src, not mem */
	const struct s3_source *src;
	md5 *m;
	uint64_t off, size;
	int rderr;                     /* errno of a failed read of the file */
	int srcerr;                    /* src->read failed */
	int shrunk;                    /* the file ended before its size */
	s3_write_fn *write;            /* GET: where a 2xx body goes */
	void *warg;
	int wrfail;
	char resp[RESP_MAX];
	size_t resplen;
	char etag[S3_ETAG_ROOM];
	int etag_bad;                  /* an ETag came that s3_etag_ok refuses */
	int sse;                       /* SSE-KMS or SSE-C: the ETag is no md5 */
	uint64_t length;               /* Content-Length of the answer (HEAD) */
	char errbuf[CURL_ERROR_SIZE];
};

static int req_rewind(struct req *q)
{
	q->memoff = 0;
	q->resplen = 0;
	q->resp[0] = '\0';
	q->etag[0] = '\0';
	q->etag_bad = 0;
	q->errbuf[0] = '\0';
	q->sse = 0;
	q->rderr = 0;
	q->shrunk = 0;
	q->srcerr = 0;
	if (!q->file)
		return 0;
	q->off = 0;
	if (q->m)
		md5_reset(q->m);
	if (q->src)
		return q->src->rewind(q->src->arg);
	return lseek(q->fd, 0, SEEK_SET) < 0 ? -1 : 0;
}

static size_t req_read(char *buf, size_t size, size_t n, void *arg)
{
	struct req *q = arg;
	size_t want = size * n;
	if (!q->file) {
		size_t left = q->memlen - q->memoff;
		if (want > left)
			want = left;
		memcpy(buf, q->mem + q->memoff, want);
		q->memoff += want;
		return want;
	}
	ssize_t got = q->src ? q->src->read(q->src->arg, buf, want) : -1;
	if (q->src && got < 0) {
		q->srcerr = 1;
		return CURL_READFUNC_ABORT;
	}
	while (!q->src && (got = read(q->fd, buf, want)) < 0 && errno == EINTR)
		;
	if (got < 0) {
		q->rderr = errno;
		return CURL_READFUNC_ABORT;
	}
	if (got == 0 && q->off < q->size) {
		q->shrunk = 1;
		return CURL_READFUNC_ABORT;
	}
	if (q->m)
		md5_update(q->m, buf, (size_t)got);
	q->off += (uint64_t)got;
	return (size_t)got;
}

/* libcurl rewinds when it sends a body again (a dead reused connection) */
static int req_seek(void *arg, curl_off_t off, int origin)
{
	if (origin != SEEK_SET || off != 0)
		return CURL_SEEKFUNC_CANTSEEK;
	return req_rewind(arg) < 0 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

int s3_etag_ok(const char *etag)
{
	size_t n = 0;
	for (; etag[n]; n++)
		if (etag[n] <= ' ' || etag[n] > '~' || etag[n] == '"')
			return 0;
	return n > 0 && n <= S3_ETAG_MAX;
}

/* An ETag header's value, one pair of quotes taken off. A server or proxy
 * is not trusted: a value that is no sane ETag is kept as "unusable", so it
 * is never compared, logged, or sent back in a Complete. */
static void etag_take(struct req *q, const char *v)
{
	size_t n = strlen(v);
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"')
		v++, n -= 2;
	q->etag[0] = '\0';
	q->etag_bad = n > S3_ETAG_MAX;
	if (q->etag_bad)
		return;
	memcpy(q->etag, v, n);
	q->etag[n] = '\0';
	q->etag_bad = !s3_etag_ok(q->etag);
	if (q->etag_bad)
		q->etag[0] = '\0';
}

/* The value of header `name` in the line buf, trimmed, into out; 1 if it is. */
static int header_is(const char *buf, size_t len, const char *name, char *out, size_t olen)
{
	size_t n = strlen(name), k = 0;
	if (len <= n || buf[n] != ':' || strncasecmp(buf, name, n) != 0)
		return 0;
	const char *v = buf + n + 1, *end = buf + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	for (; v < end && k + 1 < olen; v++)
		out[k++] = *v;
	out[k] = '\0';
	return 1;
}

static size_t req_header(char *buf, size_t size, size_t n, void *arg)
{
	struct req *q = arg;
	size_t len = size * n;
	char v[S3_ETAG_MAX + 16];
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		q->etag[0] = '\0';
		q->etag_bad = 0;
		q->sse = 0;
	} else if (header_is(buf, len, "ETag", v, sizeof v)) {
		etag_take(q, v);
	} else if (header_is(buf, len, "x-amz-server-side-encryption", v, sizeof v)) {
		q->sse |= strncmp(v, "aws:kms", 7) == 0;
	} else if (header_is(buf, len, "x-amz-server-side-encryption-customer-algorithm", v,
	    sizeof v)) {
		q->sse = 1;
	} else if (header_is(buf, len, "Content-Length", v, sizeof v)) {
		q->length = strtoull(v, NULL, 10);
	}
	return len;
}

static size_t req_body(char *buf, size_t size, size_t n, void *arg)
{
	struct req *q = arg;
	size_t len = size * n, room = sizeof q->resp - 1 - q->resplen;
	long http = 0;
	curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &http);
	if (q->write && http >= 200 && http < 300) {
		size_t w = q->write(q->warg, buf, len);
		q->wrfail = w != len;
		return w;
	}
	if (len < room)
		room = len;
	memcpy(q->resp + q->resplen, buf, room);
	q->resplen += room;
	q->resp[q->resplen] = '\0';
	return len;
}

static int add_header(struct req *q, const char *name, const char *value)
{
	char line[512];
	if (!value)
		return 0;
	snprintf(line, sizeof line, "%s: %s", name, value);
	struct curl_slist *l = curl_slist_append(q->hdrs, line);
	if (!l)
		return -1;
	q->hdrs = l;
	return 0;
}

static void req_close(struct req *q)
{
	if (q->h)
		curl_easy_cleanup(q->h);
	curl_slist_free_all(q->hdrs);
	q->h = NULL;
	q->hdrs = NULL;
}

/* The hash SigV4 signs: of a small body, else UNSIGNED-PAYLOAD (Content-MD5,
 * a signed header, covers the bytes of a big one). */
static const char *payload_hash(const struct spec *s, char hex[65])
{
	unsigned char h[32];
	if (s->file || (s->body && s->len > 65536))
		return NULL;
	if (!s->body || s->len == 0)
		return EMPTY_SHA256;
	crypto_hash_sha256(h, s->body, s->len);
	util_hex(h, sizeof h, hex);
	return hex;
}

static int req_method(struct req *q, const struct spec *s)
{
	CURL *h = q->h;
	int rc = 0;
	if (strcmp(s->method, "HEAD") == 0)
		return curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (strcmp(s->method, "DELETE") == 0)
		return curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	if (strcmp(s->method, "GET") == 0)
		return 0;
	if (strcmp(s->method, "POST") == 0) {
		rc |= curl_easy_setopt(h, CURLOPT_POST, 1L);
		rc |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->len);
	} else {
		rc |= curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		rc |= curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)(s->file ? s->size : s->len));
		/* small enough to stay in cache between md5 and send */
		rc |= curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 128L * 1024);
	}
	rc |= curl_easy_setopt(h, CURLOPT_READFUNCTION, req_read);
	rc |= curl_easy_setopt(h, CURLOPT_READDATA, q);
	rc |= curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, req_seek);
	rc |= curl_easy_setopt(h, CURLOPT_SEEKDATA, q);
	return rc;
}

static int req_options(struct req *q, const char *url)
{
	CURL *h = q->h;
	int rc = 0;
	rc |= curl_easy_setopt(h, CURLOPT_URL, url);
	rc |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);     /* keys may hold "../" */
	rc |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	rc |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	rc |= curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	rc |= curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	rc |= curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry/" FERRY_VERSION);
	rc |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, q->errbuf);
	rc |= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, req_header);
	rc |= curl_easy_setopt(h, CURLOPT_HEADERDATA, q);
	rc |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, req_body);
	rc |= curl_easy_setopt(h, CURLOPT_WRITEDATA, q);
	rc |= curl_easy_setopt(h, CURLOPT_PRIVATE, q);
	return rc;
}

/* Prepare q for s (q is zeroed first). 0, or -1 with errno. */
static int req_open(struct req *q, const struct tenant_s3 *srv, const struct spec *s)
{
	char url[8192], hex[65];
	memset(q, 0, sizeof *q);
	q->file = s->file;
	q->fd = s->file ? s->fd : -1;
	q->src = s->src;
	q->size = s->size;
	q->m = s->m;
	q->mem = s->body;
	q->memlen = s->len;
	q->write = s->write;
	q->warg = s->warg;
	util_strlcpy(q->op, s->op, sizeof q->op);
	if (s3_url(srv, s->bucket, s->key, s->query, url, sizeof url) < 0)
		return -1;
	if (!(q->h = curl_easy_init()))
		goto nomem;
	if (req_options(q, url) != CURLE_OK || req_method(q, s) != CURLE_OK)
		goto inval;
	if (s3_curl_auth(q->h, srv, payload_hash(s, hex), &q->hdrs) < 0)
		goto fail;
	if (add_header(q, "Content-MD5", s->content_md5) < 0 ||
	    add_header(q, "Content-Type", s->content_type) < 0 ||
	    add_header(q, "Range", s->range) < 0)
		goto nomem;
	if (curl_easy_setopt(q->h, CURLOPT_HTTPHEADER, q->hdrs) != CURLE_OK)
		goto inval;
	return 0;
inval:
	errno = EINVAL;
	goto fail;
nomem:
	errno = ENOMEM;
fail:
	req_close(q);
	return -1;
}

/* The class of a finished transfer of q, with st. */
static enum s3_class req_finish(struct req *q, CURLcode cc, struct s3_status *st)
{
	long http = 0;
	char why[256];
	curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &http);
	if (q->srcerr) {
		status_set(st, S3_PERMANENT, "%s: %s", q->op, q->src->error(q->src->arg));
		return st->cls;
	}
	if (q->rderr) {
		status_set(st, S3_PERMANENT, "%s: unable to read the file: %s", q->op,
		    strerror(q->rderr));
		return st->cls;
	}
	if (q->shrunk) {
		status_set(st, S3_MISMATCH, "%s: the file ended after %llu bytes", q->op,
		    (unsigned long long)q->off);
		return st->cls;
	}
	if (q->wrfail) {
		status_set(st, S3_PERMANENT, "%s: unable to write the object's bytes", q->op);
		return st->cls;
	}
	s3_classify(cc, q->errbuf, http, q->resp, q->resplen, st);
	if (st->cls != S3_OK) {
		s3_status_text(st, why, sizeof why);
		snprintf(st->message, sizeof st->message, "%s: %s", q->op, why);
	}
	return st->cls;
}

/* The result of q's transfer if it is done: 1 and *cc, else 0. */
static int multi_done(CURLM *mh, CURL *h, CURLcode *cc)
{
	CURLMsg *msg;
	int left, done = 0;
	while ((msg = curl_multi_info_read(mh, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) {
			*cc = msg->data.result;
			done = 1;
		}
	return done;
}

/* Run q once on mh, watching ctl. */
static enum s3_class req_run(CURLM *mh, struct req *q, const struct s3_ctl *ctl,
    struct s3_status *st)
{
	CURLcode cc = CURLE_OK;
	int running;
	if (curl_multi_add_handle(mh, q->h) != CURLM_OK) {
		status_set(st, S3_PERMANENT, "%s: %s", q->op, strerror(ENOMEM));
		return st->cls;
	}
	for (;;) {
		enum s3_class c = ctl_check(ctl);
		if (c != S3_OK) {
			curl_multi_remove_handle(mh, q->h);
			status_set(st, c, "%s: %s", q->op, c == S3_STOPPED ? "stopped" : "deadline reached");
			return c;
		}
		curl_multi_perform(mh, &running);
		if (multi_done(mh, q->h, &cc))
			break;
		curl_multi_poll(mh, NULL, 0, POLL_MS, NULL);
	}
	curl_multi_remove_handle(mh, q->h);
	return req_finish(q, cc, st);
}

/* ---- GET, HEAD: one attempt each, for s3:// sources -------------------- */

static enum s3_class one_shot(const struct tenant_s3 *srv, const struct spec *s,
    struct req *q, const struct s3_ctl *ctl, struct s3_status *st)
{
	CURLM *mh = curl_multi_init();
	enum s3_class c;
	if (!mh || req_open(q, srv, s) < 0) {
		status_set(st, S3_PERMANENT, "%s: %s", s->op, strerror(mh ? errno : ENOMEM));
		c = st->cls;
	} else {
		c = req_run(mh, q, ctl, st);
	}
	req_close(q);
	curl_multi_cleanup(mh);
	return c;
}

int s3_get(const struct tenant_s3 *srv, const char *bucket, const char *key, uint64_t from,
    s3_write_fn *write, void *arg, const struct s3_ctl *ctl, struct s3_status *st)
{
	char range[48];
	snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)from);
	struct spec s = { .op = "GetObject", .method = "GET", .bucket = bucket, .key = key,
	    .range = from ? range : NULL, .write = write, .warg = arg };
	struct req *q = malloc(sizeof *q);
	if (!q) {
		status_set(st, S3_PERMANENT, "GetObject: %s", strerror(ENOMEM));
		return -1;
	}
	one_shot(srv, &s, q, ctl, st);
	free(q);
	return st->cls == S3_OK ? 0 : -1;
}

int s3_head(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const struct s3_ctl *ctl, uint64_t *size, char etag[S3_ETAG_ROOM], struct s3_status *st)
{
	struct spec s = { .op = "HeadObject", .method = "HEAD", .bucket = bucket, .key = key };
	struct req *q = malloc(sizeof *q);
	if (!q) {
		status_set(st, S3_PERMANENT, "HeadObject: %s", strerror(ENOMEM));
		return -1;
	}
	one_shot(srv, &s, q, ctl, st);
	if (st->cls == S3_OK) {
		*size = q->length;
		if (etag)
			util_strlcpy(etag, q->etag, S3_ETAG_ROOM);
	}
	free(q);
	return st->cls == S3_OK ? 0 : -1;
}

/* ---- uploads ------------------------------------------------------------- */

struct up {
	const struct s3_upload *u;
	struct s3_upload_result *r;
	CURLM *mh;
	int fd;
	uint64_t psize;                /* part size (single PUT when size <= psize) */
	int64_t reported;              /* mono ms of the last progress report */
	char b64[25];                  /* Content-MD5 of the whole file */
	char last[512];                /* the last temporary failure, for EXPIRED */
	/* asked when a retry fails: did an earlier try land, its answer lost? */
	int (*landed)(void *arg);
	void *landed_arg;
	int resume_spent;              /* u->resume's upload was tried (once only) */
};

static void note(struct up *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct up *x, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (!x->u->note)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	x->u->note(x->u->arg, line);
}

static void progress(struct up *x, int64_t done, int force)
{
	int64_t now = util_mono_ms();
	if (!x->u->progress || (!force && now - x->reported < 1000))
		return;
	x->reported = now;
	x->u->progress(x->u->arg, done, (int64_t)x->u->size);
}

/* A temporary failure: say so, remember it, and the wait before the next try. */
static int64_t temporary(struct up *x, const struct s3_status *st, int attempt)
{
	int64_t wait = s3_backoff_ms(attempt);
	util_strlcpy(x->last, st->message, sizeof x->last);
	x->r->retries++;
	note(x, "%s; trying again in %d s", st->message, (int)(wait / 1000));
	return wait;
}

/* The next try, wait ms from now, would come after the hold: give up for now. */
static int held(const struct s3_ctl *ctl, int64_t wait)
{
	return ctl->hold_ms && util_now_ms() + wait > ctl->hold_ms;
}

static enum s3_class stopped(struct up *x, enum s3_class c, struct s3_status *st)
{
	status_set(st, c, "%s%s%s", c == S3_STOPPED ? "stopped" : "deadline reached",
	    *x->last ? "; last failure: " : "", x->last);
	return c;
}

/* Run q until it is not a temporary failure, with backoff. */
static enum s3_class up_retry(struct up *x, struct req *q, struct s3_status *st)
{
	for (int attempt = 1;; attempt++) {
		if (req_rewind(q) < 0) {
			status_set(st, S3_PERMANENT, "%s: unable to rewind the file: %s", q->op,
			    strerror(errno));
			return st->cls;
		}
		enum s3_class c = req_run(x->mh, q, &x->u->ctl, st);
		if (c == S3_STOPPED || c == S3_EXPIRED)
			return stopped(x, c, st);
		if (c != S3_OK && attempt > 1 && x->landed && x->landed(x->landed_arg))
			return S3_OK;
		if (c != S3_TEMPORARY)
			return c;
		int64_t wait = temporary(x, st, attempt);
		if (held(&x->u->ctl, wait))
			return S3_TEMPORARY;
		if ((c = ctl_sleep(&x->u->ctl, wait)) != S3_OK)
			return stopped(x, c, st);
	}
}

/* Open q for s and run it (with retries when retry is set); the caller
 * reads the answer in q, then closes q. */
static enum s3_class up_request(struct up *x, const struct spec *s, struct req *q, int retry,
    struct s3_status *st)
{
	static const struct s3_ctl brief = { 0, NULL, 0 };
	if (req_open(q, x->u->srv, s) < 0) {
		status_set(st, S3_PERMANENT, "%s: %s", s->op, strerror(errno));
		return st->cls;
	}
	if (retry)
		return up_retry(x, q, st);
	/* clean-up requests run even when stopped, for 10 s at most */
	struct s3_ctl ctl = brief;
	ctl.deadline_ms = util_now_ms() + 10000;
	return req_run(x->mh, q, &ctl, st);
}

/* A request that tidies up after a failure; its own failure is a note.
 * 0 if it succeeded. */
static int up_cleanup(struct up *x, const struct spec *s)
{
	struct s3_status st;
	struct req *q = malloc(sizeof *q);
	int rc = -1;
	if (!q)
		return -1;
	if (up_request(x, s, q, 0, &st) != S3_OK)
		note(x, "%s", st.message);
	else
		rc = 0;
	req_close(q);
	free(q);
	return rc;
}

/* ---- single PUT ---- */

static int put_info(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut;
	progress(arg, (int64_t)un, 0);
	return 0;
}

/* An object that must not stay: some servers keep the bytes of a body cut
 * short (s3rver does), where S3 itself keeps nothing. */
static void put_discard(struct up *x)
{
	struct spec del = { .op = "DeleteObject", .method = "DELETE", .bucket = x->u->bucket,
	    .key = x->u->key };
	up_cleanup(x, &del);
}

/* After a PUT cut short: s3rver may still be storing what it got when the
 * DELETE arrives, so delete until a HEAD finds nothing (a few seconds at
 * most; S3 itself never keeps a cut body). */
static void put_discard_cut(struct up *x)
{
	struct s3_ctl brief = { util_now_ms() + 10000, NULL, 0 };
	for (int i = 0; i < 10 && util_now_ms() < brief.deadline_ms; i++) {
		struct s3_status hs;
		uint64_t size;
		put_discard(x);
		if (s3_head(x->u->srv, x->u->bucket, x->u->key, &brief, &size, NULL, &hs) < 0 &&
		    hs.http == 404)
			return;
		poll(NULL, 0, 300);
	}
	note(x, "%s: a cut upload may have left an object", x->u->key);
}

/* The bytes sent are the expected ones, and S3 says so where it can. */
static enum s3_class put_verify(struct up *x, struct req *q, md5 *m, struct s3_status *st)
{
	const struct s3_upload *u = x->u;
	if (u->source && u->source->md5)
		u->source->md5(u->source->arg, x->r->md5);
	else
		md5_final_hex(m, x->r->md5);
	if (q->off != u->size)
		status_set(st, S3_MISMATCH, "%llu bytes read, expected %llu",
		    (unsigned long long)q->off, (unsigned long long)u->size);
	else if (u->md5 && !md5_equal(x->r->md5, u->md5))
		status_set(st, S3_MISMATCH, "md5 %s of the bytes uploaded, expected %s", x->r->md5,
		    u->md5);
	else if (q->etag_bad)
		status_set(st, S3_MISMATCH, "S3 answered an unusable ETag (%s)", ETAG_RULE);
	else if (!q->sse && util_is_hex(q->etag, 32) && !md5_equal(q->etag, x->r->md5))
		status_set(st, S3_MISMATCH, "S3 stored ETag %s, expected %s", q->etag, x->r->md5);
	else
		return S3_OK;
	put_discard(x);
	return S3_MISMATCH;
}

static enum s3_class put_single(struct up *x, struct s3_status *st)
{
	const struct s3_upload *u = x->u;
	struct req *q = malloc(sizeof *q);
	md5 *m = md5_new();
	enum s3_class c;
	struct spec s = { .op = "PutObject", .method = "PUT", .bucket = u->bucket, .key = u->key,
	    .file = 1, .fd = x->fd, .src = u->source, .size = u->size,
	    .m = u->source && u->source->md5 ? NULL : m,
	    .content_md5 = *x->b64 ? x->b64 : NULL,
	    .content_type = "application/zip" };
	if (!q || !m || req_open(q, u->srv, &s) < 0) {
		status_set(st, S3_PERMANENT, "PutObject: %s", strerror(q && m ? errno : ENOMEM));
		c = st->cls;
	} else {
		curl_easy_setopt(q->h, CURLOPT_XFERINFOFUNCTION, put_info);
		curl_easy_setopt(q->h, CURLOPT_XFERINFODATA, x);
		curl_easy_setopt(q->h, CURLOPT_NOPROGRESS, 0L);
		c = up_retry(x, q, st);
		if (c == S3_OK)
			c = put_verify(x, q, m, st);
		else if (q->srcerr)
			put_discard_cut(x);
		req_close(q);
	}
	free(q);
	md5_free(m);
	return c;
}

/* ---- multipart ---- */

struct part {
	struct req q;                  /* first: CURLINFO_PRIVATE finds the part */
	unsigned char *buf;
	size_t len;
	int num;                       /* part number; 0: the slot is free */
	int busy;                      /* its request is on the multi handle */
	int attempts;
	int digests;                   /* BadDigest answers to this part */
	int64_t retry_at;              /* mono ms of its next try; 0: none waiting */
	char md5[33];
};

/* The part buffers of every upload of the process share S3_BUFFER_MAX
 * (32 MiB): with the item of a 10,000-file order (some 10 MiB as a tree) and
 * libcurl, s3-put peaked at 74 MiB with 48 MiB of buffers (bench small).
 * An upload takes what is free, at least one part, up to its parallel
 * parts, and waits while not even one part is free (a part bigger than the
 * budget takes it whole). */
enum { S3_BUFFER_MAX = 32 << 20 };

static struct {
	pthread_mutex_t mu;
	pthread_cond_t freed;
	uint64_t used;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

/* Parts of psize to hold, at most want, or 0 when stopped. */
static int pool_take(const struct s3_ctl *ctl, uint64_t psize, int want)
{
	uint64_t need = psize < S3_BUFFER_MAX ? psize : S3_BUFFER_MAX;
	int got = 0;
	pthread_mutex_lock(&pool.mu);
	while (S3_BUFFER_MAX - pool.used < need && ctl_check(ctl) == S3_OK) {
		struct timespec ts = util_abstime(POLL_MS);
		pthread_cond_timedwait(&pool.freed, &pool.mu, &ts);
	}
	if (S3_BUFFER_MAX - pool.used >= need) {
		uint64_t room = S3_BUFFER_MAX - pool.used;
		got = psize >= S3_BUFFER_MAX ? 1 : (int)(room / psize);
		if (got > want)
			got = want;
		pool.used += psize >= S3_BUFFER_MAX ? S3_BUFFER_MAX : (uint64_t)got * psize;
	}
	pthread_mutex_unlock(&pool.mu);
	return got;
}

static void pool_give(uint64_t psize, int n)
{
	if (n <= 0)
		return;
	pthread_mutex_lock(&pool.mu);
	pool.used -= psize >= S3_BUFFER_MAX ? S3_BUFFER_MAX : (uint64_t)n * psize;
	pthread_cond_broadcast(&pool.freed);
	pthread_mutex_unlock(&pool.mu);
}

struct mpu {
	struct up *x;
	char id[1024], qid[3072];      /* UploadId, and as a query value */
	int nparts, next, completed, nslots;
	int filling;                   /* the slot being read, or -1 */
	size_t filled;
	struct part *slots;
	char (*etags)[S3_ETAG_ROOM];
	unsigned char (*md5s)[16];     /* each part's md5, for the object's ETag */
	md5 *whole, *pm;
	int64_t done;                  /* bytes of the parts completed */
	int pooled;                    /* part buffers taken from the pool */
	int *have;                     /* resumed: index + 1 in resume->parts of
	                                  each part S3 has already, 0: to send */
};

static void mpu_free(struct mpu *p)
{
	if (!p)
		return;
	pool_give(p->x->psize, p->pooled);
	for (int i = 0; p->slots && i < p->nslots; i++) {
		if (p->slots[i].busy)
			curl_multi_remove_handle(p->x->mh, p->slots[i].q.h);
		req_close(&p->slots[i].q);
		free(p->slots[i].buf);
	}
	free(p->slots);
	free(p->etags);
	free(p->md5s);
	free(p->have);
	md5_free(p->whole);
	md5_free(p->pm);
	free(p);
}


static struct mpu *mpu_new(struct up *x)
{
	struct mpu *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->x = x;
	p->nparts = (int)((x->u->size + x->psize - 1) / x->psize);
	p->nslots = x->u->parallel < 1 ? 1 : x->u->parallel;
	if (p->nslots > p->nparts)
		p->nslots = p->nparts;
	/* part buffers are the upload's memory: from the pool (every program
	 * stays under 64 MiB RSS), fewer parts in flight if need be */
	if (!(p->nslots = pool_take(&x->u->ctl, x->psize, p->nslots))) {
		free(p);
		return NULL;
	}
	p->pooled = p->nslots;
	p->next = 1;
	p->filling = -1;
	p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
	p->etags = calloc((size_t)p->nparts, sizeof *p->etags);
	p->md5s = calloc((size_t)p->nparts, sizeof *p->md5s);
	p->whole = md5_new();
	p->pm = md5_new();
	int ok = p->slots && p->etags && p->md5s && p->whole && p->pm;
	for (int i = 0; ok && i < p->nslots; i++)
		ok = (p->slots[i].buf = malloc(x->psize)) != NULL;
	if (!ok) {
		mpu_free(p);
		return NULL;
	}
	return p;
}

static enum s3_class mpu_create(struct mpu *p, struct s3_status *st)
{
	const struct s3_upload *u = p->x->u;
	struct spec s = { .op = "CreateMultipartUpload", .method = "POST", .bucket = u->bucket,
	    .key = u->key, .query = "uploads=", .content_type = "application/zip" };
	struct req *q = malloc(sizeof *q);
	enum s3_class c = S3_PERMANENT;
	if (!q)
		status_set(st, c, "CreateMultipartUpload: %s", strerror(ENOMEM));
	else if ((c = up_request(p->x, &s, q, 1, st)) == S3_OK &&
	    (s3_xml_value(q->resp, q->resplen, "UploadId", p->id, sizeof p->id) <= 0 ||
	    s3_query_encode(p->id, p->qid, sizeof p->qid) < 0)) {
		p->id[0] = '\0';
		status_set(st, c = S3_PERMANENT, "CreateMultipartUpload: no UploadId in the answer");
	}
	if (q)
		req_close(q);
	free(q);
	return c;
}

static enum s3_class mpu_add(struct mpu *p, struct part *s, struct s3_status *st)
{
	if (curl_multi_add_handle(p->x->mh, s->q.h) != CURLM_OK) {
		status_set(st, S3_PERMANENT, "%s: %s", s->q.op, strerror(ENOMEM));
		return st->cls;
	}
	s->busy = 1;
	s->retry_at = 0;
	return S3_OK;
}

/* A part is read: send it, with the md5 of its bytes as Content-MD5. */
static enum s3_class mpu_send(struct mpu *p, struct part *s, struct s3_status *st)
{
	const struct s3_upload *u = p->x->u;
	char b64[25], query[3200], op[32];
	sodium_bin2base64(b64, sizeof b64, p->md5s[s->num - 1], 16, sodium_base64_VARIANT_ORIGINAL);
	snprintf(query, sizeof query, "partNumber=%d&uploadId=%s", s->num, p->qid);
	snprintf(op, sizeof op, "UploadPart %d", s->num);
	struct spec sp = { .op = op, .method = "PUT", .bucket = u->bucket, .key = u->key,
	    .query = query, .body = s->buf, .len = s->len, .content_md5 = b64 };
	req_close(&s->q);
	s->attempts = 0;
	s->digests = 0;
	if (req_open(&s->q, u->srv, &sp) < 0) {
		status_set(st, S3_PERMANENT, "%s: %s", op, strerror(errno));
		return st->cls;
	}
	return mpu_add(p, s, st);
}

/* Take a free slot for the next part, if there is one to read and a slot. */
static struct part *mpu_take(struct mpu *p)
{
	if (p->filling >= 0)
		return &p->slots[p->filling];
	for (int i = 0; p->next <= p->nparts && i < p->nslots; i++) {
		struct part *s = &p->slots[i];
		if (s->num)
			continue;
		uint64_t at = (uint64_t)(p->next - 1) * p->x->psize, left = p->x->u->size - at;
		s->num = p->next++;
		s->len = (size_t)(left < p->x->psize ? left : p->x->psize);
		p->filling = i;
		p->filled = 0;
		md5_reset(p->pm);
		return s;
	}
	return NULL;
}

/* The whole file has been read, in order: is it the expected one? */
static enum s3_class mpu_check(struct mpu *p, struct s3_status *st)
{
	struct up *x = p->x;
	const struct s3_source *src = x->u->source;
	if (src && src->md5)
		src->md5(src->arg, x->r->md5);
	else
		md5_final_hex(p->whole, x->r->md5);
	if (!x->u->md5 || md5_equal(x->r->md5, x->u->md5))
		return S3_OK;
	status_set(st, S3_MISMATCH, "md5 %s of the file read, expected %s", x->r->md5, x->u->md5);
	return S3_MISMATCH;
}

/* A part an earlier attempt sent, S3 has, and whose bytes read now have
 * the same md5: completed without sending it. 1 if so. */
static int mpu_kept(struct mpu *p, struct part *s)
{
	const struct s3_resume *rs = p->x->u->resume;
	int k = p->have ? p->have[s->num - 1] : 0;
	if (!k)
		return 0;
	const struct s3_resume_part *jp = &rs->parts[k - 1];
	if (!md5_equal(jp->md5, s->md5)) {
		note(p->x, "UploadPart %d: the bytes read differ from those sent before; sending it again",
		    s->num);
		return 0;
	}
	util_strlcpy(p->etags[s->num - 1], jp->etag, sizeof p->etags[0]);
	p->done += (int64_t)s->len;
	p->completed++;
	p->x->r->resumed++;
	s->num = 0;
	return 1;
}

/* Read the next step of the part being filled; send it once complete. The
 * parts are read one after the other, so the whole md5 sees them in order. */
static enum s3_class mpu_fill(struct mpu *p, struct s3_status *st)
{
	struct part *s = mpu_take(p);
	if (!s)
		return S3_OK;
	size_t want = s->len - p->filled;
	if (want > FILL_STEP)
		want = FILL_STEP;
	off_t at = (off_t)((uint64_t)(s->num - 1) * p->x->psize + p->filled);
	const struct s3_source *src = p->x->u->source;
	ssize_t got = src ? src->read(src->arg, s->buf + p->filled, want) : -1;
	if (src && got < 0)
		return status_set(st, S3_PERMANENT, "UploadPart %d: %s", s->num,
		    src->error(src->arg)), st->cls;
	while (!src && (got = pread(p->x->fd, s->buf + p->filled, want, at)) < 0 && errno == EINTR)
		;
	if (got <= 0) {
		status_set(st, got < 0 ? S3_PERMANENT : S3_MISMATCH, "UploadPart %d: %s", s->num,
		    got < 0 ? strerror(errno) : "the file is shorter than its size");
		return st->cls;
	}
	if (!src || !src->md5)
		md5_update(p->whole, s->buf + p->filled, (size_t)got);
	md5_update(p->pm, s->buf + p->filled, (size_t)got);
	p->filled += (size_t)got;
	if (p->filled < s->len)
		return S3_OK;
	p->filling = -1;
	md5_final_raw(p->pm, p->md5s[s->num - 1]);
	util_hex(p->md5s[s->num - 1], 16, s->md5);
	if (s->num == p->nparts && mpu_check(p, st) != S3_OK)
		return st->cls;
	if (mpu_kept(p, s))
		return S3_OK;
	return mpu_send(p, s, st);
}

static enum s3_class mpu_part_done(struct mpu *p, struct part *s, struct s3_status *st)
{
	if (s->q.etag_bad) {
		status_set(st, S3_MISMATCH, "%s: S3 answered an unusable ETag (%s)", s->q.op,
		    ETAG_RULE);
		return st->cls;
	}
	if (!*s->q.etag) {
		status_set(st, S3_PERMANENT, "%s: no ETag in the answer", s->q.op);
		return st->cls;
	}
	if (!s->q.sse && util_is_hex(s->q.etag, 32) && !md5_equal(s->q.etag, s->md5)) {
		status_set(st, S3_MISMATCH, "%s: S3 stored ETag %s, expected %s", s->q.op, s->q.etag,
		    s->md5);
		return st->cls;
	}
	util_strlcpy(p->etags[s->num - 1], s->q.etag, sizeof p->etags[0]);
	p->done += (int64_t)s->len;
	p->completed++;
	const struct s3_resume *rs = p->x->u->resume;
	if (rs && rs->part) {
		struct s3_resume_part jp = { .num = s->num, .size = s->len };
		util_strlcpy(jp.md5, s->md5, sizeof jp.md5);
		util_strlcpy(jp.etag, s->q.etag, sizeof jp.etag);
		if (rs->part(rs->arg, p->id, &jp) < 0)
			note(p->x, "%s: unable to keep it for a resume", s->q.op);
	}
	req_close(&s->q);
	s->num = 0;
	return S3_OK;
}

/* Collect the parts whose request ended. */
static enum s3_class mpu_reap(struct mpu *p, struct s3_status *st)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(p->x->mh, &left))) {
		struct part *s = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURLcode cc = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		curl_multi_remove_handle(p->x->mh, s->q.h);
		s->busy = 0;
		enum s3_class c = req_finish(&s->q, cc, st);
		/* the server saw other bytes than their Content-MD5 (read from
		 * the part as it was filled): damaged on the way, send it again */
		if (c == S3_MISMATCH && strcmp(st->code, "BadDigest") == 0 &&
		    ++s->digests < SUM_ATTEMPTS) {
			note(p->x, "%s; sending the part again (%d of %d)", st->message, s->digests + 1,
			    SUM_ATTEMPTS);
			c = S3_TEMPORARY;
		}
		if (c == S3_OK)
			c = mpu_part_done(p, s, st);
		else if (c == S3_TEMPORARY) {
			int64_t wait = temporary(p->x, st, ++s->attempts);
			if (held(&p->x->u->ctl, wait))
				return S3_TEMPORARY;
			s->retry_at = util_mono_ms() + wait, c = S3_OK;
		}
		if (c != S3_OK)
			return c;
	}
	return S3_OK;
}

/* Send again the parts whose wait is over; report progress. */
static enum s3_class mpu_tend(struct mpu *p, struct s3_status *st)
{
	int64_t now = util_mono_ms(), done = p->done;
	for (int i = 0; i < p->nslots; i++) {
		struct part *s = &p->slots[i];
		curl_off_t sent = 0;
		if (s->busy && curl_easy_getinfo(s->q.h, CURLINFO_SIZE_UPLOAD_T, &sent) == CURLE_OK)
			done += (int64_t)sent;
		if (!s->num || s->busy || !s->retry_at || now < s->retry_at)
			continue;
		if (req_rewind(&s->q) < 0 || mpu_add(p, s, st) != S3_OK)
			return status_set(st, S3_PERMANENT, "%s: %s", s->q.op, strerror(ENOMEM)), st->cls;
	}
	progress(p->x, done, 0);
	return S3_OK;
}

/* How long curl may wait: not at all while a part is to be read. */
static int mpu_wait_ms(struct mpu *p)
{
	int64_t wait = POLL_MS, now = util_mono_ms();
	for (int i = 0; i < p->nslots; i++) {
		const struct part *s = &p->slots[i];
		if (p->filling >= 0 || (!s->num && p->next <= p->nparts))
			return 0;
		if (s->retry_at && s->retry_at - now < wait)
			wait = s->retry_at - now;
	}
	return wait < 0 ? 0 : (int)wait;
}

static enum s3_class mpu_parts(struct mpu *p, struct s3_status *st)
{
	int running;
	while (p->completed < p->nparts) {
		enum s3_class c = ctl_check(&p->x->u->ctl);
		if (c != S3_OK)
			return stopped(p->x, c, st);
		if ((c = mpu_fill(p, st)) != S3_OK || (c = mpu_tend(p, st)) != S3_OK)
			return c;
		curl_multi_perform(p->x->mh, &running);
		if ((c = mpu_reap(p, st)) != S3_OK)
			return c;
		int wait = mpu_wait_ms(p);
		if (wait > 0)
			curl_multi_poll(p->x->mh, NULL, 0, wait, NULL);
	}
	return S3_OK;
}

char *s3_complete_xml(const char (*etags)[S3_ETAG_ROOM], int nparts, size_t *len)
{
	char *xml = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&xml, &n);
	if (!f)
		return NULL;
	fputs("<CompleteMultipartUpload>", f);
	for (int i = 0; i < nparts; i++) {
		fprintf(f, "<Part><PartNumber>%d</PartNumber><ETag>\"", i + 1);
		for (const char *e = etags[i]; *e; e++)
			if (*e == '&' || *e == '<' || *e == '>')
				fputs(*e == '&' ? "&amp;" : *e == '<' ? "&lt;" : "&gt;", f);
			else
				fputc(*e, f);
		fputs("\"</ETag></Part>", f);
	}
	fputs("</CompleteMultipartUpload>", f);
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		free(xml);
		return NULL;
	}
	*len = n;
	return xml;
}

/* After a lost answer, a retried Complete finds no upload: it was done if the
 * object is there with its size. */
static enum s3_class mpu_completed(struct mpu *p, struct s3_status *st)
{
	const struct s3_upload *u = p->x->u;
	struct s3_status hs;
	uint64_t size = 0;
	if (strcmp(st->code, "NoSuchUpload") != 0 ||
	    s3_head(u->srv, u->bucket, u->key, &u->ctl, &size, NULL, &hs) < 0 || size != u->size)
		return st->cls;
	p->id[0] = '\0';
	return S3_OK;
}

/* A Complete retried after its answer was lost finds the upload gone: AWS
 * answers NoSuchUpload, s3rver 500 InternalError (a temporary failure, so
 * it would be retried until the request expires). Done if the object is
 * there with its size. */
static int mpu_landed(void *arg)
{
	struct mpu *p = arg;
	const struct s3_upload *u = p->x->u;
	struct s3_status hs;
	uint64_t size = 0;
	return s3_head(u->srv, u->bucket, u->key, &u->ctl, &size, NULL, &hs) == 0 &&
	    size == u->size;
}

void s3_multipart_etag(const unsigned char (*md5s)[16], int nparts, char out[S3_ETAG_ROOM])
{
	unsigned char raw[16];
	md5 *m = md5_new();
	if (!m) {
		out[0] = '\0';
		return;
	}
	for (int i = 0; i < nparts; i++)
		md5_update(m, md5s[i], sizeof md5s[i]);
	md5_final_raw(m, raw);
	md5_free(m);
	util_hex(raw, sizeof raw, out);
	snprintf(out + 32, S3_ETAG_ROOM - 32, "-%d", nparts);
}

/* 1 if e has the shape of AWS's multipart ETag: 32 hex digits, "-", a count */
static int aws_multipart_shape(const char *e)
{
	size_t n = strlen(e);
	return n > 33 && strspn(e, "0123456789abcdefABCDEF") == 32 && e[32] == '-' &&
	    strspn(e + 33, "0123456789") == n - 33;
}

/* The completed object is what was sent: its ETag, from the Complete's
 * answer (or a HEAD when that answer was lost), is AWS's md5 of the parts'
 * md5s with their count, or the md5 of the whole (s3rver). Any other ETag
 * (SSE, other servers) cannot be checked. A wrong one: the object goes. */
static enum s3_class mpu_verify(struct mpu *p, const struct req *q, struct s3_status *st)
{
	const struct s3_upload *u = p->x->u;
	char got[S3_ETAG_ROOM + 16], want[S3_ETAG_ROOM];
	struct s3_status hs;
	uint64_t size = 0;
	int n = s3_xml_value(q->resp, q->resplen, "ETag", got, sizeof got);
	if (q->sse)
		return S3_OK;
	if (n <= 0 && s3_head(u->srv, u->bucket, u->key, &u->ctl, &size, got, &hs) < 0)
		return S3_OK;   /* unchecked: the sizes of the parts were */
	size_t k = strlen(got);
	char *e = got + (k >= 2 && got[0] == '"' && got[k - 1] == '"');
	if (e != got)
		got[k - 1] = '\0';
	s3_multipart_etag((const unsigned char (*)[16])p->md5s, p->nparts, want);
	if (aws_multipart_shape(e) ? strcmp(e, want) == 0 :
	    !util_is_hex(e, 32) || md5_equal(e, p->x->r->md5))
		return S3_OK;
	status_set(st, S3_MISMATCH, "CompleteMultipartUpload: S3 stored ETag %.*s, expected %s",
	    s3_etag_ok(e) ? 64 : 0, e, aws_multipart_shape(e) ? want : p->x->r->md5);
	put_discard(p->x);
	return S3_MISMATCH;
}

static enum s3_class mpu_complete(struct mpu *p, struct s3_status *st)
{
	const struct s3_upload *u = p->x->u;
	char query[3100];
	size_t len = 0;
	char *xml = s3_complete_xml((const char (*)[S3_ETAG_ROOM])p->etags, p->nparts, &len);
	struct req *q = malloc(sizeof *q);
	enum s3_class c = S3_PERMANENT;
	snprintf(query, sizeof query, "uploadId=%s", p->qid);
	struct spec s = { .op = "CompleteMultipartUpload", .method = "POST", .bucket = u->bucket,
	    .key = u->key, .query = query, .body = xml, .len = len,
	    .content_type = "application/xml" };
	if (!xml || !q) {
		status_set(st, c, "CompleteMultipartUpload: %s", strerror(ENOMEM));
	} else {
		p->x->landed = mpu_landed;
		p->x->landed_arg = p;
		if ((c = up_request(p->x, &s, q, 1, st)) == S3_OK) {
			p->id[0] = '\0';
			c = mpu_verify(p, q, st);
		} else if (c == S3_PERMANENT)
			c = mpu_completed(p, st);
		p->x->landed = NULL;
		req_close(q);
	}
	free(q);
	free(xml);
	return c;
}

static int mpu_abort(struct mpu *p)
{
	const struct s3_upload *u = p->x->u;
	char query[3100];
	snprintf(query, sizeof query, "uploadId=%s", p->qid);
	struct spec s = { .op = "AbortMultipartUpload", .method = "DELETE", .bucket = u->bucket,
	    .key = u->key, .query = query };
	for (int i = 0; i < p->nslots; i++)
		if (p->slots[i].busy) {
			curl_multi_remove_handle(p->x->mh, p->slots[i].q.h);
			p->slots[i].busy = 0;
		}
	return up_cleanup(p->x, &s);
}

/* Abort the upload; the caller forgets it once aborted (else it is left
 * for the janitor of the next attempt, s3resume_sweep). */
static void mpu_drop(struct mpu *p)
{
	const struct s3_resume *rs = p->x->u->resume;
	if (mpu_abort(p) == 0 && rs && rs->ended)
		rs->ended(rs->arg, p->id);
	p->id[0] = '\0';
}

/* One <Part> of a ListParts answer: mark it had when the earlier attempt
 * journaled it with the same ETag and size. */
static void mpu_listed(struct mpu *p, const char *part, size_t len)
{
	const struct s3_resume *rs = p->x->u->resume;
	char num[16], size[24], etag[S3_ETAG_ROOM + 8];
	if (s3_xml_value(part, len, "PartNumber", num, sizeof num) <= 0 ||
	    s3_xml_value(part, len, "Size", size, sizeof size) <= 0 ||
	    s3_xml_value(part, len, "ETag", etag, sizeof etag) <= 0)
		return;
	char *e = etag;
	size_t n = strlen(e);
	if (n >= 2 && e[0] == '"' && e[n - 1] == '"')
		e[n - 1] = '\0', e++;
	long k = strtol(num, NULL, 10);
	for (int i = 0; k >= 1 && k <= p->nparts && i < rs->nparts; i++) {
		const struct s3_resume_part *jp = &rs->parts[i];
		if (jp->num == k && strcasecmp(jp->etag, e) == 0 &&
		    strtoull(size, NULL, 10) == jp->size) {
			p->have[k - 1] = i + 1;
			return;
		}
	}
}

/* ListParts of p->id, a page of 50 at a time (they fit an answer's buffer). */
static enum s3_class mpu_list(struct mpu *p, struct s3_status *st)
{
	const struct s3_upload *u = p->x->u;
	char query[3300], marker[16] = "0";
	for (;;) {
		struct req *q = malloc(sizeof *q);
		if (!q)
			return status_set(st, S3_PERMANENT, "ListParts: %s", strerror(ENOMEM)), st->cls;
		snprintf(query, sizeof query, "max-parts=50&part-number-marker=%s&uploadId=%s", marker,
		    p->qid);
		struct spec s = { .op = "ListParts", .method = "GET", .bucket = u->bucket,
		    .key = u->key, .query = query };
		enum s3_class c = up_request(p->x, &s, q, 1, st);
		char more[8] = "";
		if (c == S3_OK) {
			const char *at = q->resp, *end = q->resp + q->resplen, *a, *b;
			while ((a = find(at, (size_t)(end - at), "<Part>")) &&
			    (b = find(a, (size_t)(end - a), "</Part>"))) {
				mpu_listed(p, a, (size_t)(b - a));
				at = b;
			}
			s3_xml_value(q->resp, q->resplen, "IsTruncated", more, sizeof more);
			if (s3_xml_value(q->resp, q->resplen, "NextPartNumberMarker", marker,
			    sizeof marker) <= 0 || strspn(marker, "0123456789") != strlen(marker))
				more[0] = '\0';
		}
		req_close(q);
		free(q);
		if (c != S3_OK || strcmp(more, "true") != 0)
			return c;
	}
}

/* The earlier attempt's upload, when there is one to resume: p->id set,
 * and p->have the parts S3 still has. Otherwise (none, another part size,
 * or S3 does not know it any more) p->id stays empty. */
static enum s3_class mpu_resume(struct mpu *p, struct s3_status *st)
{
	struct up *x = p->x;
	const struct s3_resume *rs = x->u->resume;
	if (!rs || !rs->upload_id || !*rs->upload_id || x->resume_spent)
		return S3_OK;
	x->resume_spent = 1;
	if (util_strlcpy(p->id, rs->upload_id, sizeof p->id) >= sizeof p->id ||
	    s3_query_encode(p->id, p->qid, sizeof p->qid) < 0) {
		p->id[0] = '\0';
		return S3_OK;
	}
	if (rs->part_size != x->psize) {
		note(x, "upload %.64s has parts of %llu bytes, not %llu: starting again", p->id,
		    (unsigned long long)rs->part_size, (unsigned long long)x->psize);
		mpu_drop(p);
		return S3_OK;
	}
	if (!(p->have = calloc((size_t)p->nparts, sizeof *p->have)))
		return status_set(st, S3_PERMANENT, "ListParts: %s", strerror(ENOMEM)), st->cls;
	enum s3_class c = mpu_list(p, st);
	if (c == S3_TEMPORARY || c == S3_STOPPED || c == S3_EXPIRED)
		return c;
	if (c != S3_OK) {
		note(x, "upload %.64s cannot be resumed (%s): starting again", p->id, st->message);
		free(p->have);
		p->have = NULL;
		mpu_drop(p);
		return S3_OK;
	}
	int had = 0;
	for (int i = 0; i < p->nparts; i++)
		had += p->have[i] != 0;
	note(x, "resuming upload %.64s: %d of %d parts already there", p->id, had, p->nparts);
	return S3_OK;
}

static enum s3_class put_multipart(struct up *x, struct s3_status *st)
{
	struct mpu *p = mpu_new(x);
	enum s3_class c;
	if (!p && (c = ctl_check(&x->u->ctl)) != S3_OK)
		return stopped(x, c, st);
	if (!p) {
		status_set(st, S3_PERMANENT, "no memory for %d parts of %llu bytes", x->u->parallel,
		    (unsigned long long)x->psize);
		return st->cls;
	}
	x->r->parts = p->nparts;
	const struct s3_resume *rs = x->u->resume;
	c = mpu_resume(p, st);
	if (c == S3_OK && !*p->id && (c = mpu_create(p, st)) == S3_OK && rs && rs->created &&
	    rs->created(rs->arg, p->id, x->psize) < 0)
		note(x, "CreateMultipartUpload: unable to keep upload %.64s for a resume", p->id);
	if (c == S3_OK && x->u->source && x->u->source->rewind(x->u->source->arg) < 0)
		status_set(st, c = S3_PERMANENT, "%s", x->u->source->error(x->u->source->arg));
	if (c == S3_OK)
		c = mpu_parts(p, st);
	char id[sizeof p->id];
	util_strlcpy(id, p->id, sizeof id);
	if (c == S3_OK)
		c = mpu_complete(p, st);
	if (c == S3_OK && rs && rs->ended)
		rs->ended(rs->arg, id);
	/* kept for the next attempt when stopped or given up for now */
	else if (c != S3_OK && *p->id && !(rs && (c == S3_STOPPED || c == S3_TEMPORARY)))
		mpu_drop(p);
	mpu_free(p);
	return c;
}

/* ---- the whole upload ---- */

/* The part size: S3 takes at most 10,000 parts, of at most 5 GiB. */
static uint64_t part_size(const struct s3_upload *u)
{
	uint64_t ps = u->part_size < 5242880 ? 5242880 : u->part_size;
	uint64_t need = (u->size + MAX_PARTS - 1) / MAX_PARTS;
	if (ps > MAX_PUT)
		ps = MAX_PUT;
	if (u->size > ps && ps < need)
		ps = (need + 1048575) / 1048576 * 1048576;
	return ps;
}

/* The biggest object sent in one PUT: the threshold, else the part size;
 * never above S3's 5 GiB. */
static uint64_t single_max(const struct up *x)
{
	uint64_t t = x->u->threshold ? x->u->threshold : x->psize;
	return t > MAX_PUT ? MAX_PUT : t;
}

static enum s3_class up_open(struct up *x, struct s3_status *st)
{
	const struct s3_upload *u = x->u;
	unsigned char raw[16];
	struct stat sb;
	if (u->md5 && (!util_is_hex(u->md5, 32) ||
	    sodium_hex2bin(raw, sizeof raw, u->md5, 32, NULL, NULL, NULL)))
		return status_set(st, S3_PERMANENT, "bad md5: %.40s", u->md5), st->cls;
	if (u->md5)
		sodium_bin2base64(x->b64, sizeof x->b64, raw, sizeof raw,
		    sodium_base64_VARIANT_ORIGINAL);
	if (u->source)
		sb.st_size = (off_t)u->size;
	else if ((x->fd = open(u->path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(x->fd, &sb) < 0)
		return status_set(st, S3_PERMANENT, "unable to open %s: %s", u->path,
		    strerror(errno)), st->cls;
	if ((uint64_t)sb.st_size != u->size)
		return status_set(st, S3_MISMATCH, "the file has %lld bytes, expected %llu",
		    (long long)sb.st_size, (unsigned long long)u->size), st->cls;
	if (!(x->mh = curl_multi_init()))
		return status_set(st, S3_PERMANENT, "%s", strerror(ENOMEM)), st->cls;
	curl_multi_setopt(x->mh, CURLMOPT_MAX_HOST_CONNECTIONS, (long)u->parallel + 1);
	x->psize = part_size(u);
	return S3_OK;
}

int s3_abort_upload(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const char *upload_id, const struct s3_ctl *ctl, struct s3_status *st)
{
	char qid[3072], query[3100];
	if (s3_query_encode(upload_id, qid, sizeof qid) < 0) {
		status_set(st, S3_PERMANENT, "AbortMultipartUpload: upload id too long");
		return -1;
	}
	snprintf(query, sizeof query, "uploadId=%s", qid);
	struct spec s = { .op = "AbortMultipartUpload", .method = "DELETE", .bucket = bucket,
	    .key = key, .query = query };
	struct req *q = malloc(sizeof *q);
	if (!q) {
		status_set(st, S3_PERMANENT, "AbortMultipartUpload: %s", strerror(ENOMEM));
		return -1;
	}
	one_shot(srv, &s, q, ctl, st);
	free(q);
	if (st->cls != S3_OK && strcmp(st->code, "NoSuchUpload") == 0)
		st->cls = S3_OK;
	return st->cls == S3_OK ? 0 : -1;
}

int s3_upload_file(const struct s3_upload *u, struct s3_upload_result *r)
{
	struct up x = { .u = u, .r = r, .fd = -1 };
	struct s3_status st = { .cls = S3_OK };
	enum s3_class c = S3_PERMANENT;
	memset(r, 0, sizeof *r);
	if (sodium_init() < 0)
		status_set(&st, c, "libsodium: unable to start");
	else
		c = up_open(&x, &st);
	for (int attempt = 1; c == S3_OK; attempt++) {
		c = u->size <= single_max(&x) ? put_single(&x, &st) : put_multipart(&x, &st);
		if (c != S3_MISMATCH || attempt == SUM_ATTEMPTS)
			break;
		note(&x, "%s; uploading again (%d of %d)", st.message, attempt + 1, SUM_ATTEMPTS);
		r->retries++;
		c = S3_OK;
	}
	if (c == S3_OK)
		progress(&x, (int64_t)u->size, 1);
	r->cls = c;
	util_strlcpy(r->message, c == S3_OK ? "" : st.message, sizeof r->message);
	if (x.mh)
		curl_multi_cleanup(x.mh);
	if (x.fd >= 0)
		close(x.fd);
	return c == S3_OK ? 0 : -1;
}
