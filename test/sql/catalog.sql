-- Catalog: tariffs (immutable code, price history, create/update role in the
-- outbox), personal and months discounts, promo codes (soft delete).
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';

-- create_tariff returns the new row; RUB is the default currency, currency codes are
-- upper-cased, zero-decimal currencies are fine.
SELECT jsonb_pretty(billing.create_tariff('premium', 'Priority films', 29900,
                                          description => 'New releases first'));
SELECT billing.create_tariff('intl', 'International', 999, 'usd')->>'currency' AS usd,
       billing.create_tariff('tokyo', 'Tokyo', 500, 'JPY')->>'currency' AS jpy;
SELECT id, code, title, description, monthly_price, currency, active, auth_role_id
FROM marketing.tariffs ORDER BY id;

-- The currencies a tariff may be priced in, with the decimals their amounts
-- are shown with (clients format by these): in code order (the C table is
-- searched by bisection, so its order matters), the three-decimal dinars left
-- out, every tariff's currency among them; the admin reads them (the panel),
-- a user role does not (it reaches no billing function).
SELECT code, exponent FROM api.currencies WHERE code IN ('RUB', 'USD', 'JPY', 'ISK', 'UGX', 'KWD', 'BHD')
ORDER BY code;
SELECT count(*) > 100 AS many, array_agg(code) = array_agg(code ORDER BY code COLLATE "C") AS in_order,
       bool_and(code ~ '^[A-Z]{3}$') AS codes, array_agg(DISTINCT exponent ORDER BY exponent) AS exponents
FROM billing.currencies();
SELECT t.code, t.currency, c.exponent FROM marketing.tariffs t LEFT JOIN api.currencies c ON c.code = t.currency
ORDER BY t.id;
SET ROLE billing_admin;
SELECT exponent FROM api.currencies WHERE code = 'JPY';
SET ROLE billing_anon;
SELECT err($$SELECT exponent FROM api.currencies WHERE code = 'JPY'$$);
RESET ROLE;

-- The first price is history too, with who and when.
SELECT tariff_id, old_price, new_price, changed_by, changed_at
FROM marketing.tariff_price_history ORDER BY id;

-- Each new tariff asks the auth service for a role, keyed by the tariff id.
SELECT kind, payload, idempotency_key, ordering_key, status FROM billing.outbox ORDER BY id;

-- Renaming writes update_role (keyed by the audit row: each rename is its own
-- message); changing only the description or the active flag does not.
SET billing.test_clock = '2026-03-02 09:00:00+00';
SELECT billing.update_tariff('premium', title => 'Priority films HD')->>'title' AS title;
SELECT billing.update_tariff('premium', description => 'Everything first')->>'description' AS description;
SELECT billing.update_tariff('premium', title => 'Priority films HD')->>'title' AS same_title;
SELECT billing.update_tariff('intl', active => false)->>'active' AS active;
SELECT billing.update_tariff('premium', description => '')->'description' AS cleared;
SELECT kind, payload, idempotency_key, ordering_key FROM billing.outbox WHERE kind = 'update_role';
SELECT a.id AS audit_id, a.action FROM billing.admin_audit a
WHERE a.action = 'update_tariff' AND a.after->>'title' IS DISTINCT FROM a.before->>'title';
SELECT code, title, description, active, updated_at FROM marketing.tariffs WHERE code IN ('premium', 'intl') ORDER BY id;

-- The code is permanent, even for a direct UPDATE by the owner.
SELECT err($$UPDATE marketing.tariffs SET code = 'gold' WHERE code = 'premium'$$);
SELECT err($$UPDATE marketing.tariffs SET code = code, title = 'Direct' WHERE code = 'tokyo'$$);
SELECT code, title FROM marketing.tariffs WHERE code = 'tokyo';

