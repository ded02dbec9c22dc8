#!/usr/bin/env bats
# --version: every program of the build, C or shell, answers it with
# "PROGRAM (ferry) VERSION", VERSION being config.mk's, and exits 0 (no
# RabbitMQ, no journal: it is answered before anything else is read).

load lib

@test "every program answers --version with its name and config.mk's version" {
	local v p name n=0
	v=$(sed -n 's/^VERSION *= *//p' "$BATS_TEST_DIRNAME/../config.mk")
	[ -n "$v" ]
	for p in "$FERRY_BUILD"/bin/ferry-*; do
		name=${p##*/}
		run "$p" --version
		assert_success
		assert_output "$name (ferry) $v"
		n=$((n + 1))
	done
	# the 12 C programs and the 3 shell ones
	[ "$n" -ge 15 ]
}

@test "--version wins over bad options and reads no configuration" {
	run env FERRY_JOURNAL=/nonexistent/dir/j.db FERRY_TENANTS=/nonexistent \
	    ferry-fetch --version -Z
	assert_success
	assert_output --partial "ferry-fetch (ferry) "
	run ferry-run --version -Z
	assert_success
	assert_output --partial "ferry-run (ferry) "
}

@test "a bad option: every program says which, then its usage, as PROG: fatal: lines, exit 100" {
	local p name
	for p in "$FERRY_BUILD"/bin/ferry-*; do
		name=${p##*/}
		[ "$name" = ferry-sandbox ] && continue   # commands, not options: sandbox.bats
		run "$p" -Z
		[ "$status" -eq 100 ] || fail "$name -Z: exit $status"
		# every line of it in the one format, the bad option named
		printf '%s\n' "$output" | grep -qv "^$name: fatal: " &&
			fail "$name -Z: a line not in the format: $output"
		printf '%s\n' "$output" | grep -q -- "-Z: unknown option" ||
			fail "$name -Z does not name -Z: $output"
		printf '%s\n' "$output" | grep -q "usage: $name" ||
			fail "$name -Z prints no usage: $output"
	done
}
