#!/usr/bin/env bats
# ferry-journal on journals written by the real stages (ferry-request-validate
# fed files of items, no RabbitMQ): every command's text and NDJSON output,
# replay round trips, requests set aside and retried or cancelled by hand,
# the expiry sweeper and its lateness, prune, metrics checked by a strict
# exposition-format parser, check, and bad usage.

load lib

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db"
	export FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	export FERRY_WORKSPACE="$BATS_TEST_TMPDIR/ws"
	tenant p1 '{"request_ttl":2,"users":["ana@example.org"]}'
	tenant open '{"request_ttl":1}'
	tenant fast '{"request_ttl":0.0003}'    # about 1.08 s
}

# a sweeper left running by a failed test
teardown() {
	[ -s sweeper.pid ] && kill "$(cat sweeper.pid)" 2>/dev/null
	return 0
}

now() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }

# req TENANT CID USER [PRIORITY]: an item received now
req() {
	printf '{"tenant":"%s","correlationId":"%s","receivedAt":"%s","headers":{"priority":%s,"app_id":"client"},"request":{"correlationId":"%s","targetDelivery":"s3","order":{"queries":["*"],"user":"%s"}}}\n' \
		"$1" "$2" "$(now)" "${4:-0}" "$2" "$3"
}

# a journal with two GRANTED, a DENIED FORBIDDEN and a DENIED INVALID_CONTENT
build() {
	{
		req p1 c-1 ana@example.org 3
		req p1 c-2 eve@example.org
		req p1 c-3 ana@example.org
		printf '{"tenant":"open","correlationId":"o-1","receivedAt":"%s","headers":{},"request":{"correlationId":"o-1","order":{"queries":[],"user":"u"}}}\n' "$(now)"
	} >items
	ferry-request-validate <items 3>verdicts >granted
}

# py SCRIPT [ARGS...]: run python3 on stdin
py() { python3 -c "$@"; }

@test "list shows every request newest first with state and errorType; -J one object a line" {
	build
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET received_at = received_at - 1000 * id"
	run ferry-journal list
	assert_success
	assert_line --index 0 --regexp '^RECEIVED +UPDATED +STATE +ERROR +TENANT +CORRELATION-ID$'
	assert_line --index 1 --regexp ' GRANTED +- +p1 +c-1$'
	assert_line --index 2 --regexp ' DENIED +FORBIDDEN +p1 +c-2$'
	assert_line --index 4 --regexp ' DENIED +INVALID_CONTENT +open +o-1$'
	[ "${#lines[@]}" -eq 5 ]
	ferry-journal -J list >out
	run py 'import json,sys
for l in open("out"): o = json.loads(l); print(o["tenant"], o["correlationId"], o["state"], o.get("errorType", "-"), "expiresAt" in o)'
	assert_output $'p1 c-1 GRANTED - True\np1 c-2 DENIED FORBIDDEN False\np1 c-3 GRANTED - True\nopen o-1 DENIED INVALID_CONTENT False'
}

@test "list filters by tenant, state, since (a date, an instant or an age) and count" {
	build
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET received_at = received_at - 3 * 86400000 WHERE correlation_id = 'c-3'"
	run ferry-journal -J list -t open
	assert_output --partial '"o-1"'
	[ "${#lines[@]}" -eq 1 ]
	run ferry-journal -J list -s GRANTED
	[ "${#lines[@]}" -eq 2 ]
	run ferry-journal -J list -S 2d
	[ "${#lines[@]}" -eq 3 ]
	refute_output --partial '"c-3"'
	run ferry-journal -J list -S "$(date -u -d '-1 day' +%Y-%m-%d)"
	[ "${#lines[@]}" -eq 3 ]
	run ferry-journal -J list -S "$(date -u -d '-4 day' +%Y-%m-%dT%H:%M:%SZ)" -t p1
	[ "${#lines[@]}" -eq 3 ]
	run ferry-journal -J list -n 1 -s DENIED
	[ "${#lines[@]}" -eq 1 ]
	run ferry-journal list -S yesterday
	assert_failure 100
	assert_output --partial 'yesterday: not a date'
	run ferry-journal list -s NOPE
	assert_failure 100
	assert_output --partial 'NOPE: not a state'
}

@test "show prints the request, every event with its stage and duration, and its responses" {
	build
	run ferry-journal show p1 c-1
	assert_success
	assert_line --index 0 'request     p1/c-1'
	assert_line --index 1 'state       GRANTED'
	assert_line --regexp '^expires     20..-..-..T..:..:..\....Z$'
	assert_line --regexp '^AT +STAGE +STATE +TOOK +BYTES$'
	assert_line --regexp '^20.* validate +RECEIVED +- +-$'
	assert_line --regexp '^20.* validate +GRANTED +[0-9]+ms +-$'
	assert_line --regexp '^20.* unsent +\{"correlationId":"c-1","status":"GRANTED"\}$'
	sqlite3 "$FERRY_JOURNAL" "UPDATE outbox SET sent_at = 1795000000000"
	run ferry-journal show p1 c-2
	assert_line --regexp 'Z +2026-11-18T.*Z +\{"correlationId":"c-2","status":"DENIED"'
}

