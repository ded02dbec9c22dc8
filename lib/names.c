/* names: safe relative names and the zip layout of DESIGN §6 (see names.h).
 * A name from a catalog or an order command is never trusted as a path. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "names.h"
#include "util.h"

enum { NAME_MAX_BYTES = 1024 };

static int bad_byte(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == '\\';
}

int names_safe(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > NAME_MAX_BYTES || name[0] == '/' || !util_utf8_valid(name, n))
		return 0;
	const char *comp = name;
	for (const char *p = name;; p++) {
		if (*p && bad_byte((unsigned char)*p))
			return 0;
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - comp);
			if (len == 0 || (len == 1 && comp[0] == '.') ||
			    (len == 2 && comp[0] == '.' && comp[1] == '.'))
				return 0;
			if (!*p)
				return 1;
			comp = p + 1;
		}
	}
}

/* Append one component (len bytes at c) to out, cleaned; skips ".", "..". */
static int put_component(const char *c, size_t len, char *out, size_t cap, size_t *n)
{
	if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return 0;
	if (*n > 0) {
		if (*n + 1 >= cap)
			return -1;
		out[(*n)++] = '/';
	}
	size_t i = 0;
	while (i < len) {
		unsigned char b = (unsigned char)c[i];
		size_t seq = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 :
		    (b & 0xF8) == 0xF0 ? 4 : 0;
		if (seq > 1 && i + seq <= len && util_utf8_valid(c + i, seq)) {
			if (*n + seq >= cap)
				return -1;
			memcpy(out + *n, c + i, seq);
			*n += seq;
			i += seq;
			continue;
		}
		if (*n + 1 >= cap)
			return -1;
		out[(*n)++] = (seq == 1 && !bad_byte(b)) ? (char)b : '_';
		i++;
	}
	return 0;
}

int names_sanitize(const char *name, char *out, size_t len)
{
	size_t n = 0;
	const char *comp = name;
	if (len == 0)
		return -1;
	for (const char *p = name;; p++) {
		if (*p == '/' || *p == '\\' || *p == '\0') {
			if (put_component(comp, (size_t)(p - comp), out, len, &n) < 0) {
				errno = ENAMETOOLONG;
				return -1;
			}
			if (!*p)
				break;
			comp = p + 1;
		}
	}
	out[n] = '\0';
	if (n == 0 || n > NAME_MAX_BYTES) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int names_entry(const char *product_id, int64_t version, const char *name, char *out, size_t len)
{
	char prefix[512], raw[600], clean_name[NAME_MAX_BYTES + 1];
	snprintf(raw, sizeof raw, "%s_%" PRId64, product_id, version);
	/* the product part is one component: a '/' in a productId is not a directory */
	for (char *p = raw; *p; p++)
		if (*p == '/')
			*p = '_';
	if (names_sanitize(raw, prefix, sizeof prefix) < 0 ||
	    names_sanitize(name, clean_name, sizeof clean_name) < 0)
		return -1;
	if ((size_t)snprintf(out, len, "%s/%s", prefix, clean_name) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int names_zip(int single, const char *product_id, int64_t version, const char *cid,
    char *out, size_t len)
{
	char raw[512];
	if (single)
		snprintf(raw, sizeof raw, "%s_%" PRId64, product_id, version);
	else
		snprintf(raw, sizeof raw, "delivery-%s", cid);
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)raw; *p && n < 200; p++) {
		int ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';
		raw[n++] = ok ? (char)*p : '_';
	}
	raw[n] = '\0';
	/* a name of dots only would be "." or ".." before the extension */
	if (strspn(raw, ".") == n)
		raw[0] = '_';
	if ((size_t)snprintf(out, len, "%s.zip", raw) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
