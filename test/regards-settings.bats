#!/usr/bin/env bats
# ferry-httpd's rs-delivery settings REST (GET /settings[?names=], PUT and
# DELETE /settings/{name}) as the REGARDS admin UI calls it: the tenant from
# a REGARDS JWT signed here by openssl (an HMAC-SHA-512 independent of
# ferry's), the HATEOAS entries, the tenant file written and a request
# validated with the new value, the refusals REGARDS gives, tenant isolation.
# No RabbitMQ: ferry-request-validate reads items from a file.
# test/rs-delivery-protocol.md §6 cites the REGARDS source of each answer.

load lib

# REGARDS's jwt.signing-key.HS512 default, with characters Gson escapes
KEY='!!!!!==========abcdefghijklmnopqrstuvwxyz0123456789==========!!!!!'
SECRET=s3cr3t-Never-Shown-5151
S3KEY=AKID-never-shown-88
FAR=4102444800      # exp: 2100-01-01
HS512='{"alg":"HS512"}'

setup_file() {
	export D="$BATS_FILE_TMPDIR"
	export FERRY_TENANTS="$D/tenants"
	cd "$D" || return 1
	tenant_as_is p1 "{\"request_ttl\":2,\"users\":[\"ana@example.org\"],\"catalog\":\"$D/cat.db\",
		\"delivery_bucket\":\"deliveries\",\"s3_server\":{\"scheme\":\"http\",\"host\":\"127.0.0.1\",
		\"port\":9000,\"region\":\"us-east-1\",\"key\":\"$S3KEY\",\"secret\":\"$SECRET\"}}"
	tenant_as_is p2 "{\"request_ttl\":3,\"users\":[\"bob@example.org\"],\"catalog\":\"$D/cat.db\"}"
	ferry-catalog -c cat.db init
	printf '%s\n' "$KEY" >jwt.key
	chmod 600 jwt.key
	head -c 32 /dev/urandom | base64 >token
	chmod 600 token
	sh -c 'ferry-httpd -v -p 0 -j journal.db -T token -R jwt.key 2>httpd.log & echo $! >httpd.pid; wait $!' 3>&- &
	for _ in $(seq 100); do
		grep -q 'listening on' httpd.log 2>/dev/null && break
		sleep 0.1
	done
	sed -n 's|.*listening on \(http://[^ ]*\)/$|\1|p' httpd.log >url
	[ -s url ] || { cat httpd.log; return 1; }
}

teardown_file() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/httpd.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null
	wait 2>/dev/null
	return 0
}

setup() {
	export D="$BATS_FILE_TMPDIR" FERRY_TENANTS="$BATS_FILE_TMPDIR/tenants"
	URL=$(cat "$D/url")
	cd "$BATS_TEST_TMPDIR" || return 1
}

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# jwt CLAIMS [KEY [HEADER]]: an HS512 token signed by openssl
jwt() {
	local h c
	h=$(printf '%s' "${3:-$HS512}" | b64url)
	c=$(printf '%s' "$1" | b64url)
	printf '%s.%s.%s' "$h" "$c" \
		"$(printf '%s.%s' "$h" "$c" | openssl dgst -sha512 -hmac "${2:-$KEY}" -binary | b64url)"
}

# user TENANT [ROLE [EXP]]: a REGARDS user's token, claims as JWTService makes them
user() {
	jwt "{\"tenant\":\"$1\",\"role\":\"${2:-ADMIN}\",\"sub\":\"ana@example.org\",\"email\":\"ana@example.org\",\"exp\":${3:-$FAR}}"
}

# http METHOD PATH [curl args...]: the status; body in ./body, headers in ./headers
http() {
	local method=$1 path=$2
	shift 2
	curl -sS -o body -D headers -w '%{http_code}' -X "$method" "$@" "$URL$path"
	cat body >>"$D/bodies"
}

# with ROLE TENANT METHOD PATH [curl args...]: with a ROLE token of TENANT
with() {
	local role=$1 t=$2 method=$3 path=$4
	shift 4
	http "$method" "$path" -H "Authorization: Bearer $(user "$t" "$role")" "$@"
}

