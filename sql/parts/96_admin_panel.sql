---------------------------------------------------------------------------
-- What the admin panel reads and does beyond the admin endpoints of
-- 80_api.sql: the dashboard, a payment's history, the price
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
CREATE INDEX customers_created ON billing.customers (created_at);
CREATE INDEX subscriptions_status ON billing.subscriptions (status);
CREATE INDEX subscriptions_created ON billing.subscriptions (created_at);
CREATE INDEX admin_audit_at ON billing.admin_audit (at);
-- The automatic charges (auto-renewal) by time: the dashboard's recovery
-- rate reads the period's charges from this index alone (bench/admin.sh: 1
-- in 10 of 1,000,000 payments automatic, 90 days in about 20 ms, 120 ms
-- through payments_created without it), and the payments list's "automatic
-- charges" filter stays fast however rare they are.
CREATE INDEX payments_renewal_created ON billing.payments (created_at)
    INCLUDE (user_id, tariff_id, renewal_of, renewal_attempt, status, paid_at)
    WHERE renewal_of IS NOT NULL;

-- Users, found by id or e-mail.
CREATE VIEW api.admin_users AS
SELECT c.user_id AS id, c.email, c.created_at
FROM billing.customers c;
COMMENT ON VIEW api.admin_users IS
$$Users known to billing (admin)

id is the user id of the auth service; email as the auth service told it (search with email=eq.<e-mail>).$$;