@test "show -J is one object holding the events with their items and the responses" {
	build
	ferry-journal -J show p1 c-1 >out
	[ "$(wc -l <out)" -eq 1 ]
	run py 'import json
o = json.load(open("out"))
print(o["tenant"], o["correlationId"], o["state"])
for e in o["events"]: print(e["stage"], e["state"], "seconds" in e, e["item"]["correlationId"])
for r in o["responses"]: print(r["sent"], r["body"]["status"], r["headers"]["regards.tenant"], r["headers"]["priority"])'
	assert_output $'p1 c-1 GRANTED\nvalidate RECEIVED False c-1\nvalidate GRANTED True c-1\nFalse GRANTED p1 3'
}

@test "show, item and status name an unknown request and exit 1" {
	build
	run ferry-journal show p1 nope
	assert_failure 1
	assert_output --partial 'p1/nope: no such request'
	run ferry-journal -J show nope c-1
	assert_failure 1
	run ferry-journal item -s validate p1 nope
	assert_failure 1
	assert_output --partial 'no such request'
}

@test "status shows in-flight requests with stage, bytes done/total, rate, age and expiry" {
	build
	now_ms=$(($(date +%s%3N)))
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET state = 'FETCHING', claimed_by = 'fetch:1',
		claimed_at = $now_ms - 4000, bytes_done = 4000000, bytes_total = 10000000
		WHERE correlation_id = 'c-3'"
	run ferry-journal status
	assert_success
	assert_line --index 0 --regexp '^STATE +STAGE +PROGRESS +RATE +AGE +EXPIRES +REQUEST$'
	assert_line --regexp '^FETCHING +fetch +4\.0 MB/10\.0 MB +(1\.0 MB|[5-9][0-9][0-9]\.[0-9] kB)/s +[0-9.]+m?s +1h59m +p1/c-3$'
	assert_line --regexp '^GRANTED +order +- +- +.* +p1/c-1$'
	refute_output --partial 'c-2'
	refute_output --partial 'o-1'
	[ "${#lines[@]}" -eq 3 ]
	ferry-journal -J status >out
	run py 'import json
for l in open("out"):
    o = json.loads(l)
    rate = o.get("bytesPerSecond")
    print(o["correlationId"], o["stage"], o["busy"], o.get("bytesDone"), o.get("bytesTotal"),
          rate if rate is None else 500000 < rate <= 1000000, 7000 < o["expiresInSeconds"] <= 7200)'
	assert_output $'c-3 fetch True 4000000 10000000 True True\nc-1 order False None None None True'
}

# set_aside CID: the request waits in ORDERED after 2 temporary failures,
# its next attempt a minute from now, as ferry-fetch's worker leaves it
set_aside() {
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET state = 'ORDERED', attempts = 2,
		last_error = 'fetch: connection refused', next_attempt_at = $(($(date +%s%3N) + 60000))
		WHERE correlation_id = '$1';
		INSERT INTO counter (name, n) VALUES ('retries', 2)
		ON CONFLICT (name) DO UPDATE SET n = n + 2"
}

@test "status and show name the attempts, last error and next try of a request set aside" {
	build
	set_aside c-1
	run ferry-journal status
	assert_success
	assert_line --regexp '^ORDERED +fetch +- +- +.* +p1/c-1$'
	assert_line --regexp '^ {12}set aside 2 times, next try 20..-..-..T..:..:..Z \(in [0-9.]+s\): fetch: connection refused$'
	refute_line --regexp '^ +set aside .*p1/c-3'
	[ "${#lines[@]}" -eq 4 ]
	run ferry-journal show p1 c-1
	assert_line 'attempts    2'
	assert_line 'last error  fetch: connection refused'
	assert_line --regexp '^next try    20..-..-..T..:..:..\....Z$'
	run ferry-journal show p1 c-3
	assert_line 'attempts    0'
	assert_line 'last error  -'
	assert_line 'next try    -'
	ferry-journal -J status >out
	run jq -c 'select(.correlationId == "c-1") | [.attempts, .lastError, (.nextAttemptAt | test("^20.*Z$")), (.nextAttemptInSeconds | 55 < . and . <= 60)]' out
	assert_output '[2,"fetch: connection refused",true,true]'
	run jq -c 'select(.correlationId == "c-3") | [.attempts, .lastError, .nextAttemptAt]' out
	assert_output '[null,null,null]'
	run bash -c 'ferry-journal -J show p1 c-1 | jq -c "[.attempts, .lastError, (.nextAttemptAt | test(\"^20.*Z\$\"))]"'
	assert_output '[2,"fetch: connection refused",true]'
}

