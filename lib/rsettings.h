/* rsettings: a tenant file seen as rs-delivery's five dynamic tenant
 * settings (DeliverySettings.SETTING_LIST), in the REST shape of REGARDS's
 * DynamicTenantSettingController: GET /settings[?names=], PUT and DELETE
 * /settings/{name}. Each entry is a Spring HATEOAS EntityModel as REGARDS's
 * Gson writes it, {"content":{"name","description","defaultValue","value"},
 * "links":[{"rel","href"},...]}. Each REGARDS name reads and writes the
 * tenant key of the same name; build_bucket has none (ferry builds zips in
 * its workspace) and cannot be modified. Writes go through settings_import,
 * so secrets are masked and kept as on ferry's own settings endpoint and
 * tenant_parse judges every value. test/rs-delivery-protocol.md §6 cites
 * the REGARDS source of each behaviour. */
#ifndef FERRY_RSETTINGS_H
#define FERRY_RSETTINGS_H

#include <stddef.h>

/* What went wrong, with the HTTP status REGARDS answers it with
 * (GlobalControllerAdvice). */
enum rsettings_rc {
	RSETTINGS_OK = 0,
	RSETTINGS_UNKNOWN = -1,    /* 404: no setting of that name (EntityNotFoundException) */
	RSETTINGS_FORBIDDEN = -2,  /* 403: the setting cannot be modified
	                              (EntityOperationForbiddenException) */
	RSETTINGS_INVALID = -3,    /* 422: the value is refused (EntityInvalidException) */
	RSETTINGS_BODY = -4,       /* 400: the body is not a JSON object (HttpMessageNotReadable) */
	RSETTINGS_CURRENT = -5,    /* 500: the tenant's file cannot be used as it is */
	RSETTINGS_NOMEM = -6,      /* 500 */
	RSETTINGS_CONFIG = -7,     /* 500: not a configuration file (ModuleException) */
};

/* The entries of the tenant file text json (checked with tenant_parse, mode
 * its st_mode) as a JSON array text (malloc'd, one line): all five, or
 * those named in names (n of them; unknown names are left out, as REGARDS's
 * findAllByNameIn does), in the order REGARDS's HashSet gives them.
 * base is the scheme, host and prefix the links start with
 * ("http://127.0.0.1:8484"). */
int rsettings_get(const char *tenant, const char *path, const char *json, size_t len,
    unsigned mode, const char *const *names, size_t n, const char *base, char **out,
    char *err, size_t errlen);

/* PUT /settings/{name} with body, a DynamicTenantSettingDto of which only
 * "value" counts (the path names the setting). The tenant's new file text
 * in *file (malloc'd, *filelen; NULL when nothing changes: a value equal
 * to the current one is not written, as in REGARDS) and the entry after
 * the change in *out. The file is never written here. */
int rsettings_update(const char *tenant, const char *path, const char *cur, size_t curlen,
    unsigned mode, const char *name, const char *body, size_t bodylen, const char *base,
    char **file, size_t *filelen, char **out, char *err, size_t errlen);

/* DELETE /settings/{name}: back to the default, which for ferry is the key
 * removed from the tenant file. Otherwise as rsettings_update. */
int rsettings_reset(const char *tenant, const char *path, const char *cur, size_t curlen,
    unsigned mode, const char *name, const char *base, char **file, size_t *filelen,
    char **out, char *err, size_t errlen);

/* Gson's HTML-safe escaping (its default, which REGARDS keeps) of JSON
 * text that cJSON printed: < > & = ' become \u003c \u003e \u0026 \u003d
 * \u0027. Those characters occur only inside strings, so the whole text
 * can be rewritten. A new malloc'd text, or NULL on ENOMEM; json is freed. */
char *rsettings_gson_escape(char *json);

/* ---- the admin UI's export and import files (ModuleManagerController) ---- */

/* GET /microservice/configuration: the tenant's settings as rs-delivery's
 * export file (config-rs-delivery.json), a MicroserviceConfiguration as
 * REGARDS's Gson writes it with a two-space indent: the "delivery" module
 * with resetBeforeImport true and one DynamicTenantSetting item per
 * setting (its value and default as Gson text, secrets masked), in the
 * order REGARDS's HashSet gives them. *out malloc'd. */
int rsettings_config_export(const char *tenant, const char *path, const char *json, size_t len,
    unsigned mode, char **out, char *err, size_t errlen);

/* POST /microservice/configuration with such a file (cfg): each module
 * whose id is "delivery" is imported as AbstractModuleManagerWithTenant-
 * Settings does, its settings reset to their defaults first when
 * resetBeforeImport is true, then each DynamicTenantSetting item applied
 * as PUT /settings/{name} would; what fails is an import error, the rest
 * is applied. *status is ModuleManagerController's: 201 (no error, *report
 * NULL), 206 (some errors) or 409 (nothing of a module could be imported),
 * *report the set of ModuleImportReport as a JSON text. The tenant's new
 * file text in *file (NULL: unchanged), never written here. Differences
 * from REGARDS, for the better: the file is checked whole before anything
 * changes (a malformed one is RSETTINGS_CONFIG and changes nothing); a
 * masked secret keeps the tenant's secret from before the reset; items of
 * build_bucket, which ferry has not, are passed over. RSETTINGS_CONFIG
 * (500, Gson's JsonSyntaxException in REGARDS) with the reason in err. */
int rsettings_config_import(const char *tenant, const char *path, const char *cur,
    size_t curlen, unsigned mode, const char *cfg, size_t cfglen, char **file,
    size_t *filelen, int *status, char **report, char *err, size_t errlen);

#endif
