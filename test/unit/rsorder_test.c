/* rsorder_test: lib/rsorder.c refuses to speak for a user the tenant does
 * not list: no rs-order request body, no signed token (defence behind
 * ferry-request-validate's "Unknown user" and tenant_parse's refusal of
 * users "*" with rs_order). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "jwt.h"
#include "rsorder.h"
#include "tenant.h"
#include "tu.h"

static tenant *rso_tenant(const char *users)
{
	char json[256], err[256];
	tenant *t = NULL;
	snprintf(json, sizeof json, "{\"rs_order\":{\"url\":\"http://rs\",\"jwt_secret\":\"k\"}%s}",
	    users);
	if (tenant_parse("p1", "p1.json", json, strlen(json), 0100600, &t, NULL, NULL,
	    err, sizeof err) < 0)
		printf("# %s\n", err);
	return t;
}

static cJSON *granted(const char *user)
{
	char json[256];
	snprintf(json, sizeof json, "{\"correlationId\":\"c\",\"request\":{\"order\":"
	    "{\"queries\":[\"*\"],\"user\":\"%s\"}}}", user);
	return cJSON_Parse(json);
}

static void test_no_token_nor_order_for_an_unlisted_user(void)
{
	char err[256], *h = NULL;
	tenant *t = rso_tenant(",\"users\":[\"ana\"]");
	if (!TU_CHECK(t != NULL))
		return;
	cJSON *item = granted("ana");
	char *body = rsorder_request_body(item, t, err, sizeof err);
	TU_CHECK(body && strstr(body, "\"user\":\"ana\""));
	free(body);
	cJSON_Delete(item);
	TU_EQ_INT(rsorder_auth_header(t, "http://rs/orders/files/1", "ana", &h), 1);
	TU_CHECK(h && !strncmp(h, "Authorization: Bearer ", 22));
	jwt_free(h);

	item = granted("mallory");
	errno = 0;
	TU_CHECK(rsorder_request_body(item, t, err, sizeof err) == NULL);
	TU_EQ_INT(errno, EACCES);
	TU_EQ_STR(err, "Unknown user : mallory");
	cJSON_Delete(item);
	errno = 0;
	TU_EQ_INT(rsorder_auth_header(t, "http://rs/orders/files/1", "mallory", &h), -1);
	TU_EQ_INT(errno, EACCES);
	TU_CHECK(h == NULL);
	cJSON *files = NULL;
	int64_t total = 0;
	TU_EQ_INT(rsorder_list_files(t, "mallory", 1, &files, &total, err, sizeof err),
	    RSORDER_PERMANENT);
	TU_EQ_STR(err, "user mallory is not in the tenant's users: no token is signed for it");
	TU_CHECK(files == NULL);
	tenant_free(t);

	/* no users at all: nobody */
	t = rso_tenant("");
	if (!TU_CHECK(t != NULL))
		return;
	TU_EQ_INT(rsorder_auth_header(t, "http://rs/x", "ana", &h), -1);
	tenant_free(t);
}

TU_MAIN(TU(test_no_token_nor_order_for_an_unlisted_user))
