-- A refund that leaves no paid months ends access at once in every
-- billing.time_zone, also for payments made in the hour that a daylight-
-- saving change repeats (a wall-clock round trip of such an instant lands an
-- hour away) or right around the hour it skips.  Two zones with daylight
-- saving and one without.  billing.time_zone is a server-wide setting
-- (sighup): each zone is set with ALTER SYSTEM, and a new session (\c) sees
-- it once the postmaster has reloaded, which it does before it accepts that
-- session's connection.
SELECT test_reset();
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Priority films', 29900);

-- Each case: a buyer pays 1 month at `paid` (the provider's time), asks for
-- the refund 30 minutes later; a second buyer pays twice a minute apart and
-- refunds the second.  Returns one row per case that broke the rule.
CREATE FUNCTION public.zone_cases(paid timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    one uuid := md5('one' || paid::text || current_setting('billing.time_zone'))::uuid;
    two uuid := md5('two' || paid::text || current_setting('billing.time_zone'))::uuid;
    p uuid;
    q uuid;
    s billing.subscriptions;
BEGIN
    PERFORM set_config('billing.test_clock', (paid + interval '30 minutes')::text, true);

    p := billing.create_invoice(one, 'films', 1);
    PERFORM billing.settle_payment(p, 'paid', 'pi', paid, 'webhook');
    PERFORM billing.cancel_payment(one, p);
    SELECT * INTO s FROM billing.subscriptions WHERE user_id = one;
    IF s.status <> 'blocked' OR billing.has_access(one, 'films') OR s.grace_ends_at > billing.now()
       OR NOT EXISTS (SELECT FROM billing.outbox WHERE idempotency_key = 'payment:' || p || ':revoke') THEN
        RETURN NEXT format('full refund of %s: %s until %s, grace until %s',
                           paid, s.status, s.ends_at, s.grace_ends_at);
    END IF;

    p := billing.create_invoice(two, 'films', 1);
    q := billing.create_invoice(two, 'films', 1);
    PERFORM billing.settle_payment(p, 'paid', 'pi', paid, 'webhook');
    PERFORM billing.settle_payment(q, 'paid', 'pi', paid + interval '1 minute', 'webhook');
    PERFORM billing.cancel_payment(two, q);
    SELECT * INTO s FROM billing.subscriptions WHERE user_id = two;
    IF s.status <> 'active' OR s.ends_at <> billing.add_months(paid, 1)
       OR NOT billing.has_access(two, 'films') THEN
        RETURN NEXT format('partial refund of %s: %s until %s', paid, s.status, s.ends_at);
    END IF;
    PERFORM billing.cancel_payment(two, p);
    SELECT * INTO s FROM billing.subscriptions WHERE user_id = two;
    IF s.status <> 'blocked' OR billing.has_access(two, 'films') OR s.grace_ends_at > billing.now() THEN
        RETURN NEXT format('second refund of %s: %s until %s, grace until %s',
                           paid, s.status, s.ends_at, s.grace_ends_at);
    END IF;
END
$$;

-- Every 5 minutes for 4 hours around each of 2026's changes in both zones
-- (in UTC: New York 07:00 Mar 8 and 06:00 Nov 1, Berlin 01:00 Mar 29 and Oct 25).
CREATE VIEW public.zone_instants AS
SELECT t FROM unnest(ARRAY['2026-03-08 07:00+00', '2026-11-01 06:00+00',
                           '2026-03-29 01:00+00', '2026-10-25 01:00+00']::timestamptz[]) AS c,
              generate_series(c - interval '2 hours', c + interval '2 hours', interval '5 minutes') AS t;

ALTER SYSTEM SET billing.time_zone = 'America/New_York';
SELECT pg_reload_conf();
\c
SHOW billing.time_zone;
-- The instants of the repeated hour: a wall-clock round trip moves the first.
SELECT count(*) AS cases, count(*) FILTER (WHERE z IS NOT NULL) AS broken
FROM public.zone_instants LEFT JOIN LATERAL public.zone_cases(t) AS z ON true;
SELECT z FROM public.zone_instants, public.zone_cases(t) AS z LIMIT 5;
-- Month arithmetic across those hours: the same as PostgreSQL's in the zone.
SELECT count(*) AS cases,
       count(*) FILTER (WHERE billing.add_months(t, m) <>
                        ((t AT TIME ZONE 'America/New_York') + make_interval(months => m))
                        AT TIME ZONE 'America/New_York') AS different
FROM public.zone_instants, generate_series(-25, 25) AS m WHERE m <> 0;

ALTER SYSTEM SET billing.time_zone = 'Europe/Berlin';
SELECT pg_reload_conf();
\c
SHOW billing.time_zone;
SELECT count(*) AS cases, count(*) FILTER (WHERE z IS NOT NULL) AS broken
FROM public.zone_instants LEFT JOIN LATERAL public.zone_cases(t) AS z ON true;

ALTER SYSTEM SET billing.time_zone = 'Asia/Tokyo';
SELECT pg_reload_conf();
\c
SHOW billing.time_zone;
SELECT count(*) AS cases, count(*) FILTER (WHERE z IS NOT NULL) AS broken
FROM public.zone_instants LEFT JOIN LATERAL public.zone_cases(t) AS z ON true;

-- Readably, in New York: paid at 01:30 EDT on Nov 1 (05:30 UTC), the first of
-- the two 01:30s; refunded at 01:40 EDT.  Blocked at once, no grace.
ALTER SYSTEM SET billing.time_zone = 'America/New_York';
SELECT pg_reload_conf();
\c
SET billing.test_clock = '2026-11-01 05:40:00+00';
SELECT billing.create_invoice(md5('nina')::uuid, 'films', 1) AS n1 \gset
SELECT billing.settle_payment(:'n1', 'paid', 'pi_n1', '2026-11-01 05:30:00+00', 'webhook');
SELECT status, anchor_at, ends_at FROM billing.subscriptions WHERE user_id = md5('nina')::uuid;
SELECT billing.cancel_payment(md5('nina')::uuid, :'n1');
SELECT status, months, ends_at, grace_ends_at, billing.has_access(user_id, 'films') AS access
FROM billing.subscriptions WHERE user_id = md5('nina')::uuid;
SELECT kind FROM billing.outbox WHERE idempotency_key = 'payment:' || :'n1' || ':revoke';

ALTER SYSTEM RESET billing.time_zone;
SELECT pg_reload_conf();
\c
SHOW billing.time_zone;
DROP VIEW public.zone_instants;
DROP FUNCTION public.zone_cases(timestamptz);
