/* fetch_test: the transfer engine (lib/fetch.c) against a tiny HTTP server
 * forked by the test on 127.0.0.1: a large order through a small window,
 * wrong checksums, the deadline, a stop, nothing downloaded when one file
 * is forbidden, progress, no descriptors left behind. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "fetch.h"
#include "md5.h"
#include "tenant.h"
#include "util.h"
#include "tu.h"

enum { BODY = 1000 };

static char body[BODY], body_md5[33];
static pid_t server;
static int port;
static char tmp[200], logpath[256];

/* ---- the server: one request per connection, paths logged ---- */

static void answer(int c, const char *path)
{
	char out[256 + BODY];
	int code = 200;
	size_t len = BODY;
	if (strncmp(path, "/ok/", 4) != 0 && strncmp(path, "/bad/", 5) != 0) {
		code = strncmp(path, "/503", 4) == 0 ? 503 : 404;
		len = 0;
	}
	/* one write: head and body apart would wait on Nagle and delayed ACKs */
	int n = snprintf(out, 256, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", code, len);
	memcpy(out + n, body, len);
	if (path[1] == 'b')
		out[n] ^= 1;
	util_write_all(c, out, (size_t)n + len);
}

static void serve_one(int c, int log)
{
	char req[2048] = "", path[1024];
	size_t n = 0;
	while (n < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
		ssize_t r = read(c, req + n, sizeof req - 1 - n);
		if (r <= 0)
			return;
		req[n += (size_t)r] = '\0';
	}
	if (sscanf(req, "GET %1000s", path) != 1)
		return;
	dprintf(log, "%s\n", path);
	answer(c, path);
}

static void serve(int s)
{
	int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		serve_one(c, log);
		close(c);
	}
}

static void server_start(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 128) < 0 ||
	    getsockname(s, (struct sockaddr *)&a, &al) < 0) {
		perror("server");
		exit(2);
	}
	port = ntohs(a.sin_port);
	for (int i = 0; i < BODY; i++)
		body[i] = (char)('a' + i % 26);
	md5_buf(body, BODY, body_md5);
	fflush(stdout);
	if ((server = fork()) == 0)
		serve(s);
	close(s);
}

static void server_stop(void)
{
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
}

static int requests(void)
{
	char line[1100];
	int n = 0;
	FILE *f = fopen(logpath, "r");
	while (f && fgets(line, sizeof line, f))
		n++;
	if (f)
		fclose(f);
	return n;
}

/* ---- orders ---- */

static cJSON *order(int n, const char *prefix, const char *md5)
{
	char url[128], name[32];
	cJSON *files = cJSON_CreateArray();
	for (int i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		snprintf(url, sizeof url, "http://127.0.0.1:%d/%s/%d", port, prefix, i);
		snprintf(name, sizeof name, "f%d.nc", i);
		cJSON_AddStringToObject(o, "productId", "P1");
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "url", url);
		cJSON_AddNumberToObject(o, "size", BODY);
		cJSON_AddStringToObject(o, "md5", md5 ? md5 : body_md5);
		cJSON_AddItemToArray(files, o);
	}
	return files;
}

