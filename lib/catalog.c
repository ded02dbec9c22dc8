/* catalog: a tenant's products and files in one SQLite file (WAL), and the
 * resolution of order queries: each query (lib/query) is compiled to a SQL
 * condition on products, the matches gathered in a temporary table, then
 * their files streamed in order from one read snapshot. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"
#include "catalog.h"
#include "query.h"
#include "util.h"
#include "validate.h"

enum {
	BUSY_TIMEOUT_MS = 10000,
};

/* JSON numbers are doubles: integers are exact up to 2^53 */
#define JSON_INT_MAX 9007199254740992.0

/* migrations[v] takes a catalog from schema version v to v+1. Values and
 * dataset compare ignoring ASCII case (NOCASE columns, so their indexes
 * serve = and LIKE); productId keeps its case for identity and has a NOCASE
 * index for queries. */
static const char *const migrations[CATALOG_SCHEMA_VERSION] = {
	/* 0 -> 1 */
	"CREATE TABLE product ("
	" id INTEGER PRIMARY KEY,"
	" product_id TEXT NOT NULL,"
	" version INTEGER NOT NULL,"
	" dataset TEXT COLLATE NOCASE,"
	" UNIQUE (product_id, version));"
	"CREATE INDEX product_id_nocase ON product(product_id COLLATE NOCASE);"
	"CREATE INDEX product_dataset ON product(dataset);"
	"CREATE TABLE tag ("
	" product INTEGER NOT NULL REFERENCES product(id) ON DELETE CASCADE,"
	" tag TEXT NOT NULL COLLATE NOCASE,"
	" PRIMARY KEY (product, tag)) WITHOUT ROWID;"
	"CREATE INDEX tag_tag ON tag(tag, product);"
	"CREATE TABLE attribute ("
	" product INTEGER NOT NULL REFERENCES product(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL,"
	" value TEXT NOT NULL COLLATE NOCASE);"
	"CREATE INDEX attribute_name_value ON attribute(name, value);"
	"CREATE INDEX attribute_value ON attribute(value);"
	"CREATE INDEX attribute_product ON attribute(product);"
	"CREATE TABLE file ("
	" product INTEGER NOT NULL REFERENCES product(id) ON DELETE CASCADE,"
	" data_type TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" url TEXT NOT NULL,"
	" size INTEGER NOT NULL,"
	" md5 TEXT NOT NULL,"
	" UNIQUE (product, name));",
};

#define FILE_COLUMNS "p.product_id, p.version, f.data_type, f.name, f.url, f.size, f.md5"

enum st {
	ST_DELETE, ST_PRODUCT, ST_TAG, ST_ATTRIBUTE, ST_FILE,
	ST_LIST, ST_TAGS_OF, ST_ATTRIBUTES_OF, ST_FILES_OF,
	ST_CLEAR, ST_FILES_ALL, ST_FILES_RESOLVED, ST_COUNT
};

static const char *const sql[ST_COUNT] = {
	[ST_DELETE] = "DELETE FROM product WHERE product_id = ?1 AND version = ?2",
	[ST_PRODUCT] = "INSERT INTO product(product_id, version, dataset) VALUES (?1, ?2, ?3)",
	[ST_TAG] = "INSERT OR IGNORE INTO tag(product, tag) VALUES (?1, ?2)",
	[ST_ATTRIBUTE] = "INSERT INTO attribute(product, name, value) VALUES (?1, ?2, ?3)",
	[ST_FILE] = "INSERT INTO file(product, data_type, name, url, size, md5)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_LIST] = "SELECT id, product_id, version, dataset FROM product ORDER BY product_id, version",
	[ST_TAGS_OF] = "SELECT tag FROM tag WHERE product = ?1 ORDER BY tag",
	[ST_ATTRIBUTES_OF] = "SELECT name, value FROM attribute WHERE product = ?1 ORDER BY name, rowid",
	[ST_FILES_OF] = "SELECT data_type, name, url, size, md5 FROM file WHERE product = ?1 ORDER BY name",
	[ST_CLEAR] = "DELETE FROM temp.resolved",
	[ST_FILES_ALL] = "SELECT " FILE_COLUMNS " FROM product p JOIN file f ON f.product = p.id"
	    " ORDER BY p.product_id, p.version, f.name",
	[ST_FILES_RESOLVED] = "SELECT " FILE_COLUMNS " FROM temp.resolved r"
	    " JOIN product p ON p.id = r.id JOIN file f ON f.product = p.id"
	    " ORDER BY p.product_id, p.version, f.name",
};

struct catalog {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	char *path;
	char err[1024];
	int temporary;
	int in_batch;
};

/* --- errors and statements -------------------------------------------- */


/* Record a failure of `what` with SQLite's reason; always -1. */
static int fail(catalog *c, int rc, const char *what)
{
	const char *why = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
	int sys = c->db ? sqlite3_system_errno(c->db) : 0;
	if (sys && (rc & 0xff) != SQLITE_CONSTRAINT)
		snprintf(c->err, sizeof c->err, "catalog %s: %s: %s (%s)", c->path, what, why, strerror(sys));
	else
		snprintf(c->err, sizeof c->err, "catalog %s: %s: %s", c->path, what, why);
	c->temporary = db_temporary(rc);
	return -1;
}