@test "retry makes a request set aside due now and exits 0; an ended, busy or unknown one exits 1" {
	build
	set_aside c-1
	run ferry-journal retry p1 c-1
	assert_success
	assert_output 'p1/c-1: ORDERED: due now for fetch (set aside 2 times)'
	run sqlite3 "$FERRY_JOURNAL" "select state, attempts, next_attempt_at, last_error from request where correlation_id = 'c-1'"
	assert_output 'ORDERED|2|0|fetch: connection refused'
	run ferry-journal status
	assert_line --regexp '^ {12}set aside 2 times, next try now: fetch: connection refused$'
	run ferry-journal -J retry p1 c-1
	assert_success
	echo "$output" | jq -e '.state == "ORDERED" and .stage == "fetch" and .attempts == 2 and has("nextAttemptAt") == false'
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET state = 'DONE' WHERE correlation_id = 'c-3'"
	run ferry-journal retry p1 c-3
	assert_failure 1
	assert_output --partial 'p1/c-3: DONE: ended; nothing to try again'
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET state = 'FETCHING' WHERE correlation_id = 'c-1'"
	run ferry-journal retry p1 c-1
	assert_failure 1
	assert_output --partial 'p1/c-1: FETCHING: a stage is working on it'
	run ferry-journal retry p1 nope
	assert_failure 1
	assert_output --partial 'p1/nope: no such request'
}

@test "cancel ends a live request ERROR INTERNAL_ERROR: a REGARDS ERROR response with its headers, workspace removed" {
	build
	set_aside c-1
	dir=$(python3 -c 'import hashlib; print(hashlib.blake2b(b"c-1", digest_size=16).hexdigest())')
	mkdir -p "$FERRY_WORKSPACE/p1/$dir/sub" && touch "$FERRY_WORKSPACE/p1/$dir/sub/f"
	mkdir -p "$FERRY_WORKSPACE/p1/other"
	run bash -c 'ferry-journal cancel -m "the archive is being moved; send it again tomorrow" p1 c-1 3>fd3'
	assert_success
	assert_output 'p1/c-1: ERROR INTERNAL_ERROR (was ORDERED): the archive is being moved; send it again tomorrow'
	[ ! -e "$FERRY_WORKSPACE/p1/$dir" ]
	[ -d "$FERRY_WORKSPACE/p1/other" ]
	run sqlite3 "$FERRY_JOURNAL" "select state, error_type from request where correlation_id = 'c-1'"
	assert_output 'ERROR|INTERNAL_ERROR'
	sqlite3 "$FERRY_JOURNAL" "select o.body from outbox o join request r on r.id = o.request_id where r.correlation_id = 'c-1' order by o.id desc limit 1" >body
	jq -e '.correlationId == "c-1" and .status == "ERROR" and .errorType == "INTERNAL_ERROR" and
		.message == "the archive is being moved; send it again tomorrow" and (keys | length) == 4' body
	run jq -c 'keys_unsorted' body
	assert_output '["correlationId","status","errorType","message"]'
	cmp body fd3
	run sqlite3 "$FERRY_JOURNAL" "select o.headers, o.sent_at is null from outbox o join request r on r.id = o.request_id where r.correlation_id = 'c-1' order by o.id desc limit 1"
	assert_output '{"regards.tenant":"p1","priority":3,"app_id":"client"}|1'
	run bash -c 'ferry-journal -J cancel p1 c-3 3>/dev/null'
	assert_success
	echo "$output" | jq -e '.state == "ERROR" and .errorType == "INTERNAL_ERROR" and
		.message == "cancelled by an operator" and .previousState == "GRANTED"'
	run ferry-journal show p1 c-3
	assert_line --regexp '^20.* sweep +ERROR +- +-$'
	assert_line --regexp 'unsent +\{"correlationId":"c-3","status":"ERROR","errorType":"INTERNAL_ERROR","message":"cancelled by an operator"\}$'
	run ferry-journal check
	assert_success
}

@test "cancel of an ended or unknown request exits 1 and changes nothing" {
	build
	before=$(sqlite3 "$FERRY_JOURNAL" "select count(*) from outbox")
	run ferry-journal cancel p1 c-2
	assert_failure 1
	assert_output --partial 'p1/c-2: DENIED: ended already; nothing to cancel'
	run ferry-journal cancel p1 nope
	assert_failure 1
	assert_output --partial 'p1/nope: no such request'
	run sqlite3 "$FERRY_JOURNAL" "select count(*) from outbox"
	assert_output "$before"
	run ferry-journal cancel -m '' p1 c-1
	assert_failure 100
	assert_output --partial 'an empty message'
	run sqlite3 "$FERRY_JOURNAL" "select state from request where correlation_id = 'c-1'"
	assert_output GRANTED
}

