/* ferry-catalog: create and fill a tenant's embedded catalog (lib/catalog)
 * and ask it what an order would get. Subcommands: init, add (NDJSON
 * products), scan (a directory tree, one product per subdirectory), query
 * (files as ferry-order-bridge puts them in items), list (products). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "catalog.h"
#include "err.h"
#include "item.h"
#include "md5.h"
#include "util.h"

static const char usage[] =
	"usage: ferry-catalog [-hv] [-c catalog] init\n"
	"       ferry-catalog [-hv] [-c catalog] add [file ...]\n"
	"       ferry-catalog [-hv] [-c catalog] scan [-d dataset] [-T dataType] [-t tag]... dir\n"
	"       ferry-catalog [-hv] [-c catalog] query [-d dataType]... [-r regexp] query ...\n"
	"       ferry-catalog [-hv] [-c catalog] list\n";

enum {
	ADD_BATCH = 1000,   /* products per transaction */
	SCAN_DEPTH = 64,    /* directory levels below a product */
};

/* the usage line of subcommand cmd (NULL: all of them), then exit 100 */
static void __attribute__((noreturn)) bad_usage(const char *cmd, const char *why)
{
	char key[32];
	const char *start = NULL, *end;
	if (why)
		err_log(ERR_FATAL, NULL, "%s", why);
	if (cmd) {
		snprintf(key, sizeof key, "[-c catalog] %s", cmd);
		start = strstr(usage, key);
	}
	if (!start) {
		optopt = 0;   /* why is said */
		args_usage(usage);
	}
	while (start > usage && start[-1] != '\n')
		start--;
	start += strspn(start, " ");
	if (strncmp(start, "usage: ", 7) == 0)
		start += 7;
	end = strchr(start, '\n');
	err_die(EXIT_PERM, "usage: %.*s", (int)(end - start), start);
}

static void write_item(const cJSON *o)
{
	if (!o)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	if (item_write(1, o) < 0)
		err_die(EXIT_TEMP, "unable to write stdout: %s", strerror(errno));
}

static catalog *open_catalog(const char *path, int create)
{
	catalog *c;
	char err[1024];
	if (!path || !*path)
		err_die(EXIT_PERM, "no catalog: give -c or set FERRY_CATALOG");
	if (catalog_open(path, create, &c, err, sizeof err) < 0)
		err_die(errno == EAGAIN ? EXIT_TEMP : EXIT_PERM, "%s", err);
	return c;
}

/* a catalog failure in the middle of work: 111 if it may pass */
static void __attribute__((noreturn)) die_catalog(catalog *c)
{
	err_die(catalog_temporary(c) ? EXIT_TEMP : EXIT_PERM, "%s", catalog_error(c));
}

/* --- init ------------------------------------------------------------- */

static int cmd_init(const char *path, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		bad_usage("init", "init takes no arguments");
	catalog_close(open_catalog(path, 1));
	err_info("catalog ready (schema version %d)", CATALOG_SCHEMA_VERSION);
	return 0;
}

/* --- add ---------------------------------------------------------------- */

struct adder {
	catalog *c;
	int in_batch;
	unsigned long added, bad;
};

static void add_one(struct adder *a, const char *name, unsigned long line, const cJSON *p)
{
	if (!a->in_batch && catalog_begin(a->c) < 0)
		die_catalog(a->c);
	a->in_batch = 1;
	if (catalog_add(a->c, p) == 0) {
		if (++a->added % ADD_BATCH == 0) {
			a->in_batch = 0;
			if (catalog_commit(a->c) < 0)
				die_catalog(a->c);
		}
		return;
	}
	if (catalog_temporary(a->c))
		die_catalog(a->c);     /* the open batch is rolled back; earlier ones stay */
	a->bad++;
	err_error("%s: line %lu: %s: skipped", name, line, catalog_error(a->c));
}

