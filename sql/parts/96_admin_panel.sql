---------------------------------------------------------------------------
-- What the admin panel reads and does beyond the admin endpoints of
-- 80_api.sql (admin_panel.c): the dashboard, a payment's history, the price
-- history, the users, marking a payment paid with a reason, discarding dead
-- messages.  Lists over big tables are read through the indexes below, so
-- the first page of a list with one filter stays fast at millions of rows.
---------------------------------------------------------------------------

-- The payments list: newest first, with at most one filter.
CREATE INDEX payments_created ON billing.payments (created_at);
CREATE INDEX payments_status_created ON billing.payments (status, created_at);
CREATE INDEX payments_tariff_created ON billing.payments (tariff_code, created_at);
CREATE INDEX payments_promo_created ON billing.payments (promo_code, created_at) WHERE promo_code IS NOT NULL;
-- The dashboard's revenue: paid payments by day, read from the index alone.
CREATE INDEX payments_paid ON billing.payments (paid_at) INCLUDE (tariff_code, currency, total, status)
    WHERE paid_at IS NOT NULL;
CREATE INDEX customers_email ON billing.customers (email);
CREATE INDEX subscriptions_status ON billing.subscriptions (status);
CREATE INDEX admin_audit_at ON billing.admin_audit (at);

-- Users, found by id or e-mail.
CREATE VIEW api.admin_users AS
SELECT c.user_id AS id, c.email, c.created_at
FROM billing.customers c;
COMMENT ON VIEW api.admin_users IS
$$Users known to billing (admin)

id is the user id of the auth service; email as the auth service told it (search with email=eq.<e-mail>).$$;

-- A payment's transitions, oldest first.
CREATE VIEW api.admin_payment_events AS
SELECT e.id, e.payment_id, e.from_status, e.to_status, e.source, e.at, e.detail
FROM billing.payment_events e;
COMMENT ON VIEW api.admin_payment_events IS
$$Payment history (admin)

Every transition of every payment with its source (api, webhook, poll, admin, system); filter with payment_id=eq.<id>.$$;

CREATE VIEW api.admin_price_history AS
SELECT h.id, h.tariff_id, t.code AS tariff_code, h.old_price, h.new_price, h.changed_by, h.changed_at
FROM marketing.tariff_price_history h
JOIN marketing.tariffs t ON t.id = h.tariff_id;
COMMENT ON VIEW api.admin_price_history IS
$$Tariff price history (admin)

Every monthly price a tariff had (old_price null for the first), who set it and when.$$;

-- The dashboard: one document, each part one indexed query.
CREATE FUNCTION billing.admin_dashboard(days int DEFAULT 30) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    now_ timestamptz := billing.now();
    since timestamptz;
    tz text := pg_catalog.current_setting('billing.time_zone');
    result jsonb;
