/* fuzz query: the catalog query parser (lib/query). Properties: a parse
 * gives a well-formed tree (AND/OR with >= 2 children, NOT with one, terms
 * with a value unless field:*, an attribute exactly for attributes) within
 * the caps on terms and depth; query_check agrees with query_parse; an
 * error names the query; query_format is snprintf-like. */
#include <errno.h>

#include "fuzz.h"
#include "query.h"
#include "util.h"

FUZZ_TARGET("query");

/* each () or unary level may add an AND and an OR node around a term */
enum { DEPTH_BOUND = 3 * (QUERY_MAX_DEPTH + 2) };

static size_t check_node(const struct query_node *n, int depth)
{
	size_t terms = 0;
	FUZZ_CHECK(n && depth <= DEPTH_BOUND);
	switch (n->kind) {
	case QUERY_ALL:
		FUZZ_CHECK(n->nchild == 0);
		return 1;
	case QUERY_TERM:
		FUZZ_CHECK(n->nchild == 0);
		FUZZ_CHECK((n->match == QUERY_EXISTS) == (n->value == NULL));
		FUZZ_CHECK((n->field == QUERY_ATTRIBUTE) == (n->attribute != NULL));
		FUZZ_CHECK(n->field != QUERY_ANY || n->match != QUERY_EXISTS);
		return 1;
	case QUERY_AND:
	case QUERY_OR:
		FUZZ_CHECK(n->nchild >= 2);
		break;
	case QUERY_NOT:
		FUZZ_CHECK(n->nchild == 1);
		break;
	default:
		FUZZ_CHECK(!"unknown node kind");
	}
	for (size_t i = 0; i < n->nchild; i++)
		terms += check_node(n->child[i], depth + 1);
	return terms;
}

static void check_format(const query *q, size_t small)
{
	size_t n = query_format(q, NULL, 0);
	char *buf = malloc(n + 1), *cut = malloc(small);
	if (!buf || !cut)
		abort();
	FUZZ_CHECK(query_format(q, buf, n + 1) == n);
	FUZZ_CHECK(strlen(buf) == n);
	FUZZ_CHECK(query_format(q, cut, small) == n);
	size_t k = n < small - 1 ? n : small - 1;
	FUZZ_CHECK(memcmp(cut, buf, k) == 0 && cut[k] == '\0');
	free(buf);
	free(cut);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	char err[256], err2[256];
	err[0] = err2[0] = '\0';
	errno = 0;
	query *q = query_parse(text, err, sizeof err);
	int saved = errno;
	int rc = query_check(text, err2, sizeof err2);
	FUZZ_CHECK(rc == (q ? 0 : -1));
	if (!q) {
		FUZZ_CHECK(saved == EINVAL || saved == ENOMEM);
		FUZZ_CHECK(strncmp(err, "query", 5) == 0);
		FUZZ_CHECK(strcmp(err, err2) == 0);
		/* errors go into JSON responses: valid UTF-8, even cut short */
		FUZZ_CHECK(util_utf8_valid(err, strlen(err)));
		/* a tiny buffer is cut, not overrun */
		char tiny[8];
		FUZZ_CHECK(query_check(text, tiny, sizeof tiny) == -1 && strlen(tiny) < sizeof tiny);
		FUZZ_CHECK(util_utf8_valid(tiny, strlen(tiny)));
	} else {
		FUZZ_CHECK(check_node(query_root(q), 0) <= QUERY_MAX_TERMS);
		check_format(q, size % 50 + 1);
	}
	query_free(q);
	free(text);
	return 0;
}
