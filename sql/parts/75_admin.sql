---------------------------------------------------------------------------
-- Admin actions on money and access (admin.c): the audited, attributable
-- versions of settle_payment, cancel_payment and run_expiry.  billing_admin
-- is granted these and not the system's own, so no admin moves money
-- without a billing.admin_audit row and a payment event of source "admin".
---------------------------------------------------------------------------

CREATE FUNCTION billing.admin_settle_payment(payment_id uuid, outcome text,
                                             provider_ref text DEFAULT NULL,
                                             at timestamptz DEFAULT NULL)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_admin_settle_payment';
COMMENT ON FUNCTION billing.admin_settle_payment(uuid, text, text, timestamptz) IS
$$An admin records what happened to a payment at the provider: billing.settle_payment with source admin (same outcomes, rules and errors), plus a billing.admin_audit row (action settle_payment, target payment:<id>, the payment and its subscription before and after) when it changed something.  Returns the status.$$;

CREATE FUNCTION billing.admin_cancel_payment(user_id uuid, payment_id uuid)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_admin_cancel_payment';
COMMENT ON FUNCTION billing.admin_cancel_payment(uuid, uuid) IS
$$An admin cancels or refunds a payment on its buyer's behalf: billing.cancel_payment with source admin (same rules, refund window and errors), plus a billing.admin_audit row (action cancel_payment_for, target payment:<id>, before and after).  Returns the status.$$;

CREATE FUNCTION billing.admin_run_expiry()
    RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_admin_run_expiry';
COMMENT ON FUNCTION billing.admin_run_expiry() IS
$$An admin runs the expiry sweep now: billing.run_expiry, plus a billing.admin_audit row (action run_expiry, the counts as after), written even when nothing was due.  Returns the counts.$$;

CREATE FUNCTION billing.admin_set_auto_renew(user_id uuid, tariff text, enabled boolean)
    RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_admin_set_auto_renew';
COMMENT ON FUNCTION billing.admin_set_auto_renew(uuid, text, boolean) IS
$$An admin switches a subscription's auto-renewal on or off for its buyer: billing.set_auto_renew with source admin (kept as auto_renew_reason; same rules, waits and errors), plus a billing.admin_audit row (action set_auto_renew, target subscription:<id>, auto_renew, auto_renew_reason, renew_at and renew_failures before and after) when it changed something.  Returns the renewal state as set_auto_renew does.$$;

REVOKE ALL ON FUNCTION billing.admin_settle_payment(uuid, text, text, timestamptz),
                       billing.admin_cancel_payment(uuid, uuid),
                       billing.admin_run_expiry(),
                       billing.admin_set_auto_renew(uuid, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.admin_settle_payment(uuid, text, text, timestamptz),
                          billing.admin_cancel_payment(uuid, uuid),
                          billing.admin_run_expiry(),
                          billing.admin_set_auto_renew(uuid, text, boolean) TO billing_admin;
