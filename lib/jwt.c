/* jwt: HS512 JSON Web Tokens for REGARDS REST calls (see jwt.h), on
 * libsodium's HMAC-SHA-512 (any key length, as jjwt's hmacShaKeyFor) and
 * its URL-safe unpadded base64, which is the JWS encoding; and the
 * checks REGARDS's JWTService makes of a token presented to it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- REGARDS tokens presented to ferry ---- */

void jwt_user_clear(struct jwt_user *u)
{
	free(u->tenant);
	free(u->login);
	free(u->role);
	free(u->email);
	*u = (struct jwt_user){ 0 };
}

/* base64url part [s, s+len) as a JSON object, or NULL */
static cJSON *part_json(const char *s, size_t len, int *nomem)
{
	char *text = NULL;
	size_t n;
	int ok = unb64(s, len, &text, &n);
	if (ok < 0)
		*nomem = 1;
	cJSON *j = ok > 0 && strlen(text) == n ? cJSON_ParseWithLength(text, n) : NULL;
	free(text);
	if (j && !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		j = NULL;
	}
	return j;
}

/* a claim that must be a string, copied into *dst */
static int claim(const cJSON *c, const char *name, char **dst)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, name));
	if (!v)
		return 0;
	return (*dst = strdup(v)) ? 1 : -1;
}

/* exp and nbf, seconds since the epoch as jjwt reads them: a number, or absent */
static enum jwt_status times(const cJSON *c, int64_t now_ms, const char **what)
{
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(c, "exp");
	const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(c, "nbf");
	if ((exp && !cJSON_IsNumber(exp)) || (nbf && !cJSON_IsNumber(nbf)))
		return *what = exp && !cJSON_IsNumber(exp) ? "exp" : "nbf", JWT_MALFORMED;
	if (exp && (double)now_ms > exp->valuedouble * 1000.0)
		return *what = "exp", JWT_EXPIRED;
	if (nbf && (double)now_ms < nbf->valuedouble * 1000.0)
		return *what = "nbf", JWT_PREMATURE;
	return JWT_VALID;
}

static int user_of(const cJSON *c, struct jwt_user *u, const char **what)
{
	static const char *const names[] = { "tenant", "sub", "role", "email" };
	char **dst[] = { &u->tenant, &u->login, &u->role, &u->email };
	for (int i = 0; i < 4; i++) {
		int rc = claim(c, names[i], dst[i]);
		if (rc <= 0) {
			jwt_user_clear(u);
			*what = names[i];
			return rc < 0 ? -1 : JWT_MISSING_CLAIM;
		}
	}
	return JWT_VALID;
}

int jwt_regards_parse(const unsigned char *key, size_t keylen, const char *token, int64_t now_ms,
    struct jwt_user *u, const char **what)
{
	unsigned char want[crypto_auth_hmacsha512_BYTES];
	const char *d1 = strchr(token, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	char *sig = NULL;
	size_t sl = 0;
	int nomem = 0, rc;
	*u = (struct jwt_user){ 0 };
	*what = "token";
	if (!d2 || strchr(d2 + 1, '.') || sodium_init() < 0)
		return JWT_MALFORMED;
	cJSON *head = part_json(token, (size_t)(d1 - token), &nomem), *c = NULL;
	const char *alg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(head, "alg"));
	if (!head) {
		rc = nomem ? -1 : JWT_MALFORMED;
	} else if (!alg || strcmp(alg, "HS512") != 0) {
		*what = "alg";
		rc = JWT_ALGORITHM;
	} else if ((rc = unb64(d2 + 1, strlen(d2 + 1), &sig, &sl)) <= 0) {
		rc = rc < 0 ? -1 : JWT_SIGNATURE;
	} else {
		mac(key, keylen, token, (size_t)(d2 - token), want);
		if (sl != sizeof want || sodium_memcmp(sig, want, sizeof want) != 0) {
			*what = "signature";
			rc = JWT_SIGNATURE;
		} else if (!(c = part_json(d1 + 1, (size_t)(d2 - d1 - 1), &nomem))) {
			*what = "claims";
			rc = nomem ? -1 : JWT_MALFORMED;
		} else if ((rc = times(c, now_ms, what)) == JWT_VALID) {
			rc = user_of(c, u, what);
		}
	}
	free(sig);
	cJSON_Delete(head);
	cJSON_Delete(c);
	if (rc < 0)
		errno = ENOMEM;
	return rc;
}

/* 1 for ADMIN, 2 for PROJECT_ADMIN, 3 for INSTANCE_ADMIN and SYS_ roles
 * (the voters let them call anything), else 0 */
static int admin_rank(const char *role)
{
	if (strncmp(role, "ROLE_", 5) == 0)
		role += 5;
	if (strcmp(role, "INSTANCE_ADMIN") == 0 || strncmp(role, "SYS_", 4) == 0)
		return 3;
	return strcmp(role, "PROJECT_ADMIN") == 0 ? 2 : strcmp(role, "ADMIN") == 0;
}

int jwt_role_admin(const char *role)
{
	return admin_rank(role) >= 1;
}

int jwt_role_project_admin(const char *role)
{
	return admin_rank(role) >= 2;
}

int jwt_secret_read(const char *path, char **out, char *err, size_t errlen)
{
	char buf[4097];
	struct stat st;
	ssize_t n = 0;
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return snprintf(err, errlen, "%s: not a regular file", path), errno = EINVAL, -1;
	}
	if (st.st_mode & (S_IRGRP | S_IROTH)) {
		close(fd);
		return snprintf(err, errlen, "%s: readable by group/others (mode %04o); chmod 600 it",
		    path, (unsigned)st.st_mode & 07777), errno = EPERM, -1;
	}
	for (ssize_t r; (size_t)n < sizeof buf && (r = read(fd, buf + n, sizeof buf - (size_t)n)) != 0;)
		if (r > 0)
			n += r;
		else if (errno != EINTR)
			break;
	close(fd);
	if ((size_t)n == sizeof buf) {
		sodium_memzero(buf, sizeof buf);
		return snprintf(err, errlen, "%s: larger than 4 KiB", path), errno = EFBIG, -1;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	buf[n] = '\0';
	errno = 0;
	*out = n > 0 && !memchr(buf, '\0', (size_t)n) ? strdup(buf) : NULL;
	sodium_memzero(buf, sizeof buf);
	if (*out)
		return 0;
	if (n > 0 && errno == ENOMEM)
		return snprintf(err, errlen, "%s: out of memory", path), -1;
	return snprintf(err, errlen, "%s: empty or not text", path), errno = EINVAL, -1;
}
