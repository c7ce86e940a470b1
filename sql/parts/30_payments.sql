---------------------------------------------------------------------------
-- Payments (payments.c): invoices, the settle path, cancel/refund requests,
-- expiry of unpaid invoices, the admin view, and the pg_cron job registry.
---------------------------------------------------------------------------

CREATE FUNCTION billing.create_invoice(user_id uuid, tariff text, months int,
                                       promo_code text DEFAULT NULL)
    RETURNS uuid
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_create_invoice';
COMMENT ON FUNCTION billing.create_invoice(uuid, text, int, text) IS
$$Stores a purchase as a payment in status invoiced and returns its id.  It quotes with the same rules, validation and errors as billing.quote (raised before anything changes) and stores the whole quote as a snapshot: tariff id, code and title, months, monthly and list price, the three percents, which option was applied, the promo code, total and currency.  expires_at = billing.now() + billing.invoice_lifetime.

In one statement it creates the customer on the user's first purchase (a race of two first purchases still makes one customer, and only the one that created it queues fetch_email), the payment and its creation event (source api).  A promo code that won the quote is reserved with a guarded increment, so max_redemptions holds under concurrency; a code that lost to the discounts is neither stored nor spent.  A total of 0 is paid at once through the settle path (source system): the subscription starts, no provider is involved.

Errors: as billing.quote; a concurrent purchase took the code's last redemption, or a concurrent invoice of the same user holds the same code 55000.  End users call api.create_invoice.$$;

CREATE FUNCTION billing.settle_payment(payment_id uuid, outcome text,
                                       provider_ref text DEFAULT NULL,
                                       at timestamptz DEFAULT NULL,
                                       source text DEFAULT 'admin')
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_settle_payment';
COMMENT ON FUNCTION billing.settle_payment(uuid, text, text, timestamptz, text) IS
$$The one entry point for what happened at the provider; returns the status afterwards.  `outcome`: paid, canceled, expired, failed or refunded; `provider_ref`: the provider's reference, kept in the event's detail and in provider_payment_intent (paid) or provider_refund_id (refunded) when still empty; `at`: the provider's time of the event (default billing.now(); the detail also records recorded_at when they differ; nothing is paid in the future: an `at` later than billing.now(), a provider's clock ahead of ours or a time typed by hand, is taken as billing.now() and kept in the detail as reported_at); `source`: api, webhook, poll, admin or system.

It locks the payment, and a transition is one guarded UPDATE plus exactly one billing.payment_events row.  paid (from invoiced or pending): paid_at = at, the subscription starts or is extended (outbox grant_role and the "subscribed" notification), the promo code stays spent.  canceled, expired, failed (from invoiced or pending): closed_at = at, the promo reservation is released.  refunded (from paid or refund_pending): the payment's months are taken off its subscription (access ends at once if no paid time is left; "refunded" notification), promo released.

Idempotent: the same outcome again changes nothing and returns the status; so does a late paid for a payment already refund_pending or refunded, and any of canceled, expired or failed for a payment already closed unpaid.

Errors: any other transition (paid after expired, canceled after paid, refunded before paid) 55000 "payment cannot go from X to Y", nothing changed; no such payment P0002; an unknown outcome or source, an infinite at 22023; NULL payment_id, outcome or source 22004.  The system's entry point (the provider code, pg_cron); admins use the audited billing.admin_settle_payment.$$;

CREATE FUNCTION billing.cancel_payment(user_id uuid, payment_id uuid)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_cancel_payment';
COMMENT ON FUNCTION billing.cancel_payment(uuid, uuid) IS
$$The buyer cancels a payment; returns the status.  An invoiced or pending payment becomes canceled (its checkout is closed at the provider first; a YooKassa confirmation that cannot be cancelled is watched, and money that arrives anyway is refunded; the promo code is released).  A paid payment within billing.refund_window of paid_at (the provider's time of success; the window's last instant is still inside) is refunded: refund_pending while the provider refunds (a refund is created there; refunded at once when the provider says succeeded), or refunded at once when it never went to a provider (a zero total, a payment an admin settled by hand; event detail {"refund": "without_provider"}).  Source api.

