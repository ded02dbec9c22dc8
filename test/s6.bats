#!/usr/bin/env bats
# s6.bats: the s6 service tree. ferry-s6-setup makes a scan directory from
# etc/s6; s6-svscan runs it against a real RabbitMQ and S3 server
# (ferry-sandbox); requests sent with ferry-submit reach DONE, zips checked
# with /usr/bin/aws and md5sum; a stage killed with SIGKILL is restarted by
# s6; s6-svscanctl -t stops everything.

load lib

aws() { /usr/bin/aws --endpoint-url "$FERRY_S3_ENDPOINT" "$@"; }

SERVICES=(ferry-amqp-ingest ferry-fetch ferry-notify ferry-order-bridge ferry-pack
	ferry-request-validate ferry-s3-put ferry-sweeper)

# setup_tree DIR ENVDIR: ferry-s6-setup from the template of this source tree
setup_tree() { ferry-s6-setup -v -t "$BATS_TEST_DIRNAME/../etc/s6" "$@"; }

# start_svscan DIR NAME: s6-svscan on DIR in the background, pid in $D/NAME.pid
start_svscan() {
	s6-svscan "$1" >"$D/$2.log" 2>&1 3>&- &
	echo $! >"$D/$2.pid"
}

# alive PID: PID runs (PID 1 here reaps nothing: a zombie counts as gone)
alive() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# stop_svscan DIR NAME: s6-svscanctl -t, then wait up to 15 s for s6-svscan
stop_svscan() {
	local pid _
	pid=$(cat "$D/$2.pid" 2>/dev/null) || return 0
	alive "$pid" || return 0
	s6-svscanctl -t "$1"
	for _ in $(seq 150); do
		alive "$pid" || return 0
		sleep 0.1
	done
	echo "s6-svscan $pid on $1 still runs" >&2
	return 1
}

# tree_procs DIR: the live processes working in DIR or naming it, but us
tree_procs() {
	local p cwd
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" = "$BASHPID" ] && continue
		alive "${p#/proc/}" || continue
		cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
		case $cwd in
		"$1" | "$1"/*) echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline")"; continue ;;
		esac
		grep -qaF "$1" "$p/cmdline" 2>/dev/null &&
			echo "${p#/proc/} $(tr '\0' ' ' <"$p/cmdline")"
	done
	return 0
}

# all_up DIR: wait up to 10 s until every service of DIR and its logger is up
all_up() {
	local s ok
	for _ in $(seq 100); do
		ok=1
		for s in "${SERVICES[@]}"; do
			if [ "$(s6-svstat -o up "$1/$s" 2>/dev/null)" != true ] ||
				[ "$(s6-svstat -o up,ready "$1/$s/log" 2>/dev/null)" != "true true" ]; then
				ok=0
				break
			fi
		done
		[ $ok = 1 ] && return 0
		sleep 0.1
	done
	for s in "${SERVICES[@]}"; do echo "$s: $(s6-svstat "$1/$s")" >&2; done
	return 1
}

# restarted SERVICE OLDPID: wait up to 10 s until SERVICE runs again with
# another pid
restarted() {
	local new
	for _ in $(seq 100); do
		new=$(s6-svstat -o pid "$S/$1")
		[ "$new" != "$2" ] && [ "$new" != -1 ] && return 0
		sleep 0.1
	done
	return 1
}

setup_file() {
	sandbox_up
	export D="$BATS_FILE_TMPDIR"
	mkdir -p "$D/data/P1" "$D/data/P2" "$D/envdir"
	head -c 200000 /dev/urandom >"$D/data/P1/a.nc"
	printf 'hello\n' >"$D/data/P1/b.txt"
	head -c 50000 /dev/urandom >"$D/data/P2/c.nc"
	# P3: so many files that its item is longer than a pipe holds (64 KiB)
	mkdir -p "$D/data/P3"
	for i in $(seq 400); do
		printf '%s' "$i" >"$D/data/P3/a-file-name-long-enough-to-make-the-item-big-$i.txt"
	done
	ferry-catalog -c "$D/cat.db" init
	ferry-catalog -c "$D/cat.db" scan -t coastline "$D/data" >/dev/null
	export FERRY_JOURNAL="$D/journal.db" FERRY_TENANTS="$D/tenants" FERRY_WORKSPACE="$D/ws"
	tenant p1 "{\"request_ttl\":1,\"catalog\":\"$D/cat.db\",\"file_roots\":[\"$D/data\"],
		\"users\":[\"ana@example.org\"],
		\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",\"port\":$FERRY_S3_PORT,
		\"region\":\"us-east-1\",\"key\":\"S3RVER\",\"secret\":\"S3RVER\"},
		\"delivery_bucket\":\"deliveries\"}"
	for v in FERRY_AMQP_URL FERRY_JOURNAL FERRY_WORKSPACE FERRY_TENANTS; do
		printenv "$v" >"$D/envdir/$v"
	done
	# the settings come from the envdir only
	unset FERRY_JOURNAL FERRY_TENANTS FERRY_WORKSPACE
	setup_tree "$D/svc" "$D/envdir" >"$D/setup.out"
	start_svscan "$D/svc" svscan
}

teardown_file() {
	export D="$BATS_FILE_TMPDIR"
	stop_svscan "$D/bad" bad-svscan
	stop_svscan "$D/svc" svscan
	sandbox_down
}

setup() {
	sandbox_env
	export D="$BATS_FILE_TMPDIR" S="$BATS_FILE_TMPDIR/svc"
	cd "$BATS_TEST_TMPDIR" || return 1
}

submit() { ferry-submit -w 30 -t p1 -u ana@example.org "$@"; }

# check_zip: fetch the DONE zip of ./out with aws, check its md5, unzip -t
check_zip() {
	url=$(sed -n 's/.*"status":"DONE","url":"\([^"]*\)".*/\1/p' out)
	md5=$(sed -n 's/.*"md5":"\([0-9a-f]*\)".*/\1/p' out)
	[ -n "$url" ]
	[ -n "$md5" ]
	aws s3 cp "$url" got.zip >/dev/null
	[ "$(md5sum <got.zip | cut -d' ' -f1)" = "$md5" ]
	unzip -tq got.zip
}

