/* jwt_test: lib/jwt.c against a token made by an independent
 * implementation (node's crypto, as test/rs-order-standin.js signs), and
 * the verification of good, altered and foreign tokens; the checks of a
 * REGARDS token presented to ferry-httpd (JWTService.parseToken's), the
 * admin roles, the shared secret file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "jwt.h"
#include "tu.h"

/* REGARDS' built-in default key (jwt.signing-key.HS512) */
static const char key[] = "!!!!!==========abcdefghijklmnopqrstuvwxyz0123456789==========!!!!!";

/* node -e: HS512 over {"alg":"HS512"} and the claims below with that key */
static const char node_token[] =
    "eyJhbGciOiJIUzUxMiJ9."
    "eyJ0ZW5hbnQiOiJwMSIsInJvbGUiOiJSRUdJU1RFUkVEX1VTRVIiLCJzdWIiOiJhbmFAZXhhbXBsZS5vcmciLCJl"
    "bWFpbCI6ImFuYUBleGFtcGxlLm9yZyIsImV4cCI6NDEwMjQ0NDgwMH0."
    "D5zRonnce7xSZt7BXHl4gSdf36HbZPPS7-6wHOEN8xN5yK1iFI1pGmDqF-m601xhaf8k6RoH8r8GADPVz-f1Zg";

static void test_regards_token_matches_an_independent_signer(void)
{
	char *t = NULL;
	TU_EQ_INT(jwt_regards(key, "p1", "ana@example.org", "REGISTERED_USER", 4102444800LL, &t), 0);
	TU_EQ_STR(t, node_token);
	jwt_free(t);
}

static void test_verify(void)
{
	char *claims = NULL, *t = NULL;
	const unsigned char *k = (const unsigned char *)key;
	TU_EQ_INT(jwt_verify(k, strlen(key), node_token, &claims), 1);
	TU_EQ_STR(claims, "{\"tenant\":\"p1\",\"role\":\"REGISTERED_USER\",\"sub\":\"ana@example.org\","
	    "\"email\":\"ana@example.org\",\"exp\":4102444800}");
	free(claims);
	/* another key, an altered claim, a truncated token, garbage */
	TU_EQ_INT(jwt_verify((const unsigned char *)"other", 5, node_token, &claims), 0);
	TU_CHECK(claims == NULL);
	t = strdup(node_token);
	t[30] = t[30] == 'A' ? 'B' : 'A';
	TU_EQ_INT(jwt_verify(k, strlen(key), t, &claims), 0);
	t[strlen(t) - 3] = '\0';
	TU_EQ_INT(jwt_verify(k, strlen(key), t, &claims), 0);
	free(t);
	TU_EQ_INT(jwt_verify(k, strlen(key), "a.b", &claims), 0);
	TU_EQ_INT(jwt_verify(k, strlen(key), "a.b.c.d", &claims), 0);
	TU_EQ_INT(jwt_verify(k, strlen(key), "!!.??.**", &claims), 0);
	/* a signed token round-trips; the empty key is refused */
	TU_EQ_INT(jwt_sign((const unsigned char *)"s", 1, "{\"a\":1}", &t), 0);
	TU_EQ_INT(jwt_verify((const unsigned char *)"s", 1, t, &claims), 1);
	TU_EQ_STR(claims, "{\"a\":1}");
	free(claims);
	jwt_free(t);
	TU_EQ_INT(jwt_sign((const unsigned char *)"", 0, "{}", &t), -1);
	TU_CHECK(t == NULL);
}

/* a token of claims signed with key; with another header than HS512's,
 * that header put in place of the signed one (the signature then fails,
 * but the alg is judged first) */
