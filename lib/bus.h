/* bus: ferry's AMQP 0-9-1 side over librabbitmq — connect from a URL,
 * declare the REGARDS topology (DESIGN §2) and the scale-out route, consume
 * with a prefetch window, settle deliveries, publish with pipelined
 * publisher confirms, forward a consumed message unchanged. */
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
/* Scale-out: the owner exchange (direct) is the request queue's name plus
 * this suffix, an instance's queue the request queue's name plus "." and
 * the instance name, bound with the instance name as its key. (".route",
 * the x-consistent-hash exchange of earlier versions, is no longer used.) */
#define BUS_ROUTE_SUFFIX ".owner"
/* Header a forwarded message carries when the original was a broker
 * redelivery (that flag does not survive a republish). */
#define BUS_REDELIVERED_HEADER "ferry.redelivered"

typedef struct bus bus;

/* What bus_publish and bus_forward return when the message itself cannot
 * be sent as it is (a property over 255 bytes, properties and headers
 * over the connection's frame_max): nothing of it was sent, the channel
 * is still usable, bus_error says why. Sending it again cannot help. */
enum { BUS_REFUSED = -2 };
/* What bus_declare returns when the broker refuses to redeclare a queue
 * with other arguments (406 PRECONDITION_FAILED). */
enum { BUS_MISMATCH = -3 };

/* The request queue's topology (FERRY_TOPOLOGY): ferry's own quorum queue,
 * or the very queue rs-delivery consumes, declared as REGARDS's
 * RegardsAmqpAdmin.declareQueue declares a broadcast handler's queue: a
 * classic queue, x-max-priority 255, dead-lettering to regards.DLX with its
 * dedicated DLQ "<queue>.DLQ" as routing key. */
enum bus_topology { BUS_TOPOLOGY_FERRY, BUS_TOPOLOGY_REGARDS };
/* Where the tenants' messages are (FERRY_VHOST_MODE), REGARDS's
 * VirtualHostMode: all in the URL's vhost (SINGLE, the tenant in the
 * regards.tenant header), or each tenant in its own vhost (MULTI). */
enum bus_vhost_mode { BUS_VHOST_SINGLE, BUS_VHOST_MULTI };
/* RegardsAmqpAdmin.getSubscriptionQueueName for a ONE_PER_MICROSERVICE_TYPE
 * event: "regards.broadcast.<microservice type>.<handler class>" */
#define BUS_REGARDS_MICROSERVICE "rs-delivery"
#define BUS_REGARDS_HANDLER \
	"fr.cnes.regards.modules.delivery.service.submission.create.amqp.DeliveryRequestEventHandler"
#define BUS_REGARDS_MAX_PRIORITY 255   /* RegardsAmqpAdmin.MAX_PRIORITY */
/* RabbitVirtualHostAdmin.getVhostName: the prefix of a tenant's vhost */
#define BUS_VHOST_PREFIX "regards."

/* Names of the topology; bus_names_from_env fills it from FERRY_* (§5). */
struct bus_names {
	const char *request_exchange, *request_queue, *response_exchange,
	    *response_alias, *dlx, *dlq;
	const char *request_dlq;      /* the request queue's dead-letter routing key
	                                 and queue: dlq, or in regards mode its own */
	enum bus_topology topology;
	enum bus_vhost_mode vhost_mode;
	char queue_buf[256], dlq_buf[256];   /* the regards mode's names */
};
/* 0, or -1 and a one-line reason naming the variable in err (a bad
 * FERRY_TOPOLOGY, FERRY_VHOST_MODE or FERRY_REGARDS_MICROSERVICE):
 * a configuration error. */
int bus_names_from_env(struct bus_names *n, char *err, size_t errlen);

/* REGARDS's vhost of tenant in MULTI mode: BUS_VHOST_PREFIX and the
 * tenant's name in lower case (RabbitVirtualHostAdmin.getVhostName). 0, or
 * -1 when it does not fit in outlen. */
int bus_tenant_vhost(const char *tenant, char *out, size_t outlen);
/* url with its vhost replaced by tenant's (bus_tenant_vhost). 0 or -1. */
int bus_tenant_url(const char *url, const char *tenant, char *out, size_t outlen);
/* MULTI vhost mode's tenants: the names of the tenant files in dir
 * (tenant_names), sorted. -1 and why ("FERRY_VHOST_MODE=multi: ...") when
 * there is none, it cannot be read, or two share a vhost (REGARDS
 * lower-cases the name); *names is then freed. */
int bus_vhost_tenants(const char *dir, char ***names, size_t *n, char *err, size_t errlen);

/* 0 if url is an amqp:// URL this build can use, else -1 and why: a
 * configuration error, not worth retrying. */
int bus_url_check(const char *url, char *err, size_t errlen);

/* Connect and open channel 1. 0, or -1 with a reason (never the password). */
int bus_open(const char *url, bus **out, char *err, size_t errlen);
void bus_close(bus *b);
const char *bus_error(const bus *b);
int bus_fd(const bus *b);                 /* the socket, for poll(2) */

/* bus_open then bus_declare: a usable connection with the topology in
 * place, or NULL and why in err (nothing left open); *mismatch (unless
 * NULL) is then 1 when bus_declare said BUS_MISMATCH, else 0. */
bus *bus_connect(const char *url, const struct bus_names *n, int *mismatch, char *err,
    size_t errlen);

