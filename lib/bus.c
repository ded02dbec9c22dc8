/* bus: AMQP over librabbitmq 0.11 (see bus.h). One connection, channel 1.
 * librabbitmq 0.11 has no confirm-wait helper: confirms are read as
 * basic.ack / basic.nack frames with amqp_simple_wait_frame_noblock. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sodium.h>

#include "bus.h"
#include "tenant.h"
#include "util.h"

enum { CHANNEL = 1, HEARTBEAT_S = 30, FRAME_MAX = 131072 };

struct bus {
	amqp_connection_state_t conn;
	int open;                 /* channel usable */
	int keep_props;           /* bus_keep_properties */
	int returned;             /* a basic.return came since the last confirm */
	int reply_code;           /* of the broker's last channel.close, or 0 */
	char err[512];
	/* confirms: pending[i] is 1 while seq base+i is unconfirmed */
	uint64_t next_seq, base;
	unsigned char *pending;
	size_t npending, cap;
	uint64_t unconfirmed;
	/* bus_cork: publishes encoded here, sent in one write by flush_out */
	int corked;
	unsigned char *out;
	size_t outlen, outcap;
};

static int fail(bus *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int flush_out(bus *b);
static int fail(bus *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err, sizeof b->err, fmt, ap);
	va_end(ap);
	return -1;
}

const char *bus_error(const bus *b) { return b->err; }

/* The value of variable name, one of words[0..n) (the first when unset
 * or empty): its index, or -1 and why in err. */
static int env_word(const char *name, const char *const *words, int nwords, char *err,
    size_t errlen)
{
	const char *v = util_env(name, words[0]);
	for (int i = 0; i < nwords; i++)
		if (strcmp(v, words[i]) == 0)
			return i;
	snprintf(err, errlen, "%s: %.64s: want %s or %s", name, v, words[0], words[1]);
	return -1;
}

int bus_names_from_env(struct bus_names *n, char *err, size_t errlen)
{
	static const char *const topologies[] = { "ferry", "regards" };
	static const char *const modes[] = { "single", "multi" };
	n->request_exchange = util_env("FERRY_REQUEST_EXCHANGE", BUS_REQUEST_EXCHANGE);
	n->request_queue = util_env("FERRY_REQUEST_QUEUE", BUS_REQUEST_QUEUE);
	n->response_exchange = util_env("FERRY_RESPONSE_EXCHANGE", BUS_RESPONSE_EXCHANGE);
	n->response_alias = util_env("FERRY_RESPONSE_ALIAS", BUS_RESPONSE_ALIAS);
	n->dlx = util_env("FERRY_DLX", BUS_DLX);
	n->dlq = util_env("FERRY_DLQ", BUS_DLQ);
	n->request_dlq = n->dlq;
	int t = env_word("FERRY_TOPOLOGY", topologies, 2, err, errlen);
	int m = t < 0 ? -1 : env_word("FERRY_VHOST_MODE", modes, 2, err, errlen);
	if (m < 0)
		return -1;
	n->topology = t ? BUS_TOPOLOGY_REGARDS : BUS_TOPOLOGY_FERRY;
	n->vhost_mode = m ? BUS_VHOST_MULTI : BUS_VHOST_SINGLE;
	if (n->topology == BUS_TOPOLOGY_FERRY)
		return 0;
	/* rs-delivery's queue and its dedicated DLQ, named as RegardsAmqpAdmin
	 * names them (getSubscriptionQueueName, getDedicatedDLQFromQueueName) */
	const char *ms = util_env("FERRY_REGARDS_MICROSERVICE", BUS_REGARDS_MICROSERVICE);
	int q = snprintf(n->queue_buf, sizeof n->queue_buf, "regards.broadcast.%s.%s", ms,
	    BUS_REGARDS_HANDLER);
	int d = snprintf(n->dlq_buf, sizeof n->dlq_buf, "%s.DLQ", n->queue_buf);
	if (strcspn(ms, " \t\r\n") != strlen(ms) || q < 0 || d < 0 ||
	    (size_t)d >= sizeof n->dlq_buf) {
		snprintf(err, errlen, "FERRY_REGARDS_MICROSERVICE: %.64s: want a microservice type"
		    " without white space, its queue's DLQ name at most 255 bytes", ms);
		return -1;
	}
	n->request_queue = n->queue_buf;
	n->request_dlq = n->dlq_buf;
	return 0;
}

int bus_tenant_vhost(const char *tenant, char *out, size_t outlen)
{
	size_t p = strlen(BUS_VHOST_PREFIX), t = strlen(tenant);
	if (p + t >= outlen)
		return -1;
	memcpy(out, BUS_VHOST_PREFIX, p);
	for (size_t i = 0; i <= t; i++)   /* Java's toLowerCase, on [A-Za-z0-9_.-] */
		out[p + i] = (char)(tenant[i] >= 'A' && tenant[i] <= 'Z' ? tenant[i] - 'A' + 'a'
		    : tenant[i]);
	return 0;
}

