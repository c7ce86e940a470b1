-- Subscriptions: calendar-month terms on an anchor, renewals, refunds, access.
SELECT test_reset();

-- Purchases and refunds go through create_invoice / settle_payment, which
-- call subscription_apply_payment / subscription_refund_payment.  The test
-- paths below reach those two directly, for the bad-input cases only.
CREATE FUNCTION pg_temp.apply(uuid, uuid, bigint, int, timestamptz) RETURNS bigint
    LANGUAGE C AS 'billing', 'billing_test_apply_payment';
CREATE FUNCTION pg_temp.refund(uuid, bigint, int) RETURNS void
    LANGUAGE C AS 'billing', 'billing_test_refund_payment';

-- A purchase through the real path: invoice, then the provider says paid.
CREATE TEMP TABLE labels (label text PRIMARY KEY, id uuid NOT NULL UNIQUE);
CREATE FUNCTION pg_temp.pay(label text, who text, tariff text, months int) RETURNS bigint
    LANGUAGE sql AS $$ SELECT test_pay(label, who, tariff, months) $$;

CREATE FUNCTION pg_temp.refund(label text) RETURNS text LANGUAGE sql AS $$
    SELECT billing.settle_payment(id, 'refunded', source => 'webhook') FROM labels WHERE labels.label = refund.label;
$$;

-- The subscriptions, readably (users by name).
CREATE TEMP VIEW subs AS
SELECT u.who, t.code AS tariff, s.status, s.anchor_at, s.months, s.ends_at,
       s.grace_ends_at, s.next_check_at
FROM billing.subscriptions s
JOIN marketing.tariffs t ON t.id = s.tariff_id
JOIN (VALUES ('ann'), ('bob'), ('cat'), ('dan'), ('eve')) AS u(who) ON md5(u.who)::uuid = s.user_id
ORDER BY u.who, t.code;

-- The outbox, readably: payment ids by label, user ids by name.
CREATE TEMP VIEW box AS
SELECT o.id, o.kind, o.payload->>'template' AS tpl, u.who,
       (o.payload->>'tariff_id')::int AS tariff_id, o.payload->>'end_payment' AS end_payment,
       regexp_replace(o.idempotency_key, '[0-9a-f-]{36}',
                      coalesce((SELECT l.label FROM labels l
                                WHERE l.id::text = substring(o.idempotency_key FROM '[0-9a-f-]{36}')), '?')) AS key,
       o.ordering_key = u.uid::text || ':' || (o.payload->>'tariff_id') AS ordered
FROM billing.outbox o
JOIN (SELECT who, md5(who)::uuid AS uid FROM (VALUES ('ann'), ('bob'), ('cat'), ('dan'), ('eve')) v(who)) u
  ON u.uid::text = o.payload->>'user_id'
WHERE o.kind IN ('grant_role', 'revoke_role', 'notify')
ORDER BY o.id;

INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES
    ('prime', 'Prime films', 29900), ('kids', 'Kids "club"', 9900);

-- 1. A term that starts on the 31st: Feb 28, then back to Mar 31 and Apr 30
--    on the same anchor (renewals while active add months, never drift).
SET billing.test_clock = '2026-01-31 10:00:00+00';
SELECT pg_temp.pay('a1', 'ann', 'prime', 1) AS ann_sub;
SELECT * FROM subs;
SET billing.test_clock = '2026-02-20 09:00:00+00';
SELECT pg_temp.pay('a2', 'ann', 'prime', 1) = 1 AS same_subscription;
SELECT anchor_at, months, ends_at FROM subs WHERE who = 'ann';
SET billing.test_clock = '2026-03-01 00:00:00+00';
SELECT pg_temp.pay('a3', 'ann', 'prime', 1) AS same_again;
SELECT anchor_at, months, ends_at, grace_ends_at, next_check_at FROM subs WHERE who = 'ann';
-- Only the first payment granted the role; each paid payment sent "subscribed".
SELECT * FROM box;

-- 2. Refunds.  ann has three 1-month payments on the Jan 31 anchor (to Apr 30).
--    Refunding one takes its month off: the term ends Mar 31, still active,
--    with its own reminder.
SET billing.test_clock = '2026-03-01 00:30:00+00';
SELECT pg_temp.refund('a3');
SELECT status, months, ends_at, grace_ends_at, next_check_at FROM subs WHERE who = 'ann';
SELECT billing.has_access(md5('ann')::uuid, 'prime') AS ann_still_paid;
-- Refunding a second month leaves Jan 31 + 1 = Feb 28, already past: access
-- ends at once, no grace, the role is revoked.
SELECT pg_temp.refund('a2');
SELECT status, months, ends_at, grace_ends_at, next_check_at FROM subs WHERE who = 'ann';
SELECT billing.has_access(md5('ann')::uuid, 'prime') AS ann_refunded;
SELECT billing.run_expiry() AS sweep_finds_nothing;
SELECT kind, tpl, end_payment, key FROM box WHERE who = 'ann' AND key ~ 'a[23]:(refunded|revoke)';

-- A full refund of a first purchase: nothing left, blocked at once.
SET billing.test_clock = '2026-06-01 12:00:00+00';
SELECT pg_temp.pay('e1', 'eve', 'kids', 3);
SET billing.test_clock = '2026-06-01 12:20:00+00';
SELECT pg_temp.refund('e1');
SELECT status, months, ends_at, grace_ends_at FROM subs WHERE who = 'eve';
SELECT kind, tpl, end_payment, key FROM box WHERE who = 'eve';

