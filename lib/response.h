/* response: the JSON body of a DeliveryResponseDtoEvent (DESIGN §2) and the
 * outbox headers ferry-notify publishes it with. A body is valid UTF-8 JSON
 * of at most RESPONSE_MAX bytes, in rs-delivery's field order. */
#ifndef FERRY_RESPONSE_H
#define FERRY_RESPONSE_H

#include <cJSON.h>

/* RESPONSE_HEADER_MAX: the bytes of a header value copied from a request
 * into its responses (an AMQP shortstr's), whatever reached the journal:
 * a header can never grow past what a frame holds. */
enum { RESPONSE_MAX = 4096, RESPONSE_HEADER_MAX = 255 };

/* {"correlationId","status","errorType","message","url","md5"}: the order
 * Gson gives DeliveryResponseDto's fields; NULL arguments are omitted.
 * Invalid UTF-8 becomes U+FFFD. Too long: message is cut on a character
 * boundary (ending in "…"), then correlationId. malloc'd; NULL with errno
 * ENOMEM, or EMSGSIZE if status, url and md5 alone do not fit. */
char *response_body(const char *cid, const char *status, const char *message,
    const char *error_type, const char *url, const char *md5);

/* A DONE body: {"correlationId","status":"DONE","url","md5","downloadUrl"}.
 * downloadUrl (NULL = none) is ferry's extension, after rs-delivery's
 * fields (REGARDS clients ignore unknown fields). When the body with it
 * would exceed RESPONSE_MAX, it is left out whole (a cut URL is useless)
 * and *dropped is set to 1 (else 0; dropped may be NULL); the rest is as
 * response_body's. malloc'd; NULL with errno as response_body. */
char *response_body_done(const char *cid, const char *url, const char *md5,
    const char *download_url, int *dropped);

/* {"regards.tenant":tenant,"priority":N,"app_id":"..."} from the item's
 * "headers" (the request's AMQP priority and app_id); each omitted when
 * absent or unusable (priority not an integer 0..255, app_id not a
 * non-empty string). Invalid UTF-8 becomes U+FFFD, and tenant and app_id
 * are cut to RESPONSE_HEADER_MAX bytes on a character boundary. malloc'd;
 * NULL on ENOMEM. */
char *response_headers(const char *tenant, const cJSON *item_headers);

/* The url of a DONE, as rs-delivery builds it (DeliveryZipUploadService:
 * new URI("s3", bucket, "/" + key, null).toString()): "s3://" bucket "/"
 * key with java.net.URI's quoting of a path: ASCII letters, digits and
 * -_.!~*'() ,;:$&+= @ / kept, every other ASCII byte (space, %, ?, #, ...)
 * as %XX; a non-ASCII character kept as is unless it is a space character
 * (Unicode Zs, Zl, Zp) or a C1 control, then its UTF-8 bytes as %XX;
 * invalid UTF-8 bytes as %XX. Hex digits upper case. 0, or -1 with errno
 * ENAMETOOLONG when it does not fit in outlen bytes. */
int response_s3_url(const char *bucket, const char *key, char *out, size_t outlen);

/* How rs-delivery publishes a DeliveryResponseDtoEvent (the amqp-regards
 * starter's AbstractPublisher, JsonMessageConverters and
 * Gson2JsonMessageConverter): the headers regards.tenant, regards.converter
 * RESPONSE_CONVERTER (the subscriber's converter picks its decoder by it)
 * and regards.type RESPONSE_TYPE (the class it decodes into); app_id the
 * instance name (regards.instance.name, "REGARDS" by default); priority 1
 * (DEFAULT_PRIORITY, whatever the request's); content type
 * application/json, encoding UTF-8, persistent, a timestamp. No
 * correlation_id property: ferry adds one (REGARDS clients ignore it). */
#define RESPONSE_CONVERTER "GSON"
#define RESPONSE_TYPE "fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent"
#define RESPONSE_APP_ID "REGARDS"
struct response_props {
	const char *app_id;       /* FERRY_APP_ID */
	int priority;             /* FERRY_RESPONSE_PRIORITY: 0..255, or -1 for the request's */
	int correlation_id;       /* FERRY_RESPONSE_CORRELATION_ID: 1 send it, 0 not */
};
/* The properties from the environment, REGARDS's where unset or empty:
 * FERRY_APP_ID (1 to 255 printable ASCII bytes), FERRY_RESPONSE_PRIORITY
 * (an integer 0..255, or "request": the request's own priority, none if it
 * had none), FERRY_RESPONSE_CORRELATION_ID ("1" default, "0"). 0, or -1 and
 * why in err (a bad value: a configuration error). */
int response_props_from_env(struct response_props *p, char *err, size_t errlen);

/* The priority to publish a response with: p's, or the one in its outbox
 * headers (response_headers) when p says the request's. -1: none. */
int response_priority(const struct response_props *p, const cJSON *outbox_headers);

#endif
