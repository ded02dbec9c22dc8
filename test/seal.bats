#!/usr/bin/env bats
# ferry-seal and sealed secrets in tenant files: keys made and values sealed
# by ferry-seal, opened by a stage (ferry-request-validate) when it loads the
# tenant; wrong keys and unsafe key files refuse the tenant, and the clear
# secret is written nowhere. The delivery with sealed S3 credentials is in
# test/hostile.bats.

load lib

CLEAR=seal-test-clear-secret-91b3

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_JOURNAL="$BATS_TEST_TMPDIR/journal.db" FERRY_TENANTS="$BATS_TEST_TMPDIR/tenants"
	export FERRY_SEAL_KEY="$BATS_TEST_TMPDIR/seal.key"
	ferry-seal -g "$FERRY_SEAL_KEY" >seal.pub
}

# sealed_tenant NAME KEYVALUE SECRETVALUE MODE
sealed_tenant() {
	tenant "$1" "{\"request_ttl\":1,\"users\":[\"ana\"],\"s3_server\":{\"host\":\"127.0.0.1\",
		\"key\":\"$2\",\"secret\":\"$3\"},\"delivery_bucket\":\"deliveries\"}"
	chmod "$4" "$FERRY_TENANTS/$1.json"
}

# validate TENANT CID: one request through ferry-request-validate; its
# response in $output, its stderr appended to err
validate() {
	item "$1" "$2" "{\"correlationId\":\"$2\",\"targetDelivery\":\"s3\",\"order\":{\"queries\":[\"*\"],\"user\":\"ana\"}}" >in
	ferry-request-validate <in 3>resp >/dev/null 2>>err
	output=$(cat resp)
}

@test "-g makes a 0600 key file and prints the public key; it never overwrites one" {
	[ "$(stat -c %a "$FERRY_SEAL_KEY")" = 600 ]
	[ "$(wc -l <"$FERRY_SEAL_KEY")" -eq 1 ] && [ "$(wc -c <"$FERRY_SEAL_KEY")" -eq 45 ]
	grep -Eqx '[A-Za-z0-9+/]{43}=' seal.pub
	cp "$FERRY_SEAL_KEY" before
	run ferry-seal -g "$FERRY_SEAL_KEY"
	assert_failure 100
	assert_output --partial 'File exists'
	cmp before "$FERRY_SEAL_KEY"
}

@test "a tenant file readable by all, secrets sealed with -k and -p, is GRANTED" {
	a=$(printf '%s\n' "$CLEAR" | ferry-seal -k "$FERRY_SEAL_KEY")
	b=$(printf '%s' "$CLEAR" | ferry-seal -p "$(cat seal.pub)")
	[[ $a == sealed:* ]] && [[ $b == sealed:* ]] && [ "$a" != "$b" ]
	sealed_tenant p1 "$a" "$b" 644
	validate p1 ok-1
	assert_output '{"correlationId":"ok-1","status":"GRANTED"}'
}

@test "without -k the key is FERRY_SEAL_KEY" {
	v=$(printf '%s' "$CLEAR" | ferry-seal)
	sealed_tenant p1 "$v" "$v" 640
	validate p1 ok-2
	assert_output --partial '"status":"GRANTED"'
}

@test "values sealed for another key: DENIED FORBIDDEN, one line naming file, field and key" {
	ferry-seal -g other.key >/dev/null
	v=$(printf '%s' "$CLEAR" | ferry-seal -k other.key)
	sealed_tenant p1 "$v" "$v" 600
	validate p1 wrong-1
	assert_output --partial '"errorType":"FORBIDDEN"'
	run cat err
	assert_output "ferry-request-validate: error: p1/wrong-1: tenant unusable: $FERRY_TENANTS/p1.json: key: sealed value cannot be opened with the seal key $FERRY_SEAL_KEY"
}

@test "a damaged sealed value, or a missing key file, refuses the tenant" {
	v=$(printf '%s' "$CLEAR" | ferry-seal)
	sealed_tenant p1 "${v%??????}AAAAAA" "$v" 600
	validate p1 damaged
	assert_output --partial '"errorType":"FORBIDDEN"'
	grep -q 'p1/damaged: .*key: sealed value cannot be opened' err
	sealed_tenant p1 "$v" "sealed:not base64!" 600
	validate p1 notb64
	grep -q 'p1/notb64: .*secret: sealed value is not the base64 of a sealed box' err
	sealed_tenant p1 "$v" "$v" 600
	FERRY_SEAL_KEY=$PWD/nothere validate p1 nokey
	assert_output --partial '"errorType":"FORBIDDEN"'
	grep -q "p1/nokey: .*key: sealed, but seal key $PWD/nothere: No such file or directory" err
}

@test "a seal key file others may read is refused by the stages and by ferry-seal" {
	v=$(printf '%s' "$CLEAR" | ferry-seal)
	sealed_tenant p1 "$v" "$v" 600
	chmod 640 "$FERRY_SEAL_KEY"
	validate p1 keymode
	assert_output --partial '"errorType":"FORBIDDEN"'
	grep -q 'p1/keymode: .*group or others have access to it; chmod 600 it' err
	run ferry-seal <<<"$CLEAR"
	assert_failure 100
	assert_output --partial 'group or others have access to it'
}

@test "a file readable by others with one secret in clear is still refused" {
	v=$(printf '%s' "$CLEAR" | ferry-seal)
	sealed_tenant p1 AKIACLEARKEY "$v" 644
	validate p1 half
	assert_output --partial '"errorType":"FORBIDDEN"'
	grep -q 'p1/half: .*holds secrets but is readable by group/others (mode 0644)' err
}

@test "the clear secret is nowhere: output, errors, journal" {
	v=$(printf '%s' "$CLEAR" | ferry-seal)
	sealed_tenant p1 "$v" "$v" 644
	validate p1 leak-1
	ferry-seal -g other.key >/dev/null
	sealed_tenant p2 "$(printf '%s' "$CLEAR" | ferry-seal -k other.key)" "$v" 600
	validate p2 leak-2
	sqlite3 "$FERRY_JOURNAL" .dump >dump
	run grep -rlF -e "$CLEAR" -e "$(cat "$FERRY_SEAL_KEY")" dump err
	assert_output ''
	[ -s dump ] && [ -s err ]
}

@test "an empty secret, -h and bad usage" {
	run ferry-seal </dev/null
	assert_failure 100
	assert_output --partial 'empty'
	run ferry-seal -h
	assert_success
	assert_output --partial 'usage: ferry-seal -g keyfile'
	run ferry-seal -k a -p b
	assert_failure 100
	run ferry-seal -p 'short'
	assert_failure 100
	assert_output --partial 'not a 32-byte public key'
}
