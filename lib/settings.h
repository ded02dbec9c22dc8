/* settings: a tenant file (DESIGN §5) as a REGARDS dynamic-settings list,
 * [{"name":"request_ttl","value":12}, ...], and back. The REGARDS names and
 * value shapes are those of rs-delivery's DeliverySettings; ferry's own keys
 * keep their names. Secrets (s3 key and secret) leave only masked, and a
 * masked value coming back keeps the secret in place, so an export imported
 * again changes nothing. Every import is checked by tenant_parse, the very
 * rules the stages load tenants with. */
#ifndef FERRY_SETTINGS_H
#define FERRY_SETTINGS_H

#include <stddef.h>

/* REGARDS's mask of sensitive values (ISensitiveAnnotationEncryptionService.MASK_PATTERN) */
#define SETTINGS_MASK "*******"

/* What went wrong: the request (400), the tenant's current file (it cannot
 * be read or is not valid: the operator must look at it), or memory. */
enum settings_rc {
	SETTINGS_OK = 0, SETTINGS_BAD = -1, SETTINGS_CURRENT = -2, SETTINGS_NOMEM = -3
};

/* The settings list of a tenant file's text (one line, "\n"-ended,
 * malloc'd into *out). The file is checked with tenant_parse first (mode is
 * its st_mode); an invalid file is SETTINGS_CURRENT with the reason in err.
 * Settings the file does not set are left out, except request_ttl and
 * order_size_limit_bytes, which always have a value (their defaults, as in
 * REGARDS). */
int settings_export(const char *tenant, const char *path, const char *json, size_t len,
    unsigned mode, char **out, char *err, size_t errlen);

/* Merge a settings list (body) into the tenant file's text cur (NULL: the
 * tenant has no file yet) and return the new file text in *out (malloc'd).
 * Listed settings replace the file's, a null value removes one, the others
 * and unknown keys of the file stay as they are. SETTINGS_BAD, with a
 * one-line reason in err, when the body is not a list of {"name","value"}
 * objects, names an unknown setting (all of them are named) or twice the
 * same, or when the result fails tenant_parse as a file of mode 0600.
 * order_command runs as the service's user: a new value must be one of the
 * ':'-separated paths in commands (NULL or "": none may be set this way;
 * the current value kept, or null, is always accepted).
 * Nothing is written. */
int settings_import(const char *tenant, const char *path, const char *cur, size_t curlen,
    const char *body, size_t bodylen, const char *commands, char **out, size_t *outlen,
    char *err, size_t errlen);

/* "<dir>/<tenant>.json" into path; -1 (EINVAL) when the name fails
 * tenant_name_ok or the path does not fit. */
int settings_path(const char *dir, const char *tenant, char *path, size_t n);

/* The file of a tenant, as tenant_load reads it (a regular file of at most
 * 1 MiB): 0 with *buf (malloc'd, free with settings_free_text), *len and
 * *mode; -1 and errno (ENOENT: no such tenant) with a reason in err. */
int settings_read(const char *dir, const char *tenant, char **buf, size_t *len,
    unsigned *mode, char *err, size_t errlen);

/* Replace the tenant's file atomically: a temporary file of mode 0600 in
 * the same directory, written and fsync'd, renamed over the file, then the
 * directory fsync'd. *created is 1 if there was no file before. 0, or -1
 * and errno with a reason in err (nothing changed). */
int settings_write(const char *dir, const char *tenant, const char *text, size_t len,
    int *created, char *err, size_t errlen);

/* Wipe (text may hold secrets) and free. */
void settings_free_text(char *text, size_t len);

#endif
