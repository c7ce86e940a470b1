\set n random(1, :users)
INSERT INTO bench.wide (user_id, tariff_id, tariff_code, tariff_title, months, monthly_price,
    list_price, personal_percent, months_percent, promo_percent, promo_code_id, promo_code,
    applied, total, currency, created_at, updated_at, expires_at)
VALUES (bench.user_id(:n), 1, 'films', 'Priority films', 3, 29900, 89700, 0, 10, 0, NULL, NULL,
    'discounts', 80730, 'RUB', now(), now(), now() + interval '1 day');
