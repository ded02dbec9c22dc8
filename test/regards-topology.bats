#!/usr/bin/env bats
# FERRY_TOPOLOGY=regards and FERRY_VHOST_MODE=multi against a real RabbitMQ
# (ferry-sandbox): ferry takes over the queue rs-delivery consumes, as
# RegardsAmqpAdmin declares it (classic, x-max-priority 255, its own .DLQ),
# answers what a REGARDS client publishes there, honours priorities, refuses
# a queue declared otherwise, and in MULTI vhost mode serves each tenant on
# its own vhost regards.<tenant>. What was declared is read back with
# rabbitmqctl and amqplib (amqp-peek.js), never with ferry itself.

load lib

RX=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent
ALIAS=regards.broadcast.fr.cnes.regards.modules.ltamanager.amqp.output.DeliveryResponseDtoEvent
Q=regards.broadcast.rs-delivery.fr.cnes.regards.modules.delivery.service.submission.create.amqp.DeliveryRequestEventHandler
VHOST=regards.multitenant.manager

peek() { node "$BATS_TEST_DIRNAME/amqp-peek.js" "$@"; }
ctl() { ferry-sandbox ctl "$SANDBOX_DIR" "$@"; }
# url VHOST: the sandbox's URL on another vhost
url() { printf '%s/%s' "${FERRY_AMQP_URL%/*}" "$1"; }
# vhost NAME: create it, guest may do anything there
vhost() {
	ctl add_vhost "$1" >/dev/null &&
		ctl set_permissions -p "$1" guest '.*' '.*' '.*' >/dev/null
}
body() { printf '{"correlationId":"%s","targetDelivery":"s3","order":{"queries":["*"],"user":"u@example.org"}}' "$1"; }
# the request ids of the journal whose correlation id starts with $2, in
# the order they were journaled
journaled() { jq_sql "$1" "select correlation_id from request where correlation_id like '$2%' order by id"; }

setup_file() {
	# a broker REGARDS runs on: its vhost, none of ferry's own queues
	export FERRY_RABBITMQ_DEFINITIONS="$BATS_FILE_TMPDIR/definitions.json"
	printf '{"vhosts":[{"name":"%s"}]}\n' "$VHOST" >"$FERRY_RABBITMQ_DEFINITIONS"
	sandbox_up
	export FERRY_TENANTS="$BATS_FILE_TMPDIR/tenants"
	export FERRY_TOPOLOGY=regards
	tenant p1
	# a running rs-delivery's topology, as it declared it
	peek rsdelivery "$FERRY_AMQP_URL"
}

teardown_file() {
	sandbox_down
}

setup() {
	sandbox_env
	export FERRY_TENANTS="$BATS_FILE_TMPDIR/tenants"
	export FERRY_TOPOLOGY=regards
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	cd "$BATS_TEST_TMPDIR" || return 1
}

# what a test started in the background runs on its own journal: stop it
# (ingest's SIGTERM ends the chain: validate then sees EOF)
teardown() {
	ferry_procs | awk '$2 == "ferry-amqp-ingest" || $2 == "ferry-notify" { print $1 }' |
		xargs -r kill -TERM 2>/dev/null
	wait 2>/dev/null
	return 0
}

