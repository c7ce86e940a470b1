-- Invoices: create_invoice stores the quote snapshot, creates the customer on
-- first use, reserves promo codes; a zero total is paid at once; unpaid
-- invoices expire after billing.invoice_lifetime; the admin view.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 10:00:00+00';

INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES
    ('films', 'Priority films', 29900),
    ('trial', 'Trial', 0);
INSERT INTO marketing.months_discounts (months, percent) VALUES (3, 10);
INSERT INTO marketing.personal_discounts (user_id, percent)
    VALUES ('aaaaaaaa-0000-4000-8000-000000000002', 5);
INSERT INTO marketing.promo_codes (code, percent, valid_until, max_redemptions)
    VALUES ('HALF', 50, '2027-01-01', 2);

-- A first purchase: the customer appears, with one e-mail fetch queued.
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000001', 'films', 3) AS p1 \gset
SELECT user_id, email, created_at FROM billing.customers;
SELECT kind, payload, idempotency_key, ordering_key FROM billing.outbox ORDER BY id;

-- The full snapshot, invoiced, expiring after the invoice lifetime (24 h).
SELECT user_id, tariff_code, tariff_title, months, monthly_price, list_price,
       personal_percent, months_percent, promo_percent, promo_code, applied,
       total, currency, status, created_at, expires_at, paid_at, subscription_id,
       tariff_id = (SELECT id FROM marketing.tariffs WHERE code = 'films') AS tariff_id_ok
FROM billing.payments WHERE id = :'p1';
-- ... and it matches what quote() says.
SELECT (billing.quote('aaaaaaaa-0000-4000-8000-000000000001', 'films', 3)->>'total')::bigint
       = (SELECT total FROM billing.payments WHERE id = :'p1') AS matches_quote;
-- The creation event.
SELECT from_status, to_status, source, at, detail
FROM billing.payment_events WHERE payment_id = :'p1';

-- A second purchase by the same user: no second customer, no second fetch.
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000001', 'films', 1) AS p2 \gset
SELECT count(*) AS customers FROM billing.customers;
SELECT count(*) AS fetches FROM billing.outbox WHERE kind = 'fetch_email';

-- Personal and months discounts are snapshotted with the payment.
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000002', 'films', 3) AS p3 \gset
SELECT personal_percent, months_percent, promo_percent, applied, list_price, total
FROM billing.payments WHERE id = :'p3';

-- Later catalog edits never change what was invoiced.
UPDATE marketing.tariffs SET monthly_price = 39900, title = 'Films+' WHERE code = 'films';
SELECT tariff_title, monthly_price, list_price, total FROM billing.payments WHERE id = :'p1';
UPDATE marketing.tariffs SET monthly_price = 29900, title = 'Priority films' WHERE code = 'films';

-- A promo code is reserved by the invoice (one redemption) ...
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000003', 'films', 1, 'half') AS p4 \gset
SELECT promo_code, promo_percent, applied, list_price, total FROM billing.payments WHERE id = :'p4';
SELECT redemptions FROM marketing.promo_codes WHERE code = 'HALF';
-- ... at most once per user while the invoice is live ...
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000003', 'films', 2, 'HALF');
SELECT redemptions FROM marketing.promo_codes WHERE code = 'HALF';
-- ... and the global limit holds: the second redemption is the last one.
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000004', 'films', 1, 'HALF') AS p5 \gset
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000005', 'films', 1, 'HALF');
SELECT redemptions FROM marketing.promo_codes WHERE code = 'HALF';
-- The refused buyer changed nothing: no customer, no payment.
SELECT count(*) AS customers_5 FROM billing.customers
WHERE user_id = 'aaaaaaaa-0000-4000-8000-000000000005';

-- A zero total is paid at once, through the settle path, by the system.
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000006', 'trial', 1) AS p6 \gset
SELECT status, total, paid_at, subscription_id IS NOT NULL AS has_subscription
FROM billing.payments WHERE id = :'p6';
SELECT from_status, to_status, source, at FROM billing.payment_events
WHERE payment_id = :'p6' ORDER BY id;
SELECT status, ends_at FROM billing.subscriptions
WHERE user_id = 'aaaaaaaa-0000-4000-8000-000000000006';

