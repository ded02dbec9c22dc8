/* ordercmd: run a tenant's order_command (DESIGN §6): an executable given the
 * item JSON on stdin (then closed) that prints one file JSON per line.
 * Exit 0 = resolved, 100 = permanent failure (its last stderr line is the
 * message), 111 = try again later; killed after a timeout. */
#ifndef FERRY_ORDERCMD_H
#define FERRY_ORDERCMD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

enum ordercmd_status {
	ORDERCMD_OK,          /* exit 0: every line was passed to fn */
	ORDERCMD_FAILED,      /* exit 100 (or any other unexpected status) */
	ORDERCMD_RETRY,       /* exit 111, or killed by the timeout */
	ORDERCMD_STOPPED,     /* *stop was set: the command was killed */
};

struct ordercmd_result {
	enum ordercmd_status status;
	char message[1024];   /* FAILED/RETRY: why (last stderr line, exit status, bad line) */
};

/* fn gets each printed line parsed as a JSON object; returning non-zero
 * aborts the run (the command is killed) with FAILED and fn's reason in
 * result->message, which fn may fill. */
typedef int ordercmd_line_fn(void *arg, const cJSON *file, char *why, size_t whylen);

/* Run path with stdin = item_json, for at most timeout_ms. The child gets
 * no other descriptors than 0, 1, 2. 0, or -1 if it could not be started
 * (errno; then result->message says why). */
int ordercmd_run(const char *path, const char *item_json, int timeout_ms,
    volatile sig_atomic_t *stop, ordercmd_line_fn *fn, void *arg,
    struct ordercmd_result *result);

#endif
