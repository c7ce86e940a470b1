-- billing_app: application code acting for its users may do what a buyer
-- does, and nothing of the catalog, the provider's outcomes or the tables.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';

SELECT billing.create_tariff('films', 'Priority films', 29900) IS NOT NULL AS tariff;
SELECT billing.set_months_discount(3, 10) IS NOT NULL AS tier;

CREATE ROLE app_backend IN ROLE billing_app;
SET ROLE app_backend;

-- The buyer's path, for a user id the application vouches for.
SELECT billing.quote('a0000000-0000-4000-8000-000000000001', 'films', 3) ->> 'total' AS total;
SELECT billing.create_invoice('a0000000-0000-4000-8000-000000000001', 'films', 3) IS NOT NULL AS invoiced;
SELECT billing.cancel_payment('a0000000-0000-4000-8000-000000000001', id) AS canceled
FROM (SELECT payment_id AS id FROM jsonb_to_recordset(billing.payment_info('a0000000-0000-4000-8000-000000000001') -> 'payments')
          AS p(payment_id uuid)) p;
SELECT billing.has_access('a0000000-0000-4000-8000-000000000001', 'films') AS access;
-- Amounts are minor units: the application shows them by their currency's decimals.
SELECT code, exponent FROM billing.currencies() WHERE code IN ('RUB', 'JPY') ORDER BY code;

-- Nothing else.
SELECT c AS call, err(c) AS result FROM (VALUES
    ('SELECT billing.create_tariff(''x'', ''X'', 1)'),
    ('SELECT billing.set_personal_discount(''a0000000-0000-4000-8000-000000000001'', 50)'),
    ('SELECT billing.settle_payment(gen_random_uuid(), ''paid'')'),
    ('SELECT billing.run_expiry()'),
    ('SELECT count(*) FROM billing.payments'),
    ('SELECT count(*) FROM billing.admin_payments'),
    ('SELECT count(*) FROM marketing.personal_discounts'),
    ('UPDATE billing.payments SET status = ''paid''')
) AS t(c);

RESET ROLE;
DROP ROLE app_backend;
