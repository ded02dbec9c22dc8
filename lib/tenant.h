/* tenant: load and validate $FERRY_TENANTS/<tenant>.json (DESIGN §5).
 * Unknown keys are warnings; wrong types, bad values, two order backends, or
 * a secret in a file readable by group/others make the tenant unusable. */
#ifndef FERRY_TENANT_H
#define FERRY_TENANT_H

#include <stddef.h>
#include <stdint.h>

enum tenant_compression { TENANT_COMP_AUTO, TENANT_COMP_STORE, TENANT_COMP_DEFLATE };

struct tenant_s3 {
	char *scheme;          /* "http" | "https" */
	char *host;
	int port;              /* 1..65535; default 443 for https, 80 for http */
	char *region;          /* default "us-east-1" */
	char *key;             /* secret material: wiped on free, never logged */
	char *secret;
};

/* rs-order, the REGARDS order service, as order backend (ferry-order-bridge(1)) */
struct tenant_rsorder {
	char *url;             /* base URL of rs-order's REST API, no trailing '/' */
	char *jwt_secret;      /* HS512 key (jwt_secret, or read from jwt_secret_file):
	                          secret material, wiped on free, never logged */
	char *role;            /* the JWT's role; default "REGISTERED_USER" */
	int token_ttl_seconds; /* the JWT's lifetime, 60..86400; default 7200 */
	int page_size;         /* available-files page size, 1..2000; default 100 */
};

/* rs-admin, the REGARDS administration service, as the judge of who may
 * order (rs-delivery's UserVerifyService): GET <url>/users/email/<user>
 * with a system JWT; 200 belongs, 404 does not (lib/rsadmin.h). */
struct tenant_rsadmin {
	char *url;             /* base URL of rs-admin's REST API, no trailing '/' */
	char *jwt_secret;      /* HS512 key (jwt_secret, or read from jwt_secret_file):
	                          secret material, wiped on free, never logged */
	int timeout_seconds;   /* one lookup's whole time, 1..30; default 3 */
	int cache_seconds;     /* answers kept, 0..3600; default 300 (REGARDS) */
};

typedef struct tenant {
	char *name;
	char *path;                        /* the file it was loaded from */
	double request_ttl_hours;          /* > 0, hours; default 12 (REGARDS) */
	uint64_t order_size_limit_bytes;   /* 0 = unlimited; default 5368709120 (REGARDS) */
	int has_s3;                        /* s3_server given (needed by s3-put only) */
	struct tenant_s3 s3;
	int has_source_s3;                 /* source_s3_server given (s3:// sources) */
	struct tenant_s3 source_s3;
	char *delivery_bucket;             /* may be NULL when no s3_server */
	char **users;                      /* who may order: none = nobody, ["*"] = anyone */
	size_t nusers;
	int has_rs_admin;                  /* rs_admin given: also who rs-admin knows */
	struct tenant_rsadmin rs_admin;
	char *catalog;                     /* order backends: at most one set */
	char *order_command;
	char *order_backend;               /* as given: "catalog", "order_command", "rs-order" */
	int has_rs_order;                  /* rs_order given: the rs-order backend */
	struct tenant_rsorder rs_order;
	uint64_t max_suborders;            /* 0 = unlimited */
	uint64_t suborder_max_bytes;       /* default 104857600 */
	uint64_t suborder_max_files;       /* default 5000 */
	char **file_roots;                 /* absolute paths */
	size_t nfile_roots;
	char **allowed_hosts;              /* http(s) sources: none = no host, ["*"] = any */
	size_t nallowed_hosts;
	char **source_buckets;             /* s3:// sources: none = no bucket, ["*"] = any */
	size_t nsource_buckets;
	enum tenant_compression compression;
	uint64_t multipart_part_size;      /* >= 5 MiB; default 16 MiB */
	uint64_t multipart_threshold;      /* bigger zips go multipart; 0 (default): the part size */
	int upload_parallel;               /* 1..64; default 4 */
	int presign_ttl_seconds;           /* DONE's downloadUrl lifetime, 1..604800;
	                                      0 (default) = no downloadUrl */
} tenant;

/* A secret value (an S3 key or secret, ...) may be given as TENANT_SEALED
 * and the base64 of a libsodium sealed box (crypto_box_seal) made for the
 * seal key, read from $FERRY_SEAL_KEY, else TENANT_SEAL_KEY: one line, the
 * 32-byte X25519 secret key in base64, a regular file only its owner may
 * read (ferry-seal(1) makes both). A file whose secrets are all sealed may
 * be readable by group and others. */
#define TENANT_SEALED "sealed:"
#define TENANT_SEAL_KEY "/etc/ferry/seal.key"

/* $FERRY_SEAL_KEY if set and not empty, else TENANT_SEAL_KEY */
const char *tenant_seal_key_path(void);
/* Read the seal key file: 0 with the key pair, or -1 with a one-line reason
 * naming the file in err (never the key). */
int tenant_seal_key(const char *file, unsigned char pk[32], unsigned char sk[32],
    char *err, size_t errlen);

/* Called once per unknown key (key is the dotted path, e.g. "s3_server.foo"). */
typedef void tenant_warn_fn(void *arg, const char *file, const char *key);

/* 1 if name matches [A-Za-z0-9_.-]{1,64} and is not "." or ".." */
int tenant_name_ok(const char *name);

/* The tenants of dir: the name of each <name>.json whose name passes
 * tenant_name_ok, sorted (strcmp), into *names (malloc'd, each name too;
 * free with tenant_names_free) and *n. 0, or -1 with a one-line reason
 * naming dir in err. */
int tenant_names(const char *dir, char ***names, size_t *n, char *err, size_t errlen);
void tenant_names_free(char **names, size_t n);
/* Load <dir>/<name>.json. 0 and *out, or -1 with a one-line reason in err
 * naming the file and the key ("tenants/p1.json: request_ttl: must be a
 * number"). ENOENT is reported as "no configuration". */
int tenant_load(const char *dir, const char *name, tenant **out,
    tenant_warn_fn *warn, void *warnarg, char *err, size_t errlen);
/* Same, from a JSON text (path is only used in messages, mode is the
 * file's st_mode for the secret-permission rule). */
int tenant_parse(const char *name, const char *path, const char *json, size_t len,
    unsigned mode, tenant **out, tenant_warn_fn *warn, void *warnarg,
    char *err, size_t errlen);
void tenant_free(tenant *t);

/* The S3 server s3:// sources are read from: source_s3_server, else
 * s3_server, else NULL. */
const struct tenant_s3 *tenant_source_s3(const tenant *t);

/* The access lists (users, allowed_hosts, source_buckets): absent or []
 * allows nothing, [TENANT_ANY] anything; TENANT_ANY among other entries
 * makes the tenant unusable, and so does users [TENANT_ANY] with rs_order
 * (ferry signs rs-order tokens only for users it knows) or with rs_admin
 * (there would be nothing to ask). */
#define TENANT_ANY "*"
/* 1 if list (n entries) is [TENANT_ANY] */
int tenant_any(char *const *list, size_t n);
/* 1 if user may order for this tenant by its users list alone (a tenant
 * with rs_admin also lets order whom rs-admin knows: lib/rsadmin.h) */
int tenant_user_allowed(const tenant *t, const char *user);

/* The i-th top-level key tenant_parse knows, in its table's order, or NULL
 * past the last (for lib/settings' drift test). */
const char *tenant_key(size_t i);

#endif
