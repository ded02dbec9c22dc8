/* db: SQLite helpers shared by lib/journal*.c and lib/catalog.c (see db.h). */
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "db.h"

void db_init(void)
{
	/* no memory statistics: they cost a global mutex on every allocation
	 * (3-5% of the intake stages); only possible before the first open */
	static int done;
	if (!done) {
		done = 1;
		sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	}
}

int db_temporary(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY: case SQLITE_LOCKED: case SQLITE_FULL: case SQLITE_IOERR:
	case SQLITE_NOMEM: case SQLITE_INTERRUPT:
		return 1;
	default:
		return 0;
	}
}

sqlite3_stmt *db_cached(sqlite3 *db, sqlite3_stmt **slot, const char *sql, int *rc)
{
	if (!*slot) {
		*rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
		if (*rc != SQLITE_OK) {
			*slot = NULL;
			return NULL;
		}
	}
	return *slot;
}

void db_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

void db_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

char *db_col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? strdup((const char *)t) : NULL;
}

int db_pragma_int(sqlite3 *db, const char *q, int64_t *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, q, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc;
}

/* n: how many times SQLite called us for this lock; 0 gives up */
static int busy_wait(void *arg, int n)
{
	int64_t timeout_us = (int64_t)(intptr_t)arg * 1000;
	int64_t waited = n < 40 ? (int64_t)n * 250 : 10000 + (int64_t)(n - 40) * 1000;
	if (waited >= timeout_us)
		return 0;
	usleep(n < 40 ? 250 : 1000);
	return 1;
}

void db_busy_wait(sqlite3 *db, int timeout_ms)
{
	sqlite3_busy_handler(db, busy_wait, (void *)(intptr_t)timeout_ms);
}
