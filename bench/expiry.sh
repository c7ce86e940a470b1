#!/usr/bin/env bash
# run_expiry benchmark: the same 10,000 due subscriptions among 100,000 and
# among 1,000,000.  The sweep reads only due rows through subscriptions_due,
# so its time must not grow with the table: targets ≤ 2 s at 1,000,000 and a
# ratio (1,000,000 / 100,000) ≤ 1.5.
#
# Each table lives in its own cluster (pg_cron allows the extension in one
# database per cluster) and the runs alternate between them, so that load
# from elsewhere on the machine hits both alike.  Each run commits; before the next one the due rows are
# put back as they were, the outbox emptied and both vacuumed.  Each figure is
# the median of the runs.  No checkpoint falls inside a run (the first run
# after the data load writes full-page images for every page it touches; it is
# reported, not counted).
# Usage: bench/expiry.sh [due] [small] [large] [runs]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DUE=${1:-10000}
SMALL=${2:-100000}
LARGE=${3:-1000000}
RUNS=${4:-5}

bench_prepare
declare -A port
for c in small large; do
	port[$c]=$(free_port)
	"$BILLING_SRC/scripts/cluster" init "$BILLING_WORK/bench-expiry-$c" "${port[$c]}" \
		"shared_buffers = '1GB'" "max_wal_size = '8GB'" "checkpoint_timeout = '1h'" \
		"synchronous_commit = off" >/dev/null
done
trap 'for c in small large; do "$BILLING_SRC/scripts/cluster" destroy "$BILLING_WORK/bench-expiry-$c"; done' EXIT
psql() {	# $1 = small|large, then psql arguments
	local c=$1; shift
	"$BILLING_PGBIN/psql" -h "$BILLING_WORK/bench-expiry-$c" -p "${port[$c]}" -U postgres -d billing \
		-X -q -v ON_ERROR_STOP=1 "$@"
}

# The sweep runs at billing time 2026-06-15 12:00.  Every (total/due)-th row
# is due, spread over the whole table; a third each: reminder due, term over
# (→ grace), grace over (→ blocked).  The other rows end weeks later.
# kind(id) = (id / step) % 3 says which; restore() puts due rows back.
populate() {	# $1 = small|large, $2 = total rows
	psql "$1" -v total="$2" -v due="$DUE" <<'SQL'
UPDATE cron.job SET active = false;
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
                     CASE WHEN is_due AND kind = 2 THEN ends + interval '2 days'
                          WHEN is_due AND kind = 1 THEN ends
                          ELSE ends - interval '3 days' END AS nxt) n;
VACUUM ANALYZE;
SQL
}

restore() {	# $1 = small|large, $2 = total rows
	psql "$1" -v total="$2" -v due="$DUE" <<'SQL'
DELETE FROM billing.outbox;
UPDATE billing.subscriptions
SET status = CASE WHEN (id / (:total / :due)) % 3 = 2 THEN 'grace' ELSE 'active' END,
    next_check_at = CASE (id / (:total / :due)) % 3 WHEN 2 THEN grace_ends_at
                                                    WHEN 1 THEN ends_at
                                                    ELSE ends_at - interval '3 days' END
WHERE id % (:total / :due) = 0;
VACUUM ANALYZE billing.outbox, billing.subscriptions;
SQL
}

# One sweep; prints its wall time in milliseconds (and checks what it did).
sweep() {	# $1 = small|large
	psql "$1" -t -A <<'SQL'
SET billing.test_clock = '2026-06-15 12:00+00';
SELECT clock_timestamp() AS t0 \gset
SELECT billing.run_expiry() AS result \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 1);
\o /dev/null
-- fails (division by zero) unless the counts match the messages written
SELECT 1 / ((:'result'::jsonb->>'grace')::int + (:'result'::jsonb->>'blocked')::int
            + (:'result'::jsonb->>'reminders')::int
            = (SELECT count(*) FROM billing.outbox WHERE kind = 'notify'))::int;
SQL
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

log "populating $SMALL and $LARGE subscriptions, $DUE due in each"
populate small "$SMALL"
populate large "$LARGE"
psql small -c CHECKPOINT
psql large -c CHECKPOINT
log "what one sweep does: $(psql small -t -A -c "SET billing.test_clock = '2026-06-15 12:00+00'; BEGIN; SELECT billing.run_expiry(); ROLLBACK;")"

small=() large=()
first_small=$(sweep small)
first_large=$(sweep large)
log "first runs after the load (full-page writes): $first_small ms / $first_large ms"
for i in $(seq "$RUNS"); do
	restore small "$SMALL"; small+=("$(sweep small)")
	restore large "$LARGE"; large+=("$(sweep large)")
done
log "runs among $SMALL: ${small[*]} ms"
log "runs among $LARGE: ${large[*]} ms"
small_ms=$(printf '%s\n' "${small[@]}" | median)
large_ms=$(printf '%s\n' "${large[@]}" | median)

ratio=$(awk -v a="$large_ms" -v b="$small_ms" 'BEGIN { printf "%.2f", a / b }')
echo "run_expiry, $DUE due among $SMALL:   $small_ms ms (median of $RUNS)"
echo "run_expiry, $DUE due among $LARGE: $large_ms ms (median of $RUNS; target ≤ 2000 ms)"
echo "ratio: $ratio  (target ≤ 1.5)"
awk -v a="$large_ms" -v r="$ratio" 'BEGIN { exit !(a <= 2000 && r <= 1.5) }' &&
	echo "targets met" || { echo "TARGETS MISSED"; exit 1; }
