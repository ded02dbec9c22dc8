/* response: response bodies and headers (see response.h). Bodies are
 * written by hand, not by cJSON, so their size is known before writing and a
 * cut can land on a character boundary outside any escape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "response.h"
#include "util.h"

#define ELLIPSIS "\xE2\x80\xA6"
#define REPLACEMENT "\xEF\xBF\xBD"

struct field {
	const char *key;
	const char *val;     /* NULL = omitted */
	size_t len;          /* bytes of val written */
	int cut;             /* append "…" */
};

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2
	    : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
	return len && len <= n && util_utf8_valid((const char *)s, len) ? len : 0;
}

/* The JSON text of the character at s: its escape, its bytes, or U+FFFD.
 * *used is the source bytes it stands for. */
static size_t json_char(const unsigned char *s, size_t n, char out[8], size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	static const char *const named[0x20] = {
		['\b'] = "\\b", ['\f'] = "\\f", ['\n'] = "\\n", ['\r'] = "\\r", ['\t'] = "\\t",
	};
	size_t k = utf8_seq(s, n);
	*used = k ? k : 1;
	if (!k) {
		memcpy(out, REPLACEMENT, 3);
		return 3;
	}
	if (s[0] == '"' || s[0] == '\\') {
		out[0] = '\\';
		out[1] = (char)s[0];
		return 2;
	}
	if (s[0] < 0x20 && named[s[0]]) {
		memcpy(out, named[s[0]], 2);
		return 2;
	}
	if (s[0] < 0x20) {
		memcpy(out, "\\u00", 4);
		out[4] = hex[s[0] >> 4];
		out[5] = hex[s[0] & 15];
		return 6;
	}
	memcpy(out, s, k);
	return k;
}

/* Escaped length of the first n bytes of s; with budget, shrink *n to the
 * longest whole-character prefix that fits in it. */
static size_t json_len(const char *str, size_t *n, size_t budget)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, total = 0, used, w;
	char tmp[8];
	while (i < *n) {
		w = json_char(s + i, *n - i, tmp, &used);
		if (total + w > budget)
			break;
		total += w;
		i += used;
	}
	*n = i;
	return total;
}

/* JSON bytes of the value of f, quotes excluded */
static size_t value_len(const struct field *f)
{
	size_t n = f->len;
	return json_len(f->val, &n, (size_t)-1) + (f->cut ? strlen(ELLIPSIS) : 0);
}

static size_t body_len(const struct field *f, size_t nf)
{
	size_t total = 2, count = 0;   /* {} */
	for (size_t i = 0; i < nf; i++)
		if (f[i].val)
			total += (count++ ? 1 : 0) + strlen(f[i].key) + 5 + value_len(&f[i]);
	return total;
}

/* Give up over bytes of f's value, ending it with "…"; if even "…" does not
 * fit, leave "" (which may not be enough: the caller checks). */
static void shrink(struct field *f, size_t over)
{
	size_t have = value_len(f), keep = strlen(ELLIPSIS) + over;
	if (!f->val)
		return;
	if (have < keep) {
		f->len = 0;
		f->cut = 0;
		return;
	}
	json_len(f->val, &f->len, have - keep);
	f->cut = 1;
}

static char *write_body(const struct field *f, size_t nf, size_t total)
{
	char *out = malloc(total + 1), *p = out, tmp[8];
	size_t used;
	if (!out)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < nf; i++) {
		if (!f[i].val)
			continue;
		p += strlen(strcpy(p, p - out > 1 ? ",\"" : "\""));
		p += strlen(strcpy(p, f[i].key));
		p += strlen(strcpy(p, "\":\""));
		for (size_t j = 0; j < f[i].len; j += used) {
			size_t w = json_char((const unsigned char *)f[i].val + j, f[i].len - j, tmp, &used);
			memcpy(p, tmp, w);
			p += w;
		}
		if (f[i].cut)
			p += strlen(strcpy(p, ELLIPSIS));
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	return out;
}

