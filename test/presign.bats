#!/usr/bin/env bats
# presign_ttl_seconds: the DONE response's downloadUrl, end to end. ferry-run
# supervises the whole service against the sandbox (RabbitMQ, and s3rver,
# which checks SigV4 query-string signatures and their expiry); requests are
# sent with ferry-submit; each URL is fetched with plain curl, no credentials.
# s3rver also serves unsigned GETs, so a download alone proves little: the
# tampered and expired URLs being refused is what shows the signature is
# checked, and the good URL being served that it is right.

load lib

setup_file() {
	sandbox_up
	service_env
	mkdir -p "$D/data/P1" "$D/data/P2"
	head -c 100000 /dev/urandom >"$D/data/P1/a.nc"
	printf 'hello\n' >"$D/data/P1/b.txt"
	head -c 30000 /dev/urandom >"$D/data/P2/c.nc"
	ferry-catalog -c "$D/cat.db" init
	ferry-catalog -c "$D/cat.db" scan -t coastline "$D/data" >/dev/null
	presign_tenant pre ',"presign_ttl_seconds":3600'
	presign_tenant plain ''
	presign_tenant short ',"presign_ttl_seconds":1'
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

# presign_tenant NAME EXTRA: a tenant on the sandbox, EXTRA added to its keys
presign_tenant() {
	tenant "$1" "{\"request_ttl\":1,\"catalog\":\"$D/cat.db\",\"file_roots\":[\"$D/data\"],
		\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,
		\"region\":\"us-east-1\",\"key\":\"$FERRY_S3_KEY\",\"secret\":\"$FERRY_S3_SECRET\"},
		\"delivery_bucket\":\"deliveries\"$2}"
}

# deliver TENANT CID: submit P1 for TENANT; the DONE response goes to done.json
deliver() {
	ferry-submit -w 60 -t "$1" -u ana@example.org -q 'productId:P1' -c "$2" >out
	grep '"status":"DONE"' out >done.json
}

field() { jq -r --arg k "$1" '.[$k] // empty' done.json; }

# code URL: the HTTP status of a GET of URL, its body in got
code() { curl -s -o got -w '%{http_code}' "$1"; }

# resign URL: the URL with the first character of its signature changed
resign() {
	local sig=${1##*X-Amz-Signature=} c
	c=${sig:0:1}
	[ "$c" = 0 ] && c=1 || c=0
	printf '%s%s%s' "${1%"$sig"}" "$c" "${sig:1}"
}

@test "a tenant with presign_ttl_seconds gets a downloadUrl after md5 in DONE" {
	deliver pre pre-1
	[ -s done.json ]
	run jq -r 'keys_unsorted | join(",")' done.json
	assert_output 'correlationId,status,url,md5,downloadUrl'
	run field downloadUrl
	assert_output --regexp "^http://127\.0\.0\.1:$FERRY_S3_PORT/deliveries/pre-1/P1_1\.zip\?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=$FERRY_S3_KEY%2F[0-9]{8}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=[0-9]{8}T[0-9]{6}Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=[0-9a-f]{64}$"
	[ "$(field url)" = s3://deliveries/pre-1/P1_1.zip ]
	[ "$(wc -c <done.json)" -le 4097 ]
}

@test "curl with no credentials downloads the zip from downloadUrl, md5 as in DONE" {
	deliver pre pre-2
	url=$(field downloadUrl)
	md5=$(field md5)
	[ -n "$url" ] && [ -n "$md5" ]
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY curl -sf -o got.zip "$url"
	[ "$(md5sum <got.zip | cut -d' ' -f1)" = "$md5" ]
	unzip -tq got.zip
	run unzip -Z1 got.zip
	assert_output $'P1_1/a.nc\nP1_1/b.txt'
}

@test "a downloadUrl with one signature character changed is refused with 403" {
	deliver pre pre-3
	url=$(field downloadUrl)
	bad=$(resign "$url")
	[ "$bad" != "$url" ] && [ "${#bad}" -eq "${#url}" ]
	[ "$(code "$bad")" = 403 ]
	grep -q '<Code>SignatureDoesNotMatch</Code>' got
	# the untouched URL still works: the 403 is the signature's doing
	[ "$(code "$url")" = 200 ]
}

@test "a downloadUrl is refused for another key, another expiry or another secret" {
	deliver pre pre-4
	url=$(field downloadUrl)
	[ "$(code "${url/pre-4/pre-1}")" = 403 ]
	[ "$(code "${url/X-Amz-Expires=3600/X-Amz-Expires=3601}")" = 403 ]
	grep -q SignatureDoesNotMatch got
	# signed with a wrong secret by an independent client: refused the same
	wrong=$(AWS_SECRET_ACCESS_KEY=WRONG /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" \
		s3 presign s3://deliveries/pre-4/P1_1.zip --expires-in 3600)
	[ "$(code "$wrong")" = 403 ]
}

@test "correlationIds with spaces, unicode and '+' make downloadUrls that work" {
	cid='pré sign+1 ✓~'
	deliver pre "$cid"
	[ "$(field url)" = "s3://deliveries/pré%20sign+1%20✓~/P1_1.zip" ]
	url=$(field downloadUrl)
	[[ "$url" == *"/deliveries/pr%C3%A9%20sign%2B1%20%E2%9C%93~/P1_1.zip?"* ]]
	curl -sf -o got.zip "$url"
	[ "$(md5sum <got.zip | cut -d' ' -f1)" = "$(field md5)" ]
}

@test "a tenant without presign_ttl_seconds gets no downloadUrl" {
	deliver plain plain-1
	[ -s done.json ]
	run jq -r 'keys_unsorted | join(",")' done.json
	assert_output 'correlationId,status,url,md5'
}

@test "an expired downloadUrl is refused" {
	deliver short short-1
	url=$(field downloadUrl)
	[[ "$url" == *"&X-Amz-Expires=1&"* ]]
	sleep 2
	[ "$(code "$url")" = 403 ]
	# s3rver says so in its Message, RGW with the Code AccessDenied alone
	if [ "$FERRY_S3_KIND" = rgw ]; then
		grep -q '<Code>AccessDenied</Code>' got
	else
		grep -q '<Message>Request has expired</Message>' got
	fi
}

@test "downloadUrls stay out of the logs and the journal's items" {
	deliver pre pre-5
	[ -n "$(field downloadUrl)" ]
	run grep -c 'X-Amz-Signature' "$D/run.log"
	assert_output 0
	[ "$(jq_sql "$FERRY_JOURNAL" "select count(*) from event where item like '%X-Amz-%'")" = 0 ]
	# only the response itself holds it
	[ "$(jq_sql "$FERRY_JOURNAL" "select count(*) from outbox where body like '%X-Amz-Signature%'")" -ge 1 ]
}

@test "a downloadUrl that would push DONE over 4096 bytes is left out with a warning" {
	# 254 characters of 3 bytes (9 once encoded) in components under NAME_MAX
	seg=$(printf '日%.0s' $(seq 84))
	cid="$seg/$seg/$seg"
	deliver pre "$cid"
	[ -s done.json ]
	[ "$(wc -c <done.json)" -le 4097 ]
	run jq -r 'keys_unsorted | join(",")' done.json
	assert_output 'correlationId,status,url,md5'
	[ "$(field correlationId)" = "$cid" ]
	grep -q 'warning: .*downloadUrl left out: the DONE response would exceed 4096 bytes' "$D/run.log"
	/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3 cp "s3://deliveries/$cid/P1_1.zip" got.zip >/dev/null
	[ "$(md5sum <got.zip | cut -d' ' -f1)" = "$(field md5)" ]
}
