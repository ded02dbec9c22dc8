#!/usr/bin/env bats
# ferry-fetch of s3:// sources from the sandbox's S3 server (SigV4 checked):
# objects put with /usr/bin/aws, read from source_s3_server or, without
# one, from s3_server; S3 errors end the request naming the file.

load lib

setup_file() {
	sandbox_up
}

teardown_file() {
	sandbox_down
}

setup() {
	sandbox_env
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	export FERRY_WORKSPACE="$BATS_TEST_TMPDIR/ws"
	unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
	GOOD="{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,\"key\":\"$FERRY_S3_KEY\",\"secret\":\"$FERRY_S3_SECRET\"}"
	# nothing listens on port 1: a server that would be used by mistake fails
	DEAD='{"scheme":"http","host":"127.0.0.1","port":1,"key":"k","secret":"s"}'
	head -c 2500000 /dev/urandom >obj.nc
	/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3 cp --quiet obj.nc \
		"s3://$FERRY_S3_BUCKET/src/P1/a b+c.nc"
}

item() { # CID URL
	printf '{"tenant":"p1","correlationId":"%s","expiresAt":"%s","request":{},"files":[{"productId":"P1","version":1,"dataType":"RAWDATA","name":"a.nc","url":"%s","size":%s,"md5":"%s"}]}\n' \
		"$1" "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" "$2" "$(stat -c %s obj.nc)" "$(md5sum obj.nc | cut -d' ' -f1)"
}

@test "an s3:// source is read from source_s3_server with SigV4 and FETCHED, md5 right" {
	tenant p1 "{\"request_ttl\":1,\"s3_server\":$DEAD,\"source_s3_server\":$GOOD}"
	item s-1 "s3://$FERRY_S3_BUCKET/src/P1/a b+c.nc" >in
	run ferry-fetch <in 3>fd3
	assert_success
	[ ! -s fd3 ]
	path=$(grep -o '"path":"[^"]*"' <<<"$output" | cut -d'"' -f4)
	cmp "$path" obj.nc
	[ "$(jq_sql "$FERRY_JOURNAL" "select state from request")" = FETCHED ]
}

@test "without source_s3_server, s3:// sources are read from s3_server" {
	tenant p1 "{\"request_ttl\":1,\"s3_server\":$GOOD}"
	item s-2 "s3://$FERRY_S3_BUCKET/src/P1/a b+c.nc" >in
	run ferry-fetch <in 3>fd3
	assert_success
	assert_output --partial '"path":'
	[ "$(jq_sql "$FERRY_JOURNAL" "select state from request")" = FETCHED ]
}

@test "a missing object is ERROR INTERNAL_ERROR naming the file and the S3 error" {
	tenant p1 "{\"request_ttl\":1,\"s3_server\":$GOOD}"
	item s-3 "s3://$FERRY_S3_BUCKET/src/P1/nothere.nc" >in
	ferry-fetch <in 3>fd3
	run cat fd3
	assert_output --partial '"errorType":"INTERNAL_ERROR"'
	assert_output --partial 'unable to fetch P1/a.nc: HTTP 404 (NoSuchKey)'
}

@test "wrong S3 credentials are ERROR INTERNAL_ERROR, the secret never shown" {
	bad="{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,\"key\":\"$FERRY_S3_KEY\",\"secret\":\"WRONGSECRET\"}"
	tenant p1 "{\"request_ttl\":1,\"source_s3_server\":$bad}"
	item s-4 "s3://$FERRY_S3_BUCKET/src/P1/a b+c.nc" >in
	run ferry-fetch -v <in 3>fd3
	refute_output --partial WRONGSECRET
	run cat fd3
	assert_output --partial 'unable to fetch P1/a.nc: HTTP 403'
	refute_output --partial WRONGSECRET
}

@test "an s3:// source for a tenant without any S3 server is ERROR INTERNAL_ERROR" {
	tenant p1 '{"request_ttl":1}'
	item s-5 "s3://$FERRY_S3_BUCKET/src/P1/a b+c.nc" >in
	ferry-fetch <in 3>fd3
	grep -q "s3:// source, but the tenant has no source_s3_server nor s3_server" fd3
}
