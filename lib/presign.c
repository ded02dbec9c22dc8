/* presign: SigV4 query-string authentication (see presign.h), signed with
 * libsodium's HMAC-SHA256 and SHA-256. The URL is written straight into the
 * caller's buffer; its path and query are then hashed from there, so the
 * bytes signed are the bytes sent. Key material is wiped before returning. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "presign.h"
#include "s3.h"
#include "util.h"

#define ALGORITHM  "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"
#define MAX_EPOCH  253402300799LL         /* 9999-12-31T23:59:59Z: 4-digit years */

enum { HMAC_BLOCK = 64 };                 /* SHA-256's block: longer HMAC keys are hashed */

/* out[0..len) being filled; at is the next byte, full once a piece did not fit */
struct buf {
	char *s;
	size_t len, at;
	int full;
};

static void put(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->full || b->at + n >= b->len) {
		b->full = 1;
		return;
	}
	memcpy(b->s + b->at, s, n + 1);
	b->at += n;
}

/* append s encoded by enc (s3_key_encode or s3_query_encode) */
static void put_enc(struct buf *b, int (*enc)(const char *, char *, size_t), const char *s)
{
	if (b->full || enc(s, b->s + b->at, b->len - b->at) < 0) {
		b->full = 1;
		return;
	}
	b->at += strlen(b->s + b->at);
}

static int default_port(const struct tenant_s3 *srv)
{
	return srv->port == (strcmp(srv->scheme, "http") == 0 ? 80 : 443);
}

/* The Host as a client sends it: [v6], and :port unless the default. */
static void host_of(const struct tenant_s3 *srv, char *out, size_t len)
{
	int v6 = strchr(srv->host, ':') != NULL;
	char port[16] = "";
	if (!default_port(srv))
		snprintf(port, sizeof port, ":%d", srv->port);
	snprintf(out, len, "%s%s%s%s", v6 ? "[" : "", srv->host, v6 ? "]" : "", port);
}

static void sha256_hex(crypto_hash_sha256_state *st, char hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(st, h);
	util_hex(h, sizeof h, hex);
}

static void hash_str(crypto_hash_sha256_state *st, const char *s, size_t n)
{
	crypto_hash_sha256_update(st, (const unsigned char *)s, n);
}

/* The signing key: HMAC chain from "AWS4"+secret over date, region, "s3",
 * "aws4_request". The first key may be any length: one longer than a block
 * is hashed first, as HMAC itself does (RFC 2104), so no copy of the secret
 * longer than a block is ever made. */
static void signing_key(const char *secret, const char *date, const char *region,
    unsigned char key[crypto_auth_hmacsha256_BYTES])
{
	unsigned char k0[HMAC_BLOCK];
	size_t slen = strlen(secret), k0len;
	crypto_auth_hmacsha256_state st;
	if (4 + slen <= sizeof k0) {
		memcpy(k0, "AWS4", 4);
		memcpy(k0 + 4, secret, slen);
		k0len = 4 + slen;
	} else {
		crypto_hash_sha256_state hs;
		crypto_hash_sha256_init(&hs);
		hash_str(&hs, "AWS4", 4);
		hash_str(&hs, secret, slen);
		crypto_hash_sha256_final(&hs, k0);
		sodium_memzero(&hs, sizeof hs);
		k0len = crypto_hash_sha256_BYTES;
	}
	crypto_auth_hmacsha256_init(&st, k0, k0len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)date, strlen(date));
	crypto_auth_hmacsha256_final(&st, key);
	sodium_memzero(k0, sizeof k0);
	sodium_memzero(&st, sizeof st);
	/* later keys are HMAC outputs: exactly crypto_auth_hmacsha256_KEYBYTES */
	const char *steps[] = { region, "s3", TERMINATOR };
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
		crypto_auth_hmacsha256(key, (const unsigned char *)steps[i], strlen(steps[i]), key);
}

