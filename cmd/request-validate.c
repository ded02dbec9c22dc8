/* ferry-request-validate: RECEIVED -> GRANTED or DENIED. Judges each request
 * by the rules of DESIGN §2 and its tenant's configuration, writes the
 * response to the outbox in the same transaction as the state change, and
 * prints GRANTED items. Items it does not know are registered first, so it
 * also works on a file of items without RabbitMQ. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "item.h"
#include "journal.h"
#include "response.h"
#include "stage.h"
#include "tenants.h"
#include "util.h"
#include "validate.h"

static const char usage[] = "usage: ferry-request-validate [-hv] [-j journal] [-t tenants] [-b batch]";

static volatile sig_atomic_t stop;

struct ctx {
	journal *j;
	tenants *tenants;
	/* results of the current batch, written out after its commit */
	char **granted;           /* GRANTED items, printed */
	char **responses;
	int ngranted, nresponses;
	/* items taken back at start, judged a batch at a time */
	cJSON **recovered;
	int nrecovered, batch;
	int torn;                 /* a bad line was read: take up the journal's */
};

static void warn_key(void *arg, const char *file, const char *key)
{
	(void)arg;
	err_warn("%s: %s: unknown setting ignored", file, key);
}

/* A bad line is most likely torn (ferry-amqp-ingest killed mid-line, its
 * fragment glued to the next line): both items are RECEIVED in the journal,
 * taken up after the batch rather than at the next start. */
static void bad_line(void *arg, const char *reason)
{
	struct ctx *c = arg;
	err_error("stdin: %s: line skipped; taking up what waits in the journal", reason);
	c->torn = 1;
}

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

/* Judge a claimed item and commit the verdict. */
static void judge(struct ctx *c, cJSON *item, const char *label)
{
	const char *tname = item_str(item, "tenant"), *cid = item_str(item, "correlationId");
	const char *why = NULL;
	int fresh;
	const tenant *t = tenants_get(c->tenants, tname, &why, &fresh);
	if (!t && fresh)
		err_log(ERR_ERROR, label, "tenant unusable: %s", why);
	struct validation v;
	if (validate_request(cJSON_GetObjectItemCaseSensitive(item, "request"), tname, t, &v) < 0)
		err_die(EXIT_TEMP, "%s: %s", label, strerror(errno)); /* claim taken back at restart */

	int64_t expires = 0;
	if (!v.denied) {
		char ts[32];
		expires = received_ms(c->j, item) + (int64_t)(t->request_ttl_hours * 3600000.0);
		util_iso8601(expires, ts);
		cJSON_DeleteItemFromObjectCaseSensitive(item, "expiresAt");
		cJSON_AddStringToObject(item, "expiresAt", ts);
	}
	char *body = response_body(cid, v.denied ? "DENIED" : "GRANTED", v.denied ? v.message : NULL,
	    v.error_type, NULL, NULL);
	char *headers = stage_headers(item), *text = item_print(item);
	struct jcommit cm = {
		.tenant = tname, .cid = cid, .stage = JSTAGE_VALIDATE,
		.state = v.denied ? "DENIED" : "GRANTED", .item = text,
		.response = body, .headers = headers, .error_type = v.error_type,
		.expires_ms = expires, .claim = 1,
	};
	int rc = body && headers && text ? journal_commit(c->j, &cm) : -1;
	free(headers);
	if (rc <= 0 || v.denied)
		free(text);
	if (rc <= 0) {
		if (rc == 0)
			err_log(ERR_INFO, label, "not waiting for validation; skipped");
		else
			err_log(ERR_ERROR, label, "%s", body ? journal_error(c->j) : strerror(ENOMEM));
		free(body);
		return;
	}
	err_log(ERR_INFO, label, "%s%s%s", cm.state, v.denied ? ": " : "", v.denied ? v.message : "");
	c->responses[c->nresponses++] = body;
	if (!v.denied)
		c->granted[c->ngranted++] = text;
}

/* Register if unknown, answer a reused correlationId, judge (the commit of
 * the verdict is the claim). */
static void handle(struct ctx *c, cJSON *item)
{
	char label[160];
	enum journal_reg reg;
	item_label(item, label, sizeof label);
	int rc = stage_register(c->j, JSTAGE_VALIDATE, item, "RECEIVED", &reg);
	if (rc == -2) {
		err_error("stdin: item without tenant or correlationId: skipped");
		return;
	}
	if (rc < 0) {
		err_log(ERR_ERROR, label, "%s", journal_error(c->j));
		return;
	}
	if (reg == JREG_CONFLICT) {
		char *resp;
		if (stage_duplicate(c->j, item, reg, 0, &resp) < 0)
			err_log(ERR_ERROR, label, "%s", journal_error(c->j));
		else if (resp)
			c->responses[c->nresponses++] = resp;
		err_log(ERR_INFO, label, "DENIED: correlationId already used with another body");
		return;
	}
	/* the claim is the verdict's commit (journal_commit .claim): the batch
	 * is one transaction, so VALIDATING would never be seen by anyone */
	judge(c, item, label);
}

