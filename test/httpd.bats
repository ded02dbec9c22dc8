#!/usr/bin/env bats
# ferry-httpd against a journal written by the real stages (request c-42 of
# tenant p1 failed in ferry-fetch, as in replay.bats; no RabbitMQ needed) and
# a tenant file holding an S3 secret, asked with curl: bearer-token auth,
# health, the REGARDS-shaped settings export/import (validation, masking,
# atomic private writes), a request's record, metrics, errors, SIGTERM.

load lib

SECRET=s3cr3t-Never-Shown-4242
KEY=AKID-never-shown-77

setup_file() {
	export D="$BATS_FILE_TMPDIR"
	export FERRY_JOURNAL="$D/journal.db" FERRY_TENANTS="$D/tenants" FERRY_WORKSPACE="$D/ws"
	cd "$D" || return 1
	mkdir -p archive/Coast42
	printf 'hello\n' >archive/Coast42/readme.txt
	head -c 3000 /dev/urandom >archive/Coast42/obs.nc
	ferry-catalog -c cat.db init
	ferry-catalog -c cat.db scan archive >/dev/null
	rm archive/Coast42/obs.nc     # gone after it was catalogued: fetch fails
	tenant_as_is p1 "{\"request_ttl\":1,\"catalog\":\"$D/cat.db\",\"file_roots\":[\"$D/archive\"],
		\"users\":[\"ana@example.org\"],\"delivery_bucket\":\"deliveries\",
		\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":9000,
		\"region\":\"us-east-1\",\"key\":\"$KEY\",\"secret\":\"$SECRET\"}}"
	now=$(date -u +%Y-%m-%dT%H:%M:%S.000Z)
	for cid in c-42 'odd id/é 100%'; do
		jq -cn --arg cid "$cid" --arg now "$now" '{tenant:"p1",correlationId:$cid,receivedAt:$now,
			headers:{},request:{correlationId:$cid,targetDelivery:"s3",
			order:{queries:["productId:Coast42"],user:"ana@example.org"}}}'
	done | ferry-request-validate 2>/dev/null 3>&- | ferry-order-bridge 2>/dev/null 3>&- |
		ferry-fetch 2>/dev/null 3>&-
	head -c 32 /dev/urandom | base64 >token
	chmod 600 token
	# the wrapper keeps ferry-httpd's exit status for the SIGTERM test
	FERRY_ORDER_COMMANDS="/usr/lib/ferry/none:$D/listed-order" \
		sh -c 'ferry-httpd -v -p 0 -T token 2>httpd.log & echo $! >httpd.pid; wait $!; echo $? >httpd.rc' \
		3>&- &
	for _ in $(seq 100); do
		grep -q 'listening on' httpd.log 2>/dev/null && break
		sleep 0.1
	done
	sed -n 's|.*listening on \(http://[^ ]*\)/$|\1|p' httpd.log >url
	[ -s url ] || { cat httpd.log; return 1; }
}

teardown_file() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/httpd.pid" 2>/dev/null) || return 0
	[ -e "$BATS_FILE_TMPDIR/httpd.rc" ] || kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		[ -e "$BATS_FILE_TMPDIR/httpd.rc" ] && break
		sleep 0.1
	done
	wait 2>/dev/null
	return 0
}

setup() {
	export D="$BATS_FILE_TMPDIR"
	export FERRY_JOURNAL="$D/journal.db" FERRY_TENANTS="$D/tenants" FERRY_WORKSPACE="$D/ws"
	URL=$(cat "$D/url")
	TOKEN=$(cat "$D/token")
	cd "$BATS_TEST_TMPDIR" || return 1
}

# http METHOD PATH [curl args...]: prints the status; leaves the body in
# ./body and the headers in ./headers; every body is kept in $D/bodies
http() {
	local method=$1 path=$2
	shift 2
	curl -sS -o body -D headers -w '%{http_code}' -X "$method" "$@" "$URL$path"
	cat body >>"$D/bodies"
}

# the same with the token
api() {
	local method=$1 path=$2
	shift 2
	http "$method" "$path" -H "Authorization: Bearer $TOKEN" "$@"
}

settings_file() { cat "$FERRY_TENANTS/$1.json"; }

@test "/healthz answers ok without a token" {
	run http GET /healthz
	assert_output 200
	[ "$(cat body)" = ok ]
}

