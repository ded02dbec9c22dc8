/* rsorder: REGARDS rs-order's protocol, for ferry-order-bridge's rs-order
 * backend (test/rs-order-protocol.md has every field with the REGARDS class
 * it comes from): the OrderRequestDtoEvent and OrderCancelRequestDtoEvent
 * ferry publishes, the OrderResponseDtoEvent it consumes, the paged
 * available-files listing it reads over REST as the order's user (HS512
 * JWT), and the download URLs it hands to ferry-fetch. */
#ifndef FERRY_RSORDER_H
#define FERRY_RSORDER_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "bus.h"
#include "tenant.h"

#define RSORDER_PKG "fr.cnes.regards.modules.order.amqp"
#define RSORDER_REQUEST_TYPE RSORDER_PKG ".input.OrderRequestDtoEvent"
#define RSORDER_CANCEL_TYPE RSORDER_PKG ".input.OrderCancelRequestDtoEvent"
#define RSORDER_RESPONSE_TYPE RSORDER_PKG ".output.OrderResponseDtoEvent"
#define RSORDER_QUEUE "ferry.rs-order.responses"

/* Exchanges (fanout, durable: REGARDS' "<namespace>.broadcast.<FQCN>") and
 * ferry's own durable queue on the response exchange. */
struct rsorder_names {
	const char *url;                 /* AMQP URL */
	const char *request_exchange, *cancel_exchange, *response_exchange, *queue;
};
/* From FERRY_RSORDER_AMQP_URL (else FERRY_AMQP_URL), FERRY_RSORDER_REQUEST_EXCHANGE,
 * FERRY_RSORDER_CANCEL_EXCHANGE, FERRY_RSORDER_RESPONSE_EXCHANGE, FERRY_RSORDER_QUEUE. */
void rsorder_names_from_env(struct rsorder_names *n);

/* One message to publish as REGARDS' AbstractPublisher does: headers
 * regards.tenant, regards.converter GSON, regards.type <FQCN>; JSON,
 * UTF-8, persistent, priority 1, timestamp, app_id REGARDS. */
struct rsorder_msg {
	struct bus_pub pub;
	const char *names[3], *values[3];
};
void rsorder_msg(struct rsorder_msg *m, const char *exchange, const char *type,
    const char *tenant, const char *body);

/* The OrderRequestDtoEvent of a GRANTED item, as rs-delivery builds it
 * (AutoOrderRequestClient): queries and filters as given, correlationId the
 * request's, user the order's, sizeLimitInBytes the tenant's
 * order_size_limit_bytes (left out when 0). malloc'd; NULL with a reason in
 * err when the item has no order.queries or order.user, or (errno EACCES,
 * "Unknown user : <user>") when the tenant's users do not list the user. */
char *rsorder_request_body(const cJSON *item, const tenant *t, char *err, size_t errlen);
/* {"correlationId":cid,"orderId":id}, malloc'd, NULL on ENOMEM */
char *rsorder_cancel_body(const char *cid, int64_t order_id);

/* An OrderResponseDtoEvent. Strings point into json. */
enum rsorder_status {
	RSORDER_GRANTED, RSORDER_DENIED, RSORDER_SUBORDER_DONE, RSORDER_DONE, RSORDER_FAILED,
};
struct rsorder_resp {
	cJSON *json;
	enum rsorder_status status;
	const char *status_name, *cid, *message, *error_type;
	int64_t order_id, suborders, sub_order_id, errors;    /* 0 when absent */
};
/* 0, or -1 when it is not an object with a correlationId and a known status. */
int rsorder_resp_parse(const char *body, size_t len, struct rsorder_resp *r);
void rsorder_resp_clear(struct rsorder_resp *r);
/* rs-delivery's DeliveryErrorType.convert of an order errorType (NULL and
 * unknown ones: INTERNAL_ERROR, ferry's ERROR responses always have one) */
const char *rsorder_error_type(const char *order_error_type);

/* The files of a finished order: every page of GET <url>/orders/<id>/files/
 * available (sort=id,asc, tenant's page_size) until a page has no "next"
 * link, made ferry files: productId, version, name (filename), url
 * (<url>/orders/files/<id>, rs-order's download), size (filesize), md5
 * (checksum), mimeType, rsOrderFileId, and user (whose JWT ferry-fetch
 * sends). */
enum rsorder_rc { RSORDER_OK = 0, RSORDER_TEMPORARY = -1, RSORDER_PERMANENT = -2 };
int rsorder_list_files(const tenant *t, const char *user, int64_t order_id, cJSON **files,
    int64_t *total, char *err, size_t errlen);

/* "Authorization: Bearer <JWT of user>" when url is under the tenant's
 * rs_order.url (ferry-fetch's downloads): 1 and *header (malloc'd, wipe
 * with jwt_free), 0 when it is not an rs-order URL, -1 (errno; EACCES:
 * the tenant's users do not list user, no token is signed). */
int rsorder_auth_header(const tenant *t, const char *url, const char *user, char **header);

#endif
