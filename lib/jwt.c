/* jwt: HS512 JSON Web Tokens for REGARDS REST calls (see jwt.h), on
 * libsodium's HMAC-SHA-512 (any key length, as jjwt's hmacShaKeyFor) and
 * its URL-safe unpadded base64, which is the JWS encoding. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sodium.h>

#include "jwt.h"

#define HEADER "{\"alg\":\"HS512\"}"
enum { VARIANT = sodium_base64_VARIANT_URLSAFE_NO_PADDING };

void jwt_free(char *token)
{
	if (token)
		sodium_memzero(token, strlen(token));
	free(token);
}

/* base64url of len bytes appended at out (room checked by the caller) */
static size_t b64(char *out, const void *in, size_t len)
{
	sodium_bin2base64(out, sodium_base64_ENCODED_LEN(len, VARIANT), in, len, VARIANT);
	return strlen(out);
}

static void mac(const unsigned char *key, size_t keylen, const char *in, size_t len,
    unsigned char out[crypto_auth_hmacsha512_BYTES])
{
	crypto_auth_hmacsha512_state st;
	crypto_auth_hmacsha512_init(&st, key, keylen);
	crypto_auth_hmacsha512_update(&st, (const unsigned char *)in, len);
	crypto_auth_hmacsha512_final(&st, out);
	sodium_memzero(&st, sizeof st);
}

int jwt_sign(const unsigned char *key, size_t keylen, const char *claims, char **out)
{
	unsigned char sig[crypto_auth_hmacsha512_BYTES];
	size_t hl = strlen(HEADER), cl = strlen(claims);
	*out = NULL;
	if (keylen == 0)
		return errno = EINVAL, -1;
	if (sodium_init() < 0)
		return errno = ENOMEM, -1;
	size_t cap = sodium_base64_ENCODED_LEN(hl, VARIANT) + sodium_base64_ENCODED_LEN(cl, VARIANT) +
	    sodium_base64_ENCODED_LEN(sizeof sig, VARIANT) + 2;
	char *t = malloc(cap);
	if (!t)
		return errno = ENOMEM, -1;
	size_t n = b64(t, HEADER, hl);
	t[n++] = '.';
	n += b64(t + n, claims, cl);
	mac(key, keylen, t, n, sig);
	t[n++] = '.';
	b64(t + n, sig, sizeof sig);
	*out = t;
	return 0;
}

int jwt_regards(const char *key, const char *tenant, const char *user, const char *role,
    int64_t exp_s, char **out)
{
	cJSON *c = cJSON_CreateObject();
	*out = NULL;
	if (!c || !cJSON_AddStringToObject(c, "tenant", tenant) ||
	    !cJSON_AddStringToObject(c, "role", role) || !cJSON_AddStringToObject(c, "sub", user) ||
	    !cJSON_AddStringToObject(c, "email", user) ||
	    !cJSON_AddNumberToObject(c, "exp", (double)exp_s)) {
		cJSON_Delete(c);
		return errno = ENOMEM, -1;
	}
	char *claims = cJSON_PrintUnformatted(c);
	cJSON_Delete(c);
	if (!claims)
		return errno = ENOMEM, -1;
	int rc = jwt_sign((const unsigned char *)key, strlen(key), claims, out);
	free(claims);
	return rc;
}

/* decode one base64url part into a malloc'd, NUL-terminated buffer */
static int unb64(const char *in, size_t len, char **out, size_t *outlen)
{
	*out = malloc(len + 1);
	if (!*out)
		return -1;
	if (sodium_base642bin((unsigned char *)*out, len, in, len, NULL, outlen, NULL, VARIANT) != 0) {
		free(*out);
		*out = NULL;
		return 0;
	}
	(*out)[*outlen] = '\0';
	return 1;
}

int jwt_verify(const unsigned char *key, size_t keylen, const char *token, char **claims)
{
	unsigned char want[crypto_auth_hmacsha512_BYTES];
	const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char *head = NULL, *sig = NULL;
	size_t hl, sl;
	*claims = NULL;
	if (!d2 || strchr(d2 + 1, '.') || sodium_init() < 0)
		return 0;
	int ok = unb64(token, (size_t)(d1 - token), &head, &hl);
	if (ok > 0)
		ok = unb64(d2 + 1, strlen(d2 + 1), &sig, &sl);
	if (ok > 0) {
		mac(key, keylen, token, (size_t)(d2 - token), want);
		ok = strcmp(head, HEADER) == 0 && sl == sizeof want &&
		    sodium_memcmp(sig, want, sizeof want) == 0;
	}
	if (ok > 0)
		ok = unb64(d1 + 1, (size_t)(d2 - d1 - 1), claims, &sl);
	free(head);
	free(sig);
	return ok;
}
