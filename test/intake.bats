#!/usr/bin/env bats
# The intake path against a real RabbitMQ (ferry-sandbox): requests published
# with amqp-publish go through ferry-amqp-ingest | ferry-request-validate and
# ferry-notify; responses are read with an independent client (amqplib) from
# queues bound to the response exchange and to its ltamanager alias.

load lib

RX=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent
RESP=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent
ALIAS=regards.broadcast.fr.cnes.regards.modules.ltamanager.amqp.output.DeliveryResponseDtoEvent
RESP_CLASS=fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent
VHOST=regards.multitenant.manager

peek() { node "$BATS_TEST_DIRNAME/amqp-peek.js" "$@"; }

start_ferry() {
	(ferry-amqp-ingest -v | ferry-request-validate -v >>"$BATS_FILE_TMPDIR/granted") \
		2>>"$BATS_FILE_TMPDIR/ferry.log" &
	echo $! >"$BATS_FILE_TMPDIR/chain.pid"
	ferry-notify -v 2>>"$BATS_FILE_TMPDIR/notify.log" &
	echo $! >"$BATS_FILE_TMPDIR/notify.pid"
}

setup_file() {
	sandbox_up
	export FERRY_JOURNAL="$BATS_FILE_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_FILE_TMPDIR/tenants"
	tenant p1 '{"request_ttl":2,"users":["ana@example.org"]}'
	tenant open '{"request_ttl":1}'
	peek bind "$FERRY_AMQP_URL" test.alias "$ALIAS"
	peek bind "$FERRY_AMQP_URL" test.main "$RESP"
	start_ferry
}

teardown_file() {
	# the chain: SIGTERM to ingest ends it; validate then sees EOF
	export FERRY_JOURNAL="$BATS_FILE_TMPDIR/journal.db"
	ferry_procs | awk '$2 == "ferry-amqp-ingest" { print $1 }' | xargs -r kill -TERM 2>/dev/null
	kill "$(cat "$BATS_FILE_TMPDIR/notify.pid")" 2>/dev/null
	wait 2>/dev/null
	sandbox_down
}

setup() {
	sandbox_env
	export FERRY_JOURNAL="$BATS_FILE_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_FILE_TMPDIR/tenants"
	cd "$BATS_TEST_TMPDIR" || return 1
}

# responses N: read N responses from the alias queue into $BATS_TEST_TMPDIR/resp
responses() {
	peek get "$FERRY_AMQP_URL" test.alias "$1" "${2:-20}" >resp
}

drain_main() { peek get "$FERRY_AMQP_URL" test.main 100000 1 >/dev/null || true; }

body() { printf '{"correlationId":"%s","targetDelivery":"s3","order":{"queries":["*"],"user":"%s"}}' "$1" "$2"; }

@test "regards.DLX and regards.DLQ are what REGARDS declares: both can share a broker" {
	# a REGARDS microservice declares them after ferry did; a mismatch of
	# type or arguments would close its channel (PRECONDITION_FAILED)
	run peek regards "$FERRY_AMQP_URL"
	assert_success
	# and ferry declares them again, as at every start
	run ferry-notify -1 -j "$BATS_TEST_TMPDIR/j.db"
	assert_success
}

@test "a valid request is GRANTED with REGARDS properties and header" {
	peek publish "$FERRY_AMQP_URL" "$RX" p1 "$(body i-1 ana@example.org)" 3 client
	responses 1
	run cat resp
	assert_output --partial '"body":"{\"correlationId\":\"i-1\",\"status\":\"GRANTED\"}"'
	assert_output --partial '"contentType":"application/json"'
	assert_output --partial '"contentEncoding":"UTF-8"'
	assert_output --partial '"deliveryMode":2'
	# rs-delivery's DEFAULT_PRIORITY and instance name, whatever the request's
	assert_output --partial '"priority":1'
	assert_output --partial '"correlationId":"i-1"'
	assert_output --partial '"appId":"REGARDS"'
	assert_output --partial '"headers":{"regards.tenant":"p1","regards.converter":"GSON","regards.type":"fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent"}'
	assert_output --regexp '"timestamp":[0-9]+'
	drain_main
}

