/* tenants: a cache of tenant configurations for long-running stages. A file
 * is reloaded when its mtime, size or inode changes, so operators edit tenants
 * without a restart; a broken file is reported once per change, not per item. */
#ifndef FERRY_TENANTS_H
#define FERRY_TENANTS_H

#include "tenant.h"

typedef struct tenants tenants;

tenants *tenants_new(const char *dir, tenant_warn_fn *warn, void *warnarg);
void tenants_free(tenants *c);
/* The tenant, or NULL when it is unusable; then *why is the reason (owned
 * by the cache) and *fresh is 1 the first time this reason is returned for
 * the current version of the file (log it then). */
const tenant *tenants_get(tenants *c, const char *name, const char **why, int *fresh);
/* Between tenants_hold(c, 1) and tenants_hold(c, 0) (a batch of items),
 * each file is checked by the first lookup only: a change made during a
 * batch is seen by the next one. */
void tenants_hold(tenants *c, int on);

#endif
