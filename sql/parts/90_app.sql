---------------------------------------------------------------------------
-- billing_app: application code that calls SQL directly on behalf of the
-- users it has signed in (the cinema's backend, a worker).  It may do what a
-- buyer does — for any user id it passes — and nothing of the catalog, the
-- provider's outcomes or the ledger's tables.  Grant it to the login role
-- the application connects as: GRANT billing_app TO cinema_backend;
---------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_app') THEN
        CREATE ROLE billing_app NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE billing_app IS 'Application code calling the buyer''s SQL functions on behalf of its signed-in users.';

GRANT USAGE ON SCHEMA billing TO billing_app;
GRANT EXECUTE ON FUNCTION
    billing.quote(uuid, text, int, text),
    billing.create_invoice(uuid, text, int, text),
    billing.checkout(uuid, uuid, text, text, text, boolean),
    billing.set_auto_renew(uuid, text, boolean, text),
    billing.confirm_payment(uuid, uuid),
    billing.cancel_payment(uuid, uuid),
    billing.has_access(uuid, text),
    billing.payment_info(uuid),
    billing.stripe_webhook(json, text),
    billing.currencies()
TO billing_app;