@test "item -s validate, replayed into ferry-request-validate on a scratch journal, gets the same verdict" {
	build
	for cid in c-1 c-2; do
		ferry-journal item -s validate p1 "$cid" >item
		[ "$(wc -l <item)" -eq 1 ]
		cmp item <(grep "\"$cid\"" items)
		ferry-journal item -s validate p1 "$cid" |
			ferry-request-validate -j scratch.db 3>replayed >/dev/null
		run cat replayed
		assert_output "$(grep "\"$cid\"" verdicts)"
	done
	run sqlite3 scratch.db "select correlation_id, state from request order by id"
	assert_output $'c-1|GRANTED\nc-2|DENIED'
}

@test "item -s order is the GRANTED item with its expiresAt; a stage never reached exits 1" {
	build
	run ferry-journal item -s order p1 c-1
	assert_success
	assert_output "$(grep '"c-1"' granted)"
	assert_output --partial '"expiresAt":'
	run ferry-journal item -s fetch p1 c-1
	assert_failure 1
	assert_output --partial 'p1/c-1: never waited for this stage'
	run ferry-journal item -s order p1 c-2
	assert_failure 1
}

@test "pending -s order prints the waiting GRANTED items, which ferry-order-bridge takes" {
	mkdir -p data/P1
	printf 'one' >data/P1/a.nc
	ferry-catalog -c cat.db init
	ferry-catalog -c cat.db scan -t coastline data >/dev/null
	tenant p1 "{\"request_ttl\":2,\"users\":[\"ana@example.org\"],\"catalog\":\"$PWD/cat.db\"}"
	build
	ferry-journal pending -s order >pending
	run py 'import json
for l in open("pending"): o = json.loads(l); print(o["correlationId"], "expiresAt" in o)'
	assert_output $'c-1 True\nc-3 True'
	run ferry-journal pending -s fetch
	assert_success
	assert_output ''
	ferry-journal pending -s order | ferry-order-bridge -j scratch.db >ordered 3>/dev/null
	run py 'import json
for l in sorted(open("ordered")): o = json.loads(l); print(o["correlationId"], [f["name"] for f in o["files"]])'
	assert_output $'c-1 [\'a.nc\']\nc-3 [\'a.nc\']'
}

@test "expire ends an expired request: ERROR EXPIRED with the REGARDS message and its headers, workspace removed" {
	req fast e-1 u 7 | ferry-request-validate >/dev/null 3>/dev/null
	req p1 c-1 ana@example.org | ferry-request-validate >/dev/null 3>/dev/null
	sleep 1.2
	run bash -c 'ferry-journal expire 3>fd3'
	assert_success
	assert_output --regexp '^fast/e-1: ERROR EXPIRED: expired at 20.*Z, ended [0-9.]+m?s late$'
	expires=$(sqlite3 "$FERRY_JOURNAL" "select strftime('%Y-%m-%dT%H:%M:%fZ', expires_at / 1000.0, 'unixepoch') from request where correlation_id = 'e-1'")
	run cat fd3
	assert_output "{\"correlationId\":\"e-1\",\"status\":\"ERROR\",\"errorType\":\"EXPIRED\",\"message\":\"The request date has reached the expiration limit '$expires'\"}"
	run sqlite3 "$FERRY_JOURNAL" "select r.state, r.error_type, o.headers from request r join outbox o on o.request_id = r.id where r.correlation_id = 'e-1' order by o.id desc limit 1"
	assert_output 'ERROR|EXPIRED|{"regards.tenant":"fast","priority":7,"app_id":"client"}'
	run sqlite3 "$FERRY_JOURNAL" "select state from request where correlation_id = 'c-1'"
	assert_output GRANTED
	run ferry-journal expire     # nothing left: terminal requests are never ended twice
	assert_output ''
	run ferry-journal check
	assert_success
}

@test "expire removes the expired request's workspace directory" {
	req fast e-2 u | ferry-request-validate >/dev/null 3>/dev/null
	sleep 1.2
	# the directory the stages use: $FERRY_WORKSPACE/<tenant>/<BLAKE2b-128 of cid>
	dir=$(python3 -c 'import hashlib,sys; print(hashlib.blake2b(b"e-2", digest_size=16).hexdigest())')
	mkdir -p "$FERRY_WORKSPACE/fast/$dir/sub" && touch "$FERRY_WORKSPACE/fast/$dir/sub/f"
	mkdir -p "$FERRY_WORKSPACE/fast/other"
	ferry-journal expire >/dev/null 3>/dev/null
	[ ! -e "$FERRY_WORKSPACE/fast/$dir" ]
	[ -d "$FERRY_WORKSPACE/fast/other" ]
}

