#!/usr/bin/env bash
# run_expiry benchmark: the same 10,000 due subscriptions among 100,000 and
# among 1,000,000.  The sweep reads only due rows through subscriptions_due,
# so its time must not grow with the table: targets ≤ 2 s at 1,000,000 and a
# ratio (1,000,000 / 100,000) ≤ 1.5.
# Each figure is the median of three runs, each in a transaction rolled back
# so that every run sees the same 10,000 due rows.
# Usage: bench/expiry.sh [due] [small] [large]
set -euo pipefail
. "$(dirname "$0")/../scripts/lib.sh"
cd "$BILLING_SRC"

DUE=${1:-10000}
SMALL=${2:-100000}
LARGE=${3:-1000000}
BILLING_WORK=${BILLING_WORK:-/tmp/billing-bench-$(printf %s "$BILLING_SRC" | md5sum | cut -c1-8)}
export BILLING_WORK

ensure_deps
build_private_root "$BILLING_WORK"
dir=$BILLING_WORK/cluster-bench-expiry
port=$(free_port)
"$BILLING_SRC/scripts/cluster" init "$dir" "$port" \
	"shared_buffers = '1GB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" \
	"synchronous_commit = off" >/dev/null
trap '"$BILLING_SRC/scripts/cluster" destroy "$dir"' EXIT
psql() { "$BILLING_PGBIN/psql" -h "$dir" -p "$port" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 "$@"; }

# The sweep runs at billing time 2026-06-15 12:00.  Due rows are spread over
# the table (every total/due-th row), a third each: reminder, end of term
# (→ grace), end of grace (→ blocked).  The rest end months later.
populate() {	# $1 = total rows
	psql -v total="$1" -v due="$DUE" <<'SQL'
UPDATE cron.job SET active = false;
TRUNCATE billing.outbox, billing.subscriptions, billing.customers, marketing.tariffs RESTART IDENTITY CASCADE;
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('prime', 'Prime', 29900);
INSERT INTO billing.customers (user_id)
    SELECT md5(i::text)::uuid FROM generate_series(1, :total) AS i;
INSERT INTO billing.subscriptions
    (user_id, tariff_id, status, anchor_at, months, ends_at, grace_ends_at, next_check_at)
SELECT md5(i::text)::uuid, 1, st, anchor, 1, ends, ends + interval '2 days', nxt
FROM generate_series(1, :total) AS i,
     LATERAL (SELECT i % (:total / :due) = 0 AS is_due, (i / (:total / :due)) % 3 AS kind) k,
     LATERAL (SELECT CASE WHEN NOT is_due THEN timestamptz '2026-06-01 12:00+00' + (i % 1000) * interval '1 hour'
                          WHEN kind = 0 THEN timestamptz '2026-05-17 11:00+00'   -- reminder due
                          WHEN kind = 1 THEN timestamptz '2026-05-15 11:00+00'   -- term over
                          ELSE timestamptz '2026-05-13 11:00+00' END AS anchor) a,
     LATERAL (SELECT billing.add_months(anchor, 1) AS ends) e,
     LATERAL (SELECT CASE WHEN is_due AND kind = 2 THEN 'grace' ELSE 'active' END AS st,
                     CASE WHEN is_due AND kind = 2 THEN billing.add_months(anchor, 1) + interval '2 days'
                          WHEN is_due AND kind = 1 THEN billing.add_months(anchor, 1)
                          ELSE billing.add_months(anchor, 1) - interval '3 days' END AS nxt) n;
VACUUM ANALYZE billing.subscriptions, billing.customers, billing.outbox, marketing.tariffs;
CHECKPOINT;
SQL
}

# Prints the median wall time of run_expiry in milliseconds.
measure() {
	local runs=() i
	for i in 1 2 3; do
		runs+=("$(psql -t -A <<'SQL'
SET billing.test_clock = '2026-06-15 12:00+00';
BEGIN;
SELECT clock_timestamp() AS t0 \gset
SELECT billing.run_expiry() AS result \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1);
ROLLBACK;
SQL
)")
	done
	log "runs: ${runs[*]} ms"
	printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p
}

check_counts() {
	psql -t -A <<'SQL'
SET billing.test_clock = '2026-06-15 12:00+00';
BEGIN;
SELECT billing.run_expiry();
ROLLBACK;
SQL
}

log "populating $SMALL subscriptions, $DUE due"
populate "$SMALL"
log "run_expiry: $(check_counts)"
small_ms=$(measure)
log "populating $LARGE subscriptions, $DUE due"
populate "$LARGE"
large_ms=$(measure)

ratio=$(awk -v a="$large_ms" -v b="$small_ms" 'BEGIN { printf "%.2f", a / b }')
echo "run_expiry, $DUE due among $SMALL:   $small_ms ms"
echo "run_expiry, $DUE due among $LARGE: $large_ms ms  (target ≤ 2000 ms)"
echo "ratio: $ratio  (target ≤ 1.5)"
awk -v a="$large_ms" -v r="$ratio" 'BEGIN { exit !(a <= 2000 && r <= 1.5) }' &&
	echo "targets met" || { echo "TARGETS MISSED"; exit 1; }