@test "ferry-s6-setup makes one service per program, the chain's FIFOs and the log dirs" {
	run cat "$D/setup.out"
	assert_line --partial "8 services in $S"
	assert_line --partial "s6-svscan $S"
	run env LC_ALL=C ls "$S"
	assert_output "$(printf '%s\n' "${SERVICES[@]}")"
	for f in received granted ordered fetched packed; do [ -p "$S/.fifo/$f" ]; done
	for s in "${SERVICES[@]}"; do
		[ -x "$S/$s/run" ]
		[ -x "$S/$s/finish" ]
		[ -x "$S/$s/log/run" ]
		[ -d "$S/$s/log/main" ]
		# the programs have no readiness notification yet; s6-log has
		[ ! -e "$S/$s/notification-fd" ]
		[ "$(cat "$S/$s/log/notification-fd")" = 3 ]
		sh -n "$S/$s/run"
		sh -n "$S/$s/finish"
		grep -q "s6-envdir '$D/envdir' '$FERRY_BUILD/bin/ferry-" "$S/$s/run"
	done
	run grep -rl '@ENVDIR@\|@BIN@\|@FLAGS@' "$S"
	assert_output ''
	grep -q "0<>../.fifo/received >../.fifo/granted" "$S/ferry-request-validate/run"
	grep -q "ferry-journal' -v expire -f" "$S/ferry-sweeper/run"
}

@test "ferry-s6-setup run again on the running tree rewrites the scripts, keeps FIFOs and logs" {
	inode=$(stat -c %i "$S/.fifo/granted")
	echo '# edited' >>"$S/ferry-pack/run"
	run setup_tree "$S" "$D/envdir"
	assert_success
	run grep -c edited "$S/ferry-pack/run"
	assert_output 0
	[ -x "$S/ferry-pack/run" ]
	[ "$(stat -c %i "$S/.fifo/granted")" = "$inode" ]
	[ -s "$S/ferry-sweeper/log/main/current" ]
	run find "$S" -name '*.new'
	assert_output ''
	all_up "$S"
}

@test "ferry-s6-setup refuses a missing envdir or programs with exit 100" {
	run setup_tree "$BATS_TEST_TMPDIR/t" "$BATS_TEST_TMPDIR/none"
	assert_failure 100
	assert_output --partial 'ferry-s6-setup: fatal: envdir'
	run setup_tree "$BATS_TEST_TMPDIR/t" "$D/envdir" "$BATS_TEST_TMPDIR"
	assert_failure 100
	assert_output --partial 'ferry-amqp-ingest: no such program'
	[ ! -e "$BATS_TEST_TMPDIR/t" ]
	run ferry-s6-setup -x
	assert_failure 100
	assert_output --partial 'usage: ferry-s6-setup'
}

@test "every service and its logger come up under s6-svscan" {
	all_up "$S"
	run s6-svstat -o pid "$S/ferry-fetch"
	[ "$(readlink "/proc/$output/exe")" = "$FERRY_BUILD/bin/ferry-fetch" ]
}