-- A user's subscriptions as the panel shows them: the user's own
-- payment_info (its next charge priced as the charge will be), and per
-- subscription the dunning state the buyer is not shown.
CREATE FUNCTION billing.admin_user_info(user_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT i || pg_catalog.jsonb_build_object('subscriptions', coalesce((
               SELECT pg_catalog.jsonb_agg(e.sub || pg_catalog.jsonb_build_object(
                          'renew_failures', s.renew_failures,
                          'auto_renew_changed_at', s.auto_renew_changed_at) ORDER BY e.ord)
                 FROM pg_catalog.jsonb_array_elements(i -> 'subscriptions') WITH ORDINALITY e(sub, ord)
                 LEFT JOIN billing.subscriptions s ON s.id = (e.sub ->> 'subscription_id')::bigint), '[]'))
      FROM billing.payment_info(admin_user_info.user_id) i
$$;
COMMENT ON FUNCTION billing.admin_user_info(uuid) IS 'billing.payment_info of the user, each subscription with two more keys for the admin panel: renew_failures (declined automatic charges of the present end of term) and auto_renew_changed_at (when auto_renew last changed; auto_renew_reason says why).  Errors: NULL 22004.';
REVOKE ALL ON FUNCTION billing.admin_user_info(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.admin_user_info(uuid) TO billing_admin;

-- Every automatic charge with what the provider said when it failed, the
-- attempts of one end of term sharing user_id, tariff_code and renewal_of.
CREATE VIEW billing.admin_renewal_charges AS
SELECT p.id,
       p.user_id,
       s.id AS subscription_id,
       p.tariff_code,
       p.renewal_of,
       p.renewal_attempt,
       p.status,
       p.total,
       p.currency,
       f.detail ->> 'failure_code' AS failure_code,
       f.detail ->> 'decline_code' AS decline_code,
       p.created_at,
       coalesce(p.closed_at, p.paid_at, p.created_at) AS at
FROM billing.payments p
LEFT JOIN billing.subscriptions s ON s.user_id = p.user_id AND s.tariff_id = p.tariff_id
LEFT JOIN LATERAL (SELECT e.detail FROM billing.payment_events e
                    WHERE e.payment_id = p.id AND e.to_status = 'failed'
                    ORDER BY e.id DESC LIMIT 1) f ON true
WHERE p.renewal_of IS NOT NULL;
COMMENT ON VIEW billing.admin_renewal_charges IS 'Every automatic charge of auto-renewal (billing.run_renewals), one row per attempt: the attempts at one end of term share user_id, tariff_code and renewal_of.  Readable by billing_admin.';
COMMENT ON COLUMN billing.admin_renewal_charges.id IS 'The payment (billing.payments.id).';
COMMENT ON COLUMN billing.admin_renewal_charges.subscription_id IS 'The subscription it renews.';
COMMENT ON COLUMN billing.admin_renewal_charges.failure_code IS 'Why the provider declined it (Stripe''s last_payment_error.code, e.g. card_declined); null unless failed, or when the failure was recorded without the provider''s answer.';
COMMENT ON COLUMN billing.admin_renewal_charges.decline_code IS 'The bank''s reason, when the provider gave one (Stripe''s decline_code, e.g. insufficient_funds).';
COMMENT ON COLUMN billing.admin_renewal_charges.at IS 'When it reached its status: closed_at (failed, canceled, expired, refunded), else paid_at, else created_at.';
REVOKE ALL ON billing.admin_renewal_charges FROM PUBLIC;
GRANT SELECT ON billing.admin_renewal_charges TO billing_admin;

CREATE VIEW api.admin_renewal_charges WITH (security_invoker) AS
SELECT * FROM billing.admin_renewal_charges;
COMMENT ON VIEW api.admin_renewal_charges IS
$$Automatic charges and their retries (admin)

One row per attempt of auto-renewal's automatic charge: the attempts at one end of term share user_id, tariff_code and renewal_of (renewal_attempt 1, 2, …).  With the provider's failure_code and decline_code of a failed one.  E.g. ?user_id=eq.<id>&order=renewal_of.desc,renewal_attempt.asc$$;

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

-- The dashboard: one document, each part one query over an index.
CREATE FUNCTION billing.admin_dashboard_since(days int) RETURNS timestamptz
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF days IS NULL OR days NOT IN (30, 90) THEN
        RAISE EXCEPTION 'days must be 30 or 90' USING ERRCODE = '22023',
            HINT = 'The dashboard shows the last 30 or 90 days.';
    END IF;
    RETURN billing.now() - pg_catalog.make_interval(days => days);
END
$$;

-- Revenue per day, tariff and currency of closed days, so that the dashboard
-- never aggregates months of payments per request.  billing.revenue_rollup()
-- (pg_cron, billing.revenue_rollup_schedule) recomputes the days a refund or a
-- late settle may still change and moves complete_before to yesterday; the
-- dashboard adds the days from complete_before on, live from payments_paid.
CREATE TABLE billing.revenue_days (
    day             date NOT NULL,               -- in billing.time_zone
    tariff_code     text NOT NULL,
    currency        char(3) NOT NULL,
    paid            bigint NOT NULL,             -- total of payments still paid
    refunded        bigint NOT NULL,             -- total of refunded ones (or refund pending)
    payments        bigint NOT NULL,             -- paid when they were made, refunded since or not
    refunds         bigint NOT NULL,
    PRIMARY KEY (day, tariff_code, currency)
);
COMMENT ON TABLE billing.revenue_days IS 'Paid and refunded totals per day (in billing.time_zone), tariff and currency for the days before billing.revenue_days_state.complete_before.';
CREATE TABLE billing.revenue_days_state (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    time_zone       text NOT NULL,               -- the days of revenue_days are in this zone
    complete_before date NOT NULL
);
REVOKE ALL ON billing.revenue_days, billing.revenue_days_state FROM PUBLIC;

CREATE FUNCTION billing.revenue_rollup() RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tz text := pg_catalog.current_setting('billing.time_zone');
    upto date := (billing.now() AT TIME ZONE tz)::date - 1;
    st billing.revenue_days_state;
    from_day date;
    n int;
BEGIN
    PERFORM billing.require_primary('billing.revenue_rollup');
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('billing.revenue_rollup'));
    SELECT * INTO st FROM billing.revenue_days_state;
    IF st.time_zone IS DISTINCT FROM tz THEN
        from_day := '-infinity';                       -- first run, or a new time zone
    ELSE
        -- A refund (within billing.refund_window) or a refund that Stripe
        -- confirms later may still change the last days: recompute them.
        from_day := least(st.complete_before, upto) - 3
                    - pg_catalog.ceil(extract(epoch FROM pg_catalog.current_setting('billing.refund_window')::interval) / 86400)::int;
    END IF;
    DELETE FROM billing.revenue_days WHERE day >= from_day;
    INSERT INTO billing.revenue_days
    SELECT (p.paid_at AT TIME ZONE tz)::date, p.tariff_code, p.currency,
           coalesce(sum(p.total) FILTER (WHERE p.status = 'paid'), 0),
           coalesce(sum(p.total) FILTER (WHERE p.status IN ('refund_pending', 'refunded')), 0),
           count(*),
           count(*) FILTER (WHERE p.status IN ('refund_pending', 'refunded'))
      FROM billing.payments p
     WHERE p.paid_at >= (from_day::timestamp AT TIME ZONE tz)
       AND p.paid_at < (upto::timestamp AT TIME ZONE tz)
     GROUP BY 1, 2, 3;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO billing.revenue_days_state (time_zone, complete_before) VALUES (tz, upto)
        ON CONFLICT (only_row) DO UPDATE SET time_zone = EXCLUDED.time_zone,
                                             complete_before = EXCLUDED.complete_before;
    RETURN n;
END
$$;
COMMENT ON FUNCTION billing.revenue_rollup() IS 'Recomputes billing.revenue_days for the days that may still change (and all of them after a change of billing.time_zone); returns the rows written.';
REVOKE ALL ON FUNCTION billing.revenue_rollup() FROM PUBLIC;

INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-revenue-rollup', 'billing.revenue_rollup_schedule', 'SELECT billing.revenue_rollup()');
SELECT billing.schedule_jobs();

-- Revenue per day, tariff and currency (whole days in billing.time_zone, the
-- first one the day `days` days ago), the totals per currency and the
-- purchases: the rolled-up days plus the rest live from payments_paid.  New
-- purchases are the subscriptions made in the period (a subscription is made
-- by its first purchase); the other purchases renewed one.
CREATE FUNCTION billing.admin_dashboard_revenue(days int) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tz text := pg_catalog.current_setting('billing.time_zone');
    first_day date := (billing.admin_dashboard_since(days) AT TIME ZONE tz)::date;
    since timestamptz := first_day::timestamp AT TIME ZONE tz;
    rolled date := coalesce((SELECT s.complete_before FROM billing.revenue_days_state s WHERE s.time_zone = tz),
                            '-infinity');
    live_from timestamptz := greatest(since, rolled::timestamp AT TIME ZONE tz);
    result jsonb;
BEGIN
    WITH r AS (
        SELECT d.day, d.tariff_code, d.currency, d.paid, d.refunded, d.payments, d.refunds
          FROM billing.revenue_days d
         WHERE d.day >= first_day AND d.day < rolled
        UNION ALL
        SELECT (p.paid_at AT TIME ZONE tz)::date, p.tariff_code, p.currency,
               coalesce(sum(p.total) FILTER (WHERE p.status = 'paid'), 0),
               coalesce(sum(p.total) FILTER (WHERE p.status IN ('refund_pending', 'refunded')), 0),
               count(*),
               count(*) FILTER (WHERE p.status IN ('refund_pending', 'refunded'))
          FROM billing.payments p
         WHERE p.paid_at >= live_from
         GROUP BY 1, 2, 3)
    SELECT pg_catalog.jsonb_build_object(
        'revenue', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                        'day', r.day, 'tariff_code', r.tariff_code, 'currency', r.currency,
                        'paid', r.paid, 'refunded', r.refunded, 'payments', r.payments)
                        ORDER BY r.day, r.tariff_code, r.currency) FROM r), '[]'),
        'totals', coalesce((SELECT pg_catalog.jsonb_agg(t ORDER BY t.currency)
                  FROM (SELECT r.currency, sum(r.paid) AS paid, sum(r.refunded) AS refunded,
                               round(100.0 * sum(r.refunds) / sum(r.payments), 2) AS refund_rate
                          FROM r GROUP BY r.currency) t), '[]'),
        'purchases', (SELECT pg_catalog.jsonb_build_object(
                          'new', n.new,
                          'renewing', greatest(coalesce((SELECT sum(r.payments) FROM r), 0) - n.new, 0))
                        FROM (SELECT count(*) AS new FROM billing.subscriptions s
                               WHERE s.created_at >= since) n))
      INTO result;
    RETURN result;
