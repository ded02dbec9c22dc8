/* validate: judge a delivery request as rs-delivery does (see validate.h).
 * One table row per checked field holds its REGARDS constraint and wording;
 * access (tenant, user) is checked first so FORBIDDEN errors lead. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "query.h"
#include "validate.h"

enum {
	SHOW_MAX = 64,    /* bytes of a rejected value quoted in a message */
	ERROR_MAX = 640,  /* one error, all parts bounded */
	TAIL_MAX = 40,    /* room kept for " (4294967295 more errors)" */
};

/* REGARDS wording: DeliveryRequestDto, OrderRequestDto, OrderRequestFilters
 * (jakarta.validation messages), UserVerifyService; MSG_ORDER is the
 * DeliveryRequestDto constructor's assertion, MSG_DATATYPE is ferry's. */
#define MSG_CID_BLANK "correlation identifier is required to track this delivery."
#define MSG_CID_SIZE "provided correlation identifier must not exceed 255 characters."
#define MSG_ORDER_CID_SIZE "provided correlationId must not exceed 255 characters."
#define MSG_TARGET "targetDelivery is mandatory"
#define MSG_ORDER "order is mandatory"
#define MSG_QUERIES "list of queries should not be empty"
#define MSG_USER_SIZE "user must not exceed 128 characters."
#define MSG_DATATYPES "There should be at least one datatype to order. " \
	"DataType can be RAWDATA or QUICKLOOK"
#define MSG_DATATYPE "unknown data type, DataType can be RAWDATA or QUICKLOOK"
#define MSG_NO_USER "User should be present"
#define MSG_CID_DOTS "correlationId must not have a \".\" or \"..\" segment between '/' " \
	"(it is part of the object key)"

/* whole-name match like String.matches; \C has no Java meaning */
#define RE_OPTIONS (PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_ALT_BSUX | \
	PCRE2_NEVER_BACKSLASH_C)

struct ctx {
	struct validation *v;
	size_t len;          /* bytes used in v->message */
	unsigned omitted;    /* errors that did not fit */
	int nomem;
	const tenant *t;     /* the tenant's order backend decides the query rules */
	int known_user;      /* rs-admin knows order.user (validate_request_known) */
};

/* A rejected value as quoted: at most SHOW_MAX bytes of valid UTF-8, with
 * "…" and the value's full size when cut. */
struct shown {
	char text[SHOW_MAX + 8];
	char size[48];       /* "" or " (300 characters)" */
};

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2
	    : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
	return len && len <= n && util_utf8_valid((const char *)s, len) ? len : 0;
}

size_t validate_java_length(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), units = 0;
	for (size_t i = 0; i < n; ) {
		size_t k = utf8_seq(s + i, n - i);
		units += k == 4 ? 2 : 1;   /* an invalid byte decodes to one U+FFFD */
		i += k ? k : 1;
	}
	return units;
}

int validate_blank(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s > 0x20)
			return 0;
	return 1;
}

/* Copy s into out (cap >= 4) as valid UTF-8, invalid bytes as U+FFFD,
 * stopping before max bytes; returns the source bytes consumed. */
static size_t utf8_copy(const char *str, char *out, size_t max)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), i = 0, o = 0;
	while (i < n) {
		size_t k = utf8_seq(s + i, n - i);
		const char *src = k ? (const char *)s + i : "\xEF\xBF\xBD";
		size_t w = k ? k : 3;
		if (o + w > max)
			break;
		memcpy(out + o, src, w);
		o += w;
		i += k ? k : 1;
	}
	out[o] = '\0';
	return i;
}

static void show_string(const char *s, struct shown *sh)
{
	size_t used = utf8_copy(s, sh->text, SHOW_MAX);
	sh->size[0] = '\0';
	if (s[used] == '\0')
		return;
	strcat(sh->text, "\xE2\x80\xA6");
	snprintf(sh->size, sizeof sh->size, " (%zu characters)", validate_java_length(s));
}

/* null, a string, or other JSON printed if short, else described */
static void show_json(const cJSON *v, struct shown *sh)
{
	char buf[SHOW_MAX + 1];
	if (!v || cJSON_IsNull(v)) {
		show_string("null", sh);
	} else if (cJSON_IsString(v)) {
		show_string(v->valuestring, sh);
	} else if (cJSON_PrintPreallocated((cJSON *)v, buf, sizeof buf, 0)) {
		show_string(buf, sh);
	} else {
		int obj = cJSON_IsObject(v);
		show_string(obj ? "{\xE2\x80\xA6}" : "[\xE2\x80\xA6]", sh);
		snprintf(sh->size, sizeof sh->size, " (%d %s)", cJSON_GetArraySize(v),
		    obj ? "members" : "elements");
	}
}