@test "FERRY_TOPOLOGY=regards declares rs-delivery's queue, its DLQ and bindings as RegardsAmqpAdmin does" {
	vhost takeover.a
	run env FERRY_AMQP_URL="$(url takeover.a)" ferry-amqp-ingest -1
	assert_success
	run ctl list_queues -p takeover.a -q name durable auto_delete exclusive arguments
	assert_success
	# a classic queue (no x-queue-type), durable, not auto-delete
	assert_line --regexp "^$Q[[:space:]]+true[[:space:]]+false[[:space:]]+false[[:space:]]+\[\{\"x-max-priority\",255\},\{\"x-dead-letter-exchange\",\"regards.DLX\"\},\{\"x-dead-letter-routing-key\",\"$Q.DLQ\"\}\]$"
	assert_line --regexp "^$Q.DLQ[[:space:]]+true[[:space:]]+false[[:space:]]+false[[:space:]]+\[\{\"x-max-priority\",255\}\]$"
	assert_line --regexp "^regards.DLQ[[:space:]]+true[[:space:]]+false[[:space:]]+false[[:space:]]+\[\{\"x-max-priority\",255\}\]$"
	refute_output --partial ferry.delivery.requests
	run ctl list_bindings -p takeover.a -q source_name destination_name routing_key
	assert_success
	assert_line --regexp "^$RX[[:space:]]+$Q[[:space:]]*$"
	assert_line --regexp "^regards.DLX[[:space:]]+$Q.DLQ[[:space:]]+$Q.DLQ$"
	assert_line --regexp "^regards.DLX[[:space:]]+regards.DLQ[[:space:]]+regards.DLQ$"
	run ctl list_exchanges -p takeover.a -q name type durable
	assert_line --regexp "^$RX[[:space:]]+fanout[[:space:]]+true$"
	assert_line --regexp "^regards.DLX[[:space:]]+topic[[:space:]]+true$"
	# and rs-delivery, starting after ferry, finds what it declares
	run peek rsdelivery "$(url takeover.a)"
	assert_success
}

@test "a request a REGARDS client publishes, waiting in rs-delivery's queue, is GRANTED" {
	peek publish "$FERRY_AMQP_URL" "$RX" p1 "$(body b-1)" 4 client
	run peek count "$FERRY_AMQP_URL" "$Q"
	assert_output 1
	# notify declares the response exchanges; bind a reader to the alias
	ferry-notify -1
	peek bind "$FERRY_AMQP_URL" test.alias "$ALIAS"
	ferry-amqp-ingest -1 | ferry-request-validate
	ferry-notify -1
	run peek get "$FERRY_AMQP_URL" test.alias 1 20
	assert_success
	assert_output --partial '{\"correlationId\":\"b-1\",\"status\":\"GRANTED\"}'
	# taken from rs-delivery's queue, no queue of ferry's own
	run peek count "$FERRY_AMQP_URL" "$Q"
	assert_output 0
	run ctl list_queues -p "$VHOST" -q name
	refute_output --partial ferry.delivery.requests
}

@test "priorities are honoured: what waits with a higher priority is taken first" {
	for i in 1 2 3; do
		peek publish "$FERRY_AMQP_URL" "$RX" p1 "$(body "prio-low-$i")" 1
	done
	# 5 then 9: a quorum queue would keep them in that order (RabbitMQ 3
	# ignores priorities there, 4 has two levels: 5 and 9 alike)
	peek publish "$FERRY_AMQP_URL" "$RX" p1 "$(body prio-mid)" 5
	peek publish "$FERRY_AMQP_URL" "$RX" p1 "$(body prio-high)" 9
	run peek count "$FERRY_AMQP_URL" "$Q"
	assert_output 5
	ferry-amqp-ingest -1 >/dev/null
	run journaled "$FERRY_JOURNAL" prio-
	assert_success
	assert_output "$(printf 'prio-high\nprio-mid\nprio-low-1\nprio-low-2\nprio-low-3')"
}

@test "a queue already declared with other arguments exits 100 and says what differs" {
	vhost takeover.d
	# what another declaration may have left: the queue without x-max-priority
	peek rsdelivery "$(url takeover.d)" rs-delivery noprio
	run env FERRY_AMQP_URL="$(url takeover.d)" ferry-amqp-ingest -1
	assert_failure 100
	assert_output --partial "PRECONDITION_FAILED"
	assert_output --partial "x-max-priority"
	assert_output --partial "FERRY_TOPOLOGY=regards declares rs-delivery's classic queue"
	run env FERRY_AMQP_URL="$(url takeover.d)" ferry-notify -1
	assert_failure 100
	# and the queue is left as it was
	run ctl list_queues -p takeover.d -q name arguments
	assert_line --regexp "^$Q[[:space:]]+\[\{\"x-dead-letter-exchange\",\"regards.DLX\"\},\{\"x-dead-letter-routing-key\",\"$Q.DLQ\"\}\]$"
}

