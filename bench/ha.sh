#!/usr/bin/env bash
# High-availability benchmark, in one run of this script:
#   1. create_invoice throughput (pgbench, 8 and 32 clients) on the primary of a
#      pg_auto_failover formation with its synchronous standby (scripts/ha-cluster)
#      against a single node with the same settings (both printed: pg_auto_failover
#      adds wal_log_hints and its own work_mem), rounds interleaved; the
#      ratio sync / single (the median of the rounds' ratios).  Target: >= 0.6
#      at 8 clients.  Also at 32: a commit waits for the standby's answer, so
#      more clients at once (a larger PostgREST pool) hide more of that wait;
#      and the capacity ratio, each server at its best client count.
#      Each round runs the single node for SECONDS, then the primary for the
#      same number of transactions, so both ledgers grow alike (create_invoice
#      slows as its tables grow, and the faster node would otherwise be
#      measured on a bigger ledger; the primary's clients, each with its share,
#      end a little apart, a small cost to its figure).  Autovacuum is off for
#      both: this measures the replication, not pg_auto_failover's own
#      autovacuum scale factors, which a formation pays in production.
#   2. failover: kill -9 of the primary's pg_autoctl and postmaster while a
#      client calls create_invoice through PostgREST (multi-host URI,
#      target_session_attrs=read-write) every 50 ms; the time from the kill to
#      the first successful write, and to the monitor's promotion.
# Both with pg_auto_failover's default timeouts (README, "Running with a standby").
#
# Usage: bench/ha.sh [seconds per run] [rounds]   (default 10, 3)
#   CLIENTS="8 16" bench/ha.sh   the client counts to measure
#   SYNC=remote_write bench/ha.sh   runs the formation with that synchronous_commit
#   (default on: the standby has flushed the commit; remote_write: it has
#   written it, not yet flushed, so only losing both machines at once loses it)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CLIENTS=${CLIENTS:-8 32}	# the first is the target's
THREADS=2
USERS=10000
PY=/usr/bin/python3

bench_prepare
export BILLING_PGBIN
ha=$BILLING_WORK/ha-formation
single=$BILLING_WORK/cluster-bench-single
base=$(free_port)
while [ "$base" -gt 65000 ]; do base=$(free_port); done
single_port=$(free_port)
http_port=$(free_port)
# autovacuum off: the growing ledger would trigger it at different moments on
# the two servers (pg_auto_failover sets its own scale factors), in the middle
# of a measured run (setup.sql vacuums and analyzes once).
conf=("shared_buffers = '512MB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" "autovacuum = off")
SYNC=${SYNC:-on}
pgrst_pid=
cleanup() {
	[ -n "$pgrst_pid" ] && kill "$pgrst_pid" 2>/dev/null || true
	"$BILLING_SRC/scripts/ha-cluster" destroy "$ha" || true
	"$BILLING_SRC/scripts/cluster" destroy "$single" || true
}
trap cleanup EXIT

log "a monitor and two nodes (about a minute)"
BILLING_HA_CONF=$(printf '%s\n' "${conf[@]}" "synchronous_commit = $SYNC") \
	"$BILLING_SRC/scripts/ha-cluster" init "$ha" "$base"
"$BILLING_SRC/scripts/cluster" init "$single" "$single_port" "${conf[@]}" >/dev/null
ha_port=$((base + 1))

psql_at() { "$BILLING_PGBIN/psql" -h 127.0.0.1 -p "$1" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 "${@:2}"; }
for p in "$ha_port" "$single_port"; do
	psql_at "$p" -v users="$USERS" -f bench/payments/setup.sql >/dev/null
done

