#!/usr/bin/env bash
# Core payments benchmark: transactions per second of
#   insert          a bare single-row INSERT into a table as wide as billing.payments
#   create_invoice  billing.create_invoice(user, 'films', 3)  (quote + snapshot + event)
#   settle          billing.settle_payment(id, 'paid')         (+ subscription + outbox)
# each with pgbench, 8 clients, in one run of this script (several rounds,
# the workloads interleaved), and the ratios to the bare INSERT.
# Targets: create_invoice >= 0.7 x insert, settle >= 0.5 x insert.
#
# Beside them, the physical floor of each function: the very rows it writes,
# with the same constraints, indexes and foreign keys, written by one plain
# SQL statement with the values filled in (no pricing, no state machine, no
# function call):
#   invoice rows    customer upsert + payment + its creation event
#   settle rows     payment lock + subscription upsert + its outbox messages
#                   + the payment update + its event
# and the ratio of each function to its floor.  For context it also runs the
# INSERT of the bare workload into billing.payments itself.
#
# The settle runs (settle rows and settle_payment alike) pay the open
# invoices, those of the setup and those the invoice runs made, each exactly
# once (a sequence hands them out), so every settle is a real invoiced -> paid
# transition.  The data and the workloads are bench/payments/.  Buyers are 10,000 existing customers (a returning customer is
# the common case; a first purchase adds one customer row and one outbox row).
#
# Usage: bench/core_payments.sh [seconds per run] [rounds]   (default 10, 3)
#   SYNC=off bench/core_payments.sh   runs with synchronous_commit = off
#   (CPU-bound: shows the per-call cost without the WAL flush at commit).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-3}
CLIENTS=8
THREADS=2
USERS=10000
SYNC=${SYNC:-on}

bench_prepare
dir=$BILLING_WORK/cluster-bench-payments
port=$(free_port)
"$BILLING_SRC/scripts/cluster" init "$dir" "$port" \
	"shared_buffers = '512MB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" \
	"synchronous_commit = $SYNC" >/dev/null
trap '"$BILLING_SRC/scripts/cluster" destroy "$dir"' EXIT
psql() { "$BILLING_PGBIN/psql" -h "$dir" -p "$port" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 "$@"; }
work=bench/payments		# the data (setup.sql) and one pgbench script per workload

psql -v users="$USERS" -f "$work/setup.sql" >/dev/null

run() {		# $1 = name, rest = pgbench options; prints the TPS
	local name=$1; shift
	psql -c "CHECKPOINT"
	"$BILLING_PGBIN/pgbench" -h "$dir" -p "$port" -U postgres -n -M prepared \
		-c "$CLIENTS" -j "$THREADS" -D users="$USERS" "$@" -f "$work/$name.sql" billing \
		>"$dir/$name.log" 2>&1 || { cat "$dir/$name.log" >&2; exit 1; }
	grep -E '^tps = ' "$dir/$name.log" | grep -oE '[0-9]+\.[0-9]+' | head -1
}

