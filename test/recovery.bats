#!/usr/bin/env bats
# Crash recovery, proven with SIGKILL: 200 requests (DONE, DENIED and ERROR
# outcomes) flow through ferry-run while a loop kills a random ferry program
# with SIGKILL every 2 s for 60 s; in the same minute RabbitMQ is restarted and
# the S3 server is stopped for 30 s. Then the service is left to settle, and
# the journal, the responses (read by an independent amqplib client from a
# queue bound to the response exchange) and the objects in S3 (/usr/bin/aws,
# md5sum, unzip -t) must agree: every request ended once, was answered, never
# contradicted, and every DONE zip is what its response says.
#
# FERRY_CHAOS_SEED picks the kill sequence (printed, to replay a failure).

load lib

RX=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent
RESP=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent
PROGRAMS="ferry-amqp-ingest ferry-request-validate ferry-order-bridge ferry-fetch ferry-pack
ferry-s3-put ferry-notify ferry-journal"

peek() { node "$BATS_TEST_DIRNAME/amqp-peek.js" "$@"; }
aws() { /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" "$@"; }

setup_file() {
	sandbox_up
	service_env
	# six small products of three files, two of 7 MiB (multipart uploads)
	for p in 0 1 2 3 4 5; do
		mkdir -p "$D/data/P$p"
		for f in a b c; do head -c $(((RANDOM % 200 + 1) * 1024)) /dev/urandom >"$D/data/P$p/$f.nc"; done
	done
	for p in 6 7; do
		mkdir -p "$D/data/P$p"
		head -c $((7 * 1048576)) /dev/urandom >"$D/data/P$p/big.bin"
	done
	ferry-catalog -c "$D/cat.db" init
	ferry-catalog -c "$D/cat.db" scan -t coastline "$D/data" >/dev/null
	printf '{"productId":"Bad","files":[{"dataType":"RAWDATA","name":"bad.nc","url":"file://%s/data/P0/a.nc","size":%s,"md5":"00000000000000000000000000000000"}]}\n' \
		"$D" "$(stat -c %s "$D/data/P0/a.nc")" | ferry-catalog -c "$D/cat.db" add
	conf="\"catalog\":\"$D/cat.db\",\"file_roots\":[\"$D/data\"],
		\"users\":[\"ana@example.org\"],\"multipart_part_size\":5242880,\"upload_parallel\":2,
		\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,
		\"region\":\"us-east-1\",\"key\":\"S3RVER\",\"secret\":\"S3RVER\"},
		\"delivery_bucket\":\"deliveries\""
	tenant chaos "{\"request_ttl\":1,$conf}"
	# 0.005 h = 18 s: shorter than the S3 outage
	tenant short "{\"request_ttl\":0.005,$conf}"
	peek bind "$FERRY_AMQP_URL" test.responses "$RESP"
	service_start
}

teardown_file() {
	service_stop
	sandbox_down
}

setup() {
	sandbox_env
	service_env
	cd "$BATS_TEST_TMPDIR" || return 1
}

req() {
	printf '{"tenant":"%s","body":"{\\"correlationId\\":\\"%s\\",\\"targetDelivery\\":\\"s3\\",\\"order\\":{\\"queries\\":[\\"%s\\"],\\"user\\":\\"%s\\"}}"}\n' \
		"$1" "$2" "$3" "$4"
}

# the 200 requests and the outcome each must have: 3 in 5 DONE (one of those
# in 7 a multipart zip), 1 in 5 DENIED (a user not allowed), 1 in 5 ERROR
# (half EMPTY_ORDER from the order bridge, half a wrong md5 caught by fetch)
requests() {
	for i in $(seq 1 200); do
		case $((i % 5)) in
		0 | 1 | 2) req chaos "c-$i" "productId:P$((i % 8))" ana@example.org
			echo "chaos c-$i DONE" >>"$D/expect" ;;
		3) req chaos "c-$i" "productId:P1" eve@example.org
			echo "chaos c-$i DENIED" >>"$D/expect" ;;
		4) if [ $((i % 10)) = 4 ]; then q=productId:Nothing; else q=productId:Bad; fi
			req chaos "c-$i" "$q" ana@example.org
			echo "chaos c-$i ERROR" >>"$D/expect" ;;
		esac
	done
}