# as TENANT METHOD PATH [curl args...]: with an ADMIN token of TENANT
as() { with ADMIN "$@"; }

# pa TENANT METHOD PATH [curl args...]: with a PROJECT_ADMIN token of TENANT
pa() { with PROJECT_ADMIN "$@"; }

# validate TENANT USER: ferry-request-validate on one request received at
# 2026-11-23T10:00:00Z; prints its expiresAt
validate() {
	item "$1" "c-$RANDOM" "{\"correlationId\":\"c\",\"targetDelivery\":\"s3\",\"order\":{\"queries\":[\"*\"],\"user\":\"$2\"}}" |
		ferry-request-validate -j scratch.db 2>/dev/null 3>/dev/null | jq -r .expiresAt
}

@test "GET /settings: rs-delivery's five settings as HATEOAS entries, in REGARDS's HashSet order" {
	run as p1 GET /settings
	assert_output 200
	grep -qi '^Content-Type: application/json' headers
	run jq -r '.[].content.name' body
	assert_output "$(printf '%s\n' s3_server delivery_bucket request_ttl build_bucket order_size_limit_bytes)"
	run jq -c '.[2]' body
	assert_output "{\"content\":{\"name\":\"request_ttl\",\"description\":\"Maximum retention time of a delivery request in hours.\",\"defaultValue\":12,\"value\":2},\"links\":[{\"rel\":\"self\",\"href\":\"$URL/settings{?names}\"},{\"rel\":\"update\",\"href\":\"$URL/settings/request_ttl\"},{\"rel\":\"reset\",\"href\":\"$URL/settings/request_ttl\"}]}"
	# at its default: no reset link; build_bucket: no update link either
	run jq -c '[.[] | {n: .content.name, v: .content.value, rels: [.links[].rel]}]' body
	assert_output '[{"n":"s3_server","v":{"scheme":"http","host":"127.0.0.1","port":9000,"region":"us-east-1","key":"*******","secret":"*******"},"rels":["self","update","reset"]},{"n":"delivery_bucket","v":"deliveries","rels":["self","update","reset"]},{"n":"request_ttl","v":2,"rels":["self","update","reset"]},{"n":"build_bucket","v":"default-build-bucket","rels":["self"]},{"n":"order_size_limit_bytes","v":5368709120,"rels":["self","update"]}]'
	run jq -c '.[0].content.defaultValue' body
	assert_output '{"scheme":"https","host":"rs-minio","port":9000,"region":"fr-regards-1","key":"default-key","secret":"default-secret"}'
	# Gson's HTML-safe escaping, as REGARDS writes
	run as p1 PUT /settings/request_ttl --data-binary '{"value":"<&>"}'
	grep -qF '\u003c\u0026\u003e' body
	run grep -cF '<&>' body
	assert_output 0
}

@test "GET /settings?names= filters as Spring binds a Set: commas, repeated names, unknown names" {
	run as p1 GET '/settings?names=request_ttl,%20build_bucket'
	assert_output 200
	run jq -r '.[].content.name' body
	assert_output "$(printf '%s\n' request_ttl build_bucket)"
	run as p1 GET '/settings?names=order_size_limit_bytes&names=s3_server'
	run jq -r '.[].content.name' body
	assert_output "$(printf '%s\n' s3_server order_size_limit_bytes)"
	run as p1 GET '/settings?names=nothing,users'
	assert_output 200
	[ "$(cat body)" = '[]' ]
	run as p1 GET '/settings?names='
	run jq length body
	assert_output 5
}