-- The invoice lifetime is a setting.
SET billing.invoice_lifetime = '2h';
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000007', 'films', 1) AS p7 \gset
SELECT expires_at FROM billing.payments WHERE id = :'p7';
RESET billing.invoice_lifetime;

-- Expiry: nothing is due yet.
SELECT billing.expire_invoices();
-- Two hours later only p7 is due.
SET billing.test_clock = '2026-03-01 12:00:00+00';
SELECT billing.expire_invoices();
SELECT status, closed_at FROM billing.payments WHERE id = :'p7';
-- A day later the rest: in bounded batches, oldest first.  A payment whose
-- checkout is open at the provider is left to the provider poller.
UPDATE billing.payments SET status = 'pending', provider_session_id = 'cs_test_1' WHERE id = :'p5';
SET billing.test_clock = '2026-03-02 10:00:00+00';
SET billing.invoice_expiry_batch = 2;
SELECT billing.expire_invoices();
SELECT billing.expire_invoices();
SELECT billing.expire_invoices();
RESET billing.invoice_expiry_batch;
SELECT tariff_code, months, status, closed_at, promo_code
FROM billing.payments ORDER BY user_id, months;
-- Expired reservations gave their promo redemptions back (p5 still holds one).
SELECT redemptions FROM marketing.promo_codes WHERE code = 'HALF';
SELECT from_status, to_status, source, at FROM billing.payment_events
WHERE payment_id = :'p4' ORDER BY id;

-- The admin view: every payment with its buyer, e-mail when known.
UPDATE billing.customers SET email = 'one@example.com'
WHERE user_id = 'aaaaaaaa-0000-4000-8000-000000000001';
SET ROLE billing_admin;
SELECT user_id, email, tariff_code, months, list_price, discount, total,
       personal_percent, months_percent, promo_percent, promo_code, applied,
       status, created_at, paid_at, closed_at
FROM billing.admin_payments ORDER BY user_id, months;
RESET ROLE;

-- The view and the functions are not for everyone.
CREATE ROLE invoices_nobody;
GRANT USAGE ON SCHEMA billing TO invoices_nobody;
SET ROLE invoices_nobody;
SELECT count(*) FROM billing.admin_payments;
SELECT billing.create_invoice('aaaaaaaa-0000-4000-8000-000000000009', 'films', 1);
SELECT billing.expire_invoices();
RESET ROLE;
REVOKE USAGE ON SCHEMA billing FROM invoices_nobody;
DROP ROLE invoices_nobody;

-- The event history is append-only, even for a superuser who does not own it.
CREATE ROLE invoices_dba SUPERUSER;
SET ROLE invoices_dba;
UPDATE billing.payment_events SET source = 'admin' WHERE payment_id = :'p1';
DELETE FROM billing.payment_events WHERE payment_id = :'p1';
TRUNCATE billing.payment_events CASCADE;
RESET ROLE;
DROP ROLE invoices_dba;
SELECT count(*) AS events FROM billing.payment_events;

-- The expiry job is installed with pg_cron from its setting.
SELECT * FROM billing.schedule_jobs() WHERE job = 'billing-expire-invoices';
SELECT schedule, command, active FROM cron.job WHERE jobname = 'billing-expire-invoices';
SET billing.invoice_expiry_schedule = '';
SELECT * FROM billing.schedule_jobs() WHERE job = 'billing-expire-invoices';
SELECT count(*) FROM cron.job WHERE jobname = 'billing-expire-invoices';
RESET billing.invoice_expiry_schedule;
-- Put it back, paused like every job under the tests (one transaction: the
-- scheduler never sees it active).
BEGIN;
SELECT * FROM billing.schedule_jobs() WHERE job = 'billing-expire-invoices';
UPDATE cron.job SET active = false WHERE jobname = 'billing-expire-invoices';
COMMIT;