/* Append "[code] text at field: rejected value [v]." as REGARDS'
 * ErrorTranslator formats a FieldError; whole or not at all. */
static void add_error(struct ctx *c, int forbidden, const char *code, const char *text,
    const char *field, const struct shown *val)
{
	char line[ERROR_MAX];
	int n = snprintf(line, sizeof line, "%s[%s] %s at %s: rejected value [%s]%s.",
	    c->len ? ", " : "", code, text, field, val->text, val->size);
	size_t len = n < 0 ? 0 : util_utf8_cut(line, (size_t)n, sizeof line - 1);
	if (forbidden)
		c->v->nforbidden++;
	else
		c->v->ncontent++;
	if (n < 0 || c->len + len >= sizeof c->v->message - TAIL_MAX) {
		c->omitted++;
		return;
	}
	memcpy(c->v->message + c->len, line, len);
	c->len += len;
	c->v->message[c->len] = '\0';
}

static void reject(struct ctx *c, const char *code, const char *text, const char *field,
    const cJSON *v)
{
	struct shown sh;
	show_json(v, &sh);
	add_error(c, 0, code, text, field, &sh);
}

/* FORBIDDEN: unusable tenant, no user, or a user the tenant does not know,
 * by its users list or rs-admin's word (a blank user is nobody's login, so
 * it is unknown everywhere). */
static void check_access(struct ctx *c, const cJSON *body, const char *tenant_name,
    const tenant *t)
{
	struct shown sh;
	char text[128];
	if (!t) {
		show_string(tenant_name ? tenant_name : "null", &sh);
		snprintf(text, sizeof text, "Delivery is not configured for tenant %s", sh.text);
		add_error(c, 1, "FORBIDDEN", text, "tenant", &sh);
	}
	const cJSON *order = cJSON_GetObjectItemCaseSensitive(body, "order");
	if (!cJSON_IsObject(order))
		return;
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(order, "user");
	if (!user || cJSON_IsNull(user)) {
		show_string("null", &sh);
		add_error(c, 1, "FORBIDDEN", MSG_NO_USER, "user", &sh);
	} else if (t && cJSON_IsString(user) &&
	    (validate_blank(user->valuestring) ||
	    (!tenant_user_allowed(t, user->valuestring) && !c->known_user))) {
		show_string(user->valuestring, &sh);
		snprintf(text, sizeof text, "Unknown user : %s", sh.text);
		add_error(c, 1, "FORBIDDEN", text, "user", &sh);
	}
}

static void check_data_type(struct ctx *c, const cJSON *v, const char *path)
{
	static const char *const known[] = { "RAWDATA", "QUICKLOOK" };
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		if (strcmp(v->valuestring, known[i]) == 0)
			return;
	reject(c, "typeMismatch", MSG_DATATYPE, path, v);
}

static void check_regexp(struct ctx *c, const cJSON *v, const char *path)
{
	validate_regexp *re;
	char err[160], text[200];
	if (validate_regexp_compile(v->valuestring, &re, err, sizeof err) == 0) {
		validate_regexp_free(re);
		return;
	}
	if (errno == ENOMEM)
		c->nomem = 1;
	snprintf(text, sizeof text, "invalid regular expression (%s)", err);
	reject(c, "PatternSyntax", text, path, v);
}

/* The correlationId heads the object key: a "." or ".." segment would let a
 * server or proxy that normalises paths (s3rver does) put the zip under
 * another key, or in another bucket. */
static void check_cid(struct ctx *c, const cJSON *v, const char *path)
{
	if (util_dot_segment(v->valuestring))
		reject(c, "Pattern", MSG_CID_DOTS, path, v);
}

/* For a tenant on the embedded catalog, a query it cannot parse is refused
 * now rather than failing the request after GRANTED. An order command
 * reads queries its own way: it is not second-guessed. */
static void check_query(struct ctx *c, const cJSON *v, const char *path)
{
	char err[200], text[240];
	if (!c->t || !c->t->catalog || query_check(v->valuestring, err, sizeof err) == 0)
		return;
	if (errno == ENOMEM)
		c->nomem = 1;
	snprintf(text, sizeof text, "invalid query (%s)", err);
	reject(c, "QuerySyntax", text, path, v);
}

enum where { IN_BODY, IN_ORDER, IN_FILTERS, NWHERE };
enum type { T_STRING, T_OBJECT, T_STRINGS };

typedef void check_fn(struct ctx *c, const cJSON *v, const char *path);

