-- Auto-renewal without a provider call: how a paid checkout that saved the
-- card switches it on, set_auto_renew, what billing.run_renewals invoices
-- (priced by today's rules, no promo code, one live charge per end of term)
-- and what each outcome of a charge does (dunning, the give-up, the refund,
-- the block).  The provider's side (Stripe's off-session charges) is in
-- test/e2e/test_renewals.py; here the charge cannot reach a provider (no
-- secret key), so each invoice stays pending and the test settles it as the
-- provider would.
SELECT test_reset();
CREATE TEMP TABLE labels (label text PRIMARY KEY, id uuid NOT NULL UNIQUE);

INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('prime', 'Prime films', 10000);
SELECT billing.set_months_discount(3, 10) IS NOT NULL AS tier;

-- What a subscription says about its renewal, and its automatic charges.
CREATE TEMP VIEW renewal AS
SELECT s.status, s.ends_at, s.grace_ends_at, s.auto_renew, s.auto_renew_reason AS reason,
       s.renew_at, s.renew_failures AS failures, s.renew_months, s.card_brand, s.card_last4
FROM billing.subscriptions s WHERE s.user_id = md5('ann')::uuid;
CREATE TEMP VIEW charges AS
SELECT p.renewal_attempt AS attempt, p.renewal_of, p.months, p.total, p.personal_percent,
       p.months_percent, p.promo_code, p.status, p.expires_at, p.provider, p.provider_customer
FROM billing.payments p WHERE p.user_id = md5('ann')::uuid AND p.renewal_of IS NOT NULL
ORDER BY p.created_at, p.renewal_attempt;
CREATE TEMP VIEW renewal_box AS
SELECT o.payload->>'template' AS tpl, o.payload->>'amount' AS amount, o.payload->>'currency' AS cur,
       o.payload->>'charge_at' AS charge_at, o.payload->>'end_payment' AS end_payment,
       regexp_replace(o.idempotency_key, '[0-9a-f-]{36}', '<id>') AS key
FROM billing.outbox o
WHERE o.kind = 'notify' AND (o.payload->>'template')::int IN (5, 6, 7, 8)
ORDER BY o.id;
-- The newest automatic charge, settled as its provider would report it.
CREATE FUNCTION pg_temp.settle_last(outcome text) RETURNS text LANGUAGE sql AS $$
    SELECT billing.settle_payment(id, outcome, 'pi_auto', NULL, 'webhook')
    FROM billing.payments WHERE user_id = md5('ann')::uuid AND renewal_of IS NOT NULL
    ORDER BY created_at DESC, renewal_attempt DESC LIMIT 1
$$;

-- The job's counts (its provider_ms, the time the provider took, varies).
CREATE FUNCTION pg_temp.renew() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE r jsonb;
BEGIN
    CALL billing.run_renewals(r);
    RETURN r - 'provider_ms';
END
$$;

SHOW billing.renewal_lead;
SHOW billing.renewal_retry_delays;
SHOW billing.renewal_schedule;
SELECT name, schedule_setting, command FROM billing.cron_jobs WHERE name = 'billing-run-renewals';

-- ann pays 3 months on Jan 31 through a checkout that asked to save the card
-- (the provider reported its customer, method and card): the subscription
-- renews, for 3 months, billing.renewal_lead before its end.
SET billing.test_clock = '2026-01-31 10:00:00+00';
INSERT INTO labels VALUES ('a1', billing.create_invoice(md5('ann')::uuid, 'prime', 3));
UPDATE billing.payments SET provider = 'stripe', provider_session_id = 'cs_a1', status = 'pending',
       save_method = true, provider_customer = 'cus_ann', provider_method = 'pm_ann',
       card_brand = 'visa', card_last4 = '4242'
 WHERE id = (SELECT id FROM labels WHERE label = 'a1');
SELECT billing.settle_payment((SELECT id FROM labels WHERE label = 'a1'), 'paid', 'pi_a1', NULL, 'webhook');
SELECT * FROM renewal;
SELECT s->'auto_renew' AS auto_renew, s->'next_charge_at' AS next_charge_at,
       s->'next_charge_total' AS total, s->'card_last4' AS last4
FROM jsonb_array_elements(billing.payment_info(md5('ann')::uuid)->'subscriptions') s;

