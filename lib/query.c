/* query: a recursive-descent parser for the Lucene subset of order.queries.
 * Precedence NOT > AND (also implicit) > OR; AND and OR nodes are n-ary so a
 * long flat query stays shallow, and the depth counter bounds the recursion. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "util.h"

struct query {
	struct query_node *root;
};

/* the field a term applies to; inside field:( ... ) the group's field */
struct field {
	enum query_field f;
	const char *attribute;
};

struct parser {
	const char *text;
	size_t pos, len;
	int depth;
	size_t nterms;
	char *err;
	size_t errlen;
	int failed;    /* the first error's message stands */
};

enum op { OP_NONE, OP_AND, OP_OR, OP_NOT };

static const struct { const char *s; enum op op; int word; } ops[] = {
	{ "AND", OP_AND, 1 }, { "OR", OP_OR, 1 }, { "NOT", OP_NOT, 1 },
	{ "&&", OP_AND, 0 }, { "||", OP_OR, 0 }, { "!", OP_NOT, 0 },
};

static const struct { const char *name; enum query_field f; } fields[] = {
	{ "productId", QUERY_PRODUCT_ID }, { "id", QUERY_PRODUCT_ID },
	{ "providerId", QUERY_PRODUCT_ID }, { "version", QUERY_VERSION },
	{ "dataset", QUERY_DATASET }, { "tags", QUERY_TAGS }, { "tag", QUERY_TAGS },
	{ "*", QUERY_ANY },
};

static const char field_prefix[] = "properties.";

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ends an unquoted word */
static int is_delim(char c)
{
	return c == '\0' || is_space(c) || c == '(' || c == ')' || c == '"';
}

/* Lucene syntax ferry does not implement: ranges, fuzzy, boost */
static int is_unsupported(char c)
{
	return c == '[' || c == ']' || c == '{' || c == '}' || c == '^' || c == '~';
}

/* 1-based character (not byte) position of byte offset at */
static size_t char_pos(const char *s, size_t at)
{
	size_t n = 1;
	for (size_t i = 0; i < at; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

/* the query cut to 64 characters, for messages. They end up in JSON
 * responses, so they must be valid UTF-8 whatever the query holds: an
 * invalid byte is shown as U+FFFD (found by fuzzing, test/fuzz/regress). */
static void cut_text(const char *s, char *out, size_t cap)
{
	size_t i = 0, chars = 0, o = 0;
	while (s[i] && o + 8 < cap) {
		if (++chars > 64) {
			memcpy(out + o, "\xe2\x80\xa6", 3);    /* … */
			o += 3;
			break;
		}
		unsigned char b = (unsigned char)s[i];
		size_t k = b < 0x80 ? 1 : (b & 0xe0) == 0xc0 ? 2 : (b & 0xf0) == 0xe0 ? 3 :
		    (b & 0xf8) == 0xf0 ? 4 : 0;
		if (k == 0 || strnlen(s + i, k) < k || !util_utf8_valid(s + i, k)) {
			memcpy(out + o, "\xef\xbf\xbd", 3);    /* U+FFFD */
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, k);
		o += k;
		i += k;
	}
	out[o] = '\0';
}

static void *fail(struct parser *p, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* the message of the first error wins; at == SIZE_MAX: no position */
static void *fail(struct parser *p, size_t at, const char *fmt, ...)
{
	char what[160], text[300];
	va_list ap;
	if (p->failed)
		return NULL;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	cut_text(p->text, text, sizeof text);
	/* formatted whole, then cut to errlen on a character boundary */
	char full[sizeof what + sizeof text + 64];
	if (at == (size_t)-1)
		snprintf(full, sizeof full, "query \"%s\": %s", text, what);
	else
		snprintf(full, sizeof full, "query \"%s\": %s at position %zu", text, what,
		    char_pos(p->text, at));
	if (p->errlen) {
		size_t n = util_utf8_cut(full, strlen(full), p->errlen - 1);
		memcpy(p->err, full, n);
		p->err[n] = '\0';
	}
	errno = EINVAL;
	return NULL;
}

static void *nomem(struct parser *p)
{
	if (p->failed)
		return NULL;
	p->failed = 1;
	if (p->errlen)
		snprintf(p->err, p->errlen, "query: out of memory");
	errno = ENOMEM;
	return NULL;
}

static void node_free(struct query_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nchild; i++)
		node_free(n->child[i]);
	free(n->child);
	free((void *)n->attribute);
	free((void *)n->value);
	free(n);
}

static struct query_node *node_new(struct parser *p, enum query_kind kind)
{
	struct query_node *n = calloc(1, sizeof *n);
	if (!n)
		return nomem(p);
	n->kind = kind;
	return n;
}

/* append c to n's children; 0, or -1 (nothing changed) */
static int node_add(struct parser *p, struct query_node *n, struct query_node *c)
{
	struct query_node **v = realloc(n->child, (n->nchild + 1) * sizeof *v);
	if (!v) {
		nomem(p);
		return -1;
	}
	v[n->nchild++] = c;
	n->child = v;
	return 0;
}

/* c joins the n-ary node *acc of kind, made around *acc if it is of
 * another kind (AND and OR are associative, so a group of the same kind
 * takes c directly). -1: c freed, *acc still the caller's. */
static int join(struct parser *p, enum query_kind kind, struct query_node **acc,
    struct query_node *c)
{
	if ((*acc)->kind != kind) {
		struct query_node *list = node_new(p, kind);
		if (!list || node_add(p, list, *acc) < 0) {
			free(list);
			node_free(c);
			return -1;
		}
		*acc = list;
	}
	if (node_add(p, *acc, c) < 0) {
		node_free(c);
		return -1;
	}
	return 0;
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && is_space(p->text[p->pos]))
		p->pos++;
}

static enum op peek_op(const struct parser *p, size_t *n)
{
	const char *s = p->text + p->pos;
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		size_t k = strlen(ops[i].s);
		if (strncmp(s, ops[i].s, k) == 0 && (!ops[i].word || is_delim(s[k]))) {
			*n = k;
			return ops[i].op;
		}
	}
	return OP_NONE;
}

