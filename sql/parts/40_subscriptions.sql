---------------------------------------------------------------------------
-- Subscriptions and access (subscriptions.c).  A paid payment extends the
-- subscription from C (payments.c calls subscription_apply_payment); these
-- are the reading functions.
---------------------------------------------------------------------------

CREATE FUNCTION billing.has_access(user_id uuid, tariff text) RETURNS boolean
    STABLE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_has_access';
COMMENT ON FUNCTION billing.has_access(uuid, text) IS
    'True while the user''s subscription to the tariff is active or in grace, judged at billing.now().';

CREATE FUNCTION billing.payment_info(user_id uuid) RETURNS jsonb
    STABLE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_payment_info';
COMMENT ON FUNCTION billing.payment_info(uuid) IS
    'The user''s subscriptions (status at billing.now(), ends_at, grace_ends_at) and payments, as one jsonb document.';

REVOKE ALL ON FUNCTION billing.has_access(uuid, text), billing.payment_info(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.has_access(uuid, text), billing.payment_info(uuid) TO billing_admin;