@test "expire -f ends requests within 5 s of their expiry and exits 0 on SIGTERM" {
	ferry-journal -J expire -f >swept 2>err 3>/dev/null &
	pid=$!
	echo "$pid" >sweeper.pid
	{ req fast f-1 u; req fast f-2 u; } | ferry-request-validate >/dev/null 3>/dev/null
	sleep 0.5
	req fast f-3 u | ferry-request-validate >/dev/null 3>/dev/null
	for _ in $(seq 100); do
		[ "$(wc -l <swept)" -ge 3 ] && break
		sleep 0.1
	done
	kill -TERM "$pid"
	t0=$(date +%s%3N)
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	[ $(($(date +%s%3N) - t0)) -lt 2000 ]
	run py 'import json
late = [json.loads(l)["lateMs"] for l in open("swept")]
print(len(late), all(0 <= x < 5000 for x in late), "max lateness %d ms" % max(late))'
	echo "# $output" >&3
	assert_output --regexp '^3 True max lateness [0-9]+ ms$'
	run sqlite3 "$FERRY_JOURNAL" "select count(*) from request where state = 'ERROR' and error_type = 'EXPIRED'"
	assert_output 3
	[ ! -s err ]
}

@test "expire -f keeps sweeping while the journal is locked for a while" {
	req fast l-1 u | ferry-request-validate >/dev/null 3>/dev/null
	ferry-journal -J expire -f -i 200ms >swept 2>err 3>/dev/null &
	pid=$!
	echo "$pid" >sweeper.pid
	# hold the write lock past the expiry; the sweeper waits (busy timeout)
	sqlite3 -cmd '.timeout 5000' "$FERRY_JOURNAL" "BEGIN IMMEDIATE; SELECT 1;" ".shell sleep 2" "COMMIT;" >/dev/null
	for _ in $(seq 80); do
		[ -s swept ] && break
		sleep 0.1
	done
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	grep -q '"l-1"' swept
}

@test "expire rejects a bad interval with 100" {
	run ferry-journal expire -i 0
	assert_failure 100
	run ferry-journal expire -i soon
	assert_failure 100
	assert_output --partial 'soon'
}

@test "prune -o removes old ended requests whose responses are sent; keeps live, recent and unsent ones" {
	build
	old=$(($(date +%s%3N) - 40 * 86400000))
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET updated_at = $old;
		UPDATE outbox SET sent_at = $old WHERE request_id <> (SELECT id FROM request WHERE correlation_id = 'o-1')"
	req open o-2 u | ferry-request-validate >/dev/null 3>/dev/null    # recent, GRANTED
	run ferry-journal prune -o 30d
	assert_success
	assert_output '1 request pruned'      # c-2: DENIED, sent; o-1 is DENIED but unsent
	run sqlite3 "$FERRY_JOURNAL" "select correlation_id from request order by id"
	assert_output $'c-1\nc-3\no-1\no-2'
	run sqlite3 "$FERRY_JOURNAL" "select count(*) from event e where not exists (select 1 from request r where r.id = e.request_id)"
	assert_output 0
	run ferry-journal -J prune -o 30d
	assert_output --regexp '^\{"pruned":0,"updatedBefore":"20.*Z"\}$'
	sqlite3 "$FERRY_JOURNAL" "UPDATE outbox SET sent_at = $old"
	run ferry-journal prune -o 1h
	assert_output '1 request pruned'
	run ferry-journal prune
	assert_failure 100
	assert_output --partial 'usage: ferry-journal prune -o age'
	run ferry-journal prune -o -3d
	assert_failure 100
}

@test "prune deletes thousands of requests in batches" {
	old=$(($(date +%s%3N) - 40 * 86400000))
	ferry-journal expire >/dev/null 3>/dev/null    # creates the journal
	sqlite3 "$FERRY_JOURNAL" "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2600)
		INSERT INTO request (tenant, correlation_id, fingerprint, state, received_at, updated_at)
		SELECT 'p1', 'b-' || i, 'fp', 'DONE', $old, $old FROM n;
		INSERT INTO event (request_id, stage, state, at) SELECT id, 's3-put', 'DONE', $old FROM request;
		INSERT INTO outbox (request_id, body, created_at, sent_at) SELECT id, '{}', $old, $old FROM request;"
	run ferry-journal prune -o 7d
	assert_output '2600 requests pruned'
	run sqlite3 "$FERRY_JOURNAL" "select (select count(*) from request) + (select count(*) from event) + (select count(*) from outbox)"
	assert_output 0
}