/* Declare every exchange, queue and binding idempotently. 0, -1, or
 * BUS_MISMATCH when a queue exists with other arguments (bus_error says
 * which and what FERRY_TOPOLOGY declares): a configuration error. */
int bus_declare(bus *b, const struct bus_names *n);

/* Scale-out names for instance (ferry-amqp-ingest(1), Scale-out). 0, or -1
 * when instance is not [A-Za-z0-9_.-]{1,64} (or "." / "..") or a name
 * would be over 255 bytes. */
struct bus_route {
	char exchange[256], queue[256];
};
int bus_route_names(const struct bus_names *n, const char *instance, struct bus_route *r);

/* The scale-out membership (FERRY_INSTANCES): the names of all instances,
 * the same list on every instance. */
struct bus_members {
	char *buf;                /* the list, split in place */
	const char **names;
	size_t n;
};
/* Split list (names separated by commas and/or white space) into m, each
 * name checked as by bus_route_names against n. 0, or -1 and why in err
 * (nothing to free then): a bad name, a name twice, no name at all. */
int bus_members_parse(const struct bus_names *n, const char *list, struct bus_members *m,
    char *err, size_t errlen);
void bus_members_free(struct bus_members *m);

/* Rendezvous (highest random weight) hashing. The weight of instance
 * name for key: the 8 bytes of BLAKE2b-64(name NUL key) (libsodium
 * crypto_generichash, no key) read as a big-endian integer. */
uint64_t bus_route_weight(const char *name, const char *key);
/* The owner of key among names[0..n): the name of highest weight, a tie
 * going to the name that sorts first (strcmp). Every instance computes
 * the same owner whatever the order of the list; adding or removing a
 * name moves only the keys that name owns or comes to own. NULL if n 0. */
const char *bus_route_owner(const char *const *names, size_t n, const char *key);

/* Declare the owner exchange (direct, durable) and, for every member, its
 * queue (quorum, with the request queue's dead-lettering) bound with the
 * member's name as key, idempotently: a share whose owner is down waits
 * in its queue. 0 or -1. */
int bus_declare_route(bus *b, const struct bus_names *n, const struct bus_members *m);

/* The key of a request that the owner is computed from: tenant "/"
 * correlationId, cut to 255 bytes on a UTF-8 boundary (routing only needs
 * the same key for the same id). */
void bus_route_key(const char *tenant, const char *cid, char out[256]);

/* Declare a durable exchange of type ("fanout", "topic", ...), idempotently:
 * another service's exchange ferry publishes to (rs-order's). 0 or -1. */
int bus_declare_exchange(bus *b, const char *name, const char *type);

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
	size_t tenant_len;            /* its bytes (a NUL in it makes strlen shorter) */
	int has_priority, priority;
	char *app_id;                 /* property, or NULL */
	char *correlation_id;         /* property, or NULL */
	int routed_redelivery;        /* has header BUS_REDELIVERED_HEADER */
	struct bus_props *props;      /* every property, with bus_keep_properties */
};
void bus_msg_clear(struct bus_msg *m);
/* From now on bus_next keeps a copy of each message's properties (headers
 * included), for bus_forward. */
void bus_keep_properties(bus *b);
int bus_consume(bus *b, const char *queue, int prefetch);
/* Wait up to timeout_ms (0 = poll) for a delivery: 1 got one, 0 timeout,
 * -1 connection lost or channel closed (bus_error says why). */
int bus_next(bus *b, int timeout_ms, struct bus_msg *m);
/* Wait up to timeout_ms until one of the n connections has something to
 * read (buffered frames included): 1, 0 on timeout or signal, -1 (errno).
 * n may be 0 (a sleep). */
int bus_wait(bus *const *bs, size_t n, int timeout_ms);
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
/* 0, BUS_REFUSED, or -1 when the channel is lost. */
int bus_publish(bus *b, const struct bus_pub *p, uint64_t *seq);
/* While on, publishes are framed into a buffer instead of being sent (three
 * send(2) calls each by librabbitmq); turning it off (or an ack, reject,
 * bus_confirms, bus_close, or 128 KiB held) sends the burst in one write,
 * which the broker also reads in fewer and larger reads. */
void bus_cork(bus *b, int on);
/* For tests: a bus on a connected socket, no handshake (channel 1 taken as
 * open, no confirms, librabbitmq's initial frame_max). */
bus *bus_over_fd(int fd);
/* Read broker confirms for up to timeout_ms; fn(seq, ok) is called for each
 * confirmed sequence number (a `multiple` ack is expanded). 0 or -1. */
typedef void bus_confirm_fn(void *arg, uint64_t seq, int ok);
int bus_confirms(bus *b, int timeout_ms, bus_confirm_fn *fn, void *arg);
uint64_t bus_unconfirmed(const bus *b);   /* published, not yet confirmed */

/* Publish m (consumed with bus_keep_properties) again, mandatory, to
 * exchange with routing key: same body and properties, except user_id
 * (the broker checks it against our login) and BUS_REDELIVERED_HEADER, set
 * if and only if m is a redelivery. A message the broker returns as
 * unroutable is reported by bus_confirms as not ok. 0, BUS_REFUSED, or -1
 * when the channel is lost. */
int bus_forward(bus *b, const struct bus_msg *m, const char *exchange, const char *key,
    uint64_t *seq);

#endif
