/* driver-int: what the pieces of the driver share (lib/driver*.c only):
 * the run of driver_run and its workers, and the verdict's commit. */
#ifndef FERRY_DRIVER_INT_H
#define FERRY_DRIVER_INT_H

#include <pthread.h>
#include <signal.h>

#include "driver.h"
#include "item.h"
#include "lineq.h"
#include "tenants.h"

extern volatile sig_atomic_t drv_stop;      /* set by SIGTERM, SIGINT, SIGHUP */

struct run;

struct worker {
	struct run *rn;
	pthread_t thread;
	journal *j;
	tenants *tenants;
	void *ctx;
	volatile sig_atomic_t stop;   /* its job's: stop asked, or the request ended */
	/* under rn->mu: what it holds */
	int claiming, busy, cancelled;
	char *tenant, *cid;
};

struct run {
	struct driver *d;
	journal *j;                /* the main thread's */
	tenants *tenants;          /* the main thread's */
	item_reader *in;           /* stdin */
	lineq *out;                /* stdout */
	int nworkers;
	struct worker *w;
	pthread_mutex_t mu;
	pthread_cond_t wake;
	unsigned long seq;         /* bumped by every wake-up */
	int quit;
	char *cursor;              /* the tenant served last (round robin) */
	unsigned long dropped;     /* stdout lines dropped, as last reported */
};

/* What a batch commits, printed and answered once its transaction ends. */
struct drv_batch {
	char **lines, **responses;
	int nlines, nresponses;
};

void drv_warn_key(void *arg, const char *file, const char *key);
/* The request's deadline: the item's expiresAt, else the journal's; 0 none. */
int64_t drv_deadline(journal *j, const cJSON *item);
/* Die on a journal failure (the claimed requests are taken back at the next
 * start); label may be NULL. */
void drv_journal_fatal(journal *j, const char *label) __attribute__((noreturn));
/* Commit r for job on j: 1, 0 the request was no longer the stage's, -1
 * (logged). The item of a request that goes on is queued for stdout and
 * the response written to fd 3 — or, with b, both kept in b for after
 * the batch. */
int drv_commit(struct run *rn, journal *j, struct driver_job *job,
    const struct driver_result *r, struct drv_batch *b);
/* drv_commit, fatal on -1, then the workspace ws of an ended request removed. */
int drv_conclude(struct run *rn, journal *j, struct driver_job *job,
    const struct driver_result *r, const char *ws);
void drv_remove_workspace(const struct driver_job *job, const char *ws);
/* A line of stdin: register its request in the input state if unknown;
 * another body for a known correlationId is skipped (stage_duplicate).
 * 1 when the item is for the stage, 0 when done with it. */
int drv_register(struct run *rn, cJSON *item, const char *label);
/* Warn of stdout lines dropped since the last call; fatal once stdout failed. */
void drv_report_dropped(struct run *rn);

/* The two ways to run: K workers on the journal's queue (driver-pool.c),
 * or batches judged on one thread (driver-batch.c). */
void drv_pool_run(struct run *rn);
void drv_batch_run(struct run *rn);

#endif
