#!/usr/bin/env bats
# Scale-out: two complete ferry instances, a and b (FERRY_INSTANCE, both
# with FERRY_INSTANCES="a b"), each a ferry-run with its own journal and
# workspace, share one RabbitMQ and one S3 server. Every instance forwards
# the shared request queue to the direct owner exchange, with the name of
# the rendezvous owner of tenant/correlationId as routing key, and
# journals its own queue, so an id always meets the same journal. 500 requests (DONE,
# DENIED and ERROR outcomes) are published while instance a is SIGKILLed
# for 20 s; then the two journals, the responses (read by an independent
# amqplib client) and the duplicates must agree: each id in exactly one
# journal, ended once and answered, duplicates answered by their owner,
# also after a RabbitMQ restart.

load lib

RX=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent
RESP=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent
N=500

peek() { node "$BATS_TEST_DIRNAME/amqp-peek.js" "$@"; }

# on NAME: the environment of instance NAME for what follows
on() {
	export FERRY_INSTANCE=$1 FERRY_INSTANCES="a b" FERRY_JOURNAL="$D/$1/journal.db" \
		FERRY_WORKSPACE="$D/$1/ws" TMPDIR="$D/$1"
}

# start NAME: run instance NAME's ferry-run in the background
start() {
	(
		on "$1"
		ferry-run -v >/dev/null 2>>"$D/$1.log" 3>&- &
		echo $! >"$D/$1.pid"
	)
}

# kill_all NAME: SIGKILL instance NAME's ferry-run (first, so that it
# restarts nothing), then every ferry program of its journal, until none is
# left
kill_all() {
	local pids
	[ -s "$D/$1.pid" ] && kill -KILL "$(cat "$D/$1.pid")" 2>/dev/null
	for _ in $(seq 1 50); do
		pids=$(on "$1" && ferry_procs | awk '{ print $1 }')
		[ -n "$pids" ] || return 0
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		sleep 0.1
	done
	return 1
}

# stop NAME: SIGTERM instance NAME's ferry-run and wait for it to end
stop() {
	local pid
	pid=$(cat "$D/$1.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do
		st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 0
		[ "$st" = Z ] && return 0
		sleep 0.1
	done
	return 1
}

# sql NAME QUERY: on instance NAME's journal
sql() { jq_sql "$D/$1/journal.db" "$2"; }

# consumers: "queue consumers" of the shared and the instance queues
consumers() {
	ferry-sandbox ctl "$SANDBOX_DIR" -q list_queues -p regards.multitenant.manager --no-table-headers \
		name consumers | grep '^ferry\.delivery\.requests' | sort | tr '\t\n' ' '
}
CONSUMING='ferry.delivery.requests 2 ferry.delivery.requests.a 1 ferry.delivery.requests.b 1 '

setup_file() {
	sandbox_up
	export D="$BATS_FILE_TMPDIR"
	export FERRY_TENANTS="$D/tenants"
	mkdir -p "$D/a" "$D/b"
	# six small products of three files, and one whose catalog md5 is wrong
	for p in 0 1 2 3 4 5; do
		mkdir -p "$D/data/P$p"
		for f in a b c; do head -c $(((RANDOM % 16 + 1) * 1024)) /dev/urandom >"$D/data/P$p/$f.nc"; done
	done
	ferry-catalog -c "$D/cat.db" init
	ferry-catalog -c "$D/cat.db" scan -t coastline "$D/data" >/dev/null
	printf '{"productId":"Bad","files":[{"dataType":"RAWDATA","name":"bad.nc","url":"file://%s/data/P0/a.nc","size":%s,"md5":"00000000000000000000000000000000"}]}\n' \
		"$D" "$(stat -c %s "$D/data/P0/a.nc")" | ferry-catalog -c "$D/cat.db" add
	tenant so "{\"request_ttl\":1,\"catalog\":\"$D/cat.db\",\"file_roots\":[\"$D/data\"],
		\"users\":[\"ana@example.org\"],
		\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,
		\"region\":\"us-east-1\",\"key\":\"S3RVER\",\"secret\":\"S3RVER\"},
		\"delivery_bucket\":\"deliveries\"}"
	peek bind "$FERRY_AMQP_URL" test.responses "$RESP"
	start a
	start b
	# both consume the shared queue and their own
	for _ in $(seq 1 120); do [ "$(consumers)" = "$CONSUMING" ] && break; sleep 0.5; done
	[ "$(consumers)" = "$CONSUMING" ]
}

teardown_file() {
	if [ -n "${BATS_FILE_TMPDIR:-}" ]; then
		D=$BATS_FILE_TMPDIR
		stop a
		stop b
		kill_all a
		kill_all b
	fi
	sandbox_down
}

setup() {
	sandbox_env
	export D="$BATS_FILE_TMPDIR" FERRY_TENANTS="$BATS_FILE_TMPDIR/tenants"
	cd "$BATS_TEST_TMPDIR" || return 1
}

body() {
	printf '{"correlationId":"%s","targetDelivery":"s3","order":{"queries":["%s"],"user":"%s"}}' "$1" "$2" "$3"
}

# line TENANT BODY: a line for amqp-peek.js stream
line() { jq -cn --arg t "$1" --arg b "$2" '{tenant: $t, body: $b}'; }

# the 500 requests and the outcome each must have: 3 in 5 DONE, 1 in 5
# DENIED (a user not allowed), 1 in 5 ERROR (EMPTY_ORDER or a wrong md5)
requests() {
	local i
	for i in $(seq 1 $N); do
		case $((i % 5)) in
		0 | 1 | 2) line so "$(body "c-$i" "productId:P$((i % 6))" ana@example.org)"
			echo "so c-$i DONE" >>"$D/expect" ;;
		3) line so "$(body "c-$i" productId:P1 eve@example.org)"
			echo "so c-$i DENIED" >>"$D/expect" ;;
		4) if [ $((i % 10)) = 4 ]; then q=productId:Nothing; else q=productId:Bad; fi
			line so "$(body "c-$i" "$q" ana@example.org)"
			echo "so c-$i ERROR" >>"$D/expect" ;;
		esac
	done
}

