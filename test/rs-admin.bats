#!/usr/bin/env bats
# The rs_admin tenant setting: ferry-request-validate asks rs-admin, as
# rs-delivery's UserVerifyService does, whether order.user belongs to the
# project, against test/rs-admin-standin.js (GET /users/email/{email}, the
# JWT checked with the shared secret; every call logged, so the calls can be
# counted). No RabbitMQ: validate runs alone, verdicts on fd 3. Fed a file,
# validate waits at its end for the requests it set aside: `timeout 60` makes
# a lookup that never succeeds a failure here, not a hang.

load lib

KEY=the-key-rs-admin-and-ferry-share-0123456789

setup() {
	export D="$BATS_TEST_TMPDIR"
	cd "$D" || return 1
	export FERRY_JOURNAL="$D/journal.db" FERRY_TENANTS="$D/tenants"
	printf '%s\n' "$KEY" >admin.key
	chmod 600 admin.key
	printf '{"projects":{"p1":["ana@example.org"],"p2":["ana@example.org"]}}\n' >config.json
}

teardown() {
	exec 7>&- 2>/dev/null
	admin_stop
	local pid
	pid=$(cat "$D/validate.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null
	wait 2>/dev/null
	return 0
}

# admin_start [ARG...]: the stand-in in the background, once it listens;
# its port in ./port
admin_start() {
	rm -f "$D/port"
	node "$BATS_TEST_DIRNAME/rs-admin-standin.js" serve --port-file "$D/port" \
		--config "$D/config.json" --log "$D/log.ndjson" --secret "$KEY" "$@" \
		</dev/null >/dev/null 2>>"$D/standin.err" 3>&- 7>&- &
	echo $! >"$D/admin.pid"
	for _ in $(seq 1 300); do [ -s "$D/port" ] && break; sleep 0.1; done
	[ -s "$D/port" ]
}

admin_stop() {
	local pid
	pid=$(cat "$D/admin.pid" 2>/dev/null) || return 0
	rm -f "$D/admin.pid"
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}

# admin_tenant NAME [EXTRA]: a tenant whose users rs-admin knows, on the
# stand-in's port; EXTRA is more JSON members (rs_admin's own: ADMIN_EXTRA)
admin_tenant() {
	tenant_as_is "$1" "{\"request_ttl\":1,\"users\":[\"bob@example.org\"],
		\"rs_admin\":{\"url\":\"http://127.0.0.1:$(cat "$D/port")/\",
		\"jwt_secret_file\":\"$D/admin.key\"${ADMIN_EXTRA:-}}${2:+,$2}}"
}

# req TENANT CID USER: an intake item received now
req() {
	jq -cn --arg t "$1" --arg cid "$2" --arg user "$3" \
		--arg now "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" '{tenant:$t,correlationId:$cid,
		receivedAt:$now,headers:{},request:{correlationId:$cid,targetDelivery:"s3",
		order:{queries:["*"],user:$user}}}'
}

calls() { [ -s "$D/log.ndjson" ] && wc -l <"$D/log.ndjson" || echo 0; }
state() { jq_sql "$FERRY_JOURNAL" "select state from request where correlation_id = '$1'"; }

# validate_bg: ferry-request-validate reading the FIFO ./in (written with
# `>&7`), verdicts in ./fd3, log in ./err
validate_bg() {
	mkfifo in
	ferry-request-validate -v <in 3>fd3 >out 2>err &
	echo $! >validate.pid
	exec 7>in
}

# until_true N CMD...: run CMD every 0.2 s until it succeeds, at most N s
until_true() {
	local n=$(($1 * 5))
	shift
	for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.2; done
	"$@"
}

@test "a user rs-admin knows is GRANTED; one it does not is DENIED FORBIDDEN as rs-delivery words it" {
	admin_start
	admin_tenant p1
	{ req p1 c-1 ana@example.org; req p1 c-2 eve@example.org; } >items
	timeout 60 ferry-request-validate <items 3>fd3 >out
	run jq -c 'select(.correlationId == "c-1")' fd3
	assert_output '{"correlationId":"c-1","status":"GRANTED"}'
	run jq -r 'select(.correlationId == "c-2") | [.status, .errorType, .message] | join(" ")' fd3
	assert_output 'DENIED FORBIDDEN [FORBIDDEN] Unknown user : eve@example.org at user: rejected value [eve@example.org].'
	# what rs-admin was asked, and by whom: rs-delivery's system token
	run jq -c '[.method, .path, .tenant, .sub, .role, .status]' log.ndjson
	assert_output "$(printf '%s\n' \
		'["GET","/users/email/ana@example.org","p1","rs-delivery","ROLE_SYS_rs-delivery",200]' \
		'["GET","/users/email/eve@example.org","p1","rs-delivery","ROLE_SYS_rs-delivery",404]')"
}

@test "a user of the users list is GRANTED without asking rs-admin" {
	admin_start
	admin_tenant p1
	req p1 c-1 bob@example.org >items
	timeout 60 ferry-request-validate <items 3>fd3 >out
	run cat fd3
	assert_output '{"correlationId":"c-1","status":"GRANTED"}'
	[ "$(calls)" -eq 0 ]
}

