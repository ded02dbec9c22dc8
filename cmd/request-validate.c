/* ferry-request-validate: RECEIVED -> GRANTED or DENIED. Judges each request
 * by the rules of DESIGN §2 and its tenant's configuration (lib/validate);
 * the driver runs it in batches, each one transaction writing the state
 * changes and their responses to the outbox, and prints GRANTED items.
 * Items it does not know are registered first, so it also works on a file
 * of items without RabbitMQ. A tenant with rs_admin has rs-admin asked
 * about users its list does not name (lib/rsadmin); while rs-admin does not
 * answer, the request is set aside, never DENIED for it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "args.h"
#include "driver.h"
#include "err.h"
#include "item.h"
#include "rsadmin.h"
#include "util.h"
#include "validate.h"

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

/* order.user when rs-admin is to be asked about it, else NULL */
static const char *user_to_ask(const tenant *t, const cJSON *body)
{
	const cJSON *order = cJSON_GetObjectItemCaseSensitive(body, "order");
	const char *user = item_str(order, "user");
	if (!t || !t->has_rs_admin || !user || validate_blank(user) || tenant_user_allowed(t, user))
		return NULL;
	return user;
}

/* Whether rs-admin knows the request's user: 1 or 0, or -1 when the
 * verdict is in r (set aside while rs-admin does not answer; EXPIRED once
 * the request outlived its ttl waiting). */
static int known_user(rsadmin *admin, struct driver_job *job, const cJSON *body,
    struct driver_result *r)
{
	char why[512], ts[32];
	const tenant *t = job->tenant;
	const char *user = user_to_ask(t, body);
	if (!user)
		return 0;
	int64_t now = util_now_ms();
	int a = rsadmin_check(admin, t, user, now, why, sizeof why);
	if (a != RSADMIN_UNAVAILABLE)
		return a == RSADMIN_MEMBER;
	int64_t deadline = received_ms(job->j, job->item) + (int64_t)(t->request_ttl_hours * 3600000.0);
	if (now >= deadline) {
		util_iso8601(deadline, ts);
		driver_fail(r, "EXPIRED", "The request date has reached the expiration limit '%s'", ts);
	} else {
		r->verdict = DRIVER_RETRY;
		snprintf(r->message, sizeof r->message, "user not checked: %s", why);
	}
	return -1;
}

/* The verdict on one request: GRANTED with its expiresAt, or DENIED. */
static void judge(void *ctx, struct driver_job *job, struct driver_result *r)
{
	const tenant *t = job->tenant;
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(job->item, "request");
	struct validation v;
	int known = known_user(ctx, job, body, r);
	if (known < 0)
		return;
	if (validate_request_known(body, job->tenant_name, t, known, &v) < 0) {
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
	args_init(argc, argv);
	driver_init(&d, "ferry-request-validate", JSTAGE_VALIDATE);
	d.batch = 256;
	d.ok_status = "GRANTED";
	d.work = judge;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		err_die(EXIT_TEMP, "unable to set up libcurl");
	while ((ch = getopt(argc, argv, "hvj:t:b:")) != -1) {
		if (ch != 'c' && driver_option(&d, ch, optarg))
			continue;
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'b':
			d.batch = (int)strtol(optarg, &end, 10);
			if (*end || d.batch < 1 || d.batch > 100000)
				args_usage(usage);
			break;
		default: args_usage(usage);
		}
	}
	if (optind != argc)
		args_usage(usage);
	if (!(d.ctx = rsadmin_new()))
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	int rc = driver_run(&d);
	rsadmin_free(d.ctx);
	curl_global_cleanup();
	return rc;
}