static int failf(catalog *c, int temporary, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int failf(catalog *c, int temporary, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	c->temporary = temporary;
	return -1;
}

const char *catalog_error(const catalog *c) { return c->err; }
int catalog_temporary(const catalog *c) { return c->temporary; }

static int exec(catalog *c, const char *s, const char *what)
{
	int rc = sqlite3_exec(c->db, s, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(c, rc, what);
}

/* the cached statement q, or NULL (error recorded) */
static sqlite3_stmt *stmt(catalog *c, enum st q)
{
	int rc;
	sqlite3_stmt *s = db_cached(c->db, &c->st[q], sql[q], &rc);
	if (!s)
		fail(c, rc, "prepare");
	return s;
}



/* step a statement that returns no rows; 0 or -1 */
static int run(catalog *c, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	db_done(s);
	return rc == SQLITE_DONE ? 0 : fail(c, rc, what);
}

/* --- open, schema, transactions ---------------------------------------- */

static int pragma_int(catalog *c, const char *q, int64_t *out)
{
	int rc = db_pragma_int(c->db, q, out);
	return rc == SQLITE_ROW ? 0 : fail(c, rc, "open");
}

/* Bring the schema to CATALOG_SCHEMA_VERSION; version 0 (a new file) only
 * when create is set. */
static int migrate(catalog *c, int create)
{
	int64_t v;
	if (pragma_int(c, "PRAGMA user_version", &v) < 0)
		return -1;
	if (v > CATALOG_SCHEMA_VERSION)
		return failf(c, 0, "catalog %s: schema version %lld is newer than this ferry knows (%d)",
		    c->path, (long long)v, CATALOG_SCHEMA_VERSION);
	if (v == CATALOG_SCHEMA_VERSION)
		return 0;
	if (v == 0 && !create)
		return failf(c, 0, "catalog %s: not a ferry catalog (create it with ferry-catalog init)",
		    c->path);
	if (exec(c, "BEGIN IMMEDIATE", "create schema") < 0)
		return -1;
	/* another process may have migrated while we waited for the lock */
	if (pragma_int(c, "PRAGMA user_version", &v) < 0)
		goto rollback;
	for (; v < CATALOG_SCHEMA_VERSION; v++)
		if (exec(c, migrations[v], "create schema") < 0)
			goto rollback;
	char set[64];
	snprintf(set, sizeof set, "PRAGMA user_version = %d", CATALOG_SCHEMA_VERSION);
	if (exec(c, set, "create schema") < 0 || exec(c, "COMMIT", "create schema") < 0)
		goto rollback;
	return 0;
rollback:
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Switching a new file to WAL takes a lock the busy handler does not wait
 * for when another process is creating the same file: wait here. */
static int set_wal(catalog *c)
{
	for (int waited = 0;; waited += 20) {
		sqlite3_stmt *s;
		int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (rc == SQLITE_OK) {
			rc = sqlite3_step(s);
			if (rc == SQLITE_ROW) {
				int wal = !strcmp((const char *)sqlite3_column_text(s, 0), "wal");
				sqlite3_finalize(s);
				return wal ? 0 : failf(c, 0, "catalog %s: cannot use WAL mode "
				    "(is it on a network filesystem?)", c->path);
			}
			sqlite3_finalize(s);
		}
		if (((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) ||
		    waited >= BUSY_TIMEOUT_MS)
			return fail(c, rc, "open");
		usleep(20000);
	}
}

static int configure(catalog *c, int create)
{
	db_busy_wait(c->db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(c->db, 1);
	if (set_wal(c) < 0 || exec(c, "PRAGMA foreign_keys = ON", "open") < 0 ||
	    exec(c, "PRAGMA synchronous = NORMAL", "open") < 0)
		return -1;
	return migrate(c, create);
}

int catalog_open(const char *path, int create, catalog **out, char *err, size_t errlen)
{
	catalog *c = calloc(1, sizeof *c);
	*out = NULL;
	if (!c || !(c->path = strdup(path))) {
		free(c);
		snprintf(err, errlen, "catalog %s: %s", path, strerror(ENOMEM));
		errno = EAGAIN;
		return -1;
	}
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
	db_init();
	int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		if (!create && access(path, F_OK) < 0)
			failf(c, 0, "catalog %s: %s", path, strerror(errno));
		else
			fail(c, rc, "unable to open");
	}
	if (rc != SQLITE_OK || configure(c, create) < 0) {
		util_strlcpy(err, c->err, errlen);
		int temp = c->temporary;
		catalog_close(c);
		errno = temp ? EAGAIN : EINVAL;
		return -1;
	}
	*out = c;
	return 0;
}

void catalog_close(catalog *c)
{
	if (!c)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(c->st[i]);
	sqlite3_close(c->db);
	free(c->path);
	free(c);
}

int catalog_begin(catalog *c)
{
	if (c->in_batch)
		return failf(c, 0, "catalog %s: a batch is already open", c->path);
	if (exec(c, "BEGIN IMMEDIATE", "begin") < 0)
		return -1;
	c->in_batch = 1;
	return 0;
}

int catalog_commit(catalog *c)
{
	if (!c->in_batch)
		return failf(c, 0, "catalog %s: no batch is open", c->path);
	c->in_batch = 0;
	if (exec(c, "COMMIT", "commit") < 0) {
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int catalog_rollback(catalog *c)
{
	if (!c->in_batch)
		return 0;
	c->in_batch = 0;
	return exec(c, "ROLLBACK", "rollback");
}

/* one operation: its own write transaction, or a savepoint in a batch */
static int op_begin(catalog *c)
{
	return exec(c, c->in_batch ? "SAVEPOINT op" : "BEGIN IMMEDIATE", "begin");
}

static int op_end(catalog *c, int ok)
{
	if (ok && exec(c, c->in_batch ? "RELEASE op" : "COMMIT", "commit") == 0)
		return 0;
	char saved[sizeof c->err];
	int temp = c->temporary;
	memcpy(saved, c->err, sizeof saved);
	sqlite3_exec(c->db, c->in_batch ? "ROLLBACK TO op; RELEASE op" : "ROLLBACK", NULL, NULL, NULL);
	memcpy(c->err, saved, sizeof saved);
	c->temporary = temp;
	return -1;
}

/* --- checking products and files ----------------------------------------- */

enum rule_type { R_STR, R_INT, R_MD5 };

struct rule {
	const char *key;
	enum rule_type type;
	int required;
	size_t off;          /* in struct catalog_file */
};

/* productId and version first: a product's files lack them */
static const struct rule file_rules[] = {
	{ "productId", R_STR, 1, offsetof(struct catalog_file, product_id) },
	{ "version", R_INT, 0, offsetof(struct catalog_file, version) },
	{ "dataType", R_STR, 1, offsetof(struct catalog_file, data_type) },
	{ "name", R_STR, 1, offsetof(struct catalog_file, name) },
	{ "url", R_STR, 1, offsetof(struct catalog_file, url) },
	{ "size", R_INT, 1, offsetof(struct catalog_file, size) },
	{ "md5", R_MD5, 1, offsetof(struct catalog_file, md5) },
};
enum { FILE_RULES = sizeof file_rules / sizeof file_rules[0], OWN_RULES = 2 };

static const char *const rule_want[] = {
	[R_STR] = "must be a non-empty string",
	[R_INT] = "must be an integer >= 0",
	[R_MD5] = "must be 32 hexadecimal digits",
};

static int json_int(const cJSON *v, int64_t *out)
{
	if (!cJSON_IsNumber(v))
		return -1;
	double d = v->valuedouble;
	if (!(d >= 0 && d <= JSON_INT_MAX) || d != (double)(int64_t)d)
		return -1;
	*out = (int64_t)d;
	return 0;
}

/* check rules [from, to) on obj into f; prefix names the object in errors */
static int check_rules(const cJSON *obj, size_t from, size_t to, struct catalog_file *f,
    const char *prefix, char *err, size_t errlen)
{
	for (size_t i = from; i < to; i++) {
		const struct rule *r = &file_rules[i];
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, r->key);
		char *at = (char *)f + r->off;
		int ok;
		if (!v || cJSON_IsNull(v)) {
			if (r->required) {
				snprintf(err, errlen, "%s%s: missing", prefix, r->key);
				return -1;
			}
			*(int64_t *)(void *)at = 1;     /* version's default */
			continue;
		}
		if (r->type == R_INT)
			ok = json_int(v, (int64_t *)(void *)at) == 0;
		else
			ok = cJSON_IsString(v) && v->valuestring[0] &&
			    (r->type == R_STR || util_is_hex(v->valuestring, 32));
		if (!ok) {
			snprintf(err, errlen, "%s%s: %s", prefix, r->key, rule_want[r->type]);
			return -1;
		}
		if (r->type != R_INT)
			*(const char **)(void *)at = v->valuestring;
	}
	return 0;
}

int catalog_file_parse(const cJSON *obj, struct catalog_file *f, char *err, size_t errlen)
{
	memset(f, 0, sizeof *f);
	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	return check_rules(obj, 0, FILE_RULES, f, "", err, errlen);
}

/* an optional member: absent or null (NULL), else it must satisfy is() */
static int optional(const cJSON *obj, const char *key, cJSON_bool (*is)(const cJSON *),
    const cJSON **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	*out = v && !cJSON_IsNull(v) ? v : NULL;
	return !*out || is(*out) ? 0 : -1;
}

static int check_tags(const cJSON *tags, char *err, size_t errlen)
{
	int i = 0;
	for (const cJSON *t = tags ? tags->child : NULL; t; t = t->next, i++)
		if (!cJSON_IsString(t) || !t->valuestring[0]) {
			snprintf(err, errlen, "tags[%d]: must be a non-empty string", i);
			return -1;
		}
	return 0;
}

static int is_scalar(const cJSON *v)
{
	return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v);
}

static int check_attributes(const cJSON *attrs, char *err, size_t errlen)
{
	for (const cJSON *a = attrs ? attrs->child : NULL; a; a = a->next) {
		if (!a->string[0]) {
			snprintf(err, errlen, "attributes: a name is empty");
			return -1;
		}
		int ok = is_scalar(a);
		if (cJSON_IsArray(a)) {
			ok = 1;
			for (const cJSON *e = a->child; e; e = e->next)
				ok &= is_scalar(e);
		}
		if (!ok) {
			snprintf(err, errlen, "attributes.%.64s: must be a string, number, boolean "
			    "or an array of them", a->string);
			return -1;
		}
	}
	return 0;
}

struct product {
	struct catalog_file id;          /* product_id and version */
	const cJSON *dataset, *tags, *attributes, *files;
};

static int check_product(const cJSON *p, struct product *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (!cJSON_IsObject(p)) {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	if (check_rules(p, 0, OWN_RULES, &out->id, "", err, errlen) < 0)
		return -1;
	static const struct {
		const char *key;
		cJSON_bool (*is)(const cJSON *);
		size_t off;
		const char *want;
	} members[] = {
		{ "dataset", cJSON_IsString, offsetof(struct product, dataset), "a string" },
		{ "tags", cJSON_IsArray, offsetof(struct product, tags), "an array of strings" },
		{ "attributes", cJSON_IsObject, offsetof(struct product, attributes), "an object" },
		{ "files", cJSON_IsArray, offsetof(struct product, files), "an array of objects" },
	};
	for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
		if (optional(p, members[i].key, members[i].is,
		    (const cJSON **)(void *)((char *)out + members[i].off)) < 0) {
			snprintf(err, errlen, "%s: must be %s", members[i].key, members[i].want);
			return -1;
		}
	if (check_tags(out->tags, err, errlen) < 0 || check_attributes(out->attributes, err, errlen) < 0)
		return -1;
	int i = 0;
	for (const cJSON *f = out->files ? out->files->child : NULL; f; f = f->next, i++) {
		char prefix[32];
		struct catalog_file scratch;
		snprintf(prefix, sizeof prefix, "files[%d].", i);
		if (!cJSON_IsObject(f)) {
			snprintf(err, errlen, "files[%d]: must be an object", i);
			return -1;
		}
		if (check_rules(f, OWN_RULES, FILE_RULES, &scratch, prefix, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* --- adding ------------------------------------------------------------ */

static int insert_tags(catalog *c, int64_t id, const cJSON *tags)
{
	sqlite3_stmt *s = stmt(c, ST_TAG);
	for (const cJSON *t = tags ? tags->child : NULL; s && t; t = t->next) {
		sqlite3_bind_int64(s, 1, id);
		db_bind_text(s, 2, t->valuestring);
		if (run(c, s, "add tag") < 0)
			return -1;
	}
	return s ? 0 : -1;
}

/* a scalar attribute value as text: numbers as integers when they are */
static const char *scalar_text(const cJSON *v, char *buf, size_t len)
{
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v) ? "true" : "false";
	double d = v->valuedouble;
	if (d >= -JSON_INT_MAX && d <= JSON_INT_MAX && d == (double)(int64_t)d)
		snprintf(buf, len, "%lld", (long long)d);
	else
		snprintf(buf, len, "%.17g", d);
	return buf;
}

static int insert_value(catalog *c, sqlite3_stmt *s, int64_t id, const char *name, const cJSON *v)
{
	char buf[40];
	if (cJSON_IsNull(v))
		return 0;
	sqlite3_bind_int64(s, 1, id);
	db_bind_text(s, 2, name);
	db_bind_text(s, 3, scalar_text(v, buf, sizeof buf));
	return run(c, s, "add attribute");
}

static int insert_attributes(catalog *c, int64_t id, const cJSON *attrs)
{
	sqlite3_stmt *s = stmt(c, ST_ATTRIBUTE);
	for (const cJSON *a = attrs ? attrs->child : NULL; s && a; a = a->next) {
		if (!cJSON_IsArray(a) && insert_value(c, s, id, a->string, a) < 0)
			return -1;
		for (const cJSON *e = cJSON_IsArray(a) ? a->child : NULL; e; e = e->next)
			if (insert_value(c, s, id, a->string, e) < 0)
				return -1;
	}
	return s ? 0 : -1;
}

static int insert_files(catalog *c, int64_t id, const cJSON *files)
{
	sqlite3_stmt *s = stmt(c, ST_FILE);
	int i = 0;
	for (const cJSON *f = files ? files->child : NULL; s && f; f = f->next, i++) {
		struct catalog_file cf;
		char err[64], md5[33];
		check_rules(f, OWN_RULES, FILE_RULES, &cf, "", err, sizeof err);
		for (int k = 0; k < 32; k++)
			md5[k] = (char)(cf.md5[k] | 0x20);       /* hex digits: lowercase */
		md5[32] = '\0';
		sqlite3_bind_int64(s, 1, id);
		db_bind_text(s, 2, cf.data_type);
		db_bind_text(s, 3, cf.name);
		db_bind_text(s, 4, cf.url);
		sqlite3_bind_int64(s, 5, cf.size);
		db_bind_text(s, 6, md5);
		int rc = sqlite3_step(s);
		db_done(s);
		if ((rc & 0xff) == SQLITE_CONSTRAINT)
			return failf(c, 0, "files[%d].name: \"%.200s\" is already a file of this product",
			    i, cf.name);
		if (rc != SQLITE_DONE)
			return fail(c, rc, "add file");
	}
	return s ? 0 : -1;
}

static int insert_product(catalog *c, const struct product *p)
{
	sqlite3_stmt *del = stmt(c, ST_DELETE), *ins = stmt(c, ST_PRODUCT);
	if (!del || !ins)
		return -1;
	db_bind_text(del, 1, p->id.product_id);
	sqlite3_bind_int64(del, 2, p->id.version);
	if (run(c, del, "replace product") < 0)
		return -1;
	db_bind_text(ins, 1, p->id.product_id);
	sqlite3_bind_int64(ins, 2, p->id.version);
	db_bind_text(ins, 3, p->dataset ? p->dataset->valuestring : NULL);
	if (run(c, ins, "add product") < 0)
		return -1;
	int64_t id = sqlite3_last_insert_rowid(c->db);
	if (insert_tags(c, id, p->tags) < 0 || insert_attributes(c, id, p->attributes) < 0)
		return -1;
	return insert_files(c, id, p->files);
}

int catalog_add(catalog *c, const cJSON *product)
{
	struct product p;
	char why[256];
	if (check_product(product, &p, why, sizeof why) < 0) {
		const char *id = p.id.product_id;
		if (id)
			return failf(c, 0, "product \"%.200s\": %s", id, why);
		return failf(c, 0, "product: %s", why);
	}
	if (op_begin(c) < 0)
		return -1;
	int rc = insert_product(c, &p);
	if (rc < 0) {
		char saved[sizeof c->err];
		memcpy(saved, c->err, sizeof saved);
		snprintf(c->err, sizeof c->err, "product \"%.200s\": %.700s", p.id.product_id, saved);
	}
	return op_end(c, rc == 0);
}

/* --- listing ------------------------------------------------------------- */

static const char *col(sqlite3_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(s, i);
}

/* attribute name = one value as a string, several as an array */
static int add_attribute(cJSON *attrs, const char *name, const char *value)
{
	cJSON *have = cJSON_GetObjectItemCaseSensitive(attrs, name), *v = cJSON_CreateString(value);
	if (!v)
		return -1;
	if (!have)
		return cJSON_AddItemToObject(attrs, name, v) ? 0 : -1;
	if (cJSON_IsString(have)) {
		cJSON *arr = cJSON_CreateArray(), *first = cJSON_Duplicate(have, 0);
		if (!arr || !first || !cJSON_AddItemToArray(arr, first)) {
			cJSON_Delete(arr);
			cJSON_Delete(first);
			cJSON_Delete(v);
			return -1;
		}
		cJSON_ReplaceItemInObjectCaseSensitive(attrs, name, arr);
		have = arr;
	}
	return cJSON_AddItemToArray(have, v) ? 0 : -1;
}

/* rows of q for product id, each given to put(obj, stmt); 0 or -1 */
static int each_row(catalog *c, enum st q, int64_t id, cJSON *obj,
    int (*put)(cJSON *, sqlite3_stmt *))
{
	sqlite3_stmt *s = stmt(c, q);
	int rc;
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (put(obj, s) < 0) {
			db_done(s);
			return failf(c, 1, "catalog %s: list: %s", c->path, strerror(ENOMEM));
		}
	db_done(s);
	return rc == SQLITE_DONE ? 0 : fail(c, rc, "list");
}

static int put_tag(cJSON *tags, sqlite3_stmt *s)
{
	cJSON *t = cJSON_CreateString(col(s, 0));
	return t && cJSON_AddItemToArray(tags, t) ? 0 : (cJSON_Delete(t), -1);
}

static int put_attribute(cJSON *attrs, sqlite3_stmt *s)
{
	return add_attribute(attrs, col(s, 0), col(s, 1));
}

static int put_file(cJSON *files, sqlite3_stmt *s)
{
	cJSON *f = cJSON_CreateObject();
	if (!f || !cJSON_AddItemToArray(files, f) ||
	    !cJSON_AddStringToObject(f, "dataType", col(s, 0)) ||
	    !cJSON_AddStringToObject(f, "name", col(s, 1)) ||
	    !cJSON_AddStringToObject(f, "url", col(s, 2)) ||
	    !cJSON_AddNumberToObject(f, "size", (double)sqlite3_column_int64(s, 3)) ||
	    !cJSON_AddStringToObject(f, "md5", col(s, 4)))
		return -1;
	return 0;
}

/* the product of the ST_LIST row s, as catalog_add takes it */
static cJSON *product_json(catalog *c, sqlite3_stmt *s)
{
	int64_t id = sqlite3_column_int64(s, 0);
	cJSON *p = cJSON_CreateObject(), *tags, *attrs, *files;
	if (!p || !cJSON_AddStringToObject(p, "productId", col(s, 1)) ||
	    !cJSON_AddNumberToObject(p, "version", (double)sqlite3_column_int64(s, 2)) ||
	    (col(s, 3) && !cJSON_AddStringToObject(p, "dataset", col(s, 3))) ||
	    !(tags = cJSON_AddArrayToObject(p, "tags")) ||
	    !(attrs = cJSON_AddObjectToObject(p, "attributes")) ||
	    !(files = cJSON_AddArrayToObject(p, "files"))) {
		cJSON_Delete(p);
		failf(c, 1, "catalog %s: list: %s", c->path, strerror(ENOMEM));
		return NULL;
	}
	if (each_row(c, ST_TAGS_OF, id, tags, put_tag) < 0 ||
	    each_row(c, ST_ATTRIBUTES_OF, id, attrs, put_attribute) < 0 ||
	    each_row(c, ST_FILES_OF, id, files, put_file) < 0) {
		cJSON_Delete(p);
		return NULL;
	}
	return p;
}

int catalog_list(catalog *c, catalog_product_fn *fn, void *arg)
{
	sqlite3_stmt *s = stmt(c, ST_LIST);
	int rc, n = 0, stop = 0;
	if (!s || exec(c, "SAVEPOINT list", "list") < 0)
		return -1;
	while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		cJSON *p = product_json(c, s);
		if (!p)
			break;
		n++;
		stop = fn(arg, p);
		cJSON_Delete(p);
	}
	if (!stop && rc != SQLITE_ROW && rc != SQLITE_DONE)
		fail(c, rc, "list");
	int ok = stop || rc == SQLITE_DONE;
	db_done(s);
	sqlite3_exec(c->db, "RELEASE list", NULL, NULL, NULL);
	return ok ? n : -1;
}

/* --- resolving: queries compiled to SQL ------------------------------- */

/* A bound parameter: text (borrowed, or owned when a LIKE pattern) or an
 * integer. */
struct param {
	const char *text;
	char *owned;
	int64_t i;
	int is_int;
};

struct sqlbuf {
	char *s;
	size_t n, cap;
	struct param *p;
	int np;
	int nomem;
};

static void sb_put(struct sqlbuf *b, const char *s, size_t k)
{
	if (b->nomem)
		return;
	if (b->n + k + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 1024) + k;
		char *ns = realloc(b->s, cap);
		if (!ns) {
			b->nomem = 1;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->n, s, k);
	b->n += k;
	b->s[b->n] = '\0';
}

static void sb_puts(struct sqlbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* a new parameter; its number (1-based), or 0 when memory ran out */
static int sb_param(struct sqlbuf *b, struct param v)
{
	struct param *np = b->nomem ? NULL : realloc(b->p, (size_t)(b->np + 1) * sizeof *np);
	if (!np) {
		free(v.owned);
		b->nomem = 1;
		return 0;
	}
	b->p = np;
	b->p[b->np++] = v;
	return b->np;
}

static void sb_free(struct sqlbuf *b)
{
	for (int i = 0; i < b->np; i++)
		free(b->p[i].owned);
	free(b->p);
	free(b->s);
}

/* A query pattern ('*', '?', '\' quoting) as a LIKE pattern, escape '\' */
static char *like_pattern(const char *q)
{
	char *out = malloc(2 * strlen(q) + 1), *o = out;
	if (!out)
		return NULL;
	for (; *q; q++) {
		char ch = *q;
		if (ch == '*' || ch == '?') {
			*o++ = ch == '*' ? '%' : '_';
			continue;
		}
		if (ch == '\\' && q[1])
			ch = *++q;
		if (ch == '%' || ch == '_' || ch == '\\')
			*o++ = '\\';
		*o++ = ch;
	}
	*o = '\0';
	return out;
}

/* SQL for one term; '$' stands for the value parameter, '@' for the
 * attribute name. Columns of values are NOCASE, LIKE ignores ASCII case. */
#define LIKE " LIKE $ ESCAPE '\\'"
#define IN_TAG(cond) "p.id IN (SELECT product FROM tag WHERE tag" cond ")"
#define IN_ATTR(cond) "p.id IN (SELECT product FROM attribute WHERE name = @ AND value" cond ")"
#define IN_ANY_ATTR(cond) "p.id IN (SELECT product FROM attribute WHERE value" cond ")"
#define DATASET(cond) "(p.dataset IS NOT NULL AND p.dataset" cond ")"

static const struct { const char *exact, *pattern, *exists; } term_sql[] = {
	[QUERY_PRODUCT_ID] = { "p.product_id = $ COLLATE NOCASE", "p.product_id" LIKE, "1" },
	[QUERY_VERSION] = { "p.version = $", "CAST(p.version AS TEXT)" LIKE, "1" },
	[QUERY_DATASET] = { DATASET(" = $"), DATASET(LIKE), "p.dataset IS NOT NULL" },
	[QUERY_TAGS] = { IN_TAG(" = $"), IN_TAG(LIKE), "p.id IN (SELECT product FROM tag)" },
	[QUERY_ATTRIBUTE] = { IN_ATTR(" = $"), IN_ATTR(LIKE),
	    "p.id IN (SELECT product FROM attribute WHERE name = @)" },
	[QUERY_ANY] = {
	    "(p.product_id = $ COLLATE NOCASE OR " DATASET(" = $") " OR "
	    IN_TAG(" = $") " OR " IN_ANY_ATTR(" = $") ")",
	    "(p.product_id" LIKE " OR " DATASET(LIKE) " OR " IN_TAG(LIKE) " OR "
	    IN_ANY_ATTR(LIKE) ")",
	    "1" },
};

/* a decimal version number, else -1 (such a version:x matches nothing) */
static int64_t version_of(const char *s)
{
	int64_t v = 0;
	if (!*s || strlen(s) > 15)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static void sql_term(struct sqlbuf *b, const struct query_node *n)
{
	const char *t = n->match == QUERY_EXACT ? term_sql[n->field].exact
	    : n->match == QUERY_PATTERN ? term_sql[n->field].pattern : term_sql[n->field].exists;
	int value = 0, name = 0;
	char num[16];
	if (n->field == QUERY_VERSION && n->match == QUERY_EXACT) {
		int64_t v = version_of(n->value);
		if (v < 0) {
			sb_puts(b, "0");
			return;
		}
		value = sb_param(b, (struct param){ .i = v, .is_int = 1 });
	} else if (n->match == QUERY_PATTERN) {
		char *like = like_pattern(n->value);
		value = like ? sb_param(b, (struct param){ .text = like, .owned = like })
		    : (b->nomem = 1, 0);
	} else if (n->match == QUERY_EXACT) {
		value = sb_param(b, (struct param){ .text = n->value });
	}
	if (n->field == QUERY_ATTRIBUTE)
		name = sb_param(b, (struct param){ .text = n->attribute });
	for (; *t; t++) {
		if (*t != '$' && *t != '@') {
			sb_put(b, t, 1);
			continue;
		}
		snprintf(num, sizeof num, "?%d", *t == '$' ? value : name);
		sb_puts(b, num);
	}
}

static void sql_node(struct sqlbuf *b, const struct query_node *n);

/* children [from, to) of an AND/OR, as a balanced tree: SQLite limits the
 * depth of an expression, and a flat "a OR b OR c ..." is that deep */
static void sql_list(struct sqlbuf *b, const struct query_node *n, size_t from, size_t to)
{
	if (to - from == 1) {
		sql_node(b, n->child[from]);
		return;
	}
	size_t mid = from + (to - from) / 2;
	sb_puts(b, "(");
	sql_list(b, n, from, mid);
	sb_puts(b, n->kind == QUERY_AND ? " AND " : " OR ");
	sql_list(b, n, mid, to);
	sb_puts(b, ")");
}

static void sql_node(struct sqlbuf *b, const struct query_node *n)
{
	switch (n->kind) {
	case QUERY_ALL:
		sb_puts(b, "1");
		break;
	case QUERY_TERM:
		sql_term(b, n);
		break;
	case QUERY_NOT:
		sb_puts(b, "(NOT ");
		sql_node(b, n->child[0]);
		sb_puts(b, ")");
		break;
	case QUERY_AND:
	case QUERY_OR:
		sql_list(b, n, 0, n->nchild);
		break;
	}
}

/* add the products matched by q to temp.resolved */
static int gather(catalog *c, const query *q)
{
	struct sqlbuf b = { 0 };
	sqlite3_stmt *s = NULL;
	sb_puts(&b, "INSERT OR IGNORE INTO temp.resolved(id) SELECT p.id FROM product p WHERE ");
	sql_node(&b, query_root(q));
	if (b.nomem) {
		sb_free(&b);
		return failf(c, 1, "catalog %s: resolve: %s", c->path, strerror(ENOMEM));
	}
	int rc = sqlite3_prepare_v2(c->db, b.s, -1, &s, NULL);
	for (int i = 0; rc == SQLITE_OK && i < b.np; i++)
		rc = b.p[i].is_int ? sqlite3_bind_int64(s, i + 1, b.p[i].i)
		    : sqlite3_bind_text(s, i + 1, b.p[i].text, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	sb_free(&b);
	return rc == SQLITE_DONE ? 0 : fail(c, rc, "resolve");
}

static void queries_free(query **q, size_t n)
{
	for (size_t i = 0; q && i < n; i++)
		query_free(q[i]);
	free(q);
}

/* parse every query first: a bad one fails the whole resolution */
static query **queries_parse(catalog *c, const char *const *texts, size_t n, int *all)
{
	query **q = calloc(n ? n : 1, sizeof *q);
	char err[512];
	*all = 0;
	if (!q) {
		failf(c, 1, "catalog %s: resolve: %s", c->path, strerror(ENOMEM));
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!texts[i] || !(q[i] = query_parse(texts[i], err, sizeof err))) {
			failf(c, texts[i] && errno == ENOMEM, "%s", texts[i] ? err : "query: missing");
			queries_free(q, n);
			return NULL;
		}
		*all |= query_root(q[i])->kind == QUERY_ALL;
	}
	return q;
}

/* step the file statement s, calling fn per row; the number of calls */
static int stream(catalog *c, sqlite3_stmt *s, catalog_file_fn *fn, void *arg)
{
	int rc, n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct catalog_file f = {
			.product_id = col(s, 0), .version = sqlite3_column_int64(s, 1),
			.data_type = col(s, 2), .name = col(s, 3), .url = col(s, 4),
			.size = sqlite3_column_int64(s, 5), .md5 = col(s, 6),
		};
		n++;
		if (fn(arg, &f))
			break;
	}
	db_done(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : fail(c, rc, "resolve");
}

static int clear_resolved(catalog *c)
{
	sqlite3_stmt *s = stmt(c, ST_CLEAR);
	return s ? run(c, s, "resolve") : -1;
}

/* gather the matches (unless one query is "*"), then stream their files */
static int resolve(catalog *c, query **q, size_t nq, int all, catalog_file_fn *fn, void *arg)
{
	if (!all) {
		if (exec(c, "CREATE TEMP TABLE IF NOT EXISTS resolved(id INTEGER PRIMARY KEY)",
		    "resolve") < 0 || clear_resolved(c) < 0)
			return -1;
		for (size_t i = 0; i < nq; i++)
			if (gather(c, q[i]) < 0)
				return -1;
	}
	sqlite3_stmt *s = stmt(c, all ? ST_FILES_ALL : ST_FILES_RESOLVED);
	int n = s ? stream(c, s, fn, arg) : -1;
	if (!all && n >= 0 && clear_resolved(c) < 0)
		return -1;
	return n;
}

int catalog_resolve(catalog *c, const char *const *queries, size_t nqueries,
    catalog_file_fn *fn, void *arg)
{
	int all, n = -1;
	query **q = queries_parse(c, queries, nqueries, &all);
	if (!q)
		return -1;
	/* one read snapshot for every query and the files */
	if (nqueries == 0)
		n = 0;
	else if (exec(c, "SAVEPOINT resolve", "resolve") == 0) {
		n = resolve(c, q, nqueries, all, fn, arg);
		sqlite3_exec(c->db, "RELEASE resolve", NULL, NULL, NULL);
	}
	queries_free(q, nqueries);
	return n;
}

/* --- files as JSON, filters ---------------------------------------------- */

cJSON *catalog_file_json(const struct catalog_file *f)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "productId", f->product_id) ||
	    !cJSON_AddNumberToObject(o, "version", (double)f->version) ||
	    !cJSON_AddStringToObject(o, "dataType", f->data_type) ||
	    !cJSON_AddStringToObject(o, "name", f->name) ||
	    !cJSON_AddStringToObject(o, "url", f->url) ||
	    !cJSON_AddNumberToObject(o, "size", (double)f->size) ||
	    !cJSON_AddStringToObject(o, "md5", f->md5)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

struct catalog_filter {
	char **types;
	size_t ntypes;
	validate_regexp *re;
	int64_t budget_ns, spent_ns;   /* time matching names, this request */
	uint64_t matched;
};

/* what a requested dataType selects beside itself */
static const struct { const char *type; const char *selects[3]; } type_groups[] = {
	{ "QUICKLOOK", { "QUICKLOOK_SD", "QUICKLOOK_MD", "QUICKLOOK_HD" } },
};

int catalog_filter_new(const char *const *data_types, size_t ntypes, const char *regexp,
    catalog_filter **out, char *err, size_t errlen)
{
	catalog_filter *f = calloc(1, sizeof *f);
	*out = NULL;
	if (f)
		catalog_filter_set_budget(f, CATALOG_FILTER_BUDGET_MS);
	if (!f || (ntypes && !(f->types = calloc(ntypes, sizeof *f->types))))
		goto nomem;
	for (; f->ntypes < ntypes; f->ntypes++)
		if (!(f->types[f->ntypes] = strdup(data_types[f->ntypes])))
			goto nomem;
	if (regexp && validate_regexp_compile(regexp, &f->re, err, errlen) < 0) {
		int e = errno;
		catalog_filter_free(f);
		errno = e;
		return -1;
	}
	*out = f;
	return 0;
nomem:
	catalog_filter_free(f);
	snprintf(err, errlen, "%s", strerror(ENOMEM));
	errno = ENOMEM;
	return -1;
}

static int bad_filter(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "filters.%s", what);
	errno = EINVAL;
	return -1;
}

int catalog_filter_from_json(const cJSON *filters, catalog_filter **out, char *err, size_t errlen)
{
	const cJSON *types = NULL, *re = NULL;
	*out = NULL;
	if (filters && !cJSON_IsNull(filters)) {
		if (!cJSON_IsObject(filters)) {
			snprintf(err, errlen, "filters: must be an object");
			errno = EINVAL;
			return -1;
		}
		types = cJSON_GetObjectItemCaseSensitive(filters, "dataTypes");
		re = cJSON_GetObjectItemCaseSensitive(filters, "filenameRegExp");
	}
	if (types && !cJSON_IsNull(types) && !cJSON_IsArray(types))
		return bad_filter(err, errlen, "dataTypes: must be an array of strings");
	if (re && !cJSON_IsNull(re) && !cJSON_IsString(re))
		return bad_filter(err, errlen, "filenameRegExp: must be a string");
	size_t n = 0, max = (size_t)cJSON_GetArraySize(types);
	const char **list = calloc(max ? max : 1, sizeof *list);
	if (!list) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		errno = ENOMEM;
		return -1;
	}
	for (const cJSON *t = cJSON_IsArray(types) ? types->child : NULL; t; t = t->next) {
		if (!cJSON_IsString(t)) {
			free(list);
			return bad_filter(err, errlen, "dataTypes: must be an array of strings");
		}
		list[n++] = t->valuestring;
	}
	int rc = catalog_filter_new(list, n, cJSON_IsString(re) ? re->valuestring : NULL,
	    out, err, errlen);
	free(list);
	return rc;
}

void catalog_filter_free(catalog_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->ntypes; i++)
		free(f->types[i]);
	free(f->types);
	validate_regexp_free(f->re);
	free(f);
}

void catalog_filter_set_budget(catalog_filter *f, int64_t ms)
{
	f->budget_ns = ms * 1000000;
}

uint64_t catalog_filter_matched(const catalog_filter *f)
{
	return f->matched;
}

/* 1 if a file of dataType have is selected by the requested type want */
static int type_selects(const char *want, const char *have)
{
	if (!strcmp(want, have))
		return 1;
	for (size_t g = 0; g < sizeof type_groups / sizeof type_groups[0]; g++) {
		if (strcmp(want, type_groups[g].type) != 0)
			continue;
		for (size_t i = 0; i < 3 && type_groups[g].selects[i]; i++)
			if (!strcmp(have, type_groups[g].selects[i]))
				return 1;
	}
	return 0;
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* the whole name against the regexp, on the clock of the request */
static int name_match(catalog_filter *f, const char *name)
{
	int64_t t0 = mono_ns();
	int rc = validate_regexp_match(f->re, name);
	f->spent_ns += mono_ns() - t0;
	f->matched++;
	if (rc >= 0 && f->spent_ns >= f->budget_ns) {
		errno = ETIME;
		return -1;
	}
	return rc;
}

int catalog_filter_match(catalog_filter *f, const struct catalog_file *file)
{
	int typed = f->ntypes == 0;
	for (size_t i = 0; !typed && i < f->ntypes; i++)
		typed = file->data_type && type_selects(f->types[i], file->data_type);
	if (!typed)
		return 0;
	return f->re ? name_match(f, file->name ? file->name : "") : 1;
}