END
$$;

CREATE FUNCTION billing.admin_dashboard_subscriptions() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
               'active', count(*) FILTER (WHERE s.status = 'active'),
               'grace', count(*) FILTER (WHERE s.status = 'grace'),
               'blocked', count(*) FILTER (WHERE s.status = 'blocked'))
      FROM billing.subscriptions s
$$;

CREATE FUNCTION billing.admin_dashboard_promo_codes() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(pg_catalog.jsonb_agg(c), '[]')
      FROM (SELECT pc.code, pc.percent, pc.redemptions, pc.max_redemptions, pc.deleted_at IS NOT NULL AS deleted
              FROM marketing.promo_codes pc
             WHERE pc.redemptions > 0
             ORDER BY pc.redemptions DESC, pc.code
             LIMIT 10) c
$$;

-- The undelivered messages (outbox_order covers every status but done) and
-- the payments the poller waits on, for either provider (payments_poll).
CREATE FUNCTION billing.admin_dashboard_delivery() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
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
                       'due', count(*) FILTER (WHERE p.next_poll_at <= billing.now()),
                       'waiting', count(*),
                       'oldest_due_seconds',
                       pg_catalog.floor(extract(epoch FROM billing.now()
                                        - min(p.next_poll_at) FILTER (WHERE p.next_poll_at <= billing.now()))))
              FROM billing.payments p
             WHERE p.status IN ('pending', 'refund_pending') AND p.next_poll_at IS NOT NULL))
