#!/usr/bin/env bats
# ferry-s3-put against the sandbox's S3 server (s3rver, SigV4 checked):
# single PUT and multipart uploads checked with the aws CLI, DONE/ERROR on
# fd 3, the journal, workspace removal, retries while S3 is down, expiry.

load lib

setup_file() {
	sandbox_up
}

teardown_file() {
	sandbox_down
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	sandbox_env
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	export FERRY_WORKSPACE="$BATS_TEST_TMPDIR/workspace"
	tenant p1 "$(s3_tenant "$FERRY_S3_SECRET")"
}

teardown() {
	# a test that stopped S3 must not leave it down for the next ones
	if [ -e "$BATS_TEST_TMPDIR/s3-stopped" ]; then
		ferry-sandbox start "$SANDBOX_DIR" s3 >/dev/null
	fi
}

# s3_tenant SECRET: a tenant's settings for the sandbox's S3 server
s3_tenant() {
	printf '{"s3_server":{"scheme":"http","host":"127.0.0.1","port":%s,"region":"us-east-1","key":"%s","secret":"%s"},"delivery_bucket":"deliveries","multipart_part_size":5242880,"upload_parallel":3}' \
		"$FERRY_S3_PORT" "$FERRY_S3_KEY" "$1"
}

# workspace_of TENANT CID: the request's directory, as lib/workspace.c names it
workspace_of() {
	printf '%s/%s/%s' "$FERRY_WORKSPACE" "$1" "$(printf %s "$2" | b2sum -l 128 | cut -c1-32)"
}

# archive TENANT CID NAME BYTES: random bytes as the request's zip, in its
# workspace; sets ARCHIVE, MD5, SIZE
archive() {
	local dir
	dir=$(workspace_of "$1" "$2")
	mkdir -p "$dir"
	ARCHIVE="$dir/$3"
	head -c "$4" /dev/urandom >"$ARCHIVE"
	MD5=$(md5sum <"$ARCHIVE" | cut -c1-32)
	SIZE=$4
}

# packed TENANT CID NAME [MD5 [EXPIRES]]: the PACKED item of that archive
packed() {
	jq -nc --arg t "$1" --arg c "$2" --arg p "$ARCHIVE" --arg n "$3" --arg m "${4:-$MD5}" \
		--argjson s "$SIZE" --arg e "${5:-2099-01-01T00:00:00.000Z}" \
		'{tenant:$t, correlationId:$c, receivedAt:"2026-11-23T10:00:00.000Z", expiresAt:$e,
		  headers:{}, request:{correlationId:$c, targetDelivery:"s3",
		  order:{queries:["*"], user:"ana@example.org"}},
		  files:[{productId:"P1", version:1, name:"a.nc", size:1}], totalSize:1,
		  archive:{path:$p, name:$n, size:$s, md5:$m}}'
}

# s3_md5 KEY: md5 of the object as the aws CLI downloads it
s3_md5() {
	/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3 cp "s3://deliveries/$1" - | md5sum | cut -c1-32
}

# s3_absent KEY: no such object
s3_absent() {
	run /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3api head-object --bucket deliveries --key "$1"
	[ "$status" -ne 0 ] && [[ "$output" == *"Not Found"* ]]
}

state_of() { jq_sql "$FERRY_JOURNAL" "select state from request where correlation_id = '$1'"; }

# s3_log KEY-PATTERN: lines of the S3 server's log about that object
s3_log() { grep -F -- "$1" "$SANDBOX_DIR/log/s3.log" || true; }

stop_s3() {
	touch "$BATS_TEST_TMPDIR/s3-stopped"
	ferry-sandbox stop "$SANDBOX_DIR" s3
}