-- Bad calls change nothing.
SELECT err($$SELECT billing.set_auto_renew(md5('ann')::uuid, 'gold', true)$$);
SELECT err($$SELECT billing.set_auto_renew(md5('bob')::uuid, 'prime', true)$$);
SELECT err($$SELECT billing.set_auto_renew(NULL, 'prime', true)$$);
SELECT err($$SELECT billing.set_auto_renew(md5('ann')::uuid, 'prime', NULL)$$);
SELECT err($$SELECT billing.set_auto_renew(md5('ann')::uuid, 'prime', false, 'robot')$$);
-- bob bought without saving a card: there is nothing to renew with.
SELECT test_pay('b1', 'bob', 'prime', 1) IS NOT NULL AS bob_paid;
SELECT err($$SELECT billing.set_auto_renew(md5('bob')::uuid, 'prime', true)$$);

-- Off keeps the term and clears the next charge; on brings it back; the same
-- value twice changes nothing.
SELECT billing.set_auto_renew(md5('ann')::uuid, 'prime', false) - 'subscription_id';
SELECT billing.set_auto_renew(md5('ann')::uuid, 'prime', false)->'reason';
SELECT billing.set_auto_renew(md5('ann')::uuid, 'prime', true) - 'subscription_id';
SELECT * FROM renewal;

-- Nothing is due before renew_at.
SET billing.test_clock = '2026-04-29 09:00:00+00';
SELECT pg_temp.renew();
SELECT count(*) AS charges FROM charges;

-- The reminder before the end tells a renewing buyer the amount and date of
-- the coming charge (template 6), priced as the charge will be.
SELECT billing.run_expiry() - 'batches';
SELECT * FROM renewal_box;

-- A personal discount since, and a promo code that would be cheaper: the
-- renewal takes today's discounts and never a promo code.
SELECT billing.set_personal_discount(md5('ann')::uuid, 5) IS NOT NULL AS personal;
SELECT billing.create_promo_code('HALF', 50, '2027-01-01') IS NOT NULL AS promo;

-- At renew_at the job invoices the renewal: 3 months, list 30000, 5% then
-- 10% off, pending at the provider, payable until the end of grace.  (The
-- charge cannot reach a provider here: a WARNING naming the payment's random
-- id, counted in "errors", and it stays pending.)
SET client_min_messages = error;
SET billing.test_clock = '2026-04-29 10:00:00+00';
SELECT pg_temp.renew();
SELECT * FROM charges;
SELECT renew_at, failures FROM renewal;
-- Running again finds nothing due: the charge in flight is the only one.
SELECT pg_temp.renew();
-- Even with renew_at forced back, a second live charge of the same end of
-- term cannot exist (payments_renewal_once).
UPDATE billing.subscriptions SET renew_at = billing.now() WHERE user_id = md5('ann')::uuid;
SELECT pg_temp.renew();
SELECT count(*) AS charges FROM charges;
UPDATE billing.subscriptions SET renew_at = NULL WHERE user_id = md5('ann')::uuid;

-- Declined: failed, the next attempt in 1 day (inside the grace period), and
-- "payment failed" says when.
SELECT pg_temp.settle_last('failed');
SELECT * FROM renewal;
SELECT tpl, amount, cur, charge_at, key FROM renewal_box WHERE tpl = '7';

-- Retry 1 at the end of term, declined again: the next in 1 more day.
SET billing.test_clock = '2026-04-30 10:00:00+00';
SELECT pg_temp.renew();
SELECT attempt, renewal_of, status FROM charges;
SELECT pg_temp.settle_last('failed');
SELECT status, auto_renew, renew_at, failures FROM renewal;

-- Retry 2 succeeds: paid, the term goes on from its end (Jul 31: the anchor
-- day is kept), the dunning is over and the next charge is a day before it.
SET billing.test_clock = '2026-05-01 10:00:00+00';
SELECT billing.run_expiry() - 'batches';
SELECT pg_temp.renew();
SELECT pg_temp.settle_last('paid');
SELECT * FROM renewal;
SELECT attempt, status FROM charges;

-- The next end (Jul 31) is declined on every attempt: after the last retry
-- auto-renewal stops (charge_failed), and the ordinary grace and block
-- follow.
SET billing.test_clock = '2026-07-30 10:00:00+00';
SELECT pg_temp.renew();
SELECT pg_temp.settle_last('failed');
SET billing.test_clock = '2026-07-31 10:00:00+00';
SELECT pg_temp.renew();
SELECT pg_temp.settle_last('failed');
SET billing.test_clock = '2026-08-01 10:00:00+00';
SELECT pg_temp.renew();
SELECT pg_temp.settle_last('failed');
SELECT status, auto_renew, reason, renew_at, failures FROM renewal;
SELECT tpl, charge_at, key FROM renewal_box WHERE tpl = '7';
SET billing.test_clock = '2026-08-02 10:00:01+00';
SELECT billing.run_expiry() - 'batches';
SELECT status, auto_renew, reason FROM renewal;

