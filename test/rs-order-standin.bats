#!/usr/bin/env bats
# The rs-order stand-in (test/rs-order-standin.js) proven with independent
# clients before ferry's rs-order backend relies on it: requests published
# with amqp-publish, responses read by amqplib from a queue bound to the
# response exchange, the REST listing and downloads fetched with curl and
# checked with md5sum. Covers the event sequences (GRANTED, SUBORDER_DONE,
# DONE; DENIED; FAILED; several suborders), paging, JWT checks, cancel
# events, messages without a tenant, a RabbitMQ restart and a restart of the stand-in.

load lib

PKG=fr.cnes.regards.modules.order.amqp
NS=regards.broadcast.$PKG
REQ=$NS.input.OrderRequestDtoEvent
CANCEL=$NS.input.OrderCancelRequestDtoEvent
RESP=$NS.output.OrderResponseDtoEvent
QREQ=regards.broadcast.rs-order.fr.cnes.regards.modules.order.service.request.OrderRequestEventHandler

peek() { node "$BATS_TEST_DIRNAME/amqp-peek.js" "$@"; }
standin() { node "$BATS_TEST_DIRNAME/rs-order-standin.js" "$@"; }

setup_file() {
	sandbox_up
	export D="$BATS_FILE_TMPDIR"
	mkdir -p "$D/data/P1" "$D/data/P2"
	printf 'one' >"$D/data/P1/a.nc"
	printf 'two!' >"$D/data/P1/b.txt"
	head -c 204800 /dev/urandom >"$D/data/P2/c.nc"
	echo '{}' >"$D/config.json"
	standin_start
}

teardown_file() {
	[ -n "${D:-}" ] && standin_stop
	sandbox_down
}

setup() {
	sandbox_env
	export D="$BATS_FILE_TMPDIR"
	cd "$BATS_TEST_TMPDIR" || return 1
	PORT=$(cat "$D/port")
	BASE="http://127.0.0.1:$PORT"
	# a fresh queue on the response exchange for each test
	Q="test.responses.$BATS_TEST_NUMBER"
	peek bind "$FERRY_AMQP_URL" "$Q" "$RESP"
}

# request TENANT BODY: an OrderRequestDtoEvent as rs-delivery publishes it
request() {
	amqp-publish --url="$FERRY_AMQP_URL" -e "$REQ" -p -C application/json -E UTF-8 \
		-H "regards.tenant: $1" -H "regards.converter: GSON" \
		-H "regards.type: $PKG.input.OrderRequestDtoEvent" -b "$2"
}

# events N: the bodies of the next N responses on this test's queue
events() { peek get "$FERRY_AMQP_URL" "$Q" "$1" "${2:-30}" | jq -c '.body | fromjson'; }

token() { standin token --tenant p1 --user "${1:-ana@example.org}" "${@:2}"; }

# get URL [TOKEN]: curl with the REGARDS bearer token, body to stdout
get() { curl -sS -f -H "Authorization: Bearer ${2:-$(token)}" "$1"; }

# code URL [curl args]: the HTTP status only
code() { curl -sS -o /dev/null -w '%{http_code}' "$@"; }

# wait_log JQ_FILTER: until a line of the stand-in's log matches
wait_log() {
	for _ in $(seq 1 100); do
		[ -n "$(jq -c "select($1)" "$D/log.ndjson" 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	return 1
}

@test "a request is answered GRANTED, SUBORDER_DONE, DONE, with rs-order's exchange, headers and properties" {
	request p1 '{"queries":["productId:P1"],"correlationId":"c-1","user":"ana@example.org","sizeLimitInBytes":1000}'
	peek get "$FERRY_AMQP_URL" "$Q" 3 30 >raw
	run jq -r '.body | fromjson | .status' raw
	assert_output "GRANTED
SUBORDER_DONE
DONE"
	jq -c '.body | fromjson' raw >ev
	# one orderId; GRANTED carries no totalSubOrders, the others say 1
	[ "$(jq -r .orderId ev | sort -u | wc -l)" = 1 ]
	jq -e -s '.[0] | .totalSubOrders == null and (.orderId | type) == "number"' ev
	jq -e -s '.[1] | .orderId as $o | .totalSubOrders == 1 and (.subOrderId | type) == "number"
		and (.downloadLink | endswith("/api/v1/rs-order/user/orders/\($o)/download"))' ev
	jq -e -s '.[2] | .totalSubOrders == 1 and .message == "Order of user ana@example.org is finished"' ev
	# every message as REGARDS' publisher sends it
	run jq -r '[.exchange, .headers["regards.tenant"], .headers["regards.converter"], .headers["regards.type"],
		.properties.correlationId, .properties.contentType, .properties.deliveryMode, .properties.priority] | join(" ")' raw
	assert_output "$(for _ in 1 2 3; do echo "$RESP p1 GSON $PKG.output.OrderResponseDtoEvent c-1 application/json 2 1"; done)"
	# the request was recorded with its tenant and headers
	jq -e -s 'map(select(.kind == "request" and .body.correlationId == "c-1")) | length == 1 and
		.[0].tenant == "p1" and .[0].exchange == "'"$REQ"'" and .[0].body.sizeLimitInBytes == 1000' "$D/log.ndjson"
}

