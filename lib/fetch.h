/* fetch: the transfer engine of ferry-fetch (DESIGN §6). Checks every file of
 * an order first (file_roots, allowed_hosts: nothing is read when one is
 * forbidden), then streams the remote ones (http, https, s3) into the
 * workspace over a libcurl multi handle, a few at a time, md5 on the fly. */
#ifndef FERRY_FETCH_H
#define FERRY_FETCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "tenant.h"

typedef struct fetch fetch;

struct fetch_opts {
	int parallel;           /* transfers in flight (1..64); default 4 */
	int attempts;           /* downloads of a file whose md5 or size is wrong; default 3 */
	int backoff_ms;         /* first wait after a temporary failure; default 1000 */
	int backoff_max_ms;     /* the cap of the doubling waits; default 30000 */
	long connect_timeout_s; /* default 30 */
	long stall_s;           /* a transfer that gets no byte for this long fails; default 60 */
};

/* progress of the downloads (bytes done, of total), about once a second */
typedef void fetch_progress_fn(void *arg, int64_t done, int64_t total);
/* one line about something worth a warning that is not the end (a retry) */
typedef void fetch_note_fn(void *arg, const char *line);

struct fetch_job {
	const tenant *tenant;        /* file_roots, allowed_hosts, S3 servers */
	const char *workspace;       /* the request's directory; created if needed */
	int64_t expires_ms;          /* wall-clock deadline; 0 = none */
	volatile sig_atomic_t *stop; /* set by a signal: give up at once */
	int64_t hold_ms;             /* wall clock: a temporary failure whose next try
	                                would come later ends FETCH_TEMPORARY (the
	                                request is set aside); 0 = until the deadline */
	fetch_progress_fn *progress; /* may be NULL */
	fetch_note_fn *note;         /* may be NULL */
	void *arg;
};

enum fetch_status {
	FETCH_OK,
	FETCH_FORBIDDEN,   /* outside file_roots, host not allowed: ERROR FORBIDDEN */
	FETCH_FAILED,      /* permanent: ERROR INTERNAL_ERROR */
	FETCH_EXPIRED,     /* the deadline passed: ERROR EXPIRED */
	FETCH_STOPPED,     /* *stop was set: leave the request for later */
	FETCH_TEMPORARY,   /* a source is unreachable for now (hold_ms): try later */
};

struct fetch_result {
	enum fetch_status status;
	char message[1024];    /* for the response: names the file, never a secret */
	int64_t bytes;         /* bytes downloaded */
	size_t nlocal;         /* file:// sources checked */
	size_t nremote;        /* remote sources downloaded or found already there */
	size_t nreused;        /* of which already in the workspace, md5 right */
};

/* NULL opts = the defaults. NULL on ENOMEM or a libcurl failure. */
fetch *fetch_new(const struct fetch_opts *opts);
void fetch_free(fetch *f);

/* Get every file of files (the item's "files" array, each an object with
 * productId, name, url, size, md5) and add "path" to each: the real path of
 * a file:// source, or <workspace>/files/<index>-<sanitized name> for a
 * download. 0 when all are there, md5 and size right; else -1 with
 * r->status and r->message. */
int fetch_files(fetch *f, const struct fetch_job *job, cJSON *files, struct fetch_result *r);

#endif
