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

#include "javaset.h"
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
	const char *class_name;  /* DynamicTenantSetting className: the value's class */
	int sensitive;           /* DynamicTenantSetting containsSensitiveParameters */
	int modifiable;          /* ferry has a tenant key for it */
} rsettings[] = {
	{ "s3_server", "S3 server to place orders.",
	  "{\"scheme\":\"https\",\"host\":\"rs-minio\",\"port\":9000,\"region\":\"fr-regards-1\","
	  "\"key\":\"default-key\",\"secret\":\"default-secret\"}",
	  "S3 server must be an object",
	  "fr.cnes.regards.modules.delivery.domain.settings.S3DeliveryServer", 1, 1 },
	{ "delivery_bucket", "Bucket on which the ZIP archives will be dropped once orders have been "
	  "completed.", "\"default-delivery-bucket\"",
	  /* sic: DeliveryBucketCustomizer's text */
	  "parameter [request time to live] must be a valid positive number.", "java.lang.String",
	  0, 1 },
	{ "request_ttl", "Maximum retention time of a delivery request in hours.", "12",
	  "parameter [request time to live] must be a valid positive number", "java.lang.Integer",
	  0, 1 },
	{ "build_bucket", "Temporary bucket on which available files will be transferred before "
	  "building final zips.", "\"default-build-bucket\"",
	  "parameter [build bucket] must be a valid string", "java.lang.String", 0, 0 },
	{ "order_size_limit_bytes", "Maximum size in octets allowed for a delivery order. This value "
	  "should not be greater than a suborder size in order microservice as delivery does not "
	  "allow order with multiple suborders.", "5368709120",
	  "parameter [order size limit] must be a valid positive number", "java.lang.Long", 0, 1 },
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

/* the length of the escape at p, 0 when the byte stays as it is */
static int gson_escaped(const char *p)
{
	if (strchr("<>&='", *p) && *p)
		return 1;
	if ((unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x80 &&
	    ((unsigned char)p[2] == 0xa8 || (unsigned char)p[2] == 0xa9))
		return 3;                        /* U+2028, U+2029 */
	return 0;
}

char *rsettings_gson_escape(char *json)
{
	size_t n = 0;
	if (!json)
		return NULL;
	for (const char *p = json; *p; p++) {
		int e = gson_escaped(p);
		n += e ? 6 : 1;
		p += e > 1 ? e - 1 : 0;
	}
	char *out = malloc(n + 1), *o = out;
	for (const char *p = json; out && *p; p++) {
		int e = gson_escaped(p);
		if (e == 1) {
			o += sprintf(o, "\\u%04x", (unsigned)*p);
		} else if (e == 3) {
			o += sprintf(o, "\\u%04x", 0x2028u + ((unsigned char)p[2] - 0xa8u));
			p += 2;
		} else {
			*o++ = *p;
		}
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

/* k set to value (removed: NULL) in the text cur through settings_import:
 * the new text into *file (NULL when the value is already that). cur is
 * valid (load has judged it). */
static int change(const char *tenant, const char *path, const char *cur, size_t curlen,
    const cJSON *doc, const struct rsetting *k, const cJSON *value, char **file,
    size_t *filelen, char *err, size_t errlen)
{
	char ierr[1024];
	const cJSON *now = cJSON_GetObjectItemCaseSensitive(doc, k->name);
	*file = NULL;
	*filelen = 0;
	/* an unchanged value is not written (DynamicTenantSettingService.update,
	 * reset): the value compared is the one the setting has (its default
	 * when the file has no key), a masked secret the tenant's */
	if (now && cJSON_IsNull(now))
		now = NULL;
	cJSON *dflt = cJSON_Parse(k->dflt), *plain = cJSON_Duplicate(value, 1);
	for (size_t i = 0; plain && now && k->sensitive && i < 2; i++) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(plain, secret_fields[i]);
		const cJSON *old = cJSON_GetObjectItemCaseSensitive(now, secret_fields[i]);
		if (cJSON_IsString(f) && strcmp(f->valuestring, SETTINGS_MASK) == 0 &&
		    cJSON_IsString(old))
			cJSON_ReplaceItemInObjectCaseSensitive(plain, secret_fields[i],
			    cJSON_CreateString(old->valuestring));
	}
	int same = value ? plain && cJSON_Compare(plain, now ? now : dflt, 1) : !now;
	delete_wiped(plain);
	cJSON_Delete(dflt);
	if (same)
		return RSETTINGS_OK;
	cJSON *list = cJSON_CreateArray(), *one = cJSON_CreateObject();
	int rc = RSETTINGS_OK;
	if (list && one && cJSON_AddStringToObject(one, "name", k->name) &&
	    cJSON_AddItemToObject(one, "value", value ? cJSON_Duplicate(value, 1) :
	    cJSON_CreateNull())) {
		cJSON_AddItemToArray(list, one);
		one = NULL;
	} else {
		rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	}
	char *body = rc == 0 ? cJSON_PrintUnformatted(list) : NULL;
	int irc = body ? settings_import(tenant, path, cur, curlen, body, strlen(body), NULL,
	    file, filelen, ierr, sizeof ierr) : SETTINGS_NOMEM;
	settings_free_text(body, body ? strlen(body) : 0);
	if (rc == 0 && irc == SETTINGS_BAD)
		rc = fail(err, errlen, RSETTINGS_INVALID, "Invalid Tenant Setting: %s. Cause: %s",
		    k->name, ierr);
	else if (rc == 0 && irc == SETTINGS_CURRENT)
		rc = fail(err, errlen, RSETTINGS_CURRENT, "%s", ierr);
	else if (rc == 0 && irc < 0)
		rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	delete_wiped(one);
	delete_wiped(list);
	return rc;
}

/* value set (or removed: NULL) through change, the new file text into
 * *file, the entry into *out */
static int apply(const char *tenant, const char *path, const char *cur, size_t curlen,
    unsigned mode, const struct rsetting *k, const cJSON *value, const char *base,
    char **file, size_t *filelen, char **out, char *err, size_t errlen)
{
	cJSON *doc = NULL;
	int rc = load(tenant, path, cur, curlen, mode, &doc, err, errlen);
	if (rc == 0)
		rc = change(tenant, path, cur, curlen, doc, k, value, file, filelen, err, errlen);
	if (rc == 0 && *file) {
		delete_wiped(doc);
		rc = load(tenant, path, *file, *filelen, 0100600, &doc, err, errlen);
	}
	cJSON *e = rc == 0 ? entry(k, doc, base) : NULL;
	if (rc == 0 && !(e && (*out = print(e))))
		rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	cJSON_Delete(e);
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

/* ---- the admin UI's export and import files ---- */

/* ModuleConfigurationItem's key for a setting, and what
 * DeliveryConfigurationManager's module.properties declares */
#define DTS_CLASS "fr.cnes.regards.framework.modules.tenant.settings.domain.DynamicTenantSetting"
static const char *const module_info[][2] = {
	{ "id", "delivery" }, { "name", "Delivery module" },
	{ "description", "File delivery system for order microservice." },
	{ "version", "1.14.0" }, { "author", "REGARDS" }, { "legalOwner", "CNES" },
	{ "documentation", "https://github.com/RegardsOss" },
};

/* The settings as DynamicTenantSettingService.readAll lists them: a
 * HashSet of DynamicTenantSetting, whose hashCode is Objects.hash(name). */
static size_t read_all(size_t order[NRSETTINGS])
{
	const char *names[NRSETTINGS];
	for (int i = 0; i < NRSETTINGS; i++)
		names[i] = rsettings[i].name;
	return javaset_order(names, NRSETTINGS, 31, order);
}

/* j as Gson's JsonWriter writes it with the indent "  " ("key": value,
 * one member a line, [] and {} when empty), not yet HTML-escaped */
static void gson_pretty(FILE *f, const cJSON *j, int depth)
{
	if (!cJSON_IsObject(j) && !cJSON_IsArray(j)) {
		char *s = cJSON_PrintUnformatted(j);
		fputs(s ? s : "null", f);
		free(s);
		return;
	}
	int obj = cJSON_IsObject(j), first = 1;
	fputc(obj ? '{' : '[', f);
	for (const cJSON *c = j->child; c; c = c->next, first = 0) {
		fprintf(f, "%s\n%*s", first ? "" : ",", 2 * (depth + 1), "");
		if (obj) {
			cJSON *key = cJSON_CreateString(c->string);
			gson_pretty(f, key, 0);
			cJSON_Delete(key);
			fputs(": ", f);
		}
		gson_pretty(f, c, depth + 1);
	}
	if (!first)
		fprintf(f, "\n%*s", 2 * depth, "");
	fputc(obj ? '}' : ']', f);
}

/* v with the members model has first, in model's order (Gson writes a
 * class's fields in their declared order: S3DeliveryServer's) */
static cJSON *ordered_like(cJSON *v, const cJSON *model)
{
	if (!cJSON_IsObject(v) || !cJSON_IsObject(model))
		return v;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return v;
	for (const cJSON *m = model->child; m; m = m->next) {
		cJSON *x = cJSON_DetachItemFromObjectCaseSensitive(v, m->string);
		if (x)
			cJSON_AddItemToObject(o, m->string, x);
	}
	while (v->child) {
		cJSON *x = v->child;
		char *name = x->string;
		x->string = NULL;
		cJSON_DetachItemViaPointer(v, x);
		cJSON_AddItemToObject(o, name, x);
		free(name);
	}
	cJSON_Delete(v);
	return o;
}

/* a value as DynamicTenantSetting keeps it: GsonUtil.toString's text */
static cJSON *gson_text(cJSON *v)
{
	char *s = v ? rsettings_gson_escape(cJSON_PrintUnformatted(v)) : NULL;
	cJSON *out = s ? cJSON_CreateString(s) : NULL;
	if (s)
		sodium_memzero(s, strlen(s));
	free(s);
	delete_wiped(v);
	return out;
}

/* the ModuleConfigurationItem of one setting */
static cJSON *config_item(const struct rsetting *k, const cJSON *doc)
{
	cJSON *dflt = cJSON_Parse(k->dflt);
	cJSON *it = cJSON_CreateObject(), *v = cJSON_CreateObject();
	cJSON *value = gson_text(ordered_like(value_of(k, doc), dflt));
	cJSON *dtext = gson_text(cJSON_Duplicate(dflt, 1));
	int ok = it && v && value && dtext && cJSON_AddStringToObject(it, "key", DTS_CLASS) &&
	    cJSON_AddStringToObject(v, "name", k->name) &&
	    cJSON_AddStringToObject(v, "description", k->description);
	if (ok) {
		cJSON_AddItemToObject(v, "value", value);
		cJSON_AddItemToObject(v, "defaultValue", dtext);
		value = dtext = NULL;
		ok = cJSON_AddStringToObject(v, "className", k->class_name) &&
		    cJSON_AddBoolToObject(v, "containsSensitiveParameters", k->sensitive);
		cJSON_AddItemToObject(it, "value", v);
		v = NULL;
	}
	cJSON_Delete(dflt);
	delete_wiped(value);
	cJSON_Delete(dtext);
	cJSON_Delete(v);
	if (!ok) {
		delete_wiped(it);
		return NULL;
	}
	return it;
}

static cJSON *module_information(void)
{
	cJSON *m = cJSON_CreateObject();
	for (size_t i = 0; m && i < sizeof module_info / sizeof *module_info; i++)
		if (!cJSON_AddStringToObject(m, module_info[i][0], module_info[i][1])) {
			cJSON_Delete(m);
			return NULL;
		}
	return m;
}

int rsettings_config_export(const char *tenant, const char *path, const char *json, size_t len,
    unsigned mode, char **out, char *err, size_t errlen)
{
	cJSON *doc;
	size_t order[NRSETTINGS], n = read_all(order);
	*out = NULL;
	int rc = load(tenant, path, json, len, mode, &doc, err, errlen);
	if (rc < 0)
		return rc;
	cJSON *root = cJSON_CreateObject(), *mods = cJSON_CreateArray(), *mod = cJSON_CreateObject();
	cJSON *info = module_information(), *items = cJSON_CreateArray();
	int ok = root && mods && mod && info && items &&
	    cJSON_AddStringToObject(root, "microservice", "rs-delivery");
	for (size_t i = 0; ok && i < n; i++) {
		cJSON *it = config_item(&rsettings[order[i]], doc);
		if (it)
			cJSON_AddItemToArray(items, it);
		ok = it != NULL;
	}
	if (ok) {
		cJSON_AddItemToObject(mod, "module", info);
		ok = cJSON_AddBoolToObject(mod, "resetBeforeImport", 1) != NULL;
		cJSON_AddItemToObject(mod, "configuration", items);
		cJSON_AddItemToArray(mods, mod);
		cJSON_AddItemToObject(root, "modules", mods);
		info = items = mod = mods = NULL;
	}
	char *text = NULL;
	size_t tlen = 0;
	FILE *f = ok ? open_memstream(&text, &tlen) : NULL;
	if (f) {
		gson_pretty(f, root, 0);
		ok = fclose(f) == 0;
	}
	if (ok && text)
		*out = rsettings_gson_escape(text);
	else
		free(text);
	delete_wiped(root);
	cJSON_Delete(mods);
	cJSON_Delete(mod);
	cJSON_Delete(info);
	delete_wiped(items);
	delete_wiped(doc);
	return *out ? RSETTINGS_OK : fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
}

/* ---- import ---- */

/* the tenant's text as the import changes it, setting after setting */
struct state {
	const char *tenant, *path;
	char *text;              /* the caller's cur until the first change */
	size_t len;
	int owned;
	cJSON *doc;
};

/* k set to value (NULL: reset) in the state */
static int step(struct state *st, const struct rsetting *k, const cJSON *value, char *err,
    size_t errlen)
{
	char *nf;
	size_t nl;
	int rc = change(st->tenant, st->path, st->text, st->len, st->doc, k, value, &nf, &nl, err,
	    errlen);
	if (rc < 0 || !nf)
		return rc;
	cJSON *doc;
	if ((rc = load(st->tenant, st->path, nf, nl, 0100600, &doc, err, errlen)) < 0) {
		settings_free_text(nf, nl);
		return rc;
	}
	if (st->owned)
		settings_free_text(st->text, st->len);
	delete_wiped(st->doc);
	st->text = nf;
	st->len = nl;
	st->owned = 1;
	st->doc = doc;
	return RSETTINGS_OK;
}

/* a set of strings, as a list to order like Java at the end */
struct strs {
	char **v;
	size_t n;
};

static int strs_add(struct strs *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int strs_add(struct strs *s, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	char **v = realloc(s->v, (s->n + 1) * sizeof *v);
	if (!v)
		return -1;
	s->v = v;
	if (!(v[s->n] = strdup(buf)))
		return -1;
	s->n++;
	return 0;
}

static void strs_free(struct strs *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* a string set as a JSON array, in HashSet<String> order */
static cJSON *strs_json(const struct strs *s)
{
	size_t *order = malloc((s->n ? s->n : 1) * sizeof *order);
	cJSON *a = cJSON_CreateArray();
	size_t n = order ? javaset_order((const char *const *)s->v, s->n, 0, order) : 0;
	for (size_t i = 0; a && order && i < n; i++) {
		cJSON *x = cJSON_CreateString(s->v[order[i]]);
		if (!x) {
			cJSON_Delete(a);
			a = NULL;
		} else {
			cJSON_AddItemToArray(a, x);
		}
	}
	free(order);
	if (!order) {
		cJSON_Delete(a);
		return NULL;
	}
	return a;
}

static int bad_config(char *err, size_t errlen, const char *why)
{
	return fail(err, errlen, RSETTINGS_CONFIG, "com.google.gson.JsonSyntaxException: %s", why);
}

/* The file checked whole before anything is imported: what Gson would
 * not read into a MicroserviceConfiguration, or what would throw later in
 * REGARDS (a null modules or configuration list, a value that is not Gson
 * text, an item of a class REGARDS has not). */
static int check_config(const cJSON *cfg, char *err, size_t errlen)
{
	char why[512];
	const cJSON *mods = cJSON_GetObjectItemCaseSensitive(cfg, "modules"), *m;
	if (!cJSON_IsObject(cfg))
		return bad_config(err, errlen, "the file is not one JSON object, a "
		    "MicroserviceConfiguration {\"microservice\", \"modules\"}");
	if (!cJSON_IsArray(mods))
		return bad_config(err, errlen, "\"modules\" is not a list");
	cJSON_ArrayForEach(m, mods) {
		const cJSON *info = cJSON_GetObjectItemCaseSensitive(m, "module");
		const cJSON *reset = cJSON_GetObjectItemCaseSensitive(m, "resetBeforeImport");
		const cJSON *items = cJSON_GetObjectItemCaseSensitive(m, "configuration"), *it;
		if (!cJSON_IsObject(m) || !cJSON_IsObject(info) ||
		    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(info, "id")))
			return bad_config(err, errlen, "a module has no \"module\" object with an \"id\"");
		if (reset && !cJSON_IsBool(reset) && !cJSON_IsNull(reset))
			return bad_config(err, errlen, "\"resetBeforeImport\" is not a boolean");
		if (!cJSON_IsArray(items))
			return bad_config(err, errlen, "a module's \"configuration\" is not a list");
		cJSON_ArrayForEach(it, items) {
			const cJSON *key = cJSON_GetObjectItemCaseSensitive(it, "key");
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value"), *text;
			if (!cJSON_IsObject(it) || !cJSON_IsString(key))
				return bad_config(err, errlen, "an item has no \"key\"");
			if (strcmp(key->valuestring, DTS_CLASS) != 0) {
				/* ModuleConfigurationItemAdapter's Class.forName */
				snprintf(why, sizeof why, "java.io.IOException: java.lang."
				    "ClassNotFoundException: %.*s", (int)util_utf8_cut(key->valuestring,
				    strlen(key->valuestring), 200), key->valuestring);
				return bad_config(err, errlen, why);
			}
			if (!cJSON_IsObject(v) ||
			    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "name")))
				return bad_config(err, errlen, "a DynamicTenantSetting item has no "
				    "\"value\" object with a \"name\"");
			text = cJSON_GetObjectItemCaseSensitive(v, "value");
			if (text && !cJSON_IsNull(text) && !cJSON_IsString(text))
				return bad_config(err, errlen, "a DynamicTenantSetting's \"value\" is not "
				    "a string of JSON text");
			if (cJSON_IsString(text)) {
				cJSON *parsed = cJSON_Parse(text->valuestring);
				int ok = parsed != NULL;
				delete_wiped(parsed);
				if (!ok)
					/* DynamicTenantSetting.getValue: GsonUtil.fromString */
					return fail(err, errlen, RSETTINGS_CONFIG, "java.lang.Illegal"
					    "ArgumentException: The value of setting %.*s cannot be "
					    "transformed to Json object", (int)util_utf8_cut(
					    cJSON_GetObjectItemCaseSensitive(v, "name")->valuestring, strlen(
					    cJSON_GetObjectItemCaseSensitive(v, "name")->valuestring), 64),
					    cJSON_GetObjectItemCaseSensitive(v, "name")->valuestring);
			}
		}
	}
	return RSETTINGS_OK;
}

static const cJSON *item_named(const cJSON *items, const char *name)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, items) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "value");
		if (strcmp(cJSON_GetObjectItemCaseSensitive(v, "name")->valuestring, name) == 0)
			return it;
	}
	return NULL;
}