@test "PUT /settings/request_ttl writes the tenant file atomically and the next request expires with it" {
	[ "$(validate p1 ana@example.org)" = 2026-11-23T12:00:00.000Z ]
	inode=$(stat -c %i "$FERRY_TENANTS/p1.json")
	run as p1 PUT /settings/request_ttl -H 'Content-Type: application/json' \
		--data-binary '{"name":"request_ttl","description":"x","defaultValue":12,"value":5}'
	assert_output 200
	run jq -c '.content.value, [.links[].rel]' body
	assert_output "$(printf '5\n["self","update","reset"]')"
	jq -e '.request_ttl == 5 and .s3_server.secret == "'"$SECRET"'"' "$FERRY_TENANTS/p1.json"
	[ "$(stat -c '%a' "$FERRY_TENANTS/p1.json")" = 600 ]
	[ "$(stat -c %i "$FERRY_TENANTS/p1.json")" != "$inode" ]
	[ "$(validate p1 ana@example.org)" = 2026-11-23T15:00:00.000Z ]
	grep -q 'p1: setting request_ttl updated by ana@example.org in ' "$D/httpd.log"
}

@test "DELETE /settings/{name} resets to the default: the key leaves the file, 12 hours again" {
	run as p1 PUT /settings/request_ttl --data-binary '{"value":7}'
	assert_output 200
	run as p1 DELETE /settings/request_ttl
	assert_output 200
	run jq -c '.content.value, .content.defaultValue, [.links[].rel]' body
	assert_output "$(printf '12\n12\n["self","update"]')"
	jq -e 'has("request_ttl") | not' "$FERRY_TENANTS/p1.json"
	[ "$(validate p1 ana@example.org)" = 2026-11-23T22:00:00.000Z ]
	# again: nothing to reset, nothing written
	inode=$(stat -c %i "$FERRY_TENANTS/p1.json")
	run as p1 DELETE /settings/request_ttl
	assert_output 200
	[ "$(stat -c %i "$FERRY_TENANTS/p1.json")" = "$inode" ]
	run as p1 DELETE /settings/build_bucket
	assert_output 403
}

@test "unknown settings are 404, build_bucket 403, bad values 422, a body that is not an object 400; the file unchanged" {
	before=$(md5sum <"$FERRY_TENANTS/p1.json")
	run as p1 PUT /settings/users --data-binary '{"value":["eve"]}'
	assert_output 404
	run jq -c . body
	assert_output '{"messages":["Entity fr.cnes.regards.framework.modules.tenant.settings.domain.DynamicTenantSetting with id : users doesn'"'"'t exist"]}'
	run as p1 DELETE /settings/nope
	assert_output 404
	run as p1 PUT /settings/build_bucket --data-binary '{"value":"b"}'
	assert_output 403
	run jq -r '.messages[0]' body
	assert_output 'Tenant Setting Modification not allowed'
	run as p1 PUT /settings/request_ttl --data-binary '{"value":-1}'
	assert_output 422
	run jq -r '.messages[0]' body
	assert_output "Invalid Tenant Setting: request_ttl. Cause: $FERRY_TENANTS/p1.json: request_ttl: must be a number > 0 and <= 876000 (hours), got -1"
	run as p1 PUT /settings/order_size_limit_bytes --data-binary '{"name":"order_size_limit_bytes"}'
	assert_output 422
	run jq -r '.messages[0]' body
	assert_output 'Invalid Tenant Setting: order_size_limit_bytes. Cause: parameter [order size limit] must be a valid positive number'
	run as p1 PUT /settings/delivery_bucket --data-binary '{"value":"Not A Bucket"}'
	assert_output 422
	for b in '[{"value":5}]' '{"value":5' '5' ''; do
		run as p1 PUT /settings/request_ttl --data-binary "$b"
		assert_output 400
	done
	[ "$(md5sum <"$FERRY_TENANTS/p1.json")" = "$before" ]
	run as p1 GET /settings/request_ttl
	assert_output 405
	grep -qi '^Allow: PUT, DELETE' headers
}

@test "the S3 secret: masked out, kept when the mask comes back, never in a body or the log" {
	run as p1 GET '/settings?names=s3_server'
	jq -c '.[0].content.value | .port = 9001' body >value
	run as p1 PUT /settings/s3_server --data-binary "{\"value\":$(cat value)}"
	assert_output 200
	jq -e '.s3_server.port == 9001 and .s3_server.secret == "'"$SECRET"'" and .s3_server.key == "'"$S3KEY"'"' \
		"$FERRY_TENANTS/p1.json"
	run grep -c -e "$SECRET" -e "$S3KEY" "$D/bodies" "$D/httpd.log"
	assert_output "$(printf '%s:0\n' "$D/bodies" "$D/httpd.log")"
}

