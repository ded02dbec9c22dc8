#!/usr/bin/env bats
# ferry-order-bridge's rs-order backend end to end: ferry-run against a real
# RabbitMQ and S3 (ferry-sandbox), with test/rs-order-standin.js in REGARDS
# rs-order's place (its AMQP exchanges and queues, its answers, its JWT-checked
# REST listing and downloads). Zips checked with /usr/bin/aws, md5sum, unzip;
# what ferry sent to rs-order read from the stand-in's own log.

load lib

PKG=fr.cnes.regards.modules.order.amqp
SECRET='ferry-test-key-0123456789-0123456789-0123456789-0123456789-abcdef'

aws() { /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" "$@"; }

# start_standin [PORT]: the stand-in (test/lib.bash) with this file's secret
start_standin() { standin_start --port "${1:-0}" --secret "$SECRET"; }

# rs_tenant NAME SECRET_FILE [EXTRA_JSON]: an rs-order tenant delivering to S3
rs_tenant() {
	tenant "$1" "{\"order_backend\":\"rs-order\",
		\"rs_order\":{\"url\":\"http://127.0.0.1:$(cat "$D/port")\",\"jwt_secret_file\":\"$2\"},
		\"users\":[\"ana@example.org\"],${3:+$3,}
		\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,
		\"region\":\"us-east-1\",\"key\":\"S3RVER\",\"secret\":\"S3RVER\"},
		\"delivery_bucket\":\"deliveries\"}"
}

setup_file() {
	sandbox_up
	service_env
	mkdir -p "$D/data/P1" "$D/data/P2" "$D/data/P3"
	printf 'one' >"$D/data/P1/a.nc"
	printf 'two!' >"$D/data/P1/b.txt"
	head -c 300000 /dev/urandom >"$D/data/P2/c.nc"
	head -c 70000 /dev/urandom >"$D/data/P3/d.nc"
	cat >"$D/config.json" <<-'EOF2'
		{"users":["ana@example.org"],
		 "rules":[{"prefix":"deny-","action":"deny","errorType":"ORDER_LIMIT_REACHED"},
		          {"prefix":"split-","suborders":3},
		          {"prefix":"corrupt-","corrupt":["c.nc"]},
		          {"prefix":"slow-","delayMs":5000}]}
	EOF2
	printf '%s\n' "$SECRET" >"$D/secret"
	chmod 600 "$D/secret"
	cp "$D/secret" "$D/open-secret"
	chmod 644 "$D/open-secret"
	start_standin
	rs_tenant p1 "$D/secret"
	rs_tenant p2 "$D/secret" '"max_suborders":1'
	rs_tenant p3 "$D/secret" '"request_ttl":0.004'
	rs_tenant p4 "$D/open-secret"
	service_start
}

teardown_file() {
	service_stop
	[ -n "${D:-}" ] && standin_stop
	sandbox_down
}

setup() {
	sandbox_env
	service_env
	cd "$BATS_TEST_TMPDIR" || return 1
}

# submit TENANT CID QUERY...: ferry-submit, waiting for the last response
submit() {
	local t=$1 c=$2
	shift 2
	local q=()
	for x in "$@"; do q+=(-q "$x"); done
	ferry-submit -w 60 -t "$t" -u ana@example.org -c "$c" "${q[@]}"
}

# check_zip: the DONE zip of response lines in ./out, fetched with aws, md5 checked
check_zip() {
	url=$(sed -n 's/.*"status":"DONE","url":"\([^"]*\)".*/\1/p' out)
	md5=$(sed -n 's/.*"md5":"\([0-9a-f]*\)".*/\1/p' out)
	[ -n "$url" ] && [ -n "$md5" ]
	aws s3 cp "$url" got.zip >/dev/null
	[ "$(md5sum <got.zip | cut -d' ' -f1)" = "$md5" ]
	unzip -tq got.zip
}

# standin_log JQ: the stand-in's log lines selected by JQ, as a JSON array
standin_log() { jq -c -s "map(select($1))" "$D/log.ndjson"; }

# wait_log JQ: until a line of the stand-in's log matches (10 s at most)
wait_log() {
	for _ in $(seq 1 100); do
		[ "$(standin_log "$1" | jq length)" -gt 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# order_of CID: the orderId rs-order gave the request (its GRANTED)
order_of() { standin_log ".kind == \"published\" and .body.correlationId == \"$1\" and .body.status == \"GRANTED\"" | jq '.[0].body.orderId'; }

@test "DONE: rs-order's files, listed and downloaded with the user's JWT, md5-checked, come in one zip" {
	run submit p1 done-1 'productId:P1 OR productId:P2'
	assert_success
	echo "$output" >out
	assert_line --index 0 '{"correlationId":"done-1","status":"GRANTED"}'
	check_zip
	run unzip -Z1 got.zip
	assert_output $'P1_1/a.nc\nP1_1/b.txt\nP2_1/c.nc'
	unzip -p got.zip P2_1/c.nc | cmp - "$D/data/P2/c.nc"
	# the OrderRequestDtoEvent, as rs-delivery's AutoOrderRequestClient publishes it
	standin_log '.kind == "request" and .body.correlationId == "done-1"' >req
	jq -e --arg ex "regards.broadcast.$PKG.input.OrderRequestDtoEvent" --arg ty "$PKG.input.OrderRequestDtoEvent" \
		'length == 1 and .[0].exchange == $ex and .[0].tenant == "p1"
		and .[0].headers == {"regards.tenant":"p1","regards.converter":"GSON","regards.type":$ty}
		and .[0].properties.contentType == "application/json" and .[0].properties.contentEncoding == "UTF-8"
		and .[0].properties.deliveryMode == 2 and .[0].properties.priority == 1
		and .[0].properties.correlationId == null
		and .[0].body == {"queries":["productId:P1 OR productId:P2"],"correlationId":"done-1",
			"user":"ana@example.org","sizeLimitInBytes":5368709120}' req
	# every page listed before any download, all of them as the order's user
	order=$(order_of done-1)
	standin_log ".kind == \"http\" and (.path | startswith(\"/orders/$order/\") or startswith(\"/orders/files/\"))" >calls
	jq -e --arg o "$order" '.[0].path == "/orders/\($o)/files/available?page=0&size=100&sort=id,asc"
		and all(.status == 200 and .user == "ana@example.org")' calls
	[ "$(jq '[.[] | select(.path | startswith("/orders/files/"))] | length' calls)" -ge 3 ]
	# an order delivered is not cancelled
	[ "$(standin_log '.kind == "cancel" and .body.correlationId == "done-1"' | jq length)" = 0 ]
}

@test "rs-order DENIED ORDER_LIMIT_REACHED ends the request ERROR ORDER_LIMIT_REACHED with rs-order's message" {
	run submit p1 deny-1 'productId:P1'
	assert_failure 1
	assert_output --partial '"correlationId":"deny-1","status":"ERROR","errorType":"ORDER_LIMIT_REACHED"'
	assert_output --partial 'ExceededBasketSizeException'
	run jq_sql "$FERRY_JOURNAL" "select state, error_type from request where correlation_id = 'deny-1'"
	assert_output 'ERROR|ORDER_LIMIT_REACHED'
}

@test "rs-order FAILED EMPTY_ORDER ends the request ERROR EMPTY_ORDER, and with no orderId nothing is cancelled" {
	run submit p1 empty-1 'productId:NOPE'
	assert_failure 1
	assert_output --partial '"errorType":"EMPTY_ORDER","message":"EmptySelectionException: This selection contains no file that can be ordered"'
	sleep 2
	[ "$(standin_log '.kind == "cancel" and .body.correlationId == "empty-1"' | jq length)" = 0 ]
}

@test "more suborders than max_suborders: ERROR TOO_MANY_SUBORDERS and rs-order gets the cancel of the order" {
	run submit p2 split-1 '*'
	assert_failure 1
	assert_output --partial '"errorType":"TOO_MANY_SUBORDERS"'
	assert_output --partial 'has 3 sub-orders, more than the 1 allowed'
	order=$(order_of split-1)
	wait_log ".kind == \"cancel\" and .body.correlationId == \"split-1\""
	standin_log '.kind == "cancel" and .body.correlationId == "split-1"' >cancel
	jq -e --argjson o "$order" --arg ex "regards.broadcast.$PKG.input.OrderCancelRequestDtoEvent" \
		'length == 1 and .[0].body == {"correlationId":"split-1","orderId":$o} and .[0].exchange == $ex
		and .[0].headers["regards.type"] == "fr.cnes.regards.modules.order.amqp.input.OrderCancelRequestDtoEvent"
		and .[0].tenant == "p2"' cancel
}

@test "max_suborders 0: an order of 3 suborders is delivered whole, in one zip" {
	run submit p1 split-all '*'
	assert_success
	echo "$output" >out
	check_zip
	run unzip -Z1 got.zip
	assert_output $'P1_1/a.nc\nP1_1/b.txt\nP2_1/c.nc\nP3_1/d.nc'
	unzip -p got.zip P3_1/d.nc | cmp - "$D/data/P3/d.nc"
}

@test "a file rs-order serves altered fails ferry-fetch's md5 check: ERROR INTERNAL_ERROR, and the order is cancelled" {
	run submit p1 corrupt-1 'productId:P2'
	assert_failure 1
	assert_output --partial '"errorType":"INTERNAL_ERROR","message":"checksum mismatch for P2/c.nc after 3 attempts'
	wait_log '.kind == "cancel" and .body.correlationId == "corrupt-1"'
	[ "$(standin_log '.kind == "cancel" and .body.correlationId == "corrupt-1"' | jq '.[0].body.orderId')" = "$(order_of corrupt-1)" ]
}

@test "a tenant whose jwt_secret_file others can read is unusable: nothing is ordered from rs-order" {
	run submit p4 open-1 'productId:P1'
	assert_failure 1
	assert_output --partial '"errorType":"FORBIDDEN"'
	grep -q 'p4.json: rs_order.jwt_secret_file: .*readable by group/others' "$D/run.log"
	! grep -q "$SECRET" "$D/run.log"
	[ "$(standin_log '.body.correlationId == "open-1"' | jq length)" = 0 ]
}

@test "a slow order holds up no other; the bridge killed while it waits takes it back without ordering it again" {
	submit p1 slow-1 'productId:P1' >slow.out 2>&1 &
	wait_log '.kind == "request" and .body.correlationId == "slow-1"'
	run submit p1 quick-1 'productId:P3'
	assert_success
	# delivered while the slow one still waits for rs-order
	run jq_sql "$FERRY_JOURNAL" "select state from request where correlation_id = 'slow-1'"
	assert_output ORDERING
	pid=$(ferry_procs | awk '$2 == "ferry-order-bridge" { print $1 }')
	[ -n "$pid" ]
	kill -KILL "$pid"
	wait %1
	grep -q '"correlationId":"slow-1","status":"DONE"' slow.out
	[ "$(standin_log '.kind == "request" and .body.correlationId == "slow-1"' | jq length)" = 1 ]
}

@test "rs-order down for 30 s: requests wait ORDERING, one expires, the other is delivered once it is back" {
	standin_stop
	port=$(cat "$D/port")
	submit p1 down-1 'productId:P1' >down1.out 2>&1 &
	p1=$!
	submit p3 down-2 'productId:P1' >down2.out 2>&1 &
	p2=$!
	# p3's requests live 14.4 s: this one ends EXPIRED while rs-order is away
	wait $p2 || true
	grep -q '"correlationId":"down-2","status":"ERROR","errorType":"EXPIRED"' down2.out
	run jq_sql "$FERRY_JOURNAL" "select state from request where correlation_id = 'down-1'"
	assert_output ORDERING
	sleep 16
	start_standin "$port"
	wait $p1
	grep -q '"correlationId":"down-1","status":"DONE"' down1.out
	# rs-order ordered the expired one late: ferry cancels that order
	wait_log '.kind == "cancel" and .body.correlationId == "down-2"'
	[ "$(standin_log '.kind == "cancel" and .body.correlationId == "down-2"' | jq '.[0].body.orderId')" = "$(order_of down-2)" ]
}
