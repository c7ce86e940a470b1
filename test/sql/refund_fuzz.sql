-- Random sequences, checked against the refund rule after every step:
--   a subscription's term is its anchor plus the months of the paid,
--   unrefunded payments of its current term; a refund that leaves no paid
--   time ends access at once (blocked, revoke queued, no grace); paid time
--   not yet over gives access; no error is XX000.
-- Steps: invoices (1-3 months, two tariffs, a 100% promo code: zero totals
-- paid at once), settles 'paid' from every source with the provider's time
-- `at` now, a little or a lot earlier (late webhooks, a poll catching up) or
-- absent, in any order; refunds by the buyer (cancel_payment) and by the
-- provider or an admin (settle 'refunded'); replayed 'paid' events; moves of
-- the clock with expiry sweeps (grace, blocks, lapses, new terms).  Runs in
-- billing.time_zone UTC, New York, Berlin and Lord Howe (a 30-minute change),
-- each starting next to one of the zone's daylight-saving changes.
--
-- Which term a payment's months count in is modelled here from the rule
-- ("a payment starts a new term when the subscription is blocked or its
-- grace was over at the payment's time"), not read from the payments table,
-- so the check does not trust the bookkeeping it checks.  The sequences are
-- fixed by setseed: the log below reproduces any breach step by step.
SELECT test_reset();
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Films', 29900), ('kids', 'Kids', 9900);
SELECT billing.create_promo_code('FREE', 100, '2100-01-01', NULL, 'kids', '2000-01-01') IS NOT NULL AS free_code;

-- The model: the current term of each (buyer, tariff), and each paid
-- payment's term and whether it is still paid.
CREATE TABLE public.fuzz_term (user_id uuid, tariff text, term int, PRIMARY KEY (user_id, tariff));
CREATE TABLE public.fuzz_paid (payment_id uuid PRIMARY KEY, user_id uuid, tariff text, term int,
                               months int, live boolean);
CREATE TABLE public.fuzz_log (run text, step int, action text, outcome text, breaches text[]);

-- Payment pid has just become paid at paid_at; the subscription was `before`
-- (NULL: none) when it happened.
CREATE FUNCTION public.fuzz_model_paid(pid uuid, paid_at timestamptz, before billing.subscriptions)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p billing.payments;
    t int;
BEGIN
    SELECT * INTO p FROM billing.payments WHERE id = pid;
    SELECT term INTO t FROM fuzz_term WHERE user_id = p.user_id AND tariff = p.tariff_code;
    IF t IS NULL OR before.id IS NULL OR before.status = 'blocked' OR paid_at >= before.grace_ends_at THEN
        t := coalesce(t, 0) + 1;
        INSERT INTO fuzz_term VALUES (p.user_id, p.tariff_code, t)
        ON CONFLICT (user_id, tariff) DO UPDATE SET term = EXCLUDED.term;
    END IF;
    INSERT INTO fuzz_paid VALUES (pid, p.user_id, p.tariff_code, t, p.months, true);
END
$$;

-- The rule at billing.now() for the buyers of one run, one row per breach.
-- `refunded`: the payment a refund step just refunded (NULL otherwise);
-- `was_blocked`: whether its subscription was blocked before.
CREATE FUNCTION public.fuzz_breaches(buyers uuid[], refunded uuid, was_blocked boolean) RETURNS SETOF text
LANGUAGE sql AS $$
    WITH held AS (
        SELECT s.id, s.status, s.anchor_at, s.months, s.ends_at, s.grace_ends_at,
               coalesce((SELECT sum(f.months)::int FROM fuzz_paid f JOIN fuzz_term m USING (user_id, tariff)
                         WHERE f.user_id = s.user_id AND f.tariff = t.code AND f.term = m.term
                           AND f.live), 0) AS paid_months,
               billing.has_access(s.user_id, t.code) AS access
        FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id
        WHERE s.user_id = ANY (buyers))
    SELECT format('sub %s: months %s, paid %s', id, months, paid_months) FROM held
    WHERE months <> paid_months
    UNION ALL
    SELECT format('sub %s: ends %s, anchor %s + %s months is %s', id, ends_at, anchor_at, months,
                  billing.add_months(anchor_at, months)) FROM held
    WHERE ends_at <> billing.add_months(anchor_at, months)
    UNION ALL
    SELECT format('sub %s: %s with no paid month, access %s, grace until %s', id, status, access,
                  grace_ends_at) FROM held
    WHERE paid_months = 0 AND (status <> 'blocked' OR access OR grace_ends_at > billing.now())
    UNION ALL
    SELECT format('sub %s: paid until %s but %s, access %s', id, ends_at, status, access) FROM held
    WHERE paid_months > 0 AND billing.now() < ends_at AND (status = 'blocked' OR NOT access)
    UNION ALL
    SELECT format('sub %s: %s, grace until %s for a term ending %s', id, status, grace_ends_at, ends_at)
    FROM held
    WHERE status <> 'blocked'
      AND extract(epoch FROM grace_ends_at - ends_at)
          <> extract(epoch FROM current_setting('billing.grace_period')::interval)
    UNION ALL
    SELECT format('sub %s: access %s, %s, grace until %s', id, access, status, grace_ends_at) FROM held
    WHERE access <> (status <> 'blocked' AND billing.now() < grace_ends_at)
    UNION ALL
    SELECT format('payment %s: %s, model says %s', p.id, p.status, f.live)
    FROM billing.payments p LEFT JOIN fuzz_paid f ON f.payment_id = p.id
    WHERE p.user_id = ANY (buyers)
      AND (p.status IN ('paid', 'refund_pending')) IS DISTINCT FROM f.live
      AND (p.status IN ('paid', 'refund_pending', 'refunded') OR f.payment_id IS NOT NULL)
    UNION ALL
    -- The refund just made: no paid time left now means blocked at once, no
    -- grace, and the revoke queued unless the role was revoked already.
    SELECT format('refund of %s left %s: %s until %s, grace until %s, revoke %s', p.id, s.months,
                  s.status, s.ends_at, s.grace_ends_at,
                  EXISTS (SELECT FROM billing.outbox o WHERE o.idempotency_key = 'payment:' || p.id || ':revoke'))
    FROM billing.payments p JOIN billing.subscriptions s ON s.id = p.subscription_id
    JOIN fuzz_paid f ON f.payment_id = p.id
    JOIN fuzz_term m ON m.user_id = f.user_id AND m.tariff = f.tariff
    WHERE p.id = refunded AND f.term = m.term
      AND (s.months = 0 OR s.ends_at <= billing.now())
      AND (s.status <> 'blocked' OR s.grace_ends_at > billing.now()
           OR (NOT was_blocked AND NOT EXISTS (SELECT FROM billing.outbox o
                                               WHERE o.idempotency_key = 'payment:' || p.id || ':revoke')))
$$;

-- One of the run's payments in `status` (NULL: any but invoiced), at random;
-- in the order they were made, so that the choice does not depend on where
-- rows lie in the table.
CREATE FUNCTION public.fuzz_pick(invoices uuid[], status text) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    a uuid[] := ARRAY(SELECT p.id FROM unnest(invoices) WITH ORDINALITY AS i(id, n)
                      JOIN billing.payments p ON p.id = i.id
                      WHERE CASE WHEN fuzz_pick.status IS NULL THEN p.status <> 'invoiced'
                                 ELSE p.status = fuzz_pick.status END
                      ORDER BY i.n);
BEGIN
    RETURN CASE WHEN cardinality(a) > 0 THEN a[1 + floor(random() * cardinality(a))::int] END;
END
$$;

-- n random steps of three buyers from `start`.
CREATE FUNCTION public.fuzz(run text, start timestamptz, n int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    buyers uuid[] := ARRAY[md5(run || 'a')::uuid, md5(run || 'b')::uuid, md5(run || 'c')::uuid];
    invoices uuid[] := '{}';
    now_ timestamptz := start;
    who uuid;
    tariff text;
    pid uuid;
    pat timestamptz;
    before billing.subscriptions;
    r float8;
    action text;
    outcome text;
    refunded uuid;
    was_blocked boolean;
BEGIN
    PERFORM set_config('billing.test_clock', now_::text, false);
    FOR step IN 1..n LOOP
        r := random();
        refunded := NULL;
        was_blocked := false;
        outcome := 'ok';
        who := buyers[1 + floor(random() * 3)::int];
        BEGIN
            IF r < 0.22 THEN
                tariff := CASE WHEN random() < 0.75 THEN 'films' ELSE 'kids' END;
                SELECT s.* INTO before FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id
                WHERE s.user_id = who AND t.code = tariff;
                pid := billing.create_invoice(who, tariff, 1 + floor(random() * 3)::int,
                                              CASE WHEN tariff = 'kids' AND random() < 0.5 THEN 'free' END);
                invoices := invoices || pid;
                action := format('invoice %s %s', pid,
                                 (SELECT tariff_code || ' ' || months || ' total ' || total || ' ' || status
                                  FROM billing.payments WHERE id = pid));
                -- A zero total is paid at once, at billing.now().
                IF (SELECT status FROM billing.payments WHERE id = pid) = 'paid' THEN
                    PERFORM fuzz_model_paid(pid, now_, before);
                END IF;
            ELSIF r < 0.50 THEN
                pid := fuzz_pick(invoices, 'invoiced');
                IF pid IS NULL THEN CONTINUE; END IF;
                pat := now_ - (ARRAY[interval '0', interval '1 minute', interval '40 minutes',
                                     interval '3 hours', interval '2 days', interval '33 days'])[1 + floor(random() * 6)::int]
                              * random();
                IF random() < 0.2 THEN pat := NULL; END IF;
                SELECT s.* INTO before FROM billing.subscriptions s JOIN billing.payments p
                    ON p.user_id = s.user_id AND p.tariff_id = s.tariff_id WHERE p.id = pid;
                action := format('settle %s paid at %s', pid, coalesce(pat::text, 'now'));
                outcome := billing.settle_payment(pid, 'paid', 'pi_' || step, pat,
                                                  (ARRAY['webhook', 'poll', 'admin', 'api', 'system'])[1 + floor(random() * 5)::int]);
                PERFORM fuzz_model_paid(pid, coalesce(pat, now_), before);
            ELSIF r < 0.72 THEN
                pid := fuzz_pick(invoices, 'paid');
                IF pid IS NULL THEN CONTINUE; END IF;
                SELECT s.status = 'blocked' INTO was_blocked
                FROM billing.payments p JOIN billing.subscriptions s ON s.id = p.subscription_id WHERE p.id = pid;
                IF random() < 0.5 THEN
                    action := format('cancel %s', pid);
                    outcome := billing.cancel_payment((SELECT user_id FROM billing.payments WHERE id = pid), pid);
                ELSE
                    action := format('settle %s refunded', pid);
                    outcome := billing.settle_payment(pid, 'refunded', 're_' || step, NULL,
                                                      CASE WHEN random() < 0.5 THEN 'webhook' ELSE 'admin' END);
                END IF;
                refunded := pid;
                UPDATE fuzz_paid SET live = false WHERE payment_id = pid;
            ELSIF r < 0.80 THEN
                -- A duplicate or late 'paid' for a payment that has moved on.
                pid := fuzz_pick(invoices, NULL);
                IF pid IS NULL THEN CONTINUE; END IF;
                action := format('replay paid %s', pid);
                outcome := billing.settle_payment(pid, 'paid', 'pi_again', now_ - interval '5 minutes', 'webhook');
            ELSE
                now_ := now_ + (ARRAY[interval '7 minutes', interval '50 minutes', interval '5 hours',
                                      interval '2 days', interval '12 days', interval '40 days'])[1 + floor(random() * 6)::int]
                               * random();
                PERFORM set_config('billing.test_clock', now_::text, false);
                action := format('clock %s', now_);
                IF random() < 0.7 THEN
                    outcome := billing.run_expiry()::text;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            -- The expected refusals: a refund after the window (55000).
            outcome := CASE WHEN SQLSTATE = '55000' THEN '' ELSE 'UNEXPECTED ' END
                       || SQLSTATE || ': ' || SQLERRM;
        END;
        INSERT INTO fuzz_log
        VALUES (run, step, action, outcome, ARRAY(SELECT fuzz_breaches(buyers, refunded, was_blocked)));
    END LOOP;
END
$$;

-- UTC first; each other zone is set server-wide and seen by a new session
-- (which pg_regress starts in its own TimeZone: the arithmetic of the steps
-- is kept in UTC).
SELECT setseed(0.4242);
SELECT fuzz('UTC', '2026-01-31 09:00:00+00', 200);
ALTER SYSTEM SET billing.time_zone = 'America/New_York';
SELECT pg_reload_conf();
\c
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT setseed(0.1717);
SELECT fuzz('New York, spring', '2026-03-08 05:30:00+00', 200);
SELECT fuzz('New York, fall', '2026-11-01 04:30:00+00', 200);
ALTER SYSTEM SET billing.time_zone = 'Europe/Berlin';
SELECT pg_reload_conf();
\c
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT setseed(0.2929);
SELECT fuzz('Berlin, fall', '2026-10-24 23:30:00+00', 200);
ALTER SYSTEM SET billing.time_zone = 'Australia/Lord_Howe';
SELECT pg_reload_conf();
\c
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SELECT setseed(0.3838);
SELECT fuzz('Lord Howe, fall', '2026-04-04 14:00:00+00', 200);
ALTER SYSTEM RESET billing.time_zone;
SELECT pg_reload_conf();
\c
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- What the runs covered (so a run that stops exercising a path shows), and
-- what broke: nothing.
SELECT run, count(*) AS steps,
       count(*) FILTER (WHERE action LIKE 'settle % paid at %' OR action LIKE 'invoice % paid') AS paid,
       count(*) FILTER (WHERE outcome = 'refunded') AS refunds,
       count(*) FILTER (WHERE outcome LIKE '55000%') AS refused,
       count(*) FILTER (WHERE outcome LIKE '%"blocked": 1%') AS swept_blocks,
       count(*) FILTER (WHERE outcome LIKE 'UNEXPECTED%') AS unexpected_errors,
       count(*) FILTER (WHERE cardinality(breaches) > 0) AS steps_with_breaches
FROM fuzz_log GROUP BY run ORDER BY run;
SELECT count(*) FILTER (WHERE f.term > 1) AS payments_of_later_terms,
       count(*) FILTER (WHERE NOT f.live) AS refunded,
       count(*) FILTER (WHERE p.paid_at < (SELECT max(q.paid_at) FROM billing.payments q
                                           WHERE q.user_id = p.user_id AND q.tariff_id = p.tariff_id
                                             AND q.created_at < p.created_at)) AS paid_before_an_older_invoice
FROM fuzz_paid f JOIN billing.payments p ON p.id = f.payment_id;
SELECT run, step, action, outcome, breaches FROM fuzz_log
WHERE cardinality(breaches) > 0 OR outcome LIKE 'UNEXPECTED%' ORDER BY run, step LIMIT 10;

DROP FUNCTION fuzz(text, timestamptz, int);
DROP FUNCTION fuzz_breaches(uuid[], uuid, boolean);
DROP FUNCTION fuzz_model_paid(uuid, timestamptz, billing.subscriptions);
DROP FUNCTION fuzz_pick(uuid[], text);
DROP TABLE fuzz_log, fuzz_paid, fuzz_term;