@test "stats counts per state and errorType, recent requests, and the unsent outbox" {
	build
	run ferry-journal stats
	assert_success
	assert_line --regexp '^requests +4$'
	assert_line --regexp '^  GRANTED +2$'
	assert_line --regexp '^  DENIED +2$'
	assert_line --regexp '^  FORBIDDEN +1$'
	assert_line --regexp '^  INVALID_CONTENT +1$'
	assert_line --regexp '^received last hour +4$'
	assert_line --regexp '^outbox unsent +4$'
	assert_line --regexp '^oldest unsent +[0-9.]+m?s$'
	ferry-journal -J stats >out
	run py 'import json
o = json.load(open("out"))
print(o["requests"], o["states"], o["errorTypes"], o["receivedLastDay"], o["outboxUnsent"], o["oldestUnsentSeconds"] >= 0, o["schemaVersion"])'
	assert_output "4 {'GRANTED': 2, 'DENIED': 2} {'INVALID_CONTENT': 1, 'FORBIDDEN': 1} 4 4 True 8"
	sqlite3 "$FERRY_JOURNAL" "UPDATE outbox SET sent_at = 1"
	run ferry-journal stats
	assert_line --regexp '^outbox unsent +0$'
	assert_line --regexp '^oldest unsent +-$'
}

