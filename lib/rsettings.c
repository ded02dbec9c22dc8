/* rsettings: rs-delivery's dynamic tenant settings over a tenant file (see
 * rsettings.h). One table holds what REGARDS declares of each setting
 * (DeliverySettings); the values live in the tenant file and are judged by
 * tenant_parse through settings_import, never here. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sodium.h>

#include "rsettings.h"
#include "settings.h"
#include "tenant.h"
#include "util.h"

/* DeliverySettings.SETTING_LIST, in the order a java.util.HashSet of
 * DynamicTenantSettingDto (hashCode: the name's String.hashCode) iterates
 * over them with its 16 buckets: s3_server 9, delivery_bucket 10,
 * request_ttl 14, build_bucket 14 (after request_ttl, as the HashSet of
 * DynamicTenantSetting it is collected from lists them), and
 * order_size_limit_bytes 15. Descriptions and defaults as REGARDS declares
 * them (the default S3 server's fields in S3DeliveryServer's order, as Gson
 * writes them); validation is the customizer's text for a missing value. */
static const struct rsetting {
	const char *name, *description, *dflt, *validation;
	int sensitive;           /* DynamicTenantSetting containsSensitiveParameters */
	int modifiable;          /* ferry has a tenant key for it */
} rsettings[] = {
	{ "s3_server", "S3 server to place orders.",
	  "{\"scheme\":\"https\",\"host\":\"rs-minio\",\"port\":9000,\"region\":\"fr-regards-1\","
	  "\"key\":\"default-key\",\"secret\":\"default-secret\"}",
	  "S3 server must be an object", 1, 1 },
	{ "delivery_bucket", "Bucket on which the ZIP archives will be dropped once orders have been "
	  "completed.", "\"default-delivery-bucket\"",
	  /* sic: DeliveryBucketCustomizer's text */
	  "parameter [request time to live] must be a valid positive number.", 0, 1 },
	{ "request_ttl", "Maximum retention time of a delivery request in hours.", "12",
	  "parameter [request time to live] must be a valid positive number", 0, 1 },
	{ "build_bucket", "Temporary bucket on which available files will be transferred before "
	  "building final zips.", "\"default-build-bucket\"",
	  "parameter [build bucket] must be a valid string", 0, 0 },
	{ "order_size_limit_bytes", "Maximum size in octets allowed for a delivery order. This value "
	  "should not be greater than a suborder size in order microservice as delivery does not "
	  "allow order with multiple suborders.", "5368709120",
	  "parameter [order size limit] must be a valid positive number", 0, 1 },
};
enum { NRSETTINGS = sizeof rsettings / sizeof *rsettings };

static const char *const secret_fields[] = { "key", "secret" };

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	errno = rc == RSETTINGS_NOMEM ? ENOMEM : EINVAL;
	return rc;
}

