/* util: small helpers shared by lib/ and cmd/ (see util.h). */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

ssize_t util_read_full(int fd, void *buf, size_t cap)
{
	size_t got = 0;
	while (got < cap) {
		ssize_t r = read(fd, (char *)buf + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int util_dot_segment(const char *path)
{
	for (const char *p = path; *p; p = *p ? p + 1 : p) {
		size_t n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 1;
		p += n;
	}
	return 0;
}

int util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_now_ms(void) { return clock_ms(CLOCK_REALTIME); }
int64_t util_mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }

void util_iso8601(int64_t ms, char out[32])
{
	/* floor division, so instants before 1970 print a positive ms field */
	int64_t frac = ((ms % 1000) + 1000) % 1000;
	time_t t = (time_t)((ms - frac) / 1000);
	struct tm tm;
	char tmp[80];      /* room for any int fields, so no truncation warning */
	if (!gmtime_r(&t, &tm)) {
		util_strlcpy(out, "invalid-time", 32);
		return;
	}
	snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
	util_strlcpy(out, tmp, 32);
}

/* days since 1970-01-01 for a proleptic Gregorian date (Hinnant's algorithm) */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return days[m - 1] + (m == 2 && leap);
}

/* s matches shape, where 'd' stands for a digit and any other character for
 * itself; the digits are read into v[] in order (sscanf would take signs and
 * blanks) */
static int match_shape(const char *s, const char *shape, int *v)
{
	int k = -1, in_num = 0;
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] != 'd') {
			if (s[i] != shape[i])
				return -1;
			in_num = 0;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (!in_num)
			v[++k] = 0;
		in_num = 1;
		v[k] = v[k] * 10 + (s[i] - '0');
	}
	return 0;
}

/* ".123" (any number of digits, ms kept) at *p; advances *p */
static int parse_frac(const char **p, int64_t *frac)
{
	int digits = 0;
	*frac = 0;
	if (**p != '.')
		return 0;
	for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, digits++)
		if (digits < 3)
			*frac = *frac * 10 + (**p - '0');
	for (int k = digits; k < 3; k++)
		*frac *= 10;
	return digits ? 0 : -1;
}

/* "Z" or "+hh:mm" / "-hh:mm" at p, the whole rest of the string */
static int parse_offset(const char *p, int64_t *off)
{
	int v[2];
	*off = 0;
	if (strcmp(p, "Z") == 0)
		return 0;
	if ((*p != '+' && *p != '-') || match_shape(p + 1, "dd:dd", v) < 0 || p[6] ||
	    v[0] > 23 || v[1] > 59)
		return -1;
	*off = (int64_t)(v[0] * 60 + v[1]) * 60 * (*p == '+' ? 1 : -1);
	return 0;
}

int util_parse_iso8601(const char *s, int64_t *ms)
{
	int v[6];      /* year month day hour minute second */
	int64_t frac, off;
	if (match_shape(s, "dddd-dd-ddTdd:dd:dd", v) < 0)
		return -1;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > days_in_month(v[0], v[1]) ||
	    v[3] > 23 || v[4] > 59 || v[5] > 60)
		return -1;
	const char *p = s + 19;
	if (parse_frac(&p, &frac) < 0 || parse_offset(p, &off) < 0)
		return -1;
	int64_t secs = days_from_civil(v[0], v[1], v[2]) * 86400 + v[3] * 3600 +
	    v[4] * 60 + v[5] - off;
	*ms = secs * 1000 + frac;
	return 0;
}

void util_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int util_is_hex(const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return 0;
	}
	return s[i] == '\0';
}

size_t util_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t len = strlen(src);
	if (cap > 0) {
		size_t n = len < cap - 1 ? len : cap - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

size_t util_utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	/* back up over continuation bytes to the start of the cut sequence */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

int util_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		unsigned min, cp;
		if (c < 0x80) { i++; continue; }
		else if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; cp = c & 0x1F; }
		else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; cp = c & 0x0F; }
		else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; cp = c & 0x07; }
		else return 0;
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += len;
	}
	return 1;
}

const char *util_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

int util_backoff_next(int seconds)
{
	return seconds * 2 > 30 ? 30 : seconds * 2;
}

int util_fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static volatile sig_atomic_t *stop_target;

static void on_stop(int sig)
{
	(void)sig;
	if (stop_target)
		*stop_target = 1;
}

int util_signals(volatile sig_atomic_t *stopflag)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return -1;
	stop_target = stopflag;
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a blocking read returns EINTR so loops see the flag */
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return -1;
	return 0;
}

/* glibc trims the heap top back to the kernel whenever enough is free, and
 * grows it again for the next item: with cJSON's many small allocations per
 * item that was ~6 brk calls per item and most of a stage's CPU time (sys
 * 2.9 s of 4.2 s for 20,000 requests through ferry-request-validate; 1.1 s
 * in all with this). A fixed threshold keeps at most 8 MiB of free heap;
 * RSS is unchanged. Runs before main in every program linking libferry. */
__attribute__((constructor)) static void util_tune_malloc(void)
{
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
}

struct timespec util_abstime(int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}
