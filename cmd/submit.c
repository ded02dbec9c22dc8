/* ferry-submit: a client for people and scripts. Builds a delivery request
 * from flags (or takes a JSON body from a file), publishes it on the request
 * exchange, and prints every response to it until a terminal one. It listens
 * on a private queue bound to the response exchange before publishing, so no
 * response can be missed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "args.h"
#include "bus.h"
#include "err.h"
#include "util.h"

static const char usage[] =
    "usage: ferry-submit [-hv] [-U url] -t tenant [-u user] [-q query]... [-d dataType]...\n"
    "                    [-r regexp] [-c correlationId] [-T target] [-p priority]\n"
    "                    [-w seconds] [-f file]";

enum { MAXQ = 64 };

static volatile sig_atomic_t stop;

struct opts {
	const char *url, *tenant, *user, *regexp, *cid, *target, *file;
	const char *queries[MAXQ], *types[MAXQ];
	int nq, nt, priority, wait_s;
};

static char *read_file(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!f)
		err_die(EXIT_PERM, "unable to open %s: %s", path, strerror(errno));
	size_t cap = 65536, n = 0, r;
	char *buf = malloc(cap);
	while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap) {
			char *p = realloc(buf, cap *= 2);
			if (!p)
				free(buf);
			buf = p;
		}
	}
	if (!buf || ferror(f))
		err_die(EXIT_PERM, "unable to read %s", path);
	buf[n] = '\0';
	if (f != stdin)
		fclose(f);
	return buf;
}

/* The request body: from -f, else from the flags. Sets o->cid. */
static char *build_body(struct opts *o)
{
	cJSON *b;
	if (o->file) {
		char *text = read_file(o->file);
		b = cJSON_Parse(text);
		free(text);
		if (!cJSON_IsObject(b))
			err_die(EXIT_PERM, "%s: not a JSON object", o->file);
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(b, "correlationId");
		if (o->cid) {
			cJSON_DeleteItemFromObjectCaseSensitive(b, "correlationId");
			cJSON_AddStringToObject(b, "correlationId", o->cid);
		} else if (cJSON_IsString(c)) {
			o->cid = strdup(c->valuestring);
		} else {
			err_die(EXIT_PERM, "%s: no correlationId (give one with -c)", o->file);
		}
	} else {
		b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "correlationId", o->cid);
		cJSON_AddStringToObject(b, "targetDelivery", o->target);
		cJSON *order = cJSON_AddObjectToObject(b, "order");
		cJSON_AddItemToObject(order, "queries", cJSON_CreateStringArray(o->queries, o->nq));
		if (o->nt || o->regexp) {
			/* -r alone filters names of every data type */
			static const char *const all[] = { "RAWDATA", "QUICKLOOK" };
			cJSON *f = cJSON_AddObjectToObject(order, "filters");
			cJSON_AddItemToObject(f, "dataTypes", o->nt ? cJSON_CreateStringArray(o->types, o->nt)
			    : cJSON_CreateStringArray(all, 2));
			if (o->regexp)
				cJSON_AddStringToObject(f, "filenameRegExp", o->regexp);
		}
		if (o->user)
			cJSON_AddStringToObject(order, "user", o->user);
	}
	char *text = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	return text;
}

static void parse(int argc, char **argv, struct opts *o)
{
	int c;
	memset(o, 0, sizeof *o);
	o->url = util_env("FERRY_AMQP_URL", BUS_DEFAULT_URL);
	o->target = "s3";
	o->priority = -1;
	while ((c = getopt(argc, argv, "hvU:t:u:q:d:r:c:T:p:w:f:")) != -1) {
		switch (c) {
		case 'h': puts(usage); exit(0);
		case 'v': err_verbose(1); break;
		case 'U': o->url = optarg; break;
		case 't': o->tenant = optarg; break;
		case 'u': o->user = optarg; break;
		case 'q': if (o->nq < MAXQ) o->queries[o->nq++] = optarg; break;
		case 'd': if (o->nt < MAXQ) o->types[o->nt++] = optarg; break;
		case 'r': o->regexp = optarg; break;
		case 'c': o->cid = optarg; break;
		case 'T': o->target = optarg; break;
		case 'p': o->priority = atoi(optarg); break;
		case 'w': o->wait_s = atoi(optarg); break;
		case 'f': o->file = optarg; break;
		default: args_usage(usage);
		}
	}
	if (optind != argc || !o->tenant || (!o->file && o->nq == 0) || o->priority > 255)
		args_usage(usage);
}