Errors: no such payment, or someone else's P0002 "payment not found" (ids do not leak); outside the refund window, already refund_pending, refunded, canceled, expired or failed 55000; a checkout the provider completed before it could be closed 55000 (cancel again for a refund); provider failures as for billing.checkout, with the payment unchanged.  End users call api.cancel_payment, admins billing.admin_cancel_payment.$$;

CREATE FUNCTION billing.expire_invoices()
    RETURNS int
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_expire_invoices';
COMMENT ON FUNCTION billing.expire_invoices() IS
$$Expires unpaid invoices whose expires_at has passed, oldest first, at most billing.invoice_expiry_batch per call (source system; promo reservations released), and returns how many.  It reads only the payments_open index and skips rows a concurrent settle holds (taken next run).  A pending payment with an open checkout at its provider is left to the poller (billing.poll_payments), which knows whether it was paid at the last second.  pg_cron job billing-expire-invoices, schedule billing.invoice_expiry_schedule.$$;

REVOKE ALL ON FUNCTION billing.create_invoice(uuid, text, int, text),
                       billing.settle_payment(uuid, text, text, timestamptz, text),
                       billing.cancel_payment(uuid, uuid),
                       billing.expire_invoices() FROM PUBLIC;
-- Users reach create_invoice and cancel_payment through the api schema, which
-- supplies their own user id.  Admins settle and cancel through the audited
-- billing.admin_settle_payment and billing.admin_cancel_payment (75_admin.sql).
GRANT EXECUTE ON FUNCTION billing.create_invoice(uuid, text, int, text),
                          billing.expire_invoices() TO billing_admin;

---------------------------------------------------------------------------
-- The event history is append-only: nobody but the table's owner (the
-- extension owner, e.g. for retention) may update or delete a row.
---------------------------------------------------------------------------

CREATE FUNCTION billing.payment_events_append_only() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_user <> (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = TG_RELID) THEN
        RAISE EXCEPTION 'billing.payment_events is append-only'
            USING ERRCODE = '42501',
                  DETAIL = format('%s by %s refused.', TG_OP, current_user);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
REVOKE ALL ON FUNCTION billing.payment_events_append_only() FROM PUBLIC;

CREATE TRIGGER payment_events_append_only
    BEFORE UPDATE OR DELETE ON billing.payment_events
    FOR EACH ROW EXECUTE FUNCTION billing.payment_events_append_only();
CREATE TRIGGER payment_events_no_truncate
    BEFORE TRUNCATE ON billing.payment_events
    FOR EACH STATEMENT EXECUTE FUNCTION billing.payment_events_append_only();

GRANT SELECT ON billing.payment_events TO billing_admin;

---------------------------------------------------------------------------
-- What the admins see.
---------------------------------------------------------------------------

CREATE VIEW billing.admin_payments AS
SELECT p.id,
       p.user_id,
       c.email,
       p.tariff_id,
       p.tariff_code,
       p.tariff_title,
       p.months,
       p.currency,
       p.monthly_price,
       p.list_price,
       p.personal_percent,
       p.months_percent,
       p.promo_percent,
       p.promo_code,
       p.applied,
       p.list_price - p.total AS discount,
       p.total,
       p.status,
       p.created_at,
       p.updated_at,
       p.expires_at,
       p.paid_at,
       p.closed_at,
       p.subscription_id,
       p.provider_session_id,
       p.provider_payment_intent,
       p.provider_refund_id,
       p.renewal_of IS NOT NULL AS automatic,
       p.renewal_of,
       p.renewal_attempt,
       p.card_brand,
       p.card_last4
FROM billing.payments p
JOIN billing.customers c ON c.user_id = p.user_id;
COMMENT ON VIEW billing.admin_payments IS
    'Every payment with its buyer (user id, e-mail when known), tariff, months, amounts, discounts, status, times and the provider''s references.  Readable by billing_admin.  Columns as in billing.payments.';
