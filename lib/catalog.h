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

/* Open (create = 1: create the schema if absent). 0, or -1 and a reason
 * naming the path in err. */
int catalog_open(const char *path, int create, catalog **out, char *err, size_t errlen);
void catalog_close(catalog *c);
const char *catalog_error(const catalog *c);

/* Add or replace one product given as JSON:
 * {"productId":"P1","version":1,"dataset":"...","tags":["a","b"],
 *  "attributes":{"k":"v",...},"files":[{"dataType":..,"name":..,"url":..,"size":..,"md5":..}]}
 * 0, or -1 with a reason naming the bad field. */
int catalog_add(catalog *c, const cJSON *product);
/* Batches of adds in one transaction. */
int catalog_begin(catalog *c);
int catalog_commit(catalog *c);

/* Call fn for every file of every product matched by any of the queries
 * (OR-ed), ordered by productId, version, name; fn returning non-zero stops.
 * Returns the number of files visited, or -1 (parse error or I/O: reason in
 * catalog_error). */
typedef int catalog_file_fn(void *arg, const struct catalog_file *f);
int catalog_resolve(catalog *c, const char *const *queries, size_t nqueries,
    catalog_file_fn *fn, void *arg);

/* List products: fn(arg, product JSON) per product. */
typedef int catalog_product_fn(void *arg, const cJSON *product);
int catalog_list(catalog *c, catalog_product_fn *fn, void *arg);

#endif
