#!/usr/bin/env bats
# ferry-pack -S | ferry-s3-put: the zip described by a plan and made while it
# is uploaded (lib/zipplan). Checked with independent tools on the object the
# aws CLI downloads: unzip -t, zipinfo, md5sum; against the zip ferry-pack
# writes without -S for the same files; source checks on the way (a file
# changed after packing ends ERROR, no object left; one swapped for a FIFO
# or a symlink is not read); multipart; ZIP64 by entry count.

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
	export FERRY_WORKSPACE="$BATS_TEST_TMPDIR/ws"
	tenant p1 "$(s3_tenant '"compression":"auto"')"
	mkdir -p data
}

# s3_tenant EXTRA: the sandbox's S3 server, 5 MiB parts, data/ the sources'
# root, and EXTRA settings
s3_tenant() {
	printf '{"s3_server":{"scheme":"http","host":"127.0.0.1","port":%s,"region":"us-east-1","key":"S3RVER","secret":"S3RVER"},"delivery_bucket":"deliveries","multipart_part_size":5242880,"upload_parallel":3,"file_roots":["%s"],%s}' \
		"$FERRY_S3_PORT" "$BATS_TEST_TMPDIR/data" "$1"
}

# pitem CID < files: a FETCHED item of tenant p1 holding the file lines read
pitem() {
	jq -sc --arg cid "$1" '{tenant:"p1",correlationId:$cid,expiresAt:"2099-01-01T00:00:00.000Z",
	  request:{correlationId:$cid,targetDelivery:"s3",order:{queries:["*"],user:"u"}},
	  files:.}'
}

# get KEY FILE: the object as the aws CLI downloads it
get() {
	/usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3 cp "s3://deliveries/$1" "$2" >/dev/null
}

s3_absent() {
	run /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" s3api head-object --bucket deliveries --key "$1"
	[ "$status" -ne 0 ] && [[ "$output" == *"Not Found"* ]]
}

# listing ZIP: name, size, method of each entry, as zipinfo sees them
listing() {
	zipinfo -l "$1" | awk 'NR > 2 && NF >= 10 { n = $10; for (i = 11; i <= NF; i++) n = n " " $i;
	                                            print n, $4, $7 }' | sort
}

@test "pack -S writes a plan, no zip; s3-put uploads the zip it describes: unzip -t, md5 in DONE" {
	seq 1 200000 >data/text.nc                       # deflated under auto
	head -c 3000000 /dev/urandom >data/random.nc     # stored
	: >data/empty.nc
	printf 'é\n' >"data/été.nc"
	fobjs P1 1 data/text.nc data/random.nc data/empty.nc "data/été.nc" | pitem c-1 >in
	run bash -c 'ferry-pack -S <in >packed 3>fd3'
	assert_success
	[ ! -s fd3 ]
	run jq -r '.archive | "\(.name) \(.plan | test("/P1_1.zip.plan$")) \(.md5)"' packed
	assert_output "P1_1.zip true null"
	ws=$(dirname "$(jq -r .archive.plan packed)")
	[ ! -e "$ws/P1_1.zip" ]
	[ -s "$ws/P1_1.zip.spool" ]                      # the deflated entry
	run bash -c 'ferry-s3-put <packed >put 3>fd3'
	assert_success
	get c-1/P1_1.zip got.zip
	md5=$(md5sum <got.zip | cut -c1-32)
	run cat fd3
	assert_output "{\"correlationId\":\"c-1\",\"status\":\"DONE\",\"url\":\"s3://deliveries/c-1/P1_1.zip\",\"md5\":\"$md5\"}"
	run jq_sql "$FERRY_JOURNAL" "select item from event where state = 'DONE'"
	assert_output --partial "\"md5\":\"$md5\""
	[ "$(stat -c %s got.zip)" = "$(jq -r .archive.size packed)" ]
	run unzip -t got.zip
	assert_success
	assert_output --partial "No errors detected"
	mkdir x && (cd x && unzip -q ../got.zip)
	for f in text.nc random.nc empty.nc été.nc; do cmp "data/$f" "x/P1_1/$f"; done
	[ ! -e "$ws" ]                                   # plan and spool gone with the workspace
}

@test "the zip made from a plan has the entries, sizes and methods of the zip ferry-pack writes" {
	seq 1 100000 >data/a.nc
	head -c 100000 /dev/urandom >data/b.nc
	mkdir -p data/two && seq 5 50000 >data/two/a.nc   # the same entry name: "a (2).nc"
	{ fobjs P1 1 data/a.nc data/b.nc; fobjs P1 1 data/two/a.nc; } | pitem c-same >in
	sed 's/c-same/c-file/g' in >in2
	ferry-pack <in2 >zipped
	listing "$(jq -r .archive.path zipped)" >want  # before s3-put takes c-file too
	ferry-pack -S <in | ferry-s3-put 3>/dev/null
	get c-same/P1_1.zip stream.zip
	listing stream.zip >got
	run cat got
	assert_output --partial 'P1_1/a (2).nc'
	diff want got
	unzip -tq stream.zip
}

