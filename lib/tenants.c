/* tenants: per-process cache of tenant files, revalidated by stat(2) on
 * every lookup, or once per batch while held (see tenants.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tenants.h"

struct entry {
	char *name;
	tenant *t;            /* NULL when unusable */
	char why[512];
	int reported;
	struct stat st;       /* of the file when loaded; st_ino 0 = absent */
	unsigned checked;     /* the hold during which it was last checked */
	struct entry *next;
};

struct tenants {
	char *dir;
	tenant_warn_fn *warn;
	void *warnarg;
	struct entry *head;
	int held;
	unsigned hold;        /* which hold; entries start at 0, holds at 1 */
};

tenants *tenants_new(const char *dir, tenant_warn_fn *warn, void *warnarg)
{
	tenants *c = calloc(1, sizeof *c);
	if (!c || !(c->dir = strdup(dir))) {
		free(c);
		return NULL;
	}
	c->warn = warn;
	c->warnarg = warnarg;
	c->hold = 1;
	return c;
}

void tenants_free(tenants *c)
{
	if (!c)
		return;
	for (struct entry *e = c->head, *n; e; e = n) {
		n = e->next;
		tenant_free(e->t);
		free(e->name);
		free(e);
	}
	free(c->dir);
	free(c);
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_mode == b->st_mode;
}

static void load(tenants *c, struct entry *e)
{
	tenant_free(e->t);
	e->t = NULL;
	e->reported = 0;
	e->why[0] = '\0';
	if (tenant_load(c->dir, e->name, &e->t, c->warn, c->warnarg, e->why, sizeof e->why) < 0)
		e->t = NULL;
}

const tenant *tenants_get(tenants *c, const char *name, const char **why, int *fresh)
{
	struct entry *e;
	struct stat st;
	char path[4096];
	*fresh = 0;
	for (e = c->head; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			break;
	if (!e) {
		e = calloc(1, sizeof *e);
		if (!e || !(e->name = strdup(name))) {
			free(e);
			*why = "out of memory";
			return NULL;
		}
		e->next = c->head;
		c->head = e;
		e->st.st_ino = (ino_t)-1; /* force a first load */
	}
	if (c->held && e->checked == c->hold)
		goto found;
	e->checked = c->hold;
	memset(&st, 0, sizeof st);
	if (!tenant_name_ok(name) || snprintf(path, sizeof path, "%s/%s.json", c->dir, name) >=
	    (int)sizeof path || stat(path, &st) < 0)
		memset(&st, 0, sizeof st);
	if (!same_file(&st, &e->st)) {
		load(c, e);
		e->st = st;
	}
found:
	if (e->t)
		return e->t;
	*why = e->why;
	*fresh = !e->reported;
	e->reported = 1;
	return NULL;
}

void tenants_hold(tenants *c, int on)
{
	if (c->held && !on)
		c->hold++;
	c->held = on;
}
