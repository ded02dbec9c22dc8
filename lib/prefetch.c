/* prefetch: see prefetch.h. Blocks [tail, head) are filled, waiting for the
 * consumer; the thread fills block head % n when it is free. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "prefetch.h"

struct prefetch {
	prefetch_read_fn *fn;
	void *arg;
	size_t block;
	int n;
	unsigned char **blk;
	ssize_t *len;                  /* bytes in each filled block; -1 failed */
	unsigned head, tail;
	size_t off;                    /* consumed of block tail */
	int quit, running, done;       /* done: the thread has filled its last block */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void *filler(void *arg)
{
	prefetch *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->quit && !p->done) {
		if (p->head - p->tail == (unsigned)p->n) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		unsigned i = p->head % (unsigned)p->n;
		pthread_mutex_unlock(&p->mu);
		ssize_t got = p->fn(p->arg, p->blk[i], p->block);  /* the long part, unlocked */
		pthread_mutex_lock(&p->mu);
		p->len[i] = got;
		p->head++;
		p->done = got <= 0;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static int start(prefetch *p)
{
	p->head = p->tail = 0;
	p->off = 0;
	p->quit = p->done = 0;
	if ((errno = pthread_create(&p->thread, NULL, filler, p)) != 0)
		return -1;
	p->running = 1;
	return 0;
}

static void stop(prefetch *p)
{
	if (!p->running)
		return;
	pthread_mutex_lock(&p->mu);
	p->quit = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->running = 0;
}

prefetch *prefetch_new(prefetch_read_fn *fn, void *arg, size_t block, int nblocks)
{
	prefetch *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->fn = fn;
	p->arg = arg;
	p->block = block;
	p->n = nblocks;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->blk = calloc((size_t)nblocks, sizeof *p->blk);
	p->len = calloc((size_t)nblocks, sizeof *p->len);
	int ok = p->blk && p->len;
	for (int i = 0; ok && i < nblocks; i++)
		ok = (p->blk[i] = malloc(block)) != NULL;
	if (!ok || start(p) < 0) {
		if (!ok)
			errno = ENOMEM;
		int e = errno;
		prefetch_free(p);
		errno = e;
		return NULL;
	}
	return p;
}

ssize_t prefetch_read(prefetch *p, void *buf, size_t len)
{
	pthread_mutex_lock(&p->mu);
	while (p->head == p->tail)
		pthread_cond_wait(&p->cv, &p->mu);
	unsigned i = p->tail % (unsigned)p->n;
	ssize_t have = p->len[i];
	pthread_mutex_unlock(&p->mu);
	if (have <= 0)                 /* the end, or the failure: stays there */
		return have;
	size_t n = (size_t)have - p->off;
	if (n > len)
		n = len;
	memcpy(buf, p->blk[i] + p->off, n);
	p->off += n;
	if (p->off == (size_t)have) {
		pthread_mutex_lock(&p->mu);
		p->tail++;
		p->off = 0;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	return (ssize_t)n;
}

void prefetch_finish(prefetch *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->running && !p->done)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

int prefetch_restart(prefetch *p, int (*rewind)(void *), void *arg)
{
	stop(p);
	if (rewind(arg) < 0)
		return -1;
	return start(p);
}

void prefetch_free(prefetch *p)
{
	if (!p)
		return;
	stop(p);
	for (int i = 0; p->blk && i < p->n; i++)
		free(p->blk[i]);
	free(p->blk);
	free(p->len);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