/* An unquoted word in [from, to): the value with escapes resolved (*exact)
 * and as a pattern keeping unescaped '*' '?' (*pattern, escapes of
 * '*' '?' '\' kept). *wild: it has wildcards; *star: it is exactly "*". */
struct word {
	char *exact, *pattern;
	int wild, star;
};

static int read_word(struct parser *p, size_t from, size_t to, struct word *w)
{
	const char *s = p->text;
	size_t e = 0, q = 0;
	w->exact = malloc(to - from + 1);
	w->pattern = malloc(2 * (to - from) + 1);
	w->wild = 0;
	w->star = to - from == 1 && s[from] == '*';
	if (!w->exact || !w->pattern)
		goto nomem;
	for (size_t i = from; i < to; i++) {
		char c = s[i];
		if (c == '\\') {
			if (++i == to) {
				fail(p, i - 1, "nothing to escape after \\");
				goto out;
			}
			c = s[i];
			w->exact[e++] = c;
			if (c == '*' || c == '?' || c == '\\')
				w->pattern[q++] = '\\';
			w->pattern[q++] = c;
			continue;
		}
		if (is_unsupported(c)) {
			fail(p, i, "%c is not supported (no ranges, fuzzy or boosted terms; quote or escape it)", c);
			goto out;
		}
		w->wild |= c == '*' || c == '?';
		w->exact[e++] = c;
		w->pattern[q++] = c;
	}
	w->exact[e] = '\0';
	w->pattern[q] = '\0';
	return 0;
nomem:
	nomem(p);
out:
	free(w->exact);
	free(w->pattern);
	w->exact = w->pattern = NULL;
	return -1;
}

#define NO_COLON ((size_t)-1)

/* end of the word starting at from; *colon: its first unescaped ':', or
 * NO_COLON */
static size_t word_end(const struct parser *p, size_t from, size_t *colon)
{
	size_t i = from;
	*colon = NO_COLON;
	while (i < p->len && !is_delim(p->text[i])) {
		if (p->text[i] == '\\' && i + 1 < p->len)
			i++;
		else if (p->text[i] == ':' && *colon == NO_COLON)
			*colon = i;
		i++;
	}
	return i;
}

static struct query_node *make_term(struct parser *p, size_t at, struct field f,
    enum query_match m, char *value)
{
	if (++p->nterms > QUERY_MAX_TERMS) {
		free(value);
		return fail(p, at, "more than %d terms", QUERY_MAX_TERMS);
	}
	if (f.f == QUERY_ANY && m == QUERY_EXISTS) {
		free(value);
		return node_new(p, QUERY_ALL);
	}
	struct query_node *n = node_new(p, QUERY_TERM);
	char *attr = f.attribute ? strdup(f.attribute) : NULL;
	if (!n || (f.attribute && !attr)) {
		free(n);
		free(value);
		free(attr);
		return nomem(p);
	}
	n->field = f.f;
	n->attribute = attr;
	n->match = m;
	n->value = value;
	return n;
}

static struct query_node *parse_or(struct parser *p, struct field df);

/* "(" at p->pos: a group, its unfielded terms applying to df */
static struct query_node *parse_group(struct parser *p, struct field df)
{
	size_t at = p->pos;
	if (++p->depth > QUERY_MAX_DEPTH)
		return fail(p, at, "nested deeper than %d", QUERY_MAX_DEPTH);
	p->pos++;
	struct query_node *n = parse_or(p, df);
	if (!n)
		return NULL;
	if (p->pos >= p->len || p->text[p->pos] != ')') {
		node_free(n);
		return fail(p, at, "missing )");
	}
	p->pos++;
	p->depth--;
	return n;
}

