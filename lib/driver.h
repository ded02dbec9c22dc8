/* driver: the loop every data-path stage (order-bridge, fetch, pack, s3-put)
 * shares, so each program is its own work function and flags. It opens the
 * journal, takes back its in-progress requests, processes the requests
 * waiting in its input state before stdin, then reads items one at a time:
 * register if unknown, claim, check tenant and deadline, work, commit (new
 * state + event + response in one transaction), print. Requests that end in
 * ERROR (or DONE) have their workspace removed. A line that is no item (most
 * likely torn by a writer killed mid-line) is skipped, and what waits in
 * the input state is taken up again at once. */
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
	const tenant *tenant;
	const char *tenant_name, *cid;
	const char *label;         /* "tenant/cid" for messages */
	const char *workspace;     /* the request's directory (not created) */
	int64_t expires_ms;        /* deadline; 0 = none known */
	journal *j;                /* for journal_progress only */
	volatile sig_atomic_t *stop;
};

enum driver_verdict {
	DRIVER_OK,          /* commit the stage's output state, print the item */
	DRIVER_ERROR,       /* end the request: ERROR with error_type + message */
	DRIVER_ABANDON,     /* stop requested: leave it claimed (taken back at start) */
	DRIVER_PENDING,     /* handed to an asynchronous backend: leave it claimed,
	                       print nothing; driver_finish ends it later */
};

struct driver_result {
	enum driver_verdict verdict;
	const char *error_type;    /* DRIVER_ERROR: INTERNAL_ERROR, EMPTY_ORDER, ... */
	char message[2048];        /* DRIVER_ERROR: the response message */
	int64_t bytes;             /* bytes this stage moved (history) */
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
 * at least once a second, between items, on the driver's thread (which
 * alone writes stdout); it returns how many requests it still has in hand,
 * and the driver keeps going after stdin ends until that is 0. wait_fd
 * returns the descriptor to watch beside stdin, or -1. */
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
	void *run;                 /* the driver's own, while driver_run runs */
};

/* Fill journal/tenants/workspace from FERRY_* with the DESIGN §5 defaults. */
void driver_init(struct driver *d, const char *prog, enum jstage stage);
/* Handle the common flags -v -j -t -w; 1 if ch was one of them. */
int driver_option(struct driver *d, int ch, const char *arg);
#define DRIVER_OPTS "vj:t:w:"
/* Run until stdin ends or a signal asks to stop; returns the exit status. */
int driver_run(struct driver *d);

/* For tick: the journal, and a tenant (NULL and why when unusable). */
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
