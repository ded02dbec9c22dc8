#!/usr/bin/env bats
# make install and make uninstall into a DESTDIR: the layout README
# describes, an operator's envdir kept across installs, the installed
# programs finding their data (ferry-s6-setup its template), and nothing of
# ours left after uninstall but what the operator changed.

load lib

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

inst() { make -s -C "$ROOT" BUILD="$FERRY_BUILD" PREFIX=/usr SYSCONFDIR=/etc DESTDIR="$BATS_FILE_TMPDIR/dest" "$@"; }

setup_file() {
	inst install >/dev/null
}

setup() {
	DEST=$BATS_FILE_TMPDIR/dest
	cd "$BATS_TEST_TMPDIR" || return 1
}

@test "install lays out programs, pages, the example configuration and the data" {
	for p in amqp-ingest request-validate order-bridge fetch pack s3-put notify journal \
		catalog submit httpd run sandbox s6-setup; do
		[ -x "$DEST/usr/bin/ferry-$p" ] || { echo "no ferry-$p"; false; }
	done
	[ "$(ls "$DEST/usr/share/man/man1" | wc -l)" = "$(ls "$ROOT"/man/*.1 | wc -l)" ]
	[ -f "$DEST/usr/share/man/man7/ferry.7" ]
	[ -f "$DEST/etc/ferry/env/FERRY_AMQP_URL" ]
	[ -f "$DEST/etc/ferry/tenants/p1.json.example" ]
	[ -x "$DEST/etc/ferry/s6/ferry-fetch/run" ]
	[ -f "$DEST/usr/share/ferry/rabbitmq/definitions.json" ]
	[ -f "$DEST/usr/share/ferry/sandbox-s3.js" ]
	# the pages render without a warning
	run mandoc -Tlint -W warning "$DEST"/usr/share/man/man1/*.1 "$DEST"/usr/share/man/man7/*.7
	assert_output ''
}

@test "installing again keeps the envdir files an operator changed" {
	echo amqp://ferry:s3cret@10.0.0.5:5672/regards.multitenant.manager >"$DEST/etc/ferry/env/FERRY_AMQP_URL"
	inst install >/dev/null
	run cat "$DEST/etc/ferry/env/FERRY_AMQP_URL"
	assert_output 'amqp://ferry:s3cret@10.0.0.5:5672/regards.multitenant.manager'
}

@test "the installed ferry-s6-setup finds its template and builds a scan directory" {
	mkdir env
	run "$DEST/usr/bin/ferry-s6-setup" scan "$PWD/env" "$DEST/usr/bin"
	assert_success
	[ -x scan/ferry-fetch/run ]
	[ "$(find scan/.fifo -type p | wc -l)" -ge 5 ]
	grep -q "$DEST/usr/bin" scan/ferry-fetch/run
}

@test "uninstall removes what install wrote, but the envdir file the operator changed" {
	inst uninstall >/dev/null 2>&1
	run find "$DEST" -type f
	assert_output "$DEST/etc/ferry/env/FERRY_AMQP_URL"
}