COMMENT ON COLUMN billing.admin_payments.email IS 'The buyer''s e-mail from the auth service; null until fetched.';
COMMENT ON COLUMN billing.admin_payments.discount IS 'list_price minus total: what the discounts or the promo code took off.';
COMMENT ON COLUMN billing.admin_payments.automatic IS 'An automatic charge of auto-renewal (billing.run_renewals; renewal_of is set): filter with automatic=eq.true.';
REVOKE ALL ON billing.admin_payments FROM PUBLIC;
GRANT SELECT ON billing.admin_payments TO billing_admin;

---------------------------------------------------------------------------
-- pg_cron jobs.  Each capability registers its job here; schedule_jobs()
-- (re)installs all of them from their schedule settings.  A part that adds a
-- job inserts its row and calls billing.schedule_jobs() again.
---------------------------------------------------------------------------

CREATE TABLE billing.cron_jobs (
    name                text PRIMARY KEY,           -- the pg_cron job name
    schedule_setting    text NOT NULL,              -- GUC holding the cron schedule ('' = off)
    command             text NOT NULL
);
COMMENT ON TABLE billing.cron_jobs IS 'The pg_cron jobs of the extension, one row per job; billing.schedule_jobs() installs them from their schedule settings.  Readable by billing_admin.';
COMMENT ON COLUMN billing.cron_jobs.name IS 'The pg_cron job name (billing-expire-invoices, billing-run-expiry, billing-poll-payments, billing-outbox-purge).';
COMMENT ON COLUMN billing.cron_jobs.schedule_setting IS 'The setting that holds its cron schedule (empty: not scheduled).';
COMMENT ON COLUMN billing.cron_jobs.command IS 'The SQL the job runs.';
REVOKE ALL ON billing.cron_jobs FROM PUBLIC;
GRANT SELECT ON billing.cron_jobs TO billing_admin;

CREATE FUNCTION billing.schedule_jobs()
    RETURNS TABLE (job text, schedule text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j record;
BEGIN
    PERFORM billing.require_primary('billing.schedule_jobs');
    FOR j IN SELECT * FROM billing.cron_jobs ORDER BY name LOOP
        job := j.name;
        schedule := coalesce(current_setting(j.schedule_setting, true), '');
        IF schedule = '' THEN
            PERFORM cron.unschedule(c.jobid) FROM cron.job c
             WHERE c.jobname = j.name AND c.username = current_user;
        ELSE
            -- cron.schedule(name, …) replaces a job of the same name and owner
            PERFORM cron.schedule(j.name, schedule, j.command);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION billing.schedule_jobs() IS
$$Installs, replaces or removes every pg_cron job listed in billing.cron_jobs from the current value of its schedule setting (an empty setting removes the job); returns each job and its schedule.  CREATE EXTENSION runs it; after changing a schedule setting, reload the configuration and run it again.  Superuser (the extension owner) only.$$;
REVOKE ALL ON FUNCTION billing.schedule_jobs() FROM PUBLIC;

CREATE FUNCTION billing.unschedule_jobs() RETURNS int
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT billing.require_primary('billing.unschedule_jobs');
    SELECT count(cron.unschedule(c.jobid))::int
    FROM cron.job c JOIN billing.cron_jobs j ON j.name = c.jobname
    WHERE c.username = current_user;
$$;
COMMENT ON FUNCTION billing.unschedule_jobs() IS
$$Removes the extension's pg_cron jobs and returns how many.  Run it before DROP EXTENSION billing: pg_cron's jobs are not members of the extension and would go on calling functions that no longer exist.  Superuser (the extension owner) only.$$;
REVOKE ALL ON FUNCTION billing.unschedule_jobs() FROM PUBLIC;

INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-expire-invoices', 'billing.invoice_expiry_schedule',
        'SELECT billing.expire_invoices()');
SELECT billing.schedule_jobs();
