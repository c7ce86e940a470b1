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

-- Auto-renewal as the panel shows it.  rita and ron pay a month of prime on
-- Mar 10 through checkouts that saved their cards (as test/sql/renewals.sql
-- does; no provider is reached here, so each automatic charge stays pending
-- and is settled as the provider would report it).
CREATE FUNCTION pg_temp.saved_card_purchase(who text) RETURNS text LANGUAGE sql AS $$
    INSERT INTO labels VALUES (who, billing.create_invoice(md5(who)::uuid, 'prime', 1));
    UPDATE billing.payments SET provider = 'stripe', provider_session_id = 'cs_' || who, status = 'pending',
           save_method = true, provider_customer = 'cus_' || who, provider_method = 'pm_' || who,
           card_brand = 'visa', card_last4 = '4242'
     WHERE id = (SELECT id FROM labels WHERE label = who);
    SELECT billing.settle_payment((SELECT id FROM labels WHERE label = who), 'paid', 'pi_' || who, NULL, 'webhook');
$$;
CREATE FUNCTION pg_temp.renew() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
    CALL billing.run_renewals(r);
    RETURN r - 'provider_ms';
END
$$;
-- The newest automatic charge of a user, settled as its provider would report it.
CREATE FUNCTION pg_temp.settle_last(who text, outcome text) RETURNS text LANGUAGE sql AS $$
    SELECT billing.settle_payment(id, outcome, 'pi_auto', NULL, 'webhook')
    FROM billing.payments WHERE user_id = md5(who)::uuid AND renewal_of IS NOT NULL
    ORDER BY created_at DESC, renewal_attempt DESC LIMIT 1
$$;
SET client_min_messages = error;    -- the charge's WARNING names a random payment id
SELECT pg_temp.saved_card_purchase('rita'), pg_temp.saved_card_purchase('ron');
-- rita's charge is declined twice, then the second retry pays; ron's is
-- declined and not yet retried.
SET billing.test_clock = '2026-04-09 12:00:00+00';
SELECT pg_temp.renew() ->> 'invoiced' AS invoiced;
SELECT pg_temp.settle_last('rita', 'failed'), pg_temp.settle_last('ron', 'failed');
SET billing.test_clock = '2026-04-10 12:00:00+00';
SELECT pg_temp.renew() ->> 'invoiced' AS invoiced;
SELECT pg_temp.settle_last('rita', 'failed'), pg_temp.settle_last('ron', 'failed');
-- The user page: whether it renews and why, the next charge, the card, the
-- failures so far (ron: 2, the next retry due).
SELECT u.who, s ->> 'auto_renew' AS auto_renew, s ->> 'auto_renew_reason' AS reason,
       s ->> 'next_charge_at' AS next_charge_at, s ->> 'next_charge_total' AS next_total,
       s ->> 'card_brand' AS brand, s ->> 'card_last4' AS last4, s ->> 'renew_failures' AS failures,
       s ->> 'auto_renew_changed_at' AS changed_at
FROM (VALUES ('rita'), ('ron')) u(who),
     jsonb_array_elements(billing.admin_user_info(md5(u.who)::uuid) -> 'subscriptions') s;
SET billing.test_clock = '2026-04-11 12:00:00+00';
SELECT pg_temp.renew() ->> 'invoiced' AS invoiced;
SELECT pg_temp.settle_last('rita', 'paid');
RESET client_min_messages;
SELECT s ->> 'renew_failures' AS rita_failures, s ->> 'ends_at' AS ends_at
FROM jsonb_array_elements(billing.admin_user_info(md5('rita')::uuid) -> 'subscriptions') s;
-- The attempts, grouped by the end of term they renew (ron's third attempt
-- is still pending: the job could not reach the provider).
SELECT CASE user_id WHEN md5('rita')::uuid THEN 'rita' ELSE 'ron' END AS who, tariff_code, renewal_of,
       renewal_attempt, status, total, currency, failure_code, decline_code, at,
       subscription_id = (SELECT id FROM billing.subscriptions s WHERE s.user_id = c.user_id) AS its_subscription
FROM api.admin_renewal_charges c ORDER BY 1, renewal_of, renewal_attempt;
-- The payments list marks them, and filters on them.
SELECT automatic, count(*), min(renewal_attempt), max(renewal_attempt)
FROM api.admin_payments GROUP BY 1 ORDER BY 1;
-- The dashboard: two ends of term failed in the period, rita's recovered.
SELECT billing.admin_dashboard(30) -> 'renewals' AS renewals_30_days;
SELECT billing.admin_dashboard_renewals(90) AS renewals_90_days;
-- Failures older than the period are not counted: on Jun 1 they are in the
-- last 90 days, not in the last 30.
SET billing.test_clock = '2026-06-01 12:00:00+00';
SELECT billing.admin_dashboard_renewals(30) AS renewals_30_days, billing.admin_dashboard_renewals(90) AS renewals_90_days;
SET ROLE billing_admin;
SELECT count(*) AS charges_visible FROM api.admin_renewal_charges;
SELECT (api.user_payment_info(md5('ron')::uuid) -> 'subscriptions' -> 0 ->> 'renew_failures') AS ron_failures;
RESET ROLE;
SET ROLE billing_user;
SELECT err($$SELECT count(*) FROM api.admin_renewal_charges$$);
RESET ROLE;

-- An admin switches ron's auto-renewal off: reason "admin", the next charge
-- gone, audited with the state before and after; again changes nothing and
-- audits nothing.  A user cannot.
SET billing.test_clock = '2026-04-11 13:00:00+00';
SET ROLE billing_admin;
SELECT api.admin_set_auto_renew(md5('ron')::uuid, 'prime', false) - 'subscription_id' AS state;
SELECT api.admin_set_auto_renew(md5('ron')::uuid, 'prime', false) ->> 'reason' AS again;
SELECT err($$SELECT api.admin_set_auto_renew(md5('ron')::uuid, 'kids', false)$$);
RESET ROLE;
SELECT auto_renew, auto_renew_reason, renew_at, auto_renew_changed_at FROM billing.subscriptions
WHERE user_id = md5('ron')::uuid;
SELECT action, actor, regexp_replace(target, '[0-9]+$', '<id>') AS target, before, after
FROM billing.admin_audit WHERE action = 'set_auto_renew';
SET ROLE billing_user;
SELECT err($$SELECT api.admin_set_auto_renew(md5('ron')::uuid, 'prime', true)$$);
RESET ROLE;
RESET billing.test_clock;