@test "answers are cached per tenant: a second request of a user within 5 minutes does not ask again" {
	admin_start
	admin_tenant p1
	admin_tenant p2
	{
		req p1 c-1 ana@example.org; req p1 c-2 eve@example.org
		req p1 c-3 ana@example.org; req p1 c-4 eve@example.org
		req p2 c-5 ana@example.org
	} >items
	timeout 60 ferry-request-validate <items 3>fd3 >out
	run jq -r '[.correlationId, .status] | join(" ")' fd3
	assert_output "$(printf 'c-1 GRANTED\nc-2 DENIED\nc-3 GRANTED\nc-4 DENIED\nc-5 GRANTED')"
	# ana and eve once for p1 (the member and the non-member alike), ana once for p2
	run jq -r '[.tenant, .email] | join(" ")' log.ndjson
	assert_output "$(printf 'p1 ana@example.org\np1 eve@example.org\np2 ana@example.org')"
}

@test "cache_seconds 0: every request asks rs-admin" {
	admin_start
	ADMIN_EXTRA=',"cache_seconds":0' admin_tenant p1
	{ req p1 c-1 ana@example.org; req p1 c-2 ana@example.org; } >items
	timeout 60 ferry-request-validate <items 3>fd3 >out
	[ "$(grep -c GRANTED fd3)" -eq 2 ]
	[ "$(calls)" -eq 2 ]
}

@test "a token signed with another key gets 401: the request is set aside, not DENIED, and GRANTED once the key is right" {
	admin_start
	printf 'another-key\n' >wrong.key
	chmod 600 wrong.key
	admin_tenant p1
	sed -i "s|$D/admin.key|$D/wrong.key|" tenants/p1.json
	validate_bg
	req p1 c-1 ana@example.org >&7
	until_true 30 grep -q 'set aside (attempt 1)' err
	assert_equal "$(state c-1)" RECEIVED
	run jq -c 'select(.email == "ana@example.org") | .status' log.ndjson
	assert_output 401
	run jq_sql "$FERRY_JOURNAL" "select attempts >= 1, last_error like '%HTTP 401 (is jwt_secret rs-admin''s key?)%' from request"
	assert_output '1|1'
	[ ! -s fd3 ]
	sed -i "s|$D/wrong.key|$D/admin.key|" tenants/p1.json
	until_true 60 grep -q '"c-1","status":"GRANTED"' fd3
	run grep -c DENIED fd3
	assert_output 0
}

@test "rs-admin down: set aside with backoff, never DENIED, other tenants go on; GRANTED once it is back" {
	admin_start
	port=$(cat port)
	admin_stop
	admin_tenant p1
	tenant_as_is p3 '{"request_ttl":1,"users":["carl@example.org"]}'
	validate_bg
	req p1 c-1 ana@example.org >&7
	req p1 c-2 eve@example.org >&7
	until_true 30 grep -q 'p1/c-2.*set aside (attempt 1)' err
	# another tenant's request is judged while p1's wait
	req p3 c-3 carl@example.org >&7
	until_true 30 grep -q '"c-3","status":"GRANTED"' fd3
	assert_equal "$(state c-1) $(state c-2)" "RECEIVED RECEIVED"
	run grep -c '"c-[12]"' fd3
	assert_output 0
	grep -q 'user not checked: rs-admin GET http://127.0.0.1:[0-9]*/users/email/...: ' err
	# tried again: the second attempt is logged too
	until_true 30 grep -q 'p1/c-1.*set aside (attempt 2)' err
	admin_start --port "$port"
	until_true 90 grep -q '"c-1","status":"GRANTED"' fd3
	until_true 30 grep -q '"c-2","status":"DENIED"' fd3
	run jq -r 'select(.correlationId == "c-2") | .message' fd3
	assert_output '[FORBIDDEN] Unknown user : eve@example.org at user: rejected value [eve@example.org].'
	# the retries are counted, and the stage ends once nothing waits
	exec 7>&-
	until_true 30 bash -c '! kill -0 "$(cat validate.pid)" 2>/dev/null'
	run bash -c "ferry-journal metrics | awk '/^ferry_retries_total / { print (\$2 >= 3) }'"
	assert_output 1
}

@test "a slow rs-admin costs one timeout per pause, not one per request" {
	admin_start
	printf '{"delayMs":20000,"projects":{"p1":["ana@example.org"]}}\n' >config.json
	ADMIN_EXTRA=',"timeout_seconds":1' admin_tenant p1
	validate_bg
	for i in 1 2 3 4 5 6; do req p1 "c-$i" "u$i@example.org" >&7; done
	until_true 30 grep -q 'p1/c-6.*set aside (attempt 1)' err
	# the first lookup timed out; the five after it were set aside without asking
	grep 'p1/c-1.*set aside (attempt 1)' err | grep -q 'Timeout was reached'
	for i in 2 3 4 5 6; do
		grep "p1/c-$i.*set aside (attempt 1)" err | grep -q 'failed 1 time in a row; not asked again before'
	done
	[ ! -s fd3 ]
}

@test "a request that outlived its request_ttl while rs-admin was down ends ERROR EXPIRED" {
	admin_start
	port=$(cat port)
	admin_stop
	admin_tenant p1
	req p1 c-1 ana@example.org | jq -c '.receivedAt = "2026-01-01T00:00:00.000Z"' >items
	timeout 60 ferry-request-validate <items 3>fd3 >out
	run jq -r '[.status, .errorType, .message] | join(" ")' fd3
	assert_output "ERROR EXPIRED The request date has reached the expiration limit '2026-01-01T01:00:00.000Z'"
}
