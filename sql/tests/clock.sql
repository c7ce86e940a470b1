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