int bus_tenant_url(const char *url, const char *tenant, char *out, size_t outlen)
{
	/* amqp://user:pass@host:port/vhost: the vhost is after the first '/'
	 * past the scheme ('/' in user or password is percent-encoded) */
	const char *s = strstr(url, "://");
	const char *slash = s ? strchr(s + 3, '/') : NULL;
	size_t keep = slash ? (size_t)(slash - url) : strlen(url);
	char vhost[256];
	/* a tenant name ([A-Za-z0-9_.-]) needs no percent-encoding */
	if (!s || bus_tenant_vhost(tenant, vhost, sizeof vhost) < 0)
		return -1;
	int n = snprintf(out, outlen, "%.*s/%s", (int)keep, url, vhost);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int bus_vhost_tenants(const char *dir, char ***names, size_t *n, char *err, size_t errlen)
{
	char e[512], vi[256], vk[256];
	if (tenant_names(dir, names, n, e, sizeof e) < 0) {
		snprintf(err, errlen, "FERRY_VHOST_MODE=multi: %s", e);
		return -1;
	}
	if (*n == 0)
		snprintf(err, errlen, "FERRY_VHOST_MODE=multi: no tenant in %s (FERRY_TENANTS)", dir);
	for (size_t i = 0; i < *n; i++) {
		if (bus_tenant_vhost((*names)[i], vi, sizeof vi) < 0) {
			snprintf(err, errlen, "FERRY_VHOST_MODE=multi: tenant %.64s: its vhost name"
			    " does not fit", (*names)[i]);
			goto fail;
		}
		for (size_t k = 0; k < i; k++)
			if (bus_tenant_vhost((*names)[k], vk, sizeof vk) == 0 && strcmp(vi, vk) == 0) {
				snprintf(err, errlen, "FERRY_VHOST_MODE=multi: tenants %.64s and %.64s"
				    " share the vhost %s", (*names)[k], (*names)[i], vi);
				goto fail;
			}
	}
	if (*n > 0)
		return 0;
fail:
	tenant_names_free(*names, *n);
	*names = NULL;
	*n = 0;
	return -1;
}

/* Describe a failed RPC reply; always -1. Marks the channel unusable when
 * the broker closed it. */
static int rpc_fail(bus *b, amqp_rpc_reply_t r, const char *what)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return 0;
	case AMQP_RESPONSE_NONE:
		return fail(b, "%s: missing RPC reply", what);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		b->open = 0;
		return fail(b, "%s: %s", what, amqp_error_string2(r.library_error));
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		b->open = 0;
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			return fail(b, "%s: connection closed by broker: %d %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (char *)m->reply_text.bytes);
		}
		if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			b->reply_code = m->reply_code;
			return fail(b, "%s: channel closed by broker: %d %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (char *)m->reply_text.bytes);
		}
		return fail(b, "%s: broker error, method 0x%08x", what, r.reply.id);
	}
	return fail(b, "%s: unknown reply", what);
}

static int check_rpc(bus *b, const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
	return r.reply_type == AMQP_RESPONSE_NORMAL ? 0 : rpc_fail(b, r, what);
}

int bus_url_check(const char *url, char *err, size_t errlen)
{
	struct amqp_connection_info ci;
	char *copy = strdup(url);
	int rc = 0;
	if (!copy)
		return snprintf(err, errlen, "amqp: %s", strerror(ENOMEM)), -1;
	if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK)
		rc = snprintf(err, errlen, "amqp: cannot parse the URL (amqp://user:pass@host:port/vhost)");
	else if (ci.ssl)
		rc = snprintf(err, errlen, "amqp: amqps:// is not supported by this build");
	free(copy);
	return rc ? -1 : 0;
}

int bus_open(const char *url, bus **out, char *err, size_t errlen)
{
	struct amqp_connection_info ci;
	char *copy = strdup(url);
	bus *b = calloc(1, sizeof *b);
	*out = NULL;
	if (!copy || !b) {
		snprintf(err, errlen, "amqp: %s", strerror(ENOMEM));
		goto fail;
	}
	if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
		snprintf(err, errlen, "amqp: cannot parse the URL (amqp://user:pass@host:port/vhost)");
		goto fail;
	}
	if (ci.ssl) {
		snprintf(err, errlen, "amqp: amqps:// is not supported by this build");
		goto fail;
	}
	b->conn = amqp_new_connection();
	amqp_socket_t *sock = b->conn ? amqp_tcp_socket_new(b->conn) : NULL;
	if (!sock) {
		snprintf(err, errlen, "amqp: %s", strerror(ENOMEM));
		goto fail;
	}
	struct timeval tv = { 10, 0 };
	int rc = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
	if (rc != AMQP_STATUS_OK) {
		snprintf(err, errlen, "amqp: unable to connect to %s:%d: %s", ci.host, ci.port,
		    amqp_error_string2(rc));
		goto fail;
	}
	amqp_rpc_reply_t r = amqp_login(b->conn, ci.vhost, 0, FRAME_MAX, HEARTBEAT_S,
	    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		rpc_fail(b, r, "login");
		snprintf(err, errlen, "amqp: %s:%d vhost %s as %s: %s", ci.host, ci.port, ci.vhost,
		    ci.user, b->err);
		goto fail;
	}
	amqp_channel_open(b->conn, CHANNEL);
	if (check_rpc(b, "channel open") < 0) {
		snprintf(err, errlen, "amqp: %s", b->err);
		goto fail;
	}
	b->open = 1;
	free(copy);
	*out = b;
	return 0;
fail:
	free(copy);
	bus_close(b);
	return -1;
}

bus *bus_connect(const char *url, const struct bus_names *n, int *mismatch, char *err,
    size_t errlen)
{
	bus *b;
	if (mismatch)
		*mismatch = 0;
	if (bus_open(url, &b, err, errlen) < 0)
		return NULL;
	int rc = bus_declare(b, n);
	if (rc < 0) {
		if (mismatch)
			*mismatch = rc == BUS_MISMATCH;
		snprintf(err, errlen, "%s", b->err);
		bus_close(b);
		return NULL;
	}
	return b;
}

bus *bus_over_fd(int fd)
{
	bus *b = calloc(1, sizeof *b);
	if (!b || !(b->conn = amqp_new_connection())) {
		free(b);
		return NULL;
	}
	amqp_socket_t *sock = amqp_tcp_socket_new(b->conn);
	if (!sock) {
		amqp_destroy_connection(b->conn);
		free(b);
		return NULL;
	}
	amqp_tcp_socket_set_sockfd(sock, fd);
	b->open = 1;
	return b;
}