@test "FERRY_VHOST_MODE=multi: each tenant on its own vhost regards.<tenant>, an absent one blocks none" {
	export FERRY_VHOST_MODE=multi
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	vhost regards.t1
	vhost regards.t2
	tenant t1
	tenant T2   # REGARDS lower-cases the tenant: vhost regards.t2
	# notify declares the response exchanges on every present vhost
	FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants" ferry-notify -1
	peek bind "$(url regards.t1)" test.alias "$ALIAS"
	peek bind "$(url regards.t2)" test.alias "$ALIAS"
	# and on the URL's own vhost, to see that nothing goes there
	FERRY_VHOST_MODE=single ferry-notify -1
	peek bind "$FERRY_AMQP_URL" test.multi "$ALIAS"
	tenant t3   # no vhost regards.t3
	(ferry-amqp-ingest -v | ferry-request-validate -v >/dev/null) 2>>ingest.log &
	ferry-notify -v 2>>notify.log &
	peek publish "$(url regards.t1)" "$RX" t1 "$(body m-1)"
	peek publish "$(url regards.t2)" "$RX" T2 "$(body m-2)"
	run peek get "$(url regards.t1)" test.alias 1 20
	assert_success
	assert_output --partial '{\"correlationId\":\"m-1\",\"status\":\"GRANTED\"}'
	assert_output --partial '"regards.tenant":"t1"'
	run peek get "$(url regards.t2)" test.alias 1 20
	assert_success
	assert_output --partial '{\"correlationId\":\"m-2\",\"status\":\"GRANTED\"}'
	assert_output --partial '"regards.tenant":"T2"'
	# nothing went to another vhost, nor to the URL's own
	run peek count "$(url regards.t1)" test.alias
	assert_output 0
	run peek count "$(url regards.t2)" test.alias
	assert_output 0
	run peek count "$FERRY_AMQP_URL" test.multi
	assert_output 0
	# a client of t1's vhost may not speak for T2: dead-lettered, as REGARDS
	# dead-letters what it cannot take (the queue's own DLQ)
	# and one without the header is refused as on a single vhost (REGARDS's
	# listener requires it in both modes)
	peek publish "$(url regards.t1)" "$RX" T2 "$(body m-x)"
	peek publish "$(url regards.t1)" "$RX" - "$(body m-none)"
	run peek get "$(url regards.t1)" "$Q.DLQ" 2 20
	assert_success
	assert_output --partial 'm-x'
	assert_output --partial 'm-none'
	run jq_sql "$FERRY_JOURNAL" "select tenant || ' ' || correlation_id from request order by tenant"
	assert_output "$(printf 'T2 m-2\nt1 m-1')"
	run grep -c 'tenant t3: .*retrying' ingest.log
	refute_output 0
}

@test "bad FERRY_TOPOLOGY or FERRY_VHOST_MODE, or two tenants on one vhost, exit 100 naming why" {
	run env FERRY_TOPOLOGY=rabbit ferry-amqp-ingest -1
	assert_failure 100
	assert_output --partial "FERRY_TOPOLOGY: rabbit: want ferry or regards"
	run env FERRY_VHOST_MODE=many ferry-notify -1
	assert_failure 100
	assert_output --partial "FERRY_VHOST_MODE: many: want single or multi"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants" FERRY_VHOST_MODE=multi
	tenant Ab
	tenant aB
	run ferry-amqp-ingest -1
	assert_failure 100
	assert_output --partial "share the vhost regards.ab"
	run ferry-notify -1
	assert_failure 100
	assert_output --partial "share the vhost regards.ab"
}