@test "a request goes through the tree to DONE; the zip in S3 has the md5 of DONE" {
	all_up "$S"
	run submit -q 'productId:P1' -c s6-one
	assert_success
	echo "$output" >out
	assert_line --index 0 '{"correlationId":"s6-one","status":"GRANTED"}'
	assert_output --partial '"url":"s3://deliveries/s6-one/P1_1.zip"'
	check_zip
	run unzip -Z1 got.zip
	assert_output $'P1_1/a.nc\nP1_1/b.txt'
}

@test "a stage killed with SIGKILL is restarted by s6 and the next request goes to DONE" {
	all_up "$S"
	old=$(s6-svstat -o pid "$S/ferry-request-validate")
	next=$(s6-svstat -o pid "$S/ferry-order-bridge")
	kill -KILL "$old"
	restarted ferry-request-validate "$old"
	all_up "$S"
	# its finish script restarted the next stage, which re-reads the journal
	[ "$(s6-svstat -o pid "$S/ferry-order-bridge")" != "$next" ]
	grep -q 'ferry-request-validate: warning: killed by signal 9' \
		"$S/ferry-request-validate/log/main/current"
	run submit -q 'productId:P1 OR productId:P2' -c s6-two
	assert_success
	echo "$output" >out
	assert_output --partial '"url":"s3://deliveries/s6-two/delivery-s6-two.zip"'
	check_zip
	run unzip -Z1 got.zip
	assert_output $'P1_1/a.nc\nP1_1/b.txt\nP2_1/c.nc'
}

