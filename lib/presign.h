/* presign: SigV4 query-string-presigned GET URLs of S3 objects, the
 * "downloadUrl" of a DONE response. A pure function of its inputs (no I/O,
 * no clock): the caller passes the time, so a URL can be checked against
 * AWS's published examples. */
#ifndef FERRY_PRESIGN_H
#define FERRY_PRESIGN_H

#include <stddef.h>
#include <stdint.h>

#include "tenant.h"

enum { PRESIGN_TTL_MAX = 604800 };   /* SigV4's maximum: 7 days */

/* The URL that lets anyone GET bucket/key from srv (scheme, host, port,
 * region, key, secret) for ttl seconds (1..PRESIGN_TTL_MAX) from now
 * (seconds since the epoch, UTC):
 *   scheme://host[:port]/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256
 *   &X-Amz-Credential=...&X-Amz-Date=...&X-Amz-Expires=ttl
 *   &X-Amz-SignedHeaders=host&X-Amz-Signature=<64 hex>
 * Path-style, the key encoded as s3_key_encode does; bucket NULL means
 * virtual-hosted style (the bucket is part of srv->host, the path is /key).
 * The port is left out of the URL and of the signed Host when it is the
 * scheme's default, as HTTP clients leave it out of their Host header; an
 * IPv6 host is written in brackets. Payload UNSIGNED-PAYLOAD. 0, or -1 with
 * errno EINVAL (ttl or now out of range) or ENAMETOOLONG (out too small). */
int presign_url(const struct tenant_s3 *srv, const char *bucket, const char *key,
    int64_t now, int64_t ttl, char *out, size_t len);

#endif
