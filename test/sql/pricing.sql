-- Pricing: billing.quote() — list price, personal × months discounts, promo
-- codes that never stack, half-up rounding once at the end, validity windows.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';

-- q(...): the interesting part of a quote, one line.
CREATE FUNCTION pg_temp.q(u uuid, t text, m int, p text DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT format('list %s personal %s months %s promo %s -> %s %s %s',
                  j->>'list_price', j->>'personal_percent', j->>'months_percent',
                  j->>'promo_percent', j->>'applied', j->>'total', j->>'currency')
    FROM billing.quote(u, t, m, p) AS j
$$;

SELECT billing.create_tariff('basic', 'Basic films', 29900) IS NOT NULL AS basic,
       billing.create_tariff('cheap', 'One kopeck', 1) IS NOT NULL AS cheap,
       billing.create_tariff('five', 'Five units', 5, 'JPY') IS NOT NULL AS five;

\set alice '''a0000000-0000-0000-0000-000000000001'''
\set bob   '''b0000000-0000-0000-0000-000000000002'''

-- The whole quote: no discounts at all.
SELECT jsonb_pretty(billing.quote(:alice, 'basic', 3));

-- Months tiers: the largest tier <= months bought applies.
SELECT billing.set_months_discount(3, 5) IS NOT NULL,
       billing.set_months_discount(6, 10) IS NOT NULL,
       billing.set_months_discount(12, 20) IS NOT NULL;
SELECT m, pg_temp.q(:alice, 'basic', m) FROM unnest(ARRAY[1, 2, 3, 5, 6, 11, 12]) AS m;

-- Personal and months discounts multiply: 89700 × 0.875 × 0.95 = 74563.125 -> 74563.
SELECT billing.set_personal_discount(:alice, 12.5) IS NOT NULL;
SELECT pg_temp.q(:alice, 'basic', 3);
-- 179400 × 0.875 × 0.9 = 141277.5 -> 141278 (half-up, once, at the end).
SELECT pg_temp.q(:alice, 'basic', 6);
-- bob has no personal discount.
SELECT pg_temp.q(:bob, 'basic', 6);

-- Rounding edges, in the minor unit: 5 × 0.9 = 4.5 -> 5; 5 × 0.89 = 4.45 -> 4;
-- 1 × 0.5 = 0.5 -> 1; 1 × 0.49 = 0.49 -> 0.
TRUNCATE marketing.months_discounts;
SELECT billing.set_personal_discount(:bob, 10) IS NOT NULL;
SELECT pg_temp.q(:bob, 'five', 1);
SELECT billing.set_personal_discount(:bob, 11) IS NOT NULL;
SELECT pg_temp.q(:bob, 'five', 1);
SELECT billing.set_personal_discount(:bob, 50) IS NOT NULL;
SELECT pg_temp.q(:bob, 'cheap', 1);
SELECT billing.set_personal_discount(:bob, 51) IS NOT NULL;
SELECT pg_temp.q(:bob, 'cheap', 1);

-- 100 % discounts give a total of 0, never less.
SELECT billing.set_personal_discount(:bob, 100) IS NOT NULL;
SELECT pg_temp.q(:bob, 'basic', 12);
SELECT billing.create_promo_code('FREE', 100, '2026-12-31') IS NOT NULL;
SELECT pg_temp.q(:alice, 'basic', 1, 'free');
SELECT billing.remove_personal_discount(:bob) IS NOT NULL;

-- A promo code never stacks: the lower total wins and is recorded.
SELECT billing.set_months_discount(12, 20) IS NOT NULL;
SELECT billing.create_promo_code('SPRING25', 25, '2026-06-01') IS NOT NULL,
       billing.create_promo_code('SPRING40', 40, '2026-06-01') IS NOT NULL,
       billing.create_promo_code('TWENTY', 20, '2026-06-01') IS NOT NULL;
-- alice: 12.5 % and 20 % -> 0.875 × 0.8 = 0.7 of the list; 25 % promo loses, 40 % wins.
SELECT pg_temp.q(:alice, 'basic', 12, 'spring25');
SELECT pg_temp.q(:alice, 'basic', 12, 'Spring40');
-- Tie: discounts and promo give the same total; the discounts stay and the
-- code is not spent ('discounts', promo_percent still shown).
SELECT billing.remove_months_discount(12) IS NOT NULL;
SELECT billing.set_personal_discount(:alice, 20) IS NOT NULL;
SELECT pg_temp.q(:alice, 'basic', 1, 'TWENTY');
-- Without any discount, a promo that rounds to no saving is not used either.
SELECT billing.create_promo_code('TINY', 10, '2026-06-01') IS NOT NULL;
SELECT pg_temp.q('c0000000-0000-0000-0000-000000000003', 'cheap', 1, 'TINY');
-- The promo fields of a quote: code as stored, both candidate totals.
SELECT j->'promo_code' AS code, j->'promo_total' AS promo_total,
       j->'discounts_total' AS discounts_total, j->'applied' AS applied
FROM billing.quote(:alice, 'basic', 1, 'spring40') AS j;

-- Months: 1..billing.max_months (12 by default).
SELECT err($$SELECT billing.quote('a0000000-0000-0000-0000-000000000001', 'basic', 13)$$);
SELECT err($$SELECT billing.quote('a0000000-0000-0000-0000-000000000001', 'basic', 0)$$);
SET billing.max_months = 24;
SELECT pg_temp.q(:alice, 'basic', 24);
RESET billing.max_months;

-- Validity windows, moved with the test clock.
-- A personal discount applies strictly before its valid_until.
SELECT billing.set_personal_discount(:alice, 30, '2026-03-10 00:00:00+00') IS NOT NULL;
SET billing.test_clock = '2026-03-09 23:59:59+00';
SELECT pg_temp.q(:alice, 'basic', 1);
SET billing.test_clock = '2026-03-10 00:00:00+00';
SELECT pg_temp.q(:alice, 'basic', 1);
-- A promo code is valid from valid_from (inclusive) to valid_until (exclusive).
SET billing.test_clock = '2026-03-01 12:00:00+00';
SELECT billing.create_promo_code('EASTER', 15, '2026-04-06 00:00:00+00', NULL, NULL,
                                 '2026-04-03 00:00:00+00') IS NOT NULL;
SET billing.test_clock = '2026-04-02 23:59:59+00';
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'basic', 1, 'easter')$$);
SET billing.test_clock = '2026-04-03 00:00:00+00';
SELECT pg_temp.q(:bob, 'basic', 1, 'easter');
SET billing.test_clock = '2026-04-05 23:59:59+00';
SELECT pg_temp.q(:bob, 'basic', 1, 'easter');
SET billing.test_clock = '2026-04-06 00:00:00+00';
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'basic', 1, 'easter')$$);
SET billing.test_clock = '2026-03-01 12:00:00+00';

