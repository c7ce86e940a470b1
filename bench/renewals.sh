#!/usr/bin/env bash
# Auto-renewal benchmark, one run, on a throwaway cluster and the Stripe
# stand-in:
#   1. the stand-in's own rate for the request a renewal makes (wrk, one
#      connection, as the job makes its calls one after another): a
#      PaymentIntent with customer, payment_method, off_session, confirm;
#   2. the database's own floor for a renewal: two durable commits (the
#      invoice before the charge, the settle after it), each of a one-row
#      INSERT, one client (pgbench);
#   3. billing.run_renewals over DUE due subscriptions among TOTAL (the rest
#      renew later or not at all; each has one paid payment behind it), run
#      as pg_cron runs it (a new session per run, billing.renewal_batch
#      subscriptions each) until nothing is due: charges per second,
#      the ratio to (1), and the job's own database time per renewal (its
#      wall time minus the time it waited for the provider, which the job
#      reports as provider_ms) with its ratio to (2).
# Usage: bench/renewals.sh [due] [total]   (default 100000 1000000)
#   SYNC=off bench/renewals.sh   the same with synchronous_commit = off
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DUE=${1:-100000}
TOTAL=${2:-1000000}
SECONDS_=10

bench_prepare >/dev/null
dir=$BILLING_WORK/cluster-bench-renewals
port=$(free_port)
sport=$(free_port)
tmp=$(mktemp -d)
chmod 755 "$tmp"

/usr/bin/python3 "$BILLING_SRC/test/standins/stripe_server.py" --port "$sport" \
	--secret-key sk_test_bench >"$tmp/standin.log" 2>&1 &
standin=$!
cleanup() {
	kill "$standin" 2>/dev/null || true
	"$BILLING_SRC/scripts/cluster" destroy "$dir" || true
	rm -rf "$tmp"
}
trap cleanup EXIT

"$BILLING_SRC/scripts/cluster" init "$dir" "$port" \
	"shared_buffers = '512MB'" "max_wal_size = '4GB'" "synchronous_commit = ${SYNC:-on}" \
	"billing.stripe_api_base = 'http://127.0.0.1:$sport'" \
	"billing.stripe_secret_key = 'sk_test_bench'" \
	"billing.stripe_success_url = 'https://cinema.example/paid'" \
	"billing.renewal_schedule = ''" "billing.stripe_poll_schedule = ''" \
	"billing.expiry_schedule = ''" "billing.invoice_expiry_schedule = ''" >/dev/null
psql() { "$BILLING_PGBIN/psql" -h "$dir" -p "$port" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 "$@"; }
for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$sport") 2>/dev/null && break; sleep 0.1; done

# The buyers' customer and card at the stand-in (one for all: each charge
# still has its own Idempotency-Key, so each is a charge of its own).
customer=$(curl -s -u sk_test_bench: -d email=bench@cinema.example "http://127.0.0.1:$sport/v1/customers" |
	sed -n 's/.*"id": *"\(cus_[A-Za-z0-9]*\)".*/\1/p' | head -1)
method=pm_card_visa

log "$TOTAL subscriptions, $DUE of them due"
psql -v total="$TOTAL" -v due="$DUE" -v customer="$customer" -v method="$method" <<'SQL'
UPDATE cron.job SET active = false;
SELECT billing.create_tariff('prime', 'Prime films', 29900) IS NOT NULL;
INSERT INTO billing.customers (user_id) SELECT md5('r' || n)::uuid FROM generate_series(1, :total) n;
-- Due: auto-renewing, renew_at passed.  The rest: a tenth renew in a
-- fortnight, the others do not renew.
INSERT INTO billing.subscriptions (user_id, tariff_id, status, anchor_at, months, ends_at,
                                   grace_ends_at, next_check_at, auto_renew, renew_months,
                                   renew_provider, renew_customer, renew_method, renew_at)
SELECT md5('r' || n)::uuid, (SELECT id FROM marketing.tariffs), 'active',
       now() - interval '1 month' + e, 1, now() + e, now() + e + interval '2 days', now() + e,
       n <= :due OR n % 10 = 0, CASE WHEN n <= :due OR n % 10 = 0 THEN 1 END,
       CASE WHEN n <= :due OR n % 10 = 0 THEN 'stripe' END,
       CASE WHEN n <= :due OR n % 10 = 0 THEN :'customer' END,
       CASE WHEN n <= :due OR n % 10 = 0 THEN :'method' END,
       CASE WHEN n <= :due THEN now() - interval '1 minute'
            WHEN n % 10 = 0 THEN now() + interval '14 days' END
FROM generate_series(1, :total) n,
     LATERAL (SELECT CASE WHEN n <= :due THEN interval '12 hours' ELSE interval '15 days' END) AS x(e);