/* '"' at p->pos: a quoted value, backslash escaping the next character */
static struct query_node *parse_quoted(struct parser *p, struct field f)
{
	size_t at = p->pos, o = 0;
	char *v = malloc(p->len - at);
	if (!v)
		return nomem(p);
	for (p->pos++; p->pos < p->len && p->text[p->pos] != '"'; p->pos++) {
		if (p->text[p->pos] == '\\' && p->pos + 1 < p->len)
			p->pos++;
		v[o++] = p->text[p->pos];
	}
	v[o] = '\0';
	if (p->pos >= p->len) {
		free(v);
		return fail(p, at, "missing closing \"");
	}
	p->pos++;
	return make_term(p, at, f, QUERY_EXACT, v);
}

/* a value word [from, to) of field f */
static struct query_node *parse_value(struct parser *p, size_t from, size_t to, struct field f)
{
	struct word w;
	if (read_word(p, from, to, &w) < 0)
		return NULL;
	p->pos = to;
	if (w.star) {
		free(w.exact);
		free(w.pattern);
		return make_term(p, from, f, QUERY_EXISTS, NULL);
	}
	free(w.wild ? w.exact : w.pattern);
	return make_term(p, from, f, w.wild ? QUERY_PATTERN : QUERY_EXACT,
	    w.wild ? w.pattern : w.exact);
}

/* the field named by [from, to); a name is kept in *name (to free) */
static int resolve_field(struct parser *p, size_t from, size_t to, struct field *f, char **name)
{
	struct word w;
	*name = NULL;
	if (read_word(p, from, to, &w) < 0)
		return -1;
	free(w.pattern);
	if (w.wild && !w.star) {
		free(w.exact);
		fail(p, from, "wildcards in field names are not supported");
		return -1;
	}
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (strcmp(w.exact, fields[i].name) == 0) {
			free(w.exact);
			*f = (struct field){ fields[i].f, NULL };
			return 0;
		}
	size_t k = sizeof field_prefix - 1;
	if (strncmp(w.exact, field_prefix, k) == 0 && w.exact[k])
		memmove(w.exact, w.exact + k, strlen(w.exact + k) + 1);
	*name = w.exact;
	*f = (struct field){ QUERY_ATTRIBUTE, w.exact };
	return 0;
}

/* field:value, field:"value" or field:( ... ) with the ':' at colon */
static struct query_node *parse_fielded(struct parser *p, size_t from, size_t colon)
{
	struct field f;
	char *name;
	struct query_node *n = NULL;
	if (colon == from)
		return fail(p, from, "missing field name before :");
	if (resolve_field(p, from, colon, &f, &name) < 0)
		return NULL;
	p->pos = colon + 1;
	char c = p->pos < p->len ? p->text[p->pos] : '\0';
	if (c == '(')
		n = parse_group(p, f);
	else if (c == '"')
		n = parse_quoted(p, f);
	else if (c == '\0' || c == ')' || is_space(c))
		fail(p, p->pos, "missing value after :");
	else {
		size_t unused;
		n = parse_value(p, p->pos, word_end(p, p->pos, &unused), f);
	}
	free(name);
	return n;
}

static struct query_node *parse_primary(struct parser *p, struct field df)
{
	size_t n, colon;
	skip_ws(p);
	if (p->pos >= p->len)
		return fail(p, p->pos, "missing term");
	char c = p->text[p->pos];
	if (c == ')')
		return fail(p, p->pos, "unexpected )");
	if (c == '(')
		return parse_group(p, df);
	if (c == '"')
		return parse_quoted(p, df);
	enum op op = peek_op(p, &n);
	if (op == OP_AND || op == OP_OR)
		return fail(p, p->pos, "unexpected %.*s", (int)n, p->text + p->pos);
	size_t end = word_end(p, p->pos, &colon);
	if (colon != NO_COLON)
		return parse_fielded(p, p->pos, colon);
	return parse_value(p, p->pos, end, df);
}

/* NOT x, !x, -x (negation) and +x (required: x itself) */
static struct query_node *parse_unary(struct parser *p, struct field df)
{
	size_t n = 1, at;
	int neg;
	skip_ws(p);
	at = p->pos;
	char c = at < p->len ? p->text[at] : '\0';
	if (peek_op(p, &n) == OP_NOT)
		neg = 1;
	else if (c == '-' || c == '+')
		neg = c == '-';
	else
		return parse_primary(p, df);
	char next = p->text[at + 1];
	if ((c == '-' || c == '+') && (next == '\0' || is_space(next) || next == ')'))
		return fail(p, at, "%c without a term", c);
	if (++p->depth > QUERY_MAX_DEPTH)
		return fail(p, at, "nested deeper than %d", QUERY_MAX_DEPTH);
	p->pos += n;
	struct query_node *x = parse_unary(p, df), *not;
	p->depth--;
	if (!x || !neg)
		return x;
	if (!(not = node_new(p, QUERY_NOT)) || node_add(p, not, x) < 0) {
		free(not);
		node_free(x);
		return NULL;
	}
	return not;
}

