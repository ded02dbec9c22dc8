/* s3: S3 over libcurl with SigV4 (CURLOPT_AWS_SIGV4), path-style URLs:
 * object key encoding, single PUT, multipart upload with parallel parts and
 * Content-MD5, abort, GET (for s3:// sources), HEAD. */
#ifndef FERRY_S3_H
#define FERRY_S3_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>

#include "tenant.h"

/* URI-encode an object key for the request path (SigV4 rules: unreserved
 * A-Za-z0-9-._~ kept, '/' kept, everything else %XX uppercase). 0, or -1 if
 * it does not fit. */
int s3_key_encode(const char *key, char *out, size_t len);
/* The same for a query-string value: '/' is encoded too. */
int s3_query_encode(const char *value, char *out, size_t len);

/* "http(s)://host:port/bucket/encoded-key[?query]"; the query must be
 * sorted by name and encoded already ("partNumber=2&uploadId=..."). */
int s3_url(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const char *query, char *out, size_t len);

/* Split "s3://bucket/key" into the bucket (copied) and the key (a pointer
 * into url, taken as it is). 0, or -1 (EINVAL) when it is not that shape. */
int s3_split_url(const char *url, char *bucket, size_t len, const char **key);

/* Set SigV4 signing on a curl handle for srv (CURLOPT_AWS_SIGV4
 * "aws:amz:<region>:s3", the key/secret as USERPWD) and the
 * x-amz-content-sha256 header (UNSIGNED-PAYLOAD unless payload_sha256 hex is
 * given) appended to *headers (caller frees with curl_slist_free_all).
 * 0 or -1 (ENOMEM). The secret goes only to libcurl. */
int s3_curl_auth(CURL *h, const struct tenant_s3 *srv, const char *payload_sha256,
    struct curl_slist **headers);

/* The text of the first <tag>...</tag> of an S3 XML answer, entities
 * decoded, into out (cut to fit). Its length, or -1 when absent. */
int s3_xml_value(const char *xml, size_t len, const char *tag, char *out, size_t outlen);

/* What became of a request. */
enum s3_class {
	S3_OK,
	S3_TEMPORARY,   /* 5xx, 408, 429, SlowDown, timeouts, refused: retry later */
	S3_PERMANENT,   /* other 4xx, bad URL, certificate, unreadable file */
	S3_MISMATCH,    /* the bytes are not the expected ones (md5, size, BadDigest) */
	S3_EXPIRED,     /* the deadline passed */
	S3_STOPPED,     /* the stop flag was set */
};

struct s3_status {
	enum s3_class cls;
	long http;              /* HTTP status; 0 = no answer */
	char code[64];          /* S3's error Code ("SignatureDoesNotMatch"), or "" */
	char message[512];      /* s3_classify: S3's error Message, or libcurl's
	                           reason; s3_get, s3_head: the whole line,
	                           "GetObject: 404 NoSuchKey: The specified key ..." */
};

/* Classify a finished request from libcurl's result (CURLE_*, with its error
 * text or NULL), the HTTP status and the answer's body (S3 error XML; a 200
 * holding an <Error> is an error too, as CompleteMultipartUpload may send). */
void s3_classify(int curl_code, const char *curl_text, long http, const char *body,
    size_t len, struct s3_status *st);
/* "403 SignatureDoesNotMatch: The request signature ..." or libcurl's reason */
const char *s3_status_text(const struct s3_status *st, char *buf, size_t len);
/* The wait before retry number attempt (1, 2, ...): 1 s, 2 s, 4 s ... 30 s. */
int64_t s3_backoff_ms(int attempt);

/* When to give up: a wall-clock deadline (0 = none) and a stop flag (may be
 * NULL) set by a signal handler; and hold_ms (wall clock, 0 = none): a
 * temporary failure whose next try would start after it ends the upload
 * S3_TEMPORARY, for the caller to try again later. */
struct s3_ctl {
	int64_t deadline_ms;
	volatile sig_atomic_t *stop;
	int64_t hold_ms;
};

/* GET bucket/key once (the caller retries S3_TEMPORARY), from byte `from`
 * on (a Range) when from > 0. The body of a 2xx answer goes to write, which
 * returns len to go on (anything else ends it: S3_PERMANENT). 0, or -1 and
 * st says why. */
typedef size_t s3_write_fn(void *arg, const void *buf, size_t len);
int s3_get(const struct tenant_s3 *srv, const char *bucket, const char *key, uint64_t from,
    s3_write_fn *write, void *arg, const struct s3_ctl *ctl, struct s3_status *st);
/* An ETag as ferry accepts one from a server (quotes taken off): 1 to
 * S3_ETAG_MAX printable ASCII characters, no space or quote. */
enum { S3_ETAG_MAX = 64, S3_ETAG_ROOM = 80 };
int s3_etag_ok(const char *etag);

/* The body of a CompleteMultipartUpload for parts 1..nparts with these
 * ETags, XML-escaped; malloc'd (the caller frees), NULL on ENOMEM. */
