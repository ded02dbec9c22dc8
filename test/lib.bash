# lib.bash: shared setup of the bats suites. Puts the freshly built programs
# ($FERRY_BUILD/bin) first on PATH, loads bats-assert, and offers helpers to
# start one sandbox per file, write tenants, and read responses off RabbitMQ.
load /usr/lib/bats/bats-support/load.bash
load /usr/lib/bats/bats-assert/load.bash

FERRY_BUILD=${FERRY_BUILD:-$(cd "$BATS_TEST_DIRNAME/.." && pwd)/build}
export FERRY_BUILD
export PATH="$FERRY_BUILD/bin:$PATH"
export AWS_EC2_METADATA_DISABLED=true

# sandbox_up: start a sandbox for this file; its env goes to $BATS_FILE_TMPDIR/env
sandbox_up() {
	export SANDBOX_DIR="$BATS_FILE_TMPDIR/sandbox"
	ferry-sandbox start "$SANDBOX_DIR" >"$BATS_FILE_TMPDIR/env" || return 1
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/env"
}

sandbox_down() {
	[ -n "${BATS_FILE_TMPDIR:-}" ] && [ -d "$BATS_FILE_TMPDIR/sandbox" ] &&
		ferry-sandbox stop "$BATS_FILE_TMPDIR/sandbox" >/dev/null 2>&1
	return 0
}

sandbox_env() {
	export SANDBOX_DIR="$BATS_FILE_TMPDIR/sandbox"
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/env"
}

# tenant NAME [JSON]: write $FERRY_TENANTS/NAME.json (mode 600). An access
# list JSON does not name (users, allowed_hosts, source_buckets; absent
# allows nothing) is written ["*"], anything: the suites' tenants are about
# other things. An rs_order tenant gets no users "*" (it is refused there).
# tenant_as_is NAME JSON writes JSON untouched, for the access tests.
tenant() {
	local json=${2:-'{"request_ttl":1}'} key open=
	case $json in
	'{'*)
		for key in users allowed_hosts source_buckets; do
			case $json in *"\"$key\""*) continue ;; esac
			case $key$json in users*'"rs_order"'*) continue ;; esac
			open="$open\"$key\":[\"*\"],"
		done
		json=${json#\{}
		case ${json#"${json%%[![:space:]]*}"} in '}'*) open=${open%,} ;; esac
		json="{$open$json"
		;;
	esac
	tenant_as_is "$1" "$json"
}

tenant_as_is() {
	mkdir -p "$FERRY_TENANTS"
	printf '%s\n' "$2" >"$FERRY_TENANTS/$1.json"
	chmod 600 "$FERRY_TENANTS/$1.json"
}

# item TENANT CID BODY: one intake item line as ferry-amqp-ingest prints it
item() {
	printf '{"tenant":"%s","correlationId":"%s","receivedAt":"2026-11-23T10:00:00.000Z","headers":{},"request":%s}\n' "$1" "$2" "$3"
}

# publish TENANT BODY [amqp-publish args...]: a request on the request exchange
publish() {
	local tenant=$1 body=$2; shift 2
	amqp-publish --url="$FERRY_AMQP_URL" \
		-e regards.broadcast.fr.cnes.regards.modules.delivery.amqp.input.DeliveryRequestDtoEvent \
		-H "regards.tenant: $tenant" -C application/json -b "$body" "$@"
}

# dlq_count: the messages in regards.DLQ now; dlq_grew BEFORE N: wait up
# to 10 s for it to hold BEFORE + N, and then it holds exactly that
dlq_count() { node "$BATS_TEST_DIRNAME/amqp-peek.js" count "$FERRY_AMQP_URL" regards.DLQ; }
dlq_grew() {
	local _
	for _ in $(seq 100); do
		[ "$(dlq_count)" -ge $(($1 + $2)) ] && break
		sleep 0.1
	done
	[ "$(dlq_count)" -eq $(($1 + $2)) ]
}

# sqlite JOURNAL QUERY
# s3_unquote URL: a DONE url (java.net.URI quoting, %XX) as the s3://bucket/key
# the aws CLI takes (it decodes nothing)
s3_unquote() { printf '%b' "${1//%/\\x}"; }

jq_sql() { sqlite3 -batch -noheader "$1" "$2"; }

# ferry_procs: "PID NAME" of each ferry program that runs on this file's
# journal ($FERRY_JOURNAL in its environment), zombies left out: the only
# processes a test may signal, whatever other suites run beside it
ferry_procs() {
	local d p comm st name
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		{ read -r comm <"$d/comm"; } 2>/dev/null || continue
		case $comm in ferry-*) ;; *) continue ;; esac
		grep -qazFx "FERRY_JOURNAL=$FERRY_JOURNAL" "$d/environ" 2>/dev/null || continue
		{ read -r st <"$d/stat"; } 2>/dev/null || continue
		st=${st##*) }
		[ "${st%% *}" = Z ] && continue
		# scripts (ferry-run, ferry-sandbox and their subshells) run as sh
		name=$(tr '\0' '\n' 2>/dev/null <"$d/cmdline" | head -n 1 | sed 's|.*/||')
		case $name in ferry-*) echo "$p $name" ;; esac
	done
	return 0
}

