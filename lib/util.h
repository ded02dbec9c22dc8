/* util: small helpers shared by lib/ and cmd/: checked writes, time stamps,
 * hex, bounded string copies, UTF-8 aware truncation. No printing, no exit. */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

/* write all of buf to fd, retrying on EINTR and short writes; 0 or -1/errno */
int util_write_all(int fd, const void *buf, size_t len);
/* Read until buf holds cap bytes or the file ends (chunks stay whole);
 * the count, or -1 with errno. */
ssize_t util_read_full(int fd, void *buf, size_t cap);

/* 1 if a "/"-separated path has a "." or ".." segment: servers and proxies
 * normalise those in a URL path, so a key holding one may land elsewhere */
int util_dot_segment(const char *path);

/* milliseconds since the epoch, wall clock; and monotonic milliseconds */
int64_t util_now_ms(void);
int64_t util_mono_ms(void);
/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
struct timespec util_abstime(int64_t ms);

/* "2026-11-23T10:00:00.000Z" (UTC, ms) into out (>= 25 bytes) */
void util_iso8601(int64_t ms, char out[32]);
/* parse the same shape (also without ms, and with +hh:mm offsets); 0 or -1 */
int util_parse_iso8601(const char *s, int64_t *ms);

/* lowercase hex of n bytes into out (2n+1 bytes) */
void util_hex(const unsigned char *in, size_t n, char *out);
/* 1 if s is exactly n hex digits (either case) */
int util_is_hex(const char *s, size_t n);

/* strlcpy semantics: always NUL-terminates when cap > 0; returns strlen(src) */
size_t util_strlcpy(char *dst, const char *src, size_t cap);

/* length of the longest prefix of s, at most max bytes, that does not cut
 * a UTF-8 sequence in two */
size_t util_utf8_cut(const char *s, size_t len, size_t max);
/* 1 if the n bytes are well-formed UTF-8 (no overlongs, no surrogates) */
int util_utf8_valid(const char *s, size_t n);

/* getenv(name), or dflt when unset or empty (an s6 envdir can hold an
 * empty file) */
const char *util_env(const char *name, const char *dflt);

/* the next pause of a capped exponential backoff: 1, 2, 4 ... 30 s */
int util_backoff_next(int seconds);

/* 1 if fd is open */
int util_fd_open(int fd);

/* ignore SIGPIPE; route SIGTERM/SIGINT/SIGHUP to set *flag (sig_atomic_t) */
#include <signal.h>
int util_signals(volatile sig_atomic_t *stopflag);

#endif
