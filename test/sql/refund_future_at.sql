-- A time of payment (`at`) after billing.now() must not start a term that
-- has not begun yet.  An admin's settle_payment (api.settle_payment passes
-- `at` through) or a provider's clock can give one.  Taken as it was, "paid
-- at or after the end of grace" opened a new term in the future, the present
-- term's paid months stopped counting, and a refund then either left the
-- buyer without the month he paid for, or took nothing off.  Now such a time
-- is taken as billing.now(), and the event keeps the reported time.
-- Checked: the rule after each step: the subscription's months are the
-- paid, unrefunded ones, and they give access now.
SELECT test_reset();
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Films', 29900);
SET billing.test_clock = '2026-03-01 10:00:00+00';
CREATE TEMP VIEW state AS
SELECT s.months,
       (SELECT coalesce(sum(p.months), 0) FROM billing.payments p
        WHERE p.user_id = s.user_id AND p.status = 'paid') AS paid_months,
       billing.has_access(s.user_id, 'films') AS access
FROM billing.subscriptions s WHERE s.user_id = md5('u')::uuid;

-- A: one month, paid now.  B: one month, settled by an admin who typed a
-- time two months ahead (refused or not, the rule must hold).
SELECT billing.create_invoice(md5('u')::uuid, 'films', 1) AS a,
       billing.create_invoice(md5('u')::uuid, 'films', 1) AS b \gset
SELECT billing.settle_payment(:'a', 'paid', 'pi_a', '2026-03-01 10:00:00+00', 'webhook');
SELECT err(format('SELECT billing.settle_payment(%L, ''paid'', ''pi_b'', ''2026-05-01 10:00:00+00'', ''admin'')', :'b')) NOT LIKE 'XX%' AS settled_or_refused;
SELECT months = paid_months AS months_are_paid_months, access FROM state;

-- The buyer asks for B's refund (or cancels B if it was refused): A's
-- month still runs.
SELECT err(format('SELECT billing.cancel_payment(%L, %L)', md5('u')::uuid, :'b')) IS NOT NULL AS asked;
SELECT months = paid_months AS months_are_paid_months, months, access FROM state;

-- B was paid now; its event says what was reported.
SELECT paid_at, status FROM billing.payments WHERE id = :'b';
SELECT source, detail->>'reported_at' AS reported_at FROM billing.payment_events
WHERE payment_id = :'b' AND to_status = 'paid';
