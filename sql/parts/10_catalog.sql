
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

-- The currencies a tariff may be priced in, with the decimals of their minor
-- units (the table is currency.c's): what a client needs to show a stored
-- amount to a person, so that no client keeps a table of its own.
CREATE FUNCTION billing.currencies(OUT code text, OUT exponent int) RETURNS SETOF record
    STABLE PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_currencies';
COMMENT ON FUNCTION billing.currencies() IS
$$Every currency a tariff may be priced in (Stripe's presentment currencies, without the three-decimal dinars), in code order, with the exponent of its minor unit: N minor units are N / 10^exponent of the currency, so 42330 RUB (exponent 2) is 423.30 roubles and 500 JPY (exponent 0) is 500 yen.  Read over HTTP as api.currencies (the admin panel formats amounts by it).$$;
REVOKE ALL ON FUNCTION billing.currencies() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.currencies() TO billing_admin;

CREATE FUNCTION billing.create_tariff(code text, title text, monthly_price bigint,
                                      currency text DEFAULT 'RUB', description text DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_create_tariff';
COMMENT ON FUNCTION billing.create_tariff(text, text, bigint, text, text) IS
$$Creates a tariff and returns its marketing.tariffs row as jsonb.  Records the first price in marketing.tariff_price_history and queues create_role for the auth service (its role id lands in auth_role_id).  Audited (billing.admin_audit, target tariff:<code>).

Arguments: `code` — 1-64 of a-z 0-9 _ - starting with a letter or digit, permanent; `title` — 1-200 characters, also the role's name; `monthly_price` — minor units of the currency (kopecks, cents; whole yen for zero-decimal currencies), at least 0; `currency` — an ISO 4217 code Stripe can charge in, case-insensitive (the three-decimal dinars are refused: Stripe needs their amounts to end in 0); `description` — optional.

Errors: NULL code, title or price 22004; a bad code, title, price or currency 22023; the code exists 23505.  A failed call changes nothing and writes no audit row.$$;

CREATE FUNCTION billing.update_tariff(code text, title text DEFAULT NULL,
                                      description text DEFAULT NULL, active boolean DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_update_tariff';
COMMENT ON FUNCTION billing.update_tariff(text, text, text, boolean) IS
$$Changes a tariff's title, description or active flag and returns the row as jsonb.  NULL keeps a field, an empty description clears it; at least one must be given.  A new title queues update_role (the auth service renames the role: nothing is orphaned).  `active => false` takes the tariff off sale: quotes and invoices refuse it, subscriptions go on.  The code never changes (a trigger refuses even a direct UPDATE, 55000).  Audited.

Errors: unknown tariff P0002; nothing to update or a bad title 22023.$$;

CREATE FUNCTION billing.set_tariff_price(code text, monthly_price bigint)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_set_tariff_price';
COMMENT ON FUNCTION billing.set_tariff_price(text, bigint) IS
$$Sets a tariff's monthly price (minor units, at least 0) and returns the row as jsonb.  A real change adds a marketing.tariff_price_history row (old price, new price, who, when); payments keep the price they were quoted.  Audited.

Errors: unknown tariff P0002; a negative price 22023; NULL 22004.$$;

CREATE FUNCTION billing.set_personal_discount(user_id uuid, percent numeric, valid_until timestamptz DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_set_personal_discount';
COMMENT ON FUNCTION billing.set_personal_discount(uuid, numeric, timestamptz) IS
$$Sets the user's personal discount, replacing any earlier one, and returns it as jsonb.  `percent` in (0, 100] with at most two decimals; the discount applies while billing.now() is before `valid_until` (NULL: no end), which must be in the future.  Audited (target user:<uuid>).

Errors: a bad percent or a past valid_until 22023; NULL user_id or percent 22004.$$;

CREATE FUNCTION billing.remove_personal_discount(user_id uuid)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_remove_personal_discount';
COMMENT ON FUNCTION billing.remove_personal_discount(uuid) IS
$$Removes the user's personal discount; returns the removed row as jsonb.  Audited.

Errors: the user has none P0002.$$;

CREATE FUNCTION billing.set_months_discount(months int, percent numeric)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_set_months_discount';
COMMENT ON FUNCTION billing.set_months_discount(int, numeric) IS
$$Sets the discount tier for purchases of at least `months` months (replacing that tier) and returns it as jsonb.  A purchase gets the tier with the largest months <= the months bought.  `percent` in (0, 100], two decimals.  Audited (target months:<n>).

Errors: months below 1 or a bad percent 22023; NULL 22004.$$;

CREATE FUNCTION billing.remove_months_discount(months int)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_remove_months_discount';
COMMENT ON FUNCTION billing.remove_months_discount(int) IS
$$Removes the tier for `months`; returns the removed row as jsonb.  Audited.

Errors: no such tier P0002.$$;

CREATE FUNCTION billing.create_promo_code(code text, percent numeric, valid_until timestamptz,
                                          max_redemptions int DEFAULT NULL, tariff text DEFAULT NULL,
                                          valid_from timestamptz DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_create_promo_code';
COMMENT ON FUNCTION billing.create_promo_code(text, numeric, timestamptz, int, text, timestamptz) IS
$$Creates a promo code and returns it as jsonb.  Usable while `valid_from` <= billing.now() < `valid_until`, only for `tariff` when given, at most `max_redemptions` times in all (NULL: no limit) and once per user.  A code never stacks with the personal and months discounts: a quote uses it only when strictly cheaper.  Audited (target promo:<code>).

Arguments: `code` — 1-64 of letters, digits, _ and -, stored as given, unique case-insensitively among live codes; `percent` — in (0, 100], two decimals; `valid_until` — in the future; `max_redemptions` — at least 1; `tariff` — a tariff's code; `valid_from` — before valid_until.

Errors: a live code of that name 23505; unknown tariff P0002; a bad code, percent, limit or window 22023; NULL code, percent or valid_until 22004.$$;

CREATE FUNCTION billing.delete_promo_code(code text)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_delete_promo_code';
COMMENT ON FUNCTION billing.delete_promo_code(text) IS
$$Soft-deletes a promo code (deleted_at set) and returns it as jsonb: it can no longer be quoted or invoiced, payments that used it still show it, and its name may be used for a new code.  Audited.

Errors: no live code of that name P0002.$$;

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
