-- Bad input to the admin functions: each is refused with its SQLSTATE
-- (22004 NULL, 22023 bad value, P0002 unknown object, 23505 duplicate) and
-- changes nothing — no catalog row, no history, no audit, no outbox row.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';

-- Everything an admin call could touch, as one fingerprint.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT md5(concat_ws('|',
        (SELECT string_agg(t::text, ',' ORDER BY id) FROM marketing.tariffs t),
        (SELECT string_agg(h::text, ',' ORDER BY id) FROM marketing.tariff_price_history h),
        (SELECT string_agg(d::text, ',' ORDER BY user_id) FROM marketing.personal_discounts d),
        (SELECT string_agg(m::text, ',' ORDER BY months) FROM marketing.months_discounts m),
        (SELECT string_agg(p::text, ',' ORDER BY id) FROM marketing.promo_codes p),
        (SELECT string_agg(a::text, ',' ORDER BY id) FROM billing.admin_audit a),
        (SELECT string_agg(o.id || o.kind || o.payload::text, ',' ORDER BY id) FROM billing.outbox o)))
$$;

SELECT billing.create_tariff('premium', 'Priority films', 29900) IS NOT NULL,
       billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 10) IS NOT NULL,
       billing.set_months_discount(3, 5) IS NOT NULL,
       billing.create_promo_code('SPRING', 20, '2026-06-01') IS NOT NULL;
SELECT pg_temp.state() AS before \gset

SELECT c AS call, err(c) AS result FROM (VALUES
    -- create_tariff
    ($$SELECT billing.create_tariff(NULL, 'T', 100)$$),
    ($$SELECT billing.create_tariff('gold', NULL, 100)$$),
    ($$SELECT billing.create_tariff('gold', 'T', NULL)$$),
    ($$SELECT billing.create_tariff('gold', 'T', 100, NULL)$$),
    ($$SELECT billing.create_tariff('Gold', 'T', 100)$$),
    ($$SELECT billing.create_tariff('-gold', 'T', 100)$$),
    ($$SELECT billing.create_tariff('', 'T', 100)$$),
    ($$SELECT billing.create_tariff('gold plan', 'T', 100)$$),
    ($$SELECT billing.create_tariff(repeat('g', 65), 'T', 100)$$),
    ($$SELECT billing.create_tariff('gold', '', 100)$$),
    ($$SELECT billing.create_tariff('gold', '   ', 100)$$),
    ($$SELECT billing.create_tariff('gold', repeat('т', 201), 100)$$),
    ($$SELECT billing.create_tariff('gold', 'T', -1)$$),
    ($$SELECT billing.create_tariff('gold', 'T', 100, 'XXX')$$),
    ($$SELECT billing.create_tariff('gold', 'T', 100, 'RU')$$),
    ($$SELECT billing.create_tariff('gold', 'T', 100, 'KWD')$$),
    ($$SELECT billing.create_tariff('premium', 'T', 100)$$),
    -- update_tariff
    ($$SELECT billing.update_tariff(NULL, 'T')$$),
    ($$SELECT billing.update_tariff('gold', 'T')$$),
    ($$SELECT billing.update_tariff('premium')$$),
    ($$SELECT billing.update_tariff('premium', '')$$),
    ($$SELECT billing.update_tariff('premium', repeat('x', 201))$$),
    -- set_tariff_price
    ($$SELECT billing.set_tariff_price(NULL, 100)$$),
    ($$SELECT billing.set_tariff_price('premium', NULL)$$),
    ($$SELECT billing.set_tariff_price('premium', -100)$$),
    ($$SELECT billing.set_tariff_price('gold', 100)$$),
    -- set_personal_discount / remove_personal_discount
    ($$SELECT billing.set_personal_discount(NULL, 10)$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', NULL)$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 0)$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', -5)$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 100.01)$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 12.345)$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 'NaN')$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 'Infinity')$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 10, '2026-03-01 12:00:00+00')$$),
    ($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 10, '2026-01-01')$$),
    ($$SELECT billing.remove_personal_discount(NULL)$$),
    ($$SELECT billing.remove_personal_discount('b0000000-0000-0000-0000-000000000002')$$),
    -- set_months_discount / remove_months_discount
    ($$SELECT billing.set_months_discount(NULL, 10)$$),
    ($$SELECT billing.set_months_discount(3, NULL)$$),
    ($$SELECT billing.set_months_discount(0, 10)$$),
    ($$SELECT billing.set_months_discount(-3, 10)$$),
    ($$SELECT billing.set_months_discount(3, 100.5)$$),
    ($$SELECT billing.set_months_discount(3, 0.001)$$),
    ($$SELECT billing.remove_months_discount(NULL)$$),
    ($$SELECT billing.remove_months_discount(6)$$),
    -- create_promo_code / delete_promo_code
    ($$SELECT billing.create_promo_code(NULL, 10, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('X', NULL, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('X', 10, NULL)$$),
    ($$SELECT billing.create_promo_code('spring sale', 10, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('весна', 10, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('', 10, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code(repeat('X', 65), 10, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('X', 0, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('X', 101, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('X', 10, '2026-02-01')$$),
    ($$SELECT billing.create_promo_code('X', 10, '2026-06-01', NULL, NULL, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('X', 10, '2026-06-01', 0)$$),
    ($$SELECT billing.create_promo_code('X', 10, '2026-06-01', NULL, 'gold')$$),
    ($$SELECT billing.create_promo_code('spring', 10, '2026-06-01')$$),
    ($$SELECT billing.delete_promo_code(NULL)$$),
    ($$SELECT billing.delete_promo_code('AUTUMN')$$)
) AS calls(c);

-- Nothing changed.
SELECT pg_temp.state() = :'before' AS unchanged;
SELECT (SELECT count(*) FROM billing.admin_audit) AS audit_rows,
       (SELECT count(*) FROM billing.outbox) AS outbox_rows,
       (SELECT count(*) FROM marketing.tariff_price_history) AS price_rows;