/* Commit a batch as one transaction, then print and answer on fd 3. */
static void run_batch(struct ctx *c, cJSON **items, int n)
{
	if (journal_begin(c->j) < 0)
		err_die(journal_temporary(c->j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(c->j));
	tenants_hold(c->tenants, 1);
	for (int i = 0; i < n; i++)
		handle(c, items[i]);
	tenants_hold(c->tenants, 0);
	if (journal_end(c->j) < 0)
		err_die(journal_temporary(c->j) ? EXIT_TEMP : EXIT_PERM, "%s", journal_error(c->j));
	if (item_write_lines(1, c->granted, c->ngranted) < 0)
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
	for (int i = 0; i < c->ngranted; i++)
		free(c->granted[i]);
	stage_fd3_lines(c->responses, c->nresponses);
	for (int i = 0; i < c->nresponses; i++)
		free(c->responses[i]);
	c->ngranted = c->nresponses = 0;
}

static void recover_flush(struct ctx *c)
{
	if (c->nrecovered == 0)
		return;
	run_batch(c, c->recovered, c->nrecovered);
	for (int i = 0; i < c->nrecovered; i++)
		cJSON_Delete(c->recovered[i]);
	c->nrecovered = 0;
}

static int recover_one(void *arg, const char *tenant, const char *cid, const char *text)
{
	struct ctx *c = arg;
	char err[128];
	cJSON *item = text ? item_parse(text, strlen(text), err, sizeof err) : NULL;
	if (!item) {
		err_log(ERR_ERROR, NULL, "%s/%s: journaled item unreadable; skipped", tenant, cid);
		return stop;
	}
	c->recovered[c->nrecovered++] = item;
	if (c->nrecovered == c->batch)
		recover_flush(c);
	return stop;
}

/* Judge the requests waiting in RECEIVED, a batch at a time. */
static void take_up(struct ctx *c)
{
	if (journal_pending(c->j, JSTAGE_VALIDATE, recover_one, c) < 0)
		err_die(EXIT_TEMP, "%s", journal_error(c->j));
	recover_flush(c);
}

int main(int argc, char **argv)
{
	const char *jpath = util_env("FERRY_JOURNAL", "/var/lib/ferry/journal.db");
	const char *tdir = util_env("FERRY_TENANTS", "/etc/ferry/tenants");
	int ch, batch = 256, temp;
	char err[512];

	err_init("ferry-request-validate");
	if (stage_fd3_init() < 0)
		err_die(EXIT_TEMP, "unable to open /dev/null: %s", strerror(errno));
	while ((ch = getopt(argc, argv, "hvj:t:b:")) != -1) {
		switch (ch) {
		case 'h': puts(usage); return 0;
		case 'v': err_verbose(1); break;
		case 'j': jpath = optarg; break;
		case 't': tdir = optarg; break;
		case 'b': batch = atoi(optarg); break;
		default: err_die(EXIT_PERM, "%s", usage);
		}
	}
	if (optind != argc || batch < 1)
		err_die(EXIT_PERM, "%s", usage);
	util_signals(&stop);

	struct ctx c = { 0 };
	if (journal_open(jpath, JOURNAL_SYNC_NORMAL, &c.j, err, sizeof err, &temp) < 0)
		err_die(temp ? EXIT_TEMP : EXIT_PERM, "%s", err);
	journal_set_owner(c.j, "validate");
	c.tenants = tenants_new(tdir, warn_key, NULL);
	cJSON **items = calloc((size_t)batch, sizeof *items);
	c.granted = calloc((size_t)batch, sizeof *c.granted);
	c.responses = calloc((size_t)batch * 2, sizeof *c.responses);
	c.recovered = items;
	c.batch = batch;
	item_reader *r = item_reader_new(0);
	if (!c.tenants || !items || !c.granted || !c.responses || !r)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));

	if (journal_takeback(c.j, JSTAGE_VALIDATE) < 0)
		err_die(EXIT_TEMP, "%s", journal_error(c.j));
	take_up(&c);

	while (!stop) {
		int n = stage_read_batch(r, 0, items, batch, bad_line, &c);
		if (n < 0 && errno != EINTR)
			err_die(EXIT_TEMP, "unable to read stdin: %s", strerror(errno));
		if (n > 0)
			run_batch(&c, items, n);
		for (int i = 0; i < n; i++)
			cJSON_Delete(items[i]);
		if (c.torn) {
			c.torn = 0;
			take_up(&c);
		} else if (n == 0) {
			break;
		}
	}
	item_reader_free(r);
	free(items);
	free(c.granted);
	free(c.responses);
	tenants_free(c.tenants);
	journal_close(c.j);
	return 0;
}