/* a reset that fails is a reset error (AbstractModuleManagerWithTenant-
 * Settings.resetDynamicTenantSettingService); -1 when the import stops */
static int reset_one(struct state *st, const struct rsetting *k, struct strs *resets,
    char *err, size_t errlen)
{
	char why[1024];
	int rc = step(st, k, NULL, why, sizeof why);
	if (rc == RSETTINGS_INVALID || rc == RSETTINGS_FORBIDDEN)
		return strs_add(resets, "Could not reset dynamic setting with name '%s'. Cause: %s",
		    k->name, why) < 0 ? fail(err, errlen, RSETTINGS_NOMEM, "out of memory") : 0;
	if (rc < 0)
		return fail(err, errlen, rc, "%s", why);
	return RSETTINGS_OK;
}

/* One module: the resets, then each item (importDynamicTenantSettings-
 * Configuration). A setting the file also sets is reset only if its
 * import fails, so that a masked secret finds the tenant's secret. The
 * ModuleImportReport into *report. */
static int import_module(struct state *st, const cJSON *m, cJSON **report, char *err,
    size_t errlen)
{
	char why[1024];
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(m, "configuration"), *it;
	int reset = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "resetBeforeImport"));
	struct strs imports = { 0 }, resets = { 0 };
	size_t order[NRSETTINGS], n = read_all(order), nitems = (size_t)cJSON_GetArraySize(items);
	int rc = RSETTINGS_OK;
	*report = NULL;
	for (size_t i = 0; rc == 0 && reset && i < n; i++)
		if (rsettings[order[i]].modifiable && !item_named(items, rsettings[order[i]].name))
			rc = reset_one(st, &rsettings[order[i]], &resets, err, errlen);
	/* the items as the HashSet getConfigurationSettingsByClass makes of them:
	 * one a name, the first */
	const char **names = malloc((nitems ? nitems : 1) * sizeof *names);
	const cJSON **its = malloc((nitems ? nitems : 1) * sizeof *its);
	size_t *iorder = malloc((nitems ? nitems : 1) * sizeof *iorder), ni = 0;
	if (rc == 0 && (!names || !its || !iorder))
		rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	if (rc == 0) {
		cJSON_ArrayForEach(it, items) {
			its[ni] = cJSON_GetObjectItemCaseSensitive(it, "value");
			names[ni] = cJSON_GetObjectItemCaseSensitive(its[ni], "name")->valuestring;
			ni++;
		}
		ni = javaset_order(names, ni, 31, iorder);
	}
	for (size_t i = 0; rc == 0 && i < ni; i++) {
		const cJSON *dts = its[iorder[i]];
		const char *name = names[iorder[i]];
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(dts, "value");
		const struct rsetting *k = find(name);
		int irc;
		if (k && !k->modifiable)
			continue;                /* build_bucket: ferry has none */
		if (!(k = modifiable(name, why, sizeof why, &irc))) {
			;
		} else if (!cJSON_IsString(text)) {
			/* a null value: the customizer's isValid */
			irc = fail(why, sizeof why, RSETTINGS_INVALID, "Invalid Tenant Setting: %s. "
			    "Cause: %s", k->name, k->validation);
		} else {
			cJSON *v = cJSON_Parse(text->valuestring);
			irc = v ? step(st, k, v, why, sizeof why) : fail(why, sizeof why,
			    RSETTINGS_NOMEM, "out of memory");
			delete_wiped(v);
		}
		if (irc == RSETTINGS_NOMEM || irc == RSETTINGS_CURRENT) {
			rc = fail(err, errlen, irc, "%s", why);
		} else if (irc < 0) {
			if (strs_add(&imports, "Failed to import dynamic tenant setting with name '%s'. "
			    "Cause: %s", name, why) < 0)
				rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
			else if (reset && k)
				rc = reset_one(st, k, &resets, err, errlen);
		}
	}
	/* onlyErrors: as many import errors (a set) as items in the file */
	size_t *tmp = malloc((imports.n ? imports.n : 1) * sizeof *tmp);
	size_t distinct = tmp ? javaset_order((const char *const *)imports.v, imports.n, 0, tmp) : 0;
	free(tmp);
	for (size_t i = 0; rc == 0 && i < resets.n; i++)
		if (strs_add(&imports, "%s", resets.v[i]) < 0)
			rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	cJSON *r = rc == 0 ? cJSON_CreateObject() : NULL, *info = module_information();
	cJSON *errs = strs_json(&imports);
	if (rc == 0 && r && info && errs && cJSON_AddItemToObject(r, "moduleInformation", info) &&
	    cJSON_AddItemToObject(r, "importErrors", errs) &&
	    cJSON_AddBoolToObject(r, "onlyErrors", distinct == nitems)) {
		*report = r;
	} else {
		if (!cJSON_GetObjectItem(r, "moduleInformation"))
			cJSON_Delete(info);
		if (!cJSON_GetObjectItem(r, "importErrors"))
			cJSON_Delete(errs);
		cJSON_Delete(r);
		if (rc == 0)
			rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	}
	strs_free(&imports);
	strs_free(&resets);
	free(names);
	free(its);
	free(iorder);
	return rc;
}

