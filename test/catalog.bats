#!/usr/bin/env bats
# ferry-catalog: init, scan of a generated tree (spaces, unicode, empty and
# nested files) checked against md5sum, add with bad lines, query filters
# and exit codes, list round trip, usage errors.

load lib

setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
	export FERRY_CATALOG="$BATS_TEST_TMPDIR/catalog.db"
}

MD5A=0cc175b9c0f1b6a831c399e269772661

# make_tree DIR: four products, six files, and a loose file that is no product
make_tree() {
	mkdir -p "$1/P1" "$1/prod with spaces/sub dir" "$1/été ünï" "$1/P4/a/b/c"
	printf 'hello\n' >"$1/P1/a.nc"
	: >"$1/P1/empty.nc"
	head -c 100000 /dev/urandom >"$1/prod with spaces/sub dir/big file.bin"
	printf 'x' >"$1/prod with spaces/100%.txt"
	printf 'y' >"$1/été ünï/naïve #1?.nc"
	printf 'z' >"$1/P4/a/b/c/deep.nc"
	printf 'top' >"$1/loose.txt"
}

# field NAME LINE: a string or number field of a one-line JSON object
field() {
	sed -E "s/.*\"$1\":(\"([^\"]*)\"|([0-9]+)).*/\2\3/" <<<"$2"
}

