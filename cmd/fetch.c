/* ferry-fetch: ORDERED -> FETCHED. Checks every file of a request (file://
 * sources inside the tenant's file_roots, http(s) hosts in allowed_hosts),
 * downloads the remote ones into the workspace md5-verified (lib/fetch),
 * and adds each file's local "path" to the item. */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "driver.h"
#include "err.h"
#include "fetch.h"
#include "util.h"

static const char usage[] =
    "usage: ferry-fetch [-hv] [-c workers] [-j journal] [-t tenants] [-w workspace] [-p parallel]";

/* the options; each worker makes its own fetch of them (libcurl handles) */
struct ctx {
	struct fetch_opts o;
};

static void progress(void *arg, int64_t done, int64_t total)
{
	struct driver_job *job = arg;
	if (journal_progress(job->j, job->tenant_name, job->cid, done, total) < 0)
		err_log(ERR_WARNING, job->label, "progress not recorded: %s", journal_error(job->j));
}

static void note(void *arg, const char *line)
{
	struct driver_job *job = arg;
	err_log(ERR_WARNING, job->label, "%s", line);
}

static void fetch_work(void *arg, struct driver_job *job, struct driver_result *r)
{
	static const char *const types[] = {
		[FETCH_FORBIDDEN] = "FORBIDDEN", [FETCH_FAILED] = "INTERNAL_ERROR",
		[FETCH_EXPIRED] = "EXPIRED",
	};
	fetch *f = arg;
	struct fetch_result fr;
	struct fetch_job fj = {
		.tenant = job->tenant, .workspace = job->workspace, .expires_ms = job->expires_ms,
		.stop = job->stop, .hold_ms = job->hold_ms, .progress = progress, .note = note,
		.arg = job,
	};
	int64_t t0 = util_mono_ms();
	cJSON *files = cJSON_GetObjectItemCaseSensitive(job->item, "files");
	if (fetch_files(f, &fj, files, &fr) == 0) {
		r->bytes = fr.bytes;
		err_log(ERR_INFO, job->label, "%zu local, %zu remote (%zu already there) files, "
		    "%" PRId64 " bytes downloaded in %.1f s", fr.nlocal, fr.nremote, fr.nreused,
		    fr.bytes, (double)(util_mono_ms() - t0) / 1000.0);
	} else if (fr.status == FETCH_STOPPED) {
		r->verdict = DRIVER_ABANDON;
	} else if (fr.status == FETCH_TEMPORARY) {
		r->verdict = DRIVER_RETRY;
		r->bytes = fr.bytes;
		util_strlcpy(r->message, fr.message, sizeof r->message);
	} else {
		r->bytes = fr.bytes;
		driver_fail(r, types[fr.status], "%s", fr.message);
	}
}

static void *fetch_worker(void *arg)
{
	return fetch_new(&((struct ctx *)arg)->o);
}

static void fetch_worker_free(void *f)
{
	fetch_free(f);
}

int main(int argc, char **argv)
{
	struct driver d;
	struct ctx c = { .o = { .parallel = 4 } };
	struct fetch_opts *o = &c.o;
	int ch;

	err_init("ferry-fetch");
	args_init(argc, argv);
	driver_init(&d, "ferry-fetch", JSTAGE_FETCH);
	while ((ch = getopt(argc, argv, DRIVER_OPTS "hp:")) != -1) {
		if (driver_option(&d, ch, optarg))
			continue;
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'p': o->parallel = atoi(optarg); break;
		default: args_usage(usage);
		}
	}
	if (optind != argc || o->parallel < 1 || o->parallel > 64)
		args_usage(usage);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		err_die(EXIT_TEMP, "unable to set up libcurl");
	d.work = fetch_work;
	d.ctx = &c;
	d.worker_new = fetch_worker;
	d.worker_free = fetch_worker_free;
	int rc = driver_run(&d);
	curl_global_cleanup();
	return rc;
}