@test "a subscriber built on the REGARDS starter decodes every response (converter, type, tenant)" {
	drain_main
	publish p1 "$(body d-1 ana@example.org)"
	publish p1 '{"correlationId":"d-2","targetDelivery":"s3","order":{"queries":["*"]}}'
	run peek decode "$FERRY_AMQP_URL" test.main 2 "$RESP_CLASS"
	assert_success
	assert_line '{"tenant":"p1","converter":"GSON","type":"'"$RESP_CLASS"'","event":{"correlationId":"d-1","status":"GRANTED"}}'
	assert_line --partial '{"tenant":"p1","converter":"GSON","type":"'"$RESP_CLASS"'","event":{"correlationId":"d-2","status":"DENIED","errorType":"FORBIDDEN"'
	peek get "$FERRY_AMQP_URL" test.alias 2 >/dev/null
}

@test "the decoder fails as the starter does on a message without converter or type" {
	# the check of the check: what ferry sent before it set the headers
	peek bind "$FERRY_AMQP_URL" test.raw "$RESP"
	node -e '
	  const amqp = require(process.env.FERRY_NODE_DIR + "/node_modules/amqplib");
	  (async () => { const c = await amqp.connect(process.argv[1]); const ch = await c.createConfirmChannel();
	    ch.publish(process.argv[2], "", Buffer.from("{}"), { headers: { "regards.tenant": "p1" } });
	    ch.publish(process.argv[2], "", Buffer.from("{}"), { headers: { "regards.tenant": "p1", "regards.converter": "GSON" } });
	    await ch.waitForConfirms(); await c.close(); })();' "$FERRY_AMQP_URL" "$RESP"
	run peek decode "$FERRY_AMQP_URL" test.raw 2 "$RESP_CLASS"
	assert_failure 1
	assert_line 'amqp-peek: Cannot determine JSON converter type'
	assert_line 'amqp-peek: Error converting message : JAVA event type no found'
	drain_main
	peek get "$FERRY_AMQP_URL" test.alias 100000 1 >/dev/null || true
}

@test "FERRY_APP_ID, FERRY_RESPONSE_PRIORITY and FERRY_RESPONSE_CORRELATION_ID change the properties; bad values exit 100" {
	drain_main
	# a request fed to validate by hand, on a journal of its own
	printf '{"tenant":"p1","correlationId":"o-1","receivedAt":"2026-01-01T00:00:00Z","headers":{"priority":7,"app_id":"client"},"request":{"correlationId":"o-1","targetDelivery":"s3","order":{"queries":["*"],"user":"ana@example.org"}}}\n' |
		ferry-request-validate -j own.db >/dev/null
	FERRY_APP_ID=ferry-a FERRY_RESPONSE_PRIORITY=request FERRY_RESPONSE_CORRELATION_ID=0 \
		ferry-notify -1 -j own.db
	run peek get "$FERRY_AMQP_URL" test.main 1
	assert_success
	assert_output --partial '"correlationId\":\"o-1\",\"status\":\"GRANTED\"'
	assert_output --partial '"appId":"ferry-a"'
	assert_output --partial '"priority":7'
	refute_output --partial '"correlationId":"o-1"'
	for bad in FERRY_APP_ID=$'a\tb' FERRY_RESPONSE_PRIORITY=256 FERRY_RESPONSE_PRIORITY=-1 \
	    FERRY_RESPONSE_PRIORITY=high FERRY_RESPONSE_CORRELATION_ID=yes; do
		run env "$bad" ferry-notify -1 -j own.db
		assert_failure 100
		assert_output --partial "${bad%%=*}"
	done
	peek get "$FERRY_AMQP_URL" test.alias 1 >/dev/null
}

@test "the response exchange and its ltamanager alias both carry every response" {
	drain_main
	publish open "$(body i-2 u)"
	publish open "$(body i-3 u)"
	responses 2
	run peek get "$FERRY_AMQP_URL" test.main 2
	assert_success
	assert_output --partial 'i-2'
	assert_output --partial 'i-3'
}

