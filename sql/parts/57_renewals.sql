---------------------------------------------------------------------------
-- Auto-renewal (autorenew.c, renewal_job.c): the buyer's switch and the
-- pg_cron job that charges saved payment methods.
---------------------------------------------------------------------------

CREATE FUNCTION billing.set_auto_renew(user_id uuid, tariff text, enabled boolean,
                                       source text DEFAULT 'buyer')
    RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_set_auto_renew';
COMMENT ON FUNCTION billing.set_auto_renew(uuid, text, boolean, text) IS
$$Turns the automatic renewal of the user's subscription to `tariff` on or off and returns its renewal state {subscription_id, tariff, auto_renew, reason, next_charge_at, ends_at, renew_months, card_brand, card_last4}.  `source`: buyer (default) or admin, kept as the reason.

Off keeps the paid term (access until ends_at and its grace) and stops the next charge; a charge already in flight when it is called either finishes first (the call waits for it) or is never made.  On needs a payment method saved by a paid checkout with auto_renew, a subscription that has not ended, and a tariff on sale; the next charge is due billing.renewal_lead before ends_at, or at the next run of billing.run_renewals when that time has passed (a subscription in grace is charged at once).  Idempotent: the same value again changes nothing.

Errors: no subscription to that tariff P0002; on for an ended (blocked, or past its grace) subscription, without a saved method, or for a tariff off sale 55000; an unknown source 22023; NULL 22004.  End users call api.set_auto_renew, admins the audited billing.admin_set_auto_renew.$$;

-- Not SECURITY DEFINER and no SET clause: either would make the CALL atomic
-- (PostgreSQL forbids COMMIT there), and the job commits each renewal's
-- invoice before its provider call and the charge after it.
CREATE PROCEDURE billing.run_renewals(OUT result jsonb)
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'billing_run_renewals';
COMMENT ON PROCEDURE billing.run_renewals(jsonb) IS
$$The auto-renewal job (pg_cron job billing-run-renewals, schedule billing.renewal_schedule).  It reads the subscriptions whose renew_at has come (the subscriptions_renew index, at most billing.renewal_batch, oldest first) and, for each under its row lock (SKIP LOCKED: a concurrent run takes others):

1. Checks it should still renew: auto-renewal on, not ended, the tariff on sale and its months still sold (else auto-renewal is switched off: lapsed, tariff_unavailable).  Then makes the renewal's invoice priced by today's rules (current price, personal discount, months tier; never a promo code), pending with its provider, payable until the end of the grace period, and commits it.  billing.payments allows one live or paid automatic charge per end of term, so two runs, a retry or a crash never charge a term twice.  A zero total is paid at once.
2. Charges the saved method off-session (Stripe: a PaymentIntent with customer, payment_method, off_session and confirm; YooKassa: a payment with payment_method_id and capture; either under the idempotency key billing-renew-<subscription>-<end of term>-<attempt>) holding the payment and subscription rows, and settles the outcome through the one settle path (source system): succeeded → paid (the term is extended from its current end, "subscribed" is sent); declined → failed (its event keeps the provider's failure_code: Stripe's error code, YooKassa's cancellation reason), retried after billing.renewal_retry_delays while the grace period lasts ("renewal_failed" says when), then auto-renewal is switched off (charge_failed) and the ordinary grace and block follow; a decline that retrying cannot mend (Stripe: the buyer failed the bank's authentication; YooKassa: 3d_secure_failed, or permission_revoked: the buyer withdrew the saved method) → no retry, auto-renewal is switched off (authentication_failed, method_revoked); the bank asks for the buyer (authentication_required) → no retry, the buyer is sent the provider's page that completes this payment ("renewal_action_required"); a provider that cannot be reached → the payment stays pending and the poller (billing.poll_payments) finishes it: it asks the provider whether the charge was made (after a crash) and makes it only if not and still wanted.

Returns {"due", "invoiced", "paid", "failed", "waiting", "skipped", "errors", "provider_ms" (the time spent waiting for the provider)}.  A bad row is a WARNING and the run goes on.  It commits only when CALLed as a statement of its own (CALL billing.run_renewals(NULL), as pg_cron does); inside a transaction block it does everything in the caller's transaction.  Superuser (the extension owner) only.$$;

REVOKE ALL ON FUNCTION billing.set_auto_renew(uuid, text, boolean, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE billing.run_renewals(jsonb) FROM PUBLIC;
-- Buyers reach it through api.set_auto_renew, the application through
-- billing_app (90_app.sql); admins through the audited
-- billing.admin_set_auto_renew, never unaudited.
GRANT SELECT ON billing.provider_customers TO billing_admin;

INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-run-renewals', 'billing.renewal_schedule', 'CALL billing.run_renewals(NULL)');
SELECT billing.schedule_jobs();
