/* bus_test: the publishes bus frames itself (lib/bus.c encode_publish),
 * corked or not, are byte for byte what librabbitmq's amqp_basic_publish
 * sends: small messages, properties and headers, an empty body, a body
 * spread over several body frames, a burst past the 128 KiB early flush;
 * a message that cannot be framed is refused and leaves nothing behind.
 * The names of the topologies (FERRY_TOPOLOGY, FERRY_VHOST_MODE) and a
 * tenant's vhost URL in REGARDS's MULTI mode. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "bus.h"
#include "tu.h"

/* librabbitmq's frame_max before any tune (AMQP_INITIAL_FRAME_POOL_PAGE_SIZE) */
enum { FRAME_MAX = 65536, CAP = 1 << 22 };

struct msg { const char *exchange, *key, *cid; size_t len; int persistent, priority; };

static const struct msg msgs[] = {
	{ "ex.responses", "", "c-1", 40, 1, -1 },
	{ "ex.responses", "route.key", "", 0, 0, 3 },
	{ "e", "k", "c-big", 3 * FRAME_MAX + 17, 1, -1 },      /* four body frames */
	{ "e", "k", "c-edge", FRAME_MAX - 8, 1, 9 },           /* exactly one full frame */
	{ "ex.responses", "", "c-last", 70000, 1, -1 },         /* past the early flush */
};

static char *body_of(const struct msg *m)
{
	char *b = malloc(m->len + 1);
	for (size_t i = 0; i < m->len; i++)
		b[i] = (char)('a' + (i * 7 + m->len) % 26);
	return b;
}

/* Everything the child writing on sv[0] sends, once it has exited 0. */
static size_t drain(int sv[2], unsigned char *buf)
{
	size_t n = 0;
	ssize_t r;
	close(sv[0]);
	while (n < CAP && (r = read(sv[1], buf + n, CAP - n)) > 0)
		n += (size_t)r;
	close(sv[1]);
	int status = -1;
	wait(&status);
	TU_EQ_INT(status, 0);
	return n;
}

static size_t with_librabbitmq(unsigned char *out)
{
	int sv[2];
	TU_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	amqp_connection_state_t c = amqp_new_connection();
	amqp_tcp_socket_set_sockfd(amqp_tcp_socket_new(c), sv[0]);
	TU_EQ_INT(amqp_get_frame_max(c), FRAME_MAX);
	size_t n = 0;
	if (fork() == 0) {
		for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
			const struct msg *m = &msgs[i];
			char *body = body_of(m);
			amqp_table_entry_t h = { .key = amqp_cstring_bytes("regards.tenant"),
				.value = { .kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("t1") } };
			amqp_basic_properties_t p = {
				._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
				    AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_APP_ID_FLAG,
				.content_type = amqp_cstring_bytes("application/json"),
				.correlation_id = amqp_cstring_bytes(m->cid),
				.app_id = amqp_cstring_bytes("ferry"),
				.headers = { 1, &h },
			};
			if (m->persistent) {
				p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
				p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
			}
			if (m->priority >= 0) {
				p._flags |= AMQP_BASIC_PRIORITY_FLAG;
				p.priority = (uint8_t)m->priority;
			}
			amqp_basic_publish(c, 1, amqp_cstring_bytes(m->exchange), amqp_cstring_bytes(m->key),
			    0, 0, &p, (amqp_bytes_t){ m->len, body });
			free(body);
		}
		_exit(0);
	}
	n = drain(sv, out);
	amqp_destroy_connection(c);
	return n;
}

/* Publish msgs with bus_publish, corked or not; with refuse, a message
 * whose header cannot fit in a frame before each (each must be refused). */
static void publish_all(bus *b, int refuse)
{
	static char huge[FRAME_MAX + 100];
	memset(huge, 'h', sizeof huge - 1);
	for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
		const struct msg *m = &msgs[i];
		char *body = body_of(m);
		const char *hn[] = { "regards.tenant" }, *hv[] = { "t1" }, *bad[] = { huge };
		struct bus_pub p = {
			.exchange = m->exchange, .routing_key = m->key, .body = body, .len = m->len,
			.content_type = "application/json", .correlation_id = m->cid, .app_id = "ferry",
			.persistent = m->persistent, .has_priority = m->priority >= 0,
			.priority = m->priority, .hnames = hn, .hvalues = hv, .nheaders = 1,
		};
		if (refuse) {
			p.hvalues = bad;
			if (bus_publish(b, &p, NULL) != BUS_REFUSED)
				_exit(3);
			p.hvalues = hv;
		}
		if (bus_publish(b, &p, NULL) < 0)
			_exit(2);
		free(body);
	}
}

static size_t with_bus(unsigned char *out, int cork, int refuse)
{
	int sv[2];
	TU_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	size_t n = 0;
	if (fork() == 0) {
		close(sv[1]);
		bus *b = bus_over_fd(sv[0]);
		if (!b)
			_exit(1);
		bus_cork(b, cork);
		publish_all(b, refuse);
		bus_cork(b, 0);
		_exit(0);   /* not bus_close: no closing handshake in the stream */
	}
	n = drain(sv, out);
	return n;
}

/* The stream bus sends, corked and not, is librabbitmq's of msgs. */
static void expect_librabbitmqs(int refuse)
{
	unsigned char *a = malloc(CAP), *b = malloc(CAP);
	size_t na = with_librabbitmq(a);
	TU_CHECK(na > 131072 + 70000);
	for (int cork = 0; cork < 2; cork++) {
		size_t nb = with_bus(b, cork, refuse);
		TU_EQ_INT(nb, na);
		TU_CHECK(na == nb && memcmp(a, b, na) == 0);
	}
	free(a);
	free(b);
}

