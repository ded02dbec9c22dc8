/* catalog: the embedded catalog of a tenant — a SQLite file of products
 * (id, version, dataset, tags, free attributes) and their files (dataType,
 * name, url, size, md5) — and the resolution of Lucene-subset queries
 * (lib/query) to files. ferry-catalog fills it; ferry-order-bridge reads it. */
#ifndef FERRY_CATALOG_H
#define FERRY_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

typedef struct catalog catalog;

/* One file of a product, as order-bridge puts it in the item's "files". */
struct catalog_file {
	const char *product_id;
	int64_t version;
	const char *data_type;   /* RAWDATA, QUICKLOOK_SD, QUICKLOOK_MD, QUICKLOOK_HD, ... */
	const char *name;
	const char *url;
	int64_t size;
	const char *md5;
};

enum { CATALOG_SCHEMA_VERSION = 1 };

/* Open (create = 1: create the schema if absent). 0, or -1 and a reason
 * naming the path in err; errno is then EAGAIN when the failure may pass
 * (database locked, I/O error, disk full, memory). */
int catalog_open(const char *path, int create, catalog **out, char *err, size_t errlen);
void catalog_close(catalog *c);
const char *catalog_error(const catalog *c);

/* Add or replace one product given as JSON:
 * {"productId":"P1","version":1,"dataset":"...","tags":["a","b"],
 *  "attributes":{"k":"v",...},"files":[{"dataType":..,"name":..,"url":..,"size":..,"md5":..}]}
 * 0, or -1 with a reason naming the bad field (catalog_error). version
 * defaults to 1; attribute values are strings, numbers or booleans (kept as
 * text) or arrays of them; no two files of a product share a name. The
 * product replaces the one with its productId and version, atomically. */
int catalog_add(catalog *c, const cJSON *product);
/* Batches of adds in one transaction. Inside a batch a catalog_add that
 * fails spoils only itself. */
int catalog_begin(catalog *c);
int catalog_commit(catalog *c);
int catalog_rollback(catalog *c);
/* 1 if the last failure may pass (locked, I/O, disk full, memory): retry */
int catalog_temporary(const catalog *c);

/* Call fn for every file of every product matched by any of the queries
 * (OR-ed), ordered by productId, version, name; fn returning non-zero stops.
 * Returns the number of files visited, or -1 (parse error or I/O: reason in
 * catalog_error; catalog_temporary says which). The strings of *f live
 * until fn returns; fn must not call other catalog functions on c. One read
 * snapshot: a concurrent add is seen entirely or not at all. */
typedef int catalog_file_fn(void *arg, const struct catalog_file *f);
int catalog_resolve(catalog *c, const char *const *queries, size_t nqueries,
    catalog_file_fn *fn, void *arg);

/* List products: fn(arg, product JSON) per product, ordered by productId
 * and version, in the shape catalog_add takes; fn returning non-zero
 * stops. The number of products visited, or -1. */
typedef int catalog_product_fn(void *arg, const cJSON *product);
int catalog_list(catalog *c, catalog_product_fn *fn, void *arg);

/* One file line as an order backend prints it (DESIGN §6), checked as
 * catalog_add checks files: productId a non-empty string, version an
 * integer >= 0 (default 1), dataType, name and url non-empty strings, size
 * an integer >= 0, md5 32 hex digits (either case, kept as given). *f
 * points into obj. 0, or -1 with a reason naming the field in err. */
int catalog_file_parse(const cJSON *obj, struct catalog_file *f, char *err, size_t errlen);
/* f as that JSON object (keys in the order of DESIGN §3); NULL on ENOMEM */
cJSON *catalog_file_json(const struct catalog_file *f);

/* The filters of order.filters, applied alike to the catalog's files and
 * to an order command's lines. dataTypes: NULL or none = every file, else
 * a file is kept if its dataType is one of them, where QUICKLOOK stands
 * for QUICKLOOK_SD, QUICKLOOK_MD and QUICKLOOK_HD (and itself); regexp:
 * NULL = every name, else Java-style, matched against the whole name
 * (lib/validate), compiled once. A filter serves one request: it holds
 * that request's budget of time spent matching names. */
typedef struct catalog_filter catalog_filter;
/* the budget a new filter gets (CPU a request may spend on its regexp) */
enum { CATALOG_FILTER_BUDGET_MS = 5000 };
/* 0 and *out, or -1 with the reason in err (errno EINVAL: bad regexp,
 * ENOMEM) */
int catalog_filter_new(const char *const *data_types, size_t ntypes, const char *regexp,
    catalog_filter **out, char *err, size_t errlen);
/* from a request's order.filters object ({"dataTypes":[...],
 * "filenameRegExp":"..."}); NULL or JSON null filters = keep everything */
int catalog_filter_from_json(const cJSON *filters, catalog_filter **out,
    char *err, size_t errlen);
/* set the budget to ms milliseconds of matching (0: the next match is the
 * last) */
void catalog_filter_set_budget(catalog_filter *f, int64_t ms);
void catalog_filter_free(catalog_filter *f);
/* 1 keep, 0 drop, -1 error, errno: ENOMEM; E2BIG when that one name
 * needs more than the regexp's match limits (lib/validate); ETIME when
 * the matches so far have used up the budget. Either error ends the
 * request: the file list would otherwise be wrong or take too long. */
int catalog_filter_match(catalog_filter *f, const struct catalog_file *file);
/* the names matched so far (for a message) */
uint64_t catalog_filter_matched(const catalog_filter *f);

#endif
