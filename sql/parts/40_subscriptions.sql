---------------------------------------------------------------------------
-- Subscriptions and access (subscriptions.c).  A paid payment extends the
-- subscription from C (payments.c calls subscription_apply_payment); these
-- are the reading functions.
---------------------------------------------------------------------------

CREATE FUNCTION billing.has_access(user_id uuid, tariff text) RETURNS boolean
    STABLE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_has_access';
COMMENT ON FUNCTION billing.has_access(uuid, text) IS
$$True while the user's subscription to the tariff is active or in grace, judged at billing.now() from the stored times (not blocked and billing.now() < grace_ends_at), so it is right before the expiry sweep runs.  False for a user without a subscription.

Errors: unknown tariff code P0002; NULL 22004.  End users call api.has_access.$$;

CREATE FUNCTION billing.payment_info(user_id uuid) RETURNS jsonb
    STABLE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_payment_info';
COMMENT ON FUNCTION billing.payment_info(uuid) IS
$$Everything about one user in one jsonb document: {"user_id", "at": billing.now(), "subscriptions": [...], "payments": [...]}.  Each subscription, ordered by tariff code: subscription_id, tariff, tariff_title, status (active, grace or blocked as of at, whether or not the sweep has run), has_access, term_started_at, months, ends_at, grace_ends_at, auto_renew, auto_renew_reason, renew_months, next_charge_at (when the next automatic charge is made; null while one is in flight or auto-renewal is off), next_charge_total and currency (priced by today's rules, as the charge will be), card_brand and card_last4 (when the provider reported them).  Each payment, newest first: payment_id, tariff, tariff_title, months, list_price, applied, promo_code, total, currency, status, created_at, paid_at, closed_at, subscription_id, renewal (an automatic charge), renewal_attempt, action_url (an automatic charge waiting for the buyer's authentication: the page that completes it).  A user without any: empty arrays.

Errors: NULL 22004.  End users call api.payment_info.$$;

REVOKE ALL ON FUNCTION billing.has_access(uuid, text), billing.payment_info(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.has_access(uuid, text), billing.payment_info(uuid) TO billing_admin;
