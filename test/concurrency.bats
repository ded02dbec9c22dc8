#!/usr/bin/env bats
# Many requests in flight, against the sandbox's real RabbitMQ and S3 server:
# every data stage works on K requests at once, tenants in turn, and a
# request whose S3 server cannot be reached is set aside (attempts,
# last_error, next_attempt_at in the journal) while the others go on.
#   - an unreachable S3 server holds only its own tenant's deliveries
#   - a small delivery overtakes a big one published before it
#   - 500 slow orders: every GRANTED is published long before the orders end
#   - ferry-journal retry and cancel (of a request set aside, of an upload)
#   - SIGKILL of ferry-s3-put with several uploads in flight: each request
#     DONE exactly once
# Three ferry services, each a ferry-run with its own journal, tenants,
# workspace and AMQP exchanges and queue (as in faults.bats), so that their
# settings differ: a (FERRY_RETRY_MAX=2, default workers), b
# (FERRY_RETRY_MAX=600) and k (FERRY_WORKERS=3). A tenant whose S3 server is
# to fail reaches it through test/faultproxy.js (one proxy per service).
# Requests are published and responses read straight on RabbitMQ (amqplib),
# objects checked straight on the S3 server (/usr/bin/aws, md5sum). Nothing
# is timed: the tests assert orders (of journal events, of responses on the
# queue) and causes; their waits are generous timeouts only. A request
# set aside waits 2 s at first, whatever FERRY_RETRY_MAX: the retry tests
# move its next attempt 600 s ahead in the journal (put_off), so that only
# ferry-journal retry can explain an earlier DONE.
#
# About 3 minutes on a 2-core machine (each set-aside costs s3-put's 15 s of
# retries first).

load lib

SERVICES="a b k"

peek() { node "$BATS_TEST_DIRNAME/amqp-peek.js" "$@"; }
aws() { /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" "$@"; }

# svc NAME: the environment of service NAME (its ferry-run, its journal)
svc() {
	export D="$BATS_FILE_TMPDIR" S="$BATS_FILE_TMPDIR/$1"
	export FERRY_JOURNAL="$S/journal.db" FERRY_TENANTS="$S/tenants" FERRY_WORKSPACE="$S/ws"
	export FERRY_REQUEST_EXCHANGE="concurrency.$1.requests" FERRY_REQUEST_QUEUE="concurrency.$1.queue"
	export FERRY_RESPONSE_EXCHANGE="concurrency.$1.responses" FERRY_RESPONSE_ALIAS="concurrency.$1.alias"
	RESPONSES="test.concurrency.$1.responses"
}

# the settings each service runs with
svc_settings() {
	case $1 in
	a) echo FERRY_RETRY_MAX=2 ;;
	b) echo FERRY_RETRY_MAX=600 ;;
	k) echo FERRY_RETRY_MAX=2 FERRY_WORKERS=3 ;;
	esac
}

# ctl NAME COMMAND...: a command to fault proxy NAME; prints its reply
ctl() {
	local reply
	exec 5<>"/dev/tcp/127.0.0.1/$(cut -d' ' -f2 "$D/proxy-$1")" || return 1
	shift
	echo "$*" >&5
	read -r reply <&5
	exec 5>&-
	echo "$reply"
	[ "$reply" = ok ] || [ "${reply#\{}" != "$reply" ]
}

proxy_start() {
	node "$BATS_TEST_DIRNAME/faultproxy.js" "$2" >"$D/proxy-$1" 2>"$D/proxy-$1.log" &
	echo $! >"$D/proxy-$1.pid"
	for _ in $(seq 1 100); do [ -s "$D/proxy-$1" ] && return 0; sleep 0.1; done
	return 1
}

# tenant_s3 PORT: the s3_server settings, the S3 server at PORT
tenant_s3() {
	printf '"s3_server":{"scheme":"http","host":"127.0.0.1","port":%s,"region":"us-east-1","key":"%s","secret":"%s"},"delivery_bucket":"deliveries"' "$1" "$FERRY_S3_KEY" "$FERRY_S3_SECRET"
}