@test "one tenant's token reads and changes its own tenant only, whatever the scope says" {
	run as p2 GET '/settings?names=request_ttl' -H 'scope: p1'
	assert_output 200
	run jq '.[0].content.value' body
	assert_output 3
	p1=$(md5sum <"$FERRY_TENANTS/p1.json")
	run as p2 PUT '/settings/request_ttl?scope=p1' -H 'scope: p1' --data-binary '{"value":9}'
	assert_output 200
	jq -e '.request_ttl == 9' "$FERRY_TENANTS/p2.json"
	[ "$(md5sum <"$FERRY_TENANTS/p1.json")" = "$p1" ]
	[ "$(validate p2 bob@example.org)" = 2026-11-23T19:00:00.000Z ]
	# a tenant ferry has no file for
	run as p9 GET /settings
	assert_output 404
	run jq -r '.messages[0]' body
	assert_output 'tenant p9 has no settings in ferry'
	[ ! -e "$FERRY_TENANTS/p9.json" ]
}

@test "tokens REGARDS refuses are refused: 401 unauthenticated, 403 below ADMIN" {
	before=$(md5sum <"$FERRY_TENANTS/p1.json")
	claims='{"tenant":"p1","role":"ADMIN","sub":"a","email":"a"}'
	for t in "$(jwt "$claims" wrong-key)" "$(user p1 ADMIN 1700000000)" \
		"$(jwt '{"role":"ADMIN","sub":"a","email":"a"}')" "$(jwt '{"tenant":"p1","sub":"a","email":"a"}')" \
		"$(jwt "$claims" "$KEY" '{"alg":"HS256"}')" "$(jwt "$claims" "$KEY" '{"alg":"none"}')" \
		"$(user p1)x" "$(cat "$D/token")" not-a-token; do
		run http PUT /settings/request_ttl -H "Authorization: Bearer $t" --data-binary '{"value":1}'
		assert_output 401
		jq -e '.messages[0] | startswith("invalid REGARDS token: ")' body
		run http GET /settings -H "Authorization: Bearer $t"
		assert_output 401
	done
	run http GET /settings -H "Authorization: Bearer $(jwt "$claims" wrong-key)"
	run jq -r '.messages[0]' body
	assert_output 'invalid REGARDS token: bad signature (signature)'
	# no token: PublicAuthenticationFilter's 401, or PUBLIC with a scope: 403
	run http GET /settings
	assert_output 401
	run jq -r '.messages[0]' body
	assert_output "[REGARDS PUBLIC FILTER] Missing 'scope' header or param /settings@GET"
	run http GET /settings -H 'scope: p1'
	assert_output 403
	run http GET '/settings?scope=p1'
	assert_output 403
	# roles below ADMIN; those above it pass
	for role in REGISTERED_USER EXPLOIT PUBLIC; do
		run http GET /settings -H "Authorization: Bearer $(user p1 "$role")"
		assert_output 403
		run jq -r '.messages[0]' body
		assert_output 'Access is denied'
	done
	for role in ADMIN ROLE_ADMIN PROJECT_ADMIN INSTANCE_ADMIN SYS_rs-admin; do
		run http GET /settings -H "Authorization: Bearer $(user p1 "$role")"
		assert_output 200
	done
	# a token without exp is valid for jjwt, and so here
	run http GET /settings -H "Authorization: Bearer $(jwt "$claims")"
	assert_output 200
	# a REGARDS token opens no ferry endpoint
	run http GET /tenants/p1/settings -H "Authorization: Bearer $(user p1)"
	assert_output 401
	[ "$(md5sum <"$FERRY_TENANTS/p1.json")" = "$before" ]
	run grep -c 'eyJ' "$D/httpd.log"
	assert_output 0
}