void bus_close(bus *b)
{
	if (!b)
		return;
	if (b->conn) {
		if (b->open && b->outlen)
			(void)flush_out(b);
		if (b->open) {
			amqp_channel_close(b->conn, CHANNEL, AMQP_REPLY_SUCCESS);
			amqp_connection_close(b->conn, AMQP_REPLY_SUCCESS);
		}
		amqp_destroy_connection(b->conn);
	}
	free(b->pending);
	free(b->out);
	free(b);
}

int bus_fd(const bus *b)
{
	return amqp_socket_get_sockfd(amqp_get_socket(b->conn));
}

#define BUS_SEND_TIMEOUT_MS 30000

/* Send what bus_cork held back: 0, or -1 (the connection is lost). */
static int flush_out(bus *b)
{
	size_t off = 0;
	int fd = bus_fd(b);
	while (off < b->outlen) {
		ssize_t w = send(fd, b->out + off, b->outlen - off, MSG_NOSIGNAL);
		if (w > 0) {
			off += (size_t)w;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, BUS_SEND_TIMEOUT_MS) == 0) {
				errno = ETIMEDOUT;
				break;
			}
		} else if (w < 0 && errno != EINTR) {
			break;
		}
	}
	int lost = off < b->outlen;
	b->outlen = 0;
	if (lost) {
		b->open = 0;
		return fail(b, "publish: %s", strerror(errno));
	}
	return 0;
}

void bus_cork(bus *b, int on)
{
	if (!on && b->corked)
		(void)flush_out(b);
	b->corked = on;
}

static int out_room(bus *b, size_t n)
{
	if (b->outlen + n <= b->outcap)
		return 0;
	size_t cap = b->outcap ? b->outcap : 16384;
	while (cap < b->outlen + n)
		cap *= 2;
	unsigned char *p = realloc(b->out, cap);
	if (!p)
		return fail(b, "%s", strerror(ENOMEM));
	b->out = p;
	b->outcap = cap;
	return 0;
}

static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static void put32(unsigned char *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

/* Append one frame whose payload fill() writes (at most max bytes; it
 * returns the length or < 0). The AMQP 0-9-1 frame: type, channel, size,
 * payload, frame-end octet. */
#define FRAME_HEAD 7
static int out_frame(bus *b, uint8_t type, size_t max,
    int (*fill)(unsigned char *dst, size_t max, const void *arg), const void *arg)
{
	if (out_room(b, FRAME_HEAD + max + 1) < 0)
		return -1;
	unsigned char *f = b->out + b->outlen;
	int len = fill(f + FRAME_HEAD, max, arg);
	if (len < 0) {
		fail(b, "publish: cannot encode a frame of at most %zu bytes (%s)", max,
		    amqp_error_string2(len));
		return BUS_REFUSED;
	}
	f[0] = type;
	put16(f + 1, CHANNEL);
	put32(f + 3, (uint32_t)len);
	f[FRAME_HEAD + len] = AMQP_FRAME_END;
	b->outlen += FRAME_HEAD + (size_t)len + 1;
	return 0;
}

struct publish_frames {
	amqp_basic_publish_t m;
	const amqp_basic_properties_t *props;
	amqp_bytes_t body;
	size_t off, chunk;
};

static int fill_method(unsigned char *dst, size_t max, const void *arg)
{
	const struct publish_frames *pf = arg;
	put32(dst, AMQP_BASIC_PUBLISH_METHOD);
	int n = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, (void *)&pf->m,
	    (amqp_bytes_t){ max - 4, dst + 4 });
	return n < 0 ? n : n + 4;
}

static int fill_header(unsigned char *dst, size_t max, const void *arg)
{
	const struct publish_frames *pf = arg;
	put16(dst, AMQP_BASIC_CLASS);
	put16(dst + 2, 0);
	put32(dst + 4, (uint32_t)((uint64_t)pf->body.len >> 32));
	put32(dst + 8, (uint32_t)pf->body.len);
	int n = amqp_encode_properties(AMQP_BASIC_CLASS, (void *)pf->props,
	    (amqp_bytes_t){ max - 12, dst + 12 });
	return n < 0 ? n : n + 12;
}

static int fill_body(unsigned char *dst, size_t max, const void *arg)
{
	const struct publish_frames *pf = arg;
	(void)max;
	memcpy(dst, (const char *)pf->body.bytes + pf->off, pf->chunk);
	return (int)pf->chunk;
}

/* basic.publish as librabbitmq's amqp_basic_publish frames it, into the
 * out buffer, whole or not at all: a message whose frames cannot be
 * encoded (its properties over frame_max) leaves nothing behind, so the
 * stream stays whole for the messages after it. 0, BUS_REFUSED, or -1
 * (out of memory). */
static int encode_publish(bus *b, const char *exchange, const char *key, int mandatory,
    const amqp_basic_properties_t *props, amqp_bytes_t body)
{
	size_t frame_max = (size_t)amqp_get_frame_max(b->conn), start = b->outlen;
	size_t room = (frame_max ? frame_max : 131072) - FRAME_HEAD - 1;
	struct publish_frames pf = {
		.m = { .exchange = amqp_cstring_bytes(exchange), .routing_key = amqp_cstring_bytes(key),
		    .mandatory = mandatory != 0 },
		.props = props, .body = body,
	};
	int rc = out_frame(b, AMQP_FRAME_METHOD, 4 + 2 + 1 + 256 + 256 + 1, fill_method, &pf);
	if (rc == 0)
		rc = out_frame(b, AMQP_FRAME_HEADER, room, fill_header, &pf);
	for (pf.off = 0; rc == 0 && pf.off < body.len; pf.off += pf.chunk) {
		pf.chunk = body.len - pf.off < room ? body.len - pf.off : room;
		rc = out_frame(b, AMQP_FRAME_BODY, pf.chunk, fill_body, &pf);
	}
	if (rc < 0)
		b->outlen = start;
	return rc;
}

