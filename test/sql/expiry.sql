-- Expiry and grace: billing.run_expiry() — reminder, end of term (grace),
-- end of grace (blocked); every message once per term, however often it runs.
SELECT test_reset();

-- A purchase through the real path: invoice, then the provider says paid.
CREATE TEMP TABLE labels (label text PRIMARY KEY, id uuid NOT NULL UNIQUE);
CREATE FUNCTION pg_temp.pay(label text, who text, months int) RETURNS bigint
    LANGUAGE sql AS $$ SELECT test_pay(label, who, 'prime', months) $$;

CREATE TEMP VIEW subs AS
SELECT u.who, s.status, s.ends_at, s.grace_ends_at, s.next_check_at,
       billing.has_access(s.user_id, 'prime') AS access
FROM billing.subscriptions s
JOIN (SELECT who, md5(who)::uuid AS uid FROM unnest(ARRAY['ann','bob','cat','dan','eve','fay','gus']) who) u
  ON u.uid = s.user_id
ORDER BY u.who;

-- Sweep messages only (payment messages are the subscriptions test's topic).
CREATE TEMP VIEW sweep_box AS
SELECT u.who, o.kind, o.payload->>'template' AS tpl, o.payload->>'end_payment' AS end_payment,
       regexp_replace(o.idempotency_key, '^sub:[0-9]+:', 'sub:') AS key
FROM billing.outbox o
JOIN (SELECT who, md5(who)::uuid AS uid FROM unnest(ARRAY['ann','bob','cat','dan','eve','fay','gus']) who) u
  ON u.uid::text = o.payload->>'user_id'
WHERE o.idempotency_key LIKE 'sub:%'
ORDER BY o.id;

SHOW billing.grace_period;
SHOW billing.reminder_before;
SHOW billing.expiry_schedule;

INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('prime', 'Prime films', 29900);

-- ann buys one month on Mar 10; the reminder is due Apr 7, the end Apr 10,
-- the end of grace Apr 12.
SET billing.test_clock = '2026-03-10 12:00:00+00';
SELECT pg_temp.pay('a1', 'ann', 1);
SELECT * FROM subs;

-- Nothing is due yet: the sweep touches nothing.
SELECT billing.run_expiry() AS before_reminder;

-- The reminder, once: later sweeps in the same phase write nothing.
SET billing.test_clock = '2026-04-07 12:00:00+00';
SELECT billing.run_expiry() AS reminder;
SELECT billing.run_expiry() AS again;
SET billing.test_clock = '2026-04-09 00:00:00+00';
SELECT billing.run_expiry() AS later;
SELECT * FROM subs;

-- The end of the term: grace starts, access continues.
SET billing.test_clock = '2026-04-10 11:59:59+00';
SELECT access FROM subs;
SET billing.test_clock = '2026-04-10 12:00:00+00';
SELECT access AS access_before_sweep FROM subs;
SELECT billing.run_expiry() AS ended;
SELECT billing.run_expiry() AS again;
SELECT * FROM subs;

-- The end of grace: blocked, role revoked — and has_access says so even
-- before the sweep has run.
SET billing.test_clock = '2026-04-12 12:00:00+00';
SELECT status, access AS access_before_sweep FROM subs;
SELECT billing.run_expiry() AS blocked;
SELECT billing.run_expiry() AS again;
SET billing.test_clock = '2026-09-01 00:00:00+00';
SELECT billing.run_expiry() AS months_later;
SELECT * FROM subs;
SELECT * FROM sweep_box;

-- A renewal after the reminder: the new term gets its own reminder (its key
-- carries the new end); the old term's messages are never repeated.
SET billing.test_clock = '2026-09-01 00:00:00+00';
SELECT pg_temp.pay('b1', 'bob', 1);
SET billing.test_clock = '2026-09-29 00:00:00+00';
SELECT billing.run_expiry() AS bob_reminder;
SELECT pg_temp.pay('b2', 'bob', 1);
SELECT status, ends_at, next_check_at FROM subs WHERE who = 'bob';
SELECT billing.run_expiry() AS nothing_due;
SET billing.test_clock = '2026-10-29 00:00:00+00';
SELECT billing.run_expiry() AS second_reminder;
SELECT * FROM sweep_box WHERE who = 'bob';

-- A sweep that comes late (the cron job was down) takes each row straight to
-- where it belongs, without messages for phases already over: cat's term
-- and grace are both over (blocked, no "ended", no reminder); dan's term is
-- over but not its grace (grace, no reminder).
SET billing.test_clock = '2026-11-01 00:00:00+00';
SELECT pg_temp.pay('c1', 'cat', 1);
SET billing.test_clock = '2026-11-28 00:00:00+00';
SELECT pg_temp.pay('d1', 'dan', 1);
SET billing.test_clock = '2026-12-29 00:00:00+00';
SELECT billing.run_expiry() AS late_sweep;
SELECT who, status, access FROM subs WHERE who IN ('cat', 'dan');
SELECT * FROM sweep_box WHERE who IN ('cat', 'dan');

-- Batches: with a batch size of 2, three due rows (dan's grace is over, eve's
-- and fay's terms) take two batches, and a row that is not due is never touched.
SET billing.expiry_batch_size = 2;
SET billing.test_clock = '2027-01-01 00:00:00+00';
SELECT pg_temp.pay('e1', 'eve', 1), pg_temp.pay('f1', 'fay', 1), pg_temp.pay('g1', 'gus', 12);
UPDATE billing.subscriptions SET updated_at = '2000-01-01' WHERE user_id = md5('gus')::uuid;
SET billing.test_clock = '2027-02-02 00:00:00+00';
SELECT billing.run_expiry() AS batched;
SELECT who, status, access FROM subs;
SELECT updated_at AS gus_untouched FROM billing.subscriptions WHERE user_id = md5('gus')::uuid;
RESET billing.expiry_batch_size;

-- Settings: the grace and reminder times of a term are fixed when the term
-- is set; a zero reminder time sends no reminder.
SET billing.grace_period = '1h';
SET billing.reminder_before = 0;
SET billing.test_clock = '2027-03-01 00:00:00+00';
SELECT billing.run_expiry() AS eve_and_fay_blocked;
SELECT pg_temp.pay('a2', 'ann', 1);
SELECT status, ends_at, grace_ends_at, next_check_at FROM subs WHERE who = 'ann';
SET billing.test_clock = '2027-04-01 00:30:00+00';
SELECT billing.run_expiry() AS grace_no_reminder;
SET billing.test_clock = '2027-04-01 01:00:00+00';
SELECT billing.run_expiry() AS blocked_after_an_hour;
SELECT * FROM sweep_box WHERE who = 'ann';
RESET billing.grace_period;
RESET billing.reminder_before;

-- Bad settings are refused.
SET billing.grace_period = '-1';
SET billing.reminder_before = '400d';
SET billing.expiry_batch_size = 0;

-- Each message exists once, with a user:tariff ordering key.
SELECT count(*) AS rows, count(DISTINCT idempotency_key) AS keys,
       bool_and(ordering_key = (payload->>'user_id') || ':' || (payload->>'tariff_id')) AS ordered
FROM billing.outbox WHERE kind IN ('grant_role', 'revoke_role', 'notify');

-- The extension schedules the sweep (hourly; test_reset pauses the jobs so
-- they never act under a test); schedule_jobs() applies a new schedule.
SELECT jobname, schedule, command FROM cron.job WHERE jobname = 'billing-run-expiry';
SET billing.expiry_schedule = '*/10 * * * *';
SELECT * FROM billing.schedule_jobs() WHERE job = 'billing-run-expiry';
UPDATE cron.job SET active = false;
SELECT schedule, active FROM cron.job WHERE jobname = 'billing-run-expiry';
RESET billing.expiry_schedule;
SELECT * FROM billing.schedule_jobs() WHERE job = 'billing-run-expiry';
UPDATE cron.job SET active = false;

-- The sweep is for the scheduler and admins only.
CREATE ROLE expiry_user;
SET ROLE expiry_user;
SELECT billing.run_expiry();
SET billing.grace_period = '1d';
RESET ROLE;
DROP ROLE expiry_user;