-- Price changes: history with old and new price; the same price again is no change.
SET billing.test_clock = '2026-03-03 09:00:00+00';
SELECT billing.set_tariff_price('premium', 34900)->>'monthly_price' AS price;
SELECT billing.set_tariff_price('premium', 34900)->>'monthly_price' AS same_price;
SELECT billing.set_tariff_price('premium', 0)->>'monthly_price' AS free;
SELECT t.code, h.old_price, h.new_price, h.changed_at
FROM marketing.tariff_price_history h JOIN marketing.tariffs t ON t.id = h.tariff_id
WHERE t.code = 'premium' ORDER BY h.id;
-- History is append-only.
SELECT err($$UPDATE marketing.tariff_price_history SET new_price = 1$$);
SELECT err($$DELETE FROM marketing.tariff_price_history$$);

-- A payment keeps its snapshot when the price changes later.
INSERT INTO billing.customers (user_id) VALUES ('a0000000-0000-0000-0000-000000000001');
INSERT INTO billing.payments (user_id, tariff_id, tariff_code, tariff_title, months, monthly_price,
                              list_price, applied, total, currency, expires_at)
SELECT 'a0000000-0000-0000-0000-000000000001', id, code, title, 1, monthly_price, monthly_price,
       'none', monthly_price, currency, '2026-03-04'
FROM marketing.tariffs WHERE code = 'tokyo';
SELECT billing.set_tariff_price('tokyo', 700)->>'monthly_price' AS new_price;
SELECT tariff_code, monthly_price, total, currency FROM billing.payments;

-- Personal discounts: one per user, replaced by a second call, removable.
SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 15);
SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 7.25, '2026-04-01 00:00:00+00');
SELECT user_id, percent, valid_until FROM marketing.personal_discounts;
SELECT billing.remove_personal_discount('a0000000-0000-0000-0000-000000000001')->>'percent' AS removed;
SELECT count(*) AS left FROM marketing.personal_discounts;
SELECT err($$SELECT billing.remove_personal_discount('a0000000-0000-0000-0000-000000000001')$$);

-- Months discounts: one tier per months value, replaced by a second call.
SELECT billing.set_months_discount(3, 5), billing.set_months_discount(12, 20),
       billing.set_months_discount(3, 7.5);
SELECT months, percent FROM marketing.months_discounts ORDER BY months;
-- Trailing zeros are not extra decimals.
SELECT billing.set_months_discount(6, 12.340)->'percent' AS six;
SELECT billing.remove_months_discount(6) IS NOT NULL;
SELECT billing.remove_months_discount(12);
SELECT err($$SELECT billing.remove_months_discount(12)$$);
SELECT months, percent FROM marketing.months_discounts ORDER BY months;

-- Promo codes: case-insensitive names, optional tariff, limit and start.
SELECT jsonb_pretty(billing.create_promo_code('Spring-26', 10, '2026-06-01 00:00:00+00'));
SELECT billing.create_promo_code('VIP', 50, '2026-06-01', 100, 'premium', '2026-03-15')
       - 'created_at' - 'id' AS vip;
SELECT err($$SELECT billing.create_promo_code('SPRING-26', 20, '2026-06-01')$$);
SELECT err($$SELECT billing.create_promo_code('other', 20, '2026-06-01', NULL, 'gold')$$);
-- Soft delete: the row stays (payments still show it), the name is free again.
SET billing.test_clock = '2026-03-05 09:00:00+00';
SELECT billing.delete_promo_code('spring-26')->>'deleted_at' AS deleted_at;
SELECT err($$SELECT billing.delete_promo_code('spring-26')$$);
SELECT (billing.create_promo_code('spring-26', 30, '2026-07-01')->>'percent')::numeric AS recreated;
SELECT code, percent, deleted_at FROM marketing.promo_codes WHERE lower(code) = 'spring-26' ORDER BY id;
SELECT billing.quote('a0000000-0000-0000-0000-000000000001', 'premium', 1, 'SPRING-26')->'promo_percent' AS live_one;