/* unary terms joined by AND, &&, or nothing */
static struct query_node *parse_and(struct parser *p, struct field df)
{
	struct query_node *acc = parse_unary(p, df), *c;
	size_t n;
	while (acc) {
		skip_ws(p);
		if (p->pos >= p->len || p->text[p->pos] == ')')
			break;
		enum op op = peek_op(p, &n);
		if (op == OP_OR)
			break;
		if (op == OP_AND)
			p->pos += n;
		if (!(c = parse_unary(p, df)) || join(p, QUERY_AND, &acc, c) < 0) {
			node_free(acc);
			return NULL;
		}
	}
	return acc;
}

static struct query_node *parse_or(struct parser *p, struct field df)
{
	struct query_node *acc = parse_and(p, df), *c;
	size_t n;
	while (acc) {
		skip_ws(p);
		if (p->pos >= p->len || peek_op(p, &n) != OP_OR)
			break;
		p->pos += n;
		if (!(c = parse_and(p, df)) || join(p, QUERY_OR, &acc, c) < 0) {
			node_free(acc);
			return NULL;
		}
	}
	return acc;
}

query *query_parse(const char *text, char *err, size_t errlen)
{
	struct parser p = { .text = text, .len = strlen(text), .err = err, .errlen = errlen };
	struct query_node *root = NULL;
	query *q;
	if (p.len > QUERY_MAX_LENGTH)
		return fail(&p, (size_t)-1, "longer than %d bytes", QUERY_MAX_LENGTH);
	skip_ws(&p);
	if (p.pos == p.len)
		return fail(&p, (size_t)-1, "empty query");
	root = parse_or(&p, (struct field){ QUERY_ANY, NULL });
	if (root && p.pos < p.len) {
		node_free(root);
		return fail(&p, p.pos, "unexpected )");
	}
	if (!root)
		return NULL;
	if (!(q = malloc(sizeof *q))) {
		node_free(root);
		return nomem(&p);
	}
	q->root = root;
	return q;
}

void query_free(query *q)
{
	if (q) {
		node_free(q->root);
		free(q);
	}
}

const struct query_node *query_root(const query *q)
{
	return q->root;
}

int query_check(const char *text, char *err, size_t errlen)
{
	query *q = query_parse(text, err, errlen);
	query_free(q);
	return q ? 0 : -1;
}

/* query_format's output, snprintf-like */
struct out {
	char *buf;
	size_t len, n;
};

static void put(struct out *o, const char *s, size_t k)
{
	for (size_t i = 0; i < k; i++, o->n++)
		if (o->n + 1 < o->len)
			o->buf[o->n] = s[i];
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static const char *const field_names[] = {
	[QUERY_ANY] = "*", [QUERY_PRODUCT_ID] = "productId", [QUERY_VERSION] = "version",
	[QUERY_DATASET] = "dataset", [QUERY_TAGS] = "tags", [QUERY_ATTRIBUTE] = field_prefix,
};

static const char *const kind_names[] = {
	[QUERY_AND] = "(AND", [QUERY_OR] = "(OR", [QUERY_NOT] = "(NOT",
};

static void format_term(struct out *o, const struct query_node *n)
{
	puts_(o, field_names[n->field]);
	if (n->field == QUERY_ATTRIBUTE)
		puts_(o, n->attribute);
	puts_(o, ":");
	if (n->match == QUERY_EXISTS) {
		puts_(o, "*");
	} else if (n->match == QUERY_PATTERN) {
		puts_(o, n->value);
	} else {
		puts_(o, "\"");
		for (const char *s = n->value; *s; s++) {
			if (*s == '"' || *s == '\\')
				puts_(o, "\\");
			put(o, s, 1);
		}
		puts_(o, "\"");
	}
}

static void format_node(struct out *o, const struct query_node *n)
{
	if (n->kind == QUERY_ALL) {
		puts_(o, "*");
		return;
	}
	if (n->kind == QUERY_TERM) {
		format_term(o, n);
		return;
	}
	puts_(o, kind_names[n->kind]);
	for (size_t i = 0; i < n->nchild; i++) {
		puts_(o, " ");
		format_node(o, n->child[i]);
	}
	puts_(o, ")");
}

size_t query_format(const query *q, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };
	format_node(&o, q->root);
	if (len)
		buf[o.n < len ? o.n : len - 1] = '\0';
	return o.n;
}
