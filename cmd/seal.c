/* ferry-seal: make the seal key of ferry's tenant files and seal secrets for
 * them, so that an S3 key or secret need not sit in a tenant file in clear:
 * "sealed:<base64>" is a libsodium sealed box that only the seal key opens
 * (see tenant.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "args.h"
#include "err.h"
#include "tenant.h"
#include "util.h"

static const char usage[] =
    "usage: ferry-seal -g keyfile\n"
    "       ferry-seal [-k keyfile | -p publickey] <secret";

enum { SECRET_MAX = 4096 };

/* A new key pair: the secret key into file (created, mode 0600, never
 * overwritten), the public key, in base64, on stdout. */
static int generate(const char *file)
{
	unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	crypto_box_keypair(pk, sk);
	sodium_bin2base64(b64, sizeof b64, sk, sizeof sk, sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(sk, sizeof sk);
	int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		err_die(EXIT_PERM, "unable to create %s: %s", file, strerror(errno));
	size_t n = strlen(b64);
	b64[n] = '\n';
	int bad = util_write_all(fd, b64, n + 1) < 0 || fsync(fd) < 0;
	int saved = errno;
	sodium_memzero(b64, sizeof b64);
	if (close(fd) < 0 && !bad) {
		bad = 1;
		saved = errno;
	}
	if (bad) {
		unlink(file);
		err_die(EXIT_TEMP, "unable to write %s: %s", file, strerror(saved));
	}
	sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	if (printf("%s\n", b64) < 0 || fflush(stdout) == EOF)
		err_die(EXIT_TEMP, "unable to write the public key: %s", strerror(errno));
	return EXIT_DONE;
}

/* The secret on stdin, one trailing newline dropped; exits on anything
 * that is not one non-empty value. */
static size_t read_secret(char *buf, size_t cap)
{
	size_t n = 0;
	for (;;) {
		ssize_t r = read(0, buf + n, cap - n);
		if (r == 0)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err_die(EXIT_TEMP, "unable to read the secret: %s", strerror(errno));
		n += (size_t)r;
		if (n == cap) {
			sodium_memzero(buf, cap);
			err_die(EXIT_PERM, "the secret is longer than %d bytes", SECRET_MAX - 1);
		}
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0 || memchr(buf, '\0', n)) {
		sodium_memzero(buf, cap);
		err_die(EXIT_PERM, "the secret on standard input is empty or holds a NUL byte");
	}
	return n;
}

static int seal(const unsigned char pk[32])
{
	char secret[SECRET_MAX];
	size_t n = read_secret(secret, sizeof secret);
	unsigned char box[SECRET_MAX + crypto_box_SEALBYTES];
	char b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	int rc = crypto_box_seal(box, (unsigned char *)secret, n, pk);
	sodium_memzero(secret, sizeof secret);
	if (rc != 0)
		err_die(EXIT_PERM, "unable to seal the secret");
	sodium_bin2base64(b64, sizeof b64, box, n + crypto_box_SEALBYTES,
	    sodium_base64_VARIANT_ORIGINAL);
	if (printf("%s%s\n", TENANT_SEALED, b64) < 0 || fflush(stdout) == EOF)
		err_die(EXIT_TEMP, "unable to write the sealed value: %s", strerror(errno));
	return EXIT_DONE;
}

int main(int argc, char **argv)
{
	const char *gen = NULL, *keyfile = NULL, *pub = NULL;
	unsigned char pk[32], sk[32];
	char err[512];
	size_t len = 0;
	int c;
	err_init("ferry-seal");
	args_init(argc, argv);
	while ((c = getopt(argc, argv, "g:hk:p:")) != -1) {
		switch (c) {
		case 'g': gen = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'p': pub = optarg; break;
		case 'h':
			puts(usage);
			return EXIT_DONE;
		default:
			args_usage(usage);
		}
	}
	if (optind != argc || (!!gen + !!keyfile + !!pub) > 1)
		args_usage(usage);
	if (sodium_init() < 0)
		err_die(EXIT_PERM, "libsodium: unable to start");
	if (gen)
		return generate(gen);
	if (pub) {
		if (sodium_base642bin(pk, sizeof pk, pub, strlen(pub), " \t\r\n", &len, NULL,
		    sodium_base64_VARIANT_ORIGINAL) != 0 || len != sizeof pk)
			err_die(EXIT_PERM, "-p: not a 32-byte public key in base64");
		return seal(pk);
	}
	if (tenant_seal_key(keyfile ? keyfile : tenant_seal_key_path(), pk, sk, err,
	    sizeof err) < 0)
		err_die(EXIT_PERM, "%s", err);
	sodium_memzero(sk, sizeof sk);
	return seal(pk);
}
