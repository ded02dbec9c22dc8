/* settings: tenant file <-> REGARDS dynamic-settings list (see settings.h).
 * One table names every setting; tenant_parse judges the values, so the
 * rules are the stages' own and not a copy of them. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>
#include <sodium.h>

#include "settings.h"
#include "tenant.h"
#include "util.h"

enum { MAX_FILE = 1 << 20 };

enum kind {
	K_VALUE,     /* any JSON value, judged by tenant_parse */
	K_S3,        /* an object with secrets (s3 servers, rs_order, rs_admin): "key",
	                "secret" and "jwt_secret" are masked */
	K_IGNORED,   /* a REGARDS setting ferry has no use for: accepted, not stored */
};

/* Every key lib/tenant.c accepts (its tenant_rules), REGARDS's first, in
 * the order of rs-delivery's DeliverySettings.SETTING_LIST. The unit test
 * checks that tenant_parse knows each of them. */
static const struct setting {
	const char *name;
	enum kind kind;
	const char *dflt;        /* exported when the file does not set it */
} settings[] = {
	{ "request_ttl", K_VALUE, "12" },
	{ "s3_server", K_S3, NULL },
	{ "build_bucket", K_IGNORED, NULL },
	{ "delivery_bucket", K_VALUE, NULL },
	{ "order_size_limit_bytes", K_VALUE, "5368709120" },
	{ "users", K_VALUE, NULL },
	{ "rs_admin", K_S3, NULL },
	{ "catalog", K_VALUE, NULL },
	{ "order_command", K_VALUE, NULL },
	{ "order_backend", K_VALUE, NULL },
	{ "rs_order", K_S3, NULL },
	{ "max_suborders", K_VALUE, NULL },
	{ "suborder_max_bytes", K_VALUE, NULL },
	{ "suborder_max_files", K_VALUE, NULL },
	{ "source_s3_server", K_S3, NULL },
	{ "file_roots", K_VALUE, NULL },
	{ "allowed_hosts", K_VALUE, NULL },
	{ "source_buckets", K_VALUE, NULL },
	{ "compression", K_VALUE, NULL },
	{ "multipart_part_size", K_VALUE, NULL },
	{ "multipart_threshold", K_VALUE, NULL },
	{ "upload_parallel", K_VALUE, NULL },
	{ "presign_ttl_seconds", K_VALUE, NULL },
};
enum { NSETTINGS = sizeof settings / sizeof *settings };

static const char *const secret_fields[] = { "key", "secret", "jwt_secret" };

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	errno = rc == SETTINGS_NOMEM ? ENOMEM : EINVAL;
	return rc;
}

static const struct setting *find(const char *name)
{
	for (int i = 0; i < NSETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

void settings_free_text(char *text, size_t len)
{
	if (text)
		sodium_memzero(text, len);
	free(text);
}

/* a tree may hold secrets: wipe its strings before it is freed */
static void wipe(cJSON *j)
{
	for (; j; j = j->next) {
		if (cJSON_IsString(j) && j->valuestring)
			sodium_memzero(j->valuestring, strlen(j->valuestring));
		wipe(j->child);
	}
}

static void delete_wiped(cJSON *j)
{
	wipe(j);
	cJSON_Delete(j);
}

/* any JSON value, nothing but whitespace after it */
static cJSON *parse(const char *buf, size_t len, size_t *at)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (j) {
		while (end < buf + len && strchr(" \t\r\n", *end) && *end)
			end++;
		if (end < buf + len) {
			delete_wiped(j);
			j = NULL;
		}
	}
	if (!j)
		*at = end && end >= buf ? (size_t)(end - buf) + 1 : 1;
	return j;
}

/* the whole tree as text + "\n" (formatted or one line), malloc'd */
static char *print(const cJSON *j, int formatted, size_t *len)
{
	char *s = formatted ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *t = malloc(n + 2);
	if (t) {
		memcpy(t, s, n);
		t[n] = '\n';
		t[n + 1] = '\0';
		*len = n + 1;
	}
	settings_free_text(s, n);
	return t;
}

/* tenant_parse as the stages would load it; 0 or -1 with the reason */
static int check(const char *name, const char *path, const char *text, size_t len,
    unsigned mode, char *err, size_t errlen)
{
	tenant *t = NULL;
	int rc = tenant_parse(name, path, text, len, mode, &t, NULL, NULL, err, errlen);
	tenant_free(t);
	return rc;
}

/* ---- export ---- */

static cJSON *masked(const cJSON *s3)
{
	cJSON *v = cJSON_Duplicate(s3, 1);
	for (size_t i = 0; v && cJSON_IsObject(v) && i < sizeof secret_fields / sizeof *secret_fields; i++)
		if (cJSON_GetObjectItemCaseSensitive(v, secret_fields[i]))
			cJSON_ReplaceItemInObjectCaseSensitive(v, secret_fields[i],
			    cJSON_CreateString(SETTINGS_MASK));
	return v;
}

/* one {"name","value"} for setting k of the file doc, or none */
static int export_one(cJSON *list, const struct setting *k, const cJSON *doc)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, k->name);
	cJSON *value;
	if (!v || cJSON_IsNull(v)) {     /* null is the same as absent */
		if (!k->dflt)
			return 0;
		value = cJSON_Parse(k->dflt);
	} else {
		value = k->kind == K_S3 ? masked(v) : cJSON_Duplicate(v, 1);
	}
	cJSON *o = cJSON_CreateObject();
	if (!value || !o || !cJSON_AddStringToObject(o, "name", k->name)) {
		delete_wiped(value);
		cJSON_Delete(o);
		return -1;
	}
	cJSON_AddItemToObject(o, "value", value);
	cJSON_AddItemToArray(list, o);
	return 0;
}