# The machine may be shared: one long run per workload would compare
# different moments of its load.  Instead ROUNDS rounds, each running every
# workload for SECONDS_PER_RUN in turn; the figures are the medians and each
# ratio is the median of the per-round ratios.
declare -a I P F C G S
taken() { psql -At -c "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM bench.next"; }
settle_run() {		# $1 = workload, $2 = most settles: prints the TPS
	local queued left per_client tps
	queued=$(psql -At -c "SELECT count(*) FROM bench.queue")
	left=$((queued - $(taken)))
	per_client=$(( ($2 < left ? $2 : left) / CLIENTS ))
	tps=$(run "$1" -t "$per_client")
	[ "$(taken)" -le "$queued" ] || { echo "the settle queue ran dry ($(taken) > $queued)" >&2; exit 1; }
	echo "$tps"
}
for ((r = 1; r <= ROUNDS; r++)); do
	log "round $r/$ROUNDS: bare INSERT, INSERT into billing.payments, invoice rows, create_invoice, settle rows, settle (${SECONDS_PER_RUN}s each)"
	I[r]=$(run insert -T "$SECONDS_PER_RUN")
	P[r]=$(run insert_payments -T "$SECONDS_PER_RUN")
	# Those rows are not invoices (no event, no quote): out of the way.
	psql -c "DELETE FROM billing.payments p WHERE NOT EXISTS (SELECT FROM billing.payment_events e WHERE e.payment_id = p.id)" \
		-c "VACUUM ANALYZE billing.payments"
	F[r]=$(run invoice_rows -T "$SECONDS_PER_RUN")
	C[r]=$(run create_invoice -T "$SECONDS_PER_RUN")
	psql -c "CALL bench.enqueue()" -c "VACUUM ANALYZE bench.queue"
	# A fixed number of settles, never more than the queue holds (a number
	# past its end would settle nothing and flatter the figure): as many as
	# this round's create_invoice run made, so a run lasts about as long.
	made=$(awk -v t="${C[r]}" -v s="$SECONDS_PER_RUN" 'BEGIN { printf "%d", t * s }')
	G[r]=$(settle_run settle_rows "$made")
	S[r]=$(settle_run settle "$made")
done

taken=$(taken)
paid=$(psql -At -c "SELECT count(*) FROM billing.payments WHERE status = 'paid'")
[ "$paid" -eq $((taken + USERS / 2)) ] || { echo "expected $((taken + USERS / 2)) paid, found $paid" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
ratios() {		# $1, $2 = names of the arrays: per-round ratios of $1 to $2
	local -n w=$1 b=$2
	for ((r = 1; r <= ROUNDS; r++)); do awk -v a="${w[r]}" -v b="${b[r]}" 'BEGIN { printf "%.3f\n", a / b }'; done
}
ratio() { printf '%.2f' "$(median $(ratios "$1" "$2"))"; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "ok" : "BELOW TARGET") }'; }
rounds() { local -n w=$1; local out="" x; for ((r = 1; r <= ROUNDS; r++)); do out+=$(printf ' %.0f' "${w[r]}"); done; echo "$out"; }
pr=$(ratio P I) fr=$(ratio F I) cr=$(ratio C I) gr=$(ratio G I) sr=$(ratio S I)

echo
echo "core payments, pgbench -M prepared, $CLIENTS clients, synchronous_commit = $SYNC, $ROUNDS rounds of ${SECONDS_PER_RUN}s,"
echo "$(nproc) cores, $(uname -m), PostgreSQL $("$BILLING_PGBIN/postgres" --version | awk '{print $3}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
line() {	# name, array, ratio, target, verdict
	local -n w=$2
	printf '%-36s %8.0f %7s %7s   %-26s %s\n' "$1" "$(median "${w[@]:1}")" "$3" "$4" "$(rounds "$2")" "${5:-}"
}
printf '%-36s %8s %7s %7s   %s\n' workload tps ratio target "tps per round"
line "bare INSERT (payments width)" I 1.00 -
line "  same INSERT into billing.payments" P "$pr" -
line "  invoice rows, plain SQL (floor)" F "$fr" -
line "create_invoice" C "$cr" 0.70 "$(verdict "$cr" 0.7)"
line "  settle rows, plain SQL (floor)" G "$gr" -
line "settle_payment(..., 'paid')" S "$sr" 0.50 "$(verdict "$sr" 0.5)"
echo
echo "each function against the rows it writes (its floor): create_invoice $(ratio C F), settle_payment $(ratio S G)"
above() {	# name, floor ratio, target: says when the floor itself is below the target
	awk -v n="$1" -v f="$2" -v t="$3" 'BEGIN { if (f < t) printf "%s: the target %.2f is above its floor %.2f: writing these rows alone does not reach it\n", n, t, f }'
}
above create_invoice "$fr" 0.70
above settle_payment "$gr" 0.50
