/* stage: the parts of a stage's loop that are the same in every stage
 * (see stage.h): registration, duplicates, batches, fd 3, headers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "response.h"
#include "stage.h"
#include "util.h"

static int64_t item_time(const cJSON *item, const char *key)
{
	int64_t ms;
	const char *s = item_str(item, key);
	return s && util_parse_iso8601(s, &ms) == 0 ? ms : 0;
}

int stage_register(journal *j, enum jstage st, const cJSON *item, const char *state,
    enum journal_reg *out)
{
	char *text;
	int rc = stage_register_text(j, st, item, state, 0, out, &text);
	free(text);
	return rc;
}

int stage_register_text(journal *j, enum jstage st, const cJSON *item, const char *state,
    int redelivered, enum journal_reg *out, char **text_out)
{
	char fp[65];
	const char *tenant = item_str(item, "tenant"), *cid = item_str(item, "correlationId");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(item, "request");
	struct jregister r = {
		.tenant = tenant, .cid = cid, .fingerprint = fp, .state = state, .stage = st,
		.received_ms = item_time(item, "receivedAt"),
		.expires_ms = item_time(item, "expiresAt"), .redelivered = redelivered,
	};
	*text_out = NULL;
	if (!tenant || !cid)
		return -2;
	if (item_fingerprint(req, fp) < 0)
		return -1;
	/* known (the usual case past ingest): no need to print the item */
	int found = journal_lookup(j, &r, out);
	if (found < 0 || (found && *out != JREG_AGAIN))
		return found < 0 ? -1 : 0;
	char *text = item_print(item);
	if (!text)
		return -1;
	r.item = text;
	r.absent = !found;   /* we just looked, in the caller's batch if there is one */
	int rc = journal_register(j, &r, out);
	if (rc == 0 && JREG_WRITTEN(*out))
		*text_out = text;
	else
		free(text);
	return rc;
}

char *stage_headers(const cJSON *item)
{
	return response_headers(item_str(item, "tenant"),
	    cJSON_GetObjectItemCaseSensitive(item, "headers"));
}

int stage_duplicate(journal *j, const cJSON *item, enum journal_reg reg, int redelivered)
{
	if (reg != JREG_SAME || redelivered)
		return 0;
	return journal_resend_latest(j, item_str(item, "tenant"), item_str(item, "correlationId")) < 0 ?
	    -1 : 0;
}

void stage_conflict_log(const cJSON *item, const char *fate)
{
	char label[160];
	err_log(ERR_WARNING, item_label(item, label, sizeof label),
	    "correlationId in flight with another body: %s, not answered (an answer would be "
	    "taken for the first request's)", fate);
}

static int fd3_null;   /* fd 3 is our /dev/null: responses need no write */

int stage_fd3_init(void)
{
	if (util_fd_open(3))
		return 0;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	fd3_null = 1;
	if (fd != 3) {
		int rc = dup2(fd, 3);
		close(fd);
		return rc == 3 ? 0 : -1;
	}
	return 0;
}

void stage_fd3_lines(char *const *responses, int n)
{
	if (!fd3_null)
		(void)item_write_lines(3, responses, n);
}

void stage_fd3(const char *response)
{
	char *line = (char *)response;   /* writev only reads it */
	if (response)
		stage_fd3_lines(&line, 1);
}

static int readable_now(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) > 0;
}

int stage_read_batch(item_reader *r, int fd, cJSON **items, int max, stage_bad_fn *bad, void *arg)
{
	int n = 0;
	while (n < max) {
		if (n > 0 && !item_buffered(r) && !readable_now(fd))
			break;
		cJSON *it;
		int rc = item_read(r, &it);
		if (rc == ITEM_OK)
			items[n++] = it;
		else if (rc == ITEM_BAD) {
			bad(arg, item_reader_error(r));
			break;
		}
		else if (rc == ITEM_EOF)
			break;
		else if (n == 0)
			return -1;
		else
			break;
	}
	return n;
}
