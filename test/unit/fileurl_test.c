/* fileurl_test: decoding of file:// URLs (RFC 8089 forms, escapes, other
 * hosts) and the file_roots containment on real paths: symlinks out of a
 * root, ".." after decoding, missing files, roots that are symlinks; and
 * fileurl_open on what a checked file may have become: a FIFO (no block),
 * a symlink, a directory, another size; with openat2 and without. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

typedef int open_fn(const char *, char *const *, size_t, int64_t, struct stat *, char *,
    size_t);

/* open tmp/rel with root tmp/root (NULL: no roots) and the size wanted */
static int try_open(open_fn *fn, const char *tmp, const char *rel, const char *root,
    int64_t size, struct stat *st)
{
	char p[2 * PATH_MAX], r[2 * PATH_MAX], err[256] = "";
	snprintf(p, sizeof p, "%s/%s", tmp, rel);
	snprintf(r, sizeof r, "%s/%s", tmp, root ? root : "");
	char *roots[] = { r };
	int fd = fn(p, roots, root ? 1 : 0, size, st, err, sizeof err);
	if (fd >= 0) {
		TU_CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
		TU_CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		close(fd);
		return FILEURL_OK;
	}
	TU_CHECK(err[0] != '\0' && strstr(err, tmp) == NULL);   /* no path in the reason */
	return fd;
}

static void opens_only_what_was_checked(open_fn *fn)
{
	const char *t = tree();
	char p[2 * PATH_MAX];
	struct stat st;
	snprintf(p, sizeof p, "%s/root/fifo", t);
	TU_CHECK(mkfifo(p, 0600) == 0);
	snprintf(p, sizeof p, "%s/root/big.nc", t);
	touch(t, "root/big.nc");
	TU_CHECK(truncate(p, 5) == 0);
	ln(t, "/etc/passwd", "root/passwd");
	ln(t, "sub", "root/sublink");
	static const struct { const char *rel, *root; int64_t size; int rc; } c[] = {
		{ "root/a.nc", "root", 0, FILEURL_OK },
		{ "root/a.nc", "root", -1, FILEURL_OK },
		{ "root/big.nc", "root", 5, FILEURL_OK },
		{ "root/big.nc", "root", 4, FILEURL_SIZE },
		{ "root/sub/d.nc", "root", 0, FILEURL_OK },
		{ "root//sub/d.nc", "root/", 0, FILEURL_OK },
		{ "root/a.nc", "rootlink", 0, FILEURL_OK },    /* a root's own link is followed */
		{ "rootlink/a.nc", "rootlink", 0, FILEURL_OK },
		{ "root/fifo", "root", -1, FILEURL_NOTREG },  /* and it did not block */
		{ "root/sub", "root", -1, FILEURL_NOTREG },
		{ "root", "root", -1, FILEURL_NOTREG },
		{ "root/passwd", "root", -1, FILEURL_FORBIDDEN },
		{ "root/out", "root", -1, FILEURL_FORBIDDEN },
		{ "root/in", "root", 0, FILEURL_FORBIDDEN },   /* inside, but a link all the same */
		{ "root/sublink/d.nc", "root", 0, FILEURL_FORBIDDEN },
		{ "root/dirout/secret.nc", "root", 0, FILEURL_FORBIDDEN },
		{ "root/../secret.nc", "root", 0, FILEURL_FORBIDDEN },
		{ "root/./a.nc", "root", 0, FILEURL_FORBIDDEN },
		{ "secret.nc", "root", 0, FILEURL_FORBIDDEN },
		{ "rootx/e.nc", "root", 0, FILEURL_FORBIDDEN },
		{ "root/a.nc", "nonexistent-root", 0, FILEURL_FORBIDDEN },
		{ "root/a.nc", NULL, 0, FILEURL_FORBIDDEN },
		{ "root/missing.nc", "root", 0, FILEURL_MISSING },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		int rc = try_open(fn, t, c[i].rel, c[i].root, c[i].size, &st);
		if (!TU_EQ_INT(rc, c[i].rc))
			printf("# %s in %s\n", c[i].rel, c[i].root ? c[i].root : "(none)");
	}
	TU_EQ_INT(try_open(fn, t, "root/big.nc", "root", 4, &st), FILEURL_SIZE);
	TU_EQ_INT(st.st_size, 5);                      /* the size found, for the log */
	TU_EQ_INT(try_open(fn, t, "root/missing.nc", "root", 0, &st), FILEURL_MISSING);
	TU_EQ_INT(errno, ENOENT);
}

static void test_open_refuses_what_a_checked_file_became(void)
{
	opens_only_what_was_checked(fileurl_open);
}

static void test_open_without_openat2_refuses_the_same(void)
{
	opens_only_what_was_checked(fileurl_open_walk);
}

static void test_a_relative_path_opens_below_the_current_directory(void)
{
	char cwd[PATH_MAX], err[128];
	struct stat st;
	const char *t = tree();
	TU_CHECK(getcwd(cwd, sizeof cwd) != NULL);
	TU_CHECK(chdir(t) == 0);
	open_fn *fns[] = { fileurl_open, fileurl_open_walk };
	for (int i = 0; i < 2; i++) {
		int fd = fns[i]("root/a.nc", NULL, 0, 0, &st, err, sizeof err);
		TU_CHECK(fd >= 0);
		if (fd >= 0)
			close(fd);
		TU_EQ_INT(fns[i]("root/out", NULL, 0, -1, &st, err, sizeof err), FILEURL_FORBIDDEN);
		TU_EQ_INT(fns[i]("../x", NULL, 0, -1, &st, err, sizeof err), FILEURL_FORBIDDEN);
	}
	TU_CHECK(chdir(cwd) == 0);
}

TU_MAIN(
	TU(test_file_urls_decode_by_rfc_8089),
	TU(test_a_path_too_long_is_refused),
	TU(test_sources_must_resolve_inside_a_root),
	TU(test_no_roots_allow_no_file),
	TU(test_open_refuses_what_a_checked_file_became),
	TU(test_open_without_openat2_refuses_the_same),
	TU(test_a_relative_path_opens_below_the_current_directory)
)