static amqp_table_entry_t entry_str(const char *k, const char *v)
{
	amqp_table_entry_t e;
	e.key = amqp_cstring_bytes(k);
	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = amqp_cstring_bytes(v);
	return e;
}

static int declare_exchange(bus *b, const char *name, const char *type)
{
	amqp_exchange_declare(b->conn, CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
	    0, 1, 0, 0, amqp_empty_table);
	char what[300];
	snprintf(what, sizeof what, "declare exchange %s", name);
	return check_rpc(b, what);
}

/* The broker refused a queue's arguments (406 PRECONDITION_FAILED): say
 * so with what this topology declares. BUS_MISMATCH, or -1 for any other
 * failure. */
static int queue_refused(bus *b, const struct bus_names *n)
{
	if (b->reply_code != AMQP_PRECONDITION_FAILED)
		return -1;
	char why[512];
	util_strlcpy(why, b->err, sizeof why);
	fail(b, "%s; FERRY_TOPOLOGY=%s declares %s", why,
	    n->topology == BUS_TOPOLOGY_REGARDS ? "regards" : "ferry",
	    n->topology == BUS_TOPOLOGY_REGARDS
	    ? "rs-delivery's classic queue (x-max-priority 255, its own .DLQ)"
	    : "a quorum queue (FERRY_TOPOLOGY=regards takes over rs-delivery's queue)");
	return BUS_MISMATCH;
}

/* A durable priority queue bound to n's DLX with key as REGARDS declares
 * its DLQs (RegardsAmqpAdmin.declareDeadLetter, declareDedicatedDeadLetter):
 * any other arguments and the broker refuses whichever side declares
 * second. */
static int declare_dlq(bus *b, const struct bus_names *n, const char *name)
{
	amqp_table_entry_t prio = { amqp_cstring_bytes("x-max-priority"),
		{ .kind = AMQP_FIELD_KIND_I32, .value.i32 = BUS_REGARDS_MAX_PRIORITY } };
	amqp_table_t args = { 1, &prio };
	char what[300];
	snprintf(what, sizeof what, "declare dead-letter queue %s", name);
	amqp_queue_declare(b->conn, CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
	if (check_rpc(b, what) < 0)
		return queue_refused(b, n);
	snprintf(what, sizeof what, "bind dead-letter queue %s", name);
	amqp_queue_bind(b->conn, CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(n->dlx),
	    amqp_cstring_bytes(name), amqp_empty_table);
	return check_rpc(b, what);
}

/* The request queue, and each scale-out instance's queue: durable,
 * dead-lettering to n's DLX with n->request_dlq as key. In ferry's
 * topology a quorum queue; in REGARDS's, the arguments of
 * RegardsAmqpAdmin.declareQueue for a broadcast handler's queue
 * (QueueBuilder.durable(qn).maxPriority(MAX_PRIORITY), then
 * deadLetterExchange and deadLetterRoutingKey): a classic queue. */
static int declare_request_queue(bus *b, const struct bus_names *n, const char *name,
    const char *what)
{
	amqp_table_entry_t args[3];
	if (n->topology == BUS_TOPOLOGY_REGARDS) {
		args[0].key = amqp_cstring_bytes("x-max-priority");
		args[0].value.kind = AMQP_FIELD_KIND_I32;
		args[0].value.value.i32 = BUS_REGARDS_MAX_PRIORITY;
	} else {
		args[0] = entry_str("x-queue-type", "quorum");
	}
	args[1] = entry_str("x-dead-letter-exchange", n->dlx);
	args[2] = entry_str("x-dead-letter-routing-key", n->request_dlq);
	amqp_table_t t = { 3, args };
	amqp_queue_declare(b->conn, CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, t);
	return check_rpc(b, what) < 0 ? queue_refused(b, n) : 0;
}

int bus_declare(bus *b, const struct bus_names *n)
{
	static const struct { int which; const char *type; } exchanges[] = {
		{ 0, "fanout" }, { 1, "fanout" }, { 2, "fanout" }, { 3, "topic" },
	};
	const char *names[] = { n->request_exchange, n->response_exchange, n->response_alias, n->dlx };
	int rc;
	for (size_t i = 0; i < sizeof exchanges / sizeof *exchanges; i++)
		if (declare_exchange(b, names[exchanges[i].which], exchanges[i].type) < 0)
			return -1;

	/* regards.DLX and regards.DLQ as every REGARDS microservice declares
	 * them; in REGARDS's topology the request queue's dedicated DLQ too
	 * (IBatchHandler.isDedicatedDLQEnabled is true by default) */
	if ((rc = declare_dlq(b, n, n->dlq)) < 0)
		return rc;
	if (n->request_dlq != n->dlq && (rc = declare_dlq(b, n, n->request_dlq)) < 0)
		return rc;

	if ((rc = declare_request_queue(b, n, n->request_queue, "declare request queue")) < 0)
		return rc;
	amqp_queue_bind(b->conn, CHANNEL, amqp_cstring_bytes(n->request_queue),
	    amqp_cstring_bytes(n->request_exchange), amqp_empty_bytes, amqp_empty_table);
	if (check_rpc(b, "bind request queue") < 0)
		return -1;
	amqp_exchange_bind(b->conn, CHANNEL, amqp_cstring_bytes(n->response_alias),
	    amqp_cstring_bytes(n->response_exchange), amqp_empty_bytes, amqp_empty_table);
	return check_rpc(b, "bind response alias exchange");
}

static int instance_ok(const char *s)
{
	size_t len = strlen(s);
	if (len < 1 || len > 64 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

int bus_route_names(const struct bus_names *n, const char *instance, struct bus_route *r)
{
	if (!instance_ok(instance))
		return -1;
	int a = snprintf(r->exchange, sizeof r->exchange, "%s%s", n->request_queue, BUS_ROUTE_SUFFIX);
	int q = snprintf(r->queue, sizeof r->queue, "%s.%s", n->request_queue, instance);
	return a < 0 || q < 0 || (size_t)a >= sizeof r->exchange || (size_t)q >= sizeof r->queue
	    ? -1 : 0;
}

/* The queue of instance name: "<request queue>.<name>". 0 or -1. */
static int member_queue(const struct bus_names *n, const char *name, char out[256])
{
	int q = snprintf(out, 256, "%s.%s", n->request_queue, name);
	return q < 0 || q >= 256 ? -1 : 0;
}

static int member_seen(const struct bus_members *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->names[i], name) == 0)
			return 1;
	return 0;
}

int bus_members_parse(const struct bus_names *n, const char *list, struct bus_members *m,
    char *err, size_t errlen)
{
	static const char sep[] = ", \t\n";
	char queue[256], *save = NULL;
	size_t len = strlen(list), most = len / 2 + 1;
	m->n = 0;
	m->buf = malloc(len + 1);
	m->names = malloc(most * sizeof *m->names);
	if (!m->buf || !m->names) {
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto fail;
	}
	memcpy(m->buf, list, len + 1);
	for (char *t = strtok_r(m->buf, sep, &save); t; t = strtok_r(NULL, sep, &save)) {
		if (!instance_ok(t) || member_queue(n, t, queue) < 0) {
			snprintf(err, errlen, "instance name %.80s: want 1 to 64 of [A-Za-z0-9_.-]", t);
			goto fail;
		}
		if (member_seen(m, t)) {
			snprintf(err, errlen, "instance name %s listed twice", t);
			goto fail;
		}
		m->names[m->n++] = t;
	}
	if (m->n == 0) {
		snprintf(err, errlen, "no instance name in the list");
		goto fail;
	}
	/* BLAKE2b picks its fastest implementation here; idempotent */
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium cannot be initialised");
		goto fail;
	}
	return 0;
fail:
	bus_members_free(m);
	return -1;
}

