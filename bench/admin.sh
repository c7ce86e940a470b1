#!/usr/bin/env bash
# Admin panel benchmark: 1,000,000 payments of 300,000 users (one
# subscription each), then the database time of what the panel asks for:
# the first page (25 rows, newest first) of the payments list with each one
# filter, and the dashboard for 30 and 90 days.  Target: each ≤ 100 ms.  Each
# figure is the median of RUNS runs of EXPLAIN (ANALYZE, TIMING OFF) (planning
# + execution),
# run as billing_admin through the api views, as PostgREST runs them.  Also
# prints the gzip size of the built panel.
# Usage: bench/admin.sh [payments] [users] [runs]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PAYMENTS=${1:-1000000}
USERS=${2:-300000}
RUNS=${3:-5}

bench_prepare
dir=$BILLING_WORK/bench-admin
port=$(free_port)
"$BILLING_SRC/scripts/cluster" init "$dir" "$port" \
	"shared_buffers = '1GB'" "max_wal_size = '8GB'" "checkpoint_timeout = '1h'" \
	"synchronous_commit = off" "billing.stripe_poll_schedule = ''" >/dev/null
# BENCH_KEEP=1 leaves the cluster running for a closer look.
[ "${BENCH_KEEP:-0}" = 1 ] || trap '"$BILLING_SRC/scripts/cluster" destroy "$dir"' EXIT
psql() { "$BILLING_PGBIN/psql" -h "$dir" -p "$port" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 "$@"; }

log "filling $PAYMENTS payments of $USERS users"
# Billing time 2026-06-30 12:00; payments spread over the year before it.
# 80 % paid, 4 % refunded, 10 % expired, 3 % canceled, 3 % still open; every
# tenth of the first USERS payments used one of 20 promo codes.  A tenth are
# automatic charges (auto-renewal), a fifth of those failed and retried a
# day later, every other retry paid.
psql -v payments="$PAYMENTS" -v users="$USERS" <<'SQL'
UPDATE cron.job SET active = false;
SET billing.test_clock = '2026-06-30 12:00+00';
INSERT INTO marketing.tariffs (code, title, monthly_price, currency) VALUES
    ('prime', 'Prime', 29900, 'RUB'), ('family', 'Family', 49900, 'RUB'), ('world', 'World', 999, 'EUR');
INSERT INTO marketing.promo_codes (code, percent, valid_until, redemptions)
    SELECT 'PROMO' || i, 10 + i, '2027-01-01', 0 FROM generate_series(1, 20) i;
INSERT INTO billing.customers (user_id, email)
    SELECT md5(i::text)::uuid, 'user' || i || '@example.com' FROM generate_series(1, :users) i;
INSERT INTO billing.subscriptions (user_id, tariff_id, status, anchor_at, months, ends_at, grace_ends_at, created_at)
    SELECT md5(i::text)::uuid, 1 + i % 3,
           CASE WHEN i % 10 < 7 THEN 'active' WHEN i % 10 < 8 THEN 'grace' ELSE 'blocked' END,
           t, 1, t + interval '1 month', t + interval '1 month 2 days', t
    FROM generate_series(1, :users) i,
         LATERAL (SELECT timestamptz '2025-07-01 00:00+00' + (i % 360) * interval '1 day' AS t) x;
INSERT INTO billing.payments (user_id, tariff_id, tariff_code, tariff_title, months, monthly_price, list_price,
                              promo_code_id, promo_code, promo_percent, applied, total, currency, status,
                              created_at, updated_at, expires_at, paid_at, closed_at, subscription_id,
                              renewal_of, renewal_attempt)
    SELECT md5(u::text)::uuid, tid, code, code, 1, price, price,
           promo, CASE WHEN promo IS NOT NULL THEN 'PROMO' || promo END, CASE WHEN promo IS NOT NULL THEN 10 ELSE 0 END,
           CASE WHEN promo IS NOT NULL THEN 'promo' ELSE 'none' END, price, cur, st,
           created, created, created + interval '1 day',
           CASE WHEN st IN ('paid', 'refunded') THEN created + interval '1 minute' END,
           CASE WHEN st IN ('refunded', 'expired', 'canceled', 'failed') THEN created + interval '1 hour' END,
           CASE WHEN st IN ('paid', 'refunded') THEN u END,
           CASE WHEN auto THEN created + interval '1 day' END, CASE WHEN auto THEN 1 END
    FROM generate_series(1, :payments) i,
         LATERAL (SELECT i % 10 = 5 AS auto) r,
         LATERAL (SELECT 1 + i % :users AS u, 1 + (1 + i % :users) % 3 AS tid) a,
         LATERAL (SELECT CASE tid WHEN 1 THEN 'prime' WHEN 2 THEN 'family' ELSE 'world' END AS code,
                         CASE tid WHEN 1 THEN 29900 WHEN 2 THEN 49900 ELSE 999 END AS price,
                         CASE tid WHEN 3 THEN 'EUR' ELSE 'RUB' END AS cur,
                         CASE WHEN auto AND i % 100 >= 80 THEN 'failed'
                              WHEN i % 100 < 80 THEN 'paid' WHEN i % 100 < 84 THEN 'refunded'
                              WHEN i % 100 < 94 THEN 'expired' WHEN i % 100 < 97 THEN 'canceled'
                              ELSE 'invoiced' END AS st,
                         timestamptz '2026-06-30 12:00+00' - (i::float8 / :payments) * interval '365 days' AS created,
                         CASE WHEN i <= :users AND i % 10 = 0 THEN 1 + (i / 10) % 20 END AS promo) b;