-- Codes that exist but cannot be used: 55000.  Unknown codes: P0002.
SELECT billing.create_promo_code('BASICONLY', 30, '2026-06-01', NULL, 'basic') IS NOT NULL,
       billing.create_promo_code('ONCE', 30, '2026-06-01', 1) IS NOT NULL,
       billing.create_promo_code('GONE', 30, '2026-06-01') IS NOT NULL;
SELECT pg_temp.q(:bob, 'basic', 1, 'basiconly');
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'cheap', 1, 'basiconly')$$);
SELECT pg_temp.q(:bob, 'basic', 1, 'once');
UPDATE marketing.promo_codes SET redemptions = 1 WHERE code = 'ONCE';   -- an invoice holds the last use
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'basic', 1, 'once')$$);
SELECT billing.delete_promo_code('gone') IS NOT NULL;
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'basic', 1, 'GONE')$$);
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'basic', 1, 'NOSUCH')$$);
-- A code already used by this user (an open or paid invoice holds it); others may still use it.
INSERT INTO billing.customers (user_id) VALUES (:bob);
INSERT INTO billing.payments (user_id, tariff_id, tariff_code, tariff_title, months, monthly_price,
                              list_price, promo_percent, promo_code_id, promo_code, applied, total,
                              currency, status, expires_at)