# service_env: $D and the environment of this file's ferry service (journal,
# tenants and workspace under $BATS_FILE_TMPDIR)
service_env() {
	export D="$BATS_FILE_TMPDIR"
	export FERRY_JOURNAL="$D/journal.db" FERRY_TENANTS="$D/tenants" FERRY_WORKSPACE="$D/ws"
}

# service_start: ferry-run -v in the background (from setup_file, so that
# teardown_file, the same process, can wait for it); its log in $D/run.log
service_start() {
	ferry-run -v 2>"$D/run.log" &
	echo $! >"$D/run.pid"
}

# service_stop: SIGTERM to that ferry-run, and wait for it
service_stop() {
	[ -s "$BATS_FILE_TMPDIR/run.pid" ] || return 0
	kill -TERM "$(cat "$BATS_FILE_TMPDIR/run.pid")" 2>/dev/null
	wait "$(cat "$BATS_FILE_TMPDIR/run.pid")" 2>/dev/null
	return 0
}

# standin_start [ARG...]: test/rs-order-standin.js serving $D/data in the
# background (config, log and state under $D), once it listens; its port in
# $D/port. node itself is the background job, so $! is the pid to signal.
standin_start() {
	rm -f "$D/port"
	node "$BATS_TEST_DIRNAME/rs-order-standin.js" serve --port-file "$D/port" \
		--config "$D/config.json" --log "$D/log.ndjson" --state "$D/state.json" "$@" \
		"$D/data" </dev/null >/dev/null 2>>"$D/standin.err" 3>&- &
	echo $! >"$D/standin.pid"
	for _ in $(seq 1 300); do [ -s "$D/port" ] && break; sleep 0.1; done
	[ -s "$D/port" ]
}

# standin_stop: SIGTERM the stand-in standin_start started, wait until it is gone
standin_stop() {
	local pid
	pid=$(cat "$D/standin.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	return 1
}

# fobjs PID VER PATH...: FETCHED file objects (with "path"), one JSON line
# each, named by their basename, size and md5 read from the files
fobjs() {
	python3 - "$@" <<'PY'
import hashlib, json, os, sys
pid, ver = sys.argv[1], int(sys.argv[2])
for p in sys.argv[3:]:
    ap = os.path.realpath(p)
    data = open(ap, "rb").read()
    print(json.dumps({"productId": pid, "version": ver, "dataType": "RAWDATA",
        "name": os.path.basename(p), "url": "file://" + ap, "size": len(data),
        "md5": hashlib.md5(data).hexdigest(), "path": ap}))
PY
}