@test "the available-files listing pages like rs-order and every download matches its md5" {
	request p1 '{"queries":["productId:P1 OR productId:P2"],"correlationId":"c-2","user":"ana@example.org"}'
	order=$(events 3 | jq -r 'select(.status == "DONE") | .orderId')
	[ -n "$order" ]
	get "$BASE/orders/$order/files/available?page=0&size=2&sort=id,asc" >p0
	jq -e '.metadata == {"size":2,"totalElements":3,"totalPages":2,"number":0}' p0
	run jq -r '[.links[].rel] | join(" ")' p0
	assert_output "first self next last"
	jq -e '.content[0].links == [] and (.content[0].content | keys) ==
		["checksum","downloadUrl","filename","filesize","id","mimeType","productId","version"]' p0
	# the next link is what a client follows; the last page has none
	get "$(jq -r '.links[] | select(.rel == "next") | .href' p0)" >p1
	jq -e '.metadata.number == 1 and (.content | length) == 1 and ([.links[].rel] | index("next")) == null' p1
	# list every page first, then download by id (downloads empty the listing)
	jq -s -r '[.[].content[].content] | sort_by(.id)[] | [.id, .productId, .filename, .checksum, .filesize, .downloadUrl] | @tsv' p0 p1 >files
	run cut -f2,3 files
	assert_output "P1	a.nc
P1	b.txt
P2	c.nc"
	while IFS=$'\t' read -r id product name md5 size url; do
		[[ $url == "$BASE/api/v1/rs-order/orders/files/$id" ]]
		curl -sS -f -D "h.$id" -H "Authorization: Bearer $(token)" -o "f.$id" "$BASE/orders/files/$id"
		[ "$(md5sum <"f.$id" | cut -d' ' -f1)" = "$md5" ]
		[ "$(md5sum <"$D/data/$product/$name" | cut -d' ' -f1)" = "$md5" ]
		[ "$(stat -c %s "f.$id")" = "$size" ]
		grep -qi "^content-disposition: attachment; filename=\"$name\"" "h.$id"
		grep -qi '^content-type: application/octet-stream' "h.$id"
	done <files
	# a stored file read completely is DOWNLOADED: no longer listed
	get "$BASE/api/v1/rs-order/orders/$order/files/available" >after
	jq -e '.metadata.totalElements == 0 and .content == [] and .metadata.size == 10' after
	# still downloadable by id
	id=$(head -n 1 files | cut -f1)
	[ "$(code -H "Authorization: Bearer $(token)" "$BASE/orders/files/$id")" = 200 ]
}

@test "REST calls need a REGARDS JWT of the order's owner" {
	request p1 '{"queries":["productId:P2"],"correlationId":"c-3","user":"ana@example.org"}'
	order=$(events 3 | jq -r 'select(.status == "DONE") | .orderId')
	url="$BASE/orders/$order/files/available"
	[ "$(code "$url")" = 401 ]
	[ "$(code -H "Authorization: Bearer $(token ana@example.org --secret not-the-key)" "$url")" = 401 ]
	[ "$(code -H "Authorization: Bearer $(token ana@example.org --ttl -10)" "$url")" = 401 ]
	[ "$(code -H "Authorization: $(token)" "$url")" = 401 ]
	[ "$(code -H "Authorization: Bearer $(token eve@example.org)" "$url")" = 403 ]
	[ "$(code -H "Authorization: Bearer $(standin token --tenant p2 --user ana@example.org)" "$url")" = 404 ]
	[ "$(code -H "Authorization: Bearer $(token)" "$BASE/orders/999999/files/available")" = 404 ]
	[ "$(code -H "Authorization: Bearer $(token eve@example.org --role PROJECT_ADMIN)" "$url")" = 200 ]
	[ "$(code -H "Authorization: Bearer $(token)" "$url")" = 200 ]
	# the JWT is HS512 with REGARDS' claims
	t=$(token)
	b64() { node -e 'process.stdout.write(Buffer.from(process.argv[1], "base64url"))' "$1"; }
	b64 "$(cut -d. -f1 <<<"$t")" | jq -e '. == {"alg":"HS512"}'
	b64 "$(cut -d. -f2 <<<"$t")" | jq -e '.tenant == "p1" and .role == "REGISTERED_USER" and
		.sub == "ana@example.org" and .email == "ana@example.org" and (.exp | type) == "number"'
	jq -e -s 'map(select(.kind == "http" and .status == 403)) | length > 0 and all(.user == "eve@example.org")' "$D/log.ndjson"
}

