/* report: what the operator tools say about the journal, built once for
 * ferry-journal and ferry-httpd so both say the very same thing — a
 * request's JSON record (show), its progress (status), the counts by state
 * and errorType, and the Prometheus exposition text (metrics). */
#ifndef FERRY_REPORT_H
#define FERRY_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "journal.h"

/* Members added only when there is a value: a string when v is not NULL,
 * an ISO 8601 time when ms > 0, and text as JSON when it parses (else as a
 * string). */
void report_str(cJSON *o, const char *key, const char *v);
void report_time(cJSON *o, const char *key, int64_t ms);
/* a request's tenant, correlationId, state, errorType, receivedAt,
 * expiresAt and updatedAt, and, for one set aside after a temporary
 * failure, attempts, lastError and nextAttemptAt (the absent ones left
 * out) */
void report_request(cJSON *o, const struct jrequest *r);
void report_raw(cJSON *o, const char *key, const char *text);

/* The request as `ferry-journal -J show` prints it: the row, its events
 * (history) and its responses. NULL on a journal failure (journal_error)
 * or, with journal_error() unchanged, ENOMEM. */
cJSON *report_show(journal *j, const struct jrequest *r);

/* Where a request is: the stage that holds it (busy) or takes it next, and
 * the transfer rate since the claim. */
struct report_progress {
	const char *stage;    /* "fetch", or "-" for terminal states */
	int busy;
	double rate;          /* bytes/s since the claim; < 0 unknown */
};
struct report_progress report_progress(const struct jrequest *r, int64_t now_ms);
/* One line of `ferry-journal -J status`, with the attempts, lastError,
 * nextAttemptAt and nextAttemptInSeconds of a request set aside. NULL on
 * ENOMEM. */
cJSON *report_status(const struct jrequest *r, int64_t now_ms);

/* A small key -> count table. */
struct report_tally {
	int n;
	struct { char key[64]; int64_t v; } e[48];
};
/* Requests by state (every state in pipeline order, zeros included) and by
 * errorType (every errorType of DESIGN §2, zeros included). 0 or -1
 * (journal_error). */
int report_counts(journal *j, struct report_tally *states, struct report_tally *errors);

/* The Prometheus text format of `ferry-journal metrics`, written to out.
 * 0, or -1 on a journal failure (journal_error); write errors are left in
 * ferror(out) for the caller. */
int report_metrics(journal *j, int64_t now_ms, FILE *out);

#endif
