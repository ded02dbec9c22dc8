/* bench-amqp: load tools for scripts/bench's intake cases.
 *   bench-amqp flood URL EXCHANGE TENANT N RATE PREFIX   publish N requests
 *   bench-amqp collect URL QUEUE N [STATUS]               consume N responses
 *   bench-amqp relay URL QUEUE EXCHANGE                   zero-work service
 *   bench-amqp listen URL QUEUE EXCHANGE                  declare QUEUE bound to EXCHANGE
 * flood puts its send time in each correlationId ("PREFIX-i-usec"), so
 * collect can report latencies from the responses alone; given a STATUS,
 * collect counts only the responses of that status (acking the others:
 * with the data path running, DONE and ERROR come too). relay is the
 * broker's own limit for any request/response service: consume a request,
 * publish one small response with confirms, ack — and nothing else
 * (BENCH_RELAY_BURN_US=n: and n microseconds of CPU a request, to measure
 * what a service costing that much can reach on the same broker). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "bus.h"
#include "util.h"

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bus *connect_or_die(const char *url)
{
	char err[256];
	bus *b;
	if (bus_open(url, &b, err, sizeof err) < 0) {
		fprintf(stderr, "bench-amqp: %s\n", err);
		exit(111);
	}
	return b;
}

static void ignore_confirm(void *arg, uint64_t seq, int ok)
{
	(void)seq;
	if (!ok)
		++*(int *)arg;
}

static int flood(const char *url, const char *exchange, const char *tenant, long n,
    double rate, const char *prefix)
{
	bus *b = connect_or_die(url);
	int nacks = 0;
	if (bus_confirm_select(b) < 0)
		return fprintf(stderr, "bench-amqp: %s\n", bus_error(b)), 111;
	const char *hn[] = { "regards.tenant" }, *hv[] = { tenant };
	int64_t start = now_us();
	for (long i = 0; i < n; i++) {
		if (rate > 0) {
			int64_t due = start + (int64_t)(i * 1e6 / rate), wait = due - now_us();
			if (wait > 0)
				usleep((useconds_t)wait);
		}
		char body[512];
		int len = snprintf(body, sizeof body,
		    "{\"correlationId\":\"%s-%ld-%lld\",\"targetDelivery\":\"s3\","
		    "\"order\":{\"queries\":[\"*\"],\"filters\":{\"dataTypes\":[\"RAWDATA\"]},"
		    "\"user\":\"bench@example.org\"}}", prefix, i, (long long)now_us());
		struct bus_pub p = {
			.exchange = exchange, .body = body, .len = (size_t)len,
			.content_type = "application/json", .persistent = 1,
			.hnames = hn, .hvalues = hv, .nheaders = 1,
		};
		if (bus_publish(b, &p, NULL) < 0)
			return fprintf(stderr, "bench-amqp: %s\n", bus_error(b)), 111;
		/* keep at most 2000 unconfirmed, reading confirms as they come */
		if (bus_confirms(b, bus_unconfirmed(b) > 2000 ? 1000 : 0, ignore_confirm, &nacks) < 0)
			return fprintf(stderr, "bench-amqp: %s\n", bus_error(b)), 111;
	}
	while (bus_unconfirmed(b) > 0)
		if (bus_confirms(b, 1000, ignore_confirm, &nacks) < 0)
			return fprintf(stderr, "bench-amqp: %s\n", bus_error(b)), 111;
	double secs = (now_us() - start) / 1e6;
	printf("{\"published\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"nacks\":%d}\n", n, secs, n / secs, nacks);
	bus_close(b);
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* send time in usec of a response whose correlationId is "prefix-i-usec",
 * or 0; -1 if its status is not STATUS (when one is given) */
static int64_t sent_at(const char *body, const char *status)
{
	cJSON *o = cJSON_Parse(body);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "correlationId");
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
	int64_t t = 0;
	if (status && !(cJSON_IsString(st) && strcmp(st->valuestring, status) == 0))
		t = -1;
	else if (cJSON_IsString(c)) {
		const char *dash = strrchr(c->valuestring, '-');
		if (dash)
			t = strtoll(dash + 1, NULL, 10);
	}
	cJSON_Delete(o);
	return t;
}

