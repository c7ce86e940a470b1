---------------------------------------------------------------------------
-- Expiry and grace (expiry.c): the sweep pg_cron runs.
---------------------------------------------------------------------------

CREATE FUNCTION billing.run_expiry() RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_run_expiry';
COMMENT ON FUNCTION billing.run_expiry() IS
$$The expiry sweep pg_cron runs (job billing-run-expiry, schedule billing.expiry_schedule); returns {"reminders", "grace", "blocked", "batches"}.  It reads only due rows (next_check_at, through the subscriptions_due index), in batches of billing.expiry_batch_size locked FOR UPDATE SKIP LOCKED until a batch comes back short, and takes each row to the state billing.now() calls for:
- active, reminder time reached (ends_at - billing.reminder_before): notify template 5 "reminder";
- active past ends_at: grace, notify template 3 "ended";
- grace (or active, for a late sweep) past grace_ends_at: blocked, revoke_role then notify template 2 "blocked".

Each message is written once per term (its idempotency key carries the term's end), so neither a later nor a concurrent sweep repeats it, even after delivered outbox rows are purged; a late sweep sends nothing for phases already over.  One call is one transaction.  pg_cron runs it as the extension owner; admins run the audited billing.admin_run_expiry.$$;

-- Admins run it through the audited billing.admin_run_expiry() (75_admin.sql).
REVOKE ALL ON FUNCTION billing.run_expiry() FROM PUBLIC;

-- Hourly by default (billing.expiry_schedule); billing.schedule_jobs()
-- re-installs it after the setting changes.
INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-run-expiry', 'billing.expiry_schedule', 'SELECT billing.run_expiry()');
SELECT billing.schedule_jobs();