struct rule {
	enum where in;
	const char *key, *path;
	enum type type;
	const char *code, *required;   /* NotBlank/NotEmpty/NotNull and its message */
	size_t max;                    /* @Size(max), Java chars; 0 = none */
	const char *too_long;
	check_fn *check;               /* a present string, or each array element */
};

static const struct rule rules[] = {
	{ IN_BODY, "correlationId", "correlationId", T_STRING, "NotBlank", MSG_CID_BLANK,
	  255, MSG_CID_SIZE, check_cid },
	{ IN_BODY, "targetDelivery", "targetDelivery", T_STRING, "NotBlank", MSG_TARGET,
	  0, NULL, NULL },
	{ IN_BODY, "order", "order", T_OBJECT, "NotNull", MSG_ORDER, 0, NULL, NULL },
	{ IN_ORDER, "queries", "order.queries", T_STRINGS, "NotEmpty", MSG_QUERIES,
	  0, NULL, check_query },
	{ IN_ORDER, "filters", "order.filters", T_OBJECT, NULL, NULL, 0, NULL, NULL },
	{ IN_ORDER, "correlationId", "order.correlationId", T_STRING, NULL, NULL,
	  255, MSG_ORDER_CID_SIZE, NULL },
	{ IN_ORDER, "user", "order.user", T_STRING, NULL, NULL, 128, MSG_USER_SIZE, NULL },
	{ IN_FILTERS, "dataTypes", "order.filters.dataTypes", T_STRINGS, "NotEmpty",
	  MSG_DATATYPES, 0, NULL, check_data_type },
	{ IN_FILTERS, "filenameRegExp", "order.filters.filenameRegExp", T_STRING, NULL, NULL,
	  0, NULL, check_regexp },
};

static const struct {
	cJSON_bool (*is)(const cJSON *);
	const char *must;
} types[] = {
	[T_STRING] = { cJSON_IsString, "must be a string" },
	[T_OBJECT] = { cJSON_IsObject, "must be an object" },
	[T_STRINGS] = { cJSON_IsArray, "must be an array of strings" },
};

static void apply_string(struct ctx *c, const struct rule *r, const cJSON *v)
{
	if (r->required && validate_blank(v->valuestring))
		reject(c, r->code, r->required, r->path, v);
	else if (r->max && validate_java_length(v->valuestring) > r->max)
		reject(c, "Size", r->too_long, r->path, v);
	else if (r->check)
		r->check(c, v, r->path);
}

static void apply_strings(struct ctx *c, const struct rule *r, const cJSON *v)
{
	char path[96];
	size_t i = 0;
	if (r->required && cJSON_GetArraySize(v) == 0)
		reject(c, r->code, r->required, r->path, v);
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		snprintf(path, sizeof path, "%s[%zu]", r->path, i);
		if (!cJSON_IsString(e))
			reject(c, "typeMismatch", types[T_STRING].must, path, e);
		else if (r->check)
			r->check(c, e, path);
	}
}

static void apply(struct ctx *c, const struct rule *r, const cJSON *parent)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, r->key);
	if (!v || cJSON_IsNull(v)) {
		if (r->required)
			reject(c, r->code, r->required, r->path, v);
	} else if (!types[r->type].is(v)) {
		reject(c, "typeMismatch", types[r->type].must, r->path, v);
	} else if (r->type == T_STRING) {
		apply_string(c, r, v);
	} else if (r->type == T_STRINGS) {
		apply_strings(c, r, v);
	}
}

static const cJSON *object_in(const cJSON *parent, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, key);
	return cJSON_IsObject(v) ? v : NULL;
}

static void check_content(struct ctx *c, const cJSON *body)
{
	const cJSON *in[NWHERE];
	in[IN_BODY] = body;
	in[IN_ORDER] = object_in(body, "order");
	in[IN_FILTERS] = object_in(in[IN_ORDER], "filters");
	for (size_t i = 0; i < sizeof rules / sizeof *rules; i++)
		if (in[rules[i].in])
			apply(c, &rules[i], in[rules[i].in]);
}

int validate_request(const cJSON *body, const char *tenant_name, const tenant *t,
    struct validation *out)
{
	return validate_request_known(body, tenant_name, t, 0, out);
}

