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

/* What jwt_regards_parse makes of a token, in the order REGARDS's
 * JWTService.parseToken checks it. */
enum jwt_status {
	JWT_VALID = 0,
	JWT_MALFORMED,       /* not three base64url parts, or a header or claims that are not
	                        JSON objects (jjwt MalformedJwtException) */
	JWT_ALGORITHM,       /* a header alg other than HS512 (ferry holds one key, REGARDS's
	                        jwt.signing-key.HS512) */
	JWT_SIGNATURE,       /* the HMAC does not match (SignatureException) */
	JWT_EXPIRED,         /* now after exp (ExpiredJwtException) */
	JWT_PREMATURE,       /* now before nbf (PrematureJwtException) */
	JWT_MISSING_CLAIM,   /* tenant, sub, role or email absent or not a string
	                        (MissingClaimException) */
};

/* A REGARDS user as the token says (JWTService: claims "tenant", "sub",
 * "role", "email"); strings malloc'd, freed by jwt_user_clear. */
struct jwt_user {
	char *tenant, *login, *role, *email;
};

/* Verify a REGARDS token with key at now_ms and read its user: HS512 only
 * (the header's "alg", a JSON object), signature, then exp and nbf when
 * present (jjwt accepts a token without exp, and so does this), then the
 * four claims. JWT_VALID fills *u; anything else names what failed in
 * *what (a static string, "tenant" for a missing claim, ...); -1 on ENOMEM. */
int jwt_regards_parse(const unsigned char *key, size_t keylen, const char *token, int64_t now_ms,
    struct jwt_user *u, const char **what);
void jwt_user_clear(struct jwt_user *u);

/* 1 if a REGARDS role may call an endpoint whose @ResourceAccess role is
 * ADMIN: ADMIN itself (rs-admin's default mapping), PROJECT_ADMIN and
 * INSTANCE_ADMIN (ProjectAdminAccessVoter, InstanceAdminAccessVoter) and
 * any SYS_ role (SystemAccessVoter), with or without the "ROLE_" prefix
 * (RoleAuthority). Custom roles rs-admin derives from ADMIN are unknown
 * to ferry: refused. */
int jwt_role_admin(const char *role);

/* The same for @ResourceAccess(role = PROJECT_ADMIN), the export and import
 * of ModuleManagerController: ADMIN is below it (403). */
int jwt_role_project_admin(const char *role);

/* A shared secret from a file (rs-order's jwt_secret_file, ferry-httpd's
 * FERRY_REGARDS_JWT_SECRET_FILE): a regular file that neither group nor
 * others may read, of at most 4 KiB, one final newline dropped, not empty,
 * no NUL. 0 and *out (malloc'd, wipe and free with jwt_free), or -1 with
 * "PATH: reason" in err (never the secret); errno ENOMEM on ENOMEM. */
int jwt_secret_read(const char *path, char **out, char *err, size_t errlen);

#endif