settled() {
	local n=0 j
	for j in a b; do
		[ "$(sql $j "select count(*) from request where state not in ('DONE','DENIED','ERROR')")" = 0 ] || return 1
		[ "$(sql $j "select count(*) from outbox where sent_at is null")" = 0 ] || return 1
		n=$((n + $(sql $j "select count(*) from request")))
	done
	[ "$n" = $N ]
}

# responses COUNT FILE: read COUNT responses off test.responses into FILE,
# then make sure no more come
responses() {
	peek get "$FERRY_AMQP_URL" test.responses "$1" 60 >"$2" || return 1
	sleep 1
	[ "$(peek count "$FERRY_AMQP_URL" test.responses)" = 0 ]
}

# terminal CID: the terminal response body that CID got first
terminal() {
	jq -r --arg c "$1" '.body | select(fromjson | .correlationId == $c and .status != "GRANTED")' \
		"$D/responses" | head -n 1
}

@test "scale-out: 500 requests shared by two instances while one is SIGKILLed for 20 s" {
	requests >"$D/requests"
	t0=$SECONDS
	peek stream "$FERRY_AMQP_URL" "$RX" 25 <"$D/requests" 2>"$D/publish.log" &
	publisher=$!
	sleep 3
	kill_all a
	echo "$((SECONDS - t0)) a killed" >>"$D/timeline"
	sleep 20
	[ "$(on a && ferry_procs)" = "" ]
	start a
	echo "$((SECONDS - t0)) a started" >>"$D/timeline"
	wait "$publisher"
	for _ in $(seq 1 480); do settled && break; sleep 0.5; done
	echo "$((SECONDS - t0)) settled" >>"$D/timeline"
	settled
	n=$(peek count "$FERRY_AMQP_URL" test.responses)
	peek get "$FERRY_AMQP_URL" test.responses "$n" 60 >"$D/responses"
	echo "# $(tr '\n' ',' <"$D/timeline" | sed 's/,$//; s/,/, /g') (s)" >&3
}

@test "scale-out: each correlationId is in exactly one journal, and both instances did a good share" {
	run sql a "attach '$D/b/journal.db' as b;
		select count(*) from request r join b.request s using (tenant, correlation_id)"
	assert_output 0
	na=$(sql a "select count(*) from request") nb=$(sql b "select count(*) from request")
	for j in a b; do
		echo "# instance $j: $(sql $j "select count(*) from request") requests ($(sql $j "select
			group_concat(n || ' ' || state, ', ') from (select state, count(*) n from request group by state)"))" >&3
	done
	[ $((na + nb)) = $N ]
	# 500 ids hashed on two equal buckets: 250 +- 11; 150 is 9 sigma away
	[ "$na" -ge 150 ] && [ "$nb" -ge 150 ]
}