int validate_request_known(const cJSON *body, const char *tenant_name, const tenant *t,
    int known_user, struct validation *out)
{
	struct ctx c = { .v = out, .t = t, .known_user = known_user };
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(body)) {
		reject(&c, "typeMismatch", "must be an object", "request", body);
	} else {
		check_access(&c, body, tenant_name, t);
		check_content(&c, body);
	}
	if (c.nomem) {
		/* never a GRANTED by mistake if the caller ignores -1 */
		out->denied = 1;
		out->error_type = "INTERNAL_ERROR";
		snprintf(out->message, sizeof out->message, "out of memory while validating");
		errno = ENOMEM;
		return -1;
	}
	if (c.omitted)
		snprintf(out->message + c.len, sizeof out->message - c.len,
		    " (%u more errors)", c.omitted);
	out->denied = out->nforbidden + out->ncontent > 0;
	out->error_type = out->nforbidden ? "FORBIDDEN" : out->ncontent ? "INVALID_CONTENT" : NULL;
	return 0;
}

/* Java's \x{h..h} is PCRE2's \u{h..h} under PCRE2_EXTRA_ALT_BSUX (which also
 * gives Java's \uhhhh); the same length, so error offsets still hold. */
static void java_escapes(char *p)
{
	int quoted = 0;
	for (; *p; p++) {
		if (quoted) {
			if (p[0] == '\\' && p[1] == 'E') {
				quoted = 0;
				p++;
			}
		} else if (p[0] == '\\' && p[1]) {
			if (p[1] == 'Q')
				quoted = 1;
			else if (p[1] == 'x' && p[2] == '{')
				p[1] = 'u';
			p++;
		}
	}
}

static pcre2_code *compile(const char *re, int *code, PCRE2_SIZE *off)
{
	pcre2_code *out = NULL;
	char *java = strdup(re);
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	if (java && cc) {
		java_escapes(java);
		pcre2_set_compile_extra_options(cc, PCRE2_EXTRA_ALT_BSUX);
		/* Java's "." stops at any line terminator */
		pcre2_set_newline(cc, PCRE2_NEWLINE_ANY);
		out = pcre2_compile((PCRE2_SPTR)java, PCRE2_ZERO_TERMINATED, RE_OPTIONS, code, off, cc);
	}
	pcre2_compile_context_free(cc);
	free(java);
	return out;
}

struct validate_regexp {
	pcre2_code *code;
	pcre2_match_context *mc;
	pcre2_match_data *md;
};

void validate_regexp_free(validate_regexp *re)
{
	if (!re)
		return;
	pcre2_match_data_free(re->md);
	pcre2_match_context_free(re->mc);
	pcre2_code_free(re->code);
	free(re);
}

/* the match context and data of a compiled pattern; 0, or -1 (ENOMEM) */
static int match_setup(validate_regexp *re)
{
	re->mc = pcre2_match_context_create(NULL);
	re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
	if (!re->mc || !re->md)
		return -1;
	pcre2_set_match_limit(re->mc, VALIDATE_MATCH_LIMIT);
	pcre2_set_depth_limit(re->mc, VALIDATE_DEPTH_LIMIT);
	pcre2_set_heap_limit(re->mc, VALIDATE_HEAP_LIMIT_KIB);
	return 0;
}

int validate_regexp_compile(const char *str, validate_regexp **out, char *err, size_t errlen)
{
	int code = PCRE2_ERROR_HEAP_FAILED;
	PCRE2_SIZE off = 0;
	validate_regexp *re = calloc(1, sizeof *re);
	*out = NULL;
	if (re && (re->code = compile(str, &code, &off)) && match_setup(re) == 0) {
		*out = re;
		return 0;
	}
	if (re && re->code)
		code = PCRE2_ERROR_HEAP_FAILED;
	validate_regexp_free(re);
	PCRE2_UCHAR msg[120];
	if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
		snprintf((char *)msg, sizeof msg, "error %d", code);
	if (errlen)
		snprintf(err, errlen, "%s at offset %zu", (char *)msg, (size_t)off);
	errno = code == PCRE2_ERROR_HEAP_FAILED ? ENOMEM : EINVAL;
	return -1;
}

int validate_regexp_match(validate_regexp *re, const char *name)
{
	/* Java sees a name's invalid bytes as U+FFFD, which "." matches */
	size_t n = strlen(name);
	char *fixed = util_utf8_valid(name, n) ? NULL : malloc(3 * n + 1);
	if (!fixed && !util_utf8_valid(name, n)) {
		errno = ENOMEM;
		return -1;
	}
	if (fixed)
		utf8_copy(name, fixed, 3 * n);
	int rc = pcre2_match(re->code, (PCRE2_SPTR)(fixed ? fixed : name), PCRE2_ZERO_TERMINATED,
	    0, 0, re->md, re->mc);
	free(fixed);
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	/* a limit reached: too costly, never taken for "no match" */
	int limit = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT;
	errno = limit ? E2BIG : rc == PCRE2_ERROR_NOMEMORY ? ENOMEM : EINVAL;
	return -1;
}