-- Each failed automatic charge was retried a day later: every other retry
-- paid (recovered), the rest failed again.
INSERT INTO billing.payments (user_id, tariff_id, tariff_code, tariff_title, months, monthly_price, list_price,
                              applied, total, currency, status, created_at, updated_at, expires_at,
                              paid_at, closed_at, subscription_id, renewal_of, renewal_attempt)
    SELECT user_id, tariff_id, tariff_code, tariff_title, months, monthly_price, list_price,
           applied, total, currency, CASE WHEN ok THEN 'paid' ELSE 'failed' END, t, t, expires_at,
           CASE WHEN ok THEN t + interval '1 minute' END, CASE WHEN NOT ok THEN t + interval '1 hour' END,
           CASE WHEN ok THEN subscription_id END, renewal_of, 2
    FROM billing.payments p,
         LATERAL (SELECT p.created_at + interval '1 day' AS t, hashtext(p.id::text) % 2 = 0 AS ok) x
    WHERE p.renewal_of IS NOT NULL AND p.status = 'failed' AND x.t <= '2026-06-30 12:00+00';
UPDATE marketing.promo_codes pc SET redemptions = n
    FROM (SELECT promo_code_id, count(*) AS n FROM billing.payments WHERE promo_code_id IS NOT NULL GROUP BY 1) r
    WHERE r.promo_code_id = pc.id;
INSERT INTO billing.outbox (kind, payload, idempotency_key, status, attempts, last_error)
    SELECT 'notify', '{}', 'bench-dead-' || i, 'dead', 8, 'UNAVAILABLE' FROM generate_series(1, 50) i;
SQL
# What the hourly pg_cron job keeps up to date: the closed days' revenue.
psql -c "SET billing.test_clock = '2026-06-30 12:00+00'" -c "SELECT billing.revenue_rollup()" >/dev/null
psql -c "VACUUM ANALYZE"

# timed NAME SQL: median (planning + execution) of RUNS EXPLAIN ANALYZE runs, in ms.
timed() {
	local name=$1 sql=$2 i t times=()
	for i in $(seq "$RUNS"); do
		t=$(psql -tA <<-SQL | awk '/Planning Time|Execution Time/ {s += $3} END {printf "%.1f", s}'
			SET billing.test_clock = '2026-06-30 12:00+00';
			SET ROLE billing_admin;
			EXPLAIN (ANALYZE, TIMING OFF) $sql
		SQL
		)
		times+=("$t")
	done
	printf '%-44s %8s ms\n' "$name" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")"
}
first_page() { timed "payments, $1" "SELECT * FROM api.admin_payments WHERE $2 ORDER BY created_at DESC LIMIT 25 OFFSET 0"; }

echo
echo "database time of the admin panel's queries ($PAYMENTS payments, $USERS users; median of $RUNS)"
first_page "no filter" "true"
first_page "status = paid" "status = 'paid'"
first_page "status = invoiced" "status = 'invoiced'"
first_page "tariff = world" "tariff_code = 'world'"
first_page "created in the last 7 days" "created_at >= '2026-06-23'"
first_page "user id" "user_id = md5('4242')::uuid"
first_page "e-mail" "email = 'user4242@example.com'"
first_page "promo code" "promo_code = 'PROMO7'"
first_page "automatic charges" "automatic"
timed "automatic charges of one user" "SELECT * FROM api.admin_renewal_charges WHERE user_id = md5('4246')::uuid ORDER BY renewal_of DESC, renewal_attempt"
timed "users, newest first" "SELECT * FROM api.admin_users ORDER BY created_at DESC LIMIT 25 OFFSET 0"
timed "users, e-mail" "SELECT * FROM api.admin_users WHERE email = 'user4242@example.com' ORDER BY created_at DESC LIMIT 25"
timed "audit log, newest first" "SELECT * FROM api.admin_audit ORDER BY id DESC LIMIT 25 OFFSET 0"
timed "payment events of one payment" "SELECT * FROM api.admin_payment_events WHERE payment_id = (SELECT id FROM api.admin_payments LIMIT 1) ORDER BY id"
for days in 30 90; do
	timed "dashboard: revenue, totals, purchases, $days d" "SELECT billing.admin_dashboard_revenue($days)"
done
timed "dashboard: subscriptions now" "SELECT billing.admin_dashboard_subscriptions()"
timed "dashboard: promo codes" "SELECT billing.admin_dashboard_promo_codes()"
for days in 30 90; do
	timed "dashboard: renewal recovery rate, $days d" "SELECT billing.admin_dashboard_renewals($days)"
done
timed "dashboard: delivery and Stripe poll" "SELECT billing.admin_dashboard_delivery()"
timed "dashboard, whole document, 90 days" "SELECT api.admin_dashboard(90)"

echo
dist=$(build_admin_panel)
total=0
for f in "$dist"/assets/*.js "$dist"/assets/*.css "$dist"/index.html; do
	[ -f "$f" ] || continue
	n=$(gzip -9c "$f" | wc -c)
	total=$((total + n))
	printf '%-44s %8d bytes gzip\n' "${f#"$dist"/}" "$n"
done
printf '%-44s %8d bytes gzip\n' "the panel, all files" "$total"
