
---------------------------------------------------------------------------
-- Catalog admin functions (catalog.c, audit.c).  SECURITY DEFINER so that
-- billing_admin changes the catalog only through them (it has SELECT on the
-- tables, nothing more); each writes its billing.admin_audit row, with the
-- calling role as actor, in the same transaction.  Each returns the row it
-- created, changed or removed, as jsonb.
---------------------------------------------------------------------------

-- History is append-only, even for the owner (TRUNCATE stays possible).
CREATE FUNCTION billing.forbid_change() RETURNS trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_forbid_change';
CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE ON billing.admin_audit
    FOR EACH ROW EXECUTE FUNCTION billing.forbid_change();
CREATE TRIGGER tariff_price_history_append_only BEFORE UPDATE OR DELETE ON marketing.tariff_price_history
    FOR EACH ROW EXECUTE FUNCTION billing.forbid_change();

-- A tariff's code is permanent.
CREATE FUNCTION billing.tariff_code_immutable() RETURNS trigger
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_tariff_code_immutable';
CREATE TRIGGER tariffs_code_immutable BEFORE UPDATE OF code ON marketing.tariffs
    FOR EACH ROW EXECUTE FUNCTION billing.tariff_code_immutable();

REVOKE ALL ON FUNCTION billing.forbid_change(), billing.tariff_code_immutable() FROM PUBLIC;

CREATE FUNCTION billing.create_tariff(code text, title text, monthly_price bigint,
                                      currency text DEFAULT 'RUB', description text DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_create_tariff';
COMMENT ON FUNCTION billing.create_tariff(text, text, bigint, text, text) IS
    'Creates a tariff (price in minor units), records its first price and queues create_role for the auth service.';

CREATE FUNCTION billing.update_tariff(code text, title text DEFAULT NULL,
                                      description text DEFAULT NULL, active boolean DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_update_tariff';
COMMENT ON FUNCTION billing.update_tariff(text, text, text, boolean) IS
    'Changes title, description (empty string clears it) or the active flag; NULL keeps a field.  A new title queues update_role.';

CREATE FUNCTION billing.set_tariff_price(code text, monthly_price bigint)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_set_tariff_price';
COMMENT ON FUNCTION billing.set_tariff_price(text, bigint) IS
    'Sets the monthly price (minor units) and records the change in marketing.tariff_price_history; existing payments keep their snapshot.';

CREATE FUNCTION billing.set_personal_discount(user_id uuid, percent numeric, valid_until timestamptz DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_set_personal_discount';
COMMENT ON FUNCTION billing.set_personal_discount(uuid, numeric, timestamptz) IS
    'Sets (or replaces) the user''s personal discount, percent in (0, 100] with two decimals, valid before valid_until (NULL: no end).';

CREATE FUNCTION billing.remove_personal_discount(user_id uuid)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_remove_personal_discount';
COMMENT ON FUNCTION billing.remove_personal_discount(uuid) IS
    'Removes the user''s personal discount; returns the removed row.';

CREATE FUNCTION billing.set_months_discount(months int, percent numeric)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_set_months_discount';
COMMENT ON FUNCTION billing.set_months_discount(int, numeric) IS
    'Sets the discount tier for purchases of at least `months` months (the largest tier <= months bought applies).';

CREATE FUNCTION billing.remove_months_discount(months int)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_remove_months_discount';
COMMENT ON FUNCTION billing.remove_months_discount(int) IS
    'Removes a months discount tier; returns the removed row.';

CREATE FUNCTION billing.create_promo_code(code text, percent numeric, valid_until timestamptz,
                                          max_redemptions int DEFAULT NULL, tariff text DEFAULT NULL,
                                          valid_from timestamptz DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_create_promo_code';
COMMENT ON FUNCTION billing.create_promo_code(text, numeric, timestamptz, int, text, timestamptz) IS
    'Creates a case-insensitive promo code valid in [valid_from, valid_until), optionally for one tariff and a limited number of uses.';

CREATE FUNCTION billing.delete_promo_code(code text)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_delete_promo_code';
COMMENT ON FUNCTION billing.delete_promo_code(text) IS
    'Soft-deletes a promo code: it can no longer be used, payments that used it still show it, and its name is free again.';

REVOKE ALL ON FUNCTION
    billing.create_tariff(text, text, bigint, text, text),
    billing.update_tariff(text, text, text, boolean),
    billing.set_tariff_price(text, bigint),
    billing.set_personal_discount(uuid, numeric, timestamptz),
    billing.remove_personal_discount(uuid),
    billing.set_months_discount(int, numeric),
    billing.remove_months_discount(int),
    billing.create_promo_code(text, numeric, timestamptz, int, text, timestamptz),
    billing.delete_promo_code(text)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    billing.create_tariff(text, text, bigint, text, text),
    billing.update_tariff(text, text, text, boolean),
    billing.set_tariff_price(text, bigint),
    billing.set_personal_discount(uuid, numeric, timestamptz),
    billing.remove_personal_discount(uuid),
    billing.set_months_discount(int, numeric),
    billing.remove_months_discount(int),
    billing.create_promo_code(text, numeric, timestamptz, int, text, timestamptz),
    billing.delete_promo_code(text)
TO billing_admin;
