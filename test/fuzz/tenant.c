/* fuzz tenant: the tenant configuration loader (lib/tenant: tenant_parse,
 * the whole of tenant_load but the file). Each input is parsed as a file of
 * mode 0600 and of mode 0644. Properties: one-line errors naming the file;
 * a loaded tenant's values are in their documented ranges; a file readable
 * by others loads only without secrets, and then as with 0600. */
#include "fuzz.h"
#include "tenant.h"

FUZZ_TARGET("tenant");

static const char path[] = "tenants/p1.json";

static void warned(void *arg, const char *file, const char *key)
{
	/* key may be "": {"":1} is JSON */
	FUZZ_CHECK(file && strcmp(file, path) == 0 && key);
	++*(int *)arg;
}

static void check_s3(const struct tenant_s3 *s)
{
	FUZZ_CHECK(s->scheme && (strcmp(s->scheme, "http") == 0 || strcmp(s->scheme, "https") == 0));
	FUZZ_CHECK(s->host && s->host[0] && s->region && s->region[0]);
	FUZZ_CHECK(s->key && s->key[0] && s->secret && s->secret[0]);
	FUZZ_CHECK(s->port >= 1 && s->port <= 65535);
}

static void check_tenant(const tenant *t)
{
	FUZZ_CHECK(strcmp(t->name, "p1") == 0 && strcmp(t->path, path) == 0);
	FUZZ_CHECK(t->request_ttl_hours > 0 && t->request_ttl_hours <= 876000);
	if (t->has_s3)
		check_s3(&t->s3);
	if (t->has_source_s3)
		check_s3(&t->source_s3);
	FUZZ_CHECK(tenant_source_s3(t) == (t->has_source_s3 ? &t->source_s3 :
	    t->has_s3 ? &t->s3 : NULL));
	FUZZ_CHECK(!(t->catalog && t->order_command));
	FUZZ_CHECK(!t->catalog || t->catalog[0]);
	FUZZ_CHECK(!t->order_command || t->order_command[0]);
	FUZZ_CHECK(t->suborder_max_bytes >= 1 && t->suborder_max_files >= 1);
	FUZZ_CHECK(t->multipart_part_size >= 5242880 && t->multipart_part_size <= 5368709120);
	FUZZ_CHECK(t->multipart_threshold <= 5368709120);
	FUZZ_CHECK(t->upload_parallel >= 1 && t->upload_parallel <= 64);
	FUZZ_CHECK(t->presign_ttl_seconds >= 0 && t->presign_ttl_seconds <= 604800);
	FUZZ_CHECK(t->compression == TENANT_COMP_AUTO || t->compression == TENANT_COMP_STORE ||
	    t->compression == TENANT_COMP_DEFLATE);
	if (t->delivery_bucket) {
		size_t n = strlen(t->delivery_bucket);
		FUZZ_CHECK(n >= 3 && n <= 63 && !strstr(t->delivery_bucket, ".."));
	}
	for (size_t i = 0; i < t->nfile_roots; i++)
		FUZZ_CHECK(t->file_roots[i] && t->file_roots[i][0] == '/');
	FUZZ_CHECK(!t->file_roots || !t->file_roots[t->nfile_roots]);
	for (size_t i = 0; i < t->nallowed_hosts; i++)
		FUZZ_CHECK(t->allowed_hosts[i] && t->allowed_hosts[i][0]);
	FUZZ_CHECK(!t->users || !t->users[t->nusers]);
	for (size_t i = 0; i < t->nusers; i++)
		FUZZ_CHECK(tenant_user_allowed(t, t->users[i]));
	/* access lists: nothing unless named, anything only as ["*"] alone */
	FUZZ_CHECK(tenant_user_allowed(t, NULL) == tenant_any(t->users, t->nusers));
	FUZZ_CHECK(!t->has_rs_order || !tenant_any(t->users, t->nusers));
	char **lists[] = { t->users, t->allowed_hosts, t->source_buckets };
	size_t ns[] = { t->nusers, t->nallowed_hosts, t->nsource_buckets };
	for (size_t l = 0; l < 3; l++)
		for (size_t i = 0; i < ns[l]; i++)
			FUZZ_CHECK(strcmp(lists[l][i], TENANT_ANY) != 0 || ns[l] == 1);
}

static tenant *load(const uint8_t *data, size_t size, unsigned mode)
{
	char err[300];
	int warnings = 0;
	tenant *t = (tenant *)1;
	err[0] = '\0';
	int rc = tenant_parse("p1", path, (const char *)data, size, mode, &t, warned, &warnings,
	    err, sizeof err);
	FUZZ_CHECK((rc == 0) == (t != NULL));
	if (rc == 0) {
		check_tenant(t);
	} else {
		FUZZ_CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
		FUZZ_CHECK(!strchr(err, '\n'));
		FUZZ_CHECK(warnings >= 0);
	}
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy: the parser must not read past len */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	tenant *private = load(copy, size, 0100600);
	tenant *shared = load(copy, size, 0100644);
	if (shared) {
		FUZZ_CHECK(private != NULL);
		FUZZ_CHECK(!shared->s3.key && !shared->source_s3.key);
	}
	tenant_free(private);
	tenant_free(shared);
	free(copy);
	return 0;
}