@test "links follow the X-Forwarded headers of the gateway; the default port is left out" {
	run as p1 GET '/settings?names=request_ttl' -H 'X-Forwarded-Proto: https' \
		-H 'X-Forwarded-Host: regards.example.org:443' -H 'X-Forwarded-Prefix: /api/v1/rs-delivery/'
	assert_output 200
	run jq -r '.[0].links[].href' body
	assert_output "$(printf 'https://regards.example.org/api/v1/rs-delivery/settings{?names}\nhttps://regards.example.org/api/v1/rs-delivery/settings/request_ttl')"
	run as p1 GET '/settings?names=request_ttl' -H 'Host: ferry.example.org:8080'
	run jq -r '.[0].links[0].href' body
	assert_output 'http://ferry.example.org:8080/settings{?names}'
}

@test "the REGARDS secret file must be private; without it /settings does not exist" {
	cp "$D/jwt.key" k
	chmod 640 k
	run ferry-httpd -p 0 -R k
	assert_failure 100
	assert_output --partial 'readable by group/others'
	refute_output --partial 'abcdefghijklmnopqrstuvwxyz'
	: >empty
	chmod 600 empty
	run ferry-httpd -p 0 -R empty
	assert_failure 100
	assert_output --partial 'empty or not text'
	cp "$D/token" tok
	ferry-httpd -v -p 0 -j "$D/journal.db" -T tok 2>log &
	pid=$!
	for _ in $(seq 100); do grep -q 'listening on' log && break; sleep 0.1; done
	url=$(sed -n 's|.*listening on \(http://[^ ]*\)/$|\1|p' log)
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat tok)" "$url/settings"
	assert_output 404
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(user p1)" "$url/settings"
	assert_output 401
	kill -TERM "$pid"
	wait "$pid"
}

DTS=fr.cnes.regards.framework.modules.tenant.settings.domain.DynamicTenantSetting

@test "GET /microservice/configuration: rs-delivery's export file as the admin UI downloads it, PROJECT_ADMIN only" {
	run pa p1 GET /microservice/configuration
	assert_output 200
	grep -qi '^Content-Disposition: attachment; filename="config-rs-delivery.json"' headers
	grep -qi '^Content-Type: application/json' headers
	# Gson's pretty printing with a two-space indent
	[ "$(head -3 body)" = "$(printf '{\n  "microservice": "rs-delivery",\n  "modules": [')" ]
	run jq -c '.modules[0] | [.module.id, .module.version, .resetBeforeImport, [.configuration[].key] == [range(5) | "'$DTS'"]]' body
	assert_output '["delivery","1.14.0",true,true]'
	run jq -r '.modules[0].configuration[].value | "\(.name) \(.className) \(.containsSensitiveParameters)"' body
	assert_output "$(printf '%s\n' 'request_ttl java.lang.Integer false' \
		's3_server fr.cnes.regards.modules.delivery.domain.settings.S3DeliveryServer true' \
		'delivery_bucket java.lang.String false' 'order_size_limit_bytes java.lang.Long false' \
		'build_bucket java.lang.String false')"
	# values as Gson text, the secret masked
	run jq -c '.modules[0].configuration[] | .value | select(.name == "s3_server") | .value | fromjson' body
	assert_output '{"scheme":"http","host":"127.0.0.1","port":9001,"region":"us-east-1","key":"*******","secret":"*******"}'
	run jq -r '.modules[0].configuration[] | .value | select(.name == "delivery_bucket") | .value, .defaultValue' body
	assert_output "$(printf '"deliveries"\n"default-delivery-bucket"')"
	run grep -c -e "$SECRET" -e "$S3KEY" body
	assert_output 0
	# ADMIN is below PROJECT_ADMIN (@ResourceAccess role = PROJECT_ADMIN)
	run as p1 GET /microservice/configuration
	assert_output 403
	run http GET /microservice/configuration
	assert_output 401
}