@test "DENIED responses carry message and errorType, and no null fields" {
	publish p1 '{"correlationId":"i-4","targetDelivery":"s3","order":{"queries":["*"]}}'
	responses 1
	run cat resp
	assert_output --partial '\"status\":\"DENIED\"'
	assert_output --partial '\"errorType\":\"FORBIDDEN\"'
	assert_output --partial 'User should be present'
	refute_output --partial ':null'
	refute_output --partial '\"url\"'
	drain_main
}

@test "FORBIDDEN both ways: a user not allowed, and a tenant with no configuration" {
	publish p1 "$(body i-5 eve@example.org)"
	publish ghost "$(body i-6 ana@example.org)"
	responses 2
	run cat resp
	assert_output --partial 'Unknown user : eve@example.org'
	assert_output --partial 'not configured for tenant ghost'
	[ "$(grep -c 'FORBIDDEN' resp)" -eq 2 ]
	drain_main
}

@test "every content rule is DENIED INVALID_CONTENT naming the field" {
	local -a cases=(
		'{"correlationId":"r-1","order":{"queries":["*"],"user":"u"}}|targetDelivery'
		'{"correlationId":"r-2","targetDelivery":"  ","order":{"queries":["*"],"user":"u"}}|targetDelivery'
		'{"correlationId":"r-3","targetDelivery":"s3"}|order'
		'{"correlationId":"r-4","targetDelivery":"s3","order":{"user":"u"}}|queries'
		'{"correlationId":"r-5","targetDelivery":"s3","order":{"queries":[],"user":"u"}}|queries'
		'{"correlationId":"r-6","targetDelivery":"s3","order":{"queries":[1],"user":"u"}}|queries'
		'{"correlationId":"r-7","targetDelivery":"s3","order":{"queries":["*"],"filters":{},"user":"u"}}|dataTypes'
		'{"correlationId":"r-8","targetDelivery":"s3","order":{"queries":["*"],"filters":{"dataTypes":["FOO"]},"user":"u"}}|FOO'
		'{"correlationId":"r-9","targetDelivery":"s3","order":{"queries":["*"],"filters":{"dataTypes":["RAWDATA"],"filenameRegExp":"(["},"user":"u"}}|filenameRegExp'
		'{"correlationId":"r-10","targetDelivery":"s3","order":{"queries":["*"],"user":"'"$(printf 'u%.0s' $(seq 129))"'"}}|user'
		'{"correlationId":" ","targetDelivery":"s3","order":{"queries":["*"],"user":"u"}}|correlation'
		'{"correlationId":"r-12","targetDelivery":5,"order":{"queries":["*"],"user":"u"}}|targetDelivery'
	)
	for c in "${cases[@]}"; do publish open "${c%|*}"; done
	responses ${#cases[@]}
	for c in "${cases[@]}"; do
		cid=$(sed 's/^{"correlationId":"\([^"]*\)".*/\1/' <<<"${c%|*}")
		line=$(grep -F "\\\"correlationId\\\":\\\"$cid\\\"" resp)
		[[ "$line" == *INVALID_CONTENT* ]] || { echo "not INVALID_CONTENT: $c -> $line"; false; }
		[[ "$line" == *"${c##*|}"* ]] || { echo "field not named: $c -> $line"; false; }
	done
	drain_main
}

@test "the same request again re-sends its response; another body in flight is dead-lettered, unanswered, the original untouched" {
	publish open "$(body i-7 u)"
	responses 1
	publish open "$(body i-7 u)"
	responses 1
	run cat resp
	assert_output --partial '\"correlationId\":\"i-7\",\"status\":\"GRANTED\"'
	before=$(peek count "$FERRY_AMQP_URL" regards.DLQ)
	# rs-delivery drops it (DeliveryCreateService): no answer, which the
	# client would take for its first request's fate; ferry keeps it in the DLQ
	publish open "$(body i-7 someone-else)"
	publish open "$(body i-7b u)"
	responses 1
	run cat resp
	assert_output --partial '\"correlationId\":\"i-7b\"'
	refute_output --partial '\"correlationId\":\"i-7\"'
	for _ in $(seq 50); do
		[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" -eq $((before + 1)) ] && break
		sleep 0.2
	done
	[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" -eq $((before + 1)) ]
	grep -q 'open/i-7: correlationId in flight with another body: dead-lettered' "$BATS_FILE_TMPDIR/ferry.log"
	run jq_sql "$FERRY_JOURNAL" "select state || ' ' || submission from request where correlation_id = 'i-7'"
	assert_output "GRANTED 1"
	drain_main
}

@test "a DENIED request sent again is a new submission: fixed it is GRANTED, and show lists both" {
	publish p1 "$(body s-1 eve@example.org)"
	responses 1
	run cat resp
	assert_output --partial 'Unknown user : eve@example.org'
	# the same body again: rs-delivery kept no row, so it is DENIED again
	publish p1 "$(body s-1 eve@example.org)"
	responses 1
	run cat resp
	assert_output --partial 'Unknown user : eve@example.org'
	publish p1 "$(body s-1 ana@example.org)"
	responses 1
	run cat resp
	assert_output --partial '\"correlationId\":\"s-1\",\"status\":\"GRANTED\"'
	run bash -c "ferry-journal -J show p1 s-1 | jq -c '[.state, .submission, [.events[] | \"\\(.submission) \\(.state)\"]]'"
	assert_output '["GRANTED",3,["1 RECEIVED","1 DENIED","2 RECEIVED","2 DENIED","3 RECEIVED","3 GRANTED"]]'
	run ferry-journal show p1 s-1
	assert_output --partial '-- submission 2: the correlationId sent again after its end'
	assert_output --partial '-- submission 3: the correlationId sent again after its end'
	assert_line --regexp '^submission +3$'
	# every submission's response is kept
	[ "$(grep -c '"status":"DENIED"' <<<"$output")" -eq 2 ]
	[ "$(grep -c '"status":"GRANTED"' <<<"$output")" -eq 1 ]
	drain_main
}

@test "an ERROR request sent again with the same body is a new attempt, GRANTED again" {
	publish p1 "$(body s-2 ana@example.org)"
	responses 1
	run ferry-journal cancel p1 s-2 -m 'stopped by the operator'
	assert_success
	responses 1
	run cat resp
	assert_output --partial '\"status\":\"ERROR\"'
	assert_output --partial 'stopped by the operator'
	publish p1 "$(body s-2 ana@example.org)"
	responses 1
	run cat resp
	assert_output --partial '\"correlationId\":\"s-2\",\"status\":\"GRANTED\"'
	run jq_sql "$FERRY_JOURNAL" "select state || ' ' || submission || ' ' || coalesce(error_type, '-') from request where correlation_id = 's-2'"
	assert_output "GRANTED 2 -"
	drain_main
}

@test "messages nobody can answer are dead-lettered to regards.DLQ and the stream goes on" {
	before=$(peek count "$FERRY_AMQP_URL" regards.DLQ)
	amqp-publish --url="$FERRY_AMQP_URL" -e "$RX" -b "$(body d-1 u)"            # no tenant header
	publish open 'this is not json'
	publish open '[1,2,3]'
	publish open '{"correlationId":42,"targetDelivery":"s3"}'
	publish open '{"targetDelivery":"s3"}'
	publish open "$(body d-2 u)"
	responses 1
	run cat resp
	assert_output --partial 'd-2'
	for _ in $(seq 50); do
		[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" -eq $((before + 5)) ] && break
		sleep 0.2
	done
	[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" -eq $((before + 5)) ]
	run grep -c 'dead-lettered' "$BATS_FILE_TMPDIR/ferry.log"
	[ "$output" -ge 5 ]
	drain_main
}

@test "a regards.tenant of 50,000 bytes 0xff, or ../x, is dead-lettered; the requests after it are answered" {
	drain_main
	before=$(peek count "$FERRY_AMQP_URL" regards.DLQ)
	bad=$(head -c 50000 /dev/zero | tr '\0' '\377')
	amqp-publish --url="$FERRY_AMQP_URL" -e "$RX" -H "regards.tenant: $bad" -b "$(body t-1 u)"
	publish '../x' "$(body t-2 u)"
	publish open "$(body t-3 u)"
	publish open "$(body t-4 u)"
	responses 2
	grep -q '\\"t-3\\"' resp
	grep -q '\\"t-4\\"' resp
	for _ in $(seq 50); do
		[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" -eq $((before + 2)) ] && break
		sleep 0.2
	done
	[ "$(peek count "$FERRY_AMQP_URL" regards.DLQ)" -eq $((before + 2)) ]
	run jq_sql "$FERRY_JOURNAL" "select tenant, correlation_id from request where correlation_id like 't-%' order by id"
	assert_output $'open|t-3\nopen|t-4'
	run grep -c 'dead-lettered): regards.tenant header is not a tenant name' "$BATS_FILE_TMPDIR/ferry.log"
	assert_output 2
	drain_main
}

# A journal whose second response (as an earlier ferry could journal it)
# has a header no frame holds: 50,000 U+FFFD, 150,000 bytes
aside_journal() {
	for c in s-1 s-2 s-3; do item open "$c" "$(body "$c" u)"; done >items
	FERRY_JOURNAL=aside.db ferry-request-validate <items >/dev/null 3>/dev/null
	sqlite3 aside.db "UPDATE outbox SET headers = json_object('regards.tenant',
		replace(hex(zeroblob(50000)), '00', char(65533)))
		WHERE request_id = (SELECT id FROM request WHERE correlation_id = 's-2')"
}

@test "a response that cannot be framed is set aside, logged once and counted; the ones after it go out" {
	drain_main
	peek get "$FERRY_AMQP_URL" test.alias 100000 1 >/dev/null || true
	aside_journal
	# a notify that retried the row forever would never end here
	run timeout 120 ferry-notify -1 -v -j aside.db
	assert_success
	[ "$(grep -c 'set aside' <<<"$output")" -eq 1 ]
	assert_output --regexp 'ferry-notify: error: open/s-2: response [0-9]+ set aside, never to be published: publish: cannot encode a frame'
	responses 2
	grep -q '\\"s-1\\"' resp
	grep -q '\\"s-3\\"' resp
	run ferry-journal -j aside.db show open s-2
	assert_output --regexp ' set aside +\{"correlationId":"s-2","status":"GRANTED"\}'
	assert_output --partial 'set aside at '
	run ferry-journal -J -j aside.db show open s-2
	assert_output --partial '"setAsideWhy":"publish: cannot encode a frame'
	assert_output --partial '"sent":false'
	run ferry-journal -j aside.db metrics
	assert_line 'ferry_outbox_set_aside 1'
	assert_line 'ferry_outbox_unsent 0'
	run ferry-journal -j aside.db stats
	assert_line --regexp '^outbox set aside +1$'
	run ferry-journal -j aside.db check
	assert_failure 1
	assert_output --partial 'open/s-2'
	assert_output --partial 'set aside'
	# set aside for good: a second run publishes nothing and says nothing of it
	run timeout 120 ferry-notify -1 -v -j aside.db
	assert_success
	refute_output --partial 'set aside'
	run peek count "$FERRY_AMQP_URL" test.alias
	assert_output 0
	drain_main
}

@test "40+ malformed bodies are answered or dead-lettered; nothing crashes or stalls" {
	local big; big=$(head -c 60000 /dev/zero | tr '\0' 'x')
	local deep; deep=$(printf '%0.s[' $(seq 3000))
	local -a bodies=(
		'' ' ' 'null' 'true' '1' '"s"' '{' '{}' '{"correlationId":null}' '{"correlationId":[]}'
		'{"correlationId":{}}' '{"correlationId":true}' "$deep"
		'{"correlationId":"m-1"}' '{"correlationId":"m-2","targetDelivery":null}'
		'{"correlationId":"m-3","targetDelivery":[]}' '{"correlationId":"m-4","targetDelivery":"s3","order":null}'
		'{"correlationId":"m-5","targetDelivery":"s3","order":[]}' '{"correlationId":"m-6","targetDelivery":"s3","order":"x"}'
		'{"correlationId":"m-7","targetDelivery":"s3","order":{"queries":"*","user":"u"}}'
		'{"correlationId":"m-8","targetDelivery":"s3","order":{"queries":{},"user":"u"}}'
		'{"correlationId":"m-9","targetDelivery":"s3","order":{"queries":[null],"user":"u"}}'
		'{"correlationId":"m-10","targetDelivery":"s3","order":{"queries":["*"],"user":5}}'
		'{"correlationId":"m-11","targetDelivery":"s3","order":{"queries":["*"],"user":null}}'
		'{"correlationId":"m-12","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":"x"}}'
		'{"correlationId":"m-13","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":"RAWDATA"}}}'
		'{"correlationId":"m-14","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":[1]}}}'
		'{"correlationId":"m-15","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":["RAWDATA"],"filenameRegExp":5}}}'
		'{"correlationId":"m-16","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":["RAWDATA"],"filenameRegExp":"*x"}}}'
		'{"correlationId":"m-17","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":["RAWDATA"],"filenameRegExp":"(a"}}}'
		'{"correlationId":"m-18","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":null}}'
		"{\"correlationId\":\"m-19\",\"targetDelivery\":\"$big\",\"order\":{\"queries\":[\"*\"],\"user\":\"u\"}}"
		"{\"correlationId\":\"m-20\",\"targetDelivery\":\"s3\",\"order\":{\"queries\":[\"$big\"],\"user\":\"$big\"}}"
		"{\"correlationId\":\"m-21$big\",\"targetDelivery\":\"s3\",\"order\":{\"queries\":[\"*\"],\"user\":\"u\"}}"
		'{"correlationId":"m-22","targetDelivery":"s3","order":{"queries":["*"],"user":"u"},"unknown":{"deep":[1,2,3]}}'
		'{"correlationId":"m-23","targetDelivery":"s3","order":{"queries":["*"],"user":"u","sizeLimitInBytes":1}}'
		'{"correlationId":"m-24 é ✓ 𝄞","targetDelivery":"s3","order":{"queries":["*"],"user":"u"}}'
		'{"correlationId":"m-25","targetDelivery":"s3","order":{"queries":["*"],"user":"u"}} trailing'
		'{"correlationId":"m-26","correlationId":"m-26b","targetDelivery":"s3","order":{"queries":["*"],"user":"u"}}'
		'{"correlationId":"m-27","targetDelivery":"s3","order":{"queries":["*","\u0000"],"user":"u"}}'
		'{"correlationId":"m-28","targetDelivery":"\t\n","order":{"queries":["*"],"user":"u"}}'
		'{"correlationId":"m-29","targetDelivery":"s3","order":{"queries":["*"],"user":"   "}}'
		'{"correlationId":"m-30","targetDelivery":"s3","order":{"queries":["*"],"user":""}}'
		'{"correlationId":"m-31","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":["RAWDATA","QUICKLOOK"]}}}'
		'{"correlationId":"m-32","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":[]}}}'
		'{"correlationId":"m-33","targetDelivery":1e999,"order":{"queries":["*"],"user":"u"}}'
		'{"correlationId":"m-34","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":["RAWDATA"],"filenameRegExp":"^S1.*_(GRD|SLC)\\.zip$"}}}'
		'{"correlationId":"m-35","targetDelivery":"s3","order":{"queries":["*"],"user":"u","filters":{"dataTypes":["RAWDATA"],"filenameRegExp":"(a+)+b"}}}'
	)
	printf '\xff\xfe{"correlationId":"m-36"}' >bin.body
	for b in "${bodies[@]}"; do publish open "$b"; done
	amqp-publish --url="$FERRY_AMQP_URL" -e "$RX" -H "regards.tenant: open" <bin.body
	head -c 10485760 /dev/zero | tr '\0' ' ' >huge.body
	amqp-publish --url="$FERRY_AMQP_URL" -e "$RX" -H "regards.tenant: open" <huge.body
	publish open "$(body m-last u)"
	# answerable: m-1..m-35 but m-25 (trailing garbage), m-26 (a key twice)
	# and m-27 (a \u0000), then m-last
	responses 33 60
	run grep -c 'correlationId' resp
	[ "$output" -ge 33 ]
	! grep -q 'm-26' resp
	! grep -q 'm-27' resp
	grep -q 'm-last' resp
	grep -q 'm-24 é ✓ 𝄞' resp
	for m in m-19 m-22 m-23 m-31 m-34 m-35; do grep -q "\\\\\"$m\\\\\",\\\\\"status\\\\\":\\\\\"GRANTED" resp || { echo "$m not GRANTED"; false; }; done
	for m in m-1 m-7 m-10 m-20 m-32; do grep -q "\\\\\"$m\\\\\",\\\\\"status\\\\\":\\\\\"DENIED" resp || { echo "$m not DENIED"; false; }; done
	# every line of every response is at most 4096 bytes of body
	node -e 'require("fs").readFileSync("resp","utf8").trim().split("\n").forEach(l => {
		if (Buffer.byteLength(JSON.parse(l).body) > 4096) { console.error("too long"); process.exit(1); } })'
	kill -0 "$(cat "$BATS_FILE_TMPDIR/notify.pid")"
	run ferry_procs
	assert_line --regexp '^[0-9]+ ferry-amqp-ingest$'
	assert_line --regexp '^[0-9]+ ferry-request-validate$'
	drain_main
}

@test "a broker restart in the middle of a stream: nothing lost, every request answered" {
	drain_main
	peek get "$FERRY_AMQP_URL" test.alias 100000 1 >/dev/null || true
	for i in $(seq 1 60); do publish open "$(body "b-$i" u)" -p; done
	ferry-sandbox stop "$SANDBOX_DIR" rabbitmq
	ferry-sandbox start "$SANDBOX_DIR" rabbitmq >/dev/null
	sandbox_env
	for i in $(seq 61 120); do publish open "$(body "b-$i" u)" -p; done
	peek get "$FERRY_AMQP_URL" test.alias 200 60 >resp || true
	for i in $(seq 1 120); do
		grep -q "\\\\\"b-$i\\\\\"" resp || { echo "b-$i not answered"; false; }
	done
	run jq_sql "$FERRY_JOURNAL" "select count(*) from outbox o join request r on r.id = o.request_id where r.correlation_id like 'b-%' and o.sent_at is null"
	assert_output 0
	grep -q 'reconnecting' "$BATS_FILE_TMPDIR/notify.log"
}

@test "-l: a backlog journaled in lingering batches: every request answered once, the batches add up" {
	run ferry-amqp-ingest -l -1
	assert_failure 100
	assert_output --partial 'usage: ferry-amqp-ingest'
	run ferry-amqp-ingest -l 1001
	assert_failure 100
	# the file's chain stopped, a backlog of 300 builds up
	ferry_procs | awk '$2 == "ferry-amqp-ingest" { print $1 }' | xargs -r kill -TERM
	wait "$(cat "$BATS_FILE_TMPDIR/chain.pid")" 2>/dev/null || true
	drain_main
	peek get "$FERRY_AMQP_URL" test.alias 100000 1 >/dev/null || true
	"$FERRY_BUILD/test/bench-amqp" flood "$FERRY_AMQP_URL" "$RX" open 300 0 lg >/dev/null
	# batches of at most 128; after one of 64 or more the next waits up to
	# 1 s to fill (how the backlog splits depends on how fast it arrives)
	(ferry-amqp-ingest -v -b 128 -l 1000 | ferry-request-validate >/dev/null) 2>linger.log 3>&- &
	echo $! >"$BATS_FILE_TMPDIR/chain.pid"
	peek get "$FERRY_AMQP_URL" test.alias 300 60 >resp
	for i in $(seq 0 299); do
		grep -q "\\\\\"lg-$i-" resp || { echo "lg-$i not answered"; false; }
	done
	run jq_sql "$FERRY_JOURNAL" "select state, count(*) from request where correlation_id like 'lg-%' group by state"
	assert_output 'GRANTED|300'
	run awk '/batch of [0-9]+ journaled/ { for (i = 1; i < NF; i++) if ($i == "of") n += $(i + 1) } END { print n }' linger.log
	assert_output 300
}
