/* lineq: a stage's stdout, written by a thread (see lineq.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "item.h"
#include "lineq.h"
#include "util.h"

enum { DEFAULT_BUDGET = 8 << 20, BATCH = 256 };

struct line {
	struct line *next;
	char text[];
};

struct lineq {
	int fd;
	size_t budget, bytes;
	struct line *head, *tail;
	int quit, error, writing;
	unsigned long dropped;
	pthread_mutex_t mu;
	pthread_cond_t more, drained;
	pthread_t thread;
};

/* Take up to BATCH lines off the queue (the lock held). */
static int take(lineq *q, struct line **got, size_t *bytes)
{
	int n = 0;
	*bytes = 0;
	while (q->head && n < BATCH) {
		struct line *l = q->head;
		q->head = l->next;
		*bytes += strlen(l->text) + 1;
		got[n++] = l;
	}
	if (!q->head)
		q->tail = NULL;
	return n;
}

static void *writer(void *arg)
{
	lineq *q = arg;
	struct line *got[BATCH];
	char *text[BATCH];
	size_t bytes;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->head && !q->quit)
			pthread_cond_wait(&q->more, &q->mu);
		if (!q->head)
			break;
		int n = take(q, got, &bytes);
		q->writing = 1;
		pthread_mutex_unlock(&q->mu);
		for (int i = 0; i < n; i++)
			text[i] = got[i]->text;
		int rc = q->error ? -1 : item_write_lines(q->fd, text, n);
		int e = errno;
		for (int i = 0; i < n; i++)
			free(got[i]);
		pthread_mutex_lock(&q->mu);
		q->writing = 0;
		q->bytes -= bytes;
		if (rc < 0 && !q->error)
			q->error = e ? e : EIO;
		pthread_cond_broadcast(&q->drained);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

lineq *lineq_new(int fd, size_t budget)
{
	lineq *q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->fd = fd;
	q->budget = budget ? budget : DEFAULT_BUDGET;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->more, NULL);
	pthread_cond_init(&q->drained, NULL);
	int rc = pthread_create(&q->thread, NULL, writer, q);
	if (rc != 0) {
		free(q);
		errno = rc;
		return NULL;
	}
	return q;
}

/* Queue one line (the lock held): 1, 0 dropped, -1. */
static int put_locked(lineq *q, const char *line)
{
	size_t len = strlen(line);
	if (q->error) {
		errno = q->error;
		return -1;
	}
	if (q->bytes + len + 1 > q->budget && q->head) {
		q->dropped++;
		return 0;
	}
	struct line *l = malloc(sizeof *l + len + 1);
	if (!l)
		return -1;
	memcpy(l->text, line, len + 1);
	l->next = NULL;
	if (q->tail)
		q->tail->next = l;
	else
		q->head = l;
	q->tail = l;
	q->bytes += len + 1;
	return 1;
}

int lineq_put(lineq *q, const char *line)
{
	return lineq_put_lines(q, &line, 1);
}

int lineq_put_lines(lineq *q, const char *const *lines, int n)
{
	int rc = 1;
	pthread_mutex_lock(&q->mu);
	for (int i = 0; i < n && rc >= 0; i++) {
		int r = put_locked(q, lines[i]);
		if (r < rc)
			rc = r;
	}
	if (n > 0)
		pthread_cond_signal(&q->more);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int lineq_error(lineq *q)
{
	pthread_mutex_lock(&q->mu);
	int e = q->error;
	pthread_mutex_unlock(&q->mu);
	return e;
}

unsigned long lineq_dropped(lineq *q)
{
	pthread_mutex_lock(&q->mu);
	unsigned long n = q->dropped;
	pthread_mutex_unlock(&q->mu);
	return n;
}

int lineq_free(lineq *q, int wait_ms)
{
	if (!q)
		return 0;
	struct timespec until = util_abstime(wait_ms > 0 ? wait_ms : 0);
	pthread_mutex_lock(&q->mu);
	while ((q->head || q->writing) && !q->error && wait_ms != 0) {
		if (wait_ms < 0)
			pthread_cond_wait(&q->drained, &q->mu);
		else if (pthread_cond_timedwait(&q->drained, &q->mu, &until) == ETIMEDOUT)
			break;
	}
	int left = q->head != NULL || q->writing;
	q->quit = 1;
	pthread_cond_signal(&q->more);
	pthread_mutex_unlock(&q->mu);
	if (left) {
		/* the writer may be blocked on a full pipe: leave it, the process ends */
		pthread_detach(q->thread);
		return -1;
	}
	pthread_join(q->thread, NULL);
	for (struct line *l = q->head, *n; l; l = n) {
		n = l->next;
		free(l);
	}
	pthread_cond_destroy(&q->more);
	pthread_cond_destroy(&q->drained);
	pthread_mutex_destroy(&q->mu);
	free(q);
	return 0;
}
