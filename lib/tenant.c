/* tenant: load and validate one tenant's settings (see tenant.h). One table
 * of known keys per JSON object says each key's checker and where its value
 * goes; messages name the file and the key, never a secret. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "item.h"
#include "jwt.h"
#include "tenant.h"
#include "util.h"

enum { MAX_FILE = 1 << 20, SHOW_MAX = 64 };
#define MAX_INT 9007199254740992.0       /* 2^53: integers a double holds exactly */
#define MAX_TTL_HOURS 876000.0           /* 100 years: keeps expiresAt in range */

/* The seal key pair, read from its file at the first sealed value of a parse. */
struct seal {
	int state;                   /* 0 not read yet, 1 read, -1 unusable */
	unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
	char why[320];               /* when unusable: the file and the reason */
};

struct ctx {
	const char *path;
	tenant_warn_fn *warn;
	void *warnarg;
	char *err;
	size_t errlen;
	struct seal *seal;           /* NULL: no sealed value may be opened */
};

struct rule;
/* 0 stored; -1 bad value (the caller says what the key must be); -2 already
 * reported */
typedef int rule_fn(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst);

struct rule {
	const char *key;
	rule_fn *set;
	size_t off;                  /* the field the value goes to */
	size_t off_n;                /* arrays: the field of their length */
	uint64_t min, max;           /* integers */
	int (*ok)(const char *s);    /* strings and array elements */
	const char *must;            /* "<key>: must be <must>" */
	int required;
	int secret;                  /* never show the value */
};