void bus_members_free(struct bus_members *m)
{
	free(m->buf);
	free(m->names);
	m->buf = NULL;
	m->names = NULL;
	m->n = 0;
}

uint64_t bus_route_weight(const char *name, const char *key)
{
	/* name NUL key: no two (name, key) pairs give the same input */
	crypto_generichash_state st;
	unsigned char h[8];
	crypto_generichash_init(&st, NULL, 0, sizeof h);
	crypto_generichash_update(&st, (const unsigned char *)name, strlen(name) + 1);
	crypto_generichash_update(&st, (const unsigned char *)key, strlen(key));
	crypto_generichash_final(&st, h, sizeof h);
	uint64_t w = 0;
	for (size_t i = 0; i < sizeof h; i++)
		w = w << 8 | h[i];
	return w;
}

const char *bus_route_owner(const char *const *names, size_t n, const char *key)
{
	const char *best = NULL;
	uint64_t top = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t w = bus_route_weight(names[i], key);
		if (!best || w > top || (w == top && strcmp(names[i], best) < 0)) {
			best = names[i];
			top = w;
		}
	}
	return best;
}

int bus_declare_route(bus *b, const struct bus_names *n, const struct bus_members *m)
{
	char exchange[256], queue[256];
	int e = snprintf(exchange, sizeof exchange, "%s%s", n->request_queue, BUS_ROUTE_SUFFIX);
	if (e < 0 || (size_t)e >= sizeof exchange)
		return fail(b, "owner exchange name too long");
	if (declare_exchange(b, exchange, "direct") < 0)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		if (member_queue(n, m->names[i], queue) < 0)
			return fail(b, "instance queue name too long");
		int rc = declare_request_queue(b, n, queue, "declare instance queue");
		if (rc < 0)
			return rc;
		amqp_queue_bind(b->conn, CHANNEL, amqp_cstring_bytes(queue),
		    amqp_cstring_bytes(exchange), amqp_cstring_bytes(m->names[i]), amqp_empty_table);
		if (check_rpc(b, "bind instance queue") < 0)
			return -1;
	}
	return 0;
}

static char key_byte(const char *tenant, size_t tl, const char *cid, size_t i)
{
	return i < tl ? tenant[i] : i == tl ? '/' : cid[i - tl - 1];
}