/* The body of the fields f (response_body's six, in its order, then any
 * extensions), cut to fit as response_body says. */
static char *build(struct field *f, size_t nf)
{
	/* Cut the message first. A valid correlationId (<= 255 UTF-16 units,
	 * so <= 1530 bytes even if all \u00XX escapes) fits with any status,
	 * errorType, url and md5 ferry builds; only a DENIED answer to an
	 * over-255 correlationId can need its echo cut too. */
	struct field *cuts[] = { &f[3], &f[0] };
	for (size_t i = 0; i < nf; i++)
		f[i].len = f[i].val ? strlen(f[i].val) : 0;
	size_t total = body_len(f, nf);
	for (size_t i = 0; i < 2 && total > RESPONSE_MAX; i++) {
		shrink(cuts[i], total - RESPONSE_MAX);
		total = body_len(f, nf);
	}
	if (total > RESPONSE_MAX) {
		errno = EMSGSIZE;
		return NULL;
	}
	char *out = write_body(f, nf, total);
	if (!out)
		errno = ENOMEM;
	return out;
}

char *response_body(const char *cid, const char *status, const char *message,
    const char *error_type, const char *url, const char *md5)
{
	struct field f[] = {
		{ "correlationId", cid, 0, 0 }, { "status", status, 0, 0 },
		{ "errorType", error_type, 0, 0 }, { "message", message, 0, 0 },
		{ "url", url, 0, 0 }, { "md5", md5, 0, 0 },
	};
	return build(f, sizeof f / sizeof *f);
}

char *response_body_done(const char *cid, const char *url, const char *md5,
    const char *download_url, int *dropped)
{
	struct field f[] = {
		{ "correlationId", cid, 0, 0 }, { "status", "DONE", 0, 0 },
		{ "errorType", NULL, 0, 0 }, { "message", NULL, 0, 0 },
		{ "url", url, 0, 0 }, { "md5", md5, 0, 0 },
		{ "downloadUrl", download_url, 0, 0 },
	};
	size_t nf = sizeof f / sizeof *f;
	/* nothing of a DONE body is cut for the sake of downloadUrl: it goes */
	for (size_t i = 0; i < nf; i++)
		f[i].len = f[i].val ? strlen(f[i].val) : 0;
	int drop = download_url && body_len(f, nf) > RESPONSE_MAX;
	if (drop)
		f[nf - 1].val = NULL;
	if (dropped)
		*dropped = drop;
	return build(f, nf);
}

/* s as valid UTF-8 (invalid bytes as U+FFFD), at most max bytes, malloc'd */
static char *utf8_dup(const char *str, size_t max)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), o = 0;
	char *out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; ) {
		size_t k = utf8_seq(s + i, n - i), w = k ? k : 3;
		if (o + w > max)
			break;
		memcpy(out + o, k ? (const char *)s + i : REPLACEMENT, w);
		o += w;
		i += k ? k : 1;
	}
	out[o] = '\0';
	return out;
}

static int add_string(cJSON *obj, const char *key, const char *s, size_t max)
{
	char *clean = utf8_dup(s, max);
	int ok = clean && cJSON_AddStringToObject(obj, key, clean);
	free(clean);
	return ok ? 0 : -1;
}

/* an AMQP priority: an integer 0..255 */
static int priority_ok(const cJSON *v)
{
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 255 &&
	    v->valuedouble == (double)(int)v->valuedouble;
}