static void add_fd(struct adder *a, int fd, const char *name)
{
	item_reader *r = item_reader_new(fd);
	cJSON *p;
	int rc;
	if (!r)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	while ((rc = item_read(r, &p)) != ITEM_EOF) {
		if (rc == ITEM_IOERR && errno == EINTR)
			continue;
		if (rc == ITEM_IOERR)
			err_die(EXIT_TEMP, "unable to read %s: %s", name, strerror(errno));
		if (rc == ITEM_BAD) {
			a->bad++;
			err_error("%s: %s: skipped", name, item_reader_error(r));
			continue;
		}
		add_one(a, name, item_reader_line(r), p);
		cJSON_Delete(p);
	}
	item_reader_free(r);
}

static int cmd_add(const char *path, int argc, char **argv)
{
	catalog *c = open_catalog(path, 1);
	struct adder a = { c, 0, 0, 0 };
	if (argc == 1)
		add_fd(&a, 0, "stdin");
	for (int i = 1; i < argc; i++) {
		int fd = strcmp(argv[i], "-") ? open(argv[i], O_RDONLY | O_CLOEXEC) : 0;
		if (fd < 0) {
			a.bad++;
			err_error("unable to open %s: %s: skipped", argv[i], strerror(errno));
			continue;
		}
		add_fd(&a, fd, fd ? argv[i] : "stdin");
		if (fd)
			close(fd);
	}
	if (a.in_batch && catalog_commit(c) < 0)
		die_catalog(c);
	err_info("%lu products added, %lu skipped", a.added, a.bad);
	catalog_close(c);
	return a.bad ? EXIT_PERM : 0;
}

/* --- scan --------------------------------------------------------------- */

struct scan {
	catalog *c;
	const char *dataset, *data_type;
	cJSON *tags;
	unsigned long added, bad;
};

/* file:// + the absolute path, percent-encoded (RFC 8089, RFC 3986
 * unreserved characters and '/' kept) */
static char *file_url(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	char *url = malloc(7 + 3 * strlen(path) + 1), *o = url;
	if (!url)
		return NULL;
	o += sprintf(o, "file://");
	for (const unsigned char *s = (const unsigned char *)path; *s; s++) {
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    strchr("-._~/", *s)) {
			*o++ = (char)*s;
		} else {
			*o++ = '%';
			*o++ = hex[*s >> 4];
			*o++ = hex[*s & 15];
		}
	}
	*o = '\0';
	return url;
}

/* add {"dataType","name","url","size","md5"} for the regular file path */
static int scan_file(struct scan *s, cJSON *files, const char *path, const char *rel)
{
	char md5[33];
	uint64_t size;
	if (md5_file(path, md5, &size) < 0) {
		err_error("%s: %s: product skipped", path, strerror(errno));
		return -1;
	}
	char *url = file_url(path);
	cJSON *f = cJSON_CreateObject();
	int ok = url && f && cJSON_AddItemToArray(files, f) &&
	    cJSON_AddStringToObject(f, "dataType", s->data_type) &&
	    cJSON_AddStringToObject(f, "name", rel) && cJSON_AddStringToObject(f, "url", url) &&
	    cJSON_AddNumberToObject(f, "size", (double)size) && cJSON_AddStringToObject(f, "md5", md5);
	free(url);
	if (!ok)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	return 0;
}

static int scan_dir(struct scan *s, cJSON *files, const char *path, const char *rel, int depth);

/* one entry of a product directory; -1 spoils the product */
static int scan_entry(struct scan *s, cJSON *files, const char *dir, const char *rel,
    const char *name, int depth)
{
	char path[PATH_MAX], sub[PATH_MAX];
	struct stat lst, st;
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
	    (size_t)snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", name) >= sizeof sub) {
		err_error("%s/%s: path too long: product skipped", dir, name);
		return -1;
	}
	if (!util_utf8_valid(name, strlen(name))) {
		err_warn("%s: name is not UTF-8: skipped", path);
		return 0;
	}
	if (lstat(path, &lst) < 0 || stat(path, &st) < 0) {
		err_error("%s: %s: product skipped", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode) && S_ISLNK(lst.st_mode)) {
		err_warn("%s: symbolic link to a directory: not followed", path);
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return scan_dir(s, files, path, sub, depth + 1);
	if (!S_ISREG(st.st_mode)) {
		err_warn("%s: not a regular file: skipped", path);
		return 0;
	}
	return scan_file(s, files, path, sub);
}

