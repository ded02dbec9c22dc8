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

#endif
