/* item: the NDJSON items that travel on the pipes (DESIGN §3). One JSON
 * object per line, any length (a 10,000-file order is megabytes); a line
 * that is not a JSON object is reported and skipped, never fatal. */
#ifndef FERRY_ITEM_H
#define FERRY_ITEM_H

#include <stddef.h>
#include <cJSON.h>

typedef struct item_reader item_reader;

enum item_rc {
	ITEM_OK = 1,       /* *out holds an object; caller cJSON_Delete()s it */
	ITEM_EOF = 0,      /* end of input (a last line without \n is still read) */
	ITEM_BAD = -1,     /* malformed line skipped; item_reader_error() says why */
	ITEM_IOERR = -2,   /* read error (errno set); EINTR is returned as this too */
};

item_reader *item_reader_new(int fd);       /* NULL on ENOMEM */
void item_reader_free(item_reader *r);
/* refuse lines longer than max bytes (0 = no limit, the default); such a
 * line is consumed to its end and reported as ITEM_BAD */
void item_reader_max(item_reader *r, size_t max);
int item_read(item_reader *r, cJSON **out);
/* 1 if a whole line is already buffered, so item_read() will not block */
int item_buffered(const item_reader *r);
/* the reason of the last ITEM_BAD, and the 1-based line number read last */
const char *item_reader_error(const item_reader *r);
unsigned long item_reader_line(const item_reader *r);

/* parse one line (no newline needed); NULL and a reason in err if it is
 * not a JSON object */
cJSON *item_parse(const char *buf, size_t len, char *err, size_t errlen);

/* write obj as one line + "\n" to fd with one checked write; 0 or -1/errno */
int item_write(int fd, const cJSON *obj);
/* write n printed items, each + "\n", with as few writes as it takes
 * (writev); 0 or -1/errno */
int item_write_lines(int fd, char *const *lines, int n);
/* obj as one line (no newline), malloc'd; NULL on ENOMEM */
char *item_print(const cJSON *obj);

/* accessors tolerant of absent/mistyped fields: NULL / dflt when missing */
const char *item_str(const cJSON *obj, const char *key);
double item_num(const cJSON *obj, const char *key, double dflt);
/* obj's key as a whole number a double holds exactly (|n| < 2^53) into
 * *out: 0, or -1 when it is absent, not a number or not whole */
int item_int(const cJSON *obj, const char *key, int64_t *out);

/* "tenant/correlationId" for messages, into buf; "?" for what is missing */
const char *item_label(const cJSON *item, char *buf, size_t len);

/* BLAKE2b-256 of the canonical (unformatted) print of the request body,
 * hex; identical bodies give identical fingerprints. 0 or -1 (ENOMEM). */
int item_fingerprint(const cJSON *request, char hex[65]);

#endif