static int no_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

static int scan_dir(struct scan *s, cJSON *files, const char *path, const char *rel, int depth)
{
	struct dirent **names;
	int n, rc = 0;
	if (depth > SCAN_DEPTH) {
		err_error("%s: more than %d levels deep: product skipped", path, SCAN_DEPTH);
		return -1;
	}
	if ((n = scandir(path, &names, no_dots, alphasort)) < 0) {
		err_error("%s: %s: product skipped", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (rc == 0)
			rc = scan_entry(s, files, path, rel, names[i]->d_name, depth);
		free(names[i]);
	}
	free(names);
	return rc;
}

/* the product of directory path, named name */
static void scan_product(struct scan *s, const char *path, const char *name)
{
	cJSON *p = cJSON_CreateObject(), *files;
	if (!p || !cJSON_AddStringToObject(p, "productId", name) ||
	    !cJSON_AddNumberToObject(p, "version", 1) ||
	    (s->dataset && !cJSON_AddStringToObject(p, "dataset", s->dataset)) ||
	    !cJSON_AddItemToObject(p, "tags", cJSON_Duplicate(s->tags, 1)) ||
	    !(files = cJSON_AddArrayToObject(p, "files")))
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	if (scan_dir(s, files, path, "", 0) < 0) {
		s->bad++;
	} else if (catalog_add(s->c, p) < 0) {
		if (catalog_temporary(s->c))
			die_catalog(s->c);
		s->bad++;
		err_error("%s: %s: skipped", path, catalog_error(s->c));
	} else {
		s->added++;
		err_info("%s: product %s, %d files", path, name, cJSON_GetArraySize(files));
	}
	cJSON_Delete(p);
}

static void scan_top(struct scan *s, const char *root, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	if ((size_t)snprintf(path, sizeof path, "%s/%s", root, name) >= sizeof path) {
		s->bad++;
		err_error("%s/%s: path too long: skipped", root, name);
	} else if (lstat(path, &st) < 0) {
		s->bad++;
		err_error("%s: %s: skipped", path, strerror(errno));
	} else if (!S_ISDIR(st.st_mode)) {
		err_warn("%s: not a product directory: skipped", path);
	} else if (!util_utf8_valid(name, strlen(name))) {
		s->bad++;
		err_error("%s: name is not UTF-8: product skipped", path);
	} else {
		scan_product(s, path, name);
	}
}

static int cmd_scan(const char *path, int argc, char **argv)
{
	struct scan s = { NULL, NULL, "RAWDATA", cJSON_CreateArray(), 0, 0 };
	int ch;
	if (!s.tags)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	while ((ch = getopt(argc, argv, "+d:t:T:")) != -1) {
		switch (ch) {
		case 'd': s.dataset = optarg; break;
		case 'T': s.data_type = optarg; break;
		case 't':
			if (!*optarg)
				bad_usage("scan", "-t: a tag cannot be empty");
			cJSON_AddItemToArray(s.tags, cJSON_CreateString(optarg));
			break;
		default: bad_usage("scan", args_bad_option());
		}
	}
	if (argc - optind != 1)
		bad_usage("scan", "scan takes one directory");
	if (!*s.data_type)
		bad_usage("scan", "-T: a dataType cannot be empty");
	char root[PATH_MAX];
	struct dirent **names;
	int n;
	if (!realpath(argv[optind], root) || (n = scandir(root, &names, no_dots, alphasort)) < 0)
		err_die(EXIT_PERM, "unable to scan %s: %s", argv[optind], strerror(errno));
	s.c = open_catalog(path, 1);
	for (int i = 0; i < n; i++) {
		scan_top(&s, root, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	cJSON_Delete(s.tags);
	catalog_close(s.c);
	err_info("%lu products added, %lu skipped", s.added, s.bad);
	return s.bad ? EXIT_PERM : 0;
}

/* --- query, list -------------------------------------------------------- */

struct printer {
	catalog_filter *filter;
	unsigned long printed;
};

static int print_file(void *arg, const struct catalog_file *f)
{
	struct printer *p = arg;
	int keep = catalog_filter_match(p->filter, f);
	if (keep < 0)
		err_die(errno == ENOMEM ? EXIT_TEMP : EXIT_PERM, "file %s of %s: filenameRegExp: %s",
		    f->name, f->product_id, errno == E2BIG ? "match limit reached" :
		    errno == ETIME ? "time budget used up" : strerror(errno));
	if (keep) {
		cJSON *o = catalog_file_json(f);
		write_item(o);
		cJSON_Delete(o);
		p->printed++;
	}
	return 0;
}

static int cmd_query(const char *path, int argc, char **argv)
{
	const char **types = calloc((size_t)argc, sizeof *types), *re = NULL;
	size_t ntypes = 0;
	int ch;
	char err[512];
	if (!types)
		err_die(EXIT_TEMP, "%s", strerror(ENOMEM));
	while ((ch = getopt(argc, argv, "+d:r:")) != -1) {
		switch (ch) {
		case 'd': types[ntypes++] = optarg; break;
		case 'r': re = optarg; break;
		default: bad_usage("query", args_bad_option());
		}
	}
	if (optind == argc)
		bad_usage("query", "query needs at least one query");
	struct printer p = { NULL, 0 };
	if (catalog_filter_new(types, ntypes, re, &p.filter, err, sizeof err) < 0)
		err_die(errno == ENOMEM ? EXIT_TEMP : EXIT_PERM, "-r %s: %s", re, err);
	catalog *c = open_catalog(path, 0);
	if (catalog_resolve(c, (const char *const *)argv + optind, (size_t)(argc - optind),
	    print_file, &p) < 0)
		die_catalog(c);
	err_info("%lu files", p.printed);
	catalog_close(c);
	catalog_filter_free(p.filter);
	free(types);
	return p.printed ? 0 : EXIT_NO;
}

static int print_product(void *arg, const cJSON *product)
{
	(void)arg;
	write_item(product);
	return 0;
}

static int cmd_list(const char *path, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		bad_usage("list", "list takes no arguments");
	catalog *c = open_catalog(path, 0);
	if (catalog_list(c, print_product, NULL) < 0)
		die_catalog(c);
	catalog_close(c);
	return 0;
}

/* --- main --------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*run)(const char *catalog, int, char **);
} cmds[] = {
	{ "init", cmd_init }, { "add", cmd_add }, { "scan", cmd_scan },
	{ "query", cmd_query }, { "list", cmd_list },
};

int main(int argc, char **argv)
{
	const char *path = util_env("FERRY_CATALOG", NULL);
	char err[300];
	int ch;

	err_init("ferry-catalog");
	args_init(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt(argc, argv, "+hvc:")) != -1) {
		switch (ch) {
		case 'h': fputs(usage, stdout); return 0;
		case 'v': err_verbose(1); break;
		case 'c': path = optarg; break;
		default: bad_usage(NULL, args_bad_option());
		}
	}
	if (optind == argc)
		bad_usage(NULL, "no subcommand");
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[optind], cmds[i].name) == 0) {
			argv += optind;
			argc -= optind;
			optind = 1;
			return cmds[i].run(path, argc, argv);
		}
	snprintf(err, sizeof err, "%.200s: unknown subcommand", argv[optind]);
	bad_usage(NULL, err);
}