@test "a small archive is uploaded with one PUT: DONE on fd 3 with url and md5, workspace removed" {
	archive p1 c-1 P1_1.zip 1000
	packed p1 c-1 P1_1.zip >in
	run bash -c 'ferry-s3-put -v <in 3>fd3 >out'
	assert_success
	run cat fd3
	assert_output "{\"correlationId\":\"c-1\",\"status\":\"DONE\",\"url\":\"s3://deliveries/c-1/P1_1.zip\",\"md5\":\"$MD5\"}"
	[ "$(s3_md5 c-1/P1_1.zip)" = "$MD5" ]
	[ -z "$(s3_log 'c-1/P1_1.zip?')" ]          # no multipart request
	[ ! -e "$(workspace_of p1 c-1)" ]
	[ ! -s out ]
	[ "$(state_of c-1)" = DONE ]
	run jq_sql "$FERRY_JOURNAL" "select item from event where state = 'DONE'"
	assert_output --partial '"url":"s3://deliveries/c-1/P1_1.zip"'
}

@test "the md5 in DONE is lowercase even when the item's is uppercase" {
	archive p1 c-case P1_1.zip 5000
	packed p1 c-case P1_1.zip "${MD5^^}" >in
	ferry-s3-put <in 3>fd3
	run cat fd3
	assert_output --partial "\"md5\":\"$MD5\""
	[ "$(s3_md5 c-case/P1_1.zip)" = "$MD5" ]
}

@test "12 MiB with 5 MiB parts is a multipart upload of 3 parts" {
	archive p1 c-multi P1_1.zip $((12 * 1048576))
	packed p1 c-multi P1_1.zip >in
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	assert_success
	assert_output --partial "(3 parts"
	run cat fd3
	assert_output "{\"correlationId\":\"c-multi\",\"status\":\"DONE\",\"url\":\"s3://deliveries/c-multi/P1_1.zip\",\"md5\":\"$MD5\"}"
	[ "$(s3_md5 c-multi/P1_1.zip)" = "$MD5" ]
	s3_log 'c-multi/P1_1.zip?uploads=' | grep -q ' 200 '
	for n in 1 2 3; do s3_log "c-multi/P1_1.zip?partNumber=$n&" | grep -q ' 200 '; done
	[ -z "$(s3_log 'c-multi/P1_1.zip?partNumber=4&')" ]
	[ ! -e "$(workspace_of p1 c-multi)" ]
}

@test "multipart_threshold: 12 MiB with 5 MiB parts under a 20 MiB threshold is one PUT" {
	tenant one "$(s3_tenant "$FERRY_S3_SECRET" | sed 's/}$/,"multipart_threshold":20971520}/')"
	archive one c-one P1_1.zip $((12 * 1048576))
	packed one c-one P1_1.zip >in
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	assert_success
	assert_output --partial "(single PUT"
	run cat fd3
	assert_output --partial '"status":"DONE"'
	[ "$(s3_md5 c-one/P1_1.zip)" = "$MD5" ]
	[ -z "$(s3_log 'c-one/P1_1.zip?uploads=')" ]
	# and a threshold above 5 GiB is refused, naming the key
	tenant huge "$(s3_tenant "$FERRY_S3_SECRET" | sed 's/}$/,"multipart_threshold":5368709121}/')"
	archive huge c-huge P1_1.zip 1000
	packed huge c-huge P1_1.zip >in
	run bash -c 'ferry-s3-put <in 3>fd3'
	assert_output --partial 'multipart_threshold'
}

