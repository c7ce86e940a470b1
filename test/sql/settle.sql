-- settle_payment: the one entry point for what happened at the provider.
-- Guarded transitions, one event per transition, idempotent repeats, 55000
-- for impossible transitions with nothing changed, and the side effects
-- (subscription, promo code) in the same transaction.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 10:00:00+00';

INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Priority films', 29900);
INSERT INTO marketing.promo_codes (code, percent, valid_until, max_redemptions)
    VALUES ('TEN', 10, '2027-01-01', 5);

SELECT billing.create_invoice('bbbbbbbb-0000-4000-8000-000000000001', 'films', 2, 'TEN') AS p1 \gset

-- Paid, as the provider says, at the provider's time.
SELECT billing.settle_payment(:'p1', 'paid', 'pi_123', '2026-03-01 09:58:00+00', 'webhook');
SELECT status, paid_at, updated_at, closed_at, provider_payment_intent,
       subscription_id = (SELECT id FROM billing.subscriptions
                          WHERE user_id = 'bbbbbbbb-0000-4000-8000-000000000001') AS subscription_stored
FROM billing.payments WHERE id = :'p1';
-- The subscription runs from the time the provider reported.
SELECT status, anchor_at, ends_at FROM billing.subscriptions
WHERE user_id = 'bbbbbbbb-0000-4000-8000-000000000001';
-- Paid keeps the promo redemption.
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
-- Its outbox rows (written by the subscription, in this transaction).
SELECT kind, replace(idempotency_key, :'p1', '<p1>') AS idempotency_key FROM billing.outbox
WHERE idempotency_key LIKE 'payment:%' ORDER BY id;

-- The same outcome again (a webhook retry, the poller): nothing changes.
SELECT billing.settle_payment(:'p1', 'paid', 'pi_123', '2026-03-01 09:58:00+00', 'poll');
SELECT billing.settle_payment(:'p1', 'paid');
SELECT months, ends_at FROM billing.subscriptions
WHERE user_id = 'bbbbbbbb-0000-4000-8000-000000000001';
SELECT from_status, to_status, source, at, detail
FROM billing.payment_events WHERE payment_id = :'p1' ORDER BY id;

-- Impossible transitions: 55000, nothing changed.
SELECT billing.settle_payment(:'p1', 'canceled');
SELECT billing.settle_payment(:'p1', 'expired');
SELECT billing.settle_payment(:'p1', 'failed');
SELECT status, closed_at FROM billing.payments WHERE id = :'p1';
SELECT count(*) AS events FROM billing.payment_events WHERE payment_id = :'p1';

