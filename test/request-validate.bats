#!/usr/bin/env bats
# ferry-request-validate run alone on files of items (no RabbitMQ): verdicts
# on fd 3, GRANTED items on stdout, the journal and outbox, bad input.

load lib

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	tenant p1 '{"request_ttl":2,"users":["ana@example.org"]}'
	tenant open '{"request_ttl":0.5}'
}

GOOD='{"correlationId":"c-1","targetDelivery":"s3","order":{"queries":["tags:coastline"],"filters":{"dataTypes":["RAWDATA"],"filenameRegExp":".*\\.nc"},"user":"ana@example.org"}}'

body() { # body CID USER: a valid request body
	printf '{"correlationId":"%s","targetDelivery":"s3","order":{"queries":["*"],"user":"%s"}}' "$1" "$2"
}

@test "a valid request is GRANTED: item on stdout with expiresAt, response on fd 3" {
	item p1 c-1 "$GOOD" >in.ndjson
	run bash -c 'ferry-request-validate <in.ndjson 3>fd3 >out; echo rc=$?'
	assert_output "rc=0"
	run cat fd3
	assert_output '{"correlationId":"c-1","status":"GRANTED"}'
	run jq_sql "$FERRY_JOURNAL" "select state, expires_at - received_at from request"
	assert_output "GRANTED|7200000"
	grep -q '"expiresAt":"2026-11-23T12:00:00.000Z"' out
	grep -q '"filenameRegExp":".*\\\\.nc"' out
}

@test "user missing from order is DENIED FORBIDDEN 'User should be present'" {
	item p1 c-2 '{"correlationId":"c-2","targetDelivery":"s3","order":{"queries":["*"]}}' >in
	ferry-request-validate <in 3>fd3 >out
	run cat fd3
	assert_output --partial '"status":"DENIED"'
	assert_output --partial '"errorType":"FORBIDDEN"'
	assert_output --partial 'User should be present'
	[ ! -s out ]
}

@test "a user not in the tenant's users is DENIED FORBIDDEN naming the user" {
	item p1 c-3 "$(body c-3 eve@example.org)" >in
	ferry-request-validate <in 3>fd3 >out
	run cat fd3
	assert_output --partial '"errorType":"FORBIDDEN"'
	assert_output --partial 'Unknown user : eve@example.org'
}

@test "a tenant without configuration is DENIED FORBIDDEN, logged once" {
	{ item nobody c-4 "$(body c-4 a@b)"; item nobody c-5 "$(body c-5 a@b)"; } >in
	run bash -c 'ferry-request-validate <in 3>fd3 >/dev/null'
	assert_success
	[ "$(grep -c '"errorType":"FORBIDDEN"' fd3)" -eq 2 ]
	[ "$(grep -c 'nobody.json' <<<"$output")" -eq 1 ]
}

@test "content errors are DENIED INVALID_CONTENT listing every field" {
	item open c-6 '{"correlationId":"c-6","targetDelivery":" ","order":{"queries":[],"filters":{},"user":"u"}}' >in
	ferry-request-validate <in 3>fd3
	run cat fd3
	assert_output --partial '"errorType":"INVALID_CONTENT"'
	assert_output --partial 'targetDelivery'
	assert_output --partial 'queries'
	assert_output --partial 'dataTypes'
}

@test "FORBIDDEN wins over content errors" {
	item p1 c-7 '{"correlationId":"c-7","order":{"queries":[]}}' >in
	ferry-request-validate <in 3>fd3
	run cat fd3
	assert_output --partial '"errorType":"FORBIDDEN"'
}

@test "an invalid filenameRegExp is DENIED INVALID_CONTENT naming it" {
	item open c-8 '{"correlationId":"c-8","targetDelivery":"s3","order":{"queries":["*"],"filters":{"dataTypes":["RAWDATA"],"filenameRegExp":"(["},"user":"u"}}' >in
	ferry-request-validate <in 3>fd3
	run cat fd3
	assert_output --partial 'filenameRegExp'
	assert_output --partial '"errorType":"INVALID_CONTENT"'
}

@test "a malformed tenant file: one error line naming file and key; other tenants unaffected" {
	tenant broken '{"request_ttl":"12h"}'
	{ item broken c-9 "$(body c-9 u)"; item open c-10 "$(body c-10 u)"; } >in
	run bash -c 'ferry-request-validate <in 3>fd3 >out'
	assert_success
	assert_output --partial 'broken.json: request_ttl'
	grep -q '"correlationId":"c-9","status":"DENIED"' fd3
	grep -q '"correlationId":"c-10","status":"GRANTED"' fd3
}

@test "a tenant without users, or with users [], DENIES every user FORBIDDEN 'Unknown user'" {
	tenant_as_is nousers '{"request_ttl":1}'
	tenant_as_is emptyusers '{"request_ttl":1,"users":[]}'
	tenant_as_is anyuser '{"request_ttl":1,"users":["*"]}'
	{ item nousers c-30 "$(body c-30 ana@example.org)"
	  item emptyusers c-31 "$(body c-31 ana@example.org)"
	  item anyuser c-32 "$(body c-32 zoe@example.org)"; } >in
	ferry-request-validate <in 3>fd3 >out
	run cat fd3
	assert_line '{"correlationId":"c-30","status":"DENIED","errorType":"FORBIDDEN","message":"[FORBIDDEN] Unknown user : ana@example.org at user: rejected value [ana@example.org]."}'
	assert_line --partial '{"correlationId":"c-31","status":"DENIED","errorType":"FORBIDDEN","message":"[FORBIDDEN] Unknown user : ana@example.org'
	assert_line '{"correlationId":"c-32","status":"GRANTED"}'
	run grep -c '"correlationId"' out
	assert_output 1
}