# wchan PID: where each thread of PID sleeps, on one line (a stage's stdout
# is written by a thread of its own)
wchan() { local t; for t in /proc/"$1"/task/*/wchan; do cat "$t" 2>/dev/null; echo -n ' '; done; }

# terminals CID: how many terminal responses the outbox holds for CID
terminals() {
	jq_sql "$D/journal.db" "select count(*) from outbox o join request r on r.id = o.request_id
		where r.correlation_id = '$1' and (o.body like '%\"status\":\"DONE\"%'
		or o.body like '%\"status\":\"ERROR\"%' or o.body like '%\"status\":\"DENIED\"%')"
}

# tear WRITER STATE READER FIFO CID SUBMIT-ARGS...: stop READER, hold FIFO
# open reading nothing (what it holds outlives every reader, as when a
# restarted writer reopens the FIFO before the old reader is gone: the
# caller closes fd 7), submit CID in the background (pid in $sub), whose
# item is longer than a pipe holds. WRITER commits STATE, then writes the
# item; the pipe fills up mid-line and the write blocks: SIGKILL it then.
# Once WRITER is back, start READER (pid in $rpid): it takes CID from the
# journal at start, then reads the fragment and waits for the rest of its
# line.
tear() {
	local writer=$1 state=$2 reader=$3 fifo=$4 cid=$5 pid
	shift 5
	exec 7<>"$S/.fifo/$fifo"
	s6-svc -wd -T 10000 -d "$S/$reader"
	pid=$(s6-svstat -o pid "$S/$writer")
	submit -c "$cid" "$@" >"$cid.out" 2>&1 &
	sub=$!
	for _ in $(seq 300); do
		case $(wchan "$pid") in *pipe_write*) break ;; esac
		sleep 0.1
	done
	case $(wchan "$pid") in *pipe_write*) ;; *) false ;; esac
	[ "$(jq_sql "$D/journal.db" "select max(length(e.item)) from event e join request r
		on r.id = e.request_id where r.correlation_id = '$cid' and e.state = '$state'")" -gt 65536 ]
	[ "$(jq_sql "$D/journal.db" "select state from request where correlation_id = '$cid'")" = "$state" ]
	kill -KILL "$pid"
	restarted "$writer" "$pid"
	s6-svc -wu -T 10000 -u "$S/$reader"
	rpid=$(s6-svstat -o pid "$S/$reader")
	reading "$rpid"
}

# reading PID: wait up to 10 s until PID sleeps reading a pipe
reading() {
	for _ in $(seq 100); do
		case $(wchan "$1") in *pipe_read*) return 0 ;; esac
		sleep 0.1
	done
	return 1
}

# torn_logged READER: READER said it skipped a line, quoting none of it
torn_logged() {
	run grep -F "$1: error: stdin: line " "$S/$1/log/main/current"
	assert_output --regexp 'invalid JSON near byte [0-9]+: line skipped; taking up what waits in the journal$'
	refute_output --partial 's6-torn'
}

@test "ferry-fetch killed mid-line leaves half an item in the FIFO: ferry-pack skips the torn line, the journal supplies both items" {
	all_up "$S"
	tear ferry-fetch FETCHED ferry-pack fetched s6-torn-a -q 'productId:P3'
	wait "$sub"
	grep -q '"correlationId":"s6-torn-a","status":"DONE"' s6-torn-a.out
	# the first item the new ferry-fetch writes is glued to the fragment
	run submit -q 'productId:P1' -c s6-torn-b
	exec 7<&-
	assert_success
	assert_output --partial '"correlationId":"s6-torn-b","status":"DONE"'
	torn_logged ferry-pack
	[ "$(terminals s6-torn-a)" = 1 ]
	[ "$(terminals s6-torn-b)" = 1 ]
	# no restart did it
	[ "$(s6-svstat -o pid "$S/ferry-pack")" = "$rpid" ]
}

@test "half a line left in .fifo/received by a killed writer: ferry-request-validate skips the torn line, the journal supplies the item glued to it" {
	all_up "$S"
	pid=$(s6-svstat -o pid "$S/ferry-request-validate")
	# the bytes a writer killed mid-line leaves: 70,000 bytes of an item, no
	# newline (ferry-amqp-ingest itself reprints at start what waits in
	# RECEIVED, so its own first line after a kill is no new item)
	pad=$(head -c 70000 /dev/zero | tr '\0' x)
	sh -c 'printf %s "$1" >"$2"; kill -KILL $$' sh "{\"tenant\":\"p1\",\"pad\":\"$pad" \
		"$S/.fifo/received" &
	st=0
	wait $! 2>/dev/null || st=$?
	[ "$st" = 137 ]
	reading "$pid"
	run submit -q 'productId:P1' -c s6-torn-c
	assert_success
	assert_output --partial '"correlationId":"s6-torn-c","status":"DONE"'
	torn_logged ferry-request-validate
	[ "$(terminals s6-torn-c)" = 1 ]
	# no restart did it
	[ "$(s6-svstat -o pid "$S/ferry-request-validate")" = "$pid" ]
}

@test "every log line has an ISO 8601 timestamp; each stage logged its request" {
	for s in "${SERVICES[@]}"; do
		[ -s "$S/$s/log/main/current" ]
		run grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+  ' \
			"$S/$s/log/main/current"
		assert_output 0
	done
	grep -q 'ferry-s3-put: info: p1/s6-two: DONE' "$S/ferry-s3-put/log/main/current"
	grep -q 'ferry-request-validate: info: p1/s6-one: GRANTED' \
		"$S/ferry-request-validate/log/main/current"
}

@test "a service that exits 100 three times in a minute is kept down, the others run" {
	mkdir -p "$D/badenv"
	cp "$D/envdir/"* "$D/badenv/"
	echo 'nope://x' >"$D/badenv/FERRY_AMQP_URL"
	echo "$D/bad.db" >"$D/badenv/FERRY_JOURNAL"
	setup_tree "$D/bad" "$D/badenv" >/dev/null
	start_svscan "$D/bad" bad-svscan
	for _ in $(seq 100); do
		[ "$(s6-svstat -o wantedup "$D/bad/ferry-amqp-ingest" 2>/dev/null)" = false ] && break
		sleep 0.1
	done
	run s6-svstat -o up,wantedup,exitcode "$D/bad/ferry-amqp-ingest"
	assert_output 'false false 100'
	[ "$(grep -c 'ferry-amqp-ingest: warning: exited 100' "$D/bad/ferry-amqp-ingest/log/main/current")" = 3 ]
	grep -q 'ferry-amqp-ingest: fatal: amqp: cannot parse the URL' \
		"$D/bad/ferry-amqp-ingest/log/main/current"
	run s6-svstat -o up,wantedup "$D/bad/ferry-fetch"
	assert_output 'true true'
	stop_svscan "$D/bad" bad-svscan
	run tree_procs "$D/bad"
	assert_output ''
}

@test "s6-svscanctl -t stops the tree: s6-svscan exits, no process of it is left" {
	run jq_sql "$D/journal.db" "select count(*) from request where state not in ('DONE','DENIED','ERROR')"
	assert_output 0
	run jq_sql "$D/journal.db" "select count(*) from outbox where sent_at is null"
	assert_output 0
	pid=$(cat "$D/svscan.pid")
	alive "$pid"
	stop_svscan "$S" svscan
	run alive "$pid"
	assert_failure
	run tree_procs "$S"
	assert_output ''
	# SIGTERM made each program exit 0
	for s in "${SERVICES[@]}"; do
		tail -n 1 "$S/$s/log/main/current" | grep -q "$s: info: exited 0"
	done
}