$$;

-- Recovery of failed automatic charges: the ends of term with a charge made
-- in the period that failed, and how many of them a later charge paid.  A
-- later attempt is made after the failed one, so it is in the period too:
-- one pass over the period's automatic charges (payments_renewal_created).
CREATE FUNCTION billing.admin_dashboard_renewals(days int) RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object(
               'failed', count(*),
               'recovered', count(*) FILTER (WHERE g.paid_attempt > g.first_failed),
               'recovery_rate', CASE WHEN count(*) > 0
                                     THEN round(100.0 * count(*) FILTER (WHERE g.paid_attempt > g.first_failed)
                                                / count(*), 2) END)
      FROM (SELECT min(p.renewal_attempt) FILTER (WHERE p.status = 'failed') AS first_failed,
                   max(p.renewal_attempt) FILTER (WHERE p.paid_at IS NOT NULL) AS paid_attempt
              FROM billing.payments p
             WHERE p.renewal_of IS NOT NULL AND p.created_at >= billing.admin_dashboard_since(days)
             GROUP BY p.user_id, p.tariff_id, p.renewal_of) g
     WHERE g.first_failed IS NOT NULL
$$;

CREATE FUNCTION billing.admin_dashboard(days int DEFAULT 30) RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.jsonb_build_object('days', days,
                                         'time_zone', pg_catalog.current_setting('billing.time_zone'),
                                         'subscriptions', billing.admin_dashboard_subscriptions(),
                                         'promo_codes', billing.admin_dashboard_promo_codes(),
                                         'renewals', billing.admin_dashboard_renewals(days))
           || billing.admin_dashboard_revenue(days)
           || billing.admin_dashboard_delivery()