BEGIN
    IF days IS NULL OR days NOT IN (30, 90) THEN
        RAISE EXCEPTION 'days must be 30 or 90' USING ERRCODE = '22023',
            HINT = 'The dashboard shows the last 30 or 90 days.';
    END IF;
    since := now_ - pg_catalog.make_interval(days => days);
    SELECT pg_catalog.jsonb_build_object(
        'days', days,
        'time_zone', tz,
        'revenue', coalesce((
            SELECT pg_catalog.jsonb_agg(r ORDER BY r.day, r.tariff_code, r.currency)
            FROM (SELECT (p.paid_at AT TIME ZONE tz)::date AS day, p.tariff_code, p.currency,
                         coalesce(sum(p.total) FILTER (WHERE p.status = 'paid'), 0) AS paid,
                         coalesce(sum(p.total) FILTER (WHERE p.status IN ('refund_pending', 'refunded')), 0) AS refunded,
                         count(*) AS payments
                    FROM billing.payments p
                   WHERE p.paid_at >= since AND p.paid_at IS NOT NULL
                   GROUP BY 1, 2, 3) r), '[]'),
        'totals', coalesce((
            SELECT pg_catalog.jsonb_agg(t ORDER BY t.currency)
            FROM (SELECT p.currency,
                         coalesce(sum(p.total) FILTER (WHERE p.status = 'paid'), 0) AS paid,
                         coalesce(sum(p.total) FILTER (WHERE p.status IN ('refund_pending', 'refunded')), 0) AS refunded,
                         round(100.0 * count(*) FILTER (WHERE p.status IN ('refunded', 'refund_pending'))
                               / count(*), 2) AS refund_rate
                    FROM billing.payments p
                   WHERE p.paid_at >= since AND p.paid_at IS NOT NULL
                   GROUP BY p.currency) t), '[]'),
        'subscriptions', (
            SELECT pg_catalog.jsonb_build_object(
                       'active', count(*) FILTER (WHERE s.status = 'active'),
                       'grace', count(*) FILTER (WHERE s.status = 'grace'),
                       'blocked', count(*) FILTER (WHERE s.status = 'blocked'))
            FROM billing.subscriptions s),
        -- New: the purchase that created its subscription; renewing: any later one.
        'purchases', (
            SELECT pg_catalog.jsonb_build_object(
                       'new', count(*) FILTER (WHERE s.created_at >= p.created_at),
                       'renewing', count(*) FILTER (WHERE s.created_at < p.created_at))
            FROM billing.payments p
            JOIN billing.subscriptions s ON s.id = p.subscription_id
            WHERE p.paid_at >= since AND p.paid_at IS NOT NULL),
        'promo_codes', coalesce((
            SELECT pg_catalog.jsonb_agg(c)
            FROM (SELECT pc.code, pc.percent, pc.redemptions, pc.max_redemptions, pc.deleted_at IS NOT NULL AS deleted
                    FROM marketing.promo_codes pc
                   WHERE pc.redemptions > 0
                   ORDER BY pc.redemptions DESC, pc.code
                   LIMIT 10) c), '[]'),
        'delivery', (
            SELECT pg_catalog.jsonb_build_object(
                       'pending', count(*) FILTER (WHERE o.status IN ('pending', 'in_flight')),
                       'dead', count(*) FILTER (WHERE o.status = 'dead'),
                       'oldest_pending_seconds',
                       pg_catalog.floor(extract(epoch FROM pg_catalog.now()
                                        - min(o.created_at) FILTER (WHERE o.status IN ('pending', 'in_flight')))))
            FROM billing.outbox o
            WHERE o.status <> 'done'),
        'stripe_poll', (
            SELECT pg_catalog.jsonb_build_object(
                       'due', count(*) FILTER (WHERE p.next_poll_at <= now_),
                       'waiting', count(*),
                       'oldest_due_seconds',
                       pg_catalog.floor(extract(epoch FROM now_ - min(p.next_poll_at) FILTER (WHERE p.next_poll_at <= now_))))
            FROM billing.payments p
            WHERE p.status IN ('pending', 'refund_pending') AND p.next_poll_at IS NOT NULL)
    ) INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION billing.admin_dashboard(int) IS 'The admin dashboard for the last 30 or 90 days: revenue per day, tariff and currency; paid, refunded and refund rate per currency; subscriptions by status; new and renewing purchases; the most used promo codes; delivery and Stripe-poll backlog.';
REVOKE ALL ON FUNCTION billing.admin_dashboard(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.admin_dashboard(int) TO billing_admin;

CREATE FUNCTION api.admin_dashboard(days int DEFAULT 30) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.admin_dashboard(days);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.admin_dashboard(int) IS
$$The admin dashboard (admin)

Arguments: days — 30 or 90.  Revenue per day by tariff and currency (amounts in minor units, days in billing.time_zone), paid and refunded totals with the refund rate, subscriptions active, in grace and blocked now, new versus renewing purchases, the most used promo codes, delivery health and the Stripe poller's backlog.$$;

-- Mark a payment paid by hand, with the reason in the audit.
CREATE FUNCTION billing.mark_payment_paid(payment_id uuid, reason text) RETURNS text
    VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_mark_payment_paid';
COMMENT ON FUNCTION billing.mark_payment_paid(uuid, text) IS 'Settles a payment as paid by an admin (source admin) and audits it with the reason given; returns the status.';
REVOKE ALL ON FUNCTION billing.mark_payment_paid(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.mark_payment_paid(uuid, text) TO billing_admin;

CREATE FUNCTION api.mark_payment_paid(payment_id uuid, reason text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.mark_payment_paid(payment_id, reason);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.mark_payment_paid(uuid, text) IS
$$Mark a payment paid (admin)

Arguments: payment_id — an unpaid payment; reason — why (required, kept in the audit).  For money that reached the cinema outside the provider.  Returns the status.  409 when the payment cannot become paid.$$;

CREATE FUNCTION api.outbox_discard_dead(ids bigint[]) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.outbox_discard_dead(ids);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.outbox_discard_dead(bigint[]) IS
$$Discard dead messages (admin)

Arguments: ids — the outbox_dead ids never to send.  Deleted, audited with their content; messages queued behind them move on.  Returns how many.$$;

REVOKE ALL ON FUNCTION api.admin_dashboard(int), api.mark_payment_paid(uuid, text),
    api.outbox_discard_dead(bigint[]) FROM PUBLIC;
REVOKE ALL ON api.admin_users, api.admin_payment_events, api.admin_price_history FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_dashboard(int), api.mark_payment_paid(uuid, text),
    api.outbox_discard_dead(bigint[]) TO billing_admin;
GRANT SELECT ON api.admin_users, api.admin_payment_events, api.admin_price_history TO billing_admin;
