/* workspace: where a request's fetched files and zip live while it is in
 * flight: $FERRY_WORKSPACE/<tenant>/<digest of correlationId>/ (DESIGN §6).
 * The digest keeps hostile correlationIds ("../x", 255 bytes) out of paths. */
#ifndef FERRY_WORKSPACE_H
#define FERRY_WORKSPACE_H

#include <stddef.h>

/* The request's directory (not created). The tenant name must pass
 * tenant_name_ok. 0, or -1 (EINVAL bad tenant, ENAMETOOLONG). */
int workspace_path(const char *root, const char *tenant, const char *cid, char *out, size_t len);
/* mkdir -p of the request's directory, mode 0700. 0 or -1/errno. */
int workspace_make(const char *dir);
/* rm -rf of the request's directory; absent is fine. 0 or -1/errno. */
int workspace_remove(const char *dir);

#endif