int settings_export(const char *tenant, const char *path, const char *json, size_t len,
    unsigned mode, char **out, char *err, size_t errlen)
{
	size_t at, n;
	*out = NULL;
	if (check(tenant, path, json, len, mode, err, errlen) < 0)
		return errno == ENOMEM ? SETTINGS_NOMEM : SETTINGS_CURRENT;
	cJSON *doc = parse(json, len, &at), *list = cJSON_CreateArray();
	int rc = doc && list ? 0 : -1;
	for (int i = 0; rc == 0 && i < NSETTINGS; i++)
		if (settings[i].kind != K_IGNORED)
			rc = export_one(list, &settings[i], doc);
	if (rc == 0)
		*out = print(list, 0, &n);
	delete_wiped(doc);
	delete_wiped(list);
	return *out ? SETTINGS_OK : fail(err, errlen, SETTINGS_NOMEM, "out of memory");
}

/* ---- import ---- */

/* The body's entries, checked for shape; unknown names are gathered into
 * one message naming them all. */
static int check_list(const cJSON *list, char *err, size_t errlen)
{
	char unknown[512] = "";
	size_t un = 0;
	int i = 0;
	if (!cJSON_IsArray(list))
		return fail(err, errlen, SETTINGS_BAD,
		    "settings: must be a JSON array of {\"name\": ..., \"value\": ...} objects");
	for (const cJSON *e = list->child; e; e = e->next, i++) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
		if (!cJSON_IsObject(e) || !cJSON_IsString(name) ||
		    !cJSON_GetObjectItemCaseSensitive(e, "value"))
			return fail(err, errlen, SETTINGS_BAD,
			    "settings[%d]: must be an object with a string \"name\" and a \"value\"", i);
		for (const cJSON *p = list->child; p != e; p = p->next)
			if (strcmp(cJSON_GetObjectItemCaseSensitive(p, "name")->valuestring,
			    name->valuestring) == 0)
				return fail(err, errlen, SETTINGS_BAD, "setting %.*s: is given twice",
				    (int)util_utf8_cut(name->valuestring, strlen(name->valuestring), 64),
				    name->valuestring);
		if (!find(name->valuestring) && un < sizeof unknown) {
			size_t cut = util_utf8_cut(name->valuestring, strlen(name->valuestring), 64);
			int w = snprintf(unknown + un, sizeof unknown - un, "%s%.*s", un ? ", " : "",
			    (int)cut, name->valuestring);
			un += w > 0 ? (size_t)w : 0;
		}
	}
	if (un)
		return fail(err, errlen, SETTINGS_BAD, "unknown settings: %s", unknown);
	return 0;
}

