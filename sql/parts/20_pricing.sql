
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
$$What `months` months of `tariff` cost this user now (billing.now()), as jsonb; reads only, and billing.create_invoice stores exactly this quote.

Keys: `tariff`, `tariff_id`, `tariff_title`, `currency`; `months`, `monthly_price`, `list_price` (monthly price x months, minor units); `personal_percent` (the user's personal discount valid now, 0 if none); `months_percent` (the tier with the largest months <= months, 0 if none); `promo_code`, `promo_percent` (null / 0 without a code); `discounts_total` = round(list x (1 - personal) x (1 - months)); `promo_total` = round(list x (1 - promo)), null without a code; `applied` — promo when promo_total < discounts_total, else discounts when a personal or months discount exists, else none; `total` — what the user pays.

Rules: personal and months discounts multiply; a promo code never stacks with them, and on a tie the discounts are kept and the code is not used (not spent for nothing).  Exact arithmetic over basis points, rounded half-up to the minor unit once at the end; the total is never negative and never above the list price.  A NULL promo_code means no code; a code that is given must be usable even if it would lose.

Errors: unknown tariff or promo code P0002; inactive tariff, or a code withdrawn, not yet valid, expired, out of redemptions (open invoices hold theirs), for another tariff or already used by this user (an open or paid invoice holds it) 55000; months outside 1..billing.max_months 22023; NULL user_id, tariff or months 22004; a list price beyond bigint 22003.

Not granted to PUBLIC: a quote for any user id would reveal that user's personal discount.  End users reach it through api.quote with their own id.$$;

REVOKE ALL ON FUNCTION billing.quote(uuid, text, int, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.quote(uuid, text, int, text) TO billing_admin;
