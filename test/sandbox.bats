#!/usr/bin/env bats
# sandbox.bats: ferry-sandbox gives a private RabbitMQ with the ferry topology
# and a SigV4-checking S3 server on loopback (s3rver, or Ceph RGW with
# FERRY_SANDBOX_S3=rgw: .ci/run runs this file with both), side by side with
# others, and stops them leaving nothing. Checked with independent clients
# (amqp-tools, /usr/bin/aws, curl); one sandbox is shared by the file,
# others are per test.

load lib

VHOST=regards.multitenant.manager
REQ_X=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent
RESP_X=regards.broadcast.fr.cnes.regards.modules.delivery.amqp.output.DeliveryResponseDtoEvent
ALIAS_X=regards.broadcast.fr.cnes.regards.modules.ltamanager.amqp.output.DeliveryResponseDtoEvent

setup_file() {
	sandbox_up
}

teardown_file() {
	sandbox_down
}

setup() {
	sandbox_env
	SB=$SANDBOX_DIR
	started=()
}

# Whatever a test started is stopped even when it fails half-way.
teardown() {
	local d
	for d in "${started[@]}"; do ferry-sandbox stop "$d" || true; done
	[ -z "${blocker:-}" ] || kill "$blocker" 2>/dev/null || true
}

# stop_leaves_none DIR NAME...: those servers of DIR run; stop DIR, and no
# process it recorded is left
stop_leaves_none() {
	local d=$1 p pids n
	shift
	for n in "$@"; do [ -s "$d/pids/$n" ]; done
	pids=$(find "$d/pids" -type f ! -name '*.*' -exec cat {} +)
	[ -n "$pids" ]
	run ferry-sandbox stop "$d"
	assert_success
	for p in $pids; do
		run kill -0 "$p"
		assert_failure
	done
}

s3() { /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3 "$@"; }

@test "start prints env lines that eval into the AMQP URL, S3 endpoint and keys" {
	run cat "$BATS_FILE_TMPDIR/env"
	assert_line --regexp "^export FERRY_AMQP_URL='amqp://guest:guest@127\.0\.0\.1:[0-9]+/regards\.multitenant\.manager'$"
	assert_line --regexp "^export FERRY_S3_ENDPOINT='http://127\.0\.0\.1:[0-9]+'$"
	if [ "${FERRY_SANDBOX_S3:-s3rver}" = rgw ]; then
		assert_line --regexp "^export AWS_ACCESS_KEY_ID='FERRY[0-9A-F]{16}' AWS_SECRET_ACCESS_KEY='[0-9a-f]{40}' AWS_DEFAULT_REGION='us-east-1'$"
		[ "$FERRY_S3_KIND" = rgw ]
	else
		assert_line "export AWS_ACCESS_KEY_ID='S3RVER' AWS_SECRET_ACCESS_KEY='S3RVER' AWS_DEFAULT_REGION='us-east-1'"
		[ "$FERRY_S3_KIND" = s3rver ]
	fi
	[ "$FERRY_S3_KEY" = "$AWS_ACCESS_KEY_ID" ] && [ "$FERRY_S3_SECRET" = "$AWS_SECRET_ACCESS_KEY" ]
	assert_line "export FERRY_SANDBOX='$SB'"
	[ "$FERRY_AMQP_URL" = "amqp://guest:guest@127.0.0.1:$FERRY_AMQP_PORT/$VHOST" ]
	[ "$FERRY_S3_BUCKET" = deliveries ]
	run ferry-sandbox env "$SB"
	assert_success
	assert_output "$(cat "$BATS_FILE_TMPDIR/env")"
	assert_output "$(cat "$SB/env")"
}