char *s3_complete_xml(const char (*etags)[S3_ETAG_ROOM], int nparts, size_t *len);

/* AWS's ETag of a multipart object, "<md5 of the parts' raw md5s>-<n>" */
void s3_multipart_etag(const unsigned char (*md5s)[16], int nparts, char out[S3_ETAG_ROOM]);

/* HEAD bucket/key once: its size, and its ETag without quotes (etag may be
 * NULL). 0, or -1 and st (404: st->http == 404). */
int s3_head(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const struct s3_ctl *ctl, uint64_t *size, char etag[S3_ETAG_ROOM], struct s3_status *st);

/* Upload a file as one object: a single PUT when it is no bigger than
 * threshold (0: the part size), else a multipart upload with `parallel` parts
 * in flight (memory: parallel x part size, capped). Content-MD5 on every request; the md5 of the whole
 * file is computed once, in order, while uploading and must equal md5 (else
 * the object is not kept: deleted, or the multipart upload aborted, and the
 * whole upload is tried again, up to 3 times). Temporary failures are
 * retried with capped exponential backoff until the deadline. */
typedef void s3_progress_fn(void *arg, int64_t done, int64_t total);
/* Bytes made on the fly rather than read from a file (ferry-pack -S's zip):
 * read gives the next bytes in order (0 at the end; -1: failed, error says
 * why, and the upload ends S3_PERMANENT with that reason, no retry);
 * rewind starts again from the first byte, for a retried request. */
struct s3_source {
	ssize_t (*read)(void *arg, void *buf, size_t len);
	int (*rewind)(void *arg);
	const char *(*error)(void *arg);
	/* optional: the md5 of every byte read since the last rewind, computed
	 * by the source (off the sending thread); NULL: computed here */
	void (*md5)(void *arg, char hex[33]);
	void *arg;
};
typedef void s3_note_fn(void *arg, const char *line);
/* Resumable multipart uploads: the upload tells its caller (ferry-s3-put:
 * the journal) the upload it created and each part S3 acknowledged, and the
 * next attempt, given them back, resumes that upload: the parts S3 still
 * lists (ListParts) with the same ETag and size are read again (for the
 * whole md5, and to see that their bytes are the same) but not sent. An
 * upload that fails for good, or expires, is aborted; one stopped or given
 * up for now (S3_STOPPED, S3_TEMPORARY) is kept for the next attempt. */
struct s3_resume_part {
	int num;
	uint64_t size;
	char md5[33];                 /* hex, as sent in Content-MD5 */
	char etag[S3_ETAG_ROOM];      /* as S3 answered, no quotes */
};
struct s3_resume {
	const char *upload_id;        /* an earlier attempt's upload, or NULL */
	uint64_t part_size;           /* its part size (another one: started anew) */
	const struct s3_resume_part *parts;   /* the parts it had acknowledged */
	int nparts;
	/* hooks, each may be NULL; a failing hook is a warning, not a failure */
	int (*created)(void *arg, const char *upload_id, uint64_t part_size);
	int (*part)(void *arg, const char *upload_id, const struct s3_resume_part *part);
	void (*ended)(void *arg, const char *upload_id);   /* completed or aborted */
	void *arg;
};

struct s3_upload {
	const struct tenant_s3 *srv;
	const char *bucket, *key;
	const char *path;             /* the file, or */
	const struct s3_source *source;   /* where the bytes come from */
	uint64_t size;                /* their expected size */
	const char *md5;              /* their expected md5, hex, any case; or NULL
	                                 when not known before: computed on the way,
	                                 a single PUT then goes without Content-MD5
	                                 and is checked against the ETag S3 returns */
	uint64_t part_size;           /* >= 5 MiB */
	uint64_t threshold;           /* single PUT up to this size (<= 5 GiB); 0: part_size */
	int parallel;                 /* parts in flight, >= 1 */
	struct s3_ctl ctl;
	s3_progress_fn *progress;     /* about once a second; may be NULL */
	s3_note_fn *note;             /* a retry worth a warning; may be NULL */
	void *arg;
	const struct s3_resume *resume;   /* NULL: an upload is never resumed */
};
struct s3_upload_result {
	enum s3_class cls;            /* S3_OK, or why not */
	char md5[33];                 /* md5 of the bytes uploaded (S3_OK: == md5) */
	int parts;                    /* 0: single PUT */
	int resumed;                  /* parts of an earlier attempt not sent again */
	int retries;                  /* requests sent again */
	char message[1024];           /* when not S3_OK: the failed operation and why */
};
/* Abort a multipart upload (one left by an attempt that will not resume
 * it); one S3 no longer knows counts as aborted. 0, or -1 and st says why. */
int s3_abort_upload(const struct tenant_s3 *srv, const char *bucket, const char *key,
    const char *upload_id, const struct s3_ctl *ctl, struct s3_status *st);
/* 0, or -1 with r->cls and r->message. */
int s3_upload_file(const struct s3_upload *u, struct s3_upload_result *r);

#endif
