/* md5: MD5 via OpenSSL libcrypto EVP (libsodium has none), streaming and
 * whole-file, with case-insensitive comparison of hex digests. */
#ifndef FERRY_MD5_H
#define FERRY_MD5_H

#include <stddef.h>
#include <stdint.h>

typedef struct md5 md5;

md5 *md5_new(void);                                 /* NULL on ENOMEM */
void md5_free(md5 *m);
void md5_reset(md5 *m);
void md5_update(md5 *m, const void *buf, size_t len);
void md5_final_hex(md5 *m, char hex[33]);            /* lowercase; resets m */
void md5_final_raw(md5 *m, unsigned char raw[16]);   /* resets m */

/* md5 of a whole file, read in large chunks; size in *size if non-NULL.
 * 0, or -1 with errno. */
int md5_file(const char *path, char hex[33], uint64_t *size);
/* md5 of a buffer */
void md5_buf(const void *buf, size_t len, char hex[33]);
/* 1 if a and b are the same 32-hex-digit digest, case-insensitively */
int md5_equal(const char *a, const char *b);

#endif