void bus_route_key(const char *tenant, const char *cid, char out[256])
{
	size_t tl = strlen(tenant), len = tl + 1 + strlen(cid);
	if (len > 255) {
		len = 255;
		/* not inside a UTF-8 character: back up to its first byte */
		while (len > 0 && ((unsigned char)key_byte(tenant, tl, cid, len) & 0xC0) == 0x80)
			len--;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = key_byte(tenant, tl, cid, i);
	out[len] = '\0';
}

int bus_listen(bus *b, const char *name, const char *exchange, char *out, size_t outlen)
{
	int named = name && *name;
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(b->conn, CHANNEL,
	    named ? amqp_cstring_bytes(name) : amqp_empty_bytes, 0, named, !named, !named,
	    amqp_empty_table);
	if (check_rpc(b, "declare queue") < 0)
		return -1;
	if (ok->queue.len >= outlen)
		return fail(b, "declare queue: name too long");
	memcpy(out, ok->queue.bytes, ok->queue.len);
	out[ok->queue.len] = '\0';
	amqp_queue_bind(b->conn, CHANNEL, amqp_cstring_bytes(out), amqp_cstring_bytes(exchange),
	    amqp_empty_bytes, amqp_empty_table);
	return check_rpc(b, "bind queue");
}

int bus_consume(bus *b, const char *queue, int prefetch)
{
	amqp_basic_qos(b->conn, CHANNEL, 0, (uint16_t)prefetch, 0);
	if (check_rpc(b, "qos") < 0)
		return -1;
	amqp_basic_consume(b->conn, CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes,
	    0, 0, 0, amqp_empty_table);
	return check_rpc(b, "consume");
}

/* A message's properties, copied out of the envelope (which librabbitmq
 * recycles) into a pool of their own. */
struct bus_props {
	amqp_pool_t pool;
	amqp_basic_properties_t p;
};

static void props_free(struct bus_props *c)
{
	if (c) {
		empty_amqp_pool(&c->pool);
		free(c);
	}
}

static int pool_dup(amqp_pool_t *pool, amqp_bytes_t *v)
{
	amqp_bytes_t src = *v;
	if (src.len == 0)
		return 0;
	amqp_pool_alloc_bytes(pool, src.len, v);
	if (!v->bytes)
		return -1;
	memcpy(v->bytes, src.bytes, src.len);
	return 0;
}

static struct bus_props *props_copy(const amqp_basic_properties_t *src)
{
	struct bus_props *c = malloc(sizeof *c);
	if (!c)
		return NULL;
	init_amqp_pool(&c->pool, 4096);
	c->p = *src;
	/* only the fields whose flag is set were decoded */
	const struct { amqp_flags_t flag; amqp_bytes_t *v; } strs[] = {
		{ AMQP_BASIC_CONTENT_TYPE_FLAG, &c->p.content_type },
		{ AMQP_BASIC_CONTENT_ENCODING_FLAG, &c->p.content_encoding },
		{ AMQP_BASIC_CORRELATION_ID_FLAG, &c->p.correlation_id },
		{ AMQP_BASIC_REPLY_TO_FLAG, &c->p.reply_to },
		{ AMQP_BASIC_EXPIRATION_FLAG, &c->p.expiration },
		{ AMQP_BASIC_MESSAGE_ID_FLAG, &c->p.message_id },
		{ AMQP_BASIC_TYPE_FLAG, &c->p.type },
		{ AMQP_BASIC_USER_ID_FLAG, &c->p.user_id },
		{ AMQP_BASIC_APP_ID_FLAG, &c->p.app_id },
		{ AMQP_BASIC_CLUSTER_ID_FLAG, &c->p.cluster_id },
	};
	for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
		if ((src->_flags & strs[i].flag) && pool_dup(&c->pool, strs[i].v) < 0)
			goto fail;
	if ((src->_flags & AMQP_BASIC_HEADERS_FLAG) &&
	    amqp_table_clone(&src->headers, &c->p.headers, &c->pool) != AMQP_STATUS_OK)
		goto fail;
	return c;
fail:
	props_free(c);
	return NULL;
}

void bus_keep_properties(bus *b)
{
	b->keep_props = 1;
}

void bus_msg_clear(struct bus_msg *m)
{
	props_free(m->props);
	free(m->body);
	free(m->tenant);
	free(m->app_id);
	free(m->correlation_id);
	memset(m, 0, sizeof *m);
}

static char *bytes_dup(amqp_bytes_t v)
{
	char *s = malloc(v.len + 1);
	if (s) {
		if (v.len)   /* an empty body comes with bytes == NULL */
			memcpy(s, v.bytes, v.len);
		s[v.len] = '\0';
	}
	return s;
}

/* The string header key, malloc'd, its length in *len; NULL if absent or
 * not a string. */
static char *header_str(const amqp_table_t *t, const char *key, size_t *len)
{
	for (int i = 0; i < t->num_entries; i++) {
		const amqp_table_entry_t *e = &t->entries[i];
		if (e->key.len != strlen(key) || memcmp(e->key.bytes, key, e->key.len) != 0)
			continue;
		if (e->value.kind != AMQP_FIELD_KIND_UTF8 && e->value.kind != AMQP_FIELD_KIND_BYTES)
			return NULL;
		*len = e->value.value.bytes.len;
		return bytes_dup(e->value.value.bytes);
	}
	return NULL;
}

static int header_has(const amqp_table_t *t, const char *key)
{
	for (int i = 0; i < t->num_entries; i++)
		if (t->entries[i].key.len == strlen(key) &&
		    memcmp(t->entries[i].key.bytes, key, t->entries[i].key.len) == 0)
			return 1;
	return 0;
}

/* 0, or -1 when out of memory (m is cleared then). */
static int take_envelope(bus *b, struct bus_msg *m, amqp_envelope_t *env)
{
	amqp_basic_properties_t *p = &env->message.properties;
	memset(m, 0, sizeof *m);
	m->tag = env->delivery_tag;
	m->redelivered = env->redelivered;
	m->len = env->message.body.len;
	m->body = bytes_dup(env->message.body);
	if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
		m->tenant = header_str(&p->headers, "regards.tenant", &m->tenant_len);
		m->routed_redelivery = header_has(&p->headers, BUS_REDELIVERED_HEADER);
	}
	if (b->keep_props && !(m->props = props_copy(p))) {
		bus_msg_clear(m);
		return -1;
	}
	if (p->_flags & AMQP_BASIC_PRIORITY_FLAG) {
		m->has_priority = 1;
		m->priority = p->priority;
	}
	if (p->_flags & AMQP_BASIC_APP_ID_FLAG)
		m->app_id = bytes_dup(p->app_id);
	if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
		m->correlation_id = bytes_dup(p->correlation_id);
	return m->body ? 0 : -1;
}

