-- The one clock and the calendar: billing.now() and billing.add_months().
SELECT test_reset();

-- Real time by default: the transaction start.
SELECT billing.now() = now() AS real_time;

-- The test clock moves billing.now(), and only a superuser may set it.
SET billing.test_clock = '2026-01-31 12:00:00+00';
SELECT billing.now();
SET billing.test_clock = 'not a time';
RESET billing.test_clock;
SELECT billing.now() = now() AS real_time_again;

CREATE ROLE clock_user;
SET ROLE clock_user;
SET billing.test_clock = '2030-01-01';
RESET ROLE;
DROP ROLE clock_user;

-- Billing-cycle anchor: the 31st clamps to the month's end, then returns.
SELECT m, billing.add_months('2026-01-31 10:00:00+00', m) AS ends_at
FROM generate_series(0, 13) AS m;

-- Leap years: Feb 29 anchors give Feb 28 in common years, Feb 29 again in 2028.
SELECT billing.add_months('2024-02-29 00:00:00+00', 12) AS common_year,
       billing.add_months('2024-02-29 00:00:00+00', 48) AS leap_year;

-- Negative months walk back the same way (a refund takes months off).
SELECT billing.add_months('2026-03-31 10:00:00+00', -1) AS back_one;


-- Zero months is the anchor itself.
SELECT billing.add_months('2026-01-31 10:00:00.123456+00', 0) AS same;

-- Before 1 AD too: months count on across year 0 (1 BC) with floor
-- arithmetic, the way PostgreSQL's own interval arithmetic does.
SELECT billing.add_months('0001-01-15 00:00:00+00', -1) AS dec_1_bc,
       billing.add_months('0001-03-31 00:00:00+00 BC', -1) AS feb_29_1_bc,
       billing.add_months('0002-01-31 00:00:00+00 BC', 13) AS feb_29_1_bc_again,
       billing.add_months('4714-12-31 00:00:00+00 BC', -1) AS first_month;
-- A day before the first one PostgreSQL has (Nov 24, 4714 BC): out of range.
SELECT err('SELECT billing.add_months(''4714-12-15 00:00:00+00 BC'', -1)');

-- Against PostgreSQL's month arithmetic in billing.time_zone (timestamp +
-- interval clamps the day to the month's end, which is the anchor rule):
-- a wide sample of anchors over the whole range of timestamptz, and of
-- month counts up to the whole range.  A result outside the range is the
-- same error (22008) from both.
CREATE FUNCTION pg_temp.both(a timestamptz, m int) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    z text := current_setting('billing.time_zone');
    ours text;
    theirs text;
BEGIN
    BEGIN
        ours := billing.add_months(a, m)::text;
    EXCEPTION WHEN OTHERS THEN
        ours := SQLSTATE;
    END;
    BEGIN
        theirs := (((a AT TIME ZONE z) + make_interval(months => m)) AT TIME ZONE z)::text;
    EXCEPTION WHEN OTHERS THEN
        theirs := SQLSTATE;
    END;
    RETURN ARRAY[ours, theirs];
END
$$;
SELECT setseed(0.31);
CREATE TEMP TABLE sample AS
WITH anchors AS (
    SELECT '4714-11-24 00:00:00+00 BC'::timestamptz
           + (random() * 298990 * 365.25) * interval '1 day' + random() * interval '1 day' AS a
    FROM generate_series(1, 400)
    UNION ALL
    SELECT unnest(ARRAY['4714-11-24 00:00:00+00 BC', '4714-12-31 23:59:59.999999+00 BC',
                        '0001-12-31 12:00:00+00 BC', '0001-01-01 00:00:00+00',
                        '0005-02-29 10:00:00+00 BC', '2024-02-29 10:00:00+00',
                        '2026-01-31 10:00:00+00', '294276-12-31 23:59:59.999999+00']::timestamptz[])),
months AS (
    SELECT unnest(ARRAY[-1, 1, -11, 11, -12, 12, -13, 13, -25, 25, -1200, 1200, -24001, 24001,
                        -3587991, 3587991]) AS m
    UNION ALL
    SELECT (random() * 2 * 3587991 - 3587991)::int FROM generate_series(1, 40))
SELECT a, m, pg_temp.both(a, m) AS r FROM anchors, months;
SELECT count(*) AS cases,
       count(*) FILTER (WHERE r[1] = '22008') AS out_of_range,
       count(*) FILTER (WHERE r[1] IS DISTINCT FROM r[2]) AS different
FROM sample;
SELECT * FROM sample WHERE r[1] IS DISTINCT FROM r[2] LIMIT 5;

-- Counts beyond the range of any timestamp: a clear error, not a wrong date.
SELECT err('SELECT billing.add_months(''2026-01-31 10:00:00+00'', 2147483647)');
SELECT err('SELECT billing.add_months(''2026-01-31 10:00:00+00'', -2147483648)');
SELECT err('SELECT billing.add_months(''294276-12-01 00:00:00+00'', 1)');
