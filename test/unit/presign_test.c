/* presign_test: lib/presign.c against AWS's published query-string example
 * and against URLs made by botocore (the SDK under /usr/bin/aws) with a fixed
 * clock: path style, keys with spaces, unicode, '+', '%', ports in the Host,
 * default ports, IPv6, a secret longer than an HMAC block; then the limits. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "presign.h"
#include "tu.h"

#define AWS_KEY    "AKIAIOSFODNN7EXAMPLE"
#define AWS_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T2013      1369353600      /* 2013-05-24T00:00:00Z */
#define T2026      1795000000      /* 2026-11-18T11:06:40Z */
/* the query before the signature */
#define Q(key, date, region, stamp, ttl) \
	"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" key "%2F" date "%2F" region \
	"%2Fs3%2Faws4_request&X-Amz-Date=" stamp "&X-Amz-Expires=" ttl "&X-Amz-SignedHeaders=host"
#define SANDBOX(host, port) { "http", host, port, "us-east-1", "S3RVER", "S3RVER" }

static void expect(const struct tenant_s3 *srv, const char *bucket, const char *key,
    int64_t now, int64_t ttl, const char *want)
{
	char out[2048];
	TU_EQ_INT(presign_url(srv, bucket, key, now, ttl, out, sizeof out), 0);
	TU_EQ_STR(out, want);
}

