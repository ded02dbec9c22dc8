/* report_test: the JSON records of lib/report.c that need no journal — a
 * request's row (list, show) and its status line — with and without the
 * attempts, lastError and next attempt of a request set aside. */
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "tu.h"

static char *printed(cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static const struct jrequest waiting = {
	.tenant = "p1", .cid = "c-1", .state = "ORDERED", .received_ms = 1795000000000LL,
	.updated_ms = 1795000001000LL, .attempts = 2, .next_attempt_ms = 1795000061000LL,
	.last_error = "s3: 503 Slow Down",
};

static void test_a_request_set_aside_shows_attempts_last_error_and_next_attempt(void)
{
	cJSON *o = cJSON_CreateObject();
	report_request(o, &waiting);
	char *s = printed(o);
	TU_EQ_STR(s, "{\"tenant\":\"p1\",\"correlationId\":\"c-1\",\"state\":\"ORDERED\","
	    "\"receivedAt\":\"2026-11-18T11:06:40.000Z\",\"updatedAt\":\"2026-11-18T11:06:41.000Z\","
	    "\"attempts\":2,\"lastError\":\"s3: 503 Slow Down\","
	    "\"nextAttemptAt\":\"2026-11-18T11:07:41.000Z\"}");
	free(s);
	s = printed(report_status(&waiting, 1795000031000LL));
	TU_CHECK(strstr(s, "\"stage\":\"fetch\",\"busy\":false,") != NULL);
	TU_CHECK(strstr(s, "\"attempts\":2,\"lastError\":\"s3: 503 Slow Down\","
	    "\"nextAttemptAt\":\"2026-11-18T11:07:41.000Z\",\"nextAttemptInSeconds\":30}") != NULL);
	free(s);
}

static void test_a_request_never_set_aside_has_no_attempt_fields(void)
{
	struct jrequest r = waiting;
	r.attempts = 0;
	r.next_attempt_ms = 0;
	r.last_error = NULL;
	cJSON *o = cJSON_CreateObject();
	report_request(o, &r);
	char *s = printed(o);
	TU_CHECK(strstr(s, "ttempt") == NULL && strstr(s, "lastError") == NULL);
	free(s);
	s = printed(report_status(&r, 1795000031000LL));
	TU_CHECK(strstr(s, "ttempt") == NULL && strstr(s, "lastError") == NULL);
	free(s);
}

static void test_a_retry_made_due_keeps_its_attempts_without_a_next_attempt(void)
{
	struct jrequest r = waiting;
	r.next_attempt_ms = 0;
	char *s = printed(report_status(&r, 1795000031000LL));
	TU_CHECK(strstr(s, "\"attempts\":2,\"lastError\":\"s3: 503 Slow Down\"}") != NULL);
	free(s);
}

TU_MAIN(
	TU(test_a_request_set_aside_shows_attempts_last_error_and_next_attempt),
	TU(test_a_request_never_set_aside_has_no_attempt_fields),
	TU(test_a_retry_made_due_keeps_its_attempts_without_a_next_attempt)
)
