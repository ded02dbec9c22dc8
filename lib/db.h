/* db: the few SQLite helpers the journal and the catalog share — cached
 * statements, bindings, copies of columns, one-integer pragmas, and which
 * result codes mean "try again later". */
#ifndef FERRY_DB_H
#define FERRY_DB_H

#include <stdint.h>

#include <sqlite3.h>

/* Process-wide SQLite settings; call before opening a database. */
void db_init(void);
/* 1 if rc (extended or not) may pass: busy, locked, full, I/O, memory */
int db_temporary(int rc);
/* *slot, prepared persistent from sql on first use; NULL and *rc on error */
sqlite3_stmt *db_cached(sqlite3 *db, sqlite3_stmt **slot, const char *sql, int *rc);
/* reset and unbind a statement for its next use */
void db_done(sqlite3_stmt *s);
/* bind v (NULL binds NULL) without copying it */
void db_bind_text(sqlite3_stmt *s, int i, const char *v);
/* malloc'd copy of a text column, NULL for NULL (or ENOMEM) */
char *db_col_dup(sqlite3_stmt *s, int i);
/* Wait up to timeout_ms for a lock held by another connection, polling
 * every 250 us for the first 10 ms, then every millisecond. SQLite's own
 * busy_timeout sleeps 1, 2, 5 ... up to 100 ms between tries: two stages
 * committing every few milliseconds then wait tens of ms for each other
 * (GRANTED p99 of 144 ms at 1,000 requests a second). */
void db_busy_wait(sqlite3 *db, int timeout_ms);
/* run a pragma returning one integer; SQLite's rc (SQLITE_ROW = got it) */
int db_pragma_int(sqlite3 *db, const char *q, int64_t *out);

#endif