# url_path URL: the path of a file:// URL, percent-decoded
url_path() {
	local p=${1#file://}
	printf '%b' "${p//%/\\x}"
}

# check_files FILE: each line's size and md5 are those of the file its url
# names (md5sum, stat); prints the number of lines
check_files() {
	local line path n=0
	while IFS= read -r line; do
		path=$(url_path "$(field url "$line")")
		[ -f "$path" ] || { echo "missing: $path"; return 1; }
		[ "$(md5sum <"$path" | cut -d' ' -f1)" = "$(field md5 "$line")" ] ||
			{ echo "md5 differs: $path"; return 1; }
		[ "$(stat -c %s "$path")" = "$(field size "$line")" ] ||
			{ echo "size differs: $path"; return 1; }
		n=$((n + 1))
	done <"$1"
	echo "$n"
}

product() { # product ID NAME...: a product line with one RAWDATA file per name
	local id=$1 files="" sep=""
	shift
	for n in "$@"; do
		files="$files$sep{\"dataType\":\"RAWDATA\",\"name\":\"$n\",\"url\":\"file:///d/$n\",\"size\":1,\"md5\":\"$MD5A\"}"
		sep=,
	done
	printf '{"productId":"%s","files":[%s]}\n' "$id" "$files"
}

@test "init creates an empty catalog; init again keeps it" {
	run ferry-catalog init
	assert_success
	[ -f catalog.db ]
	run jq_sql catalog.db "pragma user_version"
	assert_output 1
	product P1 a >p.ndjson
	ferry-catalog add p.ndjson
	run ferry-catalog init
	assert_success
	run ferry-catalog list
	assert_output --partial '"productId":"P1"'
}

@test "scan makes a product of each subdirectory; query prints its files with their md5sum and size" {
	make_tree tree
	run ferry-catalog -v scan tree
	assert_success
	assert_output --partial "loose.txt: not a product directory: skipped"
	assert_output --partial "4 products added, 0 skipped"
	ferry-catalog query '*' >out
	run check_files out
	assert_success
	assert_output 6
	run cat out
	assert_line --index 0 --regexp '^\{"productId":"P1","version":1,"dataType":"RAWDATA","name":"a.nc","url":"file:///[^"]*/tree/P1/a.nc","size":6,"md5":"b1946ac92492d2347c6235b4d2611184"\}$'
	assert_line --index 1 --partial '"name":"empty.nc",'
	assert_line --index 1 --partial '"size":0,"md5":"d41d8cd98f00b204e9800998ecf8427e"'
	assert_output --partial '"productId":"prod with spaces","version":1,"dataType":"RAWDATA","name":"sub dir/big file.bin"'
	assert_output --partial '"name":"a/b/c/deep.nc"'
	assert_output --partial '"productId":"été ünï"'
	assert_output --partial '/%C3%A9t%C3%A9%20%C3%BCn%C3%AF/na%C3%AFve%20%231%3F.nc"'
	assert_output --partial '/prod%20with%20spaces/100%25.txt"'
	refute_output --partial loose
}

@test "scan takes the dataset, tags and dataType from its flags" {
	make_tree tree
	ferry-catalog scan -d coast -t mine -t "two words" -T QUICKLOOK_SD tree
	run ferry-catalog query 'dataset:coast AND tags:mine AND tags:"two words"'
	assert_success
	[ "${#lines[@]}" -eq 6 ]
	assert_line --index 0 --partial '"dataType":"QUICKLOOK_SD"'
	run ferry-catalog query -d QUICKLOOK 'tags:mine'
	[ "${#lines[@]}" -eq 6 ]
	run ferry-catalog query -d RAWDATA 'tags:mine'
	assert_failure 1
	assert_output ""
}

@test "scanning again replaces the products: a removed file is gone" {
	make_tree tree
	ferry-catalog scan tree
	rm tree/P1/empty.nc
	ferry-catalog scan tree
	run ferry-catalog query productId:P1
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	assert_output --partial '"name":"a.nc"'
}

@test "scan warns about and skips what is not a regular file or a directory link" {
	make_tree tree
	mkfifo tree/P1/fifo
	ln -s ../P4 tree/P1/link-to-dir
	ln -s a.nc tree/P1/link-to-file
	run ferry-catalog scan tree
	assert_success
	assert_output --partial "tree/P1/fifo: not a regular file: skipped"
	assert_output --partial "tree/P1/link-to-dir: symbolic link to a directory: not followed"
	run ferry-catalog query productId:P1
	[ "${#lines[@]}" -eq 3 ]
	assert_output --partial '"name":"link-to-file"'
}

@test "scan of a directory that does not exist exits 100" {
	run ferry-catalog scan nowhere
	assert_failure 100
	assert_output --partial "unable to scan nowhere"
}

@test "add reports bad lines with their line numbers, adds the others, exits 100" {
	{
		product P1 a
		echo 'not json'
		echo '{"productId":"P2","files":[{"dataType":"RAWDATA","name":"b","url":"u","size":1,"md5":"xyz"}]}'
		echo
		product P3 c
		echo '{"version":2}'
	} >in.ndjson
	run ferry-catalog add in.ndjson
	assert_failure 100
	assert_line --partial "in.ndjson: line 2: invalid JSON"
	assert_line --partial 'in.ndjson: line 3: product "P2": files[0].md5: must be 32 hexadecimal digits: skipped'
	assert_line --partial "in.ndjson: line 6: product: productId: missing: skipped"
	run ferry-catalog list
	[ "${#lines[@]}" -eq 2 ]
	assert_line --index 0 --partial '"productId":"P1"'
	assert_line --index 1 --partial '"productId":"P3"'
}

@test "add reads files and - (stdin) in order, later lines replacing earlier ones" {
	product P1 a >one
	product P1 b >two
	product P2 c | ferry-catalog add one - two
	run ferry-catalog query '*'
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	assert_line --index 0 --partial '"productId":"P1","version":1,"dataType":"RAWDATA","name":"b"'
	assert_line --index 1 --partial '"productId":"P2"'
}

@test "add of 2500 products commits them all (several batches)" {
	for i in $(seq 1 2500); do product "P$i" a; done >many
	run ferry-catalog add many
	assert_success
	run jq_sql catalog.db "select count(*) from product"
	assert_output 2500
}

@test "query with no match prints nothing and exits 1" {
	product P1 a.nc | ferry-catalog add
	run ferry-catalog query tags:nothing
	assert_failure 1
	assert_output ""
	run ferry-catalog query -r '.*\.txt' '*'
	assert_failure 1
}

@test "query applies -d and -r as order.filters: QUICKLOOK selects QUICKLOOK_SD/MD/HD" {
	cat >p.ndjson <<-EOF
	{"productId":"P","files":[{"dataType":"RAWDATA","name":"a.nc","url":"u","size":1,"md5":"$MD5A"},{"dataType":"QUICKLOOK_SD","name":"s.png","url":"u","size":1,"md5":"$MD5A"},{"dataType":"QUICKLOOK_HD","name":"h.jpg","url":"u","size":1,"md5":"$MD5A"},{"dataType":"DOCUMENT","name":"d.pdf","url":"u","size":1,"md5":"$MD5A"}]}
	EOF
	ferry-catalog add p.ndjson
	run ferry-catalog query -d QUICKLOOK '*'
	[ "${#lines[@]}" -eq 2 ]
	assert_line --index 0 --partial '"name":"h.jpg"'
	assert_line --index 1 --partial '"name":"s.png"'
	run ferry-catalog query -d RAWDATA -d QUICKLOOK -r '.*\.(nc|png)' '*'
	[ "${#lines[@]}" -eq 2 ]
	assert_line --index 0 --partial '"name":"a.nc"'
	assert_line --index 1 --partial '"name":"s.png"'
	run ferry-catalog query -r 'a' '*'
	assert_failure 1
	run ferry-catalog query -r '(' '*'
	assert_failure 100
	assert_output --partial "-r (: "
}

@test "several queries are OR-ed and each product comes once" {
	{ product A a; product B b; product C c; } | ferry-catalog add
	run ferry-catalog query productId:A productId:C 'productId:A OR productId:B'
	assert_success
	[ "${#lines[@]}" -eq 3 ]
}

@test "a query that does not parse exits 100 naming the position" {
	product P1 a | ferry-catalog add
	run ferry-catalog query 'tags:(a'
	assert_failure 100
	assert_output 'ferry-catalog: fatal: query "tags:(a": missing ) at position 6'
}

@test "list prints products that add takes back into another catalog" {
	printf '%s\n' '{"productId":"P","version":2,"dataset":"d","tags":["a"],"attributes":{"k":"v"},"files":[{"dataType":"RAWDATA","name":"n","url":"file:///n","size":3,"md5":"'$MD5A'"}]}' |
		ferry-catalog add
	ferry-catalog list >listed
	ferry-catalog -c other.db add listed
	run ferry-catalog -c other.db list
	assert_output "$(cat listed)"
	assert_output --partial '"attributes":{"k":"v"}'
}

@test "usage errors exit 100 with the usage line" {
	run ferry-catalog
	assert_failure 100
	assert_output --partial "no subcommand"
	run ferry-catalog frobnicate
	assert_failure 100
	assert_output --partial "frobnicate: unknown subcommand"
	run ferry-catalog -x list
	assert_failure 100
	assert_output --partial "-x: unknown option or missing argument"
	run ferry-catalog query
	assert_failure 100
	assert_output --partial "usage: ferry-catalog [-hv] [-c catalog] query [-d dataType]... [-r regexp] query ..."
	run ferry-catalog scan
	assert_failure 100
	assert_output --partial "scan takes one directory"
	run ferry-catalog scan -q dir
	assert_failure 100
	run ferry-catalog list extra
	assert_failure 100
	[ ! -e catalog.db ]
}

@test "without -c or FERRY_CATALOG there is no catalog: exit 100" {
	unset FERRY_CATALOG
	run ferry-catalog list
	assert_failure 100
	assert_output --partial "no catalog: give -c or set FERRY_CATALOG"
	run ferry-catalog -c "$BATS_TEST_TMPDIR/x.db" init
	assert_success
	[ -f x.db ]
}

@test "query and list on a catalog that does not exist exit 100 and create nothing" {
	run ferry-catalog query '*'
	assert_failure 100
	assert_output --partial "catalog.db: No such file or directory"
	run ferry-catalog list
	assert_failure 100
	[ ! -e catalog.db ]
}

@test "a file that is not a catalog is refused with exit 100" {
	echo "hello, this is plainly not an SQLite database file at all" >catalog.db
	run ferry-catalog list
	assert_failure 100
	assert_output --partial "not a database"
}

@test "-h prints the usage of every subcommand and exits 0" {
	run ferry-catalog -h
	assert_success
	assert_line --index 0 "usage: ferry-catalog [-hv] [-c catalog] init"
	[ "${#lines[@]}" -eq 5 ]
}