-- 3. Grace over but the sweep has not run (stored status still active): a
--    payment then is a new term too, with a new grant.
SET billing.test_clock = '2026-03-10 00:00:00+00';
SELECT pg_temp.pay('d1', 'dan', 'kids', 1);
SET billing.test_clock = '2026-04-13 00:00:00+00';
SELECT status, billing.has_access(md5('dan')::uuid, 'kids') AS access FROM subs WHERE who = 'dan';
SELECT pg_temp.pay('d2', 'dan', 'kids', 1);
SELECT status, anchor_at, months, ends_at FROM subs WHERE who = 'dan';
SELECT kind, tpl, key FROM box WHERE who = 'dan';

-- 4. Leap years: a term from Jan 31 2028 ends on Feb 29; from Feb 29 2028,
--    twelve months end on Feb 28 2029.
SET billing.test_clock = '2028-01-31 23:30:00+00';
SELECT pg_temp.pay('b1', 'bob', 'prime', 1);
SELECT ends_at FROM subs WHERE who = 'bob';
SET billing.test_clock = '2028-02-29 12:00:00+00';
SELECT pg_temp.pay('c1', 'cat', 'kids', 12);
SELECT anchor_at, ends_at FROM subs WHERE who = 'cat';

-- 5. Renewal in grace extends from the old end (same anchor): bob's term
--    ended Feb 29; on Mar 1 the sweep moves him to grace (and blocks dan,
--    whose 2026 term is long over, with no belated "ended"), then he pays.
SET billing.test_clock = '2028-03-01 08:00:00+00';
SELECT billing.has_access(md5('bob')::uuid, 'prime') AS bob_in_grace;
SELECT billing.run_expiry() AS sweep;
SELECT status FROM subs WHERE who = 'bob';
SELECT pg_temp.pay('b2', 'bob', 'prime', 1);
SELECT status, anchor_at, months, ends_at, next_check_at FROM subs WHERE who = 'bob';
-- No new grant in grace (the role is still held).
SELECT kind, tpl, key FROM box WHERE who = 'bob';

-- 6. After the block, a payment starts a new term at the payment time and
--    grants the role again.
SET billing.test_clock = '2028-03-29 00:00:00+00';
SELECT billing.run_expiry() AS reminder_sweep;
SET billing.test_clock = '2028-04-01 00:00:00+00';
SELECT billing.run_expiry() AS grace_sweep;
SET billing.test_clock = '2028-04-03 00:00:00+00';
SELECT billing.run_expiry() AS block_sweep;
SELECT status, next_check_at FROM subs WHERE who = 'bob';
SELECT billing.has_access(md5('bob')::uuid, 'prime') AS bob_blocked;
SET billing.test_clock = '2028-05-10 15:00:00+00';
SELECT pg_temp.pay('b3', 'bob', 'prime', 2);
SELECT status, anchor_at, months, ends_at, grace_ends_at FROM subs WHERE who = 'bob';
SELECT billing.has_access(md5('bob')::uuid, 'prime') AS bob_back;
SELECT kind, tpl, end_payment, key FROM box WHERE who = 'bob';

-- A refund of a payment from an earlier term (bob's b1, before the block)
-- takes nothing off the current term; the refund is still announced.
SET billing.test_clock = '2028-05-10 16:00:00+00';
SELECT pg_temp.refund('b1');
SELECT status, anchor_at, months, ends_at FROM subs WHERE who = 'bob';
SELECT kind, tpl, key FROM box WHERE who = 'bob' AND key LIKE '%refunded';

-- 7. Every outbox row carries its user:tariff ordering key.
SELECT count(*) AS rows, bool_and(ordered) AS all_ordered FROM box;

-- 8. Access and payment_info.
SET billing.test_clock = '2028-05-10 16:00:00+00';
SELECT who, billing.has_access(md5(who)::uuid, 'prime') AS prime,
       billing.has_access(md5(who)::uuid, 'kids') AS kids
FROM (VALUES ('ann'), ('bob'), ('cat'), ('nobody')) v(who);
SELECT jsonb_pretty(billing.payment_info(md5('bob')::uuid) #- '{payments,0,payment_id}'
                    #- '{payments,1,payment_id}' #- '{payments,2,payment_id}' #- '{user_id}');
SELECT billing.payment_info(md5('nobody')::uuid) - 'user_id' AS nobody;

-- 9. Bad input changes nothing.
SELECT billing.has_access(md5('ann')::uuid, 'gold');
SELECT billing.has_access(NULL, 'prime');
SELECT billing.has_access(md5('ann')::uuid, NULL);
SELECT billing.payment_info(NULL);
SELECT pg_temp.apply(md5('zz')::uuid, md5('ann')::uuid, 1, 0, billing.now());
SELECT pg_temp.apply(md5('zz')::uuid, md5('ann')::uuid, 1, 1, 'infinity');
SELECT pg_temp.refund(id, 999, 1) FROM labels WHERE label = 'a1';
SELECT pg_temp.refund(md5('zz')::uuid, 1, 1);
SELECT pg_temp.refund(id, 1, 0) FROM labels WHERE label = 'a1';
DO $$
BEGIN
    PERFORM pg_temp.refund(id, 1, 1) FROM labels WHERE label = 'c1';
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE 'refused: %', regexp_replace(SQLERRM, '[0-9a-f-]{36}', 'c1');
END
$$;
SELECT count(*) AS outbox_rows FROM billing.outbox;

-- 10. Only admins (and the API through its own wrappers) may read access.
CREATE ROLE subs_user;
SET ROLE subs_user;
SELECT billing.has_access(md5('ann')::uuid, 'prime');
SELECT billing.payment_info(md5('ann')::uuid);
RESET ROLE;
GRANT billing_admin TO subs_user;
SET ROLE subs_user;
SELECT billing.has_access(md5('bob')::uuid, 'prime') AS admin_reads;
RESET ROLE;
DROP ROLE subs_user;