@test "spaces, unicode and '+' in the correlationId and the name make the exact key" {
	cid='c 1+é/ü~%'
	archive p1 "$cid" 'P1 1+ä.zip' 3000
	packed p1 "$cid" 'P1 1+ä.zip' >in
	run bash -c 'ferry-s3-put <in 3>fd3'
	assert_success
	run jq -r '.status + " " + .url' fd3
	# the url quoted as rs-delivery's java.net.URI quotes it
	assert_output "DONE s3://deliveries/c%201+é/ü~%25/P1%201+ä.zip"
	[ "$(s3_unquote "${output#DONE }")" = "s3://deliveries/$cid/P1 1+ä.zip" ]
	[ "$(s3_md5 "$cid/P1 1+ä.zip")" = "$MD5" ]
}

@test "a key that needs multipart and encoding works too" {
	archive p1 'c 2+é' 'a b.zip' $((6 * 1048576))
	packed p1 'c 2+é' 'a b.zip' >in
	ferry-s3-put <in 3>fd3
	run jq -r .status fd3
	assert_output DONE
	[ "$(s3_md5 'c 2+é/a b.zip')" = "$MD5" ]
}

@test "a zero-byte archive is uploaded" {
	archive p1 c-empty empty.zip 0
	packed p1 c-empty empty.zip >in
	ferry-s3-put <in 3>fd3
	run cat fd3
	assert_output '{"correlationId":"c-empty","status":"DONE","url":"s3://deliveries/c-empty/empty.zip","md5":"d41d8cd98f00b204e9800998ecf8427e"}'
	run /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3api head-object --bucket deliveries --key c-empty/empty.zip
	assert_success
	assert_output --partial '"ContentLength": 0'
}

@test "a wrong archive md5 is ERROR INTERNAL_ERROR after retries; no object is left" {
	archive p1 c-bad P1_1.zip 2000
	packed p1 c-bad P1_1.zip 0123456789abcdef0123456789abcdef >in
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	assert_success
	[ "$(grep -c 'uploading again' <<<"$output")" -eq 2 ]
	run jq -r '.status + " " + .errorType + " " + .message' fd3
	# the item's md5 is sent as Content-MD5: a real server refuses the body
	# (RGW: BadDigest), s3rver stores it and ferry finds the md5 wrong
	if [ "$FERRY_S3_KIND" = rgw ]; then
		assert_output --partial "ERROR INTERNAL_ERROR checksum mismatch for archive P1_1.zip: PutObject: 400 BadDigest"
	else
		assert_output --partial "ERROR INTERNAL_ERROR checksum mismatch for archive P1_1.zip: md5 $MD5"
	fi
	s3_absent c-bad/P1_1.zip
	[ "$(state_of c-bad)" = ERROR ]
	[ ! -e "$(workspace_of p1 c-bad)" ]
}

@test "a wrong md5 in a multipart upload never completes the object" {
	archive p1 c-badm P1_1.zip $((11 * 1048576))
	packed p1 c-badm P1_1.zip 0123456789abcdef0123456789abcdef >in
	ferry-s3-put <in 3>fd3 2>err
	run jq -r '.status + " " + .message' fd3
	assert_output --partial "ERROR checksum mismatch for archive P1_1.zip"
	s3_absent c-badm/P1_1.zip
	# a multipart upload was begun, and no CompleteMultipartUpload succeeded
	s3_log 'c-badm/P1_1.zip?uploads=' | grep -q ' 200 '
	! s3_log 'c-badm/P1_1.zip?uploadId=' | grep -v partNumber | grep -q ' 200 '
}

@test "an archive whose size is not the item's is a checksum mismatch" {
	archive p1 c-size P1_1.zip 100
	SIZE=99
	packed p1 c-size P1_1.zip >in
	ferry-s3-put <in 3>fd3
	run jq -r '.errorType + " " + .message' fd3
	assert_output "INTERNAL_ERROR checksum mismatch for archive P1_1.zip: the file has 100 bytes, expected 99"
	s3_absent c-size/P1_1.zip
}

@test "a missing archive file is ERROR INTERNAL_ERROR naming it" {
	archive p1 c-gone P1_1.zip 100
	rm "$ARCHIVE"
	packed p1 c-gone P1_1.zip >in
	ferry-s3-put <in 3>fd3
	run jq -r '.errorType + " " + .message' fd3
	assert_output --partial "INTERNAL_ERROR upload of archive P1_1.zip to s3://deliveries/c-gone/P1_1.zip failed: unable to open $ARCHIVE"
}

@test "a wrong secret is ERROR with S3's 403 at once, and the secret is written nowhere" {
	tenant bad "$(s3_tenant wr0ng-s3cr3t)"
	archive bad c-403 P1_1.zip $((8 * 1048576))
	packed bad c-403 P1_1.zip >in
	archive bad c-403s small.zip 10
	packed bad c-403s small.zip >>in
	SECONDS=0
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	assert_success
	[ "$SECONDS" -lt 5 ]
	refute_output --partial wr0ng-s3cr3t
	run cat fd3
	# s3rver adds its Message, RGW gives the Code alone
	assert_line --partial '"status":"ERROR","errorType":"INTERNAL_ERROR","message":"upload of archive P1_1.zip to s3://deliveries/c-403/P1_1.zip failed: CreateMultipartUpload: 403 SignatureDoesNotMatch'
	assert_line --partial 'failed: PutObject: 403 SignatureDoesNotMatch'
	refute_output --partial wr0ng-s3cr3t
	! grep -a -q wr0ng-s3cr3t "$FERRY_JOURNAL"*
	[ ! -e "$(workspace_of bad c-403)" ]
}

@test "a tenant without s3_server is ERROR INTERNAL_ERROR" {
	tenant nos3 '{"request_ttl":1}'
	archive nos3 c-nos3 P1_1.zip 10
	packed nos3 c-nos3 P1_1.zip >in
	ferry-s3-put <in 3>fd3
	run jq -r '.errorType + " " + .message' fd3
	assert_output "INTERNAL_ERROR tenant nos3 has no s3_server and delivery_bucket"
}

@test "an item without an archive is ERROR INTERNAL_ERROR" {
	jq -nc '{tenant:"p1", correlationId:"c-noarch", request:{a:1}}' >in
	ferry-s3-put <in 3>fd3
	run jq -r '.errorType + " " + .message' fd3
	assert_output --partial "INTERNAL_ERROR item has no valid archive"
}

@test "an item already DONE is skipped: no second upload, no second response" {
	archive p1 c-twice P1_1.zip 100
	packed p1 c-twice P1_1.zip >in
	ferry-s3-put <in 3>fd3
	run bash -c 'ferry-s3-put -v <in 3>fd3b'
	assert_success
	assert_output --partial "skipped"
	[ ! -s fd3b ]
}

@test "-h prints the usage; a bad flag exits 100" {
	run ferry-s3-put -h
	assert_success
	assert_output "usage: ferry-s3-put [-hv] [-c workers] [-j journal] [-t tenants] [-w workspace]"
	run ferry-s3-put -x
	[ "$status" -eq 100 ]
}

@test "S3 down while uploading: retries with backoff, DONE once S3 is back" {
	archive p1 c-retry P1_1.zip $((12 * 1048576))
	packed p1 c-retry P1_1.zip >in
	first=$MD5
	archive p1 c-retry2 small.zip 500
	packed p1 c-retry2 small.zip >>in
	stop_s3
	ferry-s3-put -v <in 3>fd3 2>err &
	pid=$!
	sleep 5
	ferry-sandbox start "$SANDBOX_DIR" s3 >/dev/null
	wait "$pid"
	grep -q 'trying again in 1 s' err
	grep -q 'trying again in 2 s' err
	run jq -r '.correlationId + " " + .status' fd3
	assert_line "c-retry DONE"
	assert_line "c-retry2 DONE"
	[ "$(s3_md5 c-retry/P1_1.zip)" = "$first" ]
	[ "$(s3_md5 c-retry2/small.zip)" = "$MD5" ]
}

@test "S3 killed in the middle of a multipart upload: parts are sent again, DONE" {
	archive p1 c-mid P1_1.zip $((200 * 1048576))
	packed p1 c-mid P1_1.zip >in
	ferry-s3-put -v <in 3>fd3 2>err &
	pid=$!
	# stop S3 once it has stored a part, well before the 40th
	for _ in $(seq 100); do
		s3_log 'c-mid/P1_1.zip?partNumber=' | grep -q ' 200 ' && break
		sleep 0.05
	done
	stop_s3
	sleep 4
	ferry-sandbox start "$SANDBOX_DIR" s3 >/dev/null
	wait "$pid"
	grep -q 'UploadPart [0-9]*: .*trying again' err
	run jq -r '.status + " " + .md5' fd3
	assert_output "DONE $MD5"
	[ "$(s3_md5 c-mid/P1_1.zip)" = "$MD5" ]
}

# upload_parts CID: parts of the request's upload the journal holds
upload_parts() {
	jq_sql "$FERRY_JOURNAL" "select count(*) from upload_part p join request r on r.id = p.request_id
		where r.correlation_id = '$1'" 2>/dev/null || echo 0
}

# killed_mid_upload CID: a 100 MiB multipart upload (20 parts) SIGKILLed
# with S3 stopped once the journal holds a part; S3 started again
killed_mid_upload() {
	archive p1 "$1" P1_1.zip $((100 * 1048576))
	packed p1 "$1" P1_1.zip >in
	ferry-s3-put -v <in 3>fd3 2>err1 &
	pid=$!
	for _ in $(seq 400); do
		[ "$(upload_parts "$1")" -ge 1 ] && break
		sleep 0.05
	done
	stop_s3
	kill -KILL "$pid"
	wait "$pid" || true
	ferry-sandbox start "$SANDBOX_DIR" s3 >/dev/null
	rm "$BATS_TEST_TMPDIR/s3-stopped"
	UPLOAD_ID=$(jq_sql "$FERRY_JOURNAL" "select upload_id from upload")
	[ -n "$UPLOAD_ID" ]
	[ "$(state_of "$1")" = UPLOADING ]
}

# uploads_in_progress: multipart uploads S3 lists in the bucket (RGW; s3rver
# does not list them: -)
uploads_in_progress() {
	if [ "$FERRY_S3_KIND" = rgw ]; then
		/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3api list-multipart-uploads \
			--bucket deliveries --query 'length(Uploads || `[]`)' --output text
	else
		echo -
	fi
}

@test "SIGKILL in the middle of a multipart upload: the next run resumes the same upload, DONE" {
	killed_mid_upload c-res
	had=$(upload_parts c-res)
	[ "$had" -ge 1 ] && [ "$had" -lt 20 ]
	etag=$(aws_etag "$ARCHIVE" 20)   # (the workspace goes with DONE)
	run ferry-s3-put -v </dev/null 3>fd3
	assert_success
	log=$output
	run jq -r '.status + " " + .md5' fd3
	assert_output "DONE $MD5"
	[ "$(s3_md5 c-res/P1_1.zip)" = "$MD5" ]
	output=$log
	if [ "$FERRY_S3_KIND" = rgw ]; then
		# the same upload, the parts S3 had not sent again
		grep -q "resuming upload $UPLOAD_ID: [0-9]* of 20 parts already there" <<<"$output"
		n=$(sed -n 's/.*resuming upload .*: \([0-9]*\) of 20 parts.*/\1/p' <<<"$output")
		[ "$n" -ge "$had" ]
		grep -q "20 parts, $n resumed" <<<"$output"
		[ "$etag" = "$(/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3api \
			head-object --bucket deliveries --key c-res/P1_1.zip --query ETag --output text | tr -d '"')" ]
	else
		# s3rver lists no parts: the upload starts again, the old one aborted
		grep -q "upload $UPLOAD_ID cannot be resumed" <<<"$output"
	fi
	[ "$(jq_sql "$FERRY_JOURNAL" "select count(*) from upload")" = 0 ]
	[ "$(uploads_in_progress)" = 0 ] || [ "$(uploads_in_progress)" = - ]
}

@test "an upload left by a request cancelled meanwhile is aborted by the next run; none left in progress" {
	killed_mid_upload c-orph
	ferry-journal cancel p1 c-orph -m "no longer wanted" >/dev/null
	run ferry-s3-put -v </dev/null 3>fd3
	assert_success
	if [ "$FERRY_S3_KIND" = rgw ]; then
		assert_output --partial "aborted the upload left of s3://deliveries/c-orph/P1_1.zip"
	else   # s3rver has no AbortMultipartUpload
		assert_output --partial "the S3 server cannot abort the upload left of s3://deliveries/c-orph/P1_1.zip"
	fi
	[ "$(jq_sql "$FERRY_JOURNAL" "select count(*) from upload")" = 0 ]
	[ "$(uploads_in_progress)" = 0 ] || [ "$(uploads_in_progress)" = - ]
	s3_absent c-orph/P1_1.zip
}

@test "S3 down until the request expires: ERROR EXPIRED naming the expiration date" {
	archive p1 c-exp P1_1.zip 1000
	expires=$(date -u -d '+5 seconds' +%Y-%m-%dT%H:%M:%S.000Z)
	packed p1 c-exp P1_1.zip "$MD5" "$expires" >in
	stop_s3
	SECONDS=0
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	assert_success
	[ "$SECONDS" -le 8 ]
	assert_output --partial "deadline reached; last failure: PutObject:"
	run cat fd3
	assert_output "{\"correlationId\":\"c-exp\",\"status\":\"ERROR\",\"errorType\":\"EXPIRED\",\"message\":\"The request date has reached the expiration limit '$expires'\"}"
	[ "$(state_of c-exp)" = ERROR ]
	[ ! -e "$(workspace_of p1 c-exp)" ]
}

@test "SIGTERM while retrying leaves the request for the next run, which finishes it" {
	archive p1 c-term P1_1.zip 1000
	packed p1 c-term P1_1.zip >in
	stop_s3
	ferry-s3-put <in 3>fd3 2>err &
	pid=$!
	sleep 1.5
	kill -TERM "$pid"
	wait "$pid"
	[ ! -s fd3 ]
	[ "$(state_of c-term)" = UPLOADING ]
	[ -e "$ARCHIVE" ]
	ferry-sandbox start "$SANDBOX_DIR" s3 >/dev/null
	rm "$BATS_TEST_TMPDIR/s3-stopped"
	ferry-s3-put </dev/null 3>fd3
	run jq -r '.correlationId + " " + .status' fd3
	assert_output "c-term DONE"
	[ "$(s3_md5 c-term/P1_1.zip)" = "$MD5" ]
}

# aws_etag FILE N: AWS's ETag of FILE sent in N parts of 5 MiB, the md5 of
# the parts' md5s and "-N"
aws_etag() {
	local i
	for i in $(seq 0 $(($2 - 1))); do
		dd if="$1" bs=5242880 skip="$i" count=1 2>/dev/null | md5sum | cut -c1-32
	done | xxd -r -p | md5sum | sed "s/ .*/-$2/"
}

# etag_proxy ETAG [CORRUPT]: a proxy in front of S3 that answers every PUT
# with that ETag header ("-": S3's own), and changes a byte of the first PUT
# whose URL holds CORRUPT; sets PROXY_PORT, and tenant px to upload through it
etag_proxy() {
	node "$BATS_TEST_DIRNAME/etag-proxy.js" "$FERRY_S3_PORT" "$@" >proxy.port &
	echo $! >proxy.pid
	for _ in $(seq 50); do grep -q ready proxy.port && break; sleep 0.1; done
	PROXY_PORT=$(cut -d' ' -f2 proxy.port)
	[ -n "$PROXY_PORT" ]
	tenant px "$(s3_tenant "$FERRY_S3_SECRET" | sed "s/\"port\":$FERRY_S3_PORT/\"port\":$PROXY_PORT/")"
}

stop_etag_proxy() {
	kill "$(cat proxy.pid)"
	wait "$(cat proxy.pid)" || true
}

@test "parts answered with 79 '&' as ETag: refused as unusable, ERROR, no object, no Complete" {
	etag_proxy "\"$(printf '&%.0s' $(seq 79))\""
	archive px c-amp P1_1.zip $((12 * 1048576))
	packed px c-amp P1_1.zip >in
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	stop_etag_proxy
	assert_success
	run jq -r '.status + " " + .errorType + " " + .message' fd3
	assert_output --partial "ERROR INTERNAL_ERROR"
	assert_output --partial "S3 answered an unusable ETag (not printable ASCII of 1 to 64 characters)"
	refute_output --partial '&&'
	s3_absent c-amp/P1_1.zip
	! s3_log 'c-amp/P1_1.zip?uploadId=' | grep -v partNumber | grep -q ' 200 '
}

@test "a single PUT answered with an ETag holding a space is refused as unusable: ERROR, no object" {
	etag_proxy '"0123456789abcdef 0123456789abcdef"'
	archive px c-sp P1_1.zip 1000
	packed px c-sp P1_1.zip >in
	ferry-s3-put <in 3>fd3 2>err || true
	stop_etag_proxy
	run jq -r '.status + " " + .message' fd3
	assert_output --partial "ERROR checksum mismatch for archive P1_1.zip: S3 answered an unusable ETag"
	s3_absent c-sp/P1_1.zip
}

@test "a part damaged on the way is never stored: sent again (RGW: BadDigest), DONE with the right object" {
	etag_proxy - 'partNumber=2&'
	archive px c-dmg P1_1.zip $((12 * 1048576))
	packed px c-dmg P1_1.zip >in
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	stop_etag_proxy
	assert_success
	grep -q '^corrupted .*partNumber=2&' proxy.port
	if [ "$FERRY_S3_KIND" = rgw ]; then
		# Content-MD5 refused the part: that part alone went again
		assert_output --partial "UploadPart 2: 400 BadDigest"
		assert_output --partial "sending the part again (2 of 3)"
		refute_output --partial "uploading again"
	else
		# s3rver stored it: its ETag gave it away, the upload went again
		assert_output --partial "UploadPart 2: S3 stored ETag"
		assert_output --partial "uploading again (2 of 3)"
	fi
	run jq -r .status fd3
	assert_output DONE
	[ "$(s3_md5 c-dmg/P1_1.zip)" = "$MD5" ]
}

@test "a completed object whose ETag is not AWS's md5 of the part md5s is removed: ERROR, no object" {
	etag_proxy - - 0123456789abcdef0123456789abcdef-3
	archive px c-cet P1_1.zip $((12 * 1048576))
	packed px c-cet P1_1.zip >in
	want=$(aws_etag "$ARCHIVE" 3)
	run bash -c 'ferry-s3-put -v <in 3>fd3'
	stop_etag_proxy
	assert_success
	assert_output --partial "CompleteMultipartUpload: S3 stored ETag 0123456789abcdef0123456789abcdef-3, expected $want"
	run jq -r '.status + " " + .errorType' fd3
	assert_output "ERROR INTERNAL_ERROR"
	s3_absent c-cet/P1_1.zip
}

@test "a multipart object's ETag is AWS's md5 of the part md5s where the server gives one (RGW)" {
	[ "$FERRY_S3_KIND" = rgw ] || skip "s3rver gives the whole object's md5"
	archive p1 c-aws P1_1.zip $((11 * 1048576))
	packed p1 c-aws P1_1.zip >in
	want=$(aws_etag "$ARCHIVE" 3)
	ferry-s3-put <in 3>fd3
	run jq -r .status fd3
	assert_output DONE
	run /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3api head-object --bucket deliveries \
		--key c-aws/P1_1.zip --query ETag --output text
	assert_output "\"$want\""
}
