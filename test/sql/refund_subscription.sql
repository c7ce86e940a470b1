-- What a refund does to the subscription, through the real path: the buyer
-- asks (cancel_payment, within the refund window), or the provider reports a
-- refund (settle_payment 'refunded'); the payment's months come off the term.
-- These payments never went to a provider (settle_payment alone paid them),
-- so a refund the buyer asks for completes at once: no provider holds the
-- money.  The wait for a provider's refund is in test/e2e/test_stripe.py.
SELECT test_reset();
SELECT md5('ann')::uuid AS ann, md5('bob')::uuid AS bob \gset
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Priority films', 29900);

CREATE TEMP VIEW sub AS
SELECT CASE s.user_id WHEN md5('ann')::uuid THEN 'ann' ELSE 'bob' END AS who,
       s.status, s.anchor_at, s.months, s.ends_at, s.grace_ends_at, s.next_check_at,
       billing.has_access(s.user_id, 'films') AS access
FROM billing.subscriptions s ORDER BY 1;
CREATE TEMP VIEW msgs AS
SELECT CASE o.payload->>'user_id' WHEN md5('ann')::uuid::text THEN 'ann' ELSE 'bob' END AS who,
       o.kind, o.payload->>'template' AS tpl, o.payload->>'end_payment' AS end_payment,
       regexp_replace(o.idempotency_key, '[0-9a-f-]{36}', 'P') AS key
FROM billing.outbox o WHERE o.kind IN ('grant_role', 'revoke_role', 'notify') ORDER BY o.id;

-- 1. A first purchase refunded within the hour: access ends at once.
SET billing.test_clock = '2026-05-31 20:00:00+00';
SELECT billing.create_invoice(:'ann', 'films', 1) AS a1 \gset
SELECT billing.settle_payment(:'a1', 'paid', 'pi_a1', source => 'webhook');
SELECT * FROM sub;
SET billing.test_clock = '2026-05-31 20:40:00+00';
SELECT billing.cancel_payment(:'ann', :'a1');
SELECT * FROM sub;
SELECT * FROM msgs;
SELECT source, detail FROM billing.payment_events
WHERE payment_id = :'a1' AND to_status = 'refunded';
-- A provider's word on a refund afterwards: nothing changes, nothing is queued.
SELECT billing.settle_payment(:'a1', 'refunded', 're_a1', source => 'poll');
SELECT count(*) AS messages FROM msgs;
-- The sweep has nothing to do with a refunded subscription.
SET billing.test_clock = '2026-08-01 00:00:00+00';
SELECT billing.run_expiry();

-- 2. A new purchase after the refund starts a new term with a new grant.
SELECT billing.create_invoice(:'ann', 'films', 2) AS a2 \gset
SELECT billing.settle_payment(:'a2', 'paid', 'pi_a2');
SELECT status, anchor_at, months, ends_at, access FROM sub WHERE who = 'ann';
SELECT kind, tpl, key FROM msgs WHERE who = 'ann' AND key LIKE 'payment:P:grant';

-- 3. A renewal refunded: the term goes back to where it was, still active,
--    and the reminder is due again for that end.
SET billing.test_clock = '2026-01-31 09:00:00+00';
SELECT billing.create_invoice(:'bob', 'films', 1) AS b1 \gset
SELECT billing.settle_payment(:'b1', 'paid', 'pi_b1');
SET billing.test_clock = '2026-02-27 09:00:00+00';
SELECT billing.run_expiry() AS reminder_of_feb_28;
SELECT billing.create_invoice(:'bob', 'films', 3) AS b2 \gset
SELECT billing.settle_payment(:'b2', 'paid', 'pi_b2');
SELECT status, months, ends_at, next_check_at FROM sub WHERE who = 'bob';
SET billing.test_clock = '2026-02-27 09:30:00+00';
SELECT billing.cancel_payment(:'bob', :'b2');
SELECT status, months, ends_at, grace_ends_at, next_check_at, access FROM sub WHERE who = 'bob';
-- The reminder of the Feb 28 end was sent already: the sweep does not send
-- it twice (same term end, same key), and the term then runs out as usual.
SELECT billing.run_expiry() AS no_second_reminder;
SET billing.test_clock = '2026-02-28 09:00:00+00';
SELECT billing.run_expiry() AS ended;
SELECT * FROM msgs WHERE who = 'bob';

-- 4. Outside the window the buyer cannot ask; a refund the provider reports
--    anyway (made in its dashboard) still ends the term at once.
SET billing.test_clock = '2026-02-28 12:00:00+00';
SELECT billing.cancel_payment(:'bob', :'b1');
SELECT billing.settle_payment(:'b1', 'refunded', 're_b1', source => 'webhook');
SELECT status, months, ends_at, grace_ends_at, access FROM sub WHERE who = 'bob';
SELECT kind, tpl, end_payment, key FROM msgs WHERE who = 'bob' AND key ~ '(revoke|refunded)';

-- 5. Every message once.
SELECT count(*) = count(DISTINCT idempotency_key) AS keys_unique FROM billing.outbox;