/* A frame that is not a delivery arrived: handle what may come on a
 * consuming channel. 0 to go on, -1 when the channel or connection is gone. */
static int other_frame(bus *b)
{
	amqp_frame_t f;
	if (amqp_simple_wait_frame(b->conn, &f) != AMQP_STATUS_OK) {
		b->open = 0;
		return fail(b, "connection lost");
	}
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_CHANNEL_CLOSE_METHOD:
	case AMQP_CONNECTION_CLOSE_METHOD:
	case AMQP_BASIC_CANCEL_METHOD: {
		b->open = 0;
		return fail(b, "broker closed the %s",
		    f.payload.method.id == AMQP_BASIC_CANCEL_METHOD ? "consumer" : "channel");
	}
	default:
		return 0;
	}
}

int bus_next(bus *b, int timeout_ms, struct bus_msg *m)
{
	amqp_envelope_t env;
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	if (!b->open)
		return fail(b, "channel closed");
	amqp_maybe_release_buffers(b->conn);
	amqp_rpc_reply_t r = amqp_consume_message(b->conn, &env, &tv, 0);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		int rc = take_envelope(b, m, &env);
		amqp_destroy_envelope(&env);
		if (rc < 0) {
			bus_msg_clear(m);
			return fail(b, "%s", strerror(ENOMEM));
		}
		return 1;
	}
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		if (r.library_error == AMQP_STATUS_TIMEOUT)
			return 0;
		if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
			return other_frame(b) < 0 ? -1 : 0;
	}
	return rpc_fail(b, r, "consume");
}

int bus_wait(bus *const *bs, size_t n, int timeout_ms)
{
	struct pollfd few[8], *fds = few;
	/* one connection per tenant's vhost: there may be many */
	if (n > sizeof few / sizeof *few && !(fds = malloc(n * sizeof *fds)))
		return -1;
	for (size_t i = 0; i < n; i++) {
		/* librabbitmq may have read ahead: poll(2) would not see that */
		if (amqp_frames_enqueued(bs[i]->conn) || amqp_data_in_buffer(bs[i]->conn)) {
			if (fds != few)
				free(fds);
			return 1;
		}
		fds[i].fd = bus_fd(bs[i]);
		fds[i].events = POLLIN;
	}
	int rc = poll(fds, (nfds_t)n, timeout_ms);
	int saved = errno;
	if (fds != few)
		free(fds);
	errno = saved;
	if (rc < 0 && errno == EINTR)
		return 0;
	return rc < 0 ? -1 : rc > 0;
}

int bus_ack(bus *b, uint64_t tag, int multiple)
{
	if (b->outlen && flush_out(b) < 0)
		return -1;
	int rc = amqp_basic_ack(b->conn, CHANNEL, tag, multiple);
	if (rc != AMQP_STATUS_OK) {
		b->open = 0;
		return fail(b, "ack: %s", amqp_error_string2(rc));
	}
	return 0;
}

int bus_reject(bus *b, uint64_t tag, int requeue)
{
	if (b->outlen && flush_out(b) < 0)
		return -1;
	int rc = amqp_basic_reject(b->conn, CHANNEL, tag, requeue);
	if (rc != AMQP_STATUS_OK) {
		b->open = 0;
		return fail(b, "reject: %s", amqp_error_string2(rc));
	}
	return 0;
}

int bus_confirm_select(bus *b)
{
	amqp_confirm_select(b->conn, CHANNEL);
	if (check_rpc(b, "confirm select") < 0)
		return -1;
	b->next_seq = 1;
	b->base = 1;
	b->npending = 0;
	b->unconfirmed = 0;
	return 0;
}

static int pending_push(bus *b)
{
	if (b->npending == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 1024;
		unsigned char *p = realloc(b->pending, cap);
		if (!p)
			return fail(b, "%s", strerror(ENOMEM));
		b->pending = p;
		b->cap = cap;
	}
	b->pending[b->npending++] = 1;
	b->unconfirmed++;
	return 0;
}

/* basic.publish, and with confirms on, the sequence number it will be
 * confirmed under (into *seq unless NULL). Framed here, not by
 * amqp_basic_publish, which sends the method frame before it finds the
 * header frame too large: the broker would then take the next message's
 * method frame for a protocol error. 0, BUS_REFUSED (nothing sent), or -1
 * (the channel is lost). */
static int send_publish(bus *b, const char *exchange, const char *key, int mandatory,
    const amqp_basic_properties_t *props, amqp_bytes_t body, uint64_t *seq)
{
	int rc = encode_publish(b, exchange, key, mandatory, props, body);
	if (rc == 0 && (!b->corked || b->outlen >= 131072))
		rc = flush_out(b);
	if (rc < 0)
		return rc;
	if (b->next_seq) {
		if (pending_push(b) < 0)
			return -1;
		if (seq)
			*seq = b->next_seq;
		b->next_seq++;
	}
	return 0;
}

