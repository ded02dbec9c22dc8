#!/usr/bin/env bats
# The replay worked example of README.md ("Replaying one stage"), run
# verbatim: the lines between <!-- replay-example --> markers are extracted
# and run by bash in a directory where request c-42 of tenant p1 has just
# failed in ferry-fetch. ferry-journal(1) must carry the same commands.

load lib

# example: the example's lines from README.md, indentation removed
example() {
	sed -n '/^<!-- replay-example -->$/,/^<!-- \/replay-example -->$/p' "$BATS_TEST_DIRNAME/../README.md" |
		sed -e '1d' -e '$d' -e 's/^    //'
}

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL=$PWD/journal.db FERRY_TENANTS=$PWD/tenants FERRY_WORKSPACE=$PWD/ws
	mkdir -p archive/Coast42 incoming
	head -c 3000 /dev/urandom >incoming/obs.nc
	printf 'hello\n' >archive/Coast42/readme.txt
	cp incoming/obs.nc archive/Coast42/obs.nc
	ferry-catalog -c cat.db init
	ferry-catalog -c cat.db scan archive >/dev/null
	# the file leaves the archive after it was catalogued
	rm archive/Coast42/obs.nc
	tenant p1 "{\"request_ttl\":1,\"catalog\":\"$PWD/cat.db\",\"file_roots\":[\"$PWD/archive\"]}"
	printf '{"tenant":"p1","correlationId":"c-42","receivedAt":"%s","headers":{},"request":{"correlationId":"c-42","targetDelivery":"s3","order":{"queries":["productId:Coast42"],"user":"ana@example.org"}}}\n' \
		"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" |
		ferry-request-validate 2>/dev/null | ferry-order-bridge 2>/dev/null | ferry-fetch 2>/dev/null
}

@test "the example starts from a request that failed in ferry-fetch" {
	run jq_sql "$FERRY_JOURNAL" "select state || ' ' || error_type from request where correlation_id = 'c-42'"
	assert_output 'ERROR INTERNAL_ERROR'
	run jq_sql "$FERRY_JOURNAL" "select e.stage from event e join request r on r.id = e.request_id where e.state = 'ERROR'"
	assert_output fetch
}

@test "README's replay example runs verbatim and the replayed fetch succeeds" {
	example >example.sh
	[ "$(grep -c '^ferry-' example.sh)" -ge 4 ]
	run bash -e -o pipefail example.sh
	assert_success
	# step 1: the history and the reason
	assert_output --partial 'file Coast42/obs.nc not found'
	# step 4: both files, with the md5 computed while reading them
	assert_line "{\"name\":\"obs.nc\",\"md5\":\"$(md5sum <incoming/obs.nc | cut -d' ' -f1)\",\"path\":\"$PWD/archive/Coast42/obs.nc\"}"
	assert_line --partial '{"name":"readme.txt","md5":"b1946ac92492d2347c6235b4d2611184"'
	# step 5: FETCHED in the scratch journal; the service's journal untouched
	run jq_sql scratch.db "select state from request where correlation_id = 'c-42'"
	assert_output FETCHED
	run jq_sql "$FERRY_JOURNAL" "select state from request where correlation_id = 'c-42'"
	assert_output ERROR
}

@test "without the fix, the same replay fails the same way" {
	ferry-journal item -s fetch p1 c-42 >c-42.fetch.json
	run bash -c 'ferry-fetch -j scratch.db -w scratch-ws <c-42.fetch.json 3>&1 2>/dev/null' 
	assert_output --partial '"status":"ERROR","errorType":"INTERNAL_ERROR","message":"file Coast42/obs.nc not found"'
}

@test "ferry-journal(1) shows the same commands as README's example" {
	mandoc -Tascii "$BATS_TEST_DIRNAME/../man/ferry-journal.1" | col -b >page
	n=0
	while IFS= read -r line; do
		case $line in '#'* | '') continue ;; esac
		grep -qF -- "$line" page || { echo "not in ferry-journal(1): $line"; false; }
		n=$((n + 1))
	done < <(example)
	[ "$n" -ge 5 ]
}
