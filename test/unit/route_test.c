/* route_test: scale-out routing of lib/bus.c — the rendezvous owner of a
 * key (BLAKE2b-64 weights, list order irrelevant, minimal movement when
 * the membership changes), the FERRY_INSTANCES list, the routing key. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "tu.h"

enum { KEYS = 1000 };

static const struct bus_names names = {
	.request_exchange = BUS_REQUEST_EXCHANGE, .request_queue = BUS_REQUEST_QUEUE,
	.response_exchange = BUS_RESPONSE_EXCHANGE, .response_alias = BUS_RESPONSE_ALIAS,
	.dlx = BUS_DLX, .dlq = BUS_DLQ,
};

static void key_of(int i, char out[256])
{
	char cid[32];
	snprintf(cid, sizeof cid, "c-%d", i);
	bus_route_key("so", cid, out);
}

/* Vectors from an independent implementation, python3:
 * int.from_bytes(hashlib.blake2b(name + b"\0" + key, digest_size=8).digest(), "big") */
static void test_weight_is_blake2b_64_big_endian(void)
{
	static const struct { const char *name, *key; uint64_t w; } cases[] = {
		{ "a", "so/c-1", 0x0d5c88802b0096edULL },
		{ "b", "so/c-1", 0xdf8a7c2cad80ddc3ULL },
		{ "i01", "t/x", 0x4bd6ec26b5e14464ULL },
		{ "a", "", 0x4dd0bb1c45b748c1ULL },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		TU_CHECK(bus_route_weight(cases[i].name, cases[i].key) == cases[i].w);
	const char *ab[] = { "a", "b" };
	TU_EQ_STR(bus_route_owner(ab, 2, "so/c-1"), "b");
	TU_CHECK(bus_route_owner(ab, 0, "so/c-1") == NULL);
}

static void test_owner_does_not_depend_on_list_order(void)
{
	const char *orders[][4] = {
		{ "a", "b", "c", "d" }, { "d", "c", "b", "a" }, { "b", "d", "a", "c" },
	};
	for (int i = 0; i < KEYS; i++) {
		char key[256];
		key_of(i, key);
		const char *first = bus_route_owner(orders[0], 4, key);
		for (size_t o = 1; o < sizeof orders / sizeof orders[0]; o++)
			TU_EQ_STR(bus_route_owner(orders[o], 4, key), first);
	}
}

static void test_every_instance_gets_a_share(void)
{
	const char *four[] = { "a", "b", "c", "d" };
	int share[4] = { 0 };
	for (int i = 0; i < KEYS; i++) {
		char key[256];
		key_of(i, key);
		const char *o = bus_route_owner(four, 4, key);
		for (int k = 0; k < 4; k++)
			share[k] += o == four[k];
	}
	/* 250 expected each, sd 13.7: 150 is 7 sd away */
	for (int k = 0; k < 4; k++)
		TU_CHECK(share[k] >= 150);
	TU_EQ_INT(share[0] + share[1] + share[2] + share[3], KEYS);
}

static void test_membership_change_moves_only_its_keys(void)
{
	const char *four[] = { "a", "b", "c", "d" }, *three[] = { "a", "b", "d" },
	    *five[] = { "a", "b", "c", "d", "e" };
	int moved = 0, gained = 0;
	for (int i = 0; i < KEYS; i++) {
		char key[256];
		key_of(i, key);
		const char *was = bus_route_owner(four, 4, key);
		const char *now = bus_route_owner(three, 3, key);
		/* c removed: only c's keys move, to the others */
		if (strcmp(was, "c") == 0)
			moved++;
		else
			TU_EQ_STR(now, was);
		/* e added: a key stays or goes to e, never between the others */
		const char *grown = bus_route_owner(five, 5, key);
		if (strcmp(grown, was) != 0) {
			TU_EQ_STR(grown, "e");
			gained++;
		}
	}
	TU_CHECK(moved > 0 && moved < KEYS / 2);
	TU_CHECK(gained > 0 && gained < KEYS / 2);
}

static void test_members_parse(void)
{
	char err[256];
	struct bus_members m;
	TU_EQ_INT(bus_members_parse(&names, " a,b  c,\td,", &m, err, sizeof err), 0);
	TU_EQ_INT(m.n, 4);
	if (m.n == 4) {
		TU_EQ_STR(m.names[0], "a");
		TU_EQ_STR(m.names[3], "d");
	}
	bus_members_free(&m);
	TU_EQ_INT(bus_members_parse(&names, "i-01.x_y", &m, err, sizeof err), 0);
	TU_EQ_INT(m.n, 1);
	bus_members_free(&m);

	static const struct { const char *list, *why; } bad[] = {
		{ "", "no instance name in the list" },
		{ " , ,", "no instance name in the list" },
		{ "a,b,a", "instance name a listed twice" },
		{ "a,b/c", "instance name b/c: want 1 to 64 of [A-Za-z0-9_.-]" },
		{ "a ..", "instance name ..: want 1 to 64 of [A-Za-z0-9_.-]" },
		{ "x12345678901234567890123456789012345678901234567890123456789012345",
		    "instance name x12345678901234567890123456789012345678901234567890123456789012345:"
		    " want 1 to 64 of [A-Za-z0-9_.-]" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		TU_EQ_INT(bus_members_parse(&names, bad[i].list, &m, err, sizeof err), -1);
		TU_EQ_STR(err, bad[i].why);
		TU_CHECK(m.names == NULL && m.buf == NULL);
	}
	/* a queue name over 255 bytes is refused like a bad name */
	char longq[250];
	memset(longq, 'q', sizeof longq - 1);
	longq[sizeof longq - 1] = '\0';
	struct bus_names n = names;
	n.request_queue = longq;
	TU_EQ_INT(bus_members_parse(&n, "abcd", &m, err, sizeof err), 0);
	bus_members_free(&m);
	TU_EQ_INT(bus_members_parse(&n, "abcdef", &m, err, sizeof err), -1);
}

static void test_route_key_cut_on_a_character(void)
{
	char cid[600], key[256];
	/* "so/c" and 125 é make 254 bytes: the cut at 255 falls inside an é */
	strcpy(cid, "c");
	for (int i = 0; i < 299; i++)
		strcat(cid, "\xc3\xa9");
	bus_route_key("so", cid, key);
	TU_EQ_INT(strlen(key), 254);
	bus_route_key("so", "c-1", key);
	TU_EQ_STR(key, "so/c-1");
}

TU_MAIN(
	TU(test_weight_is_blake2b_64_big_endian),
	TU(test_owner_does_not_depend_on_list_order),
	TU(test_every_instance_gets_a_share),
	TU(test_membership_change_moves_only_its_keys),
	TU(test_members_parse),
	TU(test_route_key_cut_on_a_character)
)
