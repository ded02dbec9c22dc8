/* s3: S3 over libcurl with SigV4 (CURLOPT_AWS_SIGV4), path-style URLs:
 * object key encoding, single PUT, multipart upload with parallel parts and
 * Content-MD5, abort, GET (for s3:// sources), HEAD. */
#ifndef FERRY_S3_H
#define FERRY_S3_H

#include <stddef.h>
#include <stdint.h>

#include "tenant.h"

/* URI-encode an object key for the request path (SigV4 rules: unreserved
 * A-Za-z0-9-._~ kept, '/' kept, everything else %XX uppercase). 0, or -1 if
 * it does not fit. */
int s3_key_encode(const char *key, char *out, size_t len);

/* "http(s)://host:port/bucket/encoded-key[?query]" */
int s3_url(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const char *query, char *out, size_t len);

#include <curl/curl.h>

/* Set SigV4 signing on a curl handle for srv (CURLOPT_AWS_SIGV4
 * "aws:amz:<region>:s3", the key/secret as USERPWD) and the
 * x-amz-content-sha256 header (UNSIGNED-PAYLOAD unless payload_sha256 hex is
 * given) appended to *headers (caller frees with curl_slist_free_all).
 * 0 or -1 (ENOMEM). The secret goes only to libcurl. */
int s3_curl_auth(CURL *h, const struct tenant_s3 *srv, const char *payload_sha256,
    struct curl_slist **headers);

#endif
