#!/usr/bin/env bats
# The whole service end to end: ferry-run supervising every program against a
# real RabbitMQ and S3 server (ferry-sandbox); requests sent with ferry-submit;
# zips checked with independent clients: /usr/bin/aws, md5sum, unzip.

load lib

aws() { /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" "$@"; }

setup_file() {
	sandbox_up
	service_env
	mkdir -p "$D/data/P1" "$D/data/P2" "$D/data/Many" "$D/data/Odd names" "$D/data/Big"
	head -c 200000 /dev/urandom >"$D/data/P1/a.nc"
	printf 'hello\n' >"$D/data/P1/b.txt"
	head -c 50000 /dev/urandom >"$D/data/P2/c.nc"
	: >"$D/data/P2/empty.nc"
	for i in $(seq 1 320); do printf 'file %s\n' "$i" >"$D/data/Many/f$i.txt"; done
	printf 'x' >"$D/data/Odd names/with space é ✓.nc"
	head -c $((12 * 1048576)) /dev/urandom >"$D/data/Big/big.bin"
	ferry-catalog -c "$D/cat.db" init
	ferry-catalog -c "$D/cat.db" scan -t coastline "$D/data" >/dev/null
	# a product whose catalog md5 is wrong, and one outside the file roots
	printf 'bad\n' >"$D/bad.nc"
	{
		printf '{"productId":"Bad","files":[{"dataType":"RAWDATA","name":"bad.nc","url":"file://%s/data/P1/b.txt","size":6,"md5":"00000000000000000000000000000000"}]}\n' "$D"
		printf '{"productId":"Out","files":[{"dataType":"RAWDATA","name":"passwd","url":"file:///etc/passwd","size":%s,"md5":"00000000000000000000000000000000"}]}\n' "$(stat -c %s /etc/passwd)"
	} | ferry-catalog -c "$D/cat.db" add
	tenant p1 "{\"request_ttl\":1,\"catalog\":\"$D/cat.db\",\"file_roots\":[\"$D/data\"],
		\"users\":[\"ana@example.org\"],\"multipart_part_size\":5242880,\"upload_parallel\":2,
		\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,
		\"region\":\"us-east-1\",\"key\":\"$FERRY_S3_KEY\",\"secret\":\"$FERRY_S3_SECRET\"},
		\"delivery_bucket\":\"deliveries\"}"
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

submit() { ferry-submit -w 60 -t p1 -u ana@example.org "$@"; }

# ours: ferry programs still running on this file's journal (not zombies)
ours() {
	for e in /proc/[0-9]*/environ; do
		p=${e%/environ}
		comm=$(cat "$p/comm" 2>/dev/null) || continue
		case $comm in
		ferry-*) grep -qa "FERRY_JOURNAL=$FERRY_JOURNAL" "$e" 2>/dev/null && echo "$comm" ;;
		esac
	done
	return 0
}

# check_zip CID: fetch the DONE zip with aws, check md5 and unzip -t
check_zip() {
	url=$(sed -n 's/.*"status":"DONE","url":"\([^"]*\)".*/\1/p' out)
	md5=$(sed -n 's/.*"md5":"\([0-9a-f]*\)".*/\1/p' out)
	[ -n "$url" ] && [ -n "$md5" ]
	aws s3 cp "$url" got.zip >/dev/null
	[ "$(md5sum <got.zip | cut -d' ' -f1)" = "$md5" ]
	unzip -tq got.zip
}

@test "one product: GRANTED then DONE; the zip in S3 has the md5 of DONE and P1_1/ entries" {
	run submit -q 'productId:P1' -c one
	assert_success
	echo "$output" >out
	assert_line --index 0 '{"correlationId":"one","status":"GRANTED"}'
	assert_output --partial '"url":"s3://deliveries/one/P1_1.zip"'
	check_zip
	run unzip -Z1 got.zip
	assert_output $'P1_1/a.nc\nP1_1/b.txt'
	unzip -p got.zip P1_1/a.nc | cmp - "$D/data/P1/a.nc"
}

@test "several products go in delivery-<correlationId>.zip, zero-byte files included" {
	run submit -q 'productId:P1 OR productId:P2' -c two
	assert_success
	echo "$output" >out
	assert_output --partial '"url":"s3://deliveries/two/delivery-two.zip"'
	check_zip
	run unzip -Z1 got.zip
	assert_output --partial 'P2_1/empty.nc'
}

@test "names with spaces and unicode survive into the zip" {
	run submit -q 'productId:"Odd names"' -c odd
	assert_success
	echo "$output" >out
	check_zip
	run unzip -Z1 got.zip
	assert_output 'Odd names_1/with space é ✓.nc'
}

@test "a product of 320 files is delivered whole" {
	run submit -q 'productId:Many' -c many
	assert_success
	echo "$output" >out
	check_zip
	[ "$(unzip -Z1 got.zip | wc -l)" -eq 320 ]
}

@test "a zip larger than two parts goes up in a multipart upload" {
	run submit -q 'productId:Big' -c big
	assert_success
	echo "$output" >out
	check_zip
	unzip -p got.zip Big_1/big.bin | cmp - "$D/data/Big/big.bin"
}

@test "filters select files: dataTypes and filenameRegExp" {
	run submit -q 'productId:P1 OR productId:P2' -d RAWDATA -r '.*\.nc' -c filt
	assert_success
	echo "$output" >out
	check_zip
	run unzip -Z1 got.zip
	assert_output $'P1_1/a.nc\nP2_1/c.nc\nP2_1/empty.nc'
}

@test "a wrong md5 in the catalog ends in ERROR INTERNAL_ERROR naming the file" {
	run submit -q 'productId:Bad' -c bad
	assert_failure 1
	assert_output --partial '"status":"ERROR"'
	assert_output --partial '"errorType":"INTERNAL_ERROR"'
	assert_output --partial 'bad.nc'
	run aws s3 ls s3://deliveries/bad/
	refute_output --partial '.zip'
}

@test "a file outside the tenant's file_roots ends in ERROR FORBIDDEN" {
	run submit -q 'productId:Out' -c out
	assert_failure 1
	assert_output --partial '"errorType":"FORBIDDEN"'
}

@test "no matching file ends in ERROR EMPTY_ORDER; a bad user is DENIED" {
	run submit -q 'productId:Nothing' -c empty
	assert_failure 1
	assert_output --partial '"errorType":"EMPTY_ORDER"'
	run ferry-submit -w 30 -t p1 -u eve@example.org -q '*' -c eve
	assert_failure 1
	assert_output --partial '"status":"DENIED"'
}

# events CID STATE: how many STATE events the request has, per submission
events() {
	jq_sql "$FERRY_JOURNAL" "select group_concat(n, ' ') from (select count(*) n from event e
		join request r on r.id = e.request_id where r.correlation_id = '$1' and e.state = '$2'
		group by e.submission order by e.submission)"
}

