/* driver: the main of every data-path stage (order-bridge, fetch, pack,
 * s3-put), so each program is its own work function and flags. The journal
 * is the queue: K worker threads (-c K) each claim the next request due in
 * the stage's input state, tenants in turn (round robin), work on it and
 * commit (new state + event + response in one transaction); the item goes
 * to stdout through a queue of its own (lib/lineq), so a full pipe never
 * holds the work. stdin is the fast path and the way to compose by hand:
 * an item the journal does not know is registered in the input state, and
 * every line wakes a worker; a journal change made elsewhere (PRAGMA
 * data_version, checked every second) wakes them all. A temporary failure
 * sets the request aside with exponential backoff (attempts, last error,
 * next attempt in the journal) and the worker takes other work. A request
 * ended meanwhile by someone else (ferry-journal cancel, the sweeper) has
 * its work stopped within a second. With stdin at its end the stage exits
 * once nothing waits in its input state and no worker holds a request.
 * Requests that end have their workspace removed. The driver alone prints
 * items and exits the program (err_die) on a journal failure; work
 * functions report through their verdict. */
#ifndef FERRY_DRIVER_H
#define FERRY_DRIVER_H

#include <signal.h>
#include <stdint.h>

#include <cJSON.h>

#include "journal.h"
#include "tenant.h"

/* One claimed request, handed to the work function. */
struct driver_job {
	cJSON *item;               /* add the stage's fields to it */
	const tenant *tenant;      /* NULL only in batches: tenant_why says why */
	const char *tenant_why;
	const char *tenant_name, *cid;
	const char *label;         /* "tenant/cid" for messages */
	const char *workspace;     /* the request's directory (not created) */
	int64_t expires_ms;        /* deadline; 0 = none known */
	journal *j;                /* the worker's own: journal_progress, journal_order_wait */
	volatile sig_atomic_t *stop;   /* stop asked, or the request was ended elsewhere */
	int64_t hold_ms;           /* wall clock: a temporary failure is given up by
	                              then (DRIVER_RETRY), the request set aside */
	int64_t attempts;          /* tries before this one that were set aside */
};

enum driver_verdict {
	DRIVER_OK,          /* commit the stage's output state, print the item */
	DRIVER_ERROR,       /* end the request: ERROR with error_type + message */
	DRIVER_ABANDON,     /* stop requested: leave it claimed (taken back at start) */
	DRIVER_PENDING,     /* handed to an asynchronous backend: leave it claimed,
	                       print nothing; driver_finish ends it later */
	DRIVER_RETRY,       /* a temporary failure (message says what): set aside,
	                       tried again when its backoff is due */
	DRIVER_DENY,        /* end the request DENIED with error_type + message */
};

struct driver_result {
	enum driver_verdict verdict;
	const char *error_type;    /* DRIVER_ERROR: INTERNAL_ERROR, EMPTY_ORDER, ... */
	char message[2048];        /* DRIVER_ERROR: the response message; DRIVER_RETRY: why */
	int64_t bytes;             /* bytes this stage moved (history) */
	int64_t expires_ms;        /* > 0: the request's deadline, set by this commit */
	const char *url, *md5;     /* the last stage: the DONE response's fields */
	const char *download_url;  /* and its downloadUrl, or NULL */
};

/* Where a job's source files may be, for fileurl_open (ferry-pack, and
 * ferry-s3-put reading a plan): its tenant's file_roots and its workspace.
 * A malloc'd array of *n pointers into the job, to free; NULL (ENOMEM). */
char **driver_source_roots(const struct driver_job *job, size_t *n);

typedef void driver_work_fn(void *ctx, struct driver_job *job, struct driver_result *r);

struct driver;
/* Asynchronous work (ferry-order-bridge's rs-order backend). tick is called
 * once after recovery, then whenever wait_fd's descriptor is readable and
 * at least once a second, on the driver's main thread (not a worker's); it
 * returns how many requests it still has in hand, and the driver keeps
 * going after stdin ends until that is 0. wait_fd returns the descriptor
 * to watch beside stdin, or -1. */
typedef int driver_tick_fn(void *ctx, struct driver *d);
typedef int driver_fd_fn(void *ctx);

struct driver {
	const char *prog;          /* "ferry-fetch" */
	enum jstage stage;
	const char *journal, *tenants, *workspace;  /* from the environment */
	void *ctx;
	driver_work_fn *work;
	driver_tick_fn *tick;      /* NULL: no asynchronous work (the default) */
	driver_fd_fn *wait_fd;
	/* Per-worker state: worker_new(ctx) gives each worker thread its own
	 * context (passed to work instead of ctx), worker_free frees it. NULL:
	 * every worker shares ctx, which work then only reads. */
	void *(*worker_new)(void *ctx);
	void (*worker_free)(void *wctx);
	int workers;               /* K: -c, FERRY_<STAGE>_WORKERS, FERRY_WORKERS */
	int batch;                 /* > 0: no workers; stdin judged on one thread in
	                              batches of at most this many items, each one
	                              transaction, work called for every item with
	                              the tenant possibly NULL (ferry-request-validate) */
	const char *ok_status;     /* the response to DRIVER_OK ("GRANTED"), or NULL */
	int64_t retry_max_ms;      /* backoff cap: FERRY_RETRY_MAX (seconds) */
	int worker_nice;           /* workers' niceness: FERRY_WORKER_NICE (0..19, 10) */
	void *run;                 /* the driver's own, while driver_run runs */
};

/* Workers by default, per stage (chosen by measurement, see README). */
int driver_default_workers(enum jstage stage);
enum { DRIVER_MAX_WORKERS = 64 };
/* How long a work function retries a temporary failure before DRIVER_RETRY. */
enum { DRIVER_HOLD_MS = 30000 };
/* The wait before attempt n + 1 of a request set aside n times (n >= 1):
 * 2 s doubling, at most max_ms. */
int64_t driver_backoff_ms(int64_t n, int64_t max_ms);

/* Fill journal/tenants/workspace from FERRY_* with the DESIGN §5 defaults. */
void driver_init(struct driver *d, const char *prog, enum jstage stage);
/* Handle the common flags -v -j -t -w -c; 1 if ch was one of them. */
int driver_option(struct driver *d, int ch, const char *arg);
#define DRIVER_OPTS "vj:t:w:c:"
/* Run until stdin ends or a signal asks to stop; returns the exit status. */
int driver_run(struct driver *d);

/* For tick (the main thread only): its journal, and a tenant (NULL and why
 * when unusable). */
journal *driver_journal(struct driver *d);
const tenant *driver_tenant(struct driver *d, const char *name, const char **why);
/* End a request the work function left DRIVER_PENDING, as its verdict r
 * would have: commit (OK: the stage's output state with item; ERROR: the
 * response), then print item when OK, remove the workspace when ended.
 * 1 done, 0 the request was no longer the stage's (nothing written), -1
 * journal error (logged; fatal errors exit as in driver_run). */
int driver_finish(struct driver *d, cJSON *item, struct driver_result *r);

/* printf into r->message and set verdict ERROR with error_type */
void driver_fail(struct driver_result *r, const char *error_type, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