static int collect(const char *url, const char *queue, long n, const char *status)
{
	bus *b = connect_or_die(url);
	if (bus_consume(b, queue, 2000) < 0)
		return fprintf(stderr, "bench-amqp: %s\n", bus_error(b)), 111;
	int64_t *lat = calloc((size_t)n, sizeof *lat), first = 0, last = 0;
	long got = 0, idle = 0, other = 0;
	while (got < n && idle < 120) {
		struct bus_msg m;
		int rc = bus_next(b, 1000, &m);
		if (rc < 0)
			return fprintf(stderr, "bench-amqp: %s\n", bus_error(b)), 111;
		if (rc == 0) {
			idle++;
			continue;
		}
		idle = 0;
		int64_t t = now_us(), s = sent_at(m.body, status);
		bus_ack(b, m.tag, 0);
		bus_msg_clear(&m);
		if (s < 0) {
			other++;
			continue;
		}
		if (!first)
			first = t;
		last = t;
		lat[got++] = s ? t - s : 0;
	}
	qsort(lat, (size_t)got, sizeof *lat, cmp_i64);
	double secs = (last - first) / 1e6;
	printf("{\"received\":%ld,\"seconds\":%.3f,\"rate\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
	    "\"max_ms\":%.2f,\"last_us\":%lld,\"other\":%ld}\n", got, secs, secs > 0 ? got / secs : 0,
	    got ? lat[got / 2] / 1e3 : 0, got ? lat[(got * 99) / 100] / 1e3 : 0,
	    got ? lat[got - 1] / 1e3 : 0, (long long)last, other);
	free(lat);
	bus_close(b);
	return got == n ? 0 : 1;
}

static volatile sig_atomic_t stop;

static int relay(const char *url, const char *queue, const char *exchange)
{
	bus *in = connect_or_die(url), *out = connect_or_die(url);
	int nacks = 0;
	/* BENCH_RELAY_BURN_US: the relay spends that much CPU a request, to
	 * see what rate a service with that cost per request can reach */
	long burn_us = atol(util_env("BENCH_RELAY_BURN_US", "0"));
	util_signals(&stop);
	if (bus_consume(in, queue, 1000) < 0 || bus_confirm_select(out) < 0)
		return fprintf(stderr, "bench-amqp: relay setup failed\n"), 111;
	while (!stop) {
		struct bus_msg m;
		uint64_t last = 0;
		int rc, k = 0;
		while (k < 500 && (rc = bus_next(in, k ? 0 : 500, &m)) == 1) {
			if (burn_us > 0) {   /* a service doing work: burn_us of CPU */
				int64_t until = now_us() + burn_us;
				while (now_us() < until)
					;
			}
			cJSON *o = cJSON_Parse(m.body);
			const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "correlationId");
			char body[512];
			int len = snprintf(body, sizeof body, "{\"correlationId\":\"%s\",\"status\":\"GRANTED\"}",
			    cJSON_IsString(c) ? c->valuestring : "?");
			const char *hn[] = { "regards.tenant" }, *hv[] = { m.tenant ? m.tenant : "" };
			struct bus_pub p = { .exchange = exchange, .body = body, .len = (size_t)len,
				.content_type = "application/json", .persistent = 1,
				.hnames = hn, .hvalues = hv, .nheaders = 1 };
			bus_publish(out, &p, NULL);
			last = m.tag;
			cJSON_Delete(o);
			bus_msg_clear(&m);
			k++;
		}
		if (k == 0)
			continue;
		while (bus_unconfirmed(out) > 0)
			if (bus_confirms(out, 1000, ignore_confirm, &nacks) < 0)
				return 111;
		bus_ack(in, last, 1);
	}
	bus_close(in);
	bus_close(out);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "flood") == 0)
		return flood(argv[2], argv[3], argv[4], atol(argv[5]), atof(argv[6]), argv[7]);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "collect") == 0)
		return collect(argv[2], argv[3], atol(argv[4]), argc == 6 ? argv[5] : NULL);
	if (argc == 5 && strcmp(argv[1], "listen") == 0) {
		char name[256];
		bus *b = connect_or_die(argv[2]);
		int rc = bus_listen(b, argv[3], argv[4], name, sizeof name);
		if (rc < 0)
			fprintf(stderr, "bench-amqp: %s\n", bus_error(b));
		bus_close(b);
		return rc < 0 ? 111 : 0;
	}
	if (argc == 5 && strcmp(argv[1], "relay") == 0)
		return relay(argv[2], argv[3], argv[4]);
	fprintf(stderr, "usage: bench-amqp flood URL EXCHANGE TENANT N RATE PREFIX\n"
	    "       bench-amqp collect URL QUEUE N [STATUS]\n       bench-amqp relay URL QUEUE EXCHANGE\n"
	    "       bench-amqp listen URL QUEUE EXCHANGE\n");
	return 100;
}