-- The payment behind each subscription (the ledger a million subscribers
-- have), with its creation and paid events.
INSERT INTO billing.payments (id, user_id, tariff_id, tariff_code, tariff_title, months,
                              monthly_price, list_price, applied, total, currency, status,
                              created_at, updated_at, expires_at, paid_at, subscription_id,
                              subscription_term, provider, provider_session_id)
SELECT md5('p' || s.id)::uuid, s.user_id, s.tariff_id, 'prime', 'Prime films', 1, 29900, 29900,
       'none', 29900, 'RUB', 'paid', s.anchor_at, s.anchor_at, s.anchor_at + interval '1 day',
       s.anchor_at, s.id, 1, 'stripe', 'cs_bench_' || s.id
FROM billing.subscriptions s;
INSERT INTO billing.payment_events (payment_id, from_status, to_status, source, at)
SELECT id, NULL, 'invoiced', 'api', created_at FROM billing.payments
UNION ALL
SELECT id, 'invoiced', 'paid', 'webhook', paid_at FROM billing.payments;
VACUUM ANALYZE;
SQL

# 1. The stand-in alone: the same request, one connection.
cat >"$tmp/intent.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer sk_test_bench"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "amount=29900&currency=rub&customer=$customer&payment_method=$method" ..
  "&off_session=true&confirm=true&description=Prime+films%2C+1+month+%28renewal%29" ..
  "&metadata%5Bpayment_id%5D=00000000-0000-4000-8000-000000000000&expand%5B%5D=latest_charge"
LUA
standin_rps=$(wrk -t1 -c1 -d"${SECONDS_}s" -s "$tmp/intent.lua" "http://127.0.0.1:$sport/v1/payment_intents" |
	sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')

# 2. Two durable commits of a one-row INSERT, one client.
psql -c "CREATE TABLE public.bench_floor (n bigint, at timestamptz DEFAULT now())"
cat >"$tmp/floor.sql" <<'SQL'
BEGIN;
INSERT INTO public.bench_floor (n) VALUES (1);
COMMIT;
BEGIN;
INSERT INTO public.bench_floor (n) VALUES (2);
COMMIT;
SQL
floor_tps=$("$BILLING_PGBIN/pgbench" -h "$dir" -p "$port" -U postgres -n -c 1 -T 5 -f "$tmp/floor.sql" billing |
	sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1)

# 3. The job.
log "run_renewals over $DUE due, $(psql -At -c 'SHOW billing.renewal_batch') per run"
start=$(date +%s.%N)
provider_ms=0 runs=0 result=
while :; do
	r=$(psql -At -c "CALL billing.run_renewals(NULL)")
	runs=$((runs + 1))
	provider_ms=$(awk -v a="$provider_ms" -v r="$r" 'BEGIN { match(r, /"provider_ms": *[0-9.]+/);
		m = substr(r, RSTART, RLENGTH); sub(/.*: */, "", m); printf "%.1f", a + m }')
	[ -z "$result" ] && result=$r
	case $r in *'"due": 0,'*) break ;; esac
done
end=$(date +%s.%N)
result="first run: $result; $runs runs, provider_ms $provider_ms"
paid=$(psql -At -c "SELECT count(*) FROM billing.payments WHERE renewal_of IS NOT NULL AND status = 'paid'")
extended=$(psql -At -c "SELECT count(*) FROM billing.subscriptions WHERE auto_renew AND renew_at > now() + interval '20 days'")

awk -v s="$start" -v e="$end" -v paid="$paid" -v due="$DUE" -v total="$TOTAL" -v ref="$standin_rps" \
	-v result="$result" -v extended="$extended" -v cores="$(nproc)" -v day="$(date -u +%Y-%m-%d)" \
	-v floor="$floor_tps" -v sync="${SYNC:-on}" 'BEGIN {
	match(result, /provider_ms [0-9.]+/); pms = substr(result, RSTART, RLENGTH); sub(/.* /, "", pms)
	wall = e - s; rate = paid / wall
	printf "\nAuto-renewal benchmark: %d due among %d subscriptions, %d cores, synchronous_commit = %s, %s\n", \
		due, total, cores, sync, day
	printf "%-56s %10.0f req/s\n", "stand-in alone: POST /v1/payment_intents (wrk, 1 conn)", ref
	printf "%-56s %10.2f ms\n", "floor: two commits of a one-row INSERT (pgbench, 1 client)", 1000 / floor
	printf "%-56s %10.0f charges/s   (%.2f x stand-in; %d paid, %d terms extended)\n", \
		"run_renewals: invoice + off-session charge + settle", rate, rate / ref, paid, extended
	db = (wall * 1000 - pms) / paid
	printf "%-56s %10.2f ms   (%.2f x floor; job %.1f s, provider %.1f s)\n", \
		"the job'"'"'s own database time per renewal", db, db / (1000 / floor), wall, pms / 1000
	printf "job: %s\n", result
}'
