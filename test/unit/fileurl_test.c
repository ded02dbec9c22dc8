/* fileurl_test: decoding of file:// URLs (RFC 8089 forms, escapes, other
 * hosts) and the file_roots containment on real paths: symlinks out of a
 * root, ".." after decoding, missing files, roots that are symlinks. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileurl.h"
#include "tu.h"

static const struct { const char *url; int rc; const char *path; } cases[] = {
	{ "file:///data/a.nc", FILEURL_OK, "/data/a.nc" },
	{ "file://localhost/data/a.nc", FILEURL_OK, "/data/a.nc" },
	{ "file://LocalHost/data/a.nc", FILEURL_OK, "/data/a.nc" },
	{ "FILE:///data/a.nc", FILEURL_OK, "/data/a.nc" },
	{ "file:/data/a.nc", FILEURL_OK, "/data/a.nc" },
	{ "file:///", FILEURL_OK, "/" },
	{ "file:///data/a%20b.nc", FILEURL_OK, "/data/a b.nc" },
	{ "file:///data/a b.nc", FILEURL_OK, "/data/a b.nc" },
	{ "file:///data/a%2Fb.nc", FILEURL_OK, "/data/a/b.nc" },
	{ "file:///data/a%2fb.nc", FILEURL_OK, "/data/a/b.nc" },
	{ "file:///data/%2E%2E/etc/passwd", FILEURL_OK, "/data/../etc/passwd" },
	{ "file:///data/caf%C3%A9.nc", FILEURL_OK, "/data/caf\xc3\xa9.nc" },
	{ "file:///data/caf\xc3\xa9.nc", FILEURL_OK, "/data/caf\xc3\xa9.nc" },
	{ "file:///data/%E6%97%A5%E6%9C%AC.nc", FILEURL_OK, "/data/\xe6\x97\xa5\xe6\x9c\xac.nc" },
	{ "file:///data/a%25b", FILEURL_OK, "/data/a%b" },
	{ "file:///data/a?b#c", FILEURL_OK, "/data/a?b#c" },
	{ "file:///data/a%", FILEURL_BAD, NULL },
	{ "file:///data/a%4", FILEURL_BAD, NULL },
	{ "file:///data/a%G1", FILEURL_BAD, NULL },
	{ "file:///data/a%00b", FILEURL_BAD, NULL },
	{ "file://localhost", FILEURL_BAD, NULL },
	{ "file:data/a.nc", FILEURL_BAD, NULL },
	{ "file:", FILEURL_BAD, NULL },
	{ "http://localhost/data/a.nc", FILEURL_BAD, NULL },
	{ "/data/a.nc", FILEURL_BAD, NULL },
	{ "file://server/share/a.nc", FILEURL_FORBIDDEN, NULL },
	{ "file://127.0.0.1/data/a.nc", FILEURL_FORBIDDEN, NULL },
	{ "file://localhost.example.org/data/a.nc", FILEURL_FORBIDDEN, NULL },
	{ "file://local%68ost/data/a.nc", FILEURL_FORBIDDEN, NULL },
	{ "file://user@localhost/data/a.nc", FILEURL_FORBIDDEN, NULL },
};

static void test_file_urls_decode_by_rfc_8089(void)
{
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[256] = "", err[128] = "";
		int rc = fileurl_path(cases[i].url, out, sizeof out, err, sizeof err);
		if (!TU_EQ_INT(rc, cases[i].rc))
			printf("# url %s\n", cases[i].url);
		if (cases[i].path)
			TU_EQ_STR(out, cases[i].path);
		else
			TU_CHECK(err[0] != '\0');
	}
}

static void test_a_path_too_long_is_refused(void)
{
	char url[600], out[64], err[64];
	memset(url, 'a', sizeof url);
	memcpy(url, "file:///", 8);
	url[sizeof url - 1] = '\0';
	TU_EQ_INT(fileurl_path(url, out, sizeof out, err, sizeof err), FILEURL_BAD);
	TU_EQ_STR(err, "path too long");
}

static void touch(const char *dir, const char *name)
{
	char p[2 * PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror(p);
		exit(2);
	}
	close(fd);
}

static void mk(const char *dir, const char *name)
{
	char p[2 * PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (mkdir(p, 0700) < 0) {
		perror(p);
		exit(2);
	}
}

static void ln(const char *dir, const char *target, const char *name)
{
	char p[2 * PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (symlink(target, p) < 0) {
		perror(p);
		exit(2);
	}
}

/* a tree: root/{a.nc, "b c.nc", sub/d.nc, out -> ../secret.nc, dirout -> ..,
 * in -> a.nc}, secret.nc, rootlink -> root, rootx/e.nc (a sibling whose
 * name starts with the root's) */
static char real_tmp[PATH_MAX];

