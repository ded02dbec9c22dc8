#!/usr/bin/env bats
# ferry-fetch alone on items (no RabbitMQ): file:// sources checked against
# file_roots in place, http sources from a local test server (python3) into
# the workspace md5-verified, allowed_hosts and redirects, retries, deadline,
# SIGTERM. Responses on fd 3; loopback only.

load lib

# The test server: /f/NAME a file; /slow/NAME 64 KiB every 0.2 s; /bad/NAME
# one byte changed; /cutonce/NAME half of it the first time; /flaky/N/NAME
# 503 N times first; /status/CODE; /redirect?to=URL; /rangecut/NAME half of
# it the first time, and Range requests (206) answered. Each GET is logged,
# with its Range header if any. The other kinds ignore Range (200, whole).
server_py() {
	cat <<'EOF'
import os, sys, time, threading, urllib.parse
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

root, portfile, log = sys.argv[1], sys.argv[2], sys.argv[3]
port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
hits, lock = {}, threading.Lock()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        with lock:
            hits[u.path] = n = hits.get(u.path, 0) + 1
            rng = self.headers.get("Range")
            with open(log, "a") as f: f.write("GET %s%s\n" % (self.path, " Range: " + rng if rng else ""))
        parts = urllib.parse.unquote(u.path).split("/")[1:]
        kind, rest = parts[0], parts[1:]
        if kind == "status": return self.reply(int(rest[0]), b"<Error><Code>Nope</Code></Error>")
        if kind == "redirect":
            return self.reply(302, b"", [("Location", urllib.parse.parse_qs(u.query)["to"][0])])
        if kind == "flaky":
            if n <= int(rest[0]): return self.reply(503, b"busy")
            rest = rest[1:]
        path = os.path.join(root, *rest)
        if not os.path.isfile(path): return self.reply(404, b"not found")
        data = open(path, "rb").read()
        if kind == "bad": data = bytes([data[0] ^ 1]) + data[1:]
        if kind == "rangecut" and rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data): return self.reply(416, b"")
            return self.reply(206, data[start:],
                              [("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))])
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if kind in ("cutonce", "rangecut") and n == 1:
            self.wfile.write(data[: len(data) // 2]); self.wfile.flush()
            self.close_connection = True
        elif kind == "slow":
            for i in range(0, len(data), 65536):
                self.wfile.write(data[i:i + 65536]); self.wfile.flush(); time.sleep(0.2)
        else:
            self.wfile.write(data)

s = ThreadingHTTPServer(("127.0.0.1", port), H)
s.daemon_threads = True
with open(portfile + ".tmp", "w") as f: f.write(str(s.server_address[1]))
os.rename(portfile + ".tmp", portfile)
s.serve_forever()
EOF
}

# serve DIR NAME [PORT]: start a test server for DIR; its port in NAME.port
serve() {
	local d=$BATS_FILE_TMPDIR
	rm -f "$d/$2.port"
	python3 "$d/srv.py" "$1" "$d/$2.port" "$d/http.log" ${3:+"$3"} \
		</dev/null >>"$d/$2.log" 2>&1 3>&- &
	echo $! >"$d/$2.pid"
	for _ in $(seq 100); do [ -s "$d/$2.port" ] && return 0; sleep 0.05; done
	return 1
}

unserve() {
	local p=$BATS_FILE_TMPDIR/$1.pid
	[ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null
	rm -f "$p"
	return 0
}

setup_file() {
	server_py >"$BATS_FILE_TMPDIR/srv.py"
	mkdir -p "$BATS_FILE_TMPDIR/www"
	head -c 3000000 /dev/urandom >"$BATS_FILE_TMPDIR/www/big.nc"
	head -c 1000000 /dev/urandom >"$BATS_FILE_TMPDIR/www/slow.nc"
	for i in $(seq 60); do head -c $((i * 1000)) /dev/urandom >"$BATS_FILE_TMPDIR/www/s$i.nc"; done
	serve "$BATS_FILE_TMPDIR/www" main
}

teardown_file() {
	unserve main
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	export FERRY_WORKSPACE="$BATS_TEST_TMPDIR/ws"
	unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
	WWW=$BATS_FILE_TMPDIR/www
	PORT=$(cat "$BATS_FILE_TMPDIR/main.port")
	BASE=http://127.0.0.1:$PORT
	: >"$BATS_FILE_TMPDIR/http.log"
	mkdir -p data ws
	DATA=$(cd data && pwd -P)
	tenant p1 "{\"request_ttl\":1,\"file_roots\":[\"$DATA\"]}"
}

teardown() {
	unserve other
	[ -z "${bg:-}" ] || kill "$bg" 2>/dev/null || true
}

md5() { md5sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
later() { date -u -d "+${1:-3600} seconds" +%Y-%m-%dT%H:%M:%SZ; }

# file NAME URL PATH-FOR-SIZE-AND-MD5: one file object of an order
file() {
	printf '{"productId":"P1","version":1,"dataType":"RAWDATA","name":"%s","url":"%s","size":%s,"md5":"%s"}' \
		"$1" "$2" "$(size "$3")" "$(md5 "$3")"
}

# order CID EXPIRES FILE...: one ORDERED item on stdout
order() {
	local cid=$1 exp=$2 files
	shift 2
	files=$(IFS=,; echo "$*")
	printf '{"tenant":"p1","correlationId":"%s","expiresAt":"%s","request":{"correlationId":"%s"},"files":[%s],"totalSize":0}\n' \
		"$cid" "$exp" "$cid" "$files"
}

# fetch: ferry-fetch on ./in, item on ./out, responses on ./fd3, log on ./err
fetch() { ferry-fetch -v "$@" <in >out 3>fd3 2>err; }

state() { jq_sql "$FERRY_JOURNAL" "select state from request where correlation_id = '$1'"; }
gets() { grep -c "^GET $1" "$BATS_FILE_TMPDIR/http.log" || true; }
ws_of() { ls -d "$FERRY_WORKSPACE"/p1/* 2>/dev/null; }

@test "file:// sources get their real path and are FETCHED, nothing is copied" {
	head -c 5000 /dev/urandom >"data/a b.nc"
	mkdir data/sub && head -c 7 /dev/urandom >"data/sub/caf$(printf '\xc3\xa9').nc"
	ln -s "a b.nc" data/alias
	order c-1 "$(later)" \
		"$(file a.nc "file://$DATA/a%20b.nc" "data/a b.nc")" \
		"$(file c.nc "file://localhost$DATA/sub/caf%C3%A9.nc" data/sub/caf*.nc)" \
		"$(file d.nc "file://$DATA/alias" "data/a b.nc" | sed 's/}$/,"path":"\/etc\/passwd"}/')" >in
	run fetch
	assert_success
	[ ! -s fd3 ]
	[ "$(state c-1)" = FETCHED ]
	run cat out
	assert_output --partial "\"path\":\"$DATA/a b.nc\""
	assert_output --partial "\"path\":\"$DATA/sub/caf$(printf '\xc3\xa9').nc\""
	refute_output --partial /etc/passwd
	[ "$(grep -o '"path"' out | wc -l)" -eq 3 ]
	[ -z "$(find ws -type f)" ]
	grep -q 'p1/c-1: FETCHED' err
}

@test "a file:// source outside file_roots is ERROR FORBIDDEN and not read" {
	mkfifo outside.fifo            # reading it would hang the test
	head -c 10 /dev/urandom >data/ok.nc
	order c-2 "$(later)" "$(file ok.nc "file://$DATA/ok.nc" data/ok.nc)" \
		"$(file x.nc "file://$PWD/outside.fifo" data/ok.nc)" >in
	run timeout 20 ferry-fetch <in 3>fd3
	assert_success
	[ ! -s out ] || ! grep -q c-2 out
	run cat fd3
	assert_output --partial '"status":"ERROR"'
	assert_output --partial '"errorType":"FORBIDDEN"'
	assert_output --partial "file P1/x.nc is outside the tenant's file_roots"
	[ "$(state c-2)" = ERROR ]
}

@test "a symlink inside the root pointing outside is ERROR FORBIDDEN, and so is .. after decoding" {
	mkfifo outside.fifo
	echo secret >secret.nc
	ln -s ../outside.fifo data/link.nc
	ln -s .. data/up
	order c-3 "$(later)" "$(file link.nc "file://$DATA/link.nc" secret.nc)" >in
	order c-4 "$(later)" "$(file s.nc "file://$DATA/%2E%2E/secret.nc" secret.nc)" >>in
	order c-5 "$(later)" "$(file s.nc "file://$DATA/up/secret.nc" secret.nc)" >>in
	run timeout 20 ferry-fetch <in 3>fd3
	assert_success
	[ "$(grep -c '"errorType":"FORBIDDEN"' fd3)" -eq 3 ]
	grep -q "file P1/link.nc is outside" fd3
}

@test "with no file_roots no file:// source is allowed" {
	tenant p1 '{"request_ttl":1}'
	head -c 10 /dev/urandom >data/ok.nc
	order c-6 "$(later)" "$(file ok.nc "file://$DATA/ok.nc" data/ok.nc)" >in
	fetch
	grep -q '"errorType":"FORBIDDEN"' fd3
}

@test "a file:// source of another host is ERROR FORBIDDEN" {
	head -c 10 /dev/urandom >data/ok.nc
	order c-7 "$(later)" "$(file ok.nc "file://fileserver$DATA/ok.nc" data/ok.nc)" >in
	fetch
	grep -q '"errorType":"FORBIDDEN"' fd3
}

@test "a file:// source of the wrong size is ERROR INTERNAL_ERROR naming the file" {
	head -c 10 /dev/urandom >data/ok.nc
	order c-8 "$(later)" "$(file ok.nc "file://$DATA/ok.nc" data/ok.nc | sed 's/"size":10/"size":11/')" >in
	fetch
	run cat fd3
	assert_output --partial '"errorType":"INTERNAL_ERROR"'
	assert_output --partial 'file P1/ok.nc does not have the 11 bytes the order says'
	refute_output --partial '10 bytes'
	grep -q 'P1/ok.nc: 10 bytes, the order says 11' err     # the size found: in the log
}

@test "a download cut in the middle goes on with a Range request for the rest" {
	order c-rng "$(later)" "$(file big.nc "$BASE/rangecut/big.nc" "$WWW/big.nc")" >in
	run fetch
	assert_success
	[ "$(state c-rng)" = FETCHED ]
	run grep -c 'GET /rangecut/big.nc' "$BATS_FILE_TMPDIR/http.log"
	assert_output 2
	from=$(sed -n 's|^GET /rangecut/big.nc Range: bytes=\([0-9]*\)-$|\1|p' "$BATS_FILE_TMPDIR/http.log")
	[ "$from" -gt 0 ] && [ "$from" -lt 3000000 ]
	grep -q "P1/big.nc: $from of 3000000 bytes already there; asking for the rest" err
	cmp "$(ws_of)/files/0-big.nc" "$WWW/big.nc"
}

@test "a missing file:// source or a directory is ERROR INTERNAL_ERROR naming the file" {
	head -c 10 /dev/urandom >data/ok.nc
	mkdir data/dir.nc
	order c-9 "$(later)" "$(file gone.nc "file://$DATA/gone.nc" data/ok.nc)" >in
	order c-10 "$(later)" "$(file dir.nc "file://$DATA/dir.nc" data/ok.nc)" >>in
	fetch
	run cat fd3
	assert_line --partial 'file P1/gone.nc not found'
	assert_line --partial 'file P1/dir.nc is not a regular file'
	refute_output --partial "$DATA"        # no server paths in responses
}

@test "an http source with the right md5 is FETCHED; its copy in the workspace has that md5" {
	order c-11 "$(later)" "$(file big.nc "$BASE/f/big.nc" "$WWW/big.nc" | sed 's/"md5":"\([0-9a-f]*\)"/"md5":"\U\1"/')" >in
	run fetch
	assert_success
	[ "$(state c-11)" = FETCHED ]
	path=$(grep -o '"path":"[^"]*"' out | cut -d'"' -f4)
	case "$path" in "$FERRY_WORKSPACE"/p1/*/files/0-big.nc) ;; *) false ;; esac
	[ "$(md5 "$path")" = "$(md5 "$WWW/big.nc")" ]
	[ "$(jq_sql "$FERRY_JOURNAL" "select bytes from event where state = 'FETCHED'")" = 3000000 ]
}

@test "sixty http files pass through three transfers at a time, each md5-verified" {
	fs=()
	for i in $(seq 60); do fs+=("$(file "s$i.nc" "$BASE/f/s$i.nc" "$WWW/s$i.nc")"); done
	order c-12 "$(later)" "${fs[@]}" >in
	run fetch -p 3
	assert_success
	[ "$(state c-12)" = FETCHED ]
	[ "$(grep -o '"path"' out | wc -l)" -eq 60 ]
	for i in 1 30 60; do cmp "$(ws_of)/files/$((i - 1))-s$i.nc" "$WWW/s$i.nc"; done
	[ "$(gets /f/s)" -eq 60 ]
}

@test "catalog names are sanitized: nothing is written outside the workspace" {
	order c-13 "$(later)" "$(file '../../../evil/x.nc' "$BASE/f/s1.nc" "$WWW/s1.nc")" >in
	run fetch
	assert_success
	[ ! -e "$BATS_TEST_TMPDIR/evil" ] && [ ! -e "$FERRY_WORKSPACE/evil" ]
	[ -f "$(ws_of)/files/0-evil_x.nc" ]
}

@test "a wrong md5 is ERROR INTERNAL_ERROR after 3 downloads naming the file; the workspace is removed" {
	order c-14 "$(later)" "$(file big.nc "$BASE/bad/big.nc" "$WWW/big.nc")" >in
	fetch
	run cat fd3
	assert_output --partial '"errorType":"INTERNAL_ERROR"'
	assert_output --partial "checksum mismatch for P1/big.nc after 3 attempts: expected $(md5 "$WWW/big.nc"), got "
	[ "$(gets /bad/big.nc)" -eq 3 ]
	[ -z "$(ws_of)" ]
}

@test "a host not in allowed_hosts is ERROR FORBIDDEN and nothing is downloaded" {
	tenant p1 '{"request_ttl":1,"allowed_hosts":["LOCALHOST"]}'
	order c-15 "$(later)" "$(file s1.nc "http://localhost:$PORT/f/s1.nc" "$WWW/s1.nc")" \
		"$(file s2.nc "$BASE/f/s2.nc" "$WWW/s2.nc")" >in
	fetch
	run cat fd3
	assert_output --partial '"errorType":"FORBIDDEN"'
	assert_output --partial "file P1/s2.nc: host 127.0.0.1 is not in the tenant's allowed_hosts"
	[ ! -s "$BATS_FILE_TMPDIR/http.log" ]
}

@test "a tenant without allowed_hosts, or with [], fetches from no host: ERROR FORBIDDEN" {
	local n=0 hosts
	for hosts in '' ',"allowed_hosts":[]'; do
		n=$((n + 1))
		tenant_as_is p1 "{\"request_ttl\":1,\"users\":[\"*\"]$hosts}"
		order "c-18-$n" "$(later)" "$(file s1.nc "$BASE/f/s1.nc" "$WWW/s1.nc")" >in
		fetch
		run cat fd3
		assert_output --partial '"errorType":"FORBIDDEN"'
		assert_output --partial "file P1/s1.nc: host 127.0.0.1 is not in the tenant's allowed_hosts (\\\"*\\\" allows any host)"
	done
	[ ! -s "$BATS_FILE_TMPDIR/http.log" ]
}

@test "a redirect to a host not allowed is ERROR FORBIDDEN; its target is never requested" {
	tenant p1 '{"request_ttl":1,"allowed_hosts":["127.0.0.1"]}'
	order c-16 "$(later)" "$(file s1.nc "$BASE/redirect?to=http://localhost:$PORT/f/s1.nc" "$WWW/s1.nc")" >in
	fetch
	run cat fd3
	assert_output --partial '"errorType":"FORBIDDEN"'
	assert_output --partial "redirected to a host not in the tenant's allowed_hosts"
	[ "$(gets /redirect)" -eq 1 ] && [ "$(gets /f/)" -eq 0 ]
}

@test "redirects between allowed hosts are followed" {
	tenant p1 '{"request_ttl":1,"allowed_hosts":["127.0.0.1","localhost"]}'
	order c-17 "$(later)" "$(file s1.nc "$BASE/redirect?to=http://localhost:$PORT/f/s1.nc" "$WWW/s1.nc")" >in
	run fetch
	assert_success
	[ "$(state c-17)" = FETCHED ]
	[ "$(gets /f/s1.nc)" -eq 1 ]
}

@test "a 404 is ERROR INTERNAL_ERROR at once, naming the file and the status" {
	order c-18 "$(later)" "$(file s1.nc "$BASE/f/nothere.nc" "$WWW/s1.nc")" >in
	SECONDS=0
	fetch
	[ "$SECONDS" -lt 5 ]
	grep -q '"errorType":"INTERNAL_ERROR"' fd3
	grep -q 'unable to fetch P1/s1.nc: HTTP 404' fd3
	[ "$(gets /f/nothere.nc)" -eq 1 ]
}

@test "503s are retried with backoff until the file comes" {
	order c-19 "$(later)" "$(file s2.nc "$BASE/flaky/2/s2.nc" "$WWW/s2.nc")" >in
	SECONDS=0
	run fetch
	assert_success
	[ "$(state c-19)" = FETCHED ]
	[ "$SECONDS" -ge 3 ]                  # waited 1 s, then 2 s
	[ "$(gets /flaky/2/s2.nc)" -eq 3 ]
	grep -q 'warning: p1/c-19: P1/s2.nc: HTTP 503; retry in 1 s' err
	grep -q 'retry in 2 s' err
}

@test "a body cut short is downloaded again (a server that answers a Range with all of it: from the start)" {
	order c-20 "$(later)" "$(file big.nc "$BASE/cutonce/big.nc" "$WWW/big.nc")" >in
	run fetch
	assert_success
	[ "$(state c-20)" = FETCHED ]
	[ "$(gets /cutonce/big.nc)" -eq 2 ]
	grep -q '^GET /cutonce/big.nc Range: bytes=[0-9]*-$' "$BATS_FILE_TMPDIR/http.log"
	cmp "$(ws_of)/files/0-big.nc" "$WWW/big.nc"
}

@test "a server down, then up, is retried and the file FETCHED" {
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	order c-21 "$(later)" "$(file s3.nc "http://127.0.0.1:$port/f/s3.nc" "$WWW/s3.nc")" >in
	ferry-fetch -v <in >out 3>fd3 2>err &
	bg=$!
	sleep 2
	serve "$WWW" other "$port"
	wait "$bg"
	bg=
	[ "$(state c-21)" = FETCHED ]
	grep -q "Couldn't connect to server; retry in" err
}

@test "an expired request is ERROR EXPIRED" {
	order c-22 2020-01-01T00:00:00.000Z "$(file s1.nc "$BASE/f/s1.nc" "$WWW/s1.nc")" >in
	fetch
	run cat fd3
	assert_output --partial '"errorType":"EXPIRED"'
	assert_output --partial "The request date has reached the expiration limit '2020-01-01T00:00:00.000Z'"
	[ ! -s "$BATS_FILE_TMPDIR/http.log" ]
}

@test "the deadline ends transfers in flight and retries with ERROR EXPIRED" {
	exp=$(later 5)
	order c-23 "$(later 2)" "$(file slow.nc "$BASE/slow/slow.nc" "$WWW/slow.nc")" >in
	order c-24 "$exp" "$(file s1.nc "$BASE/status/503" "$WWW/s1.nc")" >>in
	SECONDS=0
	fetch
	[ "$SECONDS" -le 9 ]
	run cat fd3
	assert_line --index 0 --partial '"errorType":"EXPIRED"'
	assert_line --index 1 --partial "The request date has reached the expiration limit '${exp%Z}.000Z'"
	[ "$(state c-23)" = ERROR ] && [ "$(state c-24)" = ERROR ]
	[ "$(gets /slow/slow.nc)" -eq 1 ] && [ "$(gets /status/503)" -ge 2 ]
	[ -z "$(ws_of)" ]
}

@test "SIGTERM mid-download leaves the request FETCHING with its progress; the next start fetches it" {
	order c-25 "$(later)" "$(file slow.nc "$BASE/slow/slow.nc" "$WWW/slow.nc")" >in
	ferry-fetch -v <in >out 3>fd3 2>err &
	bg=$!
	# mid-download: some bytes journaled (up to 30 s on a loaded machine)
	for _ in $(seq 300); do
		done_=$(jq_sql "$FERRY_JOURNAL" "select bytes_done || '/' || bytes_total from request" 2>/dev/null || true)
		[ "${done_%/*}" -gt 0 ] 2>/dev/null && break
		sleep 0.1
	done
	kill -TERM "$bg"
	rc=0
	wait "$bg" || rc=$?
	bg=
	[ "$rc" -eq 0 ]
	[ "$(state c-25)" = FETCHING ]
	[ "${done_%/*}" -gt 0 ] && [ "${done_#*/}" -eq 1000000 ]
	[ ! -s out ]
	run ferry-fetch -v </dev/null 3>fd3
	assert_success
	assert_output --partial '"correlationId":"c-25"'
	assert_output --partial 'took back 1 interrupted request'
	[ "$(state c-25)" = FETCHED ]
}

@test "a file already in the workspace with the right md5 is not downloaded again" {
	order c-26 "$(later)" "$(file big.nc "$BASE/f/big.nc" "$WWW/big.nc")" >in
	mkdir -p ws && ferry-fetch <in >/dev/null 3>&-
	d=$(ws_of)
	jq_sql "$FERRY_JOURNAL" "update request set state = 'ORDERED'"
	run ferry-fetch -v </dev/null 3>&-
	assert_success
	assert_output --partial '1 remote (1 already there) files, 0 bytes downloaded'
	[ "$(gets /f/big.nc)" -eq 1 ]
	[ "$(ws_of)" = "$d" ]
}

@test "items without files, or with a file lacking its md5, are ERROR INTERNAL_ERROR" {
	printf '{"tenant":"p1","correlationId":"c-27","expiresAt":"%s","request":{}}\n' "$(later)" >in
	order c-28 "$(later)" '{"productId":"P1","name":"a","url":"http://127.0.0.1/a","size":1}' >>in
	order c-29 "$(later)" '{"productId":"P1","name":"a","url":"ftp://127.0.0.1/a","size":1,"md5":"0123456789abcdef0123456789abcdef"}' >>in
	fetch
	run cat fd3
	assert_line --partial 'the item has no files array'
	assert_line --partial 'file 1 of the order has no md5 of 32 hex digits'
	assert_line --partial 'file 1 of the order has a URL that is not file, http, https or s3'
}

@test "-h prints the usage; bad flags exit 100" {
	run ferry-fetch -h
	assert_success
	assert_output 'usage: ferry-fetch [-hv] [-c workers] [-j journal] [-t tenants] [-w workspace] [-p parallel]'
	run ferry-fetch -p 0 </dev/null
	[ "$status" -eq 100 ]
	run ferry-fetch -x </dev/null
	[ "$status" -eq 100 ]
}
