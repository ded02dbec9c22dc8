/* query: the Lucene subset that REGARDS clients write in order.queries,
 * parsed into a small tree (lib/catalog compiles it to SQL). Hostile input
 * is bounded: length, nesting depth and number of terms are capped. */
#ifndef FERRY_QUERY_H
#define FERRY_QUERY_H

#include <stddef.h>

enum {
	QUERY_MAX_LENGTH = 65536,  /* bytes of query text */
	QUERY_MAX_DEPTH = 100,     /* nested (), NOT, !, -, + */
	QUERY_MAX_TERMS = 1024,    /* field:value terms in one query */
};

typedef struct query query;

enum query_kind {
	QUERY_ALL,    /* "*": every product */
	QUERY_TERM,   /* one field:value */
	QUERY_AND,    /* every child (n >= 2) */
	QUERY_OR,     /* any child (n >= 2) */
	QUERY_NOT,    /* not its one child */
};

enum query_field {
	QUERY_ANY,         /* bare term: productId, dataset, any tag or any attribute value */
	QUERY_PRODUCT_ID,  /* productId, id, providerId */
	QUERY_VERSION,     /* version */
	QUERY_DATASET,     /* dataset */
	QUERY_TAGS,        /* tags, tag */
	QUERY_ATTRIBUTE,   /* any other name (or properties.<name>): a free attribute */
};

enum query_match {
	QUERY_EXACT,    /* the whole value, compared ignoring ASCII case */
	QUERY_PATTERN,  /* value is a pattern: '*' any run, '?' one character, '\' quotes the next */
	QUERY_EXISTS,   /* field:* — the field has a value; value is NULL */
};

struct query_node {
	enum query_kind kind;
	/* QUERY_TERM */
	enum query_field field;
	const char *attribute;     /* QUERY_ATTRIBUTE: its name (case-sensitive) */
	enum query_match match;
	const char *value;
	/* QUERY_AND, QUERY_OR: nchild children; QUERY_NOT: one */
	struct query_node **child;
	size_t nchild;
};

/* Parse text. NULL on error, with err set to
 * query "tags:(a": missing ) at position 6
 * (positions count characters from 1; the query is cut to 64 characters in
 * the message) and errno EINVAL, or ENOMEM. */
query *query_parse(const char *text, char *err, size_t errlen);
void query_free(query *q);
const struct query_node *query_root(const query *q);

/* 0 if text parses, else -1 with the reason of query_parse in err. */
int query_check(const char *text, char *err, size_t errlen);

/* The tree in a canonical form, for tests and diagnostics:
 * (AND tags:"a" (NOT dataset:b*)) — attributes as properties.<name>,
 * bare terms as *:<value>. Returns the length it needs (snprintf-like). */
size_t query_format(const query *q, char *buf, size_t len);

#endif
