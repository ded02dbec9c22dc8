/* md5: MD5 through OpenSSL EVP (asm-fast), see md5.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "md5.h"
#include "util.h"

struct md5 {
	EVP_MD_CTX *ctx;
};

md5 *md5_new(void)
{
	md5 *m = malloc(sizeof *m);
	if (!m)
		return NULL;
	m->ctx = EVP_MD_CTX_new();
	if (!m->ctx || !EVP_DigestInit_ex(m->ctx, EVP_md5(), NULL)) {
		EVP_MD_CTX_free(m->ctx);
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	return m;
}

void md5_free(md5 *m)
{
	if (!m)
		return;
	EVP_MD_CTX_free(m->ctx);
	free(m);
}

void md5_reset(md5 *m) { EVP_DigestInit_ex(m->ctx, EVP_md5(), NULL); }

void md5_update(md5 *m, const void *buf, size_t len)
{
	EVP_DigestUpdate(m->ctx, buf, len);
}

void md5_final_raw(md5 *m, unsigned char raw[16])
{
	unsigned int n = 16;
	EVP_DigestFinal_ex(m->ctx, raw, &n);
	md5_reset(m);
}

void md5_final_hex(md5 *m, char hex[33])
{
	unsigned char raw[16];
	md5_final_raw(m, raw);
	util_hex(raw, 16, hex);
}

void md5_buf(const void *buf, size_t len, char hex[33])
{
	unsigned char raw[16];
	unsigned int n = 16;
	EVP_Digest(buf, len, raw, &n, EVP_md5(), NULL);
	util_hex(raw, 16, hex);
}

int md5_file(const char *path, char hex[33], uint64_t *size)
{
	enum { CHUNK = 1 << 20 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char *buf = malloc(CHUNK);
	md5 *m = md5_new();
	uint64_t total = 0;
	int rc = -1, saved = ENOMEM;
	if (!buf || !m)
		goto out;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t r = read(fd, buf, CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			saved = errno;
			goto out;
		}
		if (r == 0)
			break;
		md5_update(m, buf, (size_t)r);
		total += (uint64_t)r;
	}
	md5_final_hex(m, hex);
	if (size)
		*size = total;
	rc = 0;
out:
	md5_free(m);
	free(buf);
	close(fd);
	if (rc < 0)
		errno = saved;
	return rc;
}

int md5_equal(const char *a, const char *b)
{
	return a && b && util_is_hex(a, 32) && util_is_hex(b, 32) && strcasecmp(a, b) == 0;
}