# product NAME KIB...: a product directory of random files of those sizes
product() {
	local p=$1 i=0 k
	shift
	mkdir -p "$D/data/$p"
	for k in "$@"; do
		head -c $((k * 1024)) /dev/urandom >"$D/data/$p/f$i.bin"
		i=$((i + 1))
	done
}

setup_file() {
	sandbox_up
	export D="$BATS_FILE_TMPDIR"
	local n
	for n in $SERVICES; do mkdir -p "$D/$n/ws" "$D/$n/tenants"; done
	for n in $SERVICES; do proxy_start "$n" "$FERRY_S3_PORT"; done
	# small products; B: 320 MiB in four files; U: 60 MiB (an upload
	# slow enough to be cancelled through a delaying proxy); K0-K5 20 MiB
	for p in S0 S1 S2 S3; do product "$p" 40 10; done
	product Small 50
	product B 81920 81920 81920 81920
	product U 61440
	for p in K0 K1 K2 K3 K4 K5; do product "$p" 20480; done
	mkdir -p "$D/data/T"
	printf 'ordered\n' >"$D/data/T/t.txt"
	ferry-catalog -c "$D/cat.db" init
	ferry-catalog -c "$D/cat.db" scan -t concurrency "$D/data" >/dev/null
	# the order command of case 3: one file, after 2 s while $D/order.slow exists
	: >"$D/order.slow"
	cat >"$D/order.sh" <<-EOF
		#!/bin/sh
		cat >/dev/null
		[ -e "$D/order.slow" ] && sleep 2
		echo '{"productId":"T","version":1,"dataType":"RAWDATA","name":"t.txt","url":"file://$D/data/T/t.txt","size":$(stat -c %s "$D/data/T/t.txt"),"md5":"$(md5sum <"$D/data/T/t.txt" | cut -d' ' -f1)"}'
	EOF
	chmod 700 "$D/order.sh"
	local common="\"request_ttl\":1,\"file_roots\":[\"$D/data\"],\"multipart_part_size\":5242880,\"upload_parallel\":2"
	local cat="$common,\"catalog\":\"$D/cat.db\""
	svc a
	tenant dark "{$cat,$(tenant_s3 "$(cut -d' ' -f1 "$D/proxy-a")")}"
	tenant lit "{$cat,$(tenant_s3 "$FERRY_S3_PORT")}"
	tenant bulk "{$cat,$(tenant_s3 "$FERRY_S3_PORT")}"
	tenant orders "{$common,\"order_command\":\"$D/order.sh\",$(tenant_s3 "$FERRY_S3_PORT")}"
	svc b
	tenant late "{$cat,$(tenant_s3 "$(cut -d' ' -f1 "$D/proxy-b")")}"
	svc k
	tenant kk "{$cat,$(tenant_s3 "$(cut -d' ' -f1 "$D/proxy-k")")}"
	for n in $SERVICES; do
		svc "$n"
		# shellcheck disable=SC2046
		env $(svc_settings "$n") ferry-run -v 2>"$S/run.log" &
		echo $! >"$S/run.pid"
	done
	# the topology is ferry's to declare: wait for it, then bind our queue
	for n in $SERVICES; do
		svc "$n"
		for _ in $(seq 1 150); do
			peek count "$FERRY_AMQP_URL" "$FERRY_REQUEST_QUEUE" >/dev/null 2>&1 &&
				peek bind "$FERRY_AMQP_URL" "$RESPONSES" "$FERRY_RESPONSE_EXCHANGE" 2>/dev/null && break
			sleep 0.2
		done
	done
}

teardown_file() {
	local n pid
	D="$BATS_FILE_TMPDIR"
	for n in $SERVICES; do
		pid=$(cat "$D/$n/run.pid" 2>/dev/null) || continue
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for n in $SERVICES; do
		[ -s "$D/proxy-$n.pid" ] && kill -TERM "$(cat "$D/proxy-$n.pid")" 2>/dev/null
	done
	sandbox_down
}

setup() {
	sandbox_env
	export D="$BATS_FILE_TMPDIR"
	cd "$BATS_TEST_TMPDIR" || return 1
}