/* A masked key or secret in an S3 value takes the current one. */
static int unmask(const char *name, cJSON *value, const cJSON *current, char *err, size_t errlen)
{
	for (size_t i = 0; cJSON_IsObject(value) && i < sizeof secret_fields / sizeof *secret_fields; i++) {
		const char *f = secret_fields[i];
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(value, f);
		if (!cJSON_IsString(v) || strcmp(v->valuestring, SETTINGS_MASK) != 0)
			continue;
		const cJSON *old = cJSON_GetObjectItemCaseSensitive(current, f);
		if (!cJSON_IsString(old))
			return fail(err, errlen, SETTINGS_BAD,
			    "%s.%s: is the mask \"%s\" but the tenant has no %s to keep", name, f,
			    SETTINGS_MASK, f);
		cJSON *copy = cJSON_CreateString(old->valuestring);
		if (!copy)
			return fail(err, errlen, SETTINGS_NOMEM, "out of memory");
		cJSON_ReplaceItemInObjectCaseSensitive(value, f, copy);
	}
	return 0;
}

/* apply one entry of the list to the file doc */
static int merge_one(cJSON *doc, const cJSON *e, char *err, size_t errlen)
{
	const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;
	const struct setting *k = find(name);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "value");
	if (k->kind == K_IGNORED)
		return 0;
	if (cJSON_IsNull(v)) {
		cJSON_DeleteItemFromObjectCaseSensitive(doc, name);
		return 0;
	}
	cJSON *value = cJSON_Duplicate(v, 1);
	if (!value)
		return fail(err, errlen, SETTINGS_NOMEM, "out of memory");
	int rc = k->kind == K_S3 ?
	    unmask(name, value, cJSON_GetObjectItemCaseSensitive(doc, name), err, errlen) : 0;
	if (rc < 0) {
		delete_wiped(value);
		return rc;
	}
	if (cJSON_GetObjectItemCaseSensitive(doc, name)) {
		cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(doc, name);
		delete_wiped(old);
	}
	cJSON_AddItemToObject(doc, name, value);
	return 0;
}

static int parse_current(const char *cur, size_t curlen, const char *path, cJSON **doc,
    char *err, size_t errlen)
{
	size_t at;
	*doc = cur ? parse(cur, curlen, &at) : cJSON_CreateObject();
	if (!cur && !*doc)
		return fail(err, errlen, SETTINGS_NOMEM, "out of memory");
	if (!*doc)
		return fail(err, errlen, SETTINGS_CURRENT, "%s: invalid JSON near byte %zu", path, at);
	if (!cJSON_IsObject(*doc))
		return fail(err, errlen, SETTINGS_CURRENT, "%s: not a JSON object", path);
	return 0;
}

/* 1 if cmd is one of the ':'-separated entries of list */
static int listed(const char *list, const char *cmd)
{
	size_t n = strlen(cmd);
	for (const char *p = list; p && *p; p += strcspn(p, ":"), p += *p == ':') {
		size_t k = strcspn(p, ":");
		if (k == n && strncmp(p, cmd, n) == 0)
			return 1;
	}
	return 0;
}

/* A REST import may keep or remove order_command, not set a command that
 * the operator did not list: whoever holds the API token would otherwise
 * run any program as the service's user. */
static int command_check(const cJSON *doc, const char *before, const char *commands,
    char *err, size_t errlen)
{
	const char *now = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc,
	    "order_command"));
	if (!now || (before && strcmp(before, now) == 0) || listed(commands, now))
		return 0;
	return fail(err, errlen, SETTINGS_BAD, "order_command %s is not one of the commands "
	    "listed in FERRY_ORDER_COMMANDS%s", now, commands && *commands ? "" : " (none is)");
}

int settings_import(const char *tenant, const char *path, const char *cur, size_t curlen,
    const char *body, size_t bodylen, const char *commands, char **out, size_t *outlen,
    char *err, size_t errlen)
{
	char *before = NULL;
	size_t at;
	cJSON *doc = NULL, *list = parse(body, bodylen, &at);
	*out = NULL;
	*outlen = 0;
	if (!list)
		return fail(err, errlen, SETTINGS_BAD, "invalid JSON near byte %zu", at);
	int rc = check_list(list, err, errlen);
	if (rc == 0)
		rc = parse_current(cur, curlen, path, &doc, err, errlen);
	const char *was = rc == 0 ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc,
	    "order_command")) : NULL;
	if (was && !(before = strdup(was)))
		rc = fail(err, errlen, SETTINGS_NOMEM, "out of memory");
	for (const cJSON *e = list->child; rc == 0 && e; e = e->next)
		rc = merge_one(doc, e, err, errlen);
	if (rc == 0 && !(*out = print(doc, 1, outlen)))
		rc = fail(err, errlen, SETTINGS_NOMEM, "out of memory");
	if (rc == 0 && check(tenant, path, *out, *outlen, 0100600, err, errlen) < 0)
		rc = errno == ENOMEM ? SETTINGS_NOMEM : SETTINGS_BAD;
	else if (rc == 0)
		rc = command_check(doc, before, commands, err, errlen);
	free(before);
	if (rc < 0 && *out) {
		settings_free_text(*out, *outlen);
		*out = NULL;
		*outlen = 0;
	}
	delete_wiped(list);
	delete_wiped(doc);
	return rc;
}

