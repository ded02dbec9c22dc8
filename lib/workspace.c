/* workspace: per-request directories under $FERRY_WORKSPACE (see .h). */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "tenant.h"
#include "util.h"
#include "workspace.h"

int workspace_path(const char *root, const char *tenant, const char *cid, char *out, size_t len)
{
	unsigned char h[16];
	char hex[33];
	if (!tenant_name_ok(tenant)) {
		errno = EINVAL;
		return -1;
	}
	if (sodium_init() < 0) {
		errno = ENOSYS;
		return -1;
	}
	crypto_generichash(h, sizeof h, (const unsigned char *)cid, strlen(cid), NULL, 0);
	util_hex(h, sizeof h, hex);
	if ((size_t)snprintf(out, len, "%s/%s/%s", root, tenant, hex) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int workspace_make(const char *dir)
{
	char p[4096];
	if (util_strlcpy(p, dir, sizeof p) >= sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(p, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
	return rc < 0 && errno != ENOENT ? -1 : 0;
}

int workspace_remove(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
