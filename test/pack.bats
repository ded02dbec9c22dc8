#!/usr/bin/env bats
# ferry-pack alone on FETCHED items (no RabbitMQ): the zip checked with
# unzip, zipinfo and md5sum; layout and zip names; compression settings;
# checksum, size and missing-path errors; expiry, reruns, SIGTERM recovery;
# files ferry-fetch checked, swapped for a FIFO or a symlink before packing.

load lib

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	export FERRY_WORKSPACE="$BATS_TEST_TMPDIR/ws"
	ROOTS="\"file_roots\":[\"$BATS_TEST_TMPDIR/data\"]"   # the sources' root
	tenant p1 "{\"compression\":\"auto\",$ROOTS}"
	mkdir -p data
}

# fobj PID VER NAME PATH [MD5]: one file of an item, size and md5 from PATH
fobj() {
	local md5=${5:-$(md5sum <"$4" | cut -d' ' -f1)}
	jq -nc --arg p "$1" --argjson v "$2" --arg n "$3" --arg path "$(realpath "$4")" \
		--argjson size "$(stat -c %s "$4")" --arg md5 "$md5" \
		'{productId:$p,version:$v,dataType:"RAWDATA",name:$n,url:("file://"+$path),
		  size:$size,md5:$md5,path:$path}'
}

# pitem CID [EXPIRES] < files: a FETCHED item holding the file lines read
pitem() {
	jq -sc --arg cid "$1" --arg exp "${2:-2099-01-01T00:00:00.000Z}" \
		'{tenant:"p1",correlationId:$cid,expiresAt:$exp,
		  request:{correlationId:$cid,targetDelivery:"s3",order:{queries:["*"],user:"u"}},
		  files:.}'
}

state() { jq_sql "$FERRY_JOURNAL" "select state from request where correlation_id = '$1'"; }
zip_of() { jq -r .archive.path out; }