@test "POST /microservice/configuration: the export back changes nothing (201); a changed file is applied, the secret kept, the next request expires with it" {
	pa p1 GET /microservice/configuration >/dev/null
	cp body config-rs-delivery.json
	inode=$(stat -c %i "$FERRY_TENANTS/p1.json")
	run pa p1 POST /microservice/configuration -F file=@config-rs-delivery.json
	assert_output 201
	[ ! -s body ]
	[ "$(stat -c %i "$FERRY_TENANTS/p1.json")" = "$inode" ]
	jq '(.modules[0].configuration[] | .value | select(.name == "request_ttl") | .value) = "4"' \
		config-rs-delivery.json >changed.json
	run pa p1 POST /microservice/configuration -F file=@changed.json
	assert_output 201
	jq -e '.request_ttl == 4 and .s3_server.secret == "'"$SECRET"'" and .s3_server.key == "'"$S3KEY"'" and .delivery_bucket == "deliveries"' \
		"$FERRY_TENANTS/p1.json"
	[ "$(stat -c '%a' "$FERRY_TENANTS/p1.json")" = 600 ]
	[ "$(validate p1 ana@example.org)" = 2026-11-23T14:00:00.000Z ]
	grep -q 'p1: configuration imported by ana@example.org: 201' "$D/httpd.log"
	run grep -c -e "$SECRET" -e "$S3KEY" "$D/httpd.log"
	assert_output 0
}

@test "import reports as ModuleManagerController's: 206 when some settings fail, 409 when none can; malformed 500, no file part 400, not multipart 415 — malformed files change nothing" {
	ditem() { printf '{"key":"%s","value":{"name":"%s","value":%s}}' "$DTS" "$1" "$2"; }
	cfg() { printf '{"microservice":"rs-delivery","modules":[{"module":{"id":"delivery"},"resetBeforeImport":false,"configuration":[%s]}]}' "$1"; }
	cfg "$(ditem request_ttl '"6"'),$(ditem nope '"1"')" >partial.json
	run pa p2 POST /microservice/configuration -F file=@partial.json
	assert_output 206
	run jq -c '.[0] | [.moduleInformation.id, .importErrors, .onlyErrors]' body
	assert_output '["delivery",["Failed to import dynamic tenant setting with name '"'nope'"'. Cause: Entity '$DTS' with id : nope doesn'"'"'t exist"],false]'
	jq -e '.request_ttl == 6' "$FERRY_TENANTS/p2.json"
	cfg "$(ditem request_ttl '"-1"'),$(ditem delivery_bucket '"\"Not A Bucket\""')" >none.json
	run pa p2 POST /microservice/configuration -F file=@none.json
	assert_output 409
	run jq -c '.[0] | [(.importErrors | length), .onlyErrors]' body
	assert_output '[2,true]'
	# Gson's HTML-safe escaping of the report
	grep -qF "name \\u0027request_ttl\\u0027. Cause: Invalid Tenant Setting: request_ttl. Cause: " body
	before=$(md5sum <"$FERRY_TENANTS/p2.json")
	printf 'not json' >bad.json
	printf '{"modules":[{"module":{"id":"delivery"},"configuration":[{"key":"x.Y","value":{}}]}]}' >class.json
	cfg "$(ditem request_ttl '"7"'),$(ditem order_size_limit_bytes '"{"')" >value.json
	for f in bad.json class.json value.json; do
		run pa p2 POST /microservice/configuration -F file=@$f
		assert_output 500
		jq -e '.messages[0] | test("Exception: ")' body
	done
	run jq -r '.messages[0]' body
	assert_output 'java.lang.IllegalArgumentException: The value of setting order_size_limit_bytes cannot be transformed to Json object'
	run pa p2 POST /microservice/configuration -F other=@partial.json
	assert_output 400
	run jq -r '.messages[0]' body
	assert_output "Required part 'file' is not present."
	run pa p2 POST /microservice/configuration -H 'Content-Type: application/json' --data-binary @partial.json
	assert_output 415
	[ "$(md5sum <"$FERRY_TENANTS/p2.json")" = "$before" ]
	run as p2 POST /microservice/configuration -F file=@partial.json
	assert_output 403
	[ "$(md5sum <"$FERRY_TENANTS/p2.json")" = "$before" ]
}