SELECT :bob, t.id, t.code, t.title, 1, 29900, 29900, 25, p.id, p.code, 'promo', 22425, 'RUB',
       'invoiced', '2026-03-02'
FROM marketing.tariffs t, marketing.promo_codes p WHERE t.code = 'basic' AND p.code = 'SPRING25';
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'basic', 1, 'spring25')$$);
SELECT pg_temp.q(:alice, 'basic', 1, 'spring25');
UPDATE billing.payments SET status = 'canceled', closed_at = billing.now();
SELECT pg_temp.q(:bob, 'basic', 1, 'spring25');

-- Tariffs: unknown P0002, inactive 55000.
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'gold', 1)$$);
SELECT billing.update_tariff('cheap', active => false) IS NOT NULL;
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'cheap', 1)$$);

-- NULL arguments: 22004 (a NULL promo code means "no code").
SELECT err($$SELECT billing.quote(NULL, 'basic', 1)$$);
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', NULL, 1)$$);
SELECT err($$SELECT billing.quote('b0000000-0000-0000-0000-000000000002', 'basic', NULL)$$);
SELECT pg_temp.q(:bob, 'basic', 1, NULL);

-- Exact arithmetic at the top of bigint: list = 2^63 − 1, no float anywhere,
-- and a list that does not fit is an error, not a wrap-around.
SELECT billing.create_tariff('huge', 'Huge', 9223372036854775807) IS NOT NULL;
SELECT billing.set_personal_discount(:alice, 33.33) IS NOT NULL;
SELECT billing.quote(:alice, 'huge', 1)->'total' AS total,
       round(9223372036854775807::numeric * (1 - 0.3333)) AS expected;
SELECT err($$SELECT billing.quote('a0000000-0000-0000-0000-000000000001', 'huge', 2)$$);

-- Property check against numeric arithmetic: 600 users with two-decimal
-- personal percents × months 1..12 over three tiers × two prices; every total
-- must equal round(list × (1 − p) × (1 − m)) (numeric round() is half away
-- from zero: half-up for these non-negative amounts), including the cases
-- that land exactly on .5.
TRUNCATE marketing.personal_discounts, marketing.months_discounts;
SELECT billing.set_months_discount(2, 3.33) IS NOT NULL,
       billing.set_months_discount(5, 7.77) IS NOT NULL,
       billing.set_months_discount(9, 12.34) IS NOT NULL;
SELECT billing.create_tariff('odd', 'Odd price', 12345) IS NOT NULL,
       billing.create_tariff('round', 'Round price', 1000) IS NOT NULL;
INSERT INTO marketing.personal_discounts (user_id, percent)
SELECT md5(i::text)::uuid, (i * 7919 % 10000 + 1) / 100.0 FROM generate_series(1, 600) AS i;
WITH cases AS (
    SELECT md5(i::text)::uuid AS u, 1 + i % 12 AS m, (i * 7919 % 10000 + 1) / 100.0 AS p,
           t.code, t.monthly_price AS price
    FROM generate_series(1, 600) AS i, marketing.tariffs t WHERE t.code IN ('odd', 'round')
), quoted AS (
    SELECT c.*, (billing.quote(c.u, c.code, c.m)->>'total')::bigint AS total,
           c.price * c.m * (1 - c.p / 100) * (1 - coalesce(
               (SELECT percent FROM marketing.months_discounts d WHERE d.months <= c.m
                ORDER BY d.months DESC LIMIT 1), 0) / 100) AS exact
    FROM cases c
)
SELECT count(*) AS cases,
       count(*) FILTER (WHERE total <> round(exact)) AS mismatches,
       count(*) FILTER (WHERE exact % 1 = 0.5) AS exact_halves
FROM quoted;
