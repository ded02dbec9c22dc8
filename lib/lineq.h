/* lineq: the lines a stage prints (its items, for the next stage), written
 * to a descriptor by a thread of their own, so that a full pipe never holds
 * the stage's work. Lines wait in memory up to a budget; past it a line is
 * dropped (counted, warned once per episode): the journal holds every item
 * a stage committed, and the next stage takes what waits in its input state
 * from there. */
#ifndef FERRY_LINEQ_H
#define FERRY_LINEQ_H

#include <stddef.h>

typedef struct lineq lineq;

/* Start the writer thread on fd; budget in bytes (0: 8 MiB). NULL (errno). */
lineq *lineq_new(int fd, size_t budget);
/* Queue a copy of line (without its newline); never blocks on fd.
 * 1 queued, 0 dropped (over budget), -1 ENOMEM or the writer failed. */
int lineq_put(lineq *q, const char *line);
/* The same for n lines, woken once: 1 all queued, 0 some dropped, -1. */
int lineq_put_lines(lineq *q, const char *const *lines, int n);
/* The writer's error (errno of the failed write), 0 while it writes. */
int lineq_error(lineq *q);
/* Lines dropped so far. */
unsigned long lineq_dropped(lineq *q);
/* Write what waits (for up to wait_ms; -1 without limit), stop the thread
 * and free. 0, or -1 with lines left unwritten. */
int lineq_free(lineq *q, int wait_ms);

#endif