-- Refunded (e.g. from the provider's dashboard): the months come off the
-- subscription, the promo redemption is given back.
SET billing.test_clock = '2026-03-01 10:30:00+00';
SELECT billing.settle_payment(:'p1', 'refunded', 're_1', source => 'webhook');
SELECT status, closed_at, provider_refund_id FROM billing.payments WHERE id = :'p1';
SELECT status, ends_at FROM billing.subscriptions
WHERE user_id = 'bbbbbbbb-0000-4000-8000-000000000001';
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
SELECT kind, replace(idempotency_key, :'p1', '<p1>') AS idempotency_key FROM billing.outbox
WHERE idempotency_key LIKE 'payment:%' ORDER BY id;
-- Again, and a late "paid": nothing changes, the status is returned.
SELECT billing.settle_payment(:'p1', 'refunded', 're_1', source => 'poll');
SELECT billing.settle_payment(:'p1', 'paid', source => 'webhook');
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
SELECT from_status, to_status, source, at, detail
FROM billing.payment_events WHERE payment_id = :'p1' ORDER BY id;

-- Closing outcomes of an unpaid invoice; each gives its promo code back.
SELECT billing.create_invoice('bbbbbbbb-0000-4000-8000-000000000002', 'films', 1, 'TEN') AS p2 \gset
SELECT billing.create_invoice('bbbbbbbb-0000-4000-8000-000000000003', 'films', 1, 'TEN') AS p3 \gset
SELECT billing.create_invoice('bbbbbbbb-0000-4000-8000-000000000004', 'films', 1, 'TEN') AS p4 \gset
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
SELECT billing.settle_payment(:'p2', 'canceled');
SELECT billing.settle_payment(:'p3', 'expired', source => 'poll');
SELECT billing.settle_payment(:'p4', 'failed', 'pi_declined', source => 'webhook');
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
SELECT status, closed_at, paid_at FROM billing.payments
WHERE id IN (:'p2', :'p3', :'p4') ORDER BY user_id;
-- A closed unpaid payment absorbs further closing reports (the provider says
-- "expired" for the session we expired when the user canceled) ...
SELECT billing.settle_payment(:'p2', 'expired', source => 'webhook');
SELECT billing.settle_payment(:'p3', 'expired', source => 'webhook');
SELECT billing.settle_payment(:'p4', 'canceled');
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
-- ... but can be neither paid nor refunded.
SELECT billing.settle_payment(:'p2', 'paid');
SELECT billing.settle_payment(:'p3', 'paid', source => 'webhook');
SELECT billing.settle_payment(:'p4', 'refunded');
SELECT count(*) AS subscriptions FROM billing.subscriptions
WHERE user_id IN ('bbbbbbbb-0000-4000-8000-000000000002', 'bbbbbbbb-0000-4000-8000-000000000003',
                  'bbbbbbbb-0000-4000-8000-000000000004');
SELECT payment_id = :'p2' AS p2, from_status, to_status, source
FROM billing.payment_events WHERE payment_id IN (:'p2', :'p3', :'p4') ORDER BY id;

-- An invoice cannot be refunded before it is paid.
SELECT billing.create_invoice('bbbbbbbb-0000-4000-8000-000000000005', 'films', 1) AS p5 \gset
SELECT billing.settle_payment(:'p5', 'refunded');
SELECT status FROM billing.payments WHERE id = :'p5';

-- pending (checkout open at the provider) settles the same way; a renewal
-- while active extends from the current end.
SELECT billing.create_invoice('bbbbbbbb-0000-4000-8000-000000000006', 'films', 1) AS p6 \gset
SELECT billing.create_invoice('bbbbbbbb-0000-4000-8000-000000000006', 'films', 1) AS p7 \gset
-- (by hand here, as the provider's checkout does it)
UPDATE billing.payments SET status = 'pending', provider_session_id = 'cs_6' WHERE id = :'p6';
INSERT INTO billing.payment_events (payment_id, from_status, to_status, source)
VALUES (:'p6', 'invoiced', 'pending', 'api');
SELECT billing.settle_payment(:'p6', 'paid', 'pi_6', source => 'webhook');
SELECT billing.settle_payment(:'p7', 'paid', 'pi_7', source => 'poll');
SELECT status, anchor_at, months, ends_at FROM billing.subscriptions
WHERE user_id = 'bbbbbbbb-0000-4000-8000-000000000006';
SELECT count(DISTINCT subscription_id) AS one_subscription FROM billing.payments
WHERE id IN (:'p6', :'p7');

-- The settle path writes one event per transition and nothing else: every
-- event matches a status the payment passed through.
SELECT p.status, string_agg(coalesce(e.from_status, '-') || '>' || e.to_status, ' ' ORDER BY e.id) AS path
FROM billing.payments p JOIN billing.payment_events e ON e.payment_id = p.id
GROUP BY p.id, p.status, p.user_id ORDER BY p.user_id, path;

-- The admins may settle, through the audited admin_settle_payment; nobody else.
CREATE ROLE settle_nobody;
GRANT USAGE ON SCHEMA billing TO settle_nobody;
SET ROLE settle_nobody;
SELECT billing.settle_payment(:'p5', 'canceled');
SELECT billing.admin_settle_payment(:'p5', 'canceled');
RESET ROLE;
SET ROLE billing_admin;
SELECT billing.settle_payment(:'p5', 'canceled');
SELECT billing.admin_settle_payment(:'p5', 'canceled');
RESET ROLE;
REVOKE USAGE ON SCHEMA billing FROM settle_nobody;
DROP ROLE settle_nobody;