# a test that failed midway leaves no fault behind for the next one
teardown() {
	local n
	for n in $SERVICES; do ctl "$n" mode pass >/dev/null 2>&1; done
	return 0
}

# req TENANT CID QUERY: one request line for send
req() {
	printf '{"tenant":"%s","body":"{\\"correlationId\\":\\"%s\\",\\"targetDelivery\\":\\"s3\\",\\"order\\":{\\"queries\\":[\\"%s\\"],\\"user\\":\\"ana@example.org\\"}}"}\n' \
		"$1" "$2" "$3"
}

# send: publish stdin's request lines straight to RabbitMQ, confirmed
send() { peek stream "$FERRY_AMQP_URL" "$FERRY_REQUEST_EXCHANGE" 2>>"$S/publish.log"; }

sql() { sqlite3 -batch -noheader -cmd '.timeout 10000' "$FERRY_JOURNAL" "$1"; }

# state TENANT CID: the request's state in the journal
state() { sql "select state from request where tenant = '$1' and correlation_id = '$2'"; }

# until_sql SECONDS QUERY WANT: wait until QUERY prints WANT
until_sql() {
	local i
	for i in $(seq 1 "$(($1 * 5))"); do
		[ "$(sql "$2")" = "$3" ] && return 0
		sleep 0.2
	done
	echo "after $1 s: $2 gives $(sql "$2"), not $3"
	return 1
}

# ended PATTERN: how many requests whose correlationId is LIKE PATTERN ended
ended() { sql "select count(*) from request where correlation_id like '$1' and state in ('DONE','DENIED','ERROR')"; }

# drain: every response confirmed, then all that is on our queue into
# $S/responses (appended: each test reads its own correlationIds there)
drain() {
	until_sql 60 "select count(*) from outbox where sent_at is null" 0 || return 1
	local m
	m=$(peek count "$FERRY_AMQP_URL" "$RESPONSES") || return 1
	[ "$m" = 0 ] || peek get "$FERRY_AMQP_URL" "$RESPONSES" "$m" 30 >>"$S/responses"
}

# said PREFIX: "cid status" of each response of those requests, queue order
said() {
	jq -r --arg p "$1" '.body | fromjson | select(.correlationId | startswith($p)) |
		.correlationId + " " + .status' "$S/responses"
}

# body CID STATUS: that response's body
body() {
	jq -c --arg c "$1" --arg s "$2" '.body | fromjson | select(.correlationId == $c and .status == $s)' "$S/responses"
}