@test "users \"*\" with rs_order, or \"*\" beside names, makes the tenant unusable, naming file and key" {
	tenant_as_is rso '{"users":["*"],"rs_order":{"url":"http://127.0.0.1:1","jwt_secret":"k"}}'
	tenant_as_is mixed '{"users":["ana@example.org"],"allowed_hosts":["*","h"]}'
	{ item rso c-33 "$(body c-33 ana@example.org)"; item mixed c-34 "$(body c-34 ana@example.org)"; } >in
	run bash -c 'ferry-request-validate <in 3>fd3 >out'
	assert_success
	assert_output --partial "$FERRY_TENANTS/rso.json: users: \"*\" cannot be used with rs_order: ferry signs rs-order tokens for the request's order.user"
	assert_output --partial "$FERRY_TENANTS/mixed.json: allowed_hosts: \"*\" (any) must be its only entry"
	grep -q '"correlationId":"c-33","status":"DENIED","errorType":"FORBIDDEN"' fd3
	grep -q '"correlationId":"c-34","status":"DENIED","errorType":"FORBIDDEN"' fd3
	[ ! -s out ]
}

@test "a tenant file holding secrets readable by others makes the tenant unusable" {
	tenant leaky '{"s3_server":{"host":"127.0.0.1","key":"k","secret":"s"}}'
	chmod 644 "$FERRY_TENANTS/leaky.json"
	item leaky c-11 "$(body c-11 u)" >in
	run bash -c 'ferry-request-validate <in 3>fd3 >/dev/null'
	assert_output --partial 'readable by group/others'
	refute_output --partial '"s"'
	grep -q '"errorType":"FORBIDDEN"' fd3
}

@test "a line that is not a JSON object is skipped with a message; the next is read" {
	{ echo '[1,2]'; echo '{not json'; item open c-12 "$(body c-12 u)"; } >in
	run bash -c 'ferry-request-validate <in 3>fd3 >/dev/null'
	assert_success
	assert_output --partial 'line 1'
	assert_output --partial 'line 2'
	grep -q '"correlationId":"c-12","status":"GRANTED"' fd3
}

@test "the same request again is skipped; another body for a request in flight is skipped, unanswered" {
	item open c-13 "$(body c-13 u)" >in
	ferry-request-validate <in 3>/dev/null >/dev/null
	run bash -c 'ferry-request-validate -v <in 3>fd3 >out'
	assert_success
	assert_output --partial 'skipped'
	[ ! -s fd3 ] && [ ! -s out ]
	item open c-13 "$(body c-13 other)" >in2
	run bash -c 'ferry-request-validate <in2 3>fd3 >out'
	assert_success
	assert_output --partial 'open/c-13: correlationId in flight with another body: skipped, not answered'
	[ ! -s fd3 ] && [ ! -s out ]
	run jq_sql "$FERRY_JOURNAL" "select state || ' ' || submission from request where correlation_id = 'c-13'"
	assert_output "GRANTED 1"
}

@test "an unopenable journal path exits 100 naming the path" {
	run ferry-request-validate -j "$BATS_TEST_TMPDIR/no/such/dir/j.db" </dev/null
	assert_failure 100
	assert_output --partial "no/such/dir/j.db"
	assert_output --partial "fatal"
}

@test "a journal of a newer schema version exits 100 and is left untouched" {
	ferry-request-validate </dev/null
	sqlite3 "$FERRY_JOURNAL" 'PRAGMA user_version = 42'
	run ferry-request-validate </dev/null
	assert_failure 100
	assert_output --partial "newer"
	run sqlite3 "$FERRY_JOURNAL" 'PRAGMA user_version'
	assert_output 42
}

@test "bad flags print the usage and exit 100; -h prints it and exits 0" {
	run ferry-request-validate -Z
	assert_failure 100
	assert_output --partial usage
	run ferry-request-validate -h
	assert_success
	assert_output --partial 'usage: ferry-request-validate'
}

@test "without fd 3 the journal never gets fd 3 (responses would land in it)" {
	mkfifo feed
	ferry-request-validate <feed >/dev/null 3>&- &
	pid=$!
	exec 5>feed
	item open n-1 "$(body n-1 u)" >&5
	for _ in $(seq 50); do
		[ "$(jq_sql "$FERRY_JOURNAL" 'select count(*) from outbox' 2>/dev/null)" = 1 ] && break
		sleep 0.1
	done
	run readlink "/proc/$pid/fd/3"
	exec 5>&-
	wait "$pid"
	assert_output /dev/null
	run sqlite3 "$FERRY_JOURNAL" 'PRAGMA integrity_check; SELECT count(*) FROM outbox'
	assert_output $'ok\n1'
}
