/* bus: ferry's AMQP 0-9-1 side over librabbitmq — connect from a URL,
 * declare the REGARDS topology (DESIGN §2), consume with a prefetch window,
 * settle deliveries, publish with pipelined publisher confirms. */
#ifndef FERRY_BUS_H
#define FERRY_BUS_H

#include <stddef.h>
#include <stdint.h>

#define BUS_DEFAULT_URL "amqp://guest:guest@127.0.0.1:5672/regards.multitenant.manager"
#define BUS_REQUEST_EXCHANGE \
	"regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent"
#define BUS_RESPONSE_EXCHANGE \
	"regards.broadcast.fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent"
#define BUS_RESPONSE_ALIAS \
	"regards.broadcast.fr.cnes.regards.modules.ltamanager.amqp.output.DeliveryResponseDtoEvent"
#define BUS_REQUEST_QUEUE "ferry.delivery.requests"
#define BUS_DLX "regards.DLX"
#define BUS_DLQ "regards.DLQ"
#define BUS_RESPONSE_TYPE "fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent"

typedef struct bus bus;

/* Names of the topology; bus_names_from_env fills it from FERRY_* (§5). */
struct bus_names {
	const char *request_exchange, *request_queue, *response_exchange,
	    *response_alias, *dlx, *dlq;
};
void bus_names_from_env(struct bus_names *n);

/* 0 if url is an amqp:// URL this build can use, else -1 and why: a
 * configuration error, not worth retrying. */
int bus_url_check(const char *url, char *err, size_t errlen);

/* Connect and open channel 1. 0, or -1 with a reason (never the password). */
int bus_open(const char *url, bus **out, char *err, size_t errlen);
void bus_close(bus *b);
const char *bus_error(const bus *b);
int bus_fd(const bus *b);                 /* the socket, for poll(2) */

/* bus_open then bus_declare: a usable connection with the topology in
 * place, or NULL and why in err (nothing left open). */
bus *bus_connect(const char *url, const struct bus_names *n, char *err, size_t errlen);

/* Declare every exchange, queue and binding idempotently. */
int bus_declare(bus *b, const struct bus_names *n);

/* Declare a queue bound to exchange: named and durable, or, when name is
 * NULL or "", server-named, exclusive and auto-deleted (a client's private
 * response queue); its name is copied to out. 0 or -1. */
int bus_listen(bus *b, const char *name, const char *exchange, char *out, size_t outlen);

/* Consuming. */
struct bus_msg {
	uint64_t tag;
	int redelivered;
	char *body;                   /* NUL-terminated copy; len excludes the NUL */
	size_t len;
	char *tenant;                 /* header regards.tenant (string), or NULL */
	int has_priority, priority;
	char *app_id;                 /* property, or NULL */
	char *correlation_id;         /* property, or NULL */
};
void bus_msg_clear(struct bus_msg *m);
int bus_consume(bus *b, const char *queue, int prefetch);
/* Wait up to timeout_ms (0 = poll) for a delivery: 1 got one, 0 timeout,
 * -1 connection lost or channel closed (bus_error says why). */
int bus_next(bus *b, int timeout_ms, struct bus_msg *m);
int bus_ack(bus *b, uint64_t tag, int multiple);
int bus_reject(bus *b, uint64_t tag, int requeue);

/* Publishing with confirms. After bus_confirm_select, each publish gets the
 * next sequence number (1, 2, ...). */
struct bus_pub {
	const char *exchange, *routing_key;
	const char *body;
	size_t len;
	const char *correlation_id, *app_id, *content_type, *content_encoding;
	int persistent;
	int has_priority, priority;
	int64_t timestamp;            /* seconds; 0 = none */
	/* string headers: names[i] = values[i] */
	const char *const *hnames, *const *hvalues;
	size_t nheaders;
};
int bus_confirm_select(bus *b);
int bus_publish(bus *b, const struct bus_pub *p, uint64_t *seq);
/* Read broker confirms for up to timeout_ms; fn(seq, ok) is called for each
 * confirmed sequence number (a `multiple` ack is expanded). 0 or -1. */
typedef void bus_confirm_fn(void *arg, uint64_t seq, int ok);
int bus_confirms(bus *b, int timeout_ms, bus_confirm_fn *fn, void *arg);
uint64_t bus_unconfirmed(const bus *b);   /* published, not yet confirmed */

#endif