run() {		# port, clients, pgbench's length (-T seconds or -t transactions per client); prints "tps transactions"
	local log=$BILLING_WORK/ha-bench-$1.log
	psql_at "$1" -c CHECKPOINT
	"$BILLING_PGBIN/pgbench" -h 127.0.0.1 -p "$1" -U postgres -n -M prepared \
		-c "$2" -j "$THREADS" -D users="$USERS" "$3" "$4" \
		-f bench/payments/create_invoice.sql billing >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
	echo "$(grep -E '^tps = ' "$log" | grep -oE '[0-9]+\.[0-9]+' | head -1)" \
		"$(grep -oE 'actually processed: [0-9]+' "$log" | grep -oE '[0-9]+')"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
calc() { awk "BEGIN {printf \"%.${2:-1}f\", $1}"; }

log "create_invoice: $ROUNDS rounds of ${SECONDS_PER_RUN}s for $CLIENTS clients, single node and synchronous standby interleaved"
declare -A single_tps sync_tps ratios
for r in $(seq "$ROUNDS"); do
	for c in $CLIENTS; do
		out=$(run "$single_port" "$c" -T "$SECONDS_PER_RUN"); read -r st n <<<"$out"
		[ -n "$st" ] && [ -n "$n" ] || { echo "no tps or count in $BILLING_WORK/ha-bench-$single_port.log" >&2; exit 1; }
		out=$(run "$ha_port" "$c" -t $(((n + c - 1) / c))); read -r ht _ <<<"$out"
		[ -n "$ht" ] || { echo "no tps in $BILLING_WORK/ha-bench-$ha_port.log" >&2; exit 1; }
		single_tps[$c]+="$st " sync_tps[$c]+="$ht " ratios[$c]+="$(calc "$ht / $st" 3) "
		printf '  round %s, %2s clients: single %5.0f tps, sync standby %5.0f tps, ratio %s\n' \
			"$r" "$c" "$st" "$ht" "$(calc "$ht / $st" 2)"
	done
done
# What the two servers ran with, printed beside the figures: the comparison
# holds only if these match but for the replication itself.
settings() {		# port
	psql_at "$1" -At -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
		WHERE name IN ('shared_buffers', 'work_mem', 'autovacuum', 'wal_log_hints', 'synchronous_commit',
		               'synchronous_standby_names', 'max_wal_size', 'checkpoint_timeout')"
}
single_settings=$(settings "$single_port") ha_settings=$(settings "$ha_port")

# The best of each server's medians over the client counts, as a ratio.
capacity() {
	local c best_s=0 best_h=0 m
	for c in $CLIENTS; do
		# shellcheck disable=SC2086
		m=$(median ${single_tps[$c]}); best_s=$(awk -v a="$best_s" -v b="$m" 'BEGIN {print (b > a) ? b : a}')
		# shellcheck disable=SC2086
		m=$(median ${sync_tps[$c]}); best_h=$(awk -v a="$best_h" -v b="$m" 'BEGIN {print (b > a) ? b : a}')
	done
	printf '%.2f (single %.0f tps, with the standby %.0f tps)' "$(calc "$best_h / $best_s" 3)" "$best_s" "$best_h"
}
"$BILLING_SRC/scripts/cluster" destroy "$single"

# --- failover through PostgREST ------------------------------------------------
secret=ha-bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
psql_at "$ha_port" -c "ALTER ROLE billing_authenticator LOGIN"
PGRST_DB_URI="postgresql://billing_authenticator@127.0.0.1:$ha_port,127.0.0.1:$((base + 2))/billing?target_session_attrs=read-write&connect_timeout=3" \
PGRST_DB_SCHEMAS=api PGRST_DB_ANON_ROLE=billing_anon PGRST_DB_PRE_REQUEST=api_private.pre_request \
PGRST_JWT_SECRET=$secret PGRST_SERVER_HOST=127.0.0.1 PGRST_SERVER_PORT=$http_port \
	"$POSTGREST_BIN" >"$BILLING_WORK/ha-bench-postgrest.log" 2>&1 &
pgrst_pid=$!
token=$(JWT_SECRET=$secret "$PY" -c '
import base64, hashlib, hmac, json, os, time, uuid
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"user": str(uuid.uuid4()), "exp": int(time.time()) + 3600}).encode())
sig = hmac.new(os.environ["JWT_SECRET"].encode(), (head + "." + body).encode(), hashlib.sha256).digest()
print(head + "." + body + "." + b64(sig))')
write() {
	curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST "http://127.0.0.1:$http_port/rpc/create_invoice" \
		-H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		-d '{"tariff": "films", "months": 1}' || true
}
for n in $(seq 300); do [ "$(write)" = 200 ] && break; sleep 0.1; done
[ "$(write)" = 200 ] || { echo "PostgREST does not take writes" >&2; exit 1; }

log "failover: kill -9 of the primary's pg_autoctl and postmaster"
now() { date +%s.%N; }
t_kill=$(now)
"$BILLING_SRC/scripts/ha-cluster" kill "$ha" node1 >/dev/null
t_promoted= t_write= failed=0
while [ -z "$t_write" ]; do
	code=$(write)
	if [ "$code" = 200 ]; then t_write=$(now); else failed=$((failed + 1)); sleep 0.05; fi
	if [ -z "$t_promoted" ] && "$BILLING_SRC/scripts/ha-cluster" primary "$ha" 2>/dev/null | grep -qx "$((base + 2))"; then
		t_promoted=$(now)
	fi
	awk -v a="$(now)" -v b="$t_kill" 'BEGIN {exit !(a - b > 300)}' && { echo "no write within 300 s" >&2; exit 1; }
done
[ -n "$t_promoted" ] || t_promoted=$t_write

cat <<EOF

create_invoice, medians of $ROUNDS rounds (synchronous_commit = $SYNC):
$(for c in $CLIENTS; do
	# shellcheck disable=SC2086
	printf '  %2s clients: single node %5.0f tps, with a synchronous standby %5.0f tps, ratio %.2f\n' \
		"$c" "$(median ${single_tps[$c]})" "$(median ${sync_tps[$c]})" "$(median ${ratios[$c]})"
done)
  capacity, each at its best client count: ratio $(capacity)
  target: ratio >= 0.6 at ${CLIENTS%% *} clients
settings, single node: $single_settings
          primary:     $ha_settings

failover (kill -9 of the primary's pg_autoctl and postmaster):
  kill -> monitor reports the standby writable   $(calc "$t_promoted - $t_kill") s
  kill -> first write through PostgREST          $(calc "$t_write - $t_kill") s
  requests refused meanwhile (503)               $failed
machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)
EOF
