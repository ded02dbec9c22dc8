/* ferry-request-validate: RECEIVED -> GRANTED or DENIED. Judges each request
 * by the rules of DESIGN §2 and its tenant's configuration (lib/validate);
 * the driver runs it in batches, each one transaction writing the state
 * changes and their responses to the outbox, and prints GRANTED items.
 * Items it does not know are registered first, so it also works on a file
 * of items without RabbitMQ. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"
#include "err.h"
#include "item.h"
#include "util.h"
#include "validate.h"
#include "version.h"

static const char usage[] =
    "usage: ferry-request-validate [-hv] [-j journal] [-t tenants] [-b batch]";

static int64_t received_ms(journal *j, const cJSON *item)
{
	int64_t ms;
	const char *s = item_str(item, "receivedAt");
	struct jrequest r;
	if (s && util_parse_iso8601(s, &ms) == 0)
		return ms;
	ms = util_now_ms();
	if (journal_get(j, item_str(item, "tenant"), item_str(item, "correlationId"), &r) == 1)
		ms = r.received_ms;
	journal_request_clear(&r);
	return ms;
}

/* The verdict on one request: GRANTED with its expiresAt, or DENIED. */
static void judge(void *ctx, struct driver_job *job, struct driver_result *r)
{
	(void)ctx;
	const tenant *t = job->tenant;
	struct validation v;
	if (validate_request(cJSON_GetObjectItemCaseSensitive(job->item, "request"),
	    job->tenant_name, t, &v) < 0) {
		driver_fail(r, "INTERNAL_ERROR", "%s", strerror(errno));
		return;
	}
	if (v.denied) {
		r->verdict = DRIVER_DENY;
		r->error_type = v.error_type;
		util_strlcpy(r->message, v.message, sizeof r->message);
		return;
	}
	char ts[32];
	r->expires_ms = received_ms(job->j, job->item) + (int64_t)(t->request_ttl_hours * 3600000.0);
	util_iso8601(r->expires_ms, ts);
	cJSON_DeleteItemFromObjectCaseSensitive(job->item, "expiresAt");
	cJSON_AddStringToObject(job->item, "expiresAt", ts);
}

int main(int argc, char **argv)
{
	struct driver d;
	int ch;
	char *end;
	err_init("ferry-request-validate");
	version_option(argc, argv);
	driver_init(&d, "ferry-request-validate", JSTAGE_VALIDATE);
	d.batch = 256;
	d.ok_status = "GRANTED";
	d.work = judge;
	while ((ch = getopt(argc, argv, "hvj:t:b:")) != -1) {
		if (ch != 'c' && driver_option(&d, ch, optarg))
			continue;
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'b':
			d.batch = (int)strtol(optarg, &end, 10);
			if (*end || d.batch < 1 || d.batch > 100000)
				err_die(EXIT_PERM, "%s", usage);
			break;
		default: err_die(EXIT_PERM, "%s", usage);
		}
	}
	if (optind != argc)
		err_die(EXIT_PERM, "%s", usage);
	return driver_run(&d);
}
