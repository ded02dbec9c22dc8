/* jwt_test: lib/jwt.c against a token made by an independent
 * implementation (node's crypto, as test/rs-order-standin.js signs), and
 * the verification of good, altered and foreign tokens. */
#include <stdlib.h>
#include <string.h>

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

TU_MAIN(TU(test_regards_token_matches_an_independent_signer), TU(test_verify))
