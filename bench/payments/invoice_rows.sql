-- The rows create_invoice writes for user n buying 3 months of films (the
-- 10% tier), in the one statement create_invoice itself runs, the quote's
-- values written in: its floor.
\set n random(1, :users)
WITH c AS (
    INSERT INTO billing.customers (user_id) VALUES (bench.user_id(:n))
    ON CONFLICT (user_id) DO NOTHING RETURNING user_id),
p AS (
    INSERT INTO billing.payments (user_id, tariff_id, tariff_code, tariff_title, months, monthly_price,
        list_price, personal_percent, months_percent, promo_percent, promo_code_id, promo_code,
        applied, total, currency, created_at, updated_at, expires_at)
    VALUES (bench.user_id(:n), 1, 'films', 'Priority films', 3, 29900, 89700, 0, 10, 0, NULL, NULL,
        'discounts', 80730, 'RUB', now(), now(), now() + interval '1 day')
    RETURNING id, created_at),
e AS (
    INSERT INTO billing.payment_events (payment_id, from_status, to_status, source, at)
    SELECT id, NULL, 'invoiced', 'api', created_at FROM p RETURNING payment_id)
SELECT e.payment_id, EXISTS (SELECT FROM c) FROM e;
