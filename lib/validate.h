/* validate: the verdict on a delivery request body (DESIGN §2), worded as
 * rs-delivery words it: "[Code] message at field: rejected value [v].",
 * joined with ", ". Pure functions: no I/O, no globals. Also the Java-style
 * filenameRegExp (PCRE2, whole-name match) for the stages that apply it. */
#ifndef FERRY_VALIDATE_H
#define FERRY_VALIDATE_H

#include <stddef.h>
#include <cJSON.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "tenant.h"

/* a message never exceeds this (bytes, NUL included); errors that do not
 * fit whole are counted in a final "(N more errors)" */
enum { VALIDATE_MESSAGE_MAX = 4096 };

struct validation {
	int denied;                        /* 0 GRANTED, 1 DENIED */
	const char *error_type;            /* "FORBIDDEN", "INVALID_CONTENT"; NULL if granted */
	unsigned nforbidden, ncontent;     /* errors found of each kind */
	char message[VALIDATE_MESSAGE_MAX]; /* "" if granted; valid UTF-8 */
};

/* Judge body (the request object as received; the caller has checked it is
 * an object with a string correlationId). tenant_name names the tenant in
 * the message; t is its configuration, or NULL when the tenant is unusable
 * (then the request is FORBIDDEN; why is the caller's to log). FORBIDDEN
 * errors come first in the message and win the errorType.
 * 0 and *out filled; -1 (errno ENOMEM) when memory ran out: no verdict
 * (retry later), though *out then says DENIED INTERNAL_ERROR to be safe. */
int validate_request(const cJSON *body, const char *tenant_name, const tenant *t,
    struct validation *out);

/* The same, known_user saying whether rs-admin knows order.user (the
 * caller asked it: lib/rsadmin.h); a user the tenant's users list names is
 * known either way. */
int validate_request_known(const cJSON *body, const char *tenant_name, const tenant *t,
    int known_user, struct validation *out);

/* Length of s as Java's String.length() counts it: UTF-16 code units (a
 * character outside the BMP counts 2, an invalid byte counts 1). */
size_t validate_java_length(const char *s);

/* 1 if s is blank as Hibernate Validator's @NotBlank sees it (String.trim():
 * empty or only characters <= U+0020) */
int validate_blank(const char *s);

/* Bounds on matching one name, in a match context made with the regexp:
 * PCRE2's match limit (backtracking steps), depth limit and heap limit
 * (KiB). A whole-name pattern a user means needs at most a few thousand
 * steps on a file name; (.*){6}[^\s\S] on 34 characters needs 4.5 million
 * (0.13 s with PCRE2's defaults): it stops at the limit, in about 3 ms. */
enum {
	VALIDATE_MATCH_LIMIT = 100000,
	VALIDATE_DEPTH_LIMIT = 10000,
	VALIDATE_HEAP_LIMIT_KIB = 8192,
};

/* A filenameRegExp compiled once, with its match context and match data. */
typedef struct validate_regexp validate_regexp;

/* Compile a filenameRegExp as Java's Pattern.compile would take it, for a
 * whole-name match (String.matches). 0 and *out (validate_regexp_free()
 * it), or -1 with "reason at offset N" in err (errno EINVAL, or ENOMEM). */
int validate_regexp_compile(const char *re, validate_regexp **out, char *err, size_t errlen);

/* 1 if the whole name matches, 0 if not, -1 on error: ENOMEM, or E2BIG
 * when the name needs more than the limits above (never a silent "no
 * match"). Invalid UTF-8 in name is matched as U+FFFD, as Java would
 * decode it. */
int validate_regexp_match(validate_regexp *re, const char *name);

void validate_regexp_free(validate_regexp *re);

#endif