static const char *status_of(const char *body, const char *cid)
{
	static const char *const known[] = { "GRANTED", "DENIED", "DONE", "ERROR" };
	cJSON *o = cJSON_Parse(body);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "correlationId");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "status");
	const char *found = NULL;
	if (cJSON_IsString(c) && cJSON_IsString(s) && strcmp(c->valuestring, cid) == 0)
		for (size_t i = 0; i < sizeof known / sizeof *known; i++)
			if (strcmp(s->valuestring, known[i]) == 0)
				found = known[i];
	cJSON_Delete(o);
	return found;
}

/* Print responses for cid until a terminal one; the exit status. */
static int follow(bus *b, const char *queue, const char *label, const char *cid, int wait_s)
{
	int64_t start = util_mono_ms(), last_note = start;
	const char *state = "published";
	if (bus_consume(b, queue, 100) < 0)
		err_die(EXIT_TEMP, "%s", bus_error(b));
	while (!stop) {
		struct bus_msg m;
		int rc = bus_next(b, 1000, &m);
		if (rc < 0)
			err_die(EXIT_TEMP, "broker connection lost: %s", bus_error(b));
		int64_t now = util_mono_ms();
		if (wait_s > 0 && now - start > wait_s * 1000LL)
			err_die(EXIT_TEMP, "%s: no terminal response within %d s (last: %s)", label,
			    wait_s, state);
		if (now - last_note >= 10000) {
			err_log(ERR_INFO, label, "waiting: %s for %lld s", state,
			    (long long)((now - start) / 1000));
			last_note = now;
		}
		if (rc == 0)
			continue;
		const char *st = status_of(m.body, cid);
		bus_ack(b, m.tag, 0);
		if (st) {
			printf("%s\n", m.body);
			fflush(stdout);
			state = st;
		}
		bus_msg_clear(&m);
		if (st && strcmp(st, "DONE") == 0)
			return 0;
		if (st && (strcmp(st, "DENIED") == 0 || strcmp(st, "ERROR") == 0))
			return EXIT_NO;
	}
	return EXIT_TEMP;
}

static void on_confirm(void *arg, uint64_t seq, int ok)
{
	(void)seq;
	if (!ok)
		++*(int *)arg;
}

int main(int argc, char **argv)
{
	struct opts o;
	char err[512], queue[256], gen[64], label[320];
	struct bus_names names;
	bus *b;

	err_init("ferry-submit");
	args_init(argc, argv);
	parse(argc, argv, &o);
	util_signals(&stop);
	if (!o.cid && !o.file) {
		unsigned r = (unsigned)getpid() ^ (unsigned)util_now_ms();
		snprintf(gen, sizeof gen, "submit-%lld-%04x", (long long)(util_now_ms() / 1000), r & 0xffff);
		o.cid = gen;
	}
	char *body = build_body(&o);
	snprintf(label, sizeof label, "%s/%s", o.tenant, o.cid);
	if (bus_names_from_env(&names, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	if (bus_url_check(o.url, err, sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	/* MULTI vhost mode: the request goes to its tenant's vhost */
	char url[1024];
	if (names.vhost_mode == BUS_VHOST_MULTI) {
		if (bus_tenant_url(o.url, o.tenant, url, sizeof url) < 0)
			err_die(EXIT_PERM, "tenant %s: its vhost URL does not fit", o.tenant);
		o.url = url;
	}
	/* the topology first: a request exchange bound to nothing drops requests */
	if (!(b = bus_connect(o.url, &names, NULL, err, sizeof err)))
		err_die(EXIT_TEMP, "%s", err);
	if (bus_listen(b, NULL, names.response_exchange, queue, sizeof queue) < 0 ||
	    bus_confirm_select(b) < 0)
		err_die(EXIT_TEMP, "%s", bus_error(b));
	const char *hn[] = { "regards.tenant" }, *hv[] = { o.tenant };
	struct bus_pub p = {
		.exchange = names.request_exchange, .body = body, .len = strlen(body),
		.content_type = "application/json", .content_encoding = "UTF-8", .persistent = 1,
		.has_priority = o.priority >= 0, .priority = o.priority,
		.timestamp = util_now_ms() / 1000, .app_id = "ferry-submit",
		.hnames = hn, .hvalues = hv, .nheaders = 1,
	};
	int nacked = 0;
	if (bus_publish(b, &p, NULL) < 0)
		err_die(EXIT_TEMP, "%s", bus_error(b));
	while (bus_unconfirmed(b) > 0)
		if (bus_confirms(b, 5000, on_confirm, &nacked) < 0)
			err_die(EXIT_TEMP, "%s", bus_error(b));
	if (nacked)
		err_die(EXIT_TEMP, "%s: the broker refused the request", label);
	err_log(ERR_INFO, label, "published");
	free(body);
	int rc = follow(b, queue, label, o.cid, o.wait_s);
	bus_close(b);
	return rc;
}