static const char *tree(void)
{
	const char *t = tu_tmpdir();
	if (!realpath(t, real_tmp)) {
		perror(t);
		exit(2);
	}
	mk(real_tmp, "root");
	mk(real_tmp, "root/sub");
	mk(real_tmp, "rootx");
	touch(real_tmp, "root/a.nc");
	touch(real_tmp, "root/b c.nc");
	touch(real_tmp, "root/sub/d.nc");
	touch(real_tmp, "secret.nc");
	touch(real_tmp, "rootx/e.nc");
	ln(real_tmp, "../secret.nc", "root/out");
	ln(real_tmp, "..", "root/dirout");
	ln(real_tmp, "a.nc", "root/in");
	ln(real_tmp, "root", "rootlink");
	return real_tmp;
}

static int resolve(const char *tmp, const char *rel, const char *root, char *out, size_t n)
{
	char url[2 * PATH_MAX], r[2 * PATH_MAX], err[3 * PATH_MAX];
	snprintf(url, sizeof url, "file://%s/%s", tmp, rel);
	snprintf(r, sizeof r, "%s/%s", tmp, root);
	char *roots[] = { r };
	out[0] = '\0';
	return fileurl_resolve(url, roots, 1, out, n, err, sizeof err);
}

static void test_sources_must_resolve_inside_a_root(void)
{
	const char *t = tree();
	char out[PATH_MAX], want[2 * PATH_MAX];
	static const struct { const char *rel, *root; int rc; const char *real; } c[] = {
		{ "root/a.nc", "root", FILEURL_OK, "root/a.nc" },
		{ "root/b%20c.nc", "root", FILEURL_OK, "root/b c.nc" },
		{ "root/sub/d.nc", "root", FILEURL_OK, "root/sub/d.nc" },
		{ "root/sub/../a.nc", "root", FILEURL_OK, "root/a.nc" },
		{ "root/in", "root", FILEURL_OK, "root/a.nc" },
		{ "root/a.nc", "rootlink", FILEURL_OK, "root/a.nc" },
		{ "rootlink/a.nc", "root", FILEURL_OK, "root/a.nc" },
		{ "root/a.nc", "root/", FILEURL_OK, "root/a.nc" },
		{ "root/out", "root", FILEURL_FORBIDDEN, NULL },
		{ "root/dirout/secret.nc", "root", FILEURL_FORBIDDEN, NULL },
		{ "root/%2E%2E/secret.nc", "root", FILEURL_FORBIDDEN, NULL },
		{ "root/..%2Fsecret.nc", "root", FILEURL_FORBIDDEN, NULL },
		{ "root/../secret.nc", "root", FILEURL_FORBIDDEN, NULL },
		{ "secret.nc", "root", FILEURL_FORBIDDEN, NULL },
		{ "rootx/e.nc", "root", FILEURL_FORBIDDEN, NULL },
		{ "root/a.nc", "nonexistent-root", FILEURL_FORBIDDEN, NULL },
		{ "root/missing.nc", "root", FILEURL_MISSING, NULL },
		{ "root/nodir/missing.nc", "root", FILEURL_MISSING, NULL },
		{ "missing.nc", "root", FILEURL_FORBIDDEN, NULL },
		{ "root/dirout/missing.nc", "root", FILEURL_FORBIDDEN, NULL },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		int rc = resolve(t, c[i].rel, c[i].root, out, sizeof out);
		if (!TU_EQ_INT(rc, c[i].rc))
			printf("# %s in %s\n", c[i].rel, c[i].root);
		if (c[i].real) {
			snprintf(want, sizeof want, "%s/%s", t, c[i].real);
			TU_EQ_STR(out, want);
		}
	}
	TU_EQ_INT(resolve(t, "root/missing.nc", "root", out, sizeof out), FILEURL_MISSING);
	TU_EQ_INT(errno, ENOENT);
}

static void test_no_roots_allow_no_file(void)
{
	const char *t = tree();
	char url[2 * PATH_MAX], out[PATH_MAX], err[3 * PATH_MAX];
	snprintf(url, sizeof url, "file://%s/root/a.nc", t);
	TU_EQ_INT(fileurl_resolve(url, NULL, 0, out, sizeof out, err, sizeof err), FILEURL_FORBIDDEN);
	char *slash[] = { "/" };
	TU_EQ_INT(fileurl_resolve(url, slash, 1, out, sizeof out, err, sizeof err), FILEURL_OK);
	char *two[] = { "/nonexistent", "/" };
	TU_EQ_INT(fileurl_inside(out, two, 2), 1);
	TU_EQ_INT(fileurl_inside(out, two, 1), 0);
	TU_EQ_INT(fileurl_resolve("file://elsewhere/x", slash, 1, out, sizeof out, err, sizeof err),
	    FILEURL_FORBIDDEN);
	TU_EQ_INT(fileurl_resolve("file:///x%zz", slash, 1, out, sizeof out, err, sizeof err),
	    FILEURL_BAD);
}

TU_MAIN(
	TU(test_file_urls_decode_by_rfc_8089),
	TU(test_a_path_too_long_is_refused),
	TU(test_sources_must_resolve_inside_a_root),
	TU(test_no_roots_allow_no_file)
)