@test "every other endpoint wants the bearer token: 401 and WWW-Authenticate without it or with a wrong one" {
	wrong=$(printf '%s' "$TOKEN" | tr 'A-Za-z' 'N-ZA-Mn-za-m')
	for path in /metrics /tenants/p1/settings /requests/p1/c-42 /no/such/thing; do
		run http GET "$path"
		assert_output 401
		grep -qi '^WWW-Authenticate: Bearer' headers
		jq -e '.error' body >/dev/null
		run http GET "$path" -H "Authorization: Bearer $wrong"
		assert_output 401
		run http GET "$path" -H "Authorization: Bearer ${TOKEN}x"
		assert_output 401
		run http GET "$path" -H "Authorization: Basic $(printf 'a:%s' "$TOKEN" | base64 -w0)"
		assert_output 401
	done
	run api GET /metrics
	assert_output 200
	run http PUT /tenants/p1/settings -H "Authorization: Bearer $wrong" --data-binary '[]'
	assert_output 401
}

@test "the settings export lists REGARDS names first, then ferry keys, secrets masked" {
	run api GET /tenants/p1/settings
	assert_output 200
	grep -qi '^Content-Type: application/json' headers
	run jq -r '.[].name' body
	assert_output "$(printf '%s\n' request_ttl s3_server delivery_bucket order_size_limit_bytes \
		users catalog file_roots)"
	run jq -c '.[] | select(.name == "s3_server") | .value' body
	assert_output '{"scheme":"http","host":"127.0.0.1","port":9000,"region":"us-east-1","key":"*******","secret":"*******"}'
	run jq -c '.[] | select(.name == "order_size_limit_bytes") | .value' body
	assert_output 5368709120
}

@test "export -> import -> export is byte-identical and the secret stays in the file" {
	run api GET /tenants/p1/settings
	assert_output 200
	cp body export1
	run api PUT /tenants/p1/settings --data-binary @export1
	assert_output 200
	cmp body export1
	run api GET /tenants/p1/settings
	assert_output 200
	cmp body export1
	settings_file p1 | jq -e --arg s "$SECRET" --arg k "$KEY" \
		'.s3_server.secret == $s and .s3_server.key == $k'
}

@test "bad JSON is a 400 with a one-line JSON message, and the file is unchanged" {
	before=$(md5sum <"$FERRY_TENANTS/p1.json")
	run api PUT /tenants/p1/settings --data-binary '[{"name":"request_ttl","value":'
	assert_output 400
	[ "$(wc -l <body)" -eq 1 ]
	run jq -r '.error' body
	assert_output --regexp '^invalid JSON near byte [0-9]+$'
	run api PUT /tenants/p1/settings --data-binary '{"request_ttl":2}'
	assert_output 400
	run jq -r '.error' body
	assert_output --partial 'must be a JSON array'
	[ "$(md5sum <"$FERRY_TENANTS/p1.json")" = "$before" ]
}

@test "unknown settings are a 400 that names each of them" {
	run api PUT /tenants/p1/settings --data-binary \
		'[{"name":"request_ttl","value":3},{"name":"foo","value":1},{"name":"bar_baz","value":null}]'
	assert_output 400
	run jq -r '.error' body
	assert_output 'unknown settings: foo, bar_baz'
	settings_file p1 | jq -e '.request_ttl == 1'
}

@test "order_command runs as the service: a PUT sets only one listed in FERRY_ORDER_COMMANDS" {
	run api PUT /tenants/p9/settings --data-binary '[{"name":"order_command","value":"/bin/sh"}]'
	assert_output 400
	run jq -r '.error' body
	assert_output "order_command /bin/sh is not one of the commands listed in FERRY_ORDER_COMMANDS"
	[ ! -e "$FERRY_TENANTS/p9.json" ]
	run api PUT /tenants/p9/settings --data-binary "[{\"name\":\"order_command\",\"value\":\"$D/listed-order\"}]"
	assert_output 201
	run jq -r '.order_command' "$FERRY_TENANTS/p9.json"
	assert_output "$D/listed-order"
	rm "$FERRY_TENANTS/p9.json"
}

@test "an invalid value is a 400 with the stages' own message, and the file is unchanged" {
	before=$(stat -c '%i %s %Y' "$FERRY_TENANTS/p1.json")$(md5sum <"$FERRY_TENANTS/p1.json")
	run api PUT /tenants/p1/settings --data-binary '[{"name":"request_ttl","value":-1}]'
	assert_output 400
	run jq -r '.error' body
	assert_output "$FERRY_TENANTS/p1.json: request_ttl: must be a number > 0 and <= 876000 (hours), got -1"
	run api PUT /tenants/p1/settings --data-binary '[{"name":"order_command","value":"/bin/true"}]'
	assert_output 400
	run jq -r '.error' body
	assert_output --partial 'catalog and order_command are both set'
	run api PUT /tenants/p1/settings --data-binary \
		'[{"name":"s3_server","value":{"host":"h","port":70000,"key":"*******","secret":"*******"}}]'
	assert_output 400
	run jq -r '.error' body
	assert_output --partial 's3_server.port: must be an integer from 1 to 65535'
	[ "$(stat -c '%i %s %Y' "$FERRY_TENANTS/p1.json")$(md5sum <"$FERRY_TENANTS/p1.json")" = "$before" ]
}

