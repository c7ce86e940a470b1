#!/usr/bin/env bash
# Stripe benchmark, one run, on a throwaway cluster and the Stripe stand-in:
#   1. the stand-in's own rate: wrk POSTing Checkout Sessions to it directly;
#   2. billing.checkout per second (each transaction: create_invoice +
#      checkout, i.e. one Stripe call), with create_invoice alone beside it;
#   3. billing.stripe_webhook per second: signature check + store + apply
#      (a checkout.session.completed that settles a pending payment: paid,
#      subscription, outbox rows), and replays (signature check + duplicate).
# Usage: bench/stripe.sh [clients] [seconds]
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLIENTS=${1:-4}
SECONDS_=${2:-10}
EVENTS=20000

bench_prepare >/dev/null
dir=$BILLING_WORK/cluster-bench-stripe
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
	"shared_buffers = '256MB'" "synchronous_commit = off" \
	"billing.stripe_api_base = 'http://127.0.0.1:$sport'" \
	"billing.stripe_secret_key = 'sk_test_bench'" \
	"billing.stripe_webhook_secrets = 'whsec_bench'" \
	"billing.stripe_success_url = 'https://cinema.example/paid'" \
	"billing.stripe_poll_schedule = ''" >/dev/null
psql() { "$BILLING_PGBIN/psql" -h "$dir" -p "$port" -U postgres -d billing -X -q -v ON_ERROR_STOP=1 "$@"; }
pgbench() { "$BILLING_PGBIN/pgbench" -h "$dir" -p "$port" -U postgres -n -c "$CLIENTS" -j 2 -T "$SECONDS_" "$@" billing; }
tps() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1; }

for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$sport") 2>/dev/null && break; sleep 0.1; done

psql <<'SQL'
UPDATE cron.job SET active = false;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SELECT billing.create_tariff('prime', 'Prime films', 29900) IS NOT NULL;
SQL

# 1. The stand-in alone, same concurrency, same request as checkout sends.
cat >"$tmp/session.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer sk_test_bench"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "mode=payment&line_items%5B0%5D%5Bquantity%5D=1&line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=rub" ..
  "&line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=29900" ..
  "&line_items%5B0%5D%5Bprice_data%5D%5Bproduct_data%5D%5Bname%5D=Prime+films%2C+1+month" ..
  "&success_url=https%3A%2F%2Fcinema.example%2Fpaid"
LUA
standin_rps=$(wrk -t2 -c"$CLIENTS" -d"${SECONDS_}s" -s "$tmp/session.lua" "http://127.0.0.1:$sport/v1/checkout/sessions" |
	sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')

# 2. checkout (one Stripe call each) beside create_invoice alone.
cat >"$tmp/invoice.sql" <<'SQL'
\set u random(1, 2000000000)
SELECT billing.create_invoice(md5('i' || :u)::uuid, 'prime', 1);
SQL
cat >"$tmp/checkout.sql" <<'SQL'
\set u random(1, 2000000000)
SELECT billing.checkout(md5('c' || :u)::uuid, billing.create_invoice(md5('c' || :u)::uuid, 'prime', 1));
SQL
invoice_tps=$(pgbench -f "$tmp/invoice.sql" | tps)
checkout_tps=$(pgbench -f "$tmp/checkout.sql" | tps)
checkouts=$(psql -At -c "SELECT count(*) FROM billing.payments WHERE status = 'pending'")

# 3. Webhooks: EVENTS pending payments, each with its signed completion event.
psql -v events="$EVENTS" <<'SQL'
SET billing.test_clock = '2026-06-01 12:00:00+00';
CREATE TABLE public.bench_events (n bigint PRIMARY KEY, body text NOT NULL, sig text NOT NULL);
CREATE SEQUENCE public.bench_seq;
CREATE SEQUENCE public.bench_replay;
CREATE TEMP TABLE inv AS
    SELECT n, billing.create_invoice(md5('w' || n)::uuid, 'prime', 1) AS id
    FROM generate_series(1, :events) AS n;
-- As checkout leaves them (without EVENTS calls to the stand-in).
WITH pend AS (
    UPDATE billing.payments p SET status = 'pending', provider_session_id = 'cs_bench_' || inv.n
    FROM inv WHERE p.id = inv.id RETURNING inv.n, p.id, p.user_id)
INSERT INTO public.bench_events
SELECT n, body, 't=1780315200,v1=' || encode(hmac('1780315200.' || body, 'whsec_bench', 'sha256'), 'hex')
FROM pend, LATERAL (SELECT jsonb_pretty(jsonb_build_object(
    'id', 'evt_bench_' || n, 'object', 'event', 'type', 'checkout.session.completed',
    'api_version', '2024-06-20', 'created', 1780315200, 'livemode', false,
    'data', jsonb_build_object('object', jsonb_build_object(
        'id', 'cs_bench_' || n, 'object', 'checkout.session', 'status', 'complete',
        'payment_status', 'paid', 'amount_total', 29900, 'currency', 'rub', 'mode', 'payment',
        'client_reference_id', id, 'payment_intent', 'pi_bench_' || n,
        'metadata', jsonb_build_object('payment_id', id, 'user_id', user_id))))) AS body) b;
VACUUM ANALYZE;
SQL
cat >"$tmp/webhook.sql" <<'SQL'
SELECT billing.stripe_webhook(body::json, sig) FROM public.bench_events WHERE n = (SELECT nextval('public.bench_seq'));
SQL
cat >"$tmp/replay.sql" <<'SQL'
SELECT billing.stripe_webhook(body::json, sig) FROM public.bench_events
WHERE n = (SELECT (nextval('public.bench_replay') % 1000) + 1);
SQL
export PGOPTIONS="-c billing.test_clock=2026-06-01T12:00:00+00"
webhook_tps=$("$BILLING_PGBIN/pgbench" -h "$dir" -p "$port" -U postgres -n -c "$CLIENTS" -j 2 \
	-t $((EVENTS / CLIENTS)) -f "$tmp/webhook.sql" billing | tps)
replay_tps=$(pgbench -f "$tmp/replay.sql" | tps)
unset PGOPTIONS
paid=$(psql -At -c "SELECT count(*) FROM billing.payments WHERE status = 'paid' AND provider_session_id LIKE 'cs_bench_%'")
applied=$(psql -At -c "SELECT count(*) FROM billing.stripe_events WHERE result = 'applied'")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
echo "Stripe benchmark: $CLIENTS clients, ${SECONDS_} s per figure, $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-52s %10s\n' "stand-in alone: POST /v1/checkout/sessions (wrk)" "$standin_rps req/s"
printf '%-52s %10s\n' "create_invoice alone" "$invoice_tps tps"
printf '%-52s %10s   (%s x stand-in; %s sessions opened)\n' "create_invoice + checkout (1 Stripe call)" "$checkout_tps tps" "$(ratio "$checkout_tps" "$standin_rps")" "$checkouts"
printf '%-52s %10s   (%s paid, %s applied)\n' "stripe_webhook: verify + store + settle paid" "$webhook_tps tps" "$paid" "$applied"
printf '%-52s %10s\n' "stripe_webhook: verify + replay (duplicate)" "$replay_tps tps"
