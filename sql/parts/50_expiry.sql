---------------------------------------------------------------------------
-- Expiry and grace (expiry.c): the sweep pg_cron runs.
---------------------------------------------------------------------------

CREATE FUNCTION billing.run_expiry() RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_run_expiry';
COMMENT ON FUNCTION billing.run_expiry() IS
    'Reminders before the end, active → grace at the end, grace → blocked after it; returns the counts.';

-- Admins run it through the audited billing.admin_run_expiry() (75_admin.sql).
REVOKE ALL ON FUNCTION billing.run_expiry() FROM PUBLIC;

-- Hourly by default (billing.expiry_schedule); billing.schedule_jobs()
-- re-installs it after the setting changes.
INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-run-expiry', 'billing.expiry_schedule', 'SELECT billing.run_expiry()');
SELECT billing.schedule_jobs();