@test "a PUT changes only the settings it lists; null removes one; a new secret replaces the old" {
	tenant p3 '{"request_ttl":2,"users":["ana@example.org"],"note":"kept",
		"s3_server":{"host":"h","key":"K3","secret":"OLD-SECRET-3"}}'
	run api PUT /tenants/p3/settings --data-binary '[{"name":"users","value":null},
		{"name":"compression","value":"store"},
		{"name":"s3_server","value":{"host":"h2","key":"*******","secret":"NEW-SECRET-3"}}]'
	assert_output 200
	settings_file p3 | jq -e '.request_ttl == 2 and (has("users") | not) and .note == "kept" and
		.compression == "store" and .s3_server == {"host":"h2","key":"K3","secret":"NEW-SECRET-3"}'
	run grep -c 'SECRET-3' body
	assert_output 0
}

# verdict CID USER: ferry-request-validate's status for a request of p5,
# in a journal of its own (the server's stays as the other tests expect it)
verdict() {
	jq -cn --arg cid "$1" --arg user "$2" '{tenant:"p5",correlationId:$cid,
		request:{correlationId:$cid,targetDelivery:"s3",order:{queries:["*"],user:$user}}}' |
		ferry-request-validate -j "$BATS_TEST_TMPDIR/journal.db" 3>&1 >/dev/null 2>/dev/null |
		jq -r .status
}

@test "every user is explicit: a PUT that removes users lets nobody order; users [\"*\"] lets everyone" {
	tenant_as_is p5 "{\"request_ttl\":1,\"users\":[\"ana@example.org\"],\"catalog\":\"$D/cat.db\"}"
	assert_equal "$(verdict u-1 ana@example.org) $(verdict u-2 eve@example.org)" "GRANTED DENIED"
	run api PUT /tenants/p5/settings --data-binary '[{"name":"users","value":null}]'
	assert_output 200
	settings_file p5 | jq -e 'has("users") | not'
	# no users key: nobody, not everybody
	assert_equal "$(verdict u-3 ana@example.org) $(verdict u-4 eve@example.org)" "DENIED DENIED"
	run api PUT /tenants/p5/settings --data-binary '[{"name":"users","value":["*"]}]'
	assert_output 200
	assert_equal "$(verdict u-5 eve@example.org) $(verdict u-6 zoe@example.org)" "GRANTED GRANTED"
}

@test "a PUT for a new tenant creates its file, mode 600, by rename, and the stages use it" {
	[ ! -e "$FERRY_TENANTS/p2.json" ]
	run api PUT /tenants/p2/settings --data-binary '[{"name":"request_ttl","value":6},
		{"name":"users","value":["bob@example.org"]},{"name":"catalog","value":"'"$D"'/cat.db"}]'
	assert_output 201
	run stat -c %a "$FERRY_TENANTS/p2.json"
	assert_output 600
	run jq -c '.[0]' body
	assert_output '{"name":"request_ttl","value":6}'
	# atomic: a new inode each time, and no temporary file left behind
	inode=$(stat -c %i "$FERRY_TENANTS/p2.json")
	run api PUT /tenants/p2/settings --data-binary '[{"name":"request_ttl","value":7}]'
	assert_output 200
	[ "$(stat -c %i "$FERRY_TENANTS/p2.json")" != "$inode" ]
	run ls -A "$FERRY_TENANTS"
	refute_output --partial '.p2.json.'
	# the stages load it: bob is allowed, eve is not
	for u in n-1:bob n-2:eve; do
		jq -cn --arg cid "${u%%:*}" --arg user "${u#*:}@example.org" \
			--arg now "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" '{tenant:"p2",correlationId:$cid,
			receivedAt:$now,headers:{},request:{correlationId:$cid,targetDelivery:"s3",
			order:{queries:["*"],user:$user}}}'
	done | ferry-request-validate -j scratch.db >/dev/null 2>&1 3>&-
	run jq_sql scratch.db "select correlation_id || ' ' || state from request order by correlation_id"
	assert_output "$(printf 'n-1 GRANTED\nn-2 DENIED')"
}

@test "a masked secret is refused when there is no secret to keep" {
	run api PUT /tenants/p4/settings --data-binary \
		'[{"name":"s3_server","value":{"host":"h","key":"K","secret":"*******"}}]'
	assert_output 400
	run jq -r '.error' body
	assert_output 's3_server.secret: is the mask "*******" but the tenant has no secret to keep'
	[ ! -e "$FERRY_TENANTS/p4.json" ]
}