@test "a correlationId sent again: DONE again without an upload, another body delivered anew, an ERROR one delivered" {
	run submit -q 'productId:P1' -c again
	assert_success
	echo "$output" >out
	check_zip
	first=$(grep '"status":"DONE"' out)
	# the same body: the DONE response again, nothing uploaded (one
	# DONE event, one submission)
	run submit -q 'productId:P1' -c again
	assert_success
	assert_output "$first"
	[ "$(events again DONE)" = 1 ]
	# another body after DONE: rs-delivery keeps no row of it, so a new
	# delivery, of the new body
	run submit -q 'productId:P2' -c again
	assert_success
	echo "$output" >out
	assert_line --index 0 '{"correlationId":"again","status":"GRANTED"}'
	assert_output --partial '"url":"s3://deliveries/again/P2_1.zip"'
	check_zip
	run unzip -Z1 got.zip
	assert_output $'P2_1/c.nc\nP2_1/empty.nc'
	[ "$(events again DONE)" = "1 1" ]
	[ "$(jq_sql "$FERRY_JOURNAL" "select submission || ' ' || state from request where correlation_id = 'again'")" = "2 DONE" ]
	# an ERROR, fixed and sent again under its id: delivered
	run submit -q 'productId:Nothing' -c again-err
	assert_failure 1
	assert_output --partial '"errorType":"EMPTY_ORDER"'
	run submit -q 'productId:P1' -c again-err
	assert_success
	echo "$output" >out
	check_zip
	[ "$(jq_sql "$FERRY_JOURNAL" "select submission || ' ' || state from request where correlation_id = 'again-err'")" = "2 DONE" ]
	[ "$(events again-err ERROR)" = 1 ]
}

@test "every request ended in exactly one terminal state, its workspace removed" {
	run jq_sql "$FERRY_JOURNAL" "select count(*) from request where state not in ('DONE','DENIED','ERROR')"
	assert_output 0
	run jq_sql "$FERRY_JOURNAL" "select count(*) from outbox where sent_at is null"
	assert_output 0
	run find "$FERRY_WORKSPACE" -type f
	assert_output ''
}

# gone PID: the process has ended (a zombie counts as ended)
gone() {
	for _ in $(seq 100); do
		st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
		[ "$st" = Z ] && return 0
		sleep 0.1
	done
	return 1
}

@test "ferry-run stops on SIGTERM with exit 0 and leaves no process behind" {
	# the instance of setup_file is not our child: stop it and see it go
	kill -TERM "$(cat "$D/run.pid")"
	gone "$(cat "$D/run.pid")"
	grep -q 'stopping' "$D/run.log"
	run ours
	assert_output ''
	# a fresh one, ours to wait for
	ferry-run -v 2>"$D/run2.log" &
	pid=$!
	for _ in $(seq 50); do [ "$(ours | wc -l)" -ge 8 ] && break; sleep 0.2; done
	[ "$(ours | wc -l)" -ge 8 ]
	kill -TERM "$pid"
	wait "$pid"
	run ours
	assert_output ''
	# timestamps on every line
	run grep -vc '^20[0-9][0-9]-' "$D/run2.log"
	assert_output 0
	echo "$pid" >"$D/run.pid"
}
