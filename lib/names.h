/* names: file and archive names that are safe to write (DESIGN §6): no "..",
 * no absolute paths, no NUL or control characters, valid UTF-8; and the zip
 * layout: entries <productId>_<version>/<name>, zip <productId>_<version>.zip
 * for one product, else delivery-<correlationId>.zip. */
#ifndef FERRY_NAMES_H
#define FERRY_NAMES_H

#include <stddef.h>
#include <stdint.h>

/* 1 if name (a relative path, '/' allowed between components) is safe as it
 * is: non-empty, valid UTF-8, no control characters (< 0x20, 0x7f), no
 * backslash, no empty, "." or ".." component, not absolute, at most 1024
 * bytes. */
int names_safe(const char *name);
/* A safe version of name into out (control chars and '\\' -> '_', "." and
 * ".." components dropped, leading '/' dropped, invalid UTF-8 -> '_');
 * 0, or -1 when nothing usable is left or it does not fit. */
int names_sanitize(const char *name, char *out, size_t len);
/* "<productId>_<version>/<name>" (each part sanitized) */
int names_entry(const char *product_id, int64_t version, const char *name, char *out, size_t len);
/* the zip name: "<productId>_<version>.zip" when every file is of one
 * product (single = 1), else "delivery-<correlationId>.zip", sanitized to
 * [A-Za-z0-9._-] (other bytes -> '_') and at most 200 bytes. */
int names_zip(int single, const char *product_id, int64_t version, const char *cid,
    char *out, size_t len);

#endif
