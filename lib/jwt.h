/* jwt: the JSON Web Tokens REGARDS microservices accept on their REST
 * calls (security-regards JWTService): HS512 over base64url(header) "."
 * base64url(claims), keyed with the raw bytes of the shared secret string,
 * header {"alg":"HS512"}. Tokens are secrets: callers never log them. */
#ifndef FERRY_JWT_H
#define FERRY_JWT_H

#include <stddef.h>
#include <stdint.h>

/* The token of claims (a JSON object text) signed with key, malloc'd into
 * *out (wipe and free with jwt_free). 0, or -1 (ENOMEM, EINVAL when key
 * is empty). */
int jwt_sign(const unsigned char *key, size_t keylen, const char *claims, char **out);

/* A REGARDS user's token, as rs-delivery's FeignSecurityManager makes it
 * (getUsurpedToken): {"tenant","role","sub":user,"email":user,"exp"}, exp in
 * seconds since the epoch. 0 or -1 (errno). */
int jwt_regards(const char *key, const char *tenant, const char *user, const char *role,
    int64_t exp_s, char **out);

/* Check a token against key: 1 and the claims text (malloc'd) if it is
 * HS512, well formed and its signature right; 0 if not; -1 on ENOMEM. The
 * expiry is not looked at (tests and diagnostics only). */
int jwt_verify(const unsigned char *key, size_t keylen, const char *token, char **claims);

void jwt_free(char *token);

#endif
