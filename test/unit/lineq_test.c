/* lineq_test: a stage's stdout queue never blocks on a full pipe, drops
 * past its budget, and writes what it kept in order. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lineq.h"
#include "tu.h"

struct freeing { lineq *q; int fd; int rc; };
static void *free_it(void *arg)
{
	struct freeing *f = arg;
	f->rc = lineq_free(f->q, -1);
	close(f->fd);
	return NULL;
}

/* Nobody reads the pipe: puts return at once, kept lines fill the budget,
 * the rest are dropped; once read, the kept lines come out whole, in order. */
static void test_a_full_pipe_never_blocks_and_drops_past_the_budget(void)
{
	int p[2];
	TU_EQ_INT(pipe(p), 0);
	fcntl(p[0], F_SETPIPE_SZ, 4096);
	lineq *q = lineq_new(p[1], 64 * 1024);
	TU_CHECK(q != NULL);
	char line[1000];
	memset(line, 'x', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	int kept = 0, dropped = 0;
	for (int i = 0; i < 1000; i++) {
		char num[16];
		snprintf(num, sizeof num, "%06d", i);
		memcpy(line, num, 6);
		int rc = lineq_put(q, line);
		TU_CHECK(rc == 0 || rc == 1);
		if (rc == 1)
			kept++;
		else
			dropped++;
	}
	TU_CHECK(kept >= 64 && kept < 200);      /* 64 KiB of 1 KB lines, and the pipe's */
	TU_EQ_INT(dropped, 1000 - kept);
	TU_EQ_INT((long long)lineq_dropped(q), dropped);
	/* read it all while lineq_free, on a thread, waits for the writer */
	struct freeing f = { q, p[1], -2 };
	pthread_t t;
	TU_EQ_INT(pthread_create(&t, NULL, free_it, &f), 0);
	FILE *in = fdopen(p[0], "r");
	char buf[2048];
	int n = 0, ok = 1, last = -1;
	while (fgets(buf, sizeof buf, in)) {   /* whole lines, in order (gaps: dropped) */
		ok &= atoi(buf) > last && strlen(buf) == 1000;
		last = atoi(buf);
		n++;
	}
	fclose(in);
	pthread_join(t, NULL);
	TU_EQ_INT(f.rc, 0);
	TU_CHECK(ok);
	TU_EQ_INT(n, kept);
}

/* A write error is kept and reported to the next put. */
static void test_a_closed_reader_is_an_error(void)
{
	int p[2];
	TU_EQ_INT(pipe(p), 0);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	lineq *q = lineq_new(p[1], 0);
	TU_EQ_INT(lineq_put(q, "one"), 1);
	for (int i = 0; i < 200 && !lineq_error(q); i++)
		usleep(10000);
	TU_CHECK(lineq_error(q) != 0);
	TU_EQ_INT(lineq_put(q, "two"), -1);
	lineq_free(q, 1000);
	close(p[1]);
}

TU_MAIN(
	TU(test_a_full_pipe_never_blocks_and_drops_past_the_budget),
	TU(test_a_closed_reader_is_an_error)
)