@test "scale-out: every request has exactly one terminal state, the one its kind calls for" {
	for j in a b; do
		run sql $j "select count(*) from (select request_id from event
			where state in ('DONE','DENIED','ERROR') group by request_id having count(*) != 1)"
		assert_output 0
	done
	got=$(for j in a b; do sql $j "select tenant || ' ' || correlation_id || ' ' || state from request"; done | sort)
	diff <(sort "$D/expect") <(echo "$got")
	# a's requests that waited in its queue while it was down were done too
	[ "$(sql a "select count(*) from request where state = 'DONE'")" -gt 0 ]
}

@test "scale-out: each request got its terminal response, never two that differ" {
	status=0
	node "$BATS_TEST_DIRNAME/responses-check.js" "$D/responses" "$D/expect" >"$D/response-summary" || status=$?
	cat "$D/response-summary"
	echo "# $(tail -n 1 "$D/response-summary")" >&3
	[ "$status" = 0 ]
}

# answered_again CID...: each has, in dup.responses, the very terminal
# response it got the first time
answered_again() {
	local c got
	for c in "$@"; do
		got=$(jq -r --arg c "$c" '.body | select(fromjson | .correlationId == $c)' dup.responses)
		[ "$got" = "$(terminal "$c")" ] || { echo "$c: $got, first $(terminal "$c")"; false; }
	done
}

# dups NAME FROM COUNT: COUNT DONE correlationIds of instance NAME, from
# the FROM-th on (each test takes its own: an id sent again with another
# body becomes a new submission). DONE ones: a DENIED or ERROR id sent
# again is a new submission even with the same body.
dups() { sql "$1" "select correlation_id from request where state = 'DONE' order by id limit $3 offset $2"; }

# again CID...: publish each CID's original request again, same body
again() {
	local c
	for c in "$@"; do grep -F "\\\"correlationId\\\":\\\"$c\\\"," "$D/requests"; done
}

@test "scale-out: duplicates (same body) go to their owner and are answered again, identically" {
	na=$(sql a "select count(*) from request") nb=$(sql b "select count(*) from request")
	mapfile -t ca < <(dups a 0 15)
	mapfile -t cb < <(dups b 0 15)
	again "${ca[@]}" "${cb[@]}" >dup.ndjson
	[ "$(wc -l <dup.ndjson)" = 30 ]
	peek stream "$FERRY_AMQP_URL" "$RX" <dup.ndjson 2>/dev/null
	responses 30 dup.responses
	answered_again "${ca[@]}" "${cb[@]}"
	# nothing new in either journal; each owner queued the response again
	[ "$(sql a "select count(*) from request")" = "$na" ]
	[ "$(sql b "select count(*) from request")" = "$nb" ]
	for c in "${ca[@]}"; do [ "$(sql b "select count(*) from request where correlation_id = '$c'")" = 0 ]; done
	for c in "${cb[@]}"; do [ "$(sql a "select count(*) from request where correlation_id = '$c'")" = 0 ]; done
	echo "# duplicates: ${#ca[@]} of a and ${#cb[@]} of b answered again by their owner" >&3
}

@test "scale-out: another body for a DONE id is a new submission at the owner of the id, the first kept in its history" {
	mapfile -t ca < <(dups a 15 5)
	mapfile -t cb < <(dups b 15 5)
	# no request of the 500 asks for productId:Other: the body differs, and
	# it matches nothing: GRANTED, then ERROR EMPTY_ORDER
	for c in "${ca[@]}" "${cb[@]}"; do line so "$(body "$c" productId:Other ana@example.org)"; done >conflict.ndjson
	peek stream "$FERRY_AMQP_URL" "$RX" <conflict.ndjson 2>/dev/null
	responses 20 conflict.responses
	run jq -r '.body | fromjson | .status + " " + (.errorType // "-")' conflict.responses
	[ "$(grep -c '^GRANTED -$' <<<"$output")" = 10 ]
	[ "$(grep -c '^ERROR EMPTY_ORDER$' <<<"$output")" = 10 ]
	for c in "${ca[@]}"; do
		[ "$(sql a "select state || ' ' || submission from request where correlation_id = '$c'")" = "ERROR 2" ]
		[ "$(sql a "select count(*) from event e join request r on r.id = e.request_id
			where r.correlation_id = '$c' and e.state = 'DONE' and e.submission = 1")" = 1 ]
		[ "$(sql b "select count(*) from request where correlation_id = '$c'")" = 0 ]
	done
	for c in "${cb[@]}"; do
		[ "$(sql b "select state || ' ' || submission from request where correlation_id = '$c'")" = "ERROR 2" ]
		[ "$(sql a "select count(*) from request where correlation_id = '$c'")" = 0 ]
	done
}