@test "a source changed after pack -S ends ERROR 'checksum mismatch' naming the entry; no object" {
	head -c 200000 /dev/urandom >data/a.nc
	fobjs P1 1 data/a.nc | pitem c-changed >in
	ferry-pack -S <in >packed
	printf 'X' | dd of=data/a.nc bs=1 seek=100000 conv=notrunc status=none   # same size
	run bash -c 'ferry-s3-put <packed 3>fd3 2>err'
	assert_success
	run jq -r '"\(.status) \(.errorType) \(.message)"' fd3
	assert_output --regexp '^ERROR INTERNAL_ERROR checksum mismatch for P1_1/a\.nc: expected [0-9a-f]{32}, got another md5$'
	grep -q "warning: p1/c-changed: checksum mismatch for P1_1/a.nc: .*: got $(md5sum <data/a.nc | cut -d' ' -f1)" err
	s3_absent c-changed/P1_1.zip
}

@test "a packed source swapped for a FIFO or a symlink to /etc/passwd: s3-put does not block, ERROR without its md5; no object" {
	tenant p1 "$(s3_tenant '"compression":"store"')"    # stored: s3-put reads the source
	local secret; secret=$(md5sum </etc/passwd | cut -d' ' -f1)
	head -c "$(stat -c %s /etc/passwd)" /dev/zero >data/a.nc   # same size: md5 mismatch before
	cp data/a.nc data/b.nc
	fobjs P1 1 data/a.nc | pitem c-fifo >in
	fobjs P1 1 data/b.nc | pitem c-link >>in
	ferry-pack -S <in >packed
	rm data/a.nc data/b.nc
	mkfifo data/a.nc
	ln -s /etc/passwd data/b.nc
	# bounded by timeout (SIGTERM, then SIGKILL: a thread blocked in open() is deaf to SIGTERM)
	run timeout -k 10 60 bash -c 'ferry-s3-put <packed 3>fd3 2>err; echo rc=$?'
	assert_output "rc=0"
	run bash -c "jq -r '\"\\(.correlationId) \\(.status) \\(.message)\"' fd3 | sort"   # K workers: any order
	assert_line --index 0 --regexp "^c-fifo ERROR upload of archive P1_1.zip to s3://deliveries/c-fifo/P1_1.zip failed: .*unable to read $(realpath data)/a.nc: not a regular file$"
	assert_line --index 1 --regexp "^c-link ERROR upload of archive P1_1.zip to s3://deliveries/c-link/P1_1.zip failed: .*unable to read $(realpath data)/b.nc: a symbolic link on the way, not followed$"
	refute_output --partial "$secret"
	run cat err
	refute_output --partial "$secret"
	s3_absent c-fifo/P1_1.zip
	s3_absent c-link/P1_1.zip
}

@test "a deflated source with a wrong md5 is caught by pack -S itself" {
	seq 1 100000 >data/a.nc
	fobjs P1 1 data/a.nc | jq -c '.md5 = "00000000000000000000000000000000"' | pitem c-bad >in
	run bash -c 'ferry-pack -S <in 3>fd3'
	assert_success
	run jq -r '"\(.status) \(.errorType) \(.message)"' fd3
	assert_output --partial "ERROR INTERNAL_ERROR checksum mismatch for P1/a.nc"
}

@test "12 MiB through a plan is a multipart upload; every byte checked" {
	tenant p1 "$(s3_tenant '"compression":"store"')"
	head -c 7000000 /dev/urandom >data/a.nc
	head -c 6000000 /dev/urandom >data/b.nc
	fobjs P1 1 data/a.nc data/b.nc | pitem c-multi >in
	run bash -c 'ferry-pack -S <in | ferry-s3-put -v 3>fd3'
	assert_success
	assert_output --partial "(3 parts"
	get c-multi/P1_1.zip got.zip
	[ "$(jq -r .md5 fd3)" = "$(md5sum <got.zip | cut -c1-32)" ]
	unzip -tq got.zip
}

@test "65,536 entries: the zip has ZIP64 end records and passes unzip -t" {
	tenant p1 "$(s3_tenant '"compression":"store"')"
	python3 - <<'EOF'
import hashlib, json, os
os.makedirs("data/many", exist_ok=True)
with open("files", "w") as out:
    for i in range(65536):
        p = os.path.realpath("data/many/f%05d" % i)
        b = b"%d\n" % i
        open(p, "wb").write(b)
        out.write(json.dumps({"productId": "P1", "version": 1, "name": "f%05d" % i,
            "url": "file://" + p, "size": len(b), "md5": hashlib.md5(b).hexdigest(),
            "path": p}) + "\n")
EOF
	pitem c-many <files >in
	ferry-pack -S <in | ferry-s3-put 3>fd3
	[ "$(jq -r .status fd3)" = DONE ]
	get c-many/P1_1.zip got.zip
	run unzip -tq got.zip
	assert_success
	run bash -c "zipinfo -1 got.zip | wc -l"
	assert_output 65536
	unzip -p got.zip P1_1/f65535 | grep -qx 65535
	# the ZIP64 end of central directory record is there
	grep -c $'PK\x06\x06' got.zip
}