@test "a FETCHED item is PACKED: archive path, name, size and md5 on stdout" {
	echo hello >data/a.nc
	printf 'world\n' >data/b.nc
	{ fobj P1 1 a.nc data/a.nc; fobj P1 1 b.nc data/b.nc; } | pitem c-1 >in
	run bash -c 'ferry-pack <in 3>fd3 >out; echo rc=$?'
	assert_output "rc=0"
	[ ! -s fd3 ]
	run jq -r '.archive | "\(.name) \(.size) \(.md5)"' out
	local zip; zip=$(zip_of)
	assert_output "P1_1.zip $(stat -c %s "$zip") $(md5sum <"$zip" | cut -d' ' -f1)"
	[[ $zip == "$FERRY_WORKSPACE"/p1/*/P1_1.zip ]]
	[ ! -e "$zip.part" ]
	run state c-1
	assert_output PACKED
	run jq -c '.files | length' out     # the input's fields pass through
	assert_output 2
}

@test "the zip passes unzip -t and holds <productId>_<version>/<name> entries" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc | pitem c-1 >in
	ferry-pack <in >out
	unzip -tq "$(zip_of)"
	run zipinfo -1 "$(zip_of)"
	assert_output "P1_1/a.nc"
	run unzip -p "$(zip_of)" P1_1/a.nc
	assert_output hello
}

@test "two products give delivery-<correlationId>.zip with a directory each" {
	echo a >data/a.nc
	echo b >data/b.nc
	echo c >data/c.nc
	{ fobj P1 1 a.nc data/a.nc; fobj P2 3 b.nc data/b.nc; fobj P1 2 c.nc data/c.nc; } |
		pitem c-2 >in
	ferry-pack <in >out
	run jq -r .archive.name out
	assert_output delivery-c-2.zip
	run zipinfo -1 "$(zip_of)"
	assert_output "$(printf 'P1_1/a.nc\nP2_3/b.nc\nP1_2/c.nc')"
}

@test "names with spaces and non-ASCII characters are kept, flagged UTF-8" {
	echo x >"data/été 2026 ☃.nc"
	fobj P1 1 "sub dir/été 2026 ☃.nc" "data/été 2026 ☃.nc" | pitem c-3 >in
	ferry-pack <in >out
	unzip -tq "$(zip_of)"
	run zipinfo -1 "$(zip_of)"
	assert_output "P1_1/sub dir/été 2026 ☃.nc"
	run python3 -c 'import sys, zipfile; print(hex(zipfile.ZipFile(sys.argv[1]).infolist()[0].flag_bits & 0x800))' "$(zip_of)"
	assert_output 0x800
}

@test "zero-byte files are packed as empty entries" {
	: >data/empty.nc
	echo x >data/x.nc
	{ fobj P1 1 empty.nc data/empty.nc; fobj P1 1 x.nc data/x.nc; } | pitem c-4 >in
	ferry-pack <in >out
	unzip -tq "$(zip_of)"
	run bash -c "zipinfo '$(zip_of)' P1_1/empty.nc | awk '{print \$4, \$6}'"
	assert_output "0 stor"
}

@test "320 files are all packed, each with its content" {
	for i in $(seq 1 320); do echo "file $i" >"data/f$i.nc"; done
	fobjs P1 1 data/f*.nc | pitem c-5 >in
	ferry-pack <in >out
	unzip -tq "$(zip_of)"
	[ "$(zipinfo -1 "$(zip_of)" | wc -l)" -eq 320 ]
	run unzip -p "$(zip_of)" P1_1/f317.nc
	assert_output "file 317"
}

@test "compression auto deflates text and stores random bytes" {
	seq 1 50000 >data/text.nc
	head -c 200000 /dev/urandom >data/random.nc
	{ fobj P1 1 text.nc data/text.nc; fobj P1 1 random.nc data/random.nc; } | pitem c-6 >in
	ferry-pack <in >out
	run bash -c "zipinfo '$(zip_of)' | awk '\$NF ~ /^P1_1\// {print \$6, \$NF}'"
	assert_output "$(printf 'defN P1_1/text.nc\nstor P1_1/random.nc')"
}

@test "compression store stores text; deflate deflates random bytes" {
	seq 1 50000 >data/text.nc
	head -c 200000 /dev/urandom >data/random.nc
	{ fobj P1 1 text.nc data/text.nc; fobj P1 1 random.nc data/random.nc; } >files
	tenant p1 "{\"compression\":\"store\",$ROOTS}"
	pitem c-7 <files >in
	ferry-pack <in >out
	run bash -c "zipinfo '$(zip_of)' | awk '\$NF ~ /^P1_1\// {print \$6}' | sort -u"
	assert_output stor
	tenant p1 "{\"compression\":\"deflate\",$ROOTS}"
	pitem c-8 <files >in
	ferry-pack <in >out
	run bash -c "zipinfo '$(zip_of)' | awk '\$NF ~ /^P1_1\// {print \$6}' | sort -u"
	assert_output defN
	unzip -tq "$(zip_of)"
}

@test "two files with one entry name: the second gets ' (2)', said in an info line" {
	echo one >data/a1.nc
	echo two >data/a2.nc
	{ fobj P1 1 a.nc data/a1.nc; fobj P1 1 a.nc data/a2.nc; } | pitem c-9 >in
	run bash -c 'ferry-pack -v <in 2>&1 >out'
	assert_output --partial "P1_1/a.nc: entry name already used, stored as P1_1/a (2).nc"
	run unzip -p "$(zip_of)" "P1_1/a (2).nc"
	assert_output two
	run unzip -p "$(zip_of)" P1_1/a.nc
	assert_output one
}

@test "a wrong md5 ends the request ERROR INTERNAL_ERROR naming the file (the md5 read: in the log only); workspace removed" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc 0123456789abcdef0123456789abcdef | pitem c-10 >in
	run bash -c 'ferry-pack <in 3>fd3 >out 2>err; echo rc=$?'
	assert_output "rc=0"
	[ ! -s out ]
	run jq -r '"\(.status) \(.errorType) \(.message)"' fd3
	assert_output "ERROR INTERNAL_ERROR checksum mismatch for P1/a.nc: expected 0123456789abcdef0123456789abcdef, got another md5"
	grep -q "warning: p1/c-10: P1/a.nc: .*md5 $(md5sum <data/a.nc | cut -d' ' -f1), expected" err
	run state c-10
	assert_output ERROR
	[ -z "$(ls -A "$FERRY_WORKSPACE/p1")" ]
}

@test "an upper-case md5 in the item matches" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc "$(md5sum <data/a.nc | cut -d' ' -f1 | tr a-f A-F)" | pitem c-11 >in
	ferry-pack <in >out
	run state c-11
	assert_output PACKED
}

@test "a file whose size changed since the order ends the request ERROR" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc >f
	echo more >>data/a.nc
	pitem c-12 <f >in
	ferry-pack <in 3>fd3 >out 2>err
	run jq -r .message fd3
	assert_output "size mismatch for P1/a.nc: expected 6 bytes, got another size"
	grep -q "warning: p1/c-12: P1/a.nc: .*size 11, expected 6" err
}

@test "a file without path ends the request ERROR 'was not fetched'" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc | jq -c 'del(.path)' | pitem c-13 >in
	ferry-pack <in 3>fd3 >out
	run jq -r '"\(.errorType) \(.message)"' fd3
	assert_output "INTERNAL_ERROR file P1/a.nc was not fetched"
	run state c-13
	assert_output ERROR
}

@test "a file without md5 ends the request ERROR before anything is written" {
	echo hello >data/a.nc
	{ fobj P1 1 a.nc data/a.nc; fobj P1 1 b.nc data/a.nc | jq -c 'del(.md5)'; } | pitem c-21 >in
	ferry-pack <in 3>fd3 >out
	run jq -r '"\(.errorType) \(.message)"' fd3
	assert_output "INTERNAL_ERROR file P1/b.nc: size must be a whole number of bytes and md5 32 hexadecimal digits"
	[ ! -e "$FERRY_WORKSPACE/p1" ] || [ -z "$(ls -A "$FERRY_WORKSPACE/p1")" ]
}

@test "a source that disappeared ends the request ERROR naming the file" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc | pitem c-14 >in
	rm data/a.nc
	ferry-pack <in 3>fd3 >out
	run jq -r .message fd3
	assert_output --partial "unable to read P1/a.nc: "
	assert_output --partial "No such file or directory"
}

@test "an expired item ends ERROR EXPIRED without packing" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc | pitem c-15 2020-01-01T00:00:00.000Z >in
	ferry-pack <in 3>fd3 >out
	run jq -r '"\(.errorType) \(.message)"' fd3
	assert_output "EXPIRED The request date has reached the expiration limit '2020-01-01T00:00:00.000Z'"
	run state c-15
	assert_output ERROR
	[ ! -s out ]
}

@test "an item that expires while it is packed ends ERROR EXPIRED, no zip left" {
	truncate -s 3G data/zeros.nc
	tenant p1 "{\"compression\":\"deflate\",$ROOTS}"
	fobj P1 1 zeros.nc data/zeros.nc 00000000000000000000000000000000 |
		pitem c-16 "$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%S.000Z)" >in
	ferry-pack <in 3>fd3 >out
	run jq -r .errorType fd3
	assert_output EXPIRED
	[ -z "$(ls -A "$FERRY_WORKSPACE/p1")" ]
}

@test "the same item again is skipped: one zip, one PACKED" {
	echo hello >data/a.nc
	fobj P1 1 a.nc data/a.nc | pitem c-17 >in
	ferry-pack <in >out
	local md5; md5=$(md5sum <"$(zip_of)")
	run bash -c 'ferry-pack -v <in 2>&1 >out2'
	assert_output --partial "p1/c-17: not waiting for pack; skipped"
	[ ! -s out2 ]
	[ "$(md5sum <"$(zip_of)")" = "$md5" ]
	run jq_sql "$FERRY_JOURNAL" "select count(*) from event where state = 'PACKED'"
	assert_output 1
}

@test "SIGTERM abandons the zip in hand; the next start packs it" {
	truncate -s 512M data/zeros.nc
	tenant p1 "{\"compression\":\"deflate\",$ROOTS}"
	fobj P1 1 zeros.nc data/zeros.nc aa559b4e3523a6c931f08f4df52d58f2 | pitem c-18 >in
	ferry-pack <in >out 3>fd3 &
	local pid=$! i
	for i in $(seq 1 100); do
		[ -n "$(find "$FERRY_WORKSPACE" -name '*.zip.part')" ] && break
		sleep 0.05
	done
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	[ ! -s out ] && [ ! -s fd3 ]
	[ -z "$(find "$FERRY_WORKSPACE" -name '*.zip*')" ]
	run jq_sql "$FERRY_JOURNAL" "select state, bytes_total from request"
	assert_output "PACKING|536870912"
	ferry-pack </dev/null >out
	run state c-18
	assert_output PACKED
	unzip -tq "$(zip_of)"
}

@test "-h prints the usage; a bad flag or level exits 100" {
	run ferry-pack -h
	assert_success
	assert_output "usage: ferry-pack [-hSv] [-c workers] [-j journal] [-t tenants] [-w workspace] [-l level]"
	run ferry-pack -x
	[ "$status" -eq 100 ]
	run ferry-pack -l 0
	[ "$status" -eq 100 ]
}

@test "-l sets the deflate level: -l 1 makes a bigger zip than -l 9" {
	seq 1 200000 >data/text.nc
	fobj P1 1 text.nc data/text.nc >f
	pitem c-19 <f >in
	ferry-pack -l 1 <in >out
	local fast; fast=$(jq .archive.size out)
	pitem c-20 <f >in
	ferry-pack -l 9 <in >out
	[ "$fast" -gt "$(jq .archive.size out)" ]
	unzip -tq "$(zip_of)"
}

# fetched CID FILE: FILE, an ORDERED request's file:// source, through
# ferry-fetch: the FETCHED item on ./fetched
fetched() {
	fobj P1 1 a.nc "$2" | jq -c 'del(.path)' | pitem "$1" | ferry-fetch >fetched 3>/dev/null
	[ "$(state "$1")" = FETCHED ]
}

@test "a fetched file swapped for a FIFO: pack does not block, ERROR 'not a regular file'" {
	echo hello >data/a.nc
	fetched c-fifo data/a.nc
	rm data/a.nc
	mkfifo data/a.nc
	# bounded by timeout (SIGTERM, then SIGKILL): a pack blocked in open() fails here
	run timeout -k 10 60 bash -c 'ferry-pack <fetched 3>fd3 >out; echo rc=$?'
	assert_output "rc=0"
	run jq -r '"\(.status) \(.errorType) \(.message)"' fd3
	assert_output "ERROR INTERNAL_ERROR unable to read P1/a.nc: $(jq -r '.files[0].path' fetched): not a regular file"
	run state c-fifo
	assert_output ERROR
}

@test "a fetched file swapped for a symlink to /etc/passwd: ERROR, neither its size nor its md5 told" {
	local secret; secret=$(md5sum </etc/passwd | cut -d' ' -f1)
	head -c "$(stat -c %s /etc/passwd)" /dev/zero >data/a.nc   # same size: the md5 would differ
	fetched c-same data/a.nc
	mv fetched same
	echo hello >data/a.nc                                     # another size
	fetched c-other data/a.nc
	ln -sf /etc/passwd data/a.nc
	run bash -c 'cat same fetched | ferry-pack 3>fd3 >out 2>err'
	assert_success
	local why; why="unable to read P1/a.nc: $(jq -r '.files[0].path' same): a symbolic link on the way, not followed"
	run bash -c "jq -r '\"\\(.correlationId) \\(.status) \\(.message)\"' fd3 | sort"   # workers: any order
	assert_output "$(printf 'c-other ERROR %s\nc-same ERROR %s' "$why" "$why")"
	refute_output --partial "$secret"
	run cat err
	refute_output --partial "$secret"
	[ ! -s out ]
}