static const struct rsetting *find(const char *name)
{
	for (int i = 0; i < NRSETTINGS; i++)
		if (strcmp(rsettings[i].name, name) == 0)
			return &rsettings[i];
	return NULL;
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

/* The file text, checked as the stages would load it, as a JSON tree. */
static int load(const char *tname, const char *path, const char *json, size_t len,
    unsigned mode, cJSON **doc, char *err, size_t errlen)
{
	tenant *t = NULL;
	*doc = NULL;
	if (tenant_parse(tname, path, json, len, mode, &t, NULL, NULL, err, errlen) < 0)
		return errno == ENOMEM ? RSETTINGS_NOMEM : RSETTINGS_CURRENT;
	tenant_free(t);
	if (!(*doc = cJSON_ParseWithLength(json, len)))
		return fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	return RSETTINGS_OK;
}

/* ---- entries ---- */

/* the value a setting has: the file's, else its default; secrets masked */
static cJSON *value_of(const struct rsetting *k, const cJSON *doc)
{
	const cJSON *v = k->modifiable ? cJSON_GetObjectItemCaseSensitive(doc, k->name) : NULL;
	cJSON *out = v && !cJSON_IsNull(v) ? cJSON_Duplicate(v, 1) : cJSON_Parse(k->dflt);
	for (size_t i = 0; out && k->sensitive && cJSON_IsObject(out) && i < 2; i++)
		if (cJSON_GetObjectItemCaseSensitive(out, secret_fields[i]))
			cJSON_ReplaceItemInObjectCaseSensitive(out, secret_fields[i],
			    cJSON_CreateString(SETTINGS_MASK));
	return out;
}

static int add_link(cJSON *links, const char *rel, const char *base, const char *path,
    const char *name)
{
	size_t n = strlen(base) + strlen(path) + (name ? strlen(name) + 1 : 0) + 1;
	char *href = malloc(n);
	cJSON *l = cJSON_CreateObject();
	if (href)
		snprintf(href, n, "%s%s%s%s", base, path, name ? "/" : "", name ? name : "");
	int ok = href && l && cJSON_AddStringToObject(l, "rel", rel) &&
	    cJSON_AddStringToObject(l, "href", href);
	free(href);
	if (!ok) {
		cJSON_Delete(l);
		return -1;
	}
	cJSON_AddItemToArray(links, l);
	return 0;
}

/* The EntityModel of one setting (DynamicTenantSettingController.toResource):
 * self to retrieveAll, whose optional names parameter Spring HATEOAS
 * renders as the template {?names}; update when the setting can be
 * modified; reset when, moreover, its default differs from its value as
 * shown (a masked secret never equals the default's). */
static cJSON *entry(const struct rsetting *k, const cJSON *doc, const char *base)
{
	cJSON *e = cJSON_CreateObject(), *c = cJSON_CreateObject(), *links = cJSON_CreateArray();
	cJSON *dflt = cJSON_Parse(k->dflt), *value = value_of(k, doc);
	int ok = e && c && links && dflt && value;
	int reset = ok && k->modifiable && !cJSON_Compare(dflt, value, 1);
	if (ok && cJSON_AddStringToObject(c, "name", k->name) &&
	    cJSON_AddStringToObject(c, "description", k->description)) {
		cJSON_AddItemToObject(c, "defaultValue", dflt);
		cJSON_AddItemToObject(c, "value", value);
		dflt = value = NULL;
		cJSON_AddItemToObject(e, "content", c);
		cJSON_AddItemToObject(e, "links", links);
		c = links = NULL;
		ok = add_link(cJSON_GetObjectItem(e, "links"), "self", base, "/settings{?names}",
		    NULL) == 0;
		if (ok && k->modifiable)
			ok = add_link(cJSON_GetObjectItem(e, "links"), "update", base, "/settings",
			    k->name) == 0;
		if (ok && reset)
			ok = add_link(cJSON_GetObjectItem(e, "links"), "reset", base, "/settings",
			    k->name) == 0;
	} else {
		ok = 0;
	}
	cJSON_Delete(c);
	cJSON_Delete(links);
	cJSON_Delete(dflt);
	cJSON_Delete(value);
	if (!ok) {
		cJSON_Delete(e);
		return NULL;
	}
	return e;
}

char *rsettings_gson_escape(char *json)
{
	static const char html[] = "<>&='";
	size_t n = 0;
	if (!json)
		return NULL;
	for (const char *p = json; *p; p++)
		n += strchr(html, *p) && *p ? 6 : 1;
	char *out = malloc(n + 1), *o = out;
	for (const char *p = json; out && *p; p++) {
		if (strchr(html, *p))
			o += sprintf(o, "\\u%04x", (unsigned)*p);
		else
			*o++ = *p;
	}
	if (out)
		*o = '\0';
	free(json);
	return out;
}

/* the tree as one line, Gson-escaped */
static char *print(const cJSON *j)
{
	return rsettings_gson_escape(cJSON_PrintUnformatted(j));
}

static int listed(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

int rsettings_get(const char *tenant, const char *path, const char *json, size_t len,
    unsigned mode, const char *const *names, size_t n, const char *base, char **out,
    char *err, size_t errlen)
{
	cJSON *doc, *list;
	*out = NULL;
	int rc = load(tenant, path, json, len, mode, &doc, err, errlen);
	if (rc < 0)
		return rc;
	if ((list = cJSON_CreateArray()))
		for (int i = 0; rc == 0 && i < NRSETTINGS; i++) {
			if (n && !listed(rsettings[i].name, names, n))
				continue;
			cJSON *e = entry(&rsettings[i], doc, base);
			if (e)
				cJSON_AddItemToArray(list, e);
			else
				rc = -1;
		}
	if (list && rc == 0)
		*out = print(list);
	delete_wiped(doc);
	cJSON_Delete(list);
	return *out ? RSETTINGS_OK : fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
}

/* ---- changes ---- */

static const struct rsetting *modifiable(const char *name, char *err, size_t errlen, int *rc)
{
	const struct rsetting *k = find(name);
	*rc = RSETTINGS_OK;
	if (!k)
		/* EntityNotFoundException(name, DynamicTenantSetting.class) */
		*rc = fail(err, errlen, RSETTINGS_UNKNOWN, "Entity fr.cnes.regards.framework.modules."
		    "tenant.settings.domain.DynamicTenantSetting with id : %.*s doesn't exist",
		    (int)util_utf8_cut(name, strlen(name), 64), name);
	else if (!k->modifiable)
		/* DynamicTenantSettingService.checkAllowedUpdateOperation */
		*rc = fail(err, errlen, RSETTINGS_FORBIDDEN, "Tenant Setting Modification not allowed");
	return *rc ? NULL : k;
}

/* value set (or removed: NULL) through settings_import, the new file text
 * into *file, the entry into *out */
static int apply(const char *tenant, const char *path, const char *cur, size_t curlen,
    unsigned mode, const struct rsetting *k, const cJSON *value, const char *base,
    char **file, size_t *filelen, char **out, char *err, size_t errlen)
{
	char ierr[1024];
	cJSON *doc = NULL, *list = cJSON_CreateArray(), *one = cJSON_CreateObject();
	int rc = load(tenant, path, cur, curlen, mode, &doc, err, errlen);
	const cJSON *now = doc ? cJSON_GetObjectItemCaseSensitive(doc, k->name) : NULL;
	if (rc == 0 && (!list || !one))
		rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	/* an unchanged value is not written (DynamicTenantSettingService.update,
	 * reset) */
	int same = rc == 0 && (value ? now && cJSON_Compare(value, now, 1) :
	    !now || cJSON_IsNull(now));
	if (rc == 0 && !same) {
		cJSON_AddStringToObject(one, "name", k->name);
		cJSON_AddItemToObject(one, "value", value ? cJSON_Duplicate(value, 1) : cJSON_CreateNull());
		cJSON_AddItemToArray(list, one);
		one = NULL;
		char *body = cJSON_PrintUnformatted(list);
		int irc = body ? settings_import(tenant, path, cur, curlen, body, strlen(body), NULL,
		    file, filelen, ierr, sizeof ierr) : SETTINGS_NOMEM;
		settings_free_text(body, body ? strlen(body) : 0);
		if (irc == SETTINGS_BAD)
			rc = fail(err, errlen, RSETTINGS_INVALID, "Invalid Tenant Setting: %s. Cause: %s",
			    k->name, ierr);
		else if (irc == SETTINGS_CURRENT)
			rc = fail(err, errlen, RSETTINGS_CURRENT, "%s", ierr);
		else if (irc < 0)
			rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	}
	if (rc == 0 && *file) {
		delete_wiped(doc);
		rc = load(tenant, path, *file, *filelen, 0100600, &doc, err, errlen);
	}
	cJSON *e = rc == 0 ? entry(k, doc, base) : NULL;
	if (rc == 0 && !(e && (*out = print(e))))
		rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	cJSON_Delete(e);
	delete_wiped(one);
	delete_wiped(list);
	delete_wiped(doc);
	return rc;
}

static void clear(char **file, size_t *filelen, char **out)
{
	*file = *out = NULL;
	*filelen = 0;
}

static void undo(int rc, char **file, size_t *filelen, char **out)
{
	if (rc == 0)
		return;
	settings_free_text(*file, *filelen);
	free(*out);
	clear(file, filelen, out);
}

int rsettings_update(const char *tenant, const char *path, const char *cur, size_t curlen,
    unsigned mode, const char *name, const char *body, size_t bodylen, const char *base,
    char **file, size_t *filelen, char **out, char *err, size_t errlen)
{
	int rc;
	clear(file, filelen, out);
	const struct rsetting *k = modifiable(name, err, errlen, &rc);
	if (!k)
		return rc;
	const char *end = NULL;
	cJSON *dto = cJSON_ParseWithLengthOpts(body, bodylen, &end, 0);
	while (dto && end < body + bodylen && strchr(" \t\r\n", *end) && *end)
		end++;
	if (!cJSON_IsObject(dto) || end < body + bodylen) {
		delete_wiped(dto);
		return fail(err, errlen, RSETTINGS_BODY, "JSON parse error: the body must be one "
		    "DynamicTenantSettingDto object, {\"name\": ..., \"value\": ...}");
	}
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(dto, "value");
	if (!value || cJSON_IsNull(value))
		/* AbstractSimpleDynamicSettingCustomizer.isValid of a null value */
		rc = fail(err, errlen, RSETTINGS_INVALID, "Invalid Tenant Setting: %s. Cause: %s",
		    k->name, k->validation);
	else
		rc = apply(tenant, path, cur, curlen, mode, k, value, base, file, filelen, out,
		    err, errlen);
	delete_wiped(dto);
	undo(rc, file, filelen, out);
	return rc;
}

int rsettings_reset(const char *tenant, const char *path, const char *cur, size_t curlen,
    unsigned mode, const char *name, const char *base, char **file, size_t *filelen,
    char **out, char *err, size_t errlen)
{
	int rc;
	clear(file, filelen, out);
	const struct rsetting *k = modifiable(name, err, errlen, &rc);
	if (!k)
		return rc;
	rc = apply(tenant, path, cur, curlen, mode, k, NULL, base, file, filelen, out, err, errlen);
	undo(rc, file, filelen, out);
	return rc;
}
