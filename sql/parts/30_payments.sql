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
    'Quote the purchase and store it as an invoiced payment (full snapshot); reserves the promo code, creates the customer on first use. A zero total is paid at once.';

CREATE FUNCTION billing.settle_payment(payment_id uuid, outcome text,
                                       provider_ref text DEFAULT NULL,
                                       at timestamptz DEFAULT NULL,
                                       source text DEFAULT 'admin')
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_settle_payment';
COMMENT ON FUNCTION billing.settle_payment(uuid, text, text, timestamptz, text) IS
    'The one entry point for what happened at the provider (paid, canceled, expired, failed, refunded). Idempotent; an impossible transition is 55000. Returns the status.';

CREATE FUNCTION billing.cancel_payment(user_id uuid, payment_id uuid)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_cancel_payment';
COMMENT ON FUNCTION billing.cancel_payment(uuid, uuid) IS
    'The buyer cancels an unpaid payment (canceled) or asks for a refund within billing.refund_window of payment (refund_pending). Returns the status.';

CREATE FUNCTION billing.expire_invoices()
    RETURNS int
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_expire_invoices';
COMMENT ON FUNCTION billing.expire_invoices() IS
    'Expire up to billing.invoice_expiry_batch unpaid invoices past their lifetime (oldest first); returns how many. Scheduled by pg_cron.';

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
       p.provider_refund_id
FROM billing.payments p
JOIN billing.customers c ON c.user_id = p.user_id;
COMMENT ON VIEW billing.admin_payments IS
    'Every payment with its buyer (user id, e-mail when known), tariff, months, amounts, discounts, status and times.';
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
COMMENT ON TABLE billing.cron_jobs IS 'The pg_cron jobs of the extension; billing.schedule_jobs() installs them.';
REVOKE ALL ON billing.cron_jobs FROM PUBLIC;
GRANT SELECT ON billing.cron_jobs TO billing_admin;

CREATE FUNCTION billing.schedule_jobs()
    RETURNS TABLE (job text, schedule text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j record;
BEGIN
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
    'Install (or replace, or remove when the setting is empty) every pg_cron job of billing.cron_jobs from its schedule setting.';
REVOKE ALL ON FUNCTION billing.schedule_jobs() FROM PUBLIC;

CREATE FUNCTION billing.unschedule_jobs() RETURNS int
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(cron.unschedule(c.jobid))::int
    FROM cron.job c JOIN billing.cron_jobs j ON j.name = c.jobname
    WHERE c.username = current_user;
$$;
COMMENT ON FUNCTION billing.unschedule_jobs() IS
    'Remove the extension''s pg_cron jobs (run it before DROP EXTENSION billing).';
REVOKE ALL ON FUNCTION billing.unschedule_jobs() FROM PUBLIC;

INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-expire-invoices', 'billing.invoice_expiry_schedule',
        'SELECT billing.expire_invoices()');
SELECT billing.schedule_jobs();