@test "start on a running sandbox prints the same lines and starts nothing new" {
	before=$(cat "$SB"/pids/*)
	run ferry-sandbox start "$SB"
	assert_success
	assert_output "$(cat "$BATS_FILE_TMPDIR/env")"
	[ "$(cat "$SB"/pids/*)" = "$before" ]
}

@test "status shows both servers up on 127.0.0.1 and exits 0" {
	run ferry-sandbox status "$SB"
	assert_success
	assert_line --regexp "^rabbitmq: up \(pid [0-9]+, 127\.0\.0\.1:$FERRY_AMQP_PORT\)$"
	assert_line --regexp "^s3: up \(pid [0-9]+, 127\.0\.0\.1:$FERRY_S3_PORT\)$"
	# Nothing of the sandbox listens beyond loopback.
	run ss -Htlnp
	refute_line --regexp "(0\.0\.0\.0|\*|\[::\]):[0-9]+ .*pid=($(cat "$SB"/pids/rabbitmq)|$(cat "$SB"/pids/s3)|$(cat "$SB"/pids/epmd)),"
}

@test "a request published to the request exchange is read back from ferry.delivery.requests" {
	body="{\"correlationId\":\"c-$BATS_TEST_NUMBER-$$\"}"
	amqp-publish --url="$FERRY_AMQP_URL" -e "$REQ_X" -H 'regards.tenant: p1' -b "$body"
	run amqp-get --url="$FERRY_AMQP_URL" -q ferry.delivery.requests
	assert_success
	assert_output "$body"
}

@test "ferry.delivery.requests is a durable quorum queue dead-lettering to regards.DLX" {
	run ferry-sandbox ctl "$SB" -q list_queues -p "$VHOST" name type durable arguments
	assert_success
	assert_line --regexp '^ferry\.delivery\.requests	quorum	true	.*\{"x-dead-letter-exchange","regards\.DLX"\}'
	assert_line --partial '{"x-dead-letter-routing-key","regards.DLQ"}'
	# regards.DLQ and regards.DLX as REGARDS declares them
	assert_line --regexp '^regards\.DLQ	classic	true	\[\{"x-max-priority",255\}\]$'
	run ferry-sandbox ctl "$SB" -q list_exchanges -p "$VHOST" name type
	assert_line --regexp '^regards\.DLX	topic$'
	# A dead letter routed by regards.DLX lands in regards.DLQ.
	amqp-publish --url="$FERRY_AMQP_URL" -e regards.DLX -r regards.DLQ -b dead-$$
	run amqp-get --url="$FERRY_AMQP_URL" -q regards.DLQ
	assert_output dead-$$
}

@test "a response published on the response exchange reaches subscribers of the ltamanager name" {
	out=$BATS_TEST_TMPDIR/got
	# amqp-consume 0.11 crashes binding without a routing key; fanout
	# exchanges ignore it anyway.
	timeout 15 amqp-consume --url="$FERRY_AMQP_URL" -x -e "$ALIAS_X" -r any -c 1 cat \
		>"$out" 2>/dev/null 3>&- &
	consumer=$!
	# Publish until the consumer's queue is bound and the message came through.
	for _ in $(seq 50); do
		[ -s "$out" ] && break
		amqp-publish --url="$FERRY_AMQP_URL" -e "$RESP_X" -b "response-$$"
		sleep 0.2
	done
	wait "$consumer" || true
	run cat "$out"
	assert_output "response-$$"
}

@test "a file uploaded with aws s3 cp downloads back with the same md5" {
	head -c 3000000 /dev/urandom >"$BATS_TEST_TMPDIR/up"
	s3 cp --only-show-errors "$BATS_TEST_TMPDIR/up" s3://deliveries/c-1/P1_1.zip
	s3 cp --only-show-errors s3://deliveries/c-1/P1_1.zip "$BATS_TEST_TMPDIR/down"
	[ "$(md5sum <"$BATS_TEST_TMPDIR/up")" = "$(md5sum <"$BATS_TEST_TMPDIR/down")" ]
}

@test "a request signed with a wrong secret key is refused with SignatureDoesNotMatch" {
	if [ "$FERRY_S3_KIND" = rgw ]; then
		# curl, as the aws CLI's own report of RGW's answer is a Python error
		run curl -s -w ' %{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 --user "$AWS_ACCESS_KEY_ID:wrong" \
			-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
			"$FERRY_S3_ENDPOINT/deliveries/"
		assert_output --regexp 'SignatureDoesNotMatch.* 403$'
	else
		AWS_SECRET_ACCESS_KEY=wrong run s3 ls s3://deliveries/
		assert_failure
		assert_output --partial SignatureDoesNotMatch
	fi
}

@test "rabbitmq stopped and started alone keeps its port and a durable message" {
	body="durable-$$"
	amqp-publish --url="$FERRY_AMQP_URL" -e "$REQ_X" -p -b "$body"
	run ferry-sandbox stop "$SB" rabbitmq
	assert_success
	run ferry-sandbox status "$SB"
	assert_failure 1
	assert_line "rabbitmq: down"
	assert_line --regexp '^s3: up '
	run amqp-get --url="$FERRY_AMQP_URL" -q ferry.delivery.requests
	assert_failure
	run ferry-sandbox start "$SB" rabbitmq
	assert_success
	assert_line "export FERRY_AMQP_URL='$FERRY_AMQP_URL'"
	run amqp-get --url="$FERRY_AMQP_URL" -q ferry.delivery.requests
	assert_success
	assert_output "$body"
}

@test "s3 stopped alone refuses connections, then comes back on its port with its objects" {
	echo "kept-$$" >"$BATS_TEST_TMPDIR/obj"
	s3 cp --only-show-errors "$BATS_TEST_TMPDIR/obj" s3://deliveries/kept/obj
	run ferry-sandbox stop "$SB" s3
	assert_success
	run curl -sS -o /dev/null "$FERRY_S3_ENDPOINT/"
	assert_failure 7 # connection refused
	run ferry-sandbox status "$SB"
	assert_failure 1
	assert_line "s3: down"
	run ferry-sandbox start "$SB" s3
	assert_success
	assert_line "export FERRY_S3_ENDPOINT='$FERRY_S3_ENDPOINT'"
	run s3 cp s3://deliveries/kept/obj -
	assert_output "kept-$$"
}

@test "a start whose port is taken fails with 111 and names the log to read" {
	ferry-sandbox stop "$SB" s3
	node -e "require('net').createServer().listen($FERRY_S3_PORT, '127.0.0.1')" 3>&- &
	blocker=$!
	for _ in $(seq 50); do
		ss -Htln "sport = :$FERRY_S3_PORT" | grep -q . && break
		sleep 0.1
	done
	run ferry-sandbox start "$SB" s3
	assert_failure 111
	assert_output --regexp "^ferry-sandbox: fatal: unable to start s3: exited \(.*(EADDRINUSE|Address already in use).*\): see $SB/log/s3\.log$"
	kill "$blocker"
	wait "$blocker" || true
	run ferry-sandbox start "$SB" s3
	assert_success
}

@test "a second sandbox gets its own ports, both work side by side, and stop leaves none of its processes" {
	b=$BATS_TEST_TMPDIR/b
	started=("$b")
	ferry-sandbox start "$b" >"$b.env"
	ports=$(cat "$SB/ports" "$b/ports" | grep '_port=' | cut -d= -f2)
	[ "$(echo "$ports" | sort -u | wc -l)" -eq 12 ]
	for d in "$SB" "$b"; do
		(
			# shellcheck source=/dev/null
			. "$d/env"
			amqp-publish --url="$FERRY_AMQP_URL" -e "$REQ_X" -b "in-$d"
			[ "$(amqp-get --url="$FERRY_AMQP_URL" -q ferry.delivery.requests)" = "in-$d" ]
			[ "$(curl -s -o /dev/null -w '%{http_code}' "$FERRY_S3_ENDPOINT/")" = 200 ]
		)
	done
	stop_leaves_none "$b" epmd rabbitmq s3
	run ferry-sandbox status "$b"
	assert_failure 1
	assert_output "rabbitmq: down
s3: down"
	run ferry-sandbox env "$b"
	assert_failure 1
	# rabbitmqctl on a stopped sandbox fails, and starts no epmd of its own.
	run ferry-sandbox ctl "$b" status
	assert_failure 111
	epmd_port=$(sed -n 's/^epmd_port=//p' "$b/ports")
	[ -z "$(ss -Htln "sport = :$epmd_port")" ]
	# The first one is still up.
	run ferry-sandbox status "$SB"
	assert_success
}

@test "stopping a stopped sandbox, or a directory without one, exits 0" {
	run ferry-sandbox stop "$BATS_TEST_TMPDIR/none"
	assert_success
	mkdir "$BATS_TEST_TMPDIR/empty"
	run ferry-sandbox stop "$BATS_TEST_TMPDIR/empty"
	assert_success
	run ferry-sandbox status "$BATS_TEST_TMPDIR/empty"
	assert_failure 1
	run ferry-sandbox env "$BATS_TEST_TMPDIR/empty"
	assert_failure 1
	assert_output ""
}

@test "usage errors exit 100 with the usage on stderr, -h prints it and exits 0" {
	run ferry-sandbox -h
	assert_success
	assert_line --index 0 "usage: ferry-sandbox start DIR [rabbitmq | s3]"
	for args in "" "start" "frobnicate $BATS_TEST_TMPDIR" "start $BATS_TEST_TMPDIR/x mysql" \
		"stop $BATS_TEST_TMPDIR/x s3 extra" "status" "ctl $SB" "env $SB extra"; do
		# shellcheck disable=SC2086 # split into arguments on purpose
		run ferry-sandbox $args
		assert_failure 100
		assert_line --index 0 --regexp '^ferry-sandbox: fatal: '
		assert_line --regexp '^usage: ferry-sandbox start DIR'
	done
	run ferry-sandbox start "$BATS_TEST_TMPDIR/with space"
	assert_failure 100
	run ferry-sandbox start "$BATS_TEST_TMPDIR/fresh" rabbitmq
	assert_failure 100
	assert_output "ferry-sandbox: fatal: no sandbox in $BATS_TEST_TMPDIR/fresh: run ferry-sandbox start $BATS_TEST_TMPDIR/fresh"
}

@test "with FERRY_SANDBOX_S3=rgw, Ceph RGW checks Content-MD5 and gives AWS multipart ETags; stop ends mon, OSD and gateway" {
	command -v radosgw >/dev/null || skip "radosgw is not installed"
	b=$BATS_TEST_TMPDIR/r
	started=("$b")
	FERRY_SANDBOX_S3=rgw ferry-sandbox start "$b" >"$b.env"
	(
		# shellcheck source=/dev/null
		. "$b.env"
		[ "$FERRY_S3_KIND" = rgw ]
		printf 'x' >"$BATS_TEST_TMPDIR/x"
		# a body whose Content-MD5 is not its md5: BadDigest
		run curl -s -X PUT --data-binary @"$BATS_TEST_TMPDIR/x" \
			--aws-sigv4 aws:amz:us-east-1:s3 --user "$FERRY_S3_KEY:$FERRY_S3_SECRET" \
			-H "x-amz-content-sha256: $(sha256sum <"$BATS_TEST_TMPDIR/x" | cut -c1-64)" \
			-H "Content-MD5: 1B2M2Y8AsgTpgAmY7PhCfg==" "$FERRY_S3_ENDPOINT/deliveries/bad"
		assert_output --partial BadDigest
		head -c 12582912 /dev/urandom >"$BATS_TEST_TMPDIR/big"
		/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3 cp --only-show-errors \
			"$BATS_TEST_TMPDIR/big" s3://deliveries/big
		etag=$(/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3api head-object \
			--bucket deliveries --key big --query ETag --output text | tr -d '"')
		# aws cp sends 8 MiB parts: md5 of the two parts' md5s, "-2"
		want=$( { head -c 8388608 "$BATS_TEST_TMPDIR/big" | md5sum | cut -c1-32
			tail -c +8388609 "$BATS_TEST_TMPDIR/big" | md5sum | cut -c1-32; } | xxd -r -p | md5sum | cut -c1-32)
		[ "$etag" = "$want-2" ]
	)
	stop_leaves_none "$b" ceph-mon ceph-osd s3
}