static const char *path_of(const cJSON *files, int i)
{
	const cJSON *p = cJSON_GetObjectItem(cJSON_GetArrayItem(files, i), "path");
	return cJSON_IsString(p) ? p->valuestring : NULL;
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

struct seen {
	int calls, max_fds;
	int64_t done, total;
	volatile sig_atomic_t *stop_at_first;
};

static void on_progress(void *arg, int64_t done, int64_t total)
{
	struct seen *s = arg;
	int fds = open_fds();
	s->calls++;
	s->done = done;
	s->total = total;
	if (fds > s->max_fds)
		s->max_fds = fds;
	if (s->stop_at_first)
		*s->stop_at_first = 1;
}

#define S3SRV "\"source_s3_server\":{\"host\":\"127.0.0.1\",\"key\":\"k\",\"secret\":\"s\"}"

static tenant *t_new(const char *json)
{
	tenant *t;
	char err[256];
	if (tenant_parse("p1", "p1.json", json, strlen(json), 0100600, &t, NULL, NULL, err, sizeof err) < 0) {
		printf("# %s\n", err);
		exit(2);
	}
	return t;
}

static void setup(void)
{
	util_strlcpy(tmp, tu_tmpdir(), sizeof tmp);
	snprintf(logpath, sizeof logpath, "%s/log", tmp);
	server_start();
}

static struct fetch_job job(const tenant *t, struct seen *s, volatile sig_atomic_t *stop)
{
	static char ws[300];
	snprintf(ws, sizeof ws, "%s/ws", tmp);
	struct fetch_job j = {
		.tenant = t, .workspace = ws, .stop = stop, .progress = on_progress, .arg = s,
	};
	return j;
}

/* ---- tests ---- */

static void test_ten_thousand_files_go_through_a_small_window(void)
{
	setup();
	enum { N = 10000 };
	tenant *t = t_new("{\"allowed_hosts\":[\"*\"]}");
	struct fetch_opts o = { .parallel = 4 };
	fetch *f = fetch_new(&o);
	cJSON *files = order(N, "ok", NULL);
	struct seen s = { 0 };
	struct fetch_job j = job(t, &s, NULL);
	struct fetch_result r;
	int before = open_fds();
	TU_EQ_INT(fetch_files(f, &j, files, &r), 0);
	TU_EQ_INT(r.status, FETCH_OK);
	TU_EQ_INT(r.nremote, N);
	TU_EQ_INT(r.bytes, (int64_t)N * BODY);
	TU_EQ_INT(requests(), N);
	TU_CHECK(s.calls >= 2);
	TU_EQ_INT(s.total, (int64_t)N * BODY);
	TU_EQ_INT(s.done, s.total);
	/* the window: a few sockets and files, never one per file */
	TU_CHECK(s.max_fds <= before + 3 * 4);
	const char *p = path_of(files, N - 1);
	char hex[33];
	TU_CHECK(p && md5_file(p, hex, NULL) == 0 && strcmp(hex, body_md5) == 0);
	cJSON_Delete(files);
	fetch_free(f);
	tenant_free(t);
	server_stop();
}

static void test_a_wrong_checksum_fails_after_the_attempts(void)
{
	setup();
	tenant *t = t_new("{\"allowed_hosts\":[\"*\"]}");
	struct fetch_opts o = { .parallel = 2, .attempts = 2 };
	fetch *f = fetch_new(&o);
	cJSON *files = order(1, "bad", NULL);
	struct seen s = { 0 };
	struct fetch_job j = job(t, &s, NULL);
	struct fetch_result r;
	char want[200];
	TU_EQ_INT(fetch_files(f, &j, files, &r), -1);
	TU_EQ_INT(r.status, FETCH_FAILED);
	snprintf(want, sizeof want, "checksum mismatch for P1/f0.nc after 2 attempts: expected %s, got ",
	    body_md5);
	TU_CHECK(strncmp(r.message, want, strlen(want)) == 0);
	TU_EQ_INT(requests(), 2);
	cJSON_Delete(files);
	/* an md5 in capitals is the same md5 */
	char upper[33];
	for (int i = 0; i < 33; i++)
		upper[i] = (char)(body_md5[i] >= 'a' ? body_md5[i] - 32 : body_md5[i]);
	files = order(2, "ok", upper);
	TU_EQ_INT(fetch_files(f, &j, files, &r), 0);
	TU_EQ_STR(r.message, "");
	cJSON_Delete(files);
	fetch_free(f);
	tenant_free(t);
	server_stop();
}

static void test_the_deadline_ends_the_retries(void)
{
	setup();
	tenant *t = t_new("{\"allowed_hosts\":[\"*\"]}");
	struct fetch_opts o = { .backoff_ms = 20, .backoff_max_ms = 40 };
	fetch *f = fetch_new(&o);
	cJSON *files = order(1, "ok", NULL);
	cJSON_SetValuestring(cJSON_GetObjectItem(files->child, "url"), "http://127.0.0.1:1/x");
	cJSON *more = order(1, "503", NULL);
	cJSON_AddItemToArray(files, cJSON_DetachItemFromArray(more, 0));
	cJSON_Delete(more);
	struct seen s = { 0 };
	struct fetch_job j = job(t, &s, NULL);
	struct fetch_result r;
	char when[32], want[100];
	j.expires_ms = util_now_ms() + 600;
	int64_t t0 = util_mono_ms();
	TU_EQ_INT(fetch_files(f, &j, files, &r), -1);
	TU_EQ_INT(r.status, FETCH_EXPIRED);
	TU_CHECK(util_mono_ms() - t0 < 3000);
	util_iso8601(j.expires_ms, when);
	snprintf(want, sizeof want, "The request date has reached the expiration limit '%s'", when);
	TU_EQ_STR(r.message, want);
	cJSON_Delete(files);
	fetch_free(f);
	tenant_free(t);
	server_stop();
}

static void test_a_stop_abandons_the_order(void)
{
	setup();
	tenant *t = t_new("{\"allowed_hosts\":[\"*\"]}");
	fetch *f = fetch_new(NULL);
	cJSON *files = order(50, "ok", NULL);
	volatile sig_atomic_t stop = 0;
	struct seen s = { .stop_at_first = &stop };
	struct fetch_job j = job(t, &s, &stop);
	struct fetch_result r;
	TU_EQ_INT(fetch_files(f, &j, files, &r), -1);
	TU_EQ_INT(r.status, FETCH_STOPPED);
	TU_CHECK(requests() < 50);
	cJSON_Delete(files);
	fetch_free(f);
	tenant_free(t);
	server_stop();
}

static void test_one_forbidden_file_stops_every_download(void)
{
	setup();
	tenant *t = t_new("{\"allowed_hosts\":[\"127.0.0.1\"],\"file_roots\":[\"/nonexistent\"]}");
	fetch *f = fetch_new(NULL);
	cJSON *files = order(3, "ok", NULL);
	cJSON *last = cJSON_GetArrayItem(files, 2);
	cJSON_SetValuestring(cJSON_GetObjectItem(last, "url"), "file:///etc/passwd");
	cJSON_SetValuestring(cJSON_GetObjectItem(cJSON_GetArrayItem(files, 0), "md5"), "nothex");
	struct seen s = { 0 };
	struct fetch_job j = job(t, &s, NULL);
	struct fetch_result r;
	TU_EQ_INT(fetch_files(f, &j, files, &r), -1);
	TU_EQ_INT(r.status, FETCH_FORBIDDEN);
	TU_EQ_STR(r.message, "file P1/f2.nc is outside the tenant's file_roots");
	TU_EQ_INT(requests(), 0);
	cJSON_Delete(files);
	files = order(1, "ok", NULL);
	cJSON_SetValuestring(cJSON_GetObjectItem(files->child, "url"), "http://localhost:1/x");
	TU_EQ_INT(fetch_files(f, &j, files, &r), -1);
	TU_EQ_INT(r.status, FETCH_FORBIDDEN);
	TU_EQ_STR(r.message, "file P1/f0.nc: host localhost is not in the tenant's allowed_hosts "
	    "(\"*\" allows any host)");
	cJSON_Delete(files);
	fetch_free(f);
	tenant_free(t);
	server_stop();
}

/* allowed_hosts and source_buckets absent or [] allow nothing, ["*"]
 * anything: a source outside them is FORBIDDEN before any request. */
static void test_access_lists_absent_or_empty_allow_no_source(void)
{
	static const struct { const char *json, *url, *message; } cases[] = {
		{ "{}", "http://127.0.0.1:1/x",
		  "file P1/f0.nc: host 127.0.0.1 is not in the tenant's allowed_hosts (\"*\" allows any host)" },
		{ "{\"allowed_hosts\":[]}", "http://127.0.0.1:1/x",
		  "file P1/f0.nc: host 127.0.0.1 is not in the tenant's allowed_hosts (\"*\" allows any host)" },
		{ "{" S3SRV "}", "s3://src/k",
		  "file P1/f0.nc: bucket src is not in the tenant's source_buckets (\"*\" allows any bucket)" },
		{ "{" S3SRV ",\"source_buckets\":[]}", "s3://src/k",
		  "file P1/f0.nc: bucket src is not in the tenant's source_buckets (\"*\" allows any bucket)" },
		{ "{" S3SRV ",\"source_buckets\":[\"other\"]}", "s3://src/k",
		  "file P1/f0.nc: bucket src is not in the tenant's source_buckets (\"*\" allows any bucket)" },
	};
	util_strlcpy(tmp, tu_tmpdir(), sizeof tmp);
	fetch *f = fetch_new(NULL);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		tenant *t = t_new(cases[i].json);
		cJSON *files = order(1, "ok", NULL);
		cJSON_SetValuestring(cJSON_GetObjectItem(files->child, "url"), cases[i].url);
		struct seen s = { 0 };
		struct fetch_job j = job(t, &s, NULL);
		struct fetch_result r;
		TU_EQ_INT(fetch_files(f, &j, files, &r), -1);
		TU_EQ_INT(r.status, FETCH_FORBIDDEN);
		if (!TU_EQ_STR(r.message, cases[i].message))
			printf("# %s\n", cases[i].json);
		cJSON_Delete(files);
		tenant_free(t);
	}
	fetch_free(f);
}

static void test_an_empty_order_is_fetched_at_once(void)
{
	util_strlcpy(tmp, tu_tmpdir(), sizeof tmp);
	tenant *t = t_new("{\"allowed_hosts\":[\"*\"]}");
	fetch *f = fetch_new(NULL);
	cJSON *files = cJSON_CreateArray();
	struct seen s = { 0 };
	struct fetch_job j = job(t, &s, NULL);
	struct fetch_result r;
	TU_EQ_INT(fetch_files(f, &j, files, &r), 0);
	TU_EQ_INT(r.nremote + r.nlocal, 0);
	TU_EQ_INT(fetch_files(f, &j, NULL, &r), -1);
	TU_EQ_STR(r.message, "the item has no files array");
	cJSON_Delete(files);
	fetch_free(f);
	tenant_free(t);
}

TU_MAIN(
	TU(test_ten_thousand_files_go_through_a_small_window),
	TU(test_a_wrong_checksum_fails_after_the_attempts),
	TU(test_the_deadline_ends_the_retries),
	TU(test_a_stop_abandons_the_order),
	TU(test_one_forbidden_file_stops_every_download),
	TU(test_access_lists_absent_or_empty_allow_no_source),
	TU(test_an_empty_order_is_fetched_at_once)
)
