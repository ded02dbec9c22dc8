#!/usr/bin/env bats
# ferry-order-bridge run alone on GRANTED items: the embedded catalog and an
# order command as backends, filters, limits, and every errorType it gives.

load lib

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	export FERRY_WORKSPACE="$BATS_TEST_TMPDIR/ws"
	mkdir -p data/P1 data/P2 data/P3
	printf 'one' >data/P1/a.nc
	printf 'two!' >data/P1/b.txt
	printf 'three' >data/P2/c.nc
	: >data/P3/empty.nc
	ferry-catalog -c cat.db init
	ferry-catalog -c cat.db scan -t coastline data >/dev/null
	tenant p1 "{\"catalog\":\"$PWD/cat.db\"}"
}

granted() { # granted CID QUERIES [FILTERS]: a GRANTED item
	local filters=${3:+,\"filters\":$3}
	printf '{"tenant":"p1","correlationId":"%s","receivedAt":"2026-11-23T10:00:00.000Z","expiresAt":"2099-01-01T00:00:00.000Z","headers":{},"request":{"correlationId":"%s","targetDelivery":"s3","order":{"queries":%s%s,"user":"u"}}}\n' \
		"$1" "$1" "$2" "$filters"
}

@test "a catalog query becomes the item's files and totalSize, in order" {
	granted c-1 '["productId:P1 OR productId:P2"]' | ferry-order-bridge >out 3>fd3
	run node -e 'const i = JSON.parse(require("fs").readFileSync("out","utf8"));
		console.log(i.files.map(f => f.productId + "/" + f.name + ":" + f.size).join(" "), i.totalSize)'
	assert_output "P1/a.nc:3 P1/b.txt:4 P2/c.nc:5 12"
	grep -q '"md5":"f97c5d29941bfb1b2fdab0874906ab82"' out   # md5 of "one"
	[ ! -s fd3 ]
	run jq_sql "$FERRY_JOURNAL" "select state from request"
	assert_output ORDERED
}

@test "dataTypes and filenameRegExp filter the files, matched on the whole name" {
	granted c-2 '["*"]' '{"dataTypes":["RAWDATA"],"filenameRegExp":".*\\.nc"}' | ferry-order-bridge >out
	run node -e 'const i = JSON.parse(require("fs").readFileSync("out","utf8"));
		console.log(i.files.map(f => f.name).join(" "))'
	assert_output "a.nc c.nc empty.nc"
	granted c-3 '["*"]' '{"dataTypes":["QUICKLOOK"]}' | ferry-order-bridge 3>fd3 >out
	grep -q '"errorType":"EMPTY_ORDER"' fd3
}

@test "no matching file is ERROR EMPTY_ORDER" {
	granted c-4 '["productId:NOPE"]' | ferry-order-bridge 3>fd3 >out
	run cat fd3
	assert_output --partial '"status":"ERROR"'
	assert_output --partial '"errorType":"EMPTY_ORDER"'
	[ ! -s out ]
	run jq_sql "$FERRY_JOURNAL" "select state, error_type from request"
	assert_output "ERROR|EMPTY_ORDER"
}

@test "an order over order_size_limit_bytes is ERROR ORDER_LIMIT_REACHED" {
	tenant p1 "{\"catalog\":\"$PWD/cat.db\",\"order_size_limit_bytes\":10}"
	granted c-5 '["*"]' | ferry-order-bridge 3>fd3 >out
	run cat fd3
	assert_output --partial '"errorType":"ORDER_LIMIT_REACHED"'
	assert_output --partial 'over the limit of 10 bytes'
}

@test "more suborders than max_suborders is ERROR TOO_MANY_SUBORDERS" {
	tenant p1 "{\"catalog\":\"$PWD/cat.db\",\"max_suborders\":1,\"suborder_max_files\":2}"
	granted c-6 '["*"]' | ferry-order-bridge 3>fd3 >out
	grep -q '"errorType":"TOO_MANY_SUBORDERS"' fd3
	tenant p1 "{\"catalog\":\"$PWD/cat.db\",\"max_suborders\":2,\"suborder_max_files\":2}"
	granted c-7 '["*"]' | ferry-order-bridge 3>fd3 >out
	[ ! -s fd3 ]
	grep -q '"totalSize":12' out
}

cmd() { # cmd BODY: an order command script
	printf '#!/bin/sh\n%s\n' "$1" >order.sh
	chmod 700 order.sh
	tenant p1 "{\"order_command\":\"$PWD/order.sh\"}"
}

@test "an order command's lines become the files, filtered like the catalog's" {
	cmd 'cat >stdin.json
echo "{\"productId\":\"X\",\"version\":2,\"dataType\":\"RAWDATA\",\"name\":\"x.nc\",\"url\":\"file:///d/x.nc\",\"size\":7,\"md5\":\"0123456789abcdef0123456789ABCDEF\"}"
echo "{\"productId\":\"X\",\"version\":2,\"dataType\":\"QUICKLOOK_SD\",\"name\":\"x.png\",\"url\":\"file:///d/x.png\",\"size\":1,\"md5\":\"0123456789abcdef0123456789abcdef\"}"'
	granted c-8 '["anything the command understands"]' '{"dataTypes":["RAWDATA"]}' | ferry-order-bridge >out
	grep -q '"correlationId":"c-8"' stdin.json
	run node -e 'const i = JSON.parse(require("fs").readFileSync("out","utf8"));
		console.log(i.files.map(f => f.productId + "_" + f.version + "/" + f.name).join(" "), i.totalSize)'
	assert_output "X_2/x.nc 7"
}

@test "an order command exiting 100 is ERROR INTERNAL_ERROR with its last stderr line" {
	cmd 'echo "looking" >&2; echo "dataset S9 does not exist" >&2; exit 100'
	granted c-9 '["dataset:S9"]' | ferry-order-bridge 3>fd3 >out
	run cat fd3
	assert_output --partial '"errorType":"INTERNAL_ERROR"'
	assert_output --partial 'dataset S9 does not exist'
}

@test "an order command exiting 111 is run again later, then resolves" {
	cmd 'if [ -e tried ]; then echo "{\"productId\":\"Y\",\"dataType\":\"RAWDATA\",\"name\":\"y\",\"url\":\"file:///y\",\"size\":1,\"md5\":\"0123456789abcdef0123456789abcdef\"}"; exit 0; fi
touch tried; echo "catalog busy" >&2; exit 111'
	granted c-10 '["*"]' >in
	run bash -c 'ferry-order-bridge -v <in 2>&1 >out'
	assert_output --partial 'catalog busy'
	grep -q '"productId":"Y"' out
}

@test "an order command printing no line is EMPTY_ORDER; a bad line is INTERNAL_ERROR" {
	cmd 'exit 0'
	granted c-11 '["*"]' | ferry-order-bridge 3>fd3 >out
	grep -q EMPTY_ORDER fd3
	cmd 'echo "{\"productId\":\"Z\",\"name\":\"z\"}"'
	granted c-12 '["*"]' | ferry-order-bridge 3>fd3 >out
	run cat fd3
	assert_output --partial 'INTERNAL_ERROR'
	assert_output --partial 'invalid file'
}

@test "an order command that hangs is killed after the timeout and retried" {
	cmd 'sleep 60'
	granted c-13 '["*"]' '' >in
	sed -i 's/"expiresAt":"[^"]*"/"expiresAt":"'"$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%S.000Z)"'"/' in
	run bash -c 'ferry-order-bridge -v -T 1 <in 3>fd3 2>&1 >out'
	assert_output --partial 'timed out'
	grep -q '"errorType":"EXPIRED"' fd3
}

@test "for a catalog tenant, an unparsable query is DENIED at validation" {
	item p1 v-1 '{"correlationId":"v-1","targetDelivery":"s3","order":{"queries":["tags:(a"],"user":"u"}}' >in
	ferry-request-validate <in 3>fd3 >out
	run cat fd3
	assert_output --partial '"status":"DENIED"'
	assert_output --partial 'QuerySyntax'
	assert_output --partial 'order.queries[0]'
}

@test "an item already past ordering is skipped; a tenant without a backend is an ERROR" {
	granted c-14 '["*"]' >in
	ferry-order-bridge <in >/dev/null
	run bash -c 'ferry-order-bridge -v <in 2>&1 >/dev/null'
	assert_output --partial skipped
	tenant p1 '{}'
	granted c-15 '["*"]' | ferry-order-bridge 3>fd3 >/dev/null
	grep -q 'no order backend' fd3
}

# (.*){6}[^\s\S] backtracks 4.5 million steps on a 34-character name and
# never matches: 0.13 s a name with PCRE2's defaults, so a product of
# many such names held the bridge, and every request behind it, for long.
@test "a runaway filenameRegExp is ERROR INVALID_CONTENT at its first name; the next request is ORDERED" {
	mkdir -p data/P9
	for i in $(seq -w 1 60); do : >"data/P9/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa$i"; done
	ferry-catalog -c cat.db scan -t coastline data >/dev/null
	{ granted c-20 '["productId:P9"]' '{"filenameRegExp":"(.*){6}[^\\s\\S]"}'
	  granted c-21 '["productId:P1"]' '{"filenameRegExp":".*\\.nc"}'; } >in
	ferry-order-bridge <in 3>fd3 >out
	run cat fd3
	assert_output --partial '"correlationId":"c-20"'
	assert_output --partial '"status":"ERROR"'
	assert_output --partial '"errorType":"INVALID_CONTENT"'
	# the walk stopped at the first name: the rest were never tried
	assert_output --partial 'filenameRegExp is too costly: matching file name aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01 needs more than 100000 backtracking steps'
	run jq_sql "$FERRY_JOURNAL" "select correlation_id, state, coalesce(error_type, '') from request order by correlation_id"
	assert_output "c-20|ERROR|INVALID_CONTENT
c-21|ORDERED|"
	grep -q '"correlationId":"c-21".*"name":"a.nc"' out
}

@test "a runaway filenameRegExp on an order command's line ends the command and the request" {
	cmd 'echo "{\"productId\":\"X\",\"version\":1,\"dataType\":\"RAWDATA\",\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"url\":\"file:///d/x\",\"size\":1,\"md5\":\"0123456789abcdef0123456789abcdef\"}"
echo "{\"productId\":\"X\",\"version\":1,\"dataType\":\"RAWDATA\",\"name\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"url\":\"file:///d/y\",\"size\":1,\"md5\":\"0123456789abcdef0123456789abcdef\"}"'
	granted c-22 '["x"]' '{"filenameRegExp":"(.*){6}[^\\s\\S]"}' | ferry-order-bridge 3>fd3 >out
	run cat fd3
	assert_output --partial '"errorType":"INVALID_CONTENT"'
	assert_output --partial 'matching file name aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa needs more than'
	[ ! -s out ]
}
