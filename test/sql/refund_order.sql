-- A refund takes off exactly the months its payment bought, whatever order
-- the payments were settled in.  Providers deliver out of order, and the
-- settle passes the provider's own time of payment, so the payment that
-- starts a term need not be the one paid first.  The rule held after every
-- step: a subscription's term is its anchor plus the months of the paid,
-- unrefunded payments of that term.
SELECT test_reset();
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Priority films', 29900);

-- The rule, for every subscription: months, end, grace, status and access
-- against the payments themselves.  One row per breach (none expected).
CREATE FUNCTION pg_temp.breaches() RETURNS TABLE (user_id uuid, what text)
LANGUAGE sql AS $$
    WITH held AS (
        SELECT s.id, s.user_id, s.status, s.anchor_at, s.months, s.ends_at, s.grace_ends_at,
               coalesce((SELECT sum(p.months)::int FROM billing.payments p
                         WHERE p.subscription_id = s.id AND p.subscription_term = s.term
                           AND p.status IN ('paid', 'refund_pending')), 0) AS paid_months
        FROM billing.subscriptions s)
    SELECT user_id, format('months %s, paid %s', months, paid_months) FROM held
    WHERE months <> paid_months
    UNION ALL
    SELECT user_id, format('ends %s, anchor + %s months is %s', ends_at, months,
                           billing.add_months(anchor_at, months)) FROM held
    WHERE ends_at <> billing.add_months(anchor_at, months)
    UNION ALL
    SELECT user_id, format('%s with %s paid months, access %s', status, paid_months,
                           billing.has_access(user_id, 'films')) FROM held
    WHERE (paid_months > 0) <> (status = 'active' AND billing.has_access(user_id, 'films'))
    UNION ALL
    SELECT user_id, 'grace granted for refunded time' FROM held
    WHERE paid_months = 0 AND grace_ends_at > billing.now()
$$;

-- Three payments of one buyer: 1, 2 and 3 months, paid by the provider at
-- 10:00, 10:01 and 10:02.  Every order of settling them, then every order of
-- refunding them (the buyer asks within the window): 36 buyers, 216 steps.
CREATE TEMP TABLE log (buyer int, step text, breaches int);
SET billing.test_clock = '2026-01-31 10:10:00+00';
DO $$
DECLARE
    orders int[][] := '{{1,2,3},{1,3,2},{2,1,3},{2,3,1},{3,1,2},{3,2,1}}';
    buyer int := 0;
    who uuid;
    pay uuid[];
BEGIN
    FOR s IN 1..6 LOOP
        FOR r IN 1..6 LOOP
            buyer := buyer + 1;
            who := md5('buyer' || buyer)::uuid;
            pay := ARRAY[billing.create_invoice(who, 'films', 1),
                         billing.create_invoice(who, 'films', 2),
                         billing.create_invoice(who, 'films', 3)];
            FOR i IN 1..3 LOOP
                PERFORM billing.settle_payment(pay[orders[s][i]], 'paid', 'pi_' || buyer || '_' || i,
                                               '2026-01-31 10:00:00+00'::timestamptz
                                               + (orders[s][i] - 1) * interval '1 minute', 'webhook');
                INSERT INTO log SELECT buyer, 'settle ' || orders[s][i], count(*) FROM pg_temp.breaches();
            END LOOP;
            FOR i IN 1..3 LOOP
                PERFORM billing.cancel_payment(who, pay[orders[r][i]]);
                INSERT INTO log SELECT buyer, 'refund ' || orders[r][i], count(*) FROM pg_temp.breaches();
            END LOOP;
        END LOOP;
    END LOOP;
END
$$;
SELECT count(*) AS steps, count(DISTINCT buyer) AS buyers, sum(breaches) AS breaches FROM log;
SELECT * FROM pg_temp.breaches();

-- One of them readably: settled 3, 1, 2 (the last paid first: it anchors the
-- term at 10:02), refunded 1, 3, 2.  Each refund takes its own months off.
CREATE TEMP VIEW sub AS
SELECT s.status, s.term, s.anchor_at, s.months, s.ends_at, s.grace_ends_at,
       billing.has_access(s.user_id, 'films') AS access
FROM billing.subscriptions s WHERE s.user_id = md5('reader')::uuid;
SELECT billing.create_invoice(md5('reader')::uuid, 'films', 1) AS p1,
       billing.create_invoice(md5('reader')::uuid, 'films', 2) AS p2,
       billing.create_invoice(md5('reader')::uuid, 'films', 3) AS p3 \gset
SELECT billing.settle_payment(:'p3', 'paid', 'pi_r3', '2026-01-31 10:02:00+00', 'webhook');
SELECT billing.settle_payment(:'p1', 'paid', 'pi_r1', '2026-01-31 10:00:00+00', 'poll');
SELECT billing.settle_payment(:'p2', 'paid', 'pi_r2', '2026-01-31 10:01:00+00', 'webhook');
SELECT * FROM sub;
SELECT billing.cancel_payment(md5('reader')::uuid, :'p1');
SELECT * FROM sub;
SELECT billing.cancel_payment(md5('reader')::uuid, :'p3');
SELECT * FROM sub;
SELECT billing.cancel_payment(md5('reader')::uuid, :'p2');
SELECT * FROM sub;
-- The last refund queued the revoke; the role was granted once, at the start.
SELECT kind, count(*) FROM billing.outbox
WHERE payload->>'user_id' = md5('reader')::uuid::text AND kind IN ('grant_role', 'revoke_role')
GROUP BY kind ORDER BY kind;

-- A payment of an ended term takes nothing off the next one: term 1 runs
-- out and is blocked by the sweep, a new purchase starts term 2, and the
-- provider's late refund of a term-1 payment (made in its dashboard) leaves
-- term 2 whole.
SELECT test_reset();
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Priority films', 29900);
SET billing.test_clock = '2026-03-01 10:30:00+00';
SELECT billing.create_invoice(md5('reader')::uuid, 'films', 1) AS q1,
       billing.create_invoice(md5('reader')::uuid, 'films', 2) AS q2 \gset
SELECT billing.settle_payment(:'q2', 'paid', 'pi_q2', '2026-03-01 10:01:00+00', 'webhook');
SELECT billing.settle_payment(:'q1', 'paid', 'pi_q1', '2026-03-01 10:00:00+00', 'webhook');
SELECT * FROM sub;
SET billing.test_clock = '2026-06-05 00:00:00+00';
SELECT billing.run_expiry()->>'blocked' AS blocked;
SELECT * FROM sub;
SELECT billing.create_invoice(md5('reader')::uuid, 'films', 1) AS q3 \gset
SELECT billing.settle_payment(:'q3', 'paid', 'pi_q3', source => 'webhook');
SELECT * FROM sub;
SELECT billing.settle_payment(:'q1', 'refunded', 're_q1', source => 'webhook');
SELECT * FROM sub;
SELECT * FROM pg_temp.breaches();