# answer CID: "status errorType message" of its terminal response
answer() {
	jq -r --arg c "$1" '.body | fromjson | select(.correlationId == $c and .status != "GRANTED") |
		.status + " " + (.errorType // "-") + " " + (.message // "-")' "$S/responses"
}

# zip_ok CID: the object of the DONE response has the response's md5
zip_ok() {
	local b url md5
	b=$(body "$1" DONE | head -n 1)
	url=$(jq -r .url <<<"$b") md5=$(jq -r .md5 <<<"$b")
	if [ -z "$url" ] || [ "$url" = null ]; then echo "$1: no DONE url"; return 1; fi
	aws s3 cp --quiet "$(s3_unquote "$url")" "$BATS_TEST_TMPDIR/$1.zip"
	[ "$(md5sum <"$BATS_TEST_TMPDIR/$1.zip" | cut -d' ' -f1)" = "$md5" ] || { echo "$1: md5 differs"; return 1; }
	unzip -tq "$BATS_TEST_TMPDIR/$1.zip" >/dev/null
}

# pid_of PROGRAM: its pid in this service (ours to signal)
pid_of() { ferry_procs | awk -v n="$1" '$2 == n { print $1; exit }'; }

# set_aside TENANT CID: wait until the request waits in PACKED after a
# failed attempt (s3-put holds a failure 30 s at most, then sets it aside)
set_aside() {
	until_sql 90 "select count(*) from request where tenant = '$1' and correlation_id = '$2'
		and state = 'PACKED' and attempts >= 1 and last_error is not null" 1
}

# put_off TENANT CID: move the next attempt of a request set aside 600 s
# ahead, as the backoff of its tenth attempt would be under
# FERRY_RETRY_MAX=600 (the first is 2 s, too short to tell a retry from
# it); prints the new next_attempt_at
put_off() {
	local at=$(($(date +%s%3N) + 600000))
	[ "$(sql "update request set next_attempt_at = $at where tenant = '$1' and correlation_id = '$2'
		and state = 'PACKED' and attempts >= 1; select changes()")" = 1 ] || return 1
	echo "$at"
}

@test "an unreachable S3 server holds only its tenant: another's later deliveries end DONE first" {
	svc a
	ctl a mode reset
	{ req dark d1-1 productId:S0; req dark d1-2 productId:S1; } | send
	# both in s3-put, failing on the proxy's resets
	until_sql 60 "select count(*) from request where tenant = 'dark' and state = 'UPLOADING'" 2
	{ req lit l1-1 productId:S0; req lit l1-2 productId:S2; req lit l1-3 productId:S3; } | send
	until_sql 60 "select count(*) from request where tenant = 'lit' and state = 'DONE'" 3
	# at that moment the dark tenant's S3 server still refuses, and its
	# requests have not ended
	run ended 'd1-%'
	assert_output 0
	run ctl a stats
	refute_output --partial '"resets":0,'
	# each is set aside: back in PACKED, with attempts and the last error
	set_aside dark d1-1
	set_aside dark d1-2
	run sql "select correlation_id, attempts, last_error from request where tenant = 'dark' order by correlation_id"
	echo "# set aside: ${lines[0]}" >&3
	assert_output --regexp $'^d1-1\\|[1-9][0-9]*\\|.+\nd1-2\\|[1-9][0-9]*\\|.+$'
	ctl a mode pass
	until_sql 90 "select count(*) from request where tenant = 'dark' and state = 'DONE'" 2
	drain
	# on the queue, every DONE of lit before any DONE of dark
	run bash -c "jq -r '.body | fromjson | select(.status == \"DONE\") | .correlationId' '$S/responses' | grep -E '^(l1|d1)-' | cut -c1-2 | uniq | tr '\n' ' '"
	assert_output 'l1 d1 '
	for c in l1-1 l1-2 l1-3 d1-1 d1-2; do zip_ok "$c"; done
}

@test "a small delivery published after a big one in flight ends DONE first" {
	svc a
	req bulk c2-big productId:B | send
	# the big one's work is under way (FETCHING or past it) before the small one comes
	until_sql 60 "select count(*) from request where correlation_id = 'c2-big'
		and state in ('FETCHING','FETCHED','PACKING','PACKED','UPLOADING','DONE')" 1
	sleep 1
	req bulk c2-small productId:Small | send
	until_sql 240 "select count(*) from request where correlation_id in ('c2-big','c2-small') and state = 'DONE'" 2
	# the small one's DONE committed first: journal event order and updated_at
	run sql "select r.correlation_id from event e join request r on r.id = e.request_id
		where e.state = 'DONE' and r.correlation_id like 'c2-%' order by e.id"
	assert_output $'c2-small\nc2-big'
	run sql "select (select updated_at from request where correlation_id = 'c2-small') <
		(select updated_at from request where correlation_id = 'c2-big')"
	assert_output 1
	drain
	run bash -c "jq -r '.body | fromjson | select(.status == \"DONE\") | .correlationId' '$S/responses' | grep '^c2-'"
	assert_output $'c2-small\nc2-big'
	zip_ok c2-small
}

@test "500 requests whose orders take 2 s each are all GRANTED before the 100th is ordered" {
	svc a
	for i in $(seq 1 500); do req orders "c3-$i" anything; done | send
	until_sql 180 "select count(*) from event e join request r on r.id = e.request_id
		where r.tenant = 'orders' and e.state = 'GRANTED'" 500
	# in the journal: requests ORDERED or later when the 500th GRANTED was read,
	# and ORDERED events committed before the 500th GRANTED event
	now=$(sql "select count(*) from request where tenant = 'orders'
		and state in ('ORDERED','FETCHING','FETCHED','PACKING','PACKED','UPLOADING','DONE')")
	before=$(sql "select count(*) from event e join request r on r.id = e.request_id
		where r.tenant = 'orders' and e.state = 'ORDERED' and e.id < (select max(e2.id) from event e2
		join request r2 on r2.id = e2.request_id where r2.tenant = 'orders' and e2.state = 'GRANTED')")
	echo "# at the 500th GRANTED: $now requests ordered or later, $before ORDERED events before it" >&3
	[ "$now" -lt 100 ]
	[ "$before" -lt 100 ]
	# now the orders go fast, and all 500 end DONE
	rm -f "$D/order.slow"
	until_sql 300 "select count(*) from request where tenant = 'orders' and state = 'DONE'" 500
	drain
	# on the queue: the 500th GRANTED before the 100th DONE
	said c3- >said.txt
	g500=$(grep -n ' GRANTED$' said.txt | sed -n '500p' | cut -d: -f1)
	d100=$(grep -n ' DONE$' said.txt | sed -n '100p' | cut -d: -f1)
	echo "# on the queue: 500th GRANTED at $g500, 100th DONE at $d100" >&3
	[ -n "$g500" ] && [ -n "$d100" ]
	[ "$g500" -lt "$d100" ]
	# one GRANTED and one DONE each
	run bash -c "sort -u said.txt | awk '{ print \$2 }' | sort | uniq -c | awk '{ print \$2, \$1 }'"
	assert_output $'DONE 500\nGRANTED 500'
	zip_ok c3-1
	zip_ok c3-500
}

@test "ferry-journal retry makes a request set aside due now: DONE long before its backoff" {
	svc b
	ctl b mode reset
	req late r4-1 productId:S0 | send
	set_aside late r4-1
	due=$(put_off late r4-1)
	ctl b mode pass
	# S3 is reachable again (another request of the tenant is DONE), and
	# the one set aside still waits for its next attempt
	req late r4-2 productId:S1 | send
	until_sql 60 "select state from request where correlation_id = 'r4-2'" DONE
	run state late r4-1
	assert_output PACKED
	run ferry-journal retry late r4-1
	assert_success
	until_sql 60 "select state from request where correlation_id = 'r4-1'" DONE
	# ended before the attempt it was put off to
	run sql "select count(*) from event e join request r on r.id = e.request_id
		where r.correlation_id = 'r4-1' and e.state = 'DONE' and e.at < $due"
	assert_output 1
	drain
	run said r4-1
	assert_output $'r4-1 GRANTED\nr4-1 DONE'
	zip_ok r4-1
}

@test "ferry-journal cancel of a request set aside ends it ERROR INTERNAL_ERROR, answered on RabbitMQ" {
	svc b
	ctl b mode reset
	req late w4-1 productId:S2 | send
	set_aside late w4-1
	put_off late w4-1 >/dev/null
	run ferry-journal cancel late w4-1 -m 'cancelled by the operator: wrong dataset'
	assert_success
	ctl b mode pass
	run sql "select state || ' ' || error_type from request where correlation_id = 'w4-1'"
	assert_output 'ERROR INTERNAL_ERROR'
	drain
	run said w4-1
	assert_output $'w4-1 GRANTED\nw4-1 ERROR'
	run answer w4-1
	assert_output 'ERROR INTERNAL_ERROR cancelled by the operator: wrong dataset'
	run find "$FERRY_WORKSPACE/late" -mindepth 1 -not -type d
	assert_output ''
}

@test "ferry-journal cancel during an upload: ERROR, no object, workspace removed, s3-put goes on" {
	svc b
	put=$(pid_of ferry-s3-put)
	[ -n "$put" ]
	exits=$(grep -c 'ferry-run: warning: .* exited' "$S/run.log" || true)
	# 60 MiB through a proxy that delays every chunk 1 s: an upload of seconds
	ctl b mode delay 1000
	req late u4-1 productId:U | send
	until_sql 120 "select count(*) from request where correlation_id = 'u4-1'
		and state = 'UPLOADING' and bytes_done > 0" 1
	run ferry-journal cancel late u4-1 -m 'cancelled by the operator: too big'
	assert_success
	# the worker stopped its work (and removed the workspace)
	for _ in $(seq 1 150); do
		grep -q 'late/u4-1: ended elsewhere (cancelled or expired); work stopped' "$S/run.log" && break
		sleep 0.2
	done
	grep 'late/u4-1' "$S/run.log" | tail -n 5
	grep -q 'late/u4-1: ended elsewhere (cancelled or expired); work stopped' "$S/run.log"
	ctl b mode pass
	run sql "select state || ' ' || error_type from request where correlation_id = 'u4-1'"
	assert_output 'ERROR INTERNAL_ERROR'
	run find "$FERRY_WORKSPACE/late" -mindepth 1 -not -type d
	assert_output ''
	# the same ferry-s3-put delivers the next request
	req late u4-2 productId:S3 | send
	until_sql 60 "select state from request where correlation_id = 'u4-2'" DONE
	[ "$(pid_of ferry-s3-put)" = "$put" ]
	[ "$(grep -c 'ferry-run: warning: .* exited' "$S/run.log" || true)" = "$exits" ]
	drain
	run said u4-1
	assert_output $'u4-1 GRANTED\nu4-1 ERROR'
	run answer u4-1
	assert_output 'ERROR INTERNAL_ERROR cancelled by the operator: too big'
	zip_ok u4-2
	# no complete object for the cancelled request (an aborted or unfinished
	# multipart upload may be listed; it is no object)
	aws s3api list-multipart-uploads --bucket deliveries --prefix u4-1/ >&3 2>&3 || true
	# (s3rver leaves KeyCount out when there are none)
	run aws s3api list-objects-v2 --bucket deliveries --prefix u4-1/ --query 'length(Contents || `[]`)' --output text
	assert_success
	assert_output 0
}

@test "3 workers a stage, ferry-s3-put killed with uploads in flight: each request DONE exactly once" {
	svc k
	# 20 MiB zips through a proxy that delays every chunk 500 ms
	ctl k mode delay 500
	for i in 0 1 2 3 4 5; do req kk "c5-$i" "productId:K$i"; done | send
	until_sql 120 "select count(*) >= 2 from request where tenant = 'kk' and state = 'UPLOADING'" 1
	put=$(pid_of ferry-s3-put)
	[ -n "$put" ]
	echo "# killed ferry-s3-put with $(sql "select count(*) from request where tenant = 'kk' and state = 'UPLOADING'") uploads in flight" >&3
	kill -KILL "$put"
	until_sql 180 "select count(*) from request where tenant = 'kk' and state = 'DONE'" 6
	ctl k mode pass
	grep -q 'ferry-run: warning: put exited 137' "$S/run.log"
	[ "$(pid_of ferry-s3-put)" != "$put" ]
	# one DONE event each in the journal, one DONE response each on RabbitMQ
	run sql "select count(*) from (select request_id from event where state = 'DONE'
		group by request_id having count(*) != 1)"
	assert_output 0
	drain
	said c5- >said.txt
	run bash -c "grep ' DONE$' said.txt | sort | uniq -c | awk '{ print \$1 }' | sort | uniq -c | awk '{ print \$1, \$2 }'"
	assert_output '6 1'
	for i in 0 1 2 3 4 5; do zip_ok "c5-$i"; done
	run ferry-journal check
	assert_success
}

@test "every request of every service ended once, its workspace removed, no sanitizer report" {
	for n in $SERVICES; do
		svc "$n"
		run sql "select count(*) from request where state not in ('DONE','DENIED','ERROR')"
		assert_output 0
		run sql "select count(*) from (select request_id from event
			where state in ('DONE','DENIED','ERROR') group by request_id having count(*) != 1)"
		assert_output 0
		run find "$FERRY_WORKSPACE" -mindepth 1 -not -type d
		assert_output ''
		if grep -E 'Sanitizer|runtime error:' "$S/run.log"; then false; fi
	done
}