@test "bad tenant names are a 400, unknown tenants a 404" {
	for t in ..%2Fp1 %2e%2e 'a%2Fb' "$(printf 'x%.0s' $(seq 65))"; do
		run api GET "/tenants/$t/settings"
		assert_output 400
		jq -e '.error | startswith("invalid tenant name")' body
		run api PUT "/tenants/$t/settings" --data-binary '[]'
		assert_output 400
	done
	run api GET /tenants/nobody/settings
	assert_output 404
	jq -e '.error == "no such tenant"' body
	# nothing but tenant files was ever written
	run sh -c 'ls -A "$1" | grep -v "\.json$"' _ "$FERRY_TENANTS"
	assert_output ''
}

@test "a body over 1 MiB is a 413" {
	head -c 1048577 /dev/zero | tr '\0' ' ' >big
	run api PUT /tenants/p1/settings --data-binary @big
	assert_output 413
	run api PUT /tenants/p1/settings --data-binary @big -H 'Transfer-Encoding: chunked'
	assert_output 413
	jq -e '.error | test("larger than 1048576 bytes")' body
}

@test "/requests/p1/c-42 holds what ferry-journal -J show p1 c-42 prints, and its progress" {
	run api GET /requests/p1/c-42
	assert_output 200
	grep -qi '^Content-Type: application/json' headers
	jq -S 'del(.progress)' body >got
	ferry-journal -J show p1 c-42 | jq -S . >want
	diff want got
	jq -e '.state == "ERROR" and .errorType == "INTERNAL_ERROR" and (.events | length) >= 4' got
	jq -e '.progress | .state == "ERROR" and .stage == "-" and .busy == false and
		.correlationId == "c-42" and (.ageSeconds >= 0)' body
}

@test "correlationIds are percent-decoded per segment: spaces, unicode, %2F" {
	run api GET "/requests/p1/$(jq -rn '"odd id/é 100%" | @uri')"
	assert_output 200
	jq -S 'del(.progress)' body >got
	ferry-journal -J show p1 'odd id/é 100%' | jq -S . >want
	diff want got
	run api GET '/requests/p1/odd%20id/%C3%A9%20100%25'
	assert_output 404
	run api GET '/requests/p1/bad%zz'
	assert_output 400
}

@test "unknown requests and paths are 404, wrong methods 405, all with a JSON error" {
	run api GET /requests/p1/c-404
	assert_output 404
	jq -e '.error == "no such request"' body
	run api GET /requests/nobody/c-42
	assert_output 404
	for path in / /tenants /tenants/p1 /tenants/p1/settings/x /requests/p1 /metrics/x; do
		run api GET "$path"
		assert_output 404
		jq -e '.error' body >/dev/null
	done
	run api DELETE /tenants/p1/settings
	assert_output 405
	grep -qi '^Allow: GET, HEAD, PUT' headers
	run api POST /metrics --data-binary x
	assert_output 405
	run http PUT /healthz --data-binary x
	assert_output 405
}

@test "/metrics is exactly what ferry-journal metrics prints" {
	# as ferry-notify would: every response published, so that no line
	# depends on the moment (the age of the oldest unsent response)
	jq_sql "$FERRY_JOURNAL" "UPDATE outbox SET sent_at = 1795000000000"
	run api GET /metrics
	assert_output 200
	grep -qi '^Content-Type: text/plain; version=0.0.4' headers
	ferry-journal metrics >want
	cmp want body
	grep -q '^ferry_requests{state="ERROR"} 2$' body
}

@test "the token file must not be readable by group or others" {
	cp "$D/token" tok
	chmod 640 tok
	run ferry-httpd -p 0 -T tok
	assert_failure 100
	assert_output --partial 'readable by group/others'
	refute_output --partial "$TOKEN"
}

@test "neither the secret nor the key nor the token shows in any response or in the log" {
	run api GET /tenants/p1/settings
	assert_output 200
	[ -s "$D/bodies" ] && [ -s "$D/httpd.log" ]
	grep -q "$SECRET" "$FERRY_TENANTS/p1.json"
	run grep -c -e "$SECRET" -e "$KEY" -e OLD-SECRET-3 -e NEW-SECRET-3 -e "$TOKEN" "$D/bodies" "$D/httpd.log"
	assert_output "$(printf '%s:0\n' "$D/bodies" "$D/httpd.log")"
	grep -q 'info: PUT /tenants/p1/settings 200$' "$D/httpd.log"
}

@test "SIGTERM stops the server cleanly with exit status 0" {
	kill -TERM "$(cat "$D/httpd.pid")"
	for _ in $(seq 100); do
		[ -s "$D/httpd.rc" ] && break
		sleep 0.1
	done
	[ "$(cat "$D/httpd.rc")" = 0 ]
	tail -n 1 "$D/httpd.log" | grep -qx 'ferry-httpd: info: stopped'
	run curl -sS "$URL/healthz"
	assert_failure
}
