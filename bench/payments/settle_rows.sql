-- The rows a paid settle writes for the next queued invoice, in one
-- statement: its lock, the subscription (new, or renewed from its end), the
-- grant (new only) and the paid notification, the payment marked paid with
-- its subscription, and the event: its floor.
WITH p AS (
    SELECT p.id, p.user_id, p.tariff_id, p.tariff_title, p.months
    FROM billing.payments p JOIN bench.queue q ON q.id = p.id
    WHERE q.n = (SELECT nextval('bench.next')) AND p.status = 'invoiced'
    FOR UPDATE OF p),
s AS (
    INSERT INTO billing.subscriptions AS s (user_id, tariff_id, status, anchor_at, months, ends_at,
        grace_ends_at, next_check_at, created_at, updated_at)
    SELECT user_id, tariff_id, 'active', now(), months, now() + make_interval(months => months),
        now() + make_interval(months => months, days => 2),
        now() + make_interval(months => months, days => -3), now(), now()
    FROM p
    ON CONFLICT (user_id, tariff_id) DO UPDATE SET status = 'active', months = s.months + excluded.months,
        ends_at = s.ends_at + make_interval(months => excluded.months),
        grace_ends_at = s.ends_at + make_interval(months => excluded.months, days => 2),
        next_check_at = s.ends_at + make_interval(months => excluded.months, days => -3),
        updated_at = now()
    RETURNING s.id, s.xmax = 0 AS created),
o AS (
    INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key)
    SELECT m.kind, jsonb_build_object('user_id', p.user_id, 'tariff_id', p.tariff_id,
                                      'title', p.tariff_title, 'payment_id', p.id),
        'payment:' || p.id || ':' || m.kind, p.user_id || ':' || p.tariff_id
    FROM p, s, (VALUES ('grant_role'), ('notify')) m(kind)
    WHERE m.kind = 'notify' OR s.created),
u AS (
    UPDATE billing.payments x SET status = 'paid', updated_at = now(), paid_at = now(),
        subscription_id = s.id
    FROM p, s WHERE x.id = p.id AND x.status = 'invoiced'
    RETURNING x.id)
INSERT INTO billing.payment_events (payment_id, from_status, to_status, source, at)
SELECT id, 'invoiced', 'paid', 'admin', now() FROM u;
