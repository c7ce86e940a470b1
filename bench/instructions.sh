#!/usr/bin/env bash
# Instructions per call of the payments workloads (bench/payments/*.sql), by
# valgrind's callgrind: a count, not a time, so it is the same on a busy
# machine and a quiet one, and says where core_payments.sh's tps come from.
#
# Each workload runs in a single-user backend (no client, no network) as a
# prepared statement EXECUTEd N times, each its own transaction, on a copy of
# the same data (bench/payments/setup.sql), with synchronous_commit = off.
# The figure is (instructions at N = LONG) - (instructions at N = SHORT),
# divided by LONG - SHORT: start-up, PREPARE and shut-down cancel out.
#
# The target (issue 9, re-scoping issue 2's pgbench ratios): each payments
# function stays within FLOOR_LIMIT (1.25) x the instructions of its floor, the
# same rows written by plain SQL; the last lines give the verdict, and the
# exit status is 1 when a function is over.
#
# Usage: bench/instructions.sh [short] [long]   (default 100, 300)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SHORT=${1:-100}
LONG=${2:-300}
USERS=10000
FLOOR_LIMIT=1.25
WORKLOADS="insert insert_payments invoice_rows create_invoice settle_rows settle"

BILLING_APT_PACKAGES="$BILLING_APT_PACKAGES valgrind"
bench_prepare
dir=$BILLING_WORK/cluster-bench-instructions
port=$(free_port)
"$BILLING_SRC/scripts/cluster" init "$dir" "$port" >/dev/null
trap '"$BILLING_SRC/scripts/cluster" destroy "$dir"' EXIT
work=bench/payments
"$BILLING_PGBIN/psql" -h "$dir" -p "$port" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 \
	-v users="$USERS" -f "$work/setup.sql" >/dev/null
"$BILLING_SRC/scripts/cluster" stop "$dir"

# The pgbench script as one PREPARE (its :n the parameter) and n EXECUTEs
# for users spread over the customers, in single-user mode's -j syntax (a
# command ends with a semicolon and an empty line).
commands() {	# $1 = workload, $2 = n
	local sql
	sql=$(grep -v '^\\set\|^--' "$work/$1.sql" | sed 's/;[[:space:]]*$//')
	if grep -q ':n\b' <<<"$sql"; then
		printf 'PREPARE w(int) AS %s;\n\n' "$(sed 's/:n\b/$1/g' <<<"$sql")"
		for ((i = 0; i < $2; i++)); do printf 'EXECUTE w(%d);\n\n' $((i * 7919 % USERS + 1)); done
	else
		printf 'PREPARE w AS %s;\n\n' "$sql"
		for ((i = 0; i < $2; i++)); do printf 'EXECUTE w;\n\n'; done
	fi
}

count() {		# $1 = workload, $2 = n: prints the program's total instructions
	local copy=$dir/run out=$dir/callgrind.out
	rm -rf "$copy" "$out"; cp -a "$dir/data" "$copy"
	commands "$1" "$2" >"$dir/commands.sql"
	runuser -u postgres -- valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$BILLING_PGBIN/postgres" --single -j -D "$copy" \
		-c shared_preload_libraries=billing -c synchronous_commit=off -c billing.database= \
		billing <"$dir/commands.sql" >"$dir/$1.log" 2>&1 || { tail -20 "$dir/$1.log" >&2; exit 1; }
	if grep -q 'ERROR' "$dir/$1.log"; then grep -m3 'ERROR' "$dir/$1.log" >&2; exit 1; fi
	awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

declare -A per_call
for w in $WORKLOADS; do
	log "$w: $SHORT and $LONG calls under callgrind"
	a=$(count "$w" "$SHORT")
	b=$(count "$w" "$LONG")
	per_call[$w]=$(( (b - a) / (LONG - SHORT) ))
done

k() { awk -v n="$1" 'BEGIN { printf "%.0f k", n / 1000 }'; }
x() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "instructions per call (callgrind, single-user backend, prepared, synchronous_commit = off,"
echo "($LONG - $SHORT calls) / $((LONG - SHORT)); PostgreSQL $("$BILLING_PGBIN/postgres" --version | awk '{print $3}'), $(uname -m)"
printf '%-36s %10s %16s %14s\n' workload "per call" "x bare INSERT" "x its floor"
printf '%-36s %10s %16s %14s\n' "bare INSERT (payments width)" "$(k "${per_call[insert]}")" 1.00 -
printf '%-36s %10s %16s %14s\n' "  same INSERT into billing.payments" "$(k "${per_call[insert_payments]}")" \
	"$(x "${per_call[insert_payments]}" "${per_call[insert]}")" -
printf '%-36s %10s %16s %14s\n' "  invoice rows, plain SQL (floor)" "$(k "${per_call[invoice_rows]}")" \
	"$(x "${per_call[invoice_rows]}" "${per_call[insert]}")" 1.00
printf '%-36s %10s %16s %14s\n' "create_invoice" "$(k "${per_call[create_invoice]}")" \
	"$(x "${per_call[create_invoice]}" "${per_call[insert]}")" "$(x "${per_call[create_invoice]}" "${per_call[invoice_rows]}")"
printf '%-36s %10s %16s %14s\n' "  settle rows, plain SQL (floor)" "$(k "${per_call[settle_rows]}")" \
	"$(x "${per_call[settle_rows]}" "${per_call[insert]}")" 1.00
printf '%-36s %10s %16s %14s\n' "settle_payment(..., 'paid')" "$(k "${per_call[settle]}")" \
	"$(x "${per_call[settle]}" "${per_call[insert]}")" "$(x "${per_call[settle]}" "${per_call[settle_rows]}")"

# The verdict against the target: function / floor <= FLOOR_LIMIT.
over=0
verdict() {	# name, function's count, floor's count
	local r
	r=$(x "$2" "$3")
	if awk -v r="$r" -v l="$FLOOR_LIMIT" 'BEGIN { exit !(r <= l) }'; then
		printf '%-28s %s x its floor: within %s x\n' "$1" "$r" "$FLOOR_LIMIT"
	else
		printf '%-28s %s x its floor: OVER %s x\n' "$1" "$r" "$FLOOR_LIMIT"
		over=1
	fi
}
echo
echo "target: each payments function within $FLOOR_LIMIT x the instructions of its floor"
verdict create_invoice "${per_call[create_invoice]}" "${per_call[invoice_rows]}"
verdict "settle_payment(..., 'paid')" "${per_call[settle]}" "${per_call[settle_rows]}"
exit $over