static void test_frames_are_librabbitmqs(void)
{
	expect_librabbitmqs(0);
}

/* A refused message sends nothing: the stream is that of the others. */
static void test_a_message_too_large_to_frame_is_refused_and_the_rest_go_out(void)
{
	expect_librabbitmqs(1);
}

static void names_env(const char *topology, const char *mode, const char *ms)
{
	const char *vars[] = { "FERRY_TOPOLOGY", "FERRY_VHOST_MODE", "FERRY_REGARDS_MICROSERVICE" };
	const char *vals[] = { topology, mode, ms };
	for (int i = 0; i < 3; i++)
		if (vals[i])
			setenv(vars[i], vals[i], 1);
		else
			unsetenv(vars[i]);
}

/* Unset or empty: ferry's quorum queue, single vhost, names unchanged. */
static void test_the_default_topology_is_ferrys(void)
{
	struct bus_names n;
	char err[256];
	names_env(NULL, "", NULL);
	TU_EQ_INT(bus_names_from_env(&n, err, sizeof err), 0);
	TU_EQ_INT(n.topology, BUS_TOPOLOGY_FERRY);
	TU_EQ_INT(n.vhost_mode, BUS_VHOST_SINGLE);
	TU_EQ_STR(n.request_queue, BUS_REQUEST_QUEUE);
	TU_EQ_STR(n.request_dlq, "regards.DLQ");
}

/* RegardsAmqpAdmin.getSubscriptionQueueName and getDedicatedDLQFromQueueName */
static void test_regards_names_rs_deliverys_queue_and_its_dlq(void)
{
	struct bus_names n;
	char err[256];
	names_env("regards", "multi", NULL);
	TU_EQ_INT(bus_names_from_env(&n, err, sizeof err), 0);
	TU_EQ_INT(n.topology, BUS_TOPOLOGY_REGARDS);
	TU_EQ_INT(n.vhost_mode, BUS_VHOST_MULTI);
	TU_EQ_STR(n.request_queue, "regards.broadcast.rs-delivery.fr.cnes.regards.modules.delivery."
	    "service.submission.create.amqp.DeliveryRequestEventHandler");
	TU_EQ_STR(n.request_dlq, "regards.broadcast.rs-delivery.fr.cnes.regards.modules.delivery."
	    "service.submission.create.amqp.DeliveryRequestEventHandler.DLQ");
	TU_EQ_STR(n.dlq, "regards.DLQ");
	names_env("regards", NULL, "delivery-b");
	TU_EQ_INT(bus_names_from_env(&n, err, sizeof err), 0);
	TU_CHECK(strncmp(n.request_queue, "regards.broadcast.delivery-b.fr.", 32) == 0);
}

static void test_bad_values_are_named(void)
{
	struct bus_names n;
	char err[256];
	names_env("quorum", NULL, NULL);
	TU_EQ_INT(bus_names_from_env(&n, err, sizeof err), -1);
	TU_EQ_STR(err, "FERRY_TOPOLOGY: quorum: want ferry or regards");
	names_env(NULL, "MULTI", NULL);
	TU_EQ_INT(bus_names_from_env(&n, err, sizeof err), -1);
	TU_EQ_STR(err, "FERRY_VHOST_MODE: MULTI: want single or multi");
	names_env("regards", NULL, "rs delivery");
	TU_EQ_INT(bus_names_from_env(&n, err, sizeof err), -1);
	TU_CHECK(strncmp(err, "FERRY_REGARDS_MICROSERVICE: rs delivery:", 40) == 0);
	char big[300];
	memset(big, 'm', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	names_env("regards", NULL, big);
	TU_EQ_INT(bus_names_from_env(&n, err, sizeof err), -1);
	names_env(NULL, NULL, NULL);
}

/* RabbitVirtualHostAdmin.getVhostName: "regards." + tenant.toLowerCase() */
static void test_a_tenants_url_names_its_vhost(void)
{
	char out[128];
	TU_EQ_INT(bus_tenant_url("amqp://u:p@127.0.0.1:5672/regards.multitenant.manager", "ProjectA",
	    out, sizeof out), 0);
	TU_EQ_STR(out, "amqp://u:p@127.0.0.1:5672/regards.projecta");
	TU_EQ_INT(bus_tenant_url("amqp://h", "p_1.x-y", out, sizeof out), 0);
	TU_EQ_STR(out, "amqp://h/regards.p_1.x-y");
	TU_EQ_INT(bus_tenant_url("amqp://h:1/", "t", out, sizeof out), 0);
	TU_EQ_STR(out, "amqp://h:1/regards.t");
	TU_EQ_INT(bus_tenant_url("amqp://h/v", "t", out, 12), -1);
	TU_EQ_INT(bus_tenant_url("nonsense", "t", out, sizeof out), -1);
}

TU_MAIN(TU(test_frames_are_librabbitmqs),
    TU(test_a_message_too_large_to_frame_is_refused_and_the_rest_go_out),
    TU(test_the_default_topology_is_ferrys),
    TU(test_regards_names_rs_deliverys_queue_and_its_dlq),
    TU(test_bad_values_are_named),
    TU(test_a_tenants_url_names_its_vhost))