# prom_check FILE: a strict reader of the Prometheus text exposition format
# (0.0.4): HELP/TYPE before samples, families contiguous, names and labels
# well-formed, values numbers, histograms with cumulative le buckets ending
# in +Inf = _count and a _sum. Prints "families N samples N".
prom_check() {
	python3 - "$1" <<'EOF'
import re, sys
name_re = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
label_re = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(r'^(%s)(?:\{(%s(?:,%s)*)?,?\})? (\S+)(?: -?\d+)?$' % (name_re, label_re, label_re))
types, helps, done, samples, cur = {}, set(), set(), 0, None
hist = {}
def fail(n, why): sys.exit("line %d: %s" % (n, why))
def number(n, v):
    if v in ("+Inf", "-Inf", "NaN"): return float(v.replace("Inf", "inf"))
    try: return float(v)
    except ValueError: fail(n, "bad value " + v)
def family(name):
    for suf in ("_bucket", "_sum", "_count"):
        base = name[:-len(suf)]
        if name.endswith(suf) and types.get(base) == "histogram": return base
    return name
text = open(sys.argv[1]).read()
if not text.endswith("\n"): sys.exit("no final newline")
for n, line in enumerate(text.split("\n")[:-1], 1):
    if line.startswith("# HELP "):
        m = re.match(r'^# HELP (%s) (.*)$' % name_re, line) or fail(n, "bad HELP")
        if m.group(1) in helps: fail(n, "second HELP")
        helps.add(m.group(1))
    elif line.startswith("# TYPE "):
        m = re.match(r'^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$' % name_re, line) or fail(n, "bad TYPE")
        if m.group(1) in types: fail(n, "second TYPE")
        if m.group(1) in done or m.group(1) == cur: fail(n, "TYPE after samples")
        types[m.group(1)] = m.group(2)
    elif line.startswith("#") or not line.strip():
        fail(n, "unexpected line")
    else:
        m = sample.match(line) or fail(n, "bad sample: " + line)
        name, labels, value = m.group(1), m.group(2) or "", number(n, m.group(3))
        fam = family(name)
        if fam not in types: fail(n, "sample before TYPE: " + name)
        if fam != cur:
            if fam in done: fail(n, "family not contiguous: " + fam)
            if cur: done.add(cur)
            cur = fam
        pairs = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
        if types[fam] == "counter" and value < 0: fail(n, "negative counter")
        if types[fam] == "histogram":
            key = tuple(sorted((k, v) for k, v in pairs.items() if k != "le"))
            h = hist.setdefault((fam, key), {"le": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                if "le" not in pairs: fail(n, "bucket without le")
                h["le"].append((number(n, pairs["le"]), value))
            elif name.endswith("_sum"): h["sum"] = value
            elif name.endswith("_count"): h["count"] = value
            else: fail(n, "histogram sample " + name)
        samples += 1
for (fam, key), h in hist.items():
    les = h["le"]
    if not les or les[-1][0] != float("inf"): sys.exit("%s%s: no +Inf bucket" % (fam, key))
    if [b for b, _ in les] != sorted(b for b, _ in les): sys.exit("%s: le not increasing" % fam)
    if [c for _, c in les] != sorted(c for _, c in les): sys.exit("%s: buckets not cumulative" % fam)
    if h["count"] != les[-1][1] or h["sum"] is None: sys.exit("%s%s: _count/_sum wrong" % (fam, key))
print("families %d samples %d" % (len(types), samples))
EOF
}

@test "the exposition-format checker rejects broken metrics (so it can fail)" {
	printf 'x_total 1\n' >bad1
	printf '# TYPE x gauge\nx{a="b} 1\n' >bad2
	printf '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n' >bad3
	printf '# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n' >bad4
	for f in bad1 bad2 bad3 bad4; do
		run prom_check $f
		assert_failure
	done
}

@test "metrics is valid Prometheus text: requests by state, errors, bytes, outbox, stage durations, schema" {
	build
	req fast m-1 u | ferry-request-validate >/dev/null 3>/dev/null
	sleep 1.2
	ferry-journal expire >/dev/null 3>/dev/null
	ferry-journal metrics >metrics
	run prom_check metrics
	assert_success
	echo "# $output" >&3
	run cat metrics
	assert_line 'ferry_requests{state="GRANTED"} 2'
	assert_line 'ferry_requests{state="DENIED"} 2'
	assert_line 'ferry_requests{state="ERROR"} 1'
	assert_line 'ferry_requests{state="FETCHING"} 0'
	assert_line 'ferry_requests_errors_total{error_type="FORBIDDEN"} 1'
	assert_line 'ferry_requests_errors_total{error_type="EXPIRED"} 1'
	assert_line 'ferry_requests_errors_total{error_type="EMPTY_ORDER"} 0'
	assert_line 'ferry_bytes_delivered_total 0'
	assert_line 'ferry_outbox_unsent 6'
	assert_line 'ferry_stage_duration_seconds_count{stage="validate"} 5'
	assert_line 'ferry_stage_duration_seconds_bucket{stage="validate",le="+Inf"} 5'
	assert_line 'ferry_stage_duration_seconds_count{stage="sweep"} 0'
	assert_line '# TYPE ferry_stage_duration_seconds histogram'
	assert_line 'ferry_outbox_set_aside 0'
	assert_line 'ferry_journal_schema_version 8'
}

@test "metrics count the retries, the requests waiting for theirs and the age of the oldest request per state" {
	build
	set_aside c-1
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET received_at = $(($(date +%s%3N) - 600000)) WHERE correlation_id = 'c-1';
		UPDATE request SET received_at = $(($(date +%s%3N) - 90000)) WHERE correlation_id = 'c-3'"
	ferry-journal metrics >metrics
	run prom_check metrics
	assert_success
	run cat metrics
	assert_line '# TYPE ferry_retries_total counter'
	assert_line 'ferry_retries_total 2'
	assert_line '# TYPE ferry_requests_waiting_retry gauge'
	assert_line 'ferry_requests_waiting_retry 1'
	assert_line '# TYPE ferry_oldest_request_age_seconds gauge'
	assert_line --regexp '^ferry_oldest_request_age_seconds\{state="ORDERED"\} 60[0-9]\.[0-9]{3}$'
	assert_line --regexp '^ferry_oldest_request_age_seconds\{state="GRANTED"\} (9[0-9]|1[0-9][0-9])\.[0-9]{3}$'
	[ "$(grep -c '^ferry_oldest_request_age_seconds{' metrics)" -eq 2 ]   # not DENIED
	ferry-journal retry p1 c-1 >/dev/null
	ferry-journal metrics >metrics
	run cat metrics
	assert_line 'ferry_retries_total 2'
	assert_line 'ferry_requests_waiting_retry 0'
	run ferry-journal stats
	assert_line --regexp '^retries +2$'
	assert_line --regexp '^waiting retry +0$'
	run bash -c 'ferry-journal -J stats | jq -c "[.retries, .waitingRetry]"'
	assert_output '[2,0]'
}

@test "metrics counts the bytes of s3-put DONE events and their durations" {
	build
	sqlite3 "$FERRY_JOURNAL" "INSERT INTO event (request_id, stage, state, started_at, at, bytes)
		VALUES (1, 's3-put', 'DONE', 1000, 1500, 1234), (3, 's3-put', 'DONE', 1000, 91000, 766),
		       (3, 'fetch', 'FETCHED', 1000, 2000, 99999)"
	ferry-journal metrics >metrics
	prom_check metrics
	run cat metrics
	assert_line 'ferry_bytes_delivered_total 2000'
	assert_line 'ferry_stage_duration_seconds_bucket{stage="s3-put",le="1"} 1'
	assert_line 'ferry_stage_duration_seconds_bucket{stage="s3-put",le="60"} 1'
	assert_line 'ferry_stage_duration_seconds_bucket{stage="s3-put",le="300"} 2'
	assert_line 'ferry_stage_duration_seconds_sum{stage="s3-put"} 90.500'
}

@test "check says ok on a journal the stages wrote, and exits 0" {
	build
	run ferry-journal check
	assert_success
	assert_output ok
	run ferry-journal -J check
	assert_success
	assert_output ''
}

@test "check lists what is broken (no event, no response, dead owner, bad reference) and exits 1" {
	build
	sh -c 'exit 0' & dead=$!; wait $dead
	sqlite3 "$FERRY_JOURNAL" "DELETE FROM event WHERE request_id = 1;
		DELETE FROM outbox WHERE request_id = 2;
		UPDATE request SET state = 'FETCHING', claimed_by = 'fetch:$dead' WHERE id = 3;
		INSERT INTO event (request_id, stage, state, at) VALUES (77, 'fetch', 'FETCHED', 1)"
	run ferry-journal check
	assert_failure 1
	assert_line --regexp '^foreign-key: event row [0-9]+ refers to a missing request$'
	assert_line 'no-event: p1/c-1: GRANTED: no event in its history'
	assert_line 'no-response: p1/c-2: DENIED: ended without a response in the outbox'
	assert_line "dead-owner: p1/c-3: FETCHING: claimed by fetch:$dead, which no longer runs"
	[ "${#lines[@]}" -eq 4 ]
	run ferry-journal -J check
	assert_failure 1
	assert_line '{"check":"no-event","tenant":"p1","correlationId":"c-1","detail":"GRANTED: no event in its history"}'
}

@test "check does not blame a busy request whose owner runs" {
	build
	sleep 30 & live=$!
	sqlite3 "$FERRY_JOURNAL" "UPDATE request SET state = 'FETCHING', claimed_by = 'fetch:$live' WHERE id = 3"
	run ferry-journal check
	kill "$live"
	assert_success
}

@test "every command refuses a journal of a newer schema with 100 and leaves it untouched" {
	build
	sqlite3 "$FERRY_JOURNAL" 'PRAGMA user_version = 42'
	for cmd in list status stats metrics check "show p1 c-1" "item -s order p1 c-1" \
	    "pending -s order" "retry p1 c-1" "cancel p1 c-1" expire "prune -o 1d"; do
		# shellcheck disable=SC2086
		run ferry-journal $cmd
		assert_failure 100
		assert_output --partial 'newer'
	done
	run sqlite3 "$FERRY_JOURNAL" 'PRAGMA user_version'
	assert_output 42
}

@test "a journal that does not exist: read commands exit 100 and create nothing" {
	run ferry-journal -j "$BATS_TEST_TMPDIR/nope.db" list
	assert_failure 100
	assert_output --partial 'nope.db'
	[ ! -e nope.db ]
	run ferry-journal -j "$BATS_TEST_TMPDIR/new.db" expire
	assert_success
	[ -e new.db ]
}

@test "usage errors exit 100 with the usage; -h prints every command and exits 0" {
	run ferry-journal
	assert_failure 100
	assert_output --partial 'no command'
	run ferry-journal frobnicate
	assert_failure 100
	assert_output --partial 'unknown command frobnicate'
	run ferry-journal -Z list
	assert_failure 100
	for bad in "list -Z" "list extra" "show p1" "show p1 c-1 c-2" "item p1 c-1" \
	    "item -s" "item -s ingest p1 c-1" "item -s nosuch p1 c-1" "pending" "pending -s sweep" \
	    "status x" "stats x" "metrics x" "check x" "expire x" "list -n 0" "retry p1" \
	    "retry p1 c-1 c-2" "cancel p1" "cancel -m" "cancel -Z p1 c-1"; do
		# shellcheck disable=SC2086
		run ferry-journal $bad
		assert_failure 100
		assert_output --partial 'usage: ferry-journal'
	done
	run ferry-journal -h
	assert_success
	assert_line --index 0 'usage: ferry-journal [-hJv] [-j journal] command [args]'
	for cmd in list show status item pending retry cancel expire prune stats metrics check; do
		assert_line --regexp "^  $cmd( |\$)"
	done
	run ferry-journal prune -h
	assert_success
	assert_output 'usage: ferry-journal prune -o age'
}

@test "a correlationId starting with a dash or holding control characters is shown safely" {
	printf '{"tenant":"open","correlationId":"-x\\u001b[31m","receivedAt":"%s","headers":{},"request":{"correlationId":"-x\\u001b[31m","targetDelivery":"s3","order":{"queries":["*"],"user":"u"}}}\n' "$(now)" |
		ferry-request-validate >/dev/null 3>/dev/null
	run ferry-journal list
	assert_line --regexp ' open +-x\\x1b\[31m$'
	run ferry-journal show -- open "$(printf -- '-x\033[31m')"
	assert_success
	assert_line --index 0 'request     open/-x\x1b[31m'
}