static char *token(const char *header, const char *claims, const char *k)
{
	char *t = NULL;
	if (strcmp(header, "{\"alg\":\"HS512\"}") == 0) {
		jwt_sign((const unsigned char *)k, strlen(k), claims, &t);
		return t;
	}
	jwt_sign((const unsigned char *)k, strlen(k), claims, &t);
	char *dot = strchr(t, '.');
	size_t hl = strlen(header);
	char h64[256];
	sodium_bin2base64(h64, sizeof h64, (const unsigned char *)header, hl,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *u = malloc(strlen(h64) + strlen(dot) + 1);
	strcpy(u, h64);
	strcat(u, dot);
	jwt_free(t);
	return u;
}

static int parse(const char *t, int64_t now_ms, struct jwt_user *u, const char **what)
{
	return jwt_regards_parse((const unsigned char *)key, strlen(key), t, now_ms, u, what);
}

static void test_regards_parse(void)
{
	struct jwt_user u;
	const char *what;
	int64_t now = 4102444800000LL;     /* the node token's exp, in ms */
	TU_EQ_INT(parse(node_token, now, &u, &what), JWT_VALID);
	TU_EQ_STR(u.tenant, "p1");
	TU_EQ_STR(u.login, "ana@example.org");
	TU_EQ_STR(u.role, "REGISTERED_USER");
	TU_EQ_STR(u.email, "ana@example.org");
	jwt_user_clear(&u);
	TU_CHECK(u.tenant == NULL);
	/* jjwt: expired only once now is after exp */
	TU_EQ_INT(parse(node_token, now + 1, &u, &what), JWT_EXPIRED);
	TU_EQ_STR(what, "exp");
	TU_EQ_INT(jwt_regards_parse((const unsigned char *)"other", 5, node_token, now, &u, &what),
	    JWT_SIGNATURE);
	TU_EQ_INT(parse("a.b", now, &u, &what), JWT_MALFORMED);
	TU_EQ_INT(parse("!!.??.**", now, &u, &what), JWT_MALFORMED);
	char *t = token("{\"alg\":\"HS256\"}", "{}", key);
	TU_EQ_INT(parse(t, now, &u, &what), JWT_ALGORITHM);
	free(t);
	t = token("{\"typ\":\"JWT\",\"alg\":\"HS512\"}", "{}", key);
	TU_EQ_INT(parse(t, now, &u, &what), JWT_SIGNATURE);     /* the header is signed too */
	free(t);
	static const struct { const char *claims; int rc; const char *what; } cases[] = {
		{ "{\"tenant\":\"p1\",\"sub\":\"a\",\"role\":\"ADMIN\",\"email\":\"e\"}", JWT_VALID, "" },
		{ "{\"sub\":\"a\",\"role\":\"ADMIN\",\"email\":\"e\"}", JWT_MISSING_CLAIM, "tenant" },
		{ "{\"tenant\":\"p1\",\"role\":\"ADMIN\",\"email\":\"e\"}", JWT_MISSING_CLAIM, "sub" },
		{ "{\"tenant\":\"p1\",\"sub\":\"a\",\"email\":\"e\"}", JWT_MISSING_CLAIM, "role" },
		{ "{\"tenant\":\"p1\",\"sub\":\"a\",\"role\":\"ADMIN\"}", JWT_MISSING_CLAIM, "email" },
		{ "{\"tenant\":7,\"sub\":\"a\",\"role\":\"ADMIN\",\"email\":\"e\"}", JWT_MISSING_CLAIM,
		  "tenant" },
		{ "{\"tenant\":\"p1\",\"sub\":\"a\",\"role\":\"ADMIN\",\"email\":\"e\",\"nbf\":4200000000}",
		  JWT_PREMATURE, "nbf" },
		{ "{\"tenant\":\"p1\",\"sub\":\"a\",\"role\":\"ADMIN\",\"email\":\"e\",\"exp\":\"x\"}",
		  JWT_MALFORMED, "exp" },
		{ "[1]", JWT_MALFORMED, "claims" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		t = token("{\"alg\":\"HS512\"}", cases[i].claims, key);
		TU_EQ_INT(parse(t, now, &u, &what), cases[i].rc);
		if (cases[i].rc != JWT_VALID)
			TU_EQ_STR(what, cases[i].what);
		TU_CHECK(cases[i].rc == JWT_VALID ? u.tenant != NULL : u.tenant == NULL);
		jwt_user_clear(&u);
		jwt_free(t);
	}
}

static void test_admin_roles(void)
{
	static const char *const yes[] = { "ADMIN", "ROLE_ADMIN", "PROJECT_ADMIN", "INSTANCE_ADMIN",
		"SYS_rs-delivery", "ROLE_SYS_x" };
	static const char *const no[] = { "PUBLIC", "REGISTERED_USER", "EXPLOIT", "admin",
		"ROLE_", "", "ADMINS", "ROLE_ROLE_ADMIN" };
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		TU_CHECK(jwt_role_admin(yes[i]));
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		TU_CHECK(!jwt_role_admin(no[i]));
	/* PROJECT_ADMIN endpoints: ADMIN is not enough */
	static const char *const pyes[] = { "PROJECT_ADMIN", "ROLE_PROJECT_ADMIN", "INSTANCE_ADMIN",
		"SYS_x" };
	static const char *const pno[] = { "ADMIN", "ROLE_ADMIN", "EXPLOIT", "PROJECT_ADMINS" };
	for (size_t i = 0; i < sizeof pyes / sizeof *pyes; i++)
		TU_CHECK(jwt_role_project_admin(pyes[i]));
	for (size_t i = 0; i < sizeof pno / sizeof *pno; i++)
		TU_CHECK(!jwt_role_project_admin(pno[i]));
}

static void test_secret_read(void)
{
	char path[4096], err[4200], *s = NULL;
	snprintf(path, sizeof path, "%s/k", tu_tmpdir());
	FILE *f = fopen(path, "w");
	fputs("k3y!=\n", f);
	fclose(f);
	chmod(path, 0600);
	TU_EQ_INT(jwt_secret_read(path, &s, err, sizeof err), 0);
	TU_EQ_STR(s, "k3y!=");
	jwt_free(s);
	chmod(path, 0640);
	TU_EQ_INT(jwt_secret_read(path, &s, err, sizeof err), -1);
	TU_CHECK(strstr(err, "readable by group/others (mode 0640); chmod 600 it") != NULL);
	TU_CHECK(!strstr(err, "k3y"));
	f = fopen(path, "w");
	fputs("\n", f);
	fclose(f);
	chmod(path, 0600);
	TU_EQ_INT(jwt_secret_read(path, &s, err, sizeof err), -1);
	TU_CHECK(strstr(err, "empty or not text") != NULL);
	TU_EQ_INT(jwt_secret_read(tu_tmpdir(), &s, err, sizeof err), -1);
	TU_CHECK(strstr(err, "not a regular file") != NULL);
	TU_CHECK(s == NULL);
}

TU_MAIN(TU(test_regards_token_matches_an_independent_signer), TU(test_verify),
    TU(test_regards_parse), TU(test_admin_roles), TU(test_secret_read))