static int fail(const struct ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(const struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n = c->errlen ? snprintf(c->err, c->errlen, "%s: ", c->path) : 0;
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	/* one line, whatever a quoted value holds (a path with a newline) */
	for (char *p = c->err; c->errlen && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	errno = EINVAL;
	return -1;
}

static int nomem(const struct ctx *c)
{
	fail(c, "out of memory");
	errno = ENOMEM;
	return -2;
}

static void free_secret(char *s)
{
	if (s)
		sodium_memzero(s, strlen(s));
	free(s);
}

static void free_strv(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* ---- checks of strings ---- */

static int nonempty(const char *s) { return s[0] != '\0'; }
static int absolute(const char *s) { return s[0] == '/'; }
static int any_string(const char *s) { (void)s; return 1; }

static int scheme_ok(const char *s)
{
	return strcmp(s, "http") == 0 || strcmp(s, "https") == 0;
}

/* S3 bucket naming: 3..63 of [a-z0-9.-], starting and ending with a letter
 * or digit, no ".." */
static int bucket_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > 63 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' ||
	    s[n - 1] == '-' || strstr(s, ".."))
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

/* ---- setters, one per kind of value ---- */

static int get_uint(const cJSON *v, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= MAX_INT))
		return -1;
	uint64_t n = (uint64_t)v->valuedouble;
	if ((double)n != v->valuedouble || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int set_u64(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	(void)c;
	return get_uint(v, k->min, k->max, dst);
}

static int set_int(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	uint64_t n;
	(void)c;
	if (get_uint(v, k->min, k->max, &n) < 0)
		return -1;
	*(int *)dst = (int)n;
	return 0;
}

static int set_hours(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	(void)c, (void)k;
	if (!cJSON_IsNumber(v) || !(v->valuedouble > 0 && v->valuedouble <= MAX_TTL_HOURS))
		return -1;
	*(double *)dst = v->valuedouble;
	return 0;
}

/* ---- sealed secrets: "sealed:<base64>", a crypto_box_seal to the seal key ---- */

static int sealed(const char *s)
{
	return strncmp(s, TENANT_SEALED, sizeof TENANT_SEALED - 1) == 0;
}

const char *tenant_seal_key_path(void)
{
	const char *file = getenv("FERRY_SEAL_KEY");
	return file && *file ? file : TENANT_SEAL_KEY;
}

int tenant_seal_key(const char *file, unsigned char pk[32], unsigned char sk[32],
    char *err, size_t errlen)
{
	char line[256];
	const char *why = NULL;
	struct stat st;
	size_t n = 0, len = 0;
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (sodium_init() < 0)
		why = "libsodium: unable to start";
	else if (fd < 0 || fstat(fd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_mode & 077)
		why = "group or others have access to it; chmod 600 it";
	else if ((n = (size_t)read(fd, line, sizeof line - 1)) > sizeof line ||
	    sodium_base642bin(sk, 32, line, n, " \t\r\n", &len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || len != 32)
		why = "not one line of a 32-byte key in base64 (ferry-seal -g makes one)";
	sodium_memzero(line, sizeof line);
	if (fd >= 0)
		close(fd);
	if (why) {
		sodium_memzero(sk, 32);
		snprintf(err, errlen, "seal key %s: %s", file, why);
		errno = EINVAL;
		return -1;
	}
	crypto_scalarmult_base(pk, sk);
	return 0;
}

static void seal_read(struct seal *s)
{
	const char *file = tenant_seal_key_path();
	s->state = tenant_seal_key(file, s->pk, s->sk, s->why, sizeof s->why) < 0 ? -1 : 1;
	if (s->state > 0)
		snprintf(s->why, sizeof s->why, "seal key %s", file);
}

/* b64 opened with the seal key into a malloc'd string at dst; 0, or -2
 * with the reason (never the value) */
static int open_sealed(const struct ctx *c, const struct rule *k, const char *b64, void *dst)
{
	size_t n = strlen(b64), clen = 0;
	if (!c->seal)
		return fail(c, "%s: sealed values are not opened here", k->key), -2;
	if (c->seal->state == 0)
		seal_read(c->seal);
	if (c->seal->state < 0)
		return fail(c, "%s: sealed, but %s", k->key, c->seal->why), -2;
	unsigned char *box = malloc(n + 1);
	if (!box)
		return nomem(c);
	if (sodium_base642bin(box, n + 1, b64, n, NULL, &clen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || clen <= crypto_box_SEALBYTES) {
		free(box);
		return fail(c, "%s: sealed value is not the base64 of a sealed box", k->key), -2;
	}
	size_t plen = clen - crypto_box_SEALBYTES;
	unsigned char *p = malloc(plen + 1);
	int bad = !p ? -1 : crypto_box_seal_open(p, box, clen, c->seal->pk, c->seal->sk);
	free(box);
	if (!p)
		return nomem(c);
	p[plen] = '\0';
	if (bad || memchr(p, '\0', plen) || !k->ok((char *)p)) {
		sodium_memzero(p, plen);
		free(p);
		return fail(c, "%s: sealed value %s with the %s", k->key, bad ? "cannot be opened" :
		    "is not a usable value once opened", c->seal->why), -2;
	}
	*(char **)dst = (char *)p;
	return 0;
}

static int set_str(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	if (cJSON_IsString(v) && k->secret && sealed(v->valuestring))
		return open_sealed(c, k, v->valuestring + sizeof TENANT_SEALED - 1, dst);
	if (!cJSON_IsString(v) || !k->ok(v->valuestring))
		return -1;
	char *s = strdup(v->valuestring);
	if (!s)
		return nomem(c);
	*(char **)dst = s;
	return 0;
}

static int set_str_or_null(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	return cJSON_IsNull(v) ? 0 : set_str(c, k, v, dst);
}

static int set_strv(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	if (!cJSON_IsArray(v))
		return -1;
	size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
	for (const cJSON *e = v->child; e; e = e->next)
		if (!cJSON_IsString(e) || !k->ok(e->valuestring))
			return -1;
	char **a = calloc(n + 1, sizeof *a);
	if (!a)
		return nomem(c);
	for (const cJSON *e = v->child; e; e = e->next, i++)
		if (!(a[i] = strdup(e->valuestring))) {
			free_strv(a);
			return nomem(c);
		}
	*(char ***)dst = a;
	*(size_t *)((char *)dst - k->off + k->off_n) = n;
	return 0;
}

/* An access list (users, allowed_hosts, source_buckets): absent or []
 * allows nothing, ["*"] anything. A "*" among other entries could be read
 * either way: refused. */
static int set_access(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	const cJSON *e = cJSON_IsArray(v) ? v->child : NULL;
	int any = 0;
	for (; e; e = e->next)
		any |= cJSON_IsString(e) && strcmp(e->valuestring, TENANT_ANY) == 0;
	if (any && cJSON_GetArraySize(v) > 1)
		return fail(c, "%s: \"*\" (any) must be its only entry", k->key), -2;
	struct rule r = *k;
	if (any)
		r.ok = any_string;
	return set_strv(c, &r, v, dst);
}

static int set_compression(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	static const struct { const char *name; enum tenant_compression val; } names[] = {
		{ "auto", TENANT_COMP_AUTO },
		{ "store", TENANT_COMP_STORE },
		{ "deflate", TENANT_COMP_DEFLATE },
	};
	(void)c, (void)k;
	for (size_t i = 0; cJSON_IsString(v) && i < sizeof names / sizeof names[0]; i++)
		if (strcmp(v->valuestring, names[i].name) == 0) {
			*(enum tenant_compression *)dst = names[i].val;
			return 0;
		}
	return -1;
}

static int set_s3(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst);
static int set_rsorder(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst);
static int set_order_secret_file(const struct ctx *c, const struct rule *k, const cJSON *v,
    void *dst);
static int set_admin_secret_file(const struct ctx *c, const struct rule *k, const cJSON *v,
    void *dst);
static int set_rsadmin(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst);

static int backend_ok(const char *s)
{
	return !strcmp(s, "catalog") || !strcmp(s, "order_command") || !strcmp(s, "rs-order");
}

static int http_url_ok(const char *s)
{
	return (!strncmp(s, "http://", 7) && s[7]) || (!strncmp(s, "https://", 8) && s[8]);
}

#define T(field) offsetof(tenant, field)
#define S(field) offsetof(struct tenant_s3, field)
#define R(field) offsetof(struct tenant_rsorder, field)
#define A(field) offsetof(struct tenant_rsadmin, field)

static const struct rule s3_rules[] = {
	{ "scheme", set_str, S(scheme), 0, 0, 0, scheme_ok, "\"http\" or \"https\"", 0, 0 },
	{ "host", set_str, S(host), 0, 0, 0, nonempty, "a non-empty string", 1, 0 },
	{ "port", set_int, S(port), 0, 1, 65535, NULL, "an integer from 1 to 65535", 0, 0 },
	{ "region", set_str, S(region), 0, 0, 0, nonempty, "a non-empty string", 0, 0 },
	{ "key", set_str, S(key), 0, 0, 0, nonempty, "a non-empty string", 1, 1 },
	{ "secret", set_str, S(secret), 0, 0, 0, nonempty, "a non-empty string", 1, 1 },
	{ NULL, NULL, 0, 0, 0, 0, NULL, NULL, 0, 0 },
};

/* jwt_secret and jwt_secret_file both go to jwt_secret: apply() refuses
 * the two together (set_rsorder) */
static const struct rule rsorder_rules[] = {
	{ "url", set_str, R(url), 0, 0, 0, http_url_ok, "an http:// or https:// URL", 1, 0 },
	{ "jwt_secret", set_str, R(jwt_secret), 0, 0, 0, nonempty, "a non-empty string", 0, 1 },
	{ "jwt_secret_file", set_order_secret_file, R(jwt_secret), 0, 0, 0, absolute,
	  "the absolute path of a file", 0, 0 },
	{ "role", set_str, R(role), 0, 0, 0, nonempty, "a non-empty string", 0, 0 },
	{ "token_ttl_seconds", set_int, R(token_ttl_seconds), 0, 60, 86400, NULL,
	  "an integer from 60 to 86400", 0, 0 },
	{ "page_size", set_int, R(page_size), 0, 1, 2000, NULL, "an integer from 1 to 2000", 0, 0 },
	{ NULL, NULL, 0, 0, 0, 0, NULL, NULL, 0, 0 },
};

/* the same two ways to give the key (set_rsadmin refuses both) */
static const struct rule rsadmin_rules[] = {
	{ "url", set_str, A(url), 0, 0, 0, http_url_ok, "an http:// or https:// URL", 1, 0 },
	{ "jwt_secret", set_str, A(jwt_secret), 0, 0, 0, nonempty, "a non-empty string", 0, 1 },
	{ "jwt_secret_file", set_admin_secret_file, A(jwt_secret), 0, 0, 0, absolute,
	  "the absolute path of a file", 0, 0 },
	{ "timeout_seconds", set_int, A(timeout_seconds), 0, 1, 30, NULL,
	  "an integer from 1 to 30", 0, 0 },
	{ "cache_seconds", set_int, A(cache_seconds), 0, 0, 3600, NULL,
	  "an integer from 0 to 3600", 0, 0 },
	{ NULL, NULL, 0, 0, 0, 0, NULL, NULL, 0, 0 },
};

static const struct rule tenant_rules[] = {
	{ "request_ttl", set_hours, T(request_ttl_hours), 0, 0, 0, NULL,
	  "a number > 0 and <= 876000 (hours)", 0, 0 },
	{ "order_size_limit_bytes", set_u64, T(order_size_limit_bytes), 0, 0, UINT64_MAX, NULL,
	  "an integer >= 0", 0, 0 },
	{ "s3_server", set_s3, T(s3), 0, 0, 0, NULL, "an object", 0, 1 },
	{ "source_s3_server", set_s3, T(source_s3), 0, 0, 0, NULL, "an object", 0, 1 },
	{ "delivery_bucket", set_str, T(delivery_bucket), 0, 0, 0, bucket_ok,
	  "an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')", 0, 0 },
	{ "users", set_access, T(users), T(nusers), 0, 0, any_string,
	  "an array of strings", 0, 0 },
	{ "rs_admin", set_rsadmin, T(rs_admin), 0, 0, 0, NULL, "an object", 0, 1 },
	{ "catalog", set_str_or_null, T(catalog), 0, 0, 0, nonempty,
	  "a non-empty string or null", 0, 0 },
	{ "order_command", set_str_or_null, T(order_command), 0, 0, 0, nonempty,
	  "a non-empty string or null", 0, 0 },
	{ "order_backend", set_str, T(order_backend), 0, 0, 0, backend_ok,
	  "\"catalog\", \"order_command\" or \"rs-order\"", 0, 0 },
	{ "rs_order", set_rsorder, T(rs_order), 0, 0, 0, NULL, "an object", 0, 1 },
	{ "max_suborders", set_u64, T(max_suborders), 0, 0, UINT64_MAX, NULL,
	  "an integer >= 0", 0, 0 },
	{ "suborder_max_bytes", set_u64, T(suborder_max_bytes), 0, 1, UINT64_MAX, NULL,
	  "an integer > 0", 0, 0 },
	{ "suborder_max_files", set_u64, T(suborder_max_files), 0, 1, UINT64_MAX, NULL,
	  "an integer > 0", 0, 0 },
	{ "file_roots", set_strv, T(file_roots), T(nfile_roots), 0, 0, absolute,
	  "an array of absolute paths", 0, 0 },
	{ "allowed_hosts", set_access, T(allowed_hosts), T(nallowed_hosts), 0, 0, nonempty,
	  "an array of non-empty strings", 0, 0 },
	{ "source_buckets", set_access, T(source_buckets), T(nsource_buckets), 0, 0, bucket_ok,
	  "an array of S3 bucket names, or [\"*\"]", 0, 0 },
	{ "compression", set_compression, T(compression), 0, 0, 0, NULL,
	  "\"store\", \"deflate\" or \"auto\"", 0, 0 },
	{ "multipart_part_size", set_u64, T(multipart_part_size), 0, 5242880, 5368709120, NULL,
	  "an integer from 5242880 to 5368709120", 0, 0 },
	{ "multipart_threshold", set_u64, T(multipart_threshold), 0, 0, 5368709120, NULL,
	  "an integer from 0 to 5368709120", 0, 0 },
	{ "upload_parallel", set_int, T(upload_parallel), 0, 1, 64, NULL,
	  "an integer from 1 to 64", 0, 0 },
	/* 604800 s (7 days): the longest a SigV4 presigned URL may live */
	{ "presign_ttl_seconds", set_int, T(presign_ttl_seconds), 0, 0, 604800, NULL,
	  "an integer from 0 to 604800 (seconds; 0 = no downloadUrl)", 0, 0 },
	{ NULL, NULL, 0, 0, 0, 0, NULL, NULL, 0, 0 },
};

/* ", got <value>" with the value as JSON, cut to SHOW_MAX bytes */
static void show(const cJSON *v, char *out, size_t n)
{
	char *s = cJSON_PrintUnformatted(v);
	out[0] = '\0';
	if (!s)
		return;
	size_t len = strlen(s), cut = util_utf8_cut(s, len, SHOW_MAX);
	snprintf(out, n, ", got %.*s%s", (int)cut, s, cut < len ? "..." : "");
	free(s);
}

static const struct rule *find(const struct rule *rules, const char *key)
{
	for (const struct rule *k = rules; k->key; k++)
		if (strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

/* check every key of obj against rules, storing values under base */
static int apply(const struct ctx *c, const struct rule *rules, const cJSON *obj,
    void *base, const char *prefix)
{
	char got[SHOW_MAX + 16];
	for (const cJSON *v = obj->child; v; v = v->next) {
		const struct rule *k = find(rules, v->string);
		if (!k) {
			char key[160];
			snprintf(key, sizeof key, "%s%s", prefix, v->string);
			if (c->warn)
				c->warn(c->warnarg, c->path, key);
			continue;
		}
		if (cJSON_GetObjectItemCaseSensitive(obj, k->key) != v)
			return fail(c, "%s%s: is given twice", prefix, k->key);
		int rc = k->set(c, k, v, (char *)base + k->off);
		if (rc == -1) {
			got[0] = '\0';
			if (!k->secret)
				show(v, got, sizeof got);
			return fail(c, "%s%s: must be %s%s", prefix, k->key, k->must, got);
		}
		if (rc < 0)
			return -1;
	}
	for (const struct rule *k = rules; k->key; k++)
		if (k->required && !cJSON_GetObjectItemCaseSensitive(obj, k->key))
			return fail(c, "%s%s: is required", prefix, k->key);
	return 0;
}

static int set_s3(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	struct tenant_s3 *s3 = dst;
	char prefix[64];
	if (!cJSON_IsObject(v))
		return -1;
	snprintf(prefix, sizeof prefix, "%s.", k->key);
	if (apply(c, s3_rules, v, s3, prefix) < 0)
		return -2;
	if (!s3->scheme && !(s3->scheme = strdup("https")))
		return nomem(c);
	if (!s3->region && !(s3->region = strdup("us-east-1")))
		return nomem(c);
	if (!s3->port)
		s3->port = strcmp(s3->scheme, "http") == 0 ? 80 : 443;
	return 0;
}

/* The secret file of rs_order or rs_admin (section names it in messages):
 * a regular file of at most 4 KiB that only its owner may read (the tenant
 * file's rule for secrets); its content, less one final newline, is the key
 * (jwt_secret_read). */
static int secret_file(const struct ctx *c, const char *section, const struct rule *k,
    const cJSON *v, void *dst)
{
	char err[4200];
	if (!cJSON_IsString(v) || !k->ok(v->valuestring))
		return -1;
	if (jwt_secret_read(v->valuestring, (char **)dst, err, sizeof err) == 0)
		return 0;
	return errno == ENOMEM ? nomem(c) : (fail(c, "%s.jwt_secret_file: %s", section, err), -2);
}

static int set_order_secret_file(const struct ctx *c, const struct rule *k, const cJSON *v,
    void *dst)
{
	return secret_file(c, "rs_order", k, v, dst);
}

static int set_admin_secret_file(const struct ctx *c, const struct rule *k, const cJSON *v,
    void *dst)
{
	return secret_file(c, "rs_admin", k, v, dst);
}

static int set_rsorder(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	struct tenant_rsorder *r = dst;
	if (!cJSON_IsObject(v))
		return -1;
	int inline_key = cJSON_GetObjectItemCaseSensitive(v, "jwt_secret") != NULL;
	int file_key = cJSON_GetObjectItemCaseSensitive(v, "jwt_secret_file") != NULL;
	if (inline_key == file_key)
		return fail(c, "%s: needs exactly one of jwt_secret and jwt_secret_file", k->key), -2;
	if (apply(c, rsorder_rules, v, r, "rs_order.") < 0)
		return -2;
	size_t n = strlen(r->url);
	while (n > 0 && r->url[n - 1] == '/')
		r->url[--n] = '\0';
	if (!r->role && !(r->role = strdup("REGISTERED_USER")))
		return nomem(c);
	if (!r->token_ttl_seconds)
		r->token_ttl_seconds = 7200;
	if (!r->page_size)
		r->page_size = 100;
	return 0;
}

static int set_rsadmin(const struct ctx *c, const struct rule *k, const cJSON *v, void *dst)
{
	struct tenant_rsadmin *a = dst;
	if (!cJSON_IsObject(v))
		return -1;
	int inline_key = cJSON_GetObjectItemCaseSensitive(v, "jwt_secret") != NULL;
	int file_key = cJSON_GetObjectItemCaseSensitive(v, "jwt_secret_file") != NULL;
	if (inline_key == file_key)
		return fail(c, "%s: needs exactly one of jwt_secret and jwt_secret_file", k->key), -2;
	a->cache_seconds = -1;
	if (apply(c, rsadmin_rules, v, a, "rs_admin.") < 0)
		return -2;
	size_t n = strlen(a->url);
	while (n > 0 && a->url[n - 1] == '/')
		a->url[--n] = '\0';
	if (!a->timeout_seconds)
		a->timeout_seconds = 3;
	if (a->cache_seconds < 0)
		a->cache_seconds = 300;   /* UserVerifyService: expireAfterWrite(5, MINUTES) */
	return 0;
}

int tenant_name_ok(const char *name)
{
	static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
	size_t n = name ? strlen(name) : 0;
	return n >= 1 && n <= 64 && strspn(name, ok) == n &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void tenant_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int tenant_names(const char *dir, char ***names, size_t *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;
	*names = NULL;
	*n = 0;
	if (!d) {
		snprintf(err, errlen, "tenants directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		char *name = strndup(e->d_name, len - 5);
		char **more = *n < cap ? *names : realloc(*names, (cap = cap ? 2 * cap : 16) *
		    sizeof **names);
		if (!name || !more) {
			free(name);
			closedir(d);
			tenant_names_free(more ? more : *names, *n);
			*names = NULL;
			*n = 0;
			snprintf(err, errlen, "tenants directory %s: %s", dir, strerror(ENOMEM));
			return -1;
		}
		*names = more;
		if (tenant_name_ok(name))
			(*names)[(*n)++] = name;
		else
			free(name);
	}
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof **names, name_cmp);
	return 0;
}

static int bad_name(const char *name, char *err, size_t errlen)
{
	size_t n = name ? util_utf8_cut(name, strlen(name), SHOW_MAX) : 0;
	snprintf(err, errlen, "invalid tenant name \"%.*s\"", (int)n, name ? name : "");
	errno = EINVAL;
	return -1;
}

static tenant *tenant_new(const char *name, const char *path)
{
	tenant *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->name = strdup(name);
	t->path = strdup(path);
	if (!t->name || !t->path) {
		tenant_free(t);
		return NULL;
	}
	t->request_ttl_hours = 12;
	t->order_size_limit_bytes = 5368709120ULL;
	t->suborder_max_bytes = 104857600;
	t->suborder_max_files = 5000;
	t->compression = TENANT_COMP_AUTO;
	t->multipart_part_size = 16777216;
	t->upload_parallel = 4;
	return t;
}

/* secrets live in the struct only: wipe the parsed copies */
static void wipe_json(cJSON *j)
{
	for (; j; j = j->next) {
		if (cJSON_IsString(j) && j->valuestring)
			sodium_memzero(j->valuestring, strlen(j->valuestring));
		wipe_json(j->child);
	}
}

/* a secret given in clear: anything but a "sealed:" string, which anyone
 * may read (only the seal key opens it) */
static int clear(const cJSON *v)
{
	return v && !(cJSON_IsString(v) && sealed(v->valuestring));
}

static int has_secret(const cJSON *s3)
{
	return cJSON_IsObject(s3) && (clear(cJSON_GetObjectItemCaseSensitive(s3, "key")) ||
	    clear(cJSON_GetObjectItemCaseSensitive(s3, "secret")));
}

static int check_tree(const struct ctx *c, const cJSON *j, unsigned mode, tenant *t)
{
	const cJSON *s3 = cJSON_GetObjectItemCaseSensitive(j, "s3_server");
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "source_s3_server");
	const cJSON *rso = cJSON_GetObjectItemCaseSensitive(j, "rs_order");
	const cJSON *rsa = cJSON_GetObjectItemCaseSensitive(j, "rs_admin");
	int secret = has_secret(s3) || has_secret(src) ||
	    (cJSON_IsObject(rso) && clear(cJSON_GetObjectItemCaseSensitive(rso, "jwt_secret"))) ||
	    (cJSON_IsObject(rsa) && clear(cJSON_GetObjectItemCaseSensitive(rsa, "jwt_secret")));
	if (secret && (mode & (S_IRGRP | S_IROTH)))
		return fail(c, "holds secrets but is readable by group/others (mode %04o); chmod 600 it",
		    mode & 07777);
	if (apply(c, tenant_rules, j, t, "") < 0)
		return -1;
	t->has_s3 = s3 != NULL;
	t->has_source_s3 = src != NULL;
	if (t->catalog && t->order_command)
		return fail(c, "catalog and order_command are both set; a tenant has exactly one order backend");
	t->has_rs_order = rso != NULL;
	if (t->has_rs_order && (t->catalog || t->order_command))
		return fail(c, "rs_order and %s are both set; a tenant has exactly one order backend",
		    t->catalog ? "catalog" : "order_command");
	t->has_rs_admin = rsa != NULL;
	if (t->has_rs_admin && tenant_any(t->users, t->nusers))
		return fail(c, "users: \"*\" cannot be used with rs_admin: anyone would be let in "
		    "before rs-admin is asked");
	/* rs-order acts for order.user and ferry signs its JWT: only for a
	 * user named here or one rs-admin knows (asked before GRANTED) */
	if (t->has_rs_order && tenant_any(t->users, t->nusers))
		return fail(c, "users: \"*\" cannot be used with rs_order: ferry signs rs-order "
		    "tokens for the request's order.user, so users (or rs_admin) must say who may order");
	const char *set = t->has_rs_order ? "rs-order" : t->catalog ? "catalog" :
	    t->order_command ? "order_command" : NULL;
	if (t->order_backend && (!set || strcmp(set, t->order_backend) != 0))
		return fail(c, "order_backend is \"%s\" but %s", t->order_backend, !set ?
		    "no order backend is set" : t->has_rs_order ? "rs_order is set" : t->catalog ?
		    "catalog is set" : "order_command is set");
	return 0;
}

int tenant_parse(const char *name, const char *path, const char *json, size_t len,
    unsigned mode, tenant **out, tenant_warn_fn *warn, void *warnarg,
    char *err, size_t errlen)
{
	struct seal seal = { 0 };
	struct ctx c = { path ? path : "(tenant)", warn, warnarg, err, errlen, &seal };
	char why[128];
	*out = NULL;
	if (!tenant_name_ok(name))
		return bad_name(name, err, errlen);
	cJSON *j = item_parse(json, len, why, sizeof why);
	if (!j)
		return fail(&c, "%s", why);
	tenant *t = tenant_new(name, c.path);
	int rc = t ? check_tree(&c, j, mode, t) : nomem(&c);
	wipe_json(j);
	cJSON_Delete(j);
	sodium_memzero(&seal, sizeof seal);
	if (rc < 0) {
		int saved = errno;
		tenant_free(t);
		errno = saved;
		return -1;
	}
	*out = t;
	return 0;
}

static void free_wiped(char *buf, size_t n)
{
	if (buf)
		sodium_memzero(buf, n);
	free(buf);
}

/* the whole regular file, at most MAX_FILE bytes, into a malloc'd *buf */
static int slurp(const struct ctx *c, int fd, char **buf, size_t *len, unsigned *mode)
{
	struct stat st;
	size_t cap, n = 0;
	if (fstat(fd, &st) < 0)
		return fail(c, "%s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(c, "not a regular file");
	if (st.st_size > MAX_FILE)
		return fail(c, "larger than 1 MiB");
	cap = (size_t)st.st_size + 1;     /* one more byte shows a file that grew */
	if (!(*buf = malloc(cap)))
		return nomem(c);
	int rerr = 0;
	while (n < cap && !rerr) {
		ssize_t r = read(fd, *buf + n, cap - n);
		if (r == 0)
			break;
		if (r > 0)
			n += (size_t)r;
		else if (errno != EINTR)
			rerr = errno;
	}
	*len = n;
	*mode = st.st_mode;
	if (rerr) {
		fail(c, "%s", strerror(rerr));
		errno = rerr;
		return -1;
	}
	return n == cap ? fail(c, "changed while being read") : 0;
}

static void path_of(const char *dir, const char *name, char *path, size_t n)
{
	size_t dl = strlen(dir);
	const char *sep = dl > 0 && dir[dl - 1] == '/' ? "" : "/";
	snprintf(path, n, "%s%s%s.json", dir, sep, name);
}

int tenant_load(const char *dir, const char *name, tenant **out,
    tenant_warn_fn *warn, void *warnarg, char *err, size_t errlen)
{
	char path[4096];
	struct ctx c = { path, warn, warnarg, err, errlen, NULL };
	size_t len = 0;
	unsigned mode = 0;
	*out = NULL;
	if (!tenant_name_ok(name))
		return bad_name(name, err, errlen);
	path_of(dir, name, path, sizeof path);
	/* O_NONBLOCK: a FIFO in place of the file must not hang the stage */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int saved = errno;
		fail(&c, "%s", saved == ENOENT ? "no configuration for tenant" : strerror(saved));
		errno = saved;
		return -1;
	}
	char *buf = NULL;
	int rc = slurp(&c, fd, &buf, &len, &mode);
	if (rc == 0)
		rc = tenant_parse(name, path, buf, len, mode, out, warn, warnarg, err, errlen);
	int saved = errno;
	close(fd);
	free_wiped(buf, len);
	errno = saved;
	return rc < 0 ? -1 : 0;
}

void tenant_free(tenant *t)
{
	if (!t)
		return;
	free(t->name);
	free(t->path);
	free(t->s3.scheme);
	free(t->s3.host);
	free(t->s3.region);
	free_secret(t->s3.key);
	free_secret(t->s3.secret);
	free(t->source_s3.scheme);
	free(t->source_s3.host);
	free(t->source_s3.region);
	free_secret(t->source_s3.key);
	free_secret(t->source_s3.secret);
	free(t->delivery_bucket);
	free_strv(t->users);
	free(t->catalog);
	free(t->order_command);
	free(t->order_backend);
	free(t->rs_order.url);
	free_secret(t->rs_order.jwt_secret);
	free(t->rs_order.role);
	free(t->rs_admin.url);
	free_secret(t->rs_admin.jwt_secret);
	free_strv(t->file_roots);
	free_strv(t->allowed_hosts);
	free_strv(t->source_buckets);
	free(t);
}

const struct tenant_s3 *tenant_source_s3(const tenant *t)
{
	if (t->has_source_s3)
		return &t->source_s3;
	return t->has_s3 ? &t->s3 : NULL;
}

int tenant_any(char *const *list, size_t n)
{
	return n == 1 && strcmp(list[0], TENANT_ANY) == 0;
}

int tenant_user_allowed(const tenant *t, const char *user)
{
	if (tenant_any(t->users, t->nusers))
		return 1;
	for (size_t i = 0; user && i < t->nusers; i++)
		if (strcmp(t->users[i], user) == 0)
			return 1;
	return 0;
}

const char *tenant_key(size_t i)
{
	return i < sizeof tenant_rules / sizeof *tenant_rules - 1 ? tenant_rules[i].key : NULL;
}
