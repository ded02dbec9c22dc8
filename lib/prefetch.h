/* prefetch: a thread that reads ahead from a sequential source into a few
 * large blocks, so that the work of producing the bytes (ferry-s3-put: a
 * zip made from its plan, every source's md5 computed on the way) runs on
 * one core while the consumer (libcurl sending them, the zip's own md5) runs
 * on the other, instead of each waiting for the other. */
#ifndef FERRY_PREFETCH_H
#define FERRY_PREFETCH_H

#include <stddef.h>
#include <sys/types.h>

/* The source: fills buf with up to len bytes (fewer only at its end), 0 at
 * the end, -1 on failure (the source keeps the reason). */
typedef ssize_t prefetch_read_fn(void *arg, void *buf, size_t len);

typedef struct prefetch prefetch;

/* nblocks blocks of block bytes; the thread starts at once. NULL (errno). */
prefetch *prefetch_new(prefetch_read_fn *fn, void *arg, size_t block, int nblocks);
/* The next bytes, in order: up to len, 0 at the end, -1 when the source
 * failed. */
ssize_t prefetch_read(prefetch *p, void *buf, size_t len);
/* Wait until the thread has read the source to its end (or failure):
 * then whatever it computed on the way is complete. */
void prefetch_finish(prefetch *p);
/* Stop the thread, call rewind(arg) on the source, start again from its
 * first byte. rewind's result (0 or -1). */
int prefetch_restart(prefetch *p, int (*rewind)(void *), void *arg);
/* Stop the thread and free everything (the source is the caller's). */
void prefetch_free(prefetch *p);

#endif