-- After the block, switching on is refused: buy again with auto_renew.
SELECT err($$SELECT billing.set_auto_renew(md5('ann')::uuid, 'prime', true)$$);

-- dan renews a month; a refund of that automatic charge inside the refund
-- window works like any refund (the month comes off, he keeps the one he
-- bought) and switches auto-renewal off: he is not charged again.
SET billing.test_clock = '2026-09-01 10:00:00+00';
INSERT INTO labels VALUES ('d1', billing.create_invoice(md5('dan')::uuid, 'prime', 1));
UPDATE billing.payments SET provider = 'stripe', provider_session_id = 'cs_d1', status = 'pending',
       save_method = true, provider_customer = 'cus_dan'
 WHERE id = (SELECT id FROM labels WHERE label = 'd1');
SELECT billing.settle_payment((SELECT id FROM labels WHERE label = 'd1'), 'paid', 'pi_d1', NULL, 'webhook');
SET billing.test_clock = '2026-09-30 10:00:00+00';
SELECT pg_temp.renew();
SELECT billing.settle_payment(id, 'paid', 'pi_d2', NULL, 'webhook'), total
FROM billing.payments WHERE user_id = md5('dan')::uuid AND renewal_of IS NOT NULL;
SELECT ends_at, auto_renew FROM billing.subscriptions WHERE user_id = md5('dan')::uuid;
SELECT billing.cancel_payment(md5('dan')::uuid,
       (SELECT id FROM billing.payments WHERE user_id = md5('dan')::uuid AND renewal_of IS NOT NULL));
SELECT status, ends_at, auto_renew, auto_renew_reason, renew_at
FROM billing.subscriptions WHERE user_id = md5('dan')::uuid;

-- cat renews; the tariff goes off sale before her charge: the job switches
-- auto-renewal off instead of charging, and switching on is refused.
SET billing.test_clock = '2026-10-01 10:00:00+00';
INSERT INTO labels VALUES ('c1', billing.create_invoice(md5('cat')::uuid, 'prime', 1));
UPDATE billing.payments SET provider = 'stripe', provider_session_id = 'cs_c1', status = 'pending',
       save_method = true, provider_customer = 'cus_cat'
 WHERE id = (SELECT id FROM labels WHERE label = 'c1');
SELECT billing.settle_payment((SELECT id FROM labels WHERE label = 'c1'), 'paid', 'pi_c1', NULL, 'webhook');
UPDATE marketing.tariffs SET active = false WHERE code = 'prime';
SET billing.test_clock = '2026-11-01 00:00:00+00';
SELECT pg_temp.renew();
SELECT auto_renew, auto_renew_reason, renew_at,
       (SELECT count(*) FROM billing.payments p WHERE p.user_id = s.user_id AND p.renewal_of IS NOT NULL) AS charges
FROM billing.subscriptions s WHERE s.user_id = md5('cat')::uuid;
SELECT err($$SELECT billing.set_auto_renew(md5('cat')::uuid, 'prime', true)$$);
UPDATE marketing.tariffs SET active = true WHERE code = 'prime';

-- Admins switch a buyer's auto-renewal only through the audited function;
-- the application and the buyer's api function reach the plain one.
SELECT has_function_privilege('billing_admin', 'billing.set_auto_renew(uuid, text, boolean, text)', 'EXECUTE') AS admin_unaudited,
       has_function_privilege('billing_admin', 'billing.admin_set_auto_renew(uuid, text, boolean)', 'EXECUTE') AS admin_audited,
       has_function_privilege('billing_app', 'billing.set_auto_renew(uuid, text, boolean, text)', 'EXECUTE') AS app;

-- A bad retry schedule is refused with the setting left as it was.
SELECT err($$SET billing.renewal_retry_delays = '1 fortnight'$$);
SELECT err($$SET billing.renewal_retry_delays = '0 days'$$);
SET billing.renewal_retry_delays = '12 hours, 2d, 90 min';
SHOW billing.renewal_retry_delays;
SET billing.renewal_retry_delays = '';
SHOW billing.renewal_retry_delays;
RESET billing.renewal_retry_delays;
RESET billing.test_clock;
RESET client_min_messages;