int bus_publish(bus *b, const struct bus_pub *p, uint64_t *seq)
{
	amqp_basic_properties_t props;
	amqp_table_entry_t entries[16];
	memset(&props, 0, sizeof props);
	if (!b->open)
		return fail(b, "channel closed");
	if (p->nheaders > sizeof entries / sizeof *entries)
		return fail(b, "publish: too many headers"), BUS_REFUSED;
	struct { const char *v; amqp_flags_t flag; amqp_bytes_t *field; } strs[] = {
		{ p->content_type, AMQP_BASIC_CONTENT_TYPE_FLAG, &props.content_type },
		{ p->content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG, &props.content_encoding },
		{ p->correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG, &props.correlation_id },
		{ p->app_id, AMQP_BASIC_APP_ID_FLAG, &props.app_id },
	};
	for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
		if (strs[i].v && strlen(strs[i].v) > 255)
			return fail(b, "publish: a property is over 255 bytes"), BUS_REFUSED;
		if (strs[i].v) {
			props._flags |= strs[i].flag;
			*strs[i].field = amqp_cstring_bytes(strs[i].v);
		}
	}
	if (p->persistent) {
		props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
		props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	}
	if (p->has_priority) {
		props._flags |= AMQP_BASIC_PRIORITY_FLAG;
		props.priority = (uint8_t)p->priority;
	}
	if (p->timestamp) {
		props._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
		props.timestamp = (uint64_t)p->timestamp;
	}
	if (p->nheaders) {
		for (size_t i = 0; i < p->nheaders; i++)
			entries[i] = entry_str(p->hnames[i], p->hvalues[i]);
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
		props.headers.num_entries = (int)p->nheaders;
		props.headers.entries = entries;
	}
	amqp_bytes_t body = { p->len, (void *)p->body };
	return send_publish(b, p->exchange, p->routing_key ? p->routing_key : "", 0, &props, body,
	    seq);
}

/* The headers of a forwarded message: the original's without
 * BUS_REDELIVERED_HEADER, plus that header when the original was
 * redelivered; t->entries is malloc'd. 0 or -1. */
static int forward_headers(const struct bus_msg *m, amqp_table_t *t)
{
	const amqp_table_t *src = &m->props->p.headers;
	int have = (m->props->p._flags & AMQP_BASIC_HEADERS_FLAG) ? src->num_entries : 0;
	t->num_entries = 0;
	t->entries = malloc(((size_t)have + 1) * sizeof *t->entries);
	if (!t->entries)
		return -1;
	for (int i = 0; i < have; i++) {
		const amqp_table_entry_t *e = &src->entries[i];
		if (e->key.len == strlen(BUS_REDELIVERED_HEADER) &&
		    memcmp(e->key.bytes, BUS_REDELIVERED_HEADER, e->key.len) == 0)
			continue;
		t->entries[t->num_entries++] = *e;
	}
	if (m->redelivered)
		t->entries[t->num_entries++] = entry_str(BUS_REDELIVERED_HEADER, "true");
	return 0;
}

int bus_forward(bus *b, const struct bus_msg *m, const char *exchange, const char *key,
    uint64_t *seq)
{
	amqp_basic_properties_t props;
	amqp_table_t headers;
	if (!b->open)
		return fail(b, "channel closed");
	if (!m->props)
		return fail(b, "forward: the message's properties were not kept");
	if (forward_headers(m, &headers) < 0)
		return fail(b, "%s", strerror(ENOMEM));
	props = m->props->p;
	props._flags &= ~(amqp_flags_t)AMQP_BASIC_USER_ID_FLAG;
	props._flags &= ~(amqp_flags_t)AMQP_BASIC_HEADERS_FLAG;
	if (headers.num_entries) {
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
		props.headers = headers;
	}
	amqp_bytes_t body = { m->len, m->body };
	int rc = send_publish(b, exchange, key, 1, &props, body, seq);
	free(headers.entries);
	return rc;
}

uint64_t bus_unconfirmed(const bus *b)
{
	return b->unconfirmed;
}

/* Settle seq (or everything up to it when multiple) and drop the settled
 * prefix of the window. */
static void settle(bus *b, uint64_t tag, int multiple, int ok, bus_confirm_fn *fn, void *arg)
{
	if (tag < b->base || tag >= b->base + b->npending)
		return;
	uint64_t from = multiple ? b->base : tag;
	for (uint64_t s = from; s <= tag; s++) {
		unsigned char *slot = &b->pending[s - b->base];
		if (*slot) {
			*slot = 0;
			b->unconfirmed--;
			fn(arg, s, ok);
		}
	}
	size_t drop = 0;
	while (drop < b->npending && !b->pending[drop])
		drop++;
	memmove(b->pending, b->pending + drop, b->npending - drop);
	b->npending -= drop;
	b->base += drop;
}

int bus_confirms(bus *b, int timeout_ms, bus_confirm_fn *fn, void *arg)
{
	if (b->outlen && flush_out(b) < 0)
		return -1;
	int64_t deadline = util_mono_ms() + timeout_ms;
	for (;;) {
		int64_t left = deadline - util_mono_ms();
		if (left < 0)
			left = 0;
		struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };
		amqp_frame_t f;
		int rc = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			return 0;
		if (rc != AMQP_STATUS_OK) {
			b->open = 0;
			return fail(b, "confirms: %s", amqp_error_string2(rc));
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_RETURN_METHOD:
			/* an unroutable mandatory message: the broker sends its
			 * return (then its header and body frames, skipped above)
			 * before its ack; which sequence number it was is not
			 * said, so the next ack is taken as a failure for all it
			 * covers */
			b->returned = 1;
			break;
		case AMQP_BASIC_ACK_METHOD: {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			settle(b, a->delivery_tag, a->multiple, !b->returned, fn, arg);
			b->returned = 0;
			break;
		}
		case AMQP_BASIC_NACK_METHOD: {
			amqp_basic_nack_t *n = f.payload.method.decoded;
			settle(b, n->delivery_tag, n->multiple, 0, fn, arg);
			break;
		}
		case AMQP_CHANNEL_CLOSE_METHOD:
		case AMQP_CONNECTION_CLOSE_METHOD:
			b->open = 0;
			return fail(b, "broker closed the channel");
		default:
			break;
		}
		amqp_maybe_release_buffers(b->conn);
		if (b->unconfirmed == 0)
			return 0;
	}
}

int bus_declare_exchange(bus *b, const char *name, const char *type)
{
	if (!b->open)
		return fail(b, "channel closed");
	return declare_exchange(b, name, type);
}