/* "20130524" and "20130524T000000Z" */
static int amz_date(int64_t now, char date[9], char stamp[17])
{
	struct tm tm;
	time_t t = (time_t)now;
	if (now < 0 || now > MAX_EPOCH || !gmtime_r(&t, &tm))
		return -1;
	strftime(date, 9, "%Y%m%d", &tm);
	strftime(stamp, 17, "%Y%m%dT%H%M%SZ", &tm);
	return 0;
}

/* The canonical query string, names in order (all of them are signed). */
static void put_query(struct buf *b, const struct tenant_s3 *srv, const char *date,
    const char *stamp, int64_t ttl)
{
	char cred[1024], n[24];
	if ((size_t)snprintf(cred, sizeof cred, "%s/%s/%s/s3/" TERMINATOR, srv->key, date,
	    srv->region) >= sizeof cred) {
		b->full = 1;
		return;
	}
	snprintf(n, sizeof n, "%lld", (long long)ttl);
	put(b, "X-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=");
	put_enc(b, s3_query_encode, cred);
	put(b, "&X-Amz-Date=");
	put(b, stamp);
	put(b, "&X-Amz-Expires=");
	put(b, n);
	put(b, "&X-Amz-SignedHeaders=host");
	sodium_memzero(cred, sizeof cred);
}

/* hex SHA-256 of the canonical request of a presigned GET */
static void canonical_hash(const char *path, size_t plen, const char *query, size_t qlen,
    const char *host, char hex[65])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	hash_str(&st, "GET\n", 4);
	hash_str(&st, path, plen);
	hash_str(&st, "\n", 1);
	hash_str(&st, query, qlen);
	hash_str(&st, "\nhost:", 6);
	hash_str(&st, host, strlen(host));
	hash_str(&st, "\n\nhost\nUNSIGNED-PAYLOAD", 23);
	sha256_hex(&st, hex);
}

static void signature(const struct tenant_s3 *srv, const char *date, const char *stamp,
    const char *creq_hex, char sig[65])
{
	unsigned char key[crypto_auth_hmacsha256_BYTES], mac[crypto_auth_hmacsha256_BYTES];
	char sts[512];
	int n = snprintf(sts, sizeof sts, ALGORITHM "\n%s\n%s/%s/s3/" TERMINATOR "\n%s", stamp,
	    date, srv->region, creq_hex);
	signing_key(srv->secret, date, srv->region, key);
	crypto_auth_hmacsha256(mac, (const unsigned char *)sts, (size_t)n, key);
	util_hex(mac, sizeof mac, sig);
	sodium_memzero(key, sizeof key);
}

int presign_url(const struct tenant_s3 *srv, const char *bucket, const char *key,
    int64_t now, int64_t ttl, char *out, size_t len)
{
	char date[9], stamp[17], host[300], creq[65], sig[65];
	struct buf b = { out, len, 0, len == 0 };
	if (ttl < 1 || ttl > PRESIGN_TTL_MAX || amz_date(now, date, stamp) < 0) {
		errno = EINVAL;
		return -1;
	}
	/* the host and region go whole into fixed buffers (Host, string to sign) */
	if (strlen(srv->host) + 16 >= sizeof host || strlen(srv->region) > 128) {
		errno = ENAMETOOLONG;
		return -1;
	}
	host_of(srv, host, sizeof host);
	put(&b, srv->scheme);
	put(&b, "://");
	put(&b, host);
	size_t path = b.at;
	put(&b, "/");
	if (bucket) {
		put_enc(&b, s3_key_encode, bucket);
		put(&b, "/");
	}
	put_enc(&b, s3_key_encode, key);
	size_t query = b.at + 1;
	put(&b, "?");
	put_query(&b, srv, date, stamp, ttl);
	if (b.full) {
		errno = ENAMETOOLONG;
		return -1;
	}
	canonical_hash(out + path, query - 1 - path, out + query, b.at - query, host, creq);
	signature(srv, date, stamp, creq, sig);
	put(&b, "&X-Amz-Signature=");
	put(&b, sig);
	if (b.full) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