@test "the config file steers each correlationId prefix: deny, fail, split, corrupt, unknown users" {
	cat >"$D/config.json" <<-'EOF'
		{"users":["ana@example.org"],
		 "rules":[{"prefix":"deny-","action":"deny","errorType":"ORDER_LIMIT_REACHED"},
		          {"prefix":"fail-","action":"fail"},
		          {"prefix":"split-","suborders":3},
		          {"prefix":"corrupt-","corrupt":["c.nc"]}]}
	EOF
	request p1 '{"queries":["*"],"correlationId":"deny-1","user":"ana@example.org"}'
	events 1 >ev
	jq -e '.status == "DENIED" and .errorType == "ORDER_LIMIT_REACHED" and .orderId == null and .correlationId == "deny-1"' ev
	request p1 '{"queries":["*"],"correlationId":"fail-1","user":"ana@example.org"}'
	events 2 >ev
	run jq -r '.status' ev
	assert_output "GRANTED
FAILED"
	jq -e -s '.[1] | .errorType == "INTERNAL_ERROR" and .errors == 3 and (.orderId | type) == "number"' ev
	# nothing selected: FAILED EMPTY_ORDER at once, as rs-order (no GRANTED, no orderId)
	request p1 '{"queries":["productId:NOPE"],"correlationId":"empty-1","user":"ana@example.org"}'
	events 1 >ev
	jq -e '.status == "FAILED" and .errorType == "EMPTY_ORDER" and .orderId == null' ev
	# a filter that excludes everything is the same
	request p1 '{"queries":["*"],"filters":{"dataTypes":["QUICKLOOK"]},"correlationId":"empty-2","user":"ana@example.org"}'
	events 1 | jq -e '.status == "FAILED" and .errorType == "EMPTY_ORDER"'
	# sizeLimitInBytes below the basket: DENIED ORDER_LIMIT_REACHED
	request p1 '{"queries":["productId:P1"],"correlationId":"big-1","user":"ana@example.org","sizeLimitInBytes":5}'
	events 1 | jq -e '.status == "DENIED" and .errorType == "ORDER_LIMIT_REACHED" and (.message | contains("[7 bytes]"))'
	# users: unknown is DENIED FORBIDDEN, absent is DENIED INTERNAL_ERROR (rs-order's default errorType)
	request p1 '{"queries":["*"],"correlationId":"who-1","user":"eve@example.org"}'
	events 1 | jq -e '.status == "DENIED" and .errorType == "FORBIDDEN" and .errors == 1 and (.message | contains("Unknown user : eve@example.org"))'
	request p1 '{"queries":["*"],"correlationId":"who-2"}'
	events 1 | jq -e '.status == "DENIED" and .errorType == "INTERNAL_ERROR" and (.message | contains("User should be present"))'
	# three suborders: three SUBORDER_DONE, each listable alone
	request p1 '{"queries":["*"],"correlationId":"split-1","user":"ana@example.org"}'
	events 5 >ev
	run jq -r '"\(.status) \(.totalSubOrders // "-")"' ev
	assert_output "GRANTED -
SUBORDER_DONE 3
SUBORDER_DONE 3
SUBORDER_DONE 3
DONE 3"
	[ "$(jq -r 'select(.status == "SUBORDER_DONE") | .subOrderId' ev | sort -u | wc -l)" = 3 ]
	order=$(jq -r 'select(.status == "DONE") | .orderId' ev)
	n=0
	for s in $(jq -r 'select(.status == "SUBORDER_DONE") | .subOrderId' ev); do
		k=$(get "$BASE/orders/$order/filesTask/$s/files/available" | jq '.metadata.totalElements')
		n=$((n + k))
	done
	[ "$n" = 3 ]
	# corrupt: the listing tells the true md5, the bytes served do not match it
	request p1 '{"queries":["productId:P2"],"correlationId":"corrupt-1","user":"ana@example.org"}'
	order=$(events 3 | jq -r 'select(.status == "DONE") | .orderId')
	get "$BASE/orders/$order/files/available" | jq -r '.content[0].content | "\(.id) \(.checksum)"' >f
	read -r id md5 <f
	[ "$md5" = "$(md5sum <"$D/data/P2/c.nc" | cut -d' ' -f1)" ]
	get "$BASE/orders/files/$id" | md5sum >got
	[ "$(cut -d' ' -f1 got)" != "$md5" ]
	echo '{}' >"$D/config.json"
}

