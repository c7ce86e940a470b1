
---------------------------------------------------------------------------
-- Pricing (pricing.c).  quote() reads the user's personal discount and
-- promo-code uses, which no caller may read directly, hence SECURITY DEFINER.
-- Not granted to PUBLIC: a quote for any user id would reveal that user's
-- personal discount.  End users reach it through api.* (user id from the
-- JWT); an application role gets EXECUTE explicitly.
---------------------------------------------------------------------------

CREATE FUNCTION billing.quote(user_id uuid, tariff text, months int, promo_code text DEFAULT NULL)
    RETURNS jsonb STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_quote';
COMMENT ON FUNCTION billing.quote(uuid, text, int, text) IS
    'Price of `months` months of a tariff for a user: personal × months-tier discounts, or a promo code when strictly cheaper; rounded half-up once.';

REVOKE ALL ON FUNCTION billing.quote(uuid, text, int, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.quote(uuid, text, int, text) TO billing_admin;