@test "scale-out: an id over 255 bytes is routed on its first 255 and meets its journal again" {
	# 300 characters, 599 bytes: DENIED (over 255 characters) by its owner;
	# "so/c" and 125 é make 254 bytes, so the 255-byte cut falls inside an é
	long=c$(printf 'é%.0s' $(seq 1 299))
	line so "$(body "$long" productId:P1 ana@example.org)" >long.ndjson
	peek stream "$FERRY_AMQP_URL" "$RX" <long.ndjson 2>/dev/null
	peek stream "$FERRY_AMQP_URL" "$RX" <long.ndjson 2>/dev/null
	responses 2 long.responses
	run jq -r '.body | fromjson | .status + " " + .errorType' long.responses
	assert_output $'DENIED INVALID_CONTENT\nDENIED INVALID_CONTENT'
	[ "$(sed -n 1p long.responses | jq .body)" = "$(sed -n 2p long.responses | jq .body)" ]
	n=0
	for j in a b; do n=$((n + $(sql $j "select count(*) from request where correlation_id = '$long'"))); done
	[ "$n" = 1 ]
}

@test "scale-out: a message without regards.tenant is dead-lettered, in no journal" {
	before=$(peek count "$FERRY_AMQP_URL" regards.DLQ)
	amqp-publish --url="$FERRY_AMQP_URL" -e "$RX" -C application/json -b '{"correlationId":"nobody"}'
	for _ in $(seq 1 50); do
		[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" = $((before + 1)) ] && break
		sleep 0.2
	done
	[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" = $((before + 1)) ]
	for j in a b; do [ "$(sql $j "select count(*) from request where correlation_id = 'nobody'")" = 0 ]; done
	grep -q 'rejecting message .*no regards.tenant header' "$D/a.log" "$D/b.log"
}

# owners NAME...: for each "tenant<TAB>correlationId" line of stdin, its
# owner among NAME..., computed apart from ferry: the name of highest
# BLAKE2b-64(name NUL key), the 8 bytes read as a big-endian integer, a
# tie to the name that sorts first; the key is tenant/correlationId cut to
# 255 bytes on a UTF-8 boundary
owners() {
	python3 -c '
import hashlib, sys
names = sorted(sys.argv[1:])
def key(tenant, cid):
    k = tenant + b"/" + cid
    if len(k) > 255:
        n = 255
        while n > 0 and k[n] & 0xC0 == 0x80:
            n -= 1
        k = k[:n]
    return k
def weight(name, k):
    h = hashlib.blake2b(name.encode() + b"\0" + k, digest_size=8).digest()
    return int.from_bytes(h, "big")
for line in sys.stdin.buffer:
    tenant, cid = line.rstrip(b"\n").split(b"\t", 1)
    k = key(tenant, cid)
    print(max(names, key=lambda n: weight(n, k)))
' "$@"
}

# ids NAME: "tenant<TAB>correlationId" of each request of instance NAME
ids() { sqlite3 -batch -noheader -separator "$(printf '\t')" "$D/$1/journal.db" 'select tenant, correlation_id from request'; }

@test "scale-out: every id is in the journal of its rendezvous owner, as computed apart by python3" {
	for j in a b; do
		got=$(ids $j | owners b a | sort | uniq -c)
		echo "# journal $j: owners $(xargs <<<"$got")" >&3
		# one owner, this instance, for every one of its ids (and it has some)
		[[ "$got" =~ ^\ *[0-9]+\ $j$ ]]
	done
}

# route: the owner exchange's type and bindings, "type exchange>queue:key ..."
route() {
	local vh=regards.multitenant.manager
	ferry-sandbox ctl "$SANDBOX_DIR" -q list_exchanges -p $vh --no-table-headers name type |
		awk -F '\t' '$1 == "ferry.delivery.requests.owner" { printf "%s ", $2 }'
	ferry-sandbox ctl "$SANDBOX_DIR" -q list_bindings -p $vh --no-table-headers \
		source_name destination_name routing_key |
		awk -F '\t' '$1 ~ /^ferry\.delivery\.requests\./ { print $1 ">" $2 ":" $3 }' | sort | tr '\n' ' '
}

@test "scale-out: the owner exchange is direct, each instance queue bound with its name, also after importing the definitions and a RabbitMQ restart" {
	want='direct ferry.delivery.requests.owner>ferry.delivery.requests.a:a ferry.delivery.requests.owner>ferry.delivery.requests.b:b '
	run route
	assert_output "$want"
	# the definitions file declares what the instances declared: nothing changes
	ferry-sandbox ctl "$SANDBOX_DIR" import_definitions \
		"$BATS_TEST_DIRNAME/../etc/rabbitmq/definitions-scaleout.json" >/dev/null
	run route
	assert_output "$want"
	ferry-sandbox stop "$SANDBOX_DIR" rabbitmq
	ferry-sandbox start "$SANDBOX_DIR" rabbitmq >/dev/null
	run route
	assert_output "$want"
	for _ in $(seq 1 120); do [ "$(consumers)" = "$CONSUMING" ] && break; sleep 0.5; done
	[ "$(consumers)" = "$CONSUMING" ]
}

@test "scale-out: after the RabbitMQ restart, duplicates still go to their owner" {
	na=$(sql a "select count(*) from request") nb=$(sql b "select count(*) from request")
	mapfile -t ca < <(dups a 20 10)
	mapfile -t cb < <(dups b 20 10)
	again "${ca[@]}" "${cb[@]}" >dup.ndjson
	peek stream "$FERRY_AMQP_URL" "$RX" <dup.ndjson 2>/dev/null
	responses 20 dup.responses || { tail -n 30 "$D/a.log" "$D/b.log"; cat dup.responses; false; }
	answered_again "${ca[@]}" "${cb[@]}"
	[ "$(sql a "select count(*) from request")" = "$na" ]
	[ "$(sql b "select count(*) from request")" = "$nb" ]
}

@test "scale-out: an instance missing from FERRY_INSTANCES, or without it, exits 100 with a one-line error" {
	mkdir -p c
	run env FERRY_INSTANCE=c FERRY_INSTANCES="a b" FERRY_JOURNAL="$PWD/c/journal.db" ferry-amqp-ingest -1
	[ "$status" = 100 ]
	assert_output 'ferry-amqp-ingest: fatal: instance c is not in FERRY_INSTANCES (a b)'
	run env FERRY_INSTANCE=a FERRY_INSTANCES= FERRY_JOURNAL="$PWD/c/journal.db" ferry-amqp-ingest -1
	[ "$status" = 100 ]
	[ "${#lines[@]}" = 1 ]
	[[ "$output" = "ferry-amqp-ingest: fatal: instance a: FERRY_INSTANCES (-I) is not set"* ]]
	run env -u FERRY_INSTANCES FERRY_JOURNAL="$PWD/c/journal.db" ferry-amqp-ingest -1 -i a -I 'a b/c'
	[ "$status" = 100 ]
	assert_output 'ferry-amqp-ingest: fatal: FERRY_INSTANCES: instance name b/c: want 1 to 64 of [A-Za-z0-9_.-]'
	# nothing was declared for c, nor journaled
	[ ! -e c/journal.db ]
	run peek count "$FERRY_AMQP_URL" ferry.delivery.requests.c
	assert_failure
	# as a service: ferry-run -1 ends with the stage's status, the line logged
	run env FERRY_INSTANCE=c FERRY_INSTANCES="a b" FERRY_JOURNAL="$PWD/c/journal.db" \
		FERRY_WORKSPACE="$PWD/c/ws" ferry-run -1
	[ "$status" = 100 ]
	[ "$(grep -c 'ferry-amqp-ingest: fatal: instance c is not in FERRY_INSTANCES (a b)$' <<<"$output")" = 1 ]
}

@test "scale-out: after SIGTERM no ferry program of either instance is left, and both journals check good" {
	stop a
	stop b
	for j in a b; do
		[ -z "$(on $j && ferry_procs)" ]
		[ ! -e "/proc/$(cat "$D/$j.pid")" ] || [ "$(awk '{ print $3 }' "/proc/$(cat "$D/$j.pid")/stat")" = Z ]
		FERRY_JOURNAL="$D/$j/journal.db" run ferry-journal check
		assert_success
	done
	grep -q 'ferry-amqp-ingest: info: consuming ferry.delivery.requests.a, forwarding' "$D/a.log"
}
