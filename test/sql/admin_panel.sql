-- What the admin panel reads beyond the admin endpoints: the dashboard, a
-- payment's history, the price history, the users; and marking a payment
-- paid by hand, which needs a reason and is audited with it.
SELECT test_reset();
TRUNCATE billing.revenue_days, billing.revenue_days_state;
SET billing.test_clock = '2026-03-10 12:00:00+00';
CREATE TEMP TABLE labels (label text PRIMARY KEY, id uuid);
SELECT billing.create_tariff('prime', 'Prime', 30000) IS NOT NULL;
SELECT billing.create_tariff('kids', 'Kids', 10000, 'EUR') IS NOT NULL;
SELECT billing.set_tariff_price('prime', 32000) IS NOT NULL;
SELECT billing.create_promo_code('SPRING', 10, '2026-06-01') IS NOT NULL;

SET billing.test_clock = '2026-03-01 12:00:00+00';
SELECT test_pay('a1', 'ann', 'prime', 1) IS NOT NULL;
SET billing.test_clock = '2026-03-05 12:00:00+00';
SELECT test_pay('a2', 'ann', 'prime', 1) IS NOT NULL;      -- renews ann's subscription
SELECT test_pay('b1', 'bob', 'kids', 2) IS NOT NULL;
SELECT billing.cancel_payment(md5('bob')::uuid, (SELECT id FROM labels WHERE label = 'b1'));
SELECT pid IS NOT NULL FROM billing.create_invoice(md5('eve')::uuid, 'prime', 1, 'spring') pid;
SET billing.test_clock = '2026-03-10 12:00:00+00';

-- Revenue per day, tariff and currency; totals with the refund rate;
-- subscriptions by status; new versus renewing; promo codes in use.
SELECT jsonb_pretty(billing.admin_dashboard(30) - 'delivery' - 'stripe_poll');
SELECT billing.admin_dashboard(90) -> 'totals' AS totals_90_days;
SELECT err($$SELECT billing.admin_dashboard(7)$$);
SELECT jsonb_object_keys(billing.admin_dashboard(30) -> 'delivery') AS delivery_keys;

-- The closed days are rolled up (the scheduled billing.revenue_rollup());
-- the dashboard shows the same with the rollup as without it, and a new
-- time zone rebuilds every day.
CREATE TEMP TABLE before_rollup AS SELECT billing.admin_dashboard_revenue(30) AS d;
SELECT billing.revenue_rollup() AS rows_written;
SELECT time_zone, complete_before FROM billing.revenue_days_state;
SELECT day, tariff_code, currency, paid, refunded, payments, refunds FROM billing.revenue_days ORDER BY 1, 2;
SELECT d = billing.admin_dashboard_revenue(30) AS same_after_rollup FROM before_rollup;
SELECT billing.revenue_rollup() AS rows_rewritten;
-- Rolled up in another zone (billing.time_zone changed since): not used, then rebuilt.
UPDATE billing.revenue_days_state SET time_zone = 'Asia/Vladivostok';
DELETE FROM billing.revenue_days WHERE day = '2026-03-01';
SELECT d = billing.admin_dashboard_revenue(30) AS same_without_stale_rollup FROM before_rollup;
SELECT billing.revenue_rollup() AS rows_rebuilt;
SELECT time_zone, complete_before FROM billing.revenue_days_state;
SELECT d = billing.admin_dashboard_revenue(30) AS same_after_rebuild FROM before_rollup;

-- A payment's history and the price history.
SELECT from_status, to_status, source FROM api.admin_payment_events
WHERE payment_id = (SELECT id FROM labels WHERE label = 'b1') ORDER BY id;
SELECT tariff_code, old_price, new_price FROM api.admin_price_history ORDER BY id;
SELECT count(*) AS users FROM api.admin_users;

-- Marking paid needs a reason; the audit keeps it.
SELECT err($$SELECT billing.mark_payment_paid((SELECT id FROM billing.payments WHERE user_id = md5('eve')::uuid), '  ')$$);
SELECT err($$SELECT billing.mark_payment_paid('00000000-0000-4000-8000-000000000000', 'transfer')$$);
SELECT billing.mark_payment_paid((SELECT id FROM billing.payments WHERE user_id = md5('eve')::uuid),
                                 'bank transfer 2026-03-09 #4411') AS status;
SELECT action, before ->> 'status' AS before, after ->> 'status' AS after, after ->> 'reason' AS reason
FROM billing.admin_audit WHERE action = 'mark_payment_paid';
SELECT source FROM billing.payment_events e JOIN billing.payments p ON p.id = e.payment_id
WHERE p.user_id = md5('eve')::uuid AND e.to_status = 'paid';
-- Paid already: the state machine refuses, nothing is audited.
SELECT regexp_replace(err($$SELECT billing.mark_payment_paid((SELECT id FROM labels WHERE label = 'a1'), 'again')$$),
                      '[0-9a-f-]{36}', '<id>') AS err;
SELECT count(*) AS audited FROM billing.admin_audit WHERE action = 'mark_payment_paid';

-- billing_admin may read and call all of it; users may not.
SET ROLE billing_admin;
SELECT (api.admin_dashboard(30) ->> 'days')::int AS days;
SELECT count(*) > 0 AS events_visible FROM api.admin_payment_events;
RESET ROLE;
SET ROLE billing_user;
SELECT err($$SELECT api.admin_dashboard(30)$$);
SELECT err($$SELECT count(*) FROM api.admin_users$$);
RESET ROLE;
