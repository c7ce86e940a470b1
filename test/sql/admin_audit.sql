-- Admin audit: every admin change writes one billing.admin_audit row in the
-- same transaction — the calling role, the action, the object, the row before
-- and after, the billing time.  Failed calls and rolled-back ones leave none.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';

-- The actor is the calling role, not the owner the functions run as.
CREATE ROLE audit_marketer IN ROLE billing_admin;
SET ROLE audit_marketer;
SELECT billing.create_tariff('premium', 'Priority films', 29900) IS NOT NULL;
SELECT billing.update_tariff('premium', title => 'Priority HD', active => false) IS NOT NULL;
SELECT billing.set_tariff_price('premium', 31900) IS NOT NULL;
SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 10) IS NOT NULL;
SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 12.5, '2026-05-01') IS NOT NULL;
SELECT billing.remove_personal_discount('a0000000-0000-0000-0000-000000000001') IS NOT NULL;
SELECT billing.set_months_discount(6, 10) IS NOT NULL;
SELECT billing.remove_months_discount(6) IS NOT NULL;
SELECT billing.create_promo_code('Spring', 20, '2026-06-01', 5) IS NOT NULL;
SELECT billing.delete_promo_code('SPRING') IS NOT NULL;
RESET ROLE;

SELECT id, actor, action, target, at FROM billing.admin_audit ORDER BY id;

-- before and after are the whole rows; only what changed differs.
SELECT a.action, key, a.before->key AS before, a.after->key AS after
FROM billing.admin_audit a, jsonb_object_keys(coalesce(a.after, a.before)) AS key
WHERE (a.before->key) IS DISTINCT FROM (a.after->key)
  AND key NOT IN ('created_at', 'id')
ORDER BY a.id, key;

-- The price history and the promo code name the same actor.
SELECT changed_by, old_price, new_price FROM marketing.tariff_price_history ORDER BY id;
SELECT created_by FROM marketing.promo_codes;

-- Bad input changes nothing: no audit row either.
SELECT count(*) AS audit_rows FROM billing.admin_audit;
SELECT err($$SELECT billing.set_tariff_price('premium', -1)$$);
SELECT err($$SELECT billing.create_tariff('premium', 'Again', 100)$$);
SELECT err($$SELECT billing.set_months_discount(3, 0)$$);
SELECT err($$SELECT billing.remove_months_discount(3)$$);
SELECT count(*) AS audit_rows FROM billing.admin_audit;

-- Same transaction: a rolled-back change leaves no audit row and no outbox row.
BEGIN;
SELECT billing.create_tariff('ghost', 'Ghost', 100) IS NOT NULL;
SELECT count(*) AS audit_rows_inside FROM billing.admin_audit;
ROLLBACK;
SELECT count(*) AS audit_rows FROM billing.admin_audit;
SELECT count(*) AS ghost_outbox FROM billing.outbox WHERE payload->>'name' = 'Ghost';

-- The audit is append-only, even for a superuser.
SELECT err($$UPDATE billing.admin_audit SET actor = 'someone_else'$$);
SELECT err($$DELETE FROM billing.admin_audit$$);
SET ROLE audit_marketer;
SELECT err($$INSERT INTO billing.admin_audit (action, target) VALUES ('forged', 'x')$$);
RESET ROLE;
SELECT count(*) AS audit_rows FROM billing.admin_audit;

-- Money and access (admin.c): an admin's settle, cancel on a buyer's behalf
-- and manual expiry sweep are audited too, with the payment (and its
-- subscription's term) before and after; the payment events say "admin".
SELECT billing.create_tariff('films', 'Films', 1000) IS NOT NULL;
SELECT max(id) AS last_audit FROM billing.admin_audit \gset
SELECT billing.create_invoice(md5('ann')::uuid, 'films', 1) AS pay_a \gset
SELECT billing.create_invoice(md5('ann')::uuid, 'films', 2) AS pay_b \gset
SELECT billing.create_invoice(md5('bob')::uuid, 'films', 1) AS pay_c \gset
SET ROLE audit_marketer;
SELECT billing.admin_settle_payment(:'pay_a', 'paid', 'pi_manual');
SELECT billing.admin_settle_payment(:'pay_a', 'paid');      -- changes nothing: no audit row
SELECT billing.admin_settle_payment(:'pay_b', 'paid');
SELECT billing.admin_settle_payment(:'pay_b', 'refunded');
SELECT billing.admin_cancel_payment(md5('bob')::uuid, :'pay_c');
-- Refused calls change nothing and audit nothing.
SELECT err(format('SELECT billing.admin_cancel_payment(%L, %L)', md5('ann')::uuid, :'pay_c'));
SELECT err(format('SELECT billing.admin_settle_payment(%L, %L)', :'pay_c', 'paid'));
SELECT err(format('SELECT billing.admin_settle_payment(%L, %L)', :'pay_c', 'pending'));
-- The system's own entry points are not the admins': they would skip the audit.
SELECT err(format('SELECT billing.settle_payment(%L, %L)', :'pay_c', 'paid'));
SELECT err(format('SELECT billing.cancel_payment(%L, %L)', md5('bob')::uuid, :'pay_c'));
SELECT err('SELECT billing.run_expiry()');
RESET ROLE;
SET billing.test_clock = '2026-04-01 13:00:00+00';
SET ROLE audit_marketer;
SELECT billing.admin_run_expiry();
RESET ROLE;

SELECT a.actor, a.action,
       replace(replace(replace(a.target, :'pay_a', '<a>'), :'pay_b', '<b>'), :'pay_c', '<c>') AS target,
       a.before->>'status' AS before, a.after->>'status' AS after,
       a.before->'subscription'->>'months' AS months_before,
       a.after->'subscription'->>'months' AS months_after,
       a.after->>'provider_payment_intent' AS intent,
       CASE WHEN a.action = 'run_expiry' THEN a.after END AS counts,
       a.at
FROM billing.admin_audit a WHERE a.id > :last_audit ORDER BY a.id;
SELECT CASE e.payment_id WHEN :'pay_a' THEN '<a>' WHEN :'pay_b' THEN '<b>' ELSE '<c>' END AS payment,
       e.from_status, e.to_status, e.source
FROM billing.payment_events e
WHERE e.payment_id IN (:'pay_a', :'pay_b', :'pay_c') AND e.from_status IS NOT NULL
ORDER BY e.id;

DROP ROLE audit_marketer;
