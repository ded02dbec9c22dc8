/* s3: S3 requests over libcurl with SigV4 (see s3.h). libcurl 7.88 signs
 * with CURLOPT_AWS_SIGV4 but needs x-amz-content-sha256 sent by us, and the
 * query string pre-sorted and pre-encoded by the caller. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "s3.h"

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~';
}

int s3_key_encode(const char *key, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		if (unreserved(*p) || *p == '/') {
			if (n + 1 >= len)
				goto toolong;
			out[n++] = (char)*p;
		} else {
			if (n + 3 >= len)
				goto toolong;
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	if (n >= len)
		goto toolong;
	out[n] = '\0';
	return 0;
toolong:
	errno = ENAMETOOLONG;
	return -1;
}

int s3_url(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const char *query, char *out, size_t len)
{
	char enc[4096];
	if (s3_key_encode(key, enc, sizeof enc) < 0)
		return -1;
	int n = snprintf(out, len, "%s://%s:%d/%s/%s%s%s", srv->scheme, srv->host, srv->port, bucket,
	    enc, query && *query ? "?" : "", query ? query : "");
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int s3_curl_auth(CURL *h, const struct tenant_s3 *srv, const char *payload_sha256,
    struct curl_slist **headers)
{
	char sig[128], hdr[128];
	snprintf(sig, sizeof sig, "aws:amz:%s:s3", srv->region);
	snprintf(hdr, sizeof hdr, "x-amz-content-sha256: %s",
	    payload_sha256 ? payload_sha256 : "UNSIGNED-PAYLOAD");
	struct curl_slist *l = curl_slist_append(*headers, hdr);
	if (!l) {
		errno = ENOMEM;
		return -1;
	}
	*headers = l;
	if (curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sig) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_USERNAME, srv->key) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PASSWORD, srv->secret) != CURLE_OK) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}