/* ---- files ---- */

int settings_path(const char *dir, const char *tenant, char *path, size_t n)
{
	size_t dl = strlen(dir);
	const char *sep = dl > 0 && dir[dl - 1] == '/' ? "" : "/";
	int w = tenant_name_ok(tenant) ? snprintf(path, n, "%s%s%s.json", dir, sep, tenant) : -1;
	if (w > 0 && (size_t)w < n)
		return 0;
	errno = EINVAL;
	return -1;
}

static int sys_fail(char *err, size_t errlen, const char *what, const char *path)
{
	int saved = errno;
	snprintf(err, errlen, "%s %s: %s", what, path, strerror(saved));
	errno = saved;
	return -1;
}

/* the whole regular file, at most MAX_FILE bytes */
static int slurp(int fd, const char *path, char **buf, size_t *len, unsigned *mode,
    char *err, size_t errlen)
{
	struct stat st;
	size_t cap, n = 0;
	if (fstat(fd, &st) < 0)
		return sys_fail(err, errlen, "unable to stat", path);
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
		snprintf(err, errlen, "%s: %s", path, S_ISREG(st.st_mode) ? "larger than 1 MiB" :
		    "not a regular file");
		errno = EINVAL;
		return -1;
	}
	cap = (size_t)st.st_size + 1;     /* one more byte shows a file that grew */
	if (!(*buf = malloc(cap)))
		return sys_fail(err, errlen, "unable to read", path);
	while (n < cap) {
		ssize_t r = read(fd, *buf + n, cap - n);
		if (r == 0)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			sys_fail(err, errlen, "unable to read", path);
			settings_free_text(*buf, cap);
			*buf = NULL;
			return -1;
		}
		n += (size_t)r;
	}
	*len = n;
	*mode = st.st_mode;
	return 0;
}

int settings_read(const char *dir, const char *tenant, char **buf, size_t *len,
    unsigned *mode, char *err, size_t errlen)
{
	char path[4096];
	*buf = NULL;
	*len = 0;
	if (settings_path(dir, tenant, path, sizeof path) < 0) {
		snprintf(err, errlen, "invalid tenant name");
		errno = EINVAL;
		return -1;
	}
	/* O_NONBLOCK: a FIFO in place of the file must not hang the server */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return sys_fail(err, errlen, "unable to open", path);
	int rc = slurp(fd, path, buf, len, mode, err, errlen);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int write_temp(int fd, const char *tmp, const char *text, size_t len,
    char *err, size_t errlen)
{
	if (fchmod(fd, 0600) < 0 || util_write_all(fd, text, len) < 0 || fsync(fd) < 0) {
		sys_fail(err, errlen, "unable to write", tmp);
		close(fd);
		return -1;
	}
	if (close(fd) < 0)
		return sys_fail(err, errlen, "unable to write", tmp);
	return 0;
}

static int sync_dir(const char *dir, char *err, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		sys_fail(err, errlen, "unable to sync", dir);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int settings_write(const char *dir, const char *tenant, const char *text, size_t len,
    int *created, char *err, size_t errlen)
{
	char path[4096], tmp[4096 + 16];
	struct stat st;
	if (settings_path(dir, tenant, path, sizeof path) < 0) {
		snprintf(err, errlen, "invalid tenant name");
		errno = EINVAL;
		return -1;
	}
	/* a dot name that does not end in .json: never taken for a tenant */
	snprintf(tmp, sizeof tmp, "%s%s.%s.json.XXXXXX", dir,
	    dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", tenant);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return sys_fail(err, errlen, "unable to create", tmp);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (write_temp(fd, tmp, text, len, err, errlen) < 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	*created = lstat(path, &st) < 0 && errno == ENOENT;
	if (rename(tmp, path) < 0) {
		sys_fail(err, errlen, "unable to rename to", path);
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return sync_dir(dir, err, errlen);
}
