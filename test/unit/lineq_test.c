/* lineq_test: a stage's stdout queue never blocks on a full pipe, drops
 * past its budget, and writes what it kept in order. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lineq.h"
#include "tu.h"

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
		snprintf(line, 8, "%06d", i);
		line[6] = 'x';
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
	/* read it all while lineq_free waits for the writer */
	pid_t pid = fork();
	if (pid == 0) {
		close(p[1]);
		FILE *f = fdopen(p[0], "r");
		char buf[2048];
		int n = 0, ok = 1;
		while (fgets(buf, sizeof buf, f)) {
			ok &= atoi(buf) == n && strlen(buf) == 1000;
			n++;
		}
		_exit(ok ? (n > 250 ? 250 : n) : 255);
	}
	close(p[0]);
	TU_EQ_INT(lineq_free(q, -1), 0);
	close(p[1]);
	int st;
	waitpid(pid, &st, 0);
	TU_EQ_INT(WEXITSTATUS(st), kept > 250 ? 250 : kept);
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
