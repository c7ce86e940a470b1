-- cancel_payment: the buyer cancels an unpaid payment, or asks for a refund
-- within billing.refund_window (1 h) of the provider's time of payment.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 10:00:00+00';

INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES
    ('films', 'Priority films', 29900),
    ('trial', 'Trial', 0);
INSERT INTO marketing.promo_codes (code, percent, valid_until)
    VALUES ('TEN', 10, '2027-01-01');

\set alice '''cccccccc-0000-4000-8000-00000000000a'''
\set bob '''cccccccc-0000-4000-8000-00000000000b'''

-- An unpaid invoice of the buyer: canceled, its promo reservation released.
SELECT billing.create_invoice(:alice, 'films', 1, 'TEN') AS p1 \gset
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
-- Someone else's payment looks exactly like a missing one.
SELECT billing.cancel_payment(:bob, :'p1');
SELECT billing.cancel_payment(:alice, '00000000-0000-4000-8000-000000000000');
SELECT billing.cancel_payment(:alice, :'p1');
SELECT status, closed_at FROM billing.payments WHERE id = :'p1';
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
-- Twice: a clear error, nothing changed.
SELECT billing.cancel_payment(:alice, :'p1');

-- A pending one (checkout open) too.
SELECT billing.create_invoice(:alice, 'films', 1) AS p2 \gset
-- (by hand here, as the provider's checkout does it)
UPDATE billing.payments SET status = 'pending' WHERE id = :'p2';
INSERT INTO billing.payment_events (payment_id, from_status, to_status, source)
VALUES (:'p2', 'invoiced', 'pending', 'api');
SELECT billing.cancel_payment(:alice, :'p2');

-- Paid at 10:00 by the provider's clock: a refund at 10:59 is accepted.  No
-- provider checkout is behind this payment (settled by hand, as an admin
-- would), so nothing holds the money: it is refunded at once, never left
-- refund_pending, and the event says why.
SELECT billing.create_invoice(:alice, 'films', 1, 'TEN') AS p3 \gset
SELECT billing.settle_payment(:'p3', 'paid', 'pi_3', '2026-03-01 10:00:00+00', 'webhook');
SET billing.test_clock = '2026-03-01 10:59:00+00';
SELECT billing.cancel_payment(:alice, :'p3');
SELECT status, paid_at, closed_at FROM billing.payments WHERE id = :'p3';
SELECT source, detail FROM billing.payment_events WHERE payment_id = :'p3' AND to_status = 'refunded';
-- Access ends at once; a provider's word afterwards changes nothing.
SELECT status, ends_at FROM billing.subscriptions WHERE user_id = :alice;
SELECT billing.settle_payment(:'p3', 'refunded', 're_3', source => 'webhook');
SELECT redemptions FROM marketing.promo_codes WHERE code = 'TEN';
SELECT billing.cancel_payment(:alice, :'p3');

-- Paid at 11:00: at 12:01 (61 minutes) the window has passed.
SET billing.test_clock = '2026-03-01 11:00:00+00';
SELECT billing.create_invoice(:bob, 'films', 1) AS p4 \gset
SELECT billing.settle_payment(:'p4', 'paid');
SET billing.test_clock = '2026-03-01 12:01:00+00';
SELECT billing.cancel_payment(:bob, :'p4');
SELECT status FROM billing.payments WHERE id = :'p4';
-- Exactly one hour is still inside.
SET billing.test_clock = '2026-03-01 12:00:00+00';
SELECT billing.cancel_payment(:bob, :'p4');

-- The window runs from the provider's time of payment, not from when we
-- heard about it: reported at 12:00 as paid at 11:20, refused at 12:21.
SELECT billing.create_invoice(:bob, 'films', 1) AS p5 \gset
SELECT billing.settle_payment(:'p5', 'paid', 'pi_5', '2026-03-01 11:20:00+00', 'poll');
SET billing.test_clock = '2026-03-01 12:21:00+00';
SELECT billing.cancel_payment(:bob, :'p5');
-- The window is a setting (superuser only).
SET billing.refund_window = '2h';
SELECT billing.cancel_payment(:bob, :'p5');
RESET billing.refund_window;

-- A zero total never moved money: its refund completes at once.
SELECT billing.create_invoice(:bob, 'trial', 1) AS p6 \gset
SELECT status FROM billing.payments WHERE id = :'p6';
SELECT billing.cancel_payment(:bob, :'p6');
SELECT status FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id
WHERE s.user_id = :bob AND t.code = 'trial';

-- Expired, failed: nothing to cancel.
SELECT billing.create_invoice(:bob, 'films', 2) AS p7 \gset
SELECT billing.settle_payment(:'p7', 'expired');
SELECT billing.cancel_payment(:bob, :'p7');
SELECT billing.create_invoice(:bob, 'films', 3) AS p8 \gset
SELECT billing.settle_payment(:'p8', 'failed');
SELECT billing.cancel_payment(:bob, :'p8');

-- Every cancel and refund request is an 'api' event.
SELECT p.months, p.status,
       string_agg(coalesce(e.from_status, '-') || '>' || e.to_status || ' (' || e.source || ')',
                  ' ' ORDER BY e.id) AS path
FROM billing.payments p JOIN billing.payment_events e ON e.payment_id = p.id
GROUP BY p.id ORDER BY p.user_id, p.created_at, p.months, path;

-- Settings and the function are not for everyone.
CREATE ROLE cancel_nobody;
GRANT USAGE ON SCHEMA billing TO cancel_nobody;
SET ROLE cancel_nobody;
SET billing.refund_window = '100d';
SELECT billing.cancel_payment(:bob, :'p8');
RESET ROLE;
REVOKE USAGE ON SCHEMA billing FROM cancel_nobody;
DROP ROLE cancel_nobody;
