/* stage: what every pipeline stage does the same way around its own work —
 * registering items it is fed by hand, answering duplicates, reading items in
 * group-commit batches, writing responses to fd 3, and building the outbox
 * headers of a response. */
#ifndef FERRY_STAGE_H
#define FERRY_STAGE_H

#include <cJSON.h>

#include "item.h"
#include "journal.h"

/* Register item (from ingest, or fed by hand to a stage) in `state` if its
 * (tenant, correlationId) is unknown, or again as a new submission when
 * ingest (st) gets the id of an ended request (journal_register). The
 * fingerprint is of item.request; redelivered: the message is the broker's
 * redelivery. 0 and *out; -1 on a journal failure (journal_error); -2 when
 * the item has no string tenant or correlationId. */
int stage_register(journal *j, enum jstage st, const cJSON *item, const char *state,
    enum journal_reg *out);
/* The same; when it writes the item (JREG_WRITTEN), *text is the item as
 * printed and journaled (malloc'd, the caller frees it), else NULL. */
int stage_register_text(journal *j, enum jstage st, const cJSON *item, const char *state,
    int redelivered, enum journal_reg *out, char **text);

/* Answer a duplicate: JREG_SAME queues the request's latest response again
 * (unless the message is a broker redelivery of one already journaled: that
 * is not a client retry). JREG_CONFLICT (another body while the request is
 * in flight) is answered by nobody: any answer would carry the first
 * request's correlationId, and the client would take it for that one's
 * fate (rs-delivery drops it too); the caller dead-letters or skips it and
 * says so. 0 or -1. */
int stage_duplicate(journal *j, const cJSON *item, enum journal_reg reg, int redelivered);
/* The one log line for a CONFLICT, `fate` saying what became of it */
void stage_conflict_log(const cJSON *item, const char *fate);

/* The outbox headers of a response to item (tenant, priority, app_id). */
char *stage_headers(const cJSON *item);

/* Call first in main, before anything opens a file: if fd 3 is not open,
 * occupy it with /dev/null so that no later file (the journal!) gets fd 3
 * and has responses written into it. 0 or -1. */
int stage_fd3_init(void);

/* Write the response body to fd 3 as one line (see stage_fd3_init). Errors on fd
 * 3 are ignored: it is a convenience view, the outbox is the record. */
void stage_fd3(const char *response);
/* The same for n responses, in as few writes as it takes. */
void stage_fd3_lines(char *const *responses, int n);

/* Read up to max items from r (reading fd): blocks for the first, then takes only what is
 * already waiting. A malformed line is passed to bad(arg, reason), skipped,
 * and ends the batch, so that the caller acts on it before it blocks again
 * (the count may then be 0). Returns the count, 0 at EOF, -1 on read error
 * (errno). */
typedef void stage_bad_fn(void *arg, const char *reason);
int stage_read_batch(item_reader *r, int fd, cJSON **items, int max, stage_bad_fn *bad,
    void *arg);

#endif