/* "Example: Presigned URL" of the S3 SigV4 documentation (virtual-hosted) */
static void test_aws_documentation_example(void)
{
	struct tenant_s3 srv = { "https", "examplebucket.s3.amazonaws.com", 443, "us-east-1",
	    AWS_KEY, AWS_SECRET };
	expect(&srv, NULL, "test.txt", T2013, 86400,
	    "https://examplebucket.s3.amazonaws.com/test.txt"
	    Q(AWS_KEY, "20130524", "us-east-1", "20130524T000000Z", "86400")
	    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

static void test_path_style_with_a_port_in_the_host(void)
{
	struct tenant_s3 srv = SANDBOX("127.0.0.1", 9000);
	expect(&srv, "deliveries", "c-42/P1_1.zip", T2026, 3600,
	    "http://127.0.0.1:9000/deliveries/c-42/P1_1.zip"
	    Q("S3RVER", "20261118", "us-east-1", "20261118T110640Z", "3600")
	    "&X-Amz-Signature=6b4eac1d63f83cd89cd61b3bd78f8cc896f9ef0ea62251209c5dc0784f91d3d8");
	struct tenant_s3 v6 = SANDBOX("::1", 9000);
	expect(&v6, "deliveries", "c-42/P1_1.zip", T2026, 3600,
	    "http://[::1]:9000/deliveries/c-42/P1_1.zip"
	    Q("S3RVER", "20261118", "us-east-1", "20261118T110640Z", "3600")
	    "&X-Amz-Signature=75ab34926698c3b4947a050ec4637ea0d65eb4f0af786204c5d9d9d6d058b7ea");
}

static void test_keys_with_spaces_unicode_and_plus(void)
{
	struct tenant_s3 srv = SANDBOX("127.0.0.1", 9000);
	srv.region = "eu-west-3";
	expect(&srv, "deliveries", "with space \xC3\xA9 \xE2\x9C\x93/a+b=c&d~e.zip", T2026, 604800,
	    "http://127.0.0.1:9000/deliveries/with%20space%20%C3%A9%20%E2%9C%93/a%2Bb%3Dc%26d~e.zip"
	    Q("S3RVER", "20261118", "eu-west-3", "20261118T110640Z", "604800")
	    "&X-Amz-Signature=4332890d0bb4d04862bc44ed66f6023ca551f97422a1cd0f05f6883dc6fd1b4f");
	/* a '%' in a key is data: encoded once, never decoded */
	struct tenant_s3 big = { "http", "s3.example.org", 80, "us-east-1", "AKID",
	    "a-secret-longer-than-sixty-bytes-so-that-hmac-hashes-its-key-first-0123456789" };
	expect(&big, "deliveries", "k%2F/x.zip", T2013, 86400,
	    "http://s3.example.org/deliveries/k%252F/x.zip"
	    Q("AKID", "20130524", "us-east-1", "20130524T000000Z", "86400")
	    "&X-Amz-Signature=29ec58e425a7dedf90eb41801ab863765ecb71742f9f109156e058be9625edbd");
}

/* the default port is in neither the URL nor the signed Host; another is */
static void test_default_ports_are_left_out(void)
{
	struct tenant_s3 srv = { "https", "s3.example.org", 443, "us-east-1", AWS_KEY, AWS_SECRET };
	expect(&srv, "my.bucket-1", "x/delivery-x.zip", T2013, 1,
	    "https://s3.example.org/my.bucket-1/x/delivery-x.zip"
	    Q(AWS_KEY, "20130524", "us-east-1", "20130524T000000Z", "1")
	    "&X-Amz-Signature=dc42a99c72043f7bbe6e92d261478610a8dff9245fe9870f73190543b809aff2");
	srv.port = 8443;
	expect(&srv, "my.bucket-1", "x/delivery-x.zip", T2013, 1,
	    "https://s3.example.org:8443/my.bucket-1/x/delivery-x.zip"
	    Q(AWS_KEY, "20130524", "us-east-1", "20130524T000000Z", "1")
	    "&X-Amz-Signature=13d468843f0769d7f7fcd39e92bf7e447e954c64be9be2239808eab2a1a173d2");
	/* port 80 is https's non-default, and 443 http's */
	char a[2048], b[2048];
	struct tenant_s3 h80 = SANDBOX("h", 80), h443 = SANDBOX("h", 443);
	TU_EQ_INT(presign_url(&h80, "bkt", "k", T2013, 60, a, sizeof a), 0);
	TU_CHECK(strncmp(a, "http://h/bkt/k?", 15) == 0);
	TU_EQ_INT(presign_url(&h443, "bkt", "k", T2013, 60, b, sizeof b), 0);
	TU_CHECK(strncmp(b, "http://h:443/bkt/k?", 19) == 0);
	TU_CHECK(strcmp(strstr(a, "Signature="), strstr(b, "Signature=")) != 0);
}

static void test_ttl_and_time_out_of_range_are_refused(void)
{
	struct tenant_s3 srv = SANDBOX("127.0.0.1", 9000);
	static const struct { int64_t now, ttl; } bad[] = {
		{ T2026, 0 }, { T2026, -1 }, { T2026, PRESIGN_TTL_MAX + 1 },
		{ -1, 60 }, { 253402300800LL, 60 },
	};
	char out[2048];
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		TU_EQ_INT(presign_url(&srv, "b", "k", bad[i].now, bad[i].ttl, out, sizeof out), -1);
		TU_EQ_INT(errno, EINVAL);
	}
	TU_EQ_INT(presign_url(&srv, "bkt", "k", T2026, PRESIGN_TTL_MAX, out, sizeof out), 0);
	TU_CHECK(strstr(out, "&X-Amz-Expires=604800&") != NULL);
	TU_EQ_INT(presign_url(&srv, "bkt", "k", 0, 1, out, sizeof out), 0);
	TU_CHECK(strstr(out, "&X-Amz-Date=19700101T000000Z&") != NULL);
	TU_EQ_INT(presign_url(&srv, "bkt", "k", 253402300799LL, 1, out, sizeof out), 0);
	TU_CHECK(strstr(out, "&X-Amz-Date=99991231T235959Z&") != NULL);
}

/* every buffer one byte short fails whole; the exact size works */
static void test_a_url_that_does_not_fit_is_refused(void)
{
	struct tenant_s3 srv = SANDBOX("127.0.0.1", 9000);
	char want[2048], out[2048];
	TU_EQ_INT(presign_url(&srv, "deliveries", "c 42/\xC3\xA9.zip", T2026, 60, want, sizeof want), 0);
	size_t n = strlen(want);
	int fails = 0;
	for (size_t len = 0; len <= n; len++) {
		errno = 0;
		fails += presign_url(&srv, "deliveries", "c 42/\xC3\xA9.zip", T2026, 60, out, len) == -1 &&
		    errno == ENAMETOOLONG;
	}
	TU_EQ_INT(fails, (long long)n + 1);
	TU_EQ_INT(presign_url(&srv, "deliveries", "c 42/\xC3\xA9.zip", T2026, 60, out, n + 1), 0);
	TU_EQ_STR(out, want);
	char *host = malloc(400);
	memset(host, 'h', 399);
	host[399] = '\0';
	srv.host = host;
	errno = 0;
	TU_EQ_INT(presign_url(&srv, "deliveries", "k", T2026, 60, out, sizeof out), -1);
	TU_EQ_INT(errno, ENAMETOOLONG);
	free(host);
}

TU_MAIN(TU(test_aws_documentation_example),
    TU(test_path_style_with_a_port_in_the_host),
    TU(test_keys_with_spaces_unicode_and_plus),
    TU(test_default_ports_are_left_out),
    TU(test_ttl_and_time_out_of_range_are_refused),
    TU(test_a_url_that_does_not_fit_is_refused))