# chaos SECONDS: every 2 s, SIGKILL one ferry program picked at random among
# ours; log "ms name pid" ("- name -" when none was running at that moment).
# On a slow machine (programs still restarting when picked) it goes on, for
# twice SECONDS at most, until 20 were killed.
chaos() {
	local end=$((SECONDS + $1)) last=$((SECONDS + 2 * $1)) name pid
	# shellcheck disable=SC2206
	local progs=($PROGRAMS)
	while [ $SECONDS -lt "$end" ] ||
		{ [ $SECONDS -lt "$last" ] && [ "$(awk '$1 != "-"' "$D/kills" 2>/dev/null | wc -l)" -lt 20 ]; }; do
		sleep 2
		name=${progs[RANDOM % ${#progs[@]}]}
		pid=$(ferry_procs | awk -v n="$name" '$2 == n { print $1; exit }')
		if [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; then
			echo "$(date +%s%3N) $name $pid" >>"$D/kills"
		else
			echo "- $name -" >>"$D/kills"
		fi
	done
}

# at T: sleep until T seconds after $t0
at() {
	local w=$((t0 + $1 - SECONDS))
	[ "$w" -le 0 ] || sleep "$w"
}

settled() {
	[ "$(jq_sql "$FERRY_JOURNAL" "select count(*) from request where state in ('DONE','DENIED','ERROR')")" = 210 ] &&
		[ "$(jq_sql "$FERRY_JOURNAL" "select count(*) from outbox where sent_at is null")" = 0 ]
}

@test "chaos: 210 requests under SIGKILL every 2 s, a RabbitMQ restart and a 30 s S3 outage" {
	seed=${FERRY_CHAOS_SEED:-$((($(date +%s) % 32768)))}
	echo "# chaos seed $seed (FERRY_CHAOS_SEED)" >&3
	RANDOM=$seed
	requests >"$D/requests"
	t0=$SECONDS
	# 200 requests over 40 s, confirmed, republished across the broker restart
	peek stream "$FERRY_AMQP_URL" "$RX" 5 <"$D/requests" 2>"$D/publish.log" &
	publisher=$!
	chaos 60 &
	killer=$!
	at 10
	ferry-sandbox stop "$SANDBOX_DIR" rabbitmq
	ferry-sandbox start "$SANDBOX_DIR" rabbitmq >/dev/null
	echo "$(date +%s%3N) rabbitmq restarted" >>"$D/timeline"
	at 25
	ferry-sandbox stop "$SANDBOX_DIR" s3
	echo "$(date +%s%3N) s3 stopped" >>"$D/timeline"
	# ten requests of a tenant whose ttl (18 s) ends before S3 comes back
	for i in $(seq 1 10); do
		req short "s-$i" "productId:P$((i % 6))" ana@example.org
		echo "short s-$i EXPIRED" >>"$D/expect"
	done | peek stream "$FERRY_AMQP_URL" "$RX" 2>>"$D/publish.log"
	shorts=$SECONDS
	at 55
	# their 18 s must end while S3 is down, however late a slow broker
	# restart made them
	[ $((shorts + 25 - SECONDS)) -le 0 ] || sleep $((shorts + 25 - SECONDS))
	ferry-sandbox start "$SANDBOX_DIR" s3 >/dev/null
	echo "$(date +%s%3N) s3 started" >>"$D/timeline"
	wait "$killer"
	wait "$publisher"
	echo "$(date +%s%3N) chaos over" >>"$D/timeline"
	# settle: everything ended and every response confirmed by the broker
	for _ in $(seq 1 600); do settled && break; sleep 0.5; done
	echo "$(date +%s%3N) settled" >>"$D/timeline"
	settled
	n=$(peek count "$FERRY_AMQP_URL" test.responses)
	peek get "$FERRY_AMQP_URL" test.responses "$n" 30 >"$D/responses"
	kills=$(awk '$1 != "-"' "$D/kills" | wc -l)
	echo "# $kills programs killed: $(awk '$1 != "-" { print $2 }' "$D/kills" | sort | uniq -c | awk '{ printf "%s %s, ", $2, $1 }')" >&3
	[ "$kills" -ge 20 ]
}

@test "chaos: every request has exactly one terminal state, the one its kind calls for" {
	run jq_sql "$FERRY_JOURNAL" "select count(*) from request"
	assert_output 210
	# one terminal event per request in its history
	run jq_sql "$FERRY_JOURNAL" "select count(*) from (select request_id from event
		where state in ('DONE','DENIED','ERROR') group by request_id having count(*) != 1)"
	assert_output 0
	while read -r tenant cid want; do
		got=$(jq_sql "$FERRY_JOURNAL" "select state || coalesce(' ' || error_type, '') from request
			where tenant = '$tenant' and correlation_id = '$cid'")
		case $want in
		EXPIRED) [ "$got" = "ERROR EXPIRED" ] || { echo "$cid: $got, want ERROR EXPIRED"; false; } ;;
		*) [ "${got%% *}" = "$want" ] || { echo "$cid: $got, want $want"; false; } ;;
		esac
	done <"$D/expect"
}

@test "chaos: each request got a terminal response, never two that differ" {
	status=0
	node "$BATS_TEST_DIRNAME/responses-check.js" "$D/responses" "$D/expect" >"$D/response-summary" || status=$?
	cat "$D/response-summary"
	echo "# $(tail -n 1 "$D/response-summary")" >&3
	[ "$status" = 0 ]
}

@test "chaos: every DONE zip in S3 has the md5 of its response and tests good" {
	aws s3 sync --quiet s3://deliveries "$BATS_TEST_TMPDIR/s3" >/dev/null
	n=0
	while read -r body; do
		url=$(jq -r .url <<<"$body") md5=$(jq -r .md5 <<<"$body")
		f="$BATS_TEST_TMPDIR/s3/${url#s3://deliveries/}"
		[ "$(md5sum <"$f" | cut -d' ' -f1)" = "$md5" ] || { echo "$url: md5 differs"; false; }
		unzip -tq "$f" >/dev/null
		n=$((n + 1))
	done < <(jq -r '.body | fromjson | select(.status == "DONE") | tojson' "$D/responses" | sort -u)
	[ "$n" = 120 ]
}

@test "chaos: the short-ttl requests expired with rs-delivery's message, workspaces removed" {
	run jq -r '.body | fromjson | select(.correlationId | startswith("s-")) | select(.status == "ERROR") | .message' "$D/responses"
	assert_line --regexp "^The request date has reached the expiration limit '20[0-9-]+T[0-9:.]+Z'$"
	[ "$(grep -c . <<<"$output")" = 10 ]
	late=$(jq_sql "$FERRY_JOURNAL" "select group_concat(l, ' ') from (select e.at - r.expires_at as l
		from request r join event e on e.request_id = r.id
		where r.tenant = 'short' and e.state = 'ERROR' order by l)")
	echo "# expiry lateness (ms) under chaos: $late" >&3
	run find "$FERRY_WORKSPACE" -mindepth 1 -not -type d
	assert_output ''
}

@test "chaos: after SIGTERM no ferry program is left, and the journal checks good" {
	pid=$(cat "$D/run.pid")
	kill -TERM "$pid"
	for _ in $(seq 1 100); do
		st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || break
		[ "$st" = Z ] && break
		sleep 0.1
	done
	[ "${st:-}" = Z ] || [ ! -e "/proc/$pid" ]
	run ferry_procs
	assert_output ''
	run ferry-journal check
	assert_success
	grep -q 'ferry-run: warning: .* exited 137' "$D/run.log"
}
