/* md5_test: lib/md5.c against known vectors and md5sum(1), streaming and
 * whole-file, and the case-insensitive digest comparison. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "md5.h"
#include "util.h"
#include "tu.h"

static const struct { const char *in; const char *md5; } vectors[] = {
	{ "", "d41d8cd98f00b204e9800998ecf8427e" },
	{ "a", "0cc175b9c0f1b6a831c399e269772661" },
	{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
	{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
	{ "The quick brown fox jumps over the lazy dog", "9e107d9d372bb6826bd81d3542a419d6" },
	{ "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	  "57edf4a22be3c955ac49da2e2107b67a" },
};

static void test_known_vectors(void)
{
	md5 *m = md5_new();
	TU_CHECK(m != NULL);
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		char hex[33];
		size_t n = strlen(vectors[i].in);
		md5_buf(vectors[i].in, n, hex);
		TU_EQ_STR(hex, vectors[i].md5);
		/* streamed one byte at a time; final resets for the next round */
		for (size_t k = 0; k < n; k++)
			md5_update(m, vectors[i].in + k, 1);
		md5_final_hex(m, hex);
		TU_EQ_STR(hex, vectors[i].md5);
	}
	unsigned char raw[16];
	md5_update(m, "abc", 3);
	md5_final_raw(m, raw);
	TU_EQ_INT(raw[0], 0x90);
	TU_EQ_INT(raw[15], 0x72);
	md5_update(m, "junk", 4);
	md5_reset(m);
	char hex[33];
	md5_final_hex(m, hex);
	TU_EQ_STR(hex, "d41d8cd98f00b204e9800998ecf8427e");
	md5_free(m);
	md5_free(NULL);
}

static void write_random(const char *path, size_t n)
{
	unsigned char *buf = malloc(n);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || util_write_all(fd, buf, n) < 0) {
		perror(path);
		exit(2);
	}
	close(fd);
	free(buf);
}

static void md5sum_of(const char *path, char out[33])
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "md5sum '%s'", path);
	FILE *p = popen(cmd, "r");
	out[0] = '\0';
	if (p) {
		if (fscanf(p, "%32s", out) != 1)
			out[0] = '\0';
		pclose(p);
	}
}

static void test_file_matches_md5sum(void)
{
	static const size_t sizes[] = { 0, 1, 4095, (3u << 20) + 17 };
	const char *dir = tu_tmpdir();
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char path[256], want[33], got[33];
		uint64_t size = 12345;
		snprintf(path, sizeof path, "%s/f%zu", dir, i);
		write_random(path, sizes[i]);
		md5sum_of(path, want);
		TU_EQ_INT(strlen(want), 32);
		TU_EQ_INT(md5_file(path, got, &size), 0);
		TU_EQ_STR(got, want);
		TU_EQ_INT(size, sizes[i]);
		TU_EQ_INT(md5_file(path, got, NULL), 0);
	}
	char path[256], hex[33];
	snprintf(path, sizeof path, "%s/missing", dir);
	errno = 0;
	TU_EQ_INT(md5_file(path, hex, NULL), -1);
	TU_EQ_INT(errno, ENOENT);
	errno = 0;
	TU_EQ_INT(md5_file(dir, hex, NULL), -1);   /* a directory cannot be read */
	TU_EQ_INT(errno, EISDIR);
}

static void test_equal_ignores_case_and_wants_32_hex(void)
{
	static const struct { const char *a, *b; int eq; } cases[] = {
		{ "900150983cd24fb0d6963f7d28e17f72", "900150983cd24fb0d6963f7d28e17f72", 1 },
		{ "900150983cd24fb0d6963f7d28e17f72", "900150983CD24FB0D6963F7D28E17F72", 1 },
		{ "900150983cd24fb0d6963f7d28e17f72", "900150983cd24fb0d6963f7d28e17f73", 0 },
		{ "900150983cd24fb0d6963f7d28e17f7", "900150983cd24fb0d6963f7d28e17f7", 0 },
		{ "900150983cd24fb0d6963f7d28e17f722", "900150983cd24fb0d6963f7d28e17f722", 0 },
		{ "g00150983cd24fb0d6963f7d28e17f72", "g00150983cd24fb0d6963f7d28e17f72", 0 },
		{ "", "", 0 },
		{ NULL, "900150983cd24fb0d6963f7d28e17f72", 0 },
		{ "900150983cd24fb0d6963f7d28e17f72", NULL, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (!TU_EQ_INT(md5_equal(cases[i].a, cases[i].b), cases[i].eq))
			printf("# case %zu\n", i);
}

TU_MAIN(
	TU(test_known_vectors),
	TU(test_file_matches_md5sum),
	TU(test_equal_ignores_case_and_wants_32_hex)
)