@test "a cancel event is recorded, answered by nothing, and ends the order" {
	echo '{"rules":[{"prefix":"slow-","stepDelayMs":60000}]}' >"$D/config.json"
	request p1 '{"queries":["*"],"correlationId":"slow-c","user":"ana@example.org"}'
	order=$(events 1 | jq -r 'select(.status == "GRANTED") | .orderId')
	[ -n "$order" ]
	amqp-publish --url="$FERRY_AMQP_URL" -e "$CANCEL" -p -C application/json -H "regards.tenant: p1" \
		-H "regards.converter: GSON" -H "regards.type: $PKG.input.OrderCancelRequestDtoEvent" \
		-b "{\"correlationId\":\"slow-c\",\"orderId\":$order}"
	wait_log ".kind == \"cancel\" and .body.orderId == $order"
	jq -e -s "map(select(.kind == \"cancel\"))[-1] | .tenant == \"p1\" and .exchange == \"$CANCEL\"
		and .body == {\"correlationId\":\"slow-c\",\"orderId\":$order}" "$D/log.ndjson"
	[ "$(code -H "Authorization: Bearer $(token)" "$BASE/orders/$order/files/available")" = 404 ]
	echo '{}' >"$D/config.json"
}

@test "a request without regards.tenant is dropped unanswered, as rs-order's batch listener does" {
	before=$(peek count "$FERRY_AMQP_URL" "$QREQ.DLQ")
	amqp-publish --url="$FERRY_AMQP_URL" -e "$REQ" -C application/json \
		-b '{"queries":["*"],"correlationId":"nt-1","user":"ana@example.org"}'
	# consumed in order: the next request's answers come first on the queue
	request p1 '{"queries":["productId:P1"],"correlationId":"nt-2","user":"ana@example.org"}'
	run events 3
	assert_success
	[ "$(jq -r .correlationId <<<"$output" | sort -u)" = nt-2 ]
	jq -e -s 'map(select(.kind == "rejected" and .why == "missing regards.tenant")) | length == 1
		and .[0].raw == "{\"queries\":[\"*\"],\"correlationId\":\"nt-1\",\"user\":\"ana@example.org\"}"' "$D/log.ndjson"
	# acked, not dead-lettered, nothing left in the queue
	[ "$(peek count "$FERRY_AMQP_URL" "$QREQ.DLQ")" = "$before" ]
	[ "$(peek count "$FERRY_AMQP_URL" "$QREQ")" = 0 ]
}

@test "a RabbitMQ restart loses no response and the stand-in consumes again" {
	echo '{"rules":[{"prefix":"slow-","delayMs":3000}]}' >"$D/config.json"
	request p1 '{"queries":["productId:P1"],"correlationId":"slow-r","user":"ana@example.org"}'
	wait_log '.kind == "request" and .body.correlationId == "slow-r"'
	ferry-sandbox stop "$SANDBOX_DIR" rabbitmq
	ferry-sandbox start "$SANDBOX_DIR" rabbitmq >/dev/null
	run events 3 60
	assert_success
	[ "$(jq -r .status <<<"$output" | tr '\n' ' ')" = "GRANTED SUBORDER_DONE DONE " ]
	echo '{}' >"$D/config.json"
	for _ in $(seq 1 100); do
		[ "$(jq -s 'map(select(.kind == "published" and .body.correlationId == "slow-r")) | length' "$D/log.ndjson")" = 3 ] && break
		sleep 0.1
	done
	# a request published after the restart is consumed and answered
	request p1 '{"queries":["productId:P1"],"correlationId":"after-r","user":"ana@example.org"}'
	run events 3 60
	assert_success
	[ "$(jq -r .correlationId <<<"$output" | sort -u)" = after-r ]
}

@test "the stand-in restarts from its state file: earlier orders are still listed" {
	request p1 '{"queries":["productId:P1"],"correlationId":"c-8","user":"ana@example.org"}'
	order=$(events 3 | jq -r 'select(.status == "DONE") | .orderId')
	[ -n "$order" ]
	standin_stop
	standin_start
	PORT=$(cat "$D/port")
	get "http://127.0.0.1:$PORT/orders/$order/files/available" >list
	run jq -r '[.content[].content.filename] | join(" ")' list
	assert_output "a.nc b.txt"
	# and it still answers requests, with new ids
	request p1 '{"queries":["productId:P2"],"correlationId":"c-9","user":"ana@example.org"}'
	run events 3
	assert_success
	[ "$(jq -r 'select(.status == "DONE") | .orderId' <<<"$output")" -gt "$order" ]
}
