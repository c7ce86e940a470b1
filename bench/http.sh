#!/usr/bin/env bash
# HTTP benchmark: wrk against the real PostgREST in front of schema api, on a
# throwaway cluster.  In one run, one after the other with the same clients:
#   POST /rpc/ping            trivial function: PostgREST + JWT + one round trip
#   POST /rpc/quote           pricing, read-only
#   POST /rpc/create_invoice  pricing + customer + payment row + commit
# Every request carries a user token (so all three pay for the JWT check and
# the pre-request hook).  Prints requests per second, p99 latency and the
# ratio to ping.  Target: create_invoice >= 0.5 x ping.
# Usage: bench/http.sh [seconds per run] [connections] [rounds]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SECONDS_EACH=${1:-5}
CONNECTIONS=${2:-32}
ROUNDS=${3:-5}
THREADS=2
POOL=${BILLING_BENCH_POOL:-16}		# PostgREST's connection pool

bench_prepare
dir=$BILLING_WORK/cluster-bench-http
out=$BILLING_WORK/bench-http
rm -rf "$out"; mkdir -p "$out"
port=$(free_port)
http_port=$(free_port)
# A durable commit per invoice, as in production (synchronous_commit on).
"$BILLING_SRC/scripts/cluster" init "$dir" "$port" "shared_buffers = '256MB'" "max_connections = 50" >/dev/null
pgrst_pid=
cleanup() {
	[ -n "$pgrst_pid" ] && kill "$pgrst_pid" 2>/dev/null && wait "$pgrst_pid" 2>/dev/null
	"$BILLING_SRC/scripts/cluster" destroy "$dir"
}
trap cleanup EXIT
psql() { "$BILLING_PGBIN/psql" -h "$dir" -p "$port" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 "$@"; }

psql >/dev/null <<'SQL'
UPDATE cron.job SET active = false;
ALTER ROLE billing_authenticator LOGIN;
SELECT billing.create_tariff('prime', 'Prime films', 29900, 'RUB');
SELECT billing.set_months_discount(3, 10);
SQL

secret=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
PGRST_DB_URI="postgresql://billing_authenticator@127.0.0.1:$port/billing" \
PGRST_DB_SCHEMAS=api PGRST_DB_ANON_ROLE=billing_anon \
PGRST_DB_PRE_REQUEST=api_private.pre_request PGRST_JWT_SECRET="$secret" \
PGRST_DB_POOL="$POOL" PGRST_LOG_LEVEL=crit PGRST_JWT_CACHE_MAX_LIFETIME=3600 \
PGRST_SERVER_HOST=127.0.0.1 PGRST_SERVER_PORT="$http_port" \
	"$POSTGREST_BIN" >"$out/postgrest.log" 2>&1 &
pgrst_pid=$!
for _ in $(seq 300); do
	curl -sf -X POST "http://127.0.0.1:$http_port/rpc/ping" >/dev/null && break
	sleep 0.1
done

# 64 users, tokens in a Lua table: each request takes the next one.
JWT_SECRET=$secret /usr/bin/python3 - >"$out/tokens.lua" <<'PY'
import base64, hashlib, hmac, json, os, time, uuid
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
secret = os.environ["JWT_SECRET"].encode()
print("tokens = {")
for i in range(64):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"user": str(uuid.uuid4()), "exp": int(time.time()) + 86400}).encode())
    sig = b64(hmac.new(secret, (head + "." + body).encode(), hashlib.sha256).digest())
    print('  "%s.%s.%s",' % (head, body, sig))
print("}")
PY

run() {		# name, path, body
	cat >"$out/$1.lua" <<-EOF
		dofile("$out/tokens.lua")
		local n = 0
		request = function()
		  n = n + 1
		  return wrk.format("POST", "$2", {
		    ["Content-Type"] = "application/json",
		    ["Authorization"] = "Bearer " .. tokens[n % #tokens + 1],
		  }, '$3')
		end
	EOF
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --latency -s "$out/$1.lua" \
		"http://127.0.0.1:$http_port" >"$out/$1.txt"
	if grep -q "Non-2xx" "$out/$1.txt"; then
		echo "$1: some requests failed:" >&2
		cat "$out/$1.txt" >&2
		exit 1
	fi
}

# A short warm-up, then the measured runs: the three endpoints in turn,
# ROUNDS times, so that a change in the machine's background load hits all of
# them alike; each figure is the median of its rounds.
SECONDS_SAVE=$SECONDS_EACH; SECONDS_EACH=2
run warmup /rpc/create_invoice '{"tariff": "prime", "months": 1}'
SECONDS_EACH=$SECONDS_SAVE
for r in $(seq "$ROUNDS"); do
	run "ping.$r" /rpc/ping ''
	run "quote.$r" /rpc/quote '{"tariff": "prime", "months": 3}'
	run "create_invoice.$r" /rpc/create_invoice '{"tariff": "prime", "months": 3}'
done

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# p99 in ms whatever unit wrk chose (us, ms, s)
p99_ms() { awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
	print (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v}' "$1"; }
rps() { for r in $(seq "$ROUNDS"); do awk '/^Requests\/sec:/ {print $2}' "$out/$1.$r.txt"; done | median; }
p99() { for r in $(seq "$ROUNDS"); do p99_ms "$out/$1.$r.txt"; done | median; }
ping_rps=$(rps ping)
invoices=$(psql -tAc "SELECT count(*) FROM billing.payments")

echo
echo "HTTP through PostgREST 12 ($CONNECTIONS connections, $THREADS wrk threads, pool $POOL, median of $ROUNDS rounds of ${SECONDS_EACH}s, $(nproc) cores, load average $(cut -d' ' -f1 /proc/loadavg))"
printf '%-26s %12s %10s %10s\n' endpoint "requests/s" "p99 ms" "vs ping"
for e in ping quote create_invoice; do
	printf '%-26s %12s %10s %10s\n' "POST /rpc/$e" "$(rps $e)" "$(p99 $e)" \
		"$(awk -v a="$(rps $e)" -v b="$ping_rps" 'BEGIN {printf "%.2f", a / b}')"
done
echo "($invoices invoices stored)"
ratio=$(awk -v a="$(rps create_invoice)" -v b="$ping_rps" 'BEGIN {printf "%.2f", a / b}')
if awk -v r="$ratio" 'BEGIN {exit !(r >= 0.5)}'; then
	echo "create_invoice / ping = $ratio (target >= 0.5): met"
else
	echo "create_invoice / ping = $ratio (target >= 0.5): NOT met"
fi
