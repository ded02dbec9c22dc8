/* ordercmd: run an operator's order command (see ordercmd.h). One poll loop
 * feeds stdin and reads stdout and stderr together, so a command that prints
 * before reading all of a multi-megabyte item cannot deadlock us. The child
 * leads its own process group: a timeout kills whatever it started too. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "item.h"
#include "ordercmd.h"
#include "util.h"

struct lines {
	char *buf;
	size_t len, cap;
};

struct run {
	ordercmd_line_fn *fn;
	void *arg;
	struct lines out, err;
	char last_err[512];
	int aborted;
	char why[1024];
};

static pid_t spawn(const char *path, int in[2], int out[2], int err[2])
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	setpgid(0, 0);
	dup2(in[0], 0);
	dup2(out[1], 1);
	dup2(err[1], 2);
	long max = sysconf(_SC_OPEN_MAX);
	for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 1024); fd++)
		close(fd);
	signal(SIGPIPE, SIG_DFL);
	execl(path, path, (char *)NULL);
	dprintf(2, "cannot run %s: %s\n", path, strerror(errno));
	_exit(127);
}

/* Handle the complete lines in l; keep the rest. */
static void stdout_lines(struct run *r, int final)
{
	struct lines *l = &r->out;
	size_t start = 0;
	for (size_t i = 0; i < l->len && !r->aborted; i++) {
		if (l->buf[i] != '\n' && !(final && i + 1 == l->len))
			continue;
		size_t end = l->buf[i] == '\n' ? i : i + 1;
		char err[128];
		cJSON *o = NULL;
		int blank = strspn(l->buf + start, " \t\r") >= end - start;
		if (!blank && !(o = item_parse(l->buf + start, end - start, err, sizeof err))) {
			snprintf(r->why, sizeof r->why, "order command printed a bad line: %s", err);
			r->aborted = 1;
		} else if (o && r->fn(r->arg, o, r->why, sizeof r->why)) {
			r->aborted = 1;
		}
		cJSON_Delete(o);
		start = i + 1;
	}
	memmove(l->buf, l->buf + start, l->len - start);
	l->len -= start;
}

static void stderr_lines(struct run *r, int final)
{
	struct lines *l = &r->err;
	size_t start = 0;
	for (size_t i = 0; i < l->len; i++) {
		if (l->buf[i] != '\n' && !(final && i + 1 == l->len))
			continue;
		/* a last line may end without a newline */
		size_t end = l->buf[i] == '\n' ? i : i + 1;
		if (end > start) {
			size_t n = end - start < sizeof r->last_err - 1 ? end - start : sizeof r->last_err - 1;
			memcpy(r->last_err, l->buf + start, n);
			r->last_err[n] = '\0';
		}
		start = i + 1;
	}
	memmove(l->buf, l->buf + start, l->len - start);
	l->len -= start;
	if (l->len > 4096)  /* an endless stderr line: keep its head */
		l->len = 0;
}