/* ModuleManagerController.makeImportResponse */
static int import_status(const cJSON *reports)
{
	int total = 0, in_error = 0, only = 0;
	const cJSON *r;
	cJSON_ArrayForEach(r, reports) {
		int o = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "onlyErrors"));
		total++;
		if (o || cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "importErrors")) > 0)
			in_error++, only += o;
	}
	if (!in_error)
		return 201;
	if (in_error < total)
		return 206;
	return only == in_error ? 409 : 206;
}

int rsettings_config_import(const char *tenant, const char *path, const char *cur,
    size_t curlen, unsigned mode, const char *cfg, size_t cfglen, char **file,
    size_t *filelen, int *status, char **report, char *err, size_t errlen)
{
	struct state st = { tenant, path, (char *)cur, curlen, 0, NULL };
	const char *end = NULL;
	*file = *report = NULL;
	*filelen = 0;
	*status = 0;
	int rc = load(tenant, path, cur, curlen, mode, &st.doc, err, errlen);
	if (rc < 0)
		return rc;
	cJSON *c = cJSON_ParseWithLengthOpts(cfg, cfglen, &end, 0), *reports = cJSON_CreateArray();
	while (c && end < cfg + cfglen && *end && strchr(" \t\r\n", *end))
		end++;
	if (!reports)
		rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	else if (!c || end < cfg + cfglen)
		rc = bad_config(err, errlen, "the file is not JSON text");
	else
		rc = check_config(c, err, errlen);
	const cJSON *m, *mods = rc == 0 ? cJSON_GetObjectItemCaseSensitive(c, "modules") : NULL;
	cJSON_ArrayForEach(m, mods) {
		const cJSON *info = cJSON_GetObjectItemCaseSensitive(m, "module");
		cJSON *r, *seen;
		int dup = 0;
		/* AbstractModuleManager.isApplicable: the same module id */
		if (strcmp(cJSON_GetObjectItemCaseSensitive(info, "id")->valuestring, "delivery") != 0)
			continue;
		if ((rc = import_module(&st, m, &r, err, errlen)) < 0)
			break;
		cJSON_ArrayForEach(seen, reports)     /* a Set of reports */
			dup |= cJSON_Compare(seen, r, 1);
		if (dup)
			cJSON_Delete(r);
		else
			cJSON_AddItemToArray(reports, r);
	}
	if (rc == 0) {
		*status = import_status(reports);
		if (*status != 201 && !(*report = print(reports)))
			rc = fail(err, errlen, RSETTINGS_NOMEM, "out of memory");
	}
	if (rc == 0 && st.owned) {
		*file = st.text;
		*filelen = st.len;
	} else if (st.owned) {
		settings_free_text(st.text, st.len);
	}
	if (rc < 0) {
		free(*report);
		*report = NULL;
		*status = 0;
	}
	delete_wiped(c);
	delete_wiped(st.doc);
	cJSON_Delete(reports);
	return rc;
}