$$;
COMMENT ON FUNCTION billing.admin_dashboard(int) IS 'The admin dashboard for the last 30 or 90 days: revenue per day, tariff and currency; paid, refunded and refund rate per currency; subscriptions by status; new and renewing purchases; the most used promo codes; the recovery of failed automatic charges; delivery and Stripe-poll backlog.';
REVOKE ALL ON FUNCTION billing.admin_dashboard_since(int), billing.admin_dashboard_revenue(int),
    billing.admin_dashboard_subscriptions(), billing.admin_dashboard_promo_codes(),
    billing.admin_dashboard_delivery(), billing.admin_dashboard_renewals(int), billing.admin_dashboard(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.admin_dashboard_revenue(int), billing.admin_dashboard_subscriptions(),
    billing.admin_dashboard_promo_codes(), billing.admin_dashboard_delivery(), billing.admin_dashboard_renewals(int),
    billing.admin_dashboard(int) TO billing_admin;

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

Arguments: days — 30 or 90.  Revenue per day by tariff and currency (amounts in minor units, days in billing.time_zone), paid and refunded totals with the refund rate, subscriptions active, in grace and blocked now, new versus renewing purchases, the most used promo codes, the recovery of failed automatic charges (renewals: {failed, recovered, recovery_rate}), delivery health and the provider poller's backlog.$$;

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

CREATE FUNCTION api.admin_set_auto_renew(user_id uuid, tariff text, enabled boolean) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.admin_set_auto_renew(user_id, tariff, enabled);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.admin_set_auto_renew(uuid, text, boolean) IS
$$Switch a user's auto-renewal on or off (admin)

Arguments: user_id — the buyer; tariff — the tariff's code; enabled — false to stop the next automatic charge (the paid term is kept), true to resume it.  Recorded with reason "admin" and in the admin audit.  Returns the renewal state {subscription_id, tariff, auto_renew, reason, next_charge_at, ends_at, renew_months, card_brand, card_last4}.  404 without such a subscription; 409 when it cannot be switched on (ended, no saved card, tariff off sale).$$;

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
    api.outbox_discard_dead(bigint[]), api.admin_set_auto_renew(uuid, text, boolean) FROM PUBLIC;
REVOKE ALL ON api.admin_users, api.admin_payment_events, api.admin_price_history, api.admin_renewal_charges FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_dashboard(int), api.mark_payment_paid(uuid, text),
    api.outbox_discard_dead(bigint[]), api.admin_set_auto_renew(uuid, text, boolean) TO billing_admin;
GRANT SELECT ON api.admin_users, api.admin_payment_events, api.admin_price_history, api.admin_renewal_charges TO billing_admin;

---------------------------------------------------------------------------
-- Contracts of the objects above (docs/sql.md and docs/http.md are made
-- from these).
---------------------------------------------------------------------------
COMMENT ON FUNCTION billing.admin_dashboard_since(int) IS 'The start of the dashboard''s period: billing.now() minus 30 or 90 days.  Errors: any other number of days 22023.';
COMMENT ON FUNCTION billing.admin_dashboard_revenue(int) IS 'The dashboard''s money for 30 or 90 days (whole days in billing.time_zone): {revenue: per day, tariff and currency (paid, refunded, payments), totals: per currency with the refund rate, purchases: {new, renewing}}.  Closed days from billing.revenue_days, the rest live.';
COMMENT ON FUNCTION billing.admin_dashboard_subscriptions() IS 'The dashboard''s subscriptions by status now: {active, grace, blocked}.';
COMMENT ON FUNCTION billing.admin_dashboard_promo_codes() IS 'The dashboard''s ten most used promo codes: [{code, percent, redemptions, max_redemptions, deleted}].';
COMMENT ON FUNCTION billing.admin_dashboard_renewals(int) IS 'The dashboard''s recovery of failed automatic charges for 30 or 90 days: {failed: the ends of term with an automatic charge made in the period that failed, recovered: how many of them a later automatic charge of the same end of term paid (refunded since or not), recovery_rate: recovered / failed in per cent, null when none failed}.';
COMMENT ON FUNCTION billing.admin_dashboard_delivery() IS 'The dashboard''s backlogs: {delivery: {pending, dead, oldest_pending_seconds}, stripe_poll: {due, waiting, oldest_due_seconds}}.';
COMMENT ON TABLE billing.revenue_days_state IS 'One row: the time zone billing.revenue_days was computed in and the first day it does not hold (complete_before).';
COMMENT ON COLUMN billing.revenue_days_state.only_row IS 'Always true: the table has one row.';
COMMENT ON COLUMN billing.revenue_days_state.time_zone IS 'billing.time_zone when the days were computed; another zone makes the dashboard ignore them until the next rollup rebuilds them.';
COMMENT ON COLUMN billing.revenue_days_state.complete_before IS 'billing.revenue_days holds the days before this one.';
COMMENT ON COLUMN billing.revenue_days.day IS 'The day, in billing.time_zone, of the payments'' paid_at.';
COMMENT ON COLUMN billing.revenue_days.tariff_code IS 'The tariff bought.';
COMMENT ON COLUMN billing.revenue_days.currency IS 'ISO 4217 currency code.';
COMMENT ON COLUMN billing.revenue_days.paid IS 'Total (minor units) of the day''s payments that are still paid.';
COMMENT ON COLUMN billing.revenue_days.refunded IS 'Total (minor units) of the day''s payments refunded since (or with a refund pending).';
COMMENT ON COLUMN billing.revenue_days.payments IS 'How many payments were paid that day.';
COMMENT ON COLUMN billing.revenue_days.refunds IS 'How many of them were refunded since.';
COMMENT ON COLUMN api.admin_users.id IS 'The user id (the auth service''s).';
COMMENT ON COLUMN api.admin_users.email IS 'The e-mail the auth service gave; null until fetched.';
COMMENT ON COLUMN api.admin_users.created_at IS 'First purchase (when billing first heard of the user).';
COMMENT ON COLUMN api.admin_payment_events.id IS 'Order of the events.';
COMMENT ON COLUMN api.admin_payment_events.payment_id IS 'The payment.';
COMMENT ON COLUMN api.admin_payment_events.from_status IS 'Status before; null for the creation.';
COMMENT ON COLUMN api.admin_payment_events.to_status IS 'Status after.';
COMMENT ON COLUMN api.admin_payment_events.source IS 'Who moved it: api, webhook, poll, admin or system.';
COMMENT ON COLUMN api.admin_payment_events.at IS 'When (billing.now()).';
COMMENT ON COLUMN api.admin_payment_events.detail IS 'What came with it (the provider''s references, a refund''s kind), or null.';
COMMENT ON COLUMN api.admin_price_history.id IS 'Order of the changes.';
COMMENT ON COLUMN api.admin_price_history.tariff_id IS 'The tariff (marketing.tariffs.id).';
COMMENT ON COLUMN api.admin_price_history.tariff_code IS 'The tariff''s code.';
COMMENT ON COLUMN api.admin_price_history.old_price IS 'Monthly price before, minor units; null for the first price.';
COMMENT ON COLUMN api.admin_price_history.new_price IS 'Monthly price set, minor units.';
COMMENT ON COLUMN api.admin_price_history.changed_by IS 'The database role (over HTTP billing_admin; the audit names the person).';
COMMENT ON COLUMN api.admin_price_history.changed_at IS 'When (billing.now()).';