/* read what is there on fd into l; 0 at EOF, 1 data, -1 error */
static int fill(int fd, struct lines *l)
{
	if (l->cap - l->len < 65536) {
		size_t cap = l->cap ? 2 * l->cap : 131072;
		char *p = realloc(l->buf, cap);
		if (!p)
			return -1;
		l->buf = p;
		l->cap = cap;
	}
	ssize_t n = read(fd, l->buf + l->len, l->cap - l->len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	l->len += (size_t)n;
	return n > 0;
}

static void verdict(struct run *r, int st, int timed_out, int timeout_s,
    struct ordercmd_result *res)
{
	const char *tail = r->last_err[0] ? r->last_err : "no message";
	if (r->aborted) {
		res->status = ORDERCMD_FAILED;
		snprintf(res->message, sizeof res->message, "%s", r->why);
	} else if (timed_out) {
		res->status = ORDERCMD_RETRY;
		snprintf(res->message, sizeof res->message, "timed out after %d s", timeout_s);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		res->status = ORDERCMD_OK;
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 111) {
		res->status = ORDERCMD_RETRY;
		snprintf(res->message, sizeof res->message, "%s", tail);
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 100) {
		res->status = ORDERCMD_FAILED;
		snprintf(res->message, sizeof res->message, "%s", tail);
	} else if (WIFEXITED(st)) {
		res->status = ORDERCMD_FAILED;
		snprintf(res->message, sizeof res->message, "order command exited %d: %s",
		    WEXITSTATUS(st), tail);
	} else {
		res->status = ORDERCMD_FAILED;
		snprintf(res->message, sizeof res->message, "order command killed by signal %d",
		    WTERMSIG(st));
	}
}

static int run_command(const char *path, const char *item_json, int timeout_ms,
    volatile sig_atomic_t *stop, struct run *rp, int in[2], int out[2], int err[2],
    struct ordercmd_result *res);

int ordercmd_run(const char *path, const char *item_json, int timeout_ms,
    volatile sig_atomic_t *stop, ordercmd_line_fn *fn, void *arg,
    struct ordercmd_result *res)
{
	int in[2], out[2], err[2];
	struct run r = { .fn = fn, .arg = arg };
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	memset(res, 0, sizeof *res);
	/* a command that exits without reading its stdin must give us EPIPE,
	 * not kill us with SIGPIPE, whatever the caller did with the signal */
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old);
	int rc = run_command(path, item_json, timeout_ms, stop, &r, in, out, err, res);
	sigaction(SIGPIPE, &old, NULL);
	return rc;
}

static int run_command(const char *path, const char *item_json, int timeout_ms,
    volatile sig_atomic_t *stop, struct run *rp, int in[2], int out[2], int err[2],
    struct ordercmd_result *res)
{
	struct run r = *rp;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		snprintf(res->message, sizeof res->message, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = spawn(path, in, out, err);
	close(in[0]);
	close(out[1]);
	close(err[1]);
	if (pid < 0) {
		snprintf(res->message, sizeof res->message, "fork: %s", strerror(errno));
		close(in[1]), close(out[0]), close(err[0]);
		return -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	size_t sent = 0, total = strlen(item_json);
	int64_t deadline = util_mono_ms() + timeout_ms;
	int open_out = 1, open_err = 1, timed_out = 0, wfd = in[1];
	if (total == 0)
		close(wfd), wfd = -1;
	while ((open_out || open_err) && !r.aborted) {
		struct pollfd p[3] = {
			{ open_out ? out[0] : -1, POLLIN, 0 }, { open_err ? err[0] : -1, POLLIN, 0 },
			{ wfd, POLLOUT, 0 },
		};
		int64_t left = deadline - util_mono_ms();
		if (left <= 0 || (stop && *stop)) {
			timed_out = left <= 0;
			break;
		}
		if (poll(p, 3, left > 200 ? 200 : (int)left) < 0 && errno != EINTR)
			break;
		if (wfd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(wfd, item_json + sent, total - sent);
			if (w > 0)
				sent += (size_t)w;
			if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == total)
				close(wfd), wfd = -1;   /* EPIPE: it does not want the rest */
		}
		if (open_out && (p[0].revents & (POLLIN | POLLHUP))) {
			int f = fill(out[0], &r.out);
			stdout_lines(&r, f == 0);
			open_out = f > 0;
		}
		if (open_err && (p[1].revents & (POLLIN | POLLHUP))) {
			int f = fill(err[0], &r.err);
			stderr_lines(&r, f == 0);
			open_err = f > 0;
		}
	}
	int killed = open_out || open_err || r.aborted;
	if (killed)
		kill(-pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (wfd >= 0)
		close(wfd);
	close(out[0]);
	close(err[0]);
	free(r.out.buf);
	free(r.err.buf);
	if (killed && !r.aborted && !timed_out) {
		res->status = ORDERCMD_STOPPED;
		snprintf(res->message, sizeof res->message, "stopped");
		return 0;
	}
	verdict(&r, st, timed_out, timeout_ms / 1000, res);
	return 0;
}