char *response_headers(const char *tenant, const cJSON *item_headers)
{
	const cJSON *prio = cJSON_GetObjectItemCaseSensitive(item_headers, "priority");
	const cJSON *app = cJSON_GetObjectItemCaseSensitive(item_headers, "app_id");
	cJSON *h = cJSON_CreateObject();
	char *out = NULL;
	int rc = h ? 0 : -1;
	if (rc == 0 && tenant)
		rc = add_string(h, "regards.tenant", tenant, RESPONSE_HEADER_MAX);
	if (rc == 0 && priority_ok(prio))
		rc = cJSON_AddNumberToObject(h, "priority", prio->valuedouble) ? 0 : -1;
	if (rc == 0 && cJSON_IsString(app) && app->valuestring[0])
		rc = add_string(h, "app_id", app->valuestring, RESPONSE_HEADER_MAX);
	if (rc == 0)
		out = cJSON_PrintUnformatted(h);
	cJSON_Delete(h);
	if (!out)
		errno = ENOMEM;
	return out;
}

int response_props_from_env(struct response_props *p, char *err, size_t errlen)
{
	const char *app = util_env("FERRY_APP_ID", RESPONSE_APP_ID);
	const char *prio = util_env("FERRY_RESPONSE_PRIORITY", "1");
	const char *cid = util_env("FERRY_RESPONSE_CORRELATION_ID", "1");
	size_t n = strlen(app);
	for (size_t i = 0; i < n; i++)
		if (app[i] < 0x20 || app[i] > 0x7e)
			n = 0;
	if (n == 0 || n > 255) {
		snprintf(err, errlen, "FERRY_APP_ID: not 1 to 255 printable ASCII characters");
		return -1;
	}
	p->app_id = app;
	if (strcmp(prio, "request") == 0) {
		p->priority = -1;
	} else {
		char *end;
		long v = strtol(prio, &end, 10);
		if (*end || end == prio || v < 0 || v > 255 || prio[0] == '-' || prio[0] == '+' ||
		    prio[0] == ' ') {
			snprintf(err, errlen, "FERRY_RESPONSE_PRIORITY: %.40s is not 0 to 255 or \"request\"",
			    prio);
			return -1;
		}
		p->priority = (int)v;
	}
	if (strcmp(cid, "0") != 0 && strcmp(cid, "1") != 0) {
		snprintf(err, errlen, "FERRY_RESPONSE_CORRELATION_ID: %.40s is not 0 or 1", cid);
		return -1;
	}
	p->correlation_id = cid[0] == '1';
	return 0;
}

int response_priority(const struct response_props *p, const cJSON *outbox_headers)
{
	if (p->priority >= 0)
		return p->priority;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(outbox_headers, "priority");
	return priority_ok(v) ? v->valueint : -1;
}

/* java.net.URI's L_PATH/H_PATH: the ASCII a path keeps as it is */
static int path_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c && strchr("-_.!~*'(),;:$&+=@/", c) != NULL);
}

/* Character.isSpaceChar or isISOControl, for a code point over 0x7f */
static int java_quoted(unsigned long cp)
{
	return cp <= 0x9f || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	    cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

int response_s3_url(const char *bucket, const char *key, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	int n = snprintf(out, outlen, "s3://%s/", bucket);
	if (n < 0 || (size_t)n >= outlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	size_t o = (size_t)n;
	const unsigned char *k = (const unsigned char *)key;
	size_t len = strlen(key);
	for (size_t i = 0; i < len;) {
		size_t seq = utf8_seq(k + i, len - i);
		int quote;
		if (seq == 0) {
			quote = 1, seq = 1;
		} else if (seq == 1) {
			quote = !path_char(k[i]);
		} else {
			unsigned long cp = k[i] & (0x7f >> seq);
			for (size_t b = 1; b < seq; b++)
				cp = cp << 6 | (k[i + b] & 0x3f);
			quote = java_quoted(cp);
		}
		if (o + (quote ? 3 * seq : seq) >= outlen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		for (size_t b = 0; b < seq; b++) {
			if (quote) {
				out[o++] = '%';
				out[o++] = hex[k[i + b] >> 4];
				out[o++] = hex[k[i + b] & 15];
			} else {
				out[o++] = (char)k[i + b];
			}
		}
		i += seq;
	}
	out[o] = '\0';
	return 0;
}
