-- Privileges: the catalog is changed only through the admin functions, and
-- only by billing_admin; nobody else reads the catalog tables, the audit or
-- another user's quote.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';

-- priv_plain may use both schemas (as an application role would), so what
-- stops it below is the privilege on each object, not the schema.
CREATE ROLE priv_plain;
GRANT USAGE ON SCHEMA billing, marketing TO priv_plain;
CREATE ROLE priv_admin IN ROLE billing_admin;

SELECT billing.create_tariff('premium', 'Priority films', 29900) IS NOT NULL;

-- Nothing of the catalog is granted to PUBLIC.
SELECT p.proname, has_function_privilege('priv_plain', p.oid, 'EXECUTE') AS plain,
       has_function_privilege('priv_admin', p.oid, 'EXECUTE') AS admin,
       p.prosecdef AS security_definer, p.proconfig
FROM pg_proc p
WHERE p.pronamespace = 'billing'::regnamespace
  AND p.proname IN ('create_tariff', 'update_tariff', 'set_tariff_price',
                    'set_personal_discount', 'remove_personal_discount',
                    'set_months_discount', 'remove_months_discount',
                    'create_promo_code', 'delete_promo_code', 'quote',
                    'forbid_change', 'tariff_code_immutable')
ORDER BY p.proname;

-- A plain role: no admin function, no quote, no table.
SET ROLE priv_plain;
SELECT err($$SELECT billing.create_tariff('gold', 'Gold', 100)$$);
SELECT err($$SELECT billing.update_tariff('premium', 'Mine')$$);
SELECT err($$SELECT billing.set_tariff_price('premium', 1)$$);
SELECT err($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 100)$$);
SELECT err($$SELECT billing.remove_personal_discount('a0000000-0000-0000-0000-000000000001')$$);
SELECT err($$SELECT billing.set_months_discount(1, 100)$$);
SELECT err($$SELECT billing.remove_months_discount(1)$$);
SELECT err($$SELECT billing.create_promo_code('FREE', 100, '2030-01-01')$$);
SELECT err($$SELECT billing.delete_promo_code('FREE')$$);
SELECT err($$SELECT billing.quote('a0000000-0000-0000-0000-000000000001', 'premium', 1)$$);
SELECT err($$SELECT * FROM marketing.tariffs$$);
SELECT err($$SELECT * FROM marketing.personal_discounts$$);
SELECT err($$SELECT * FROM marketing.promo_codes$$);
SELECT err($$SELECT * FROM billing.admin_audit$$);
SELECT err($$UPDATE marketing.tariffs SET monthly_price = 1$$);
RESET ROLE;

-- billing_admin: every admin function and quote; reads the catalog and the
-- audit; writes tables only through the functions.
SET ROLE priv_admin;
SELECT err($$SELECT billing.create_tariff('gold', 'Gold', 100)$$);
SELECT err($$SELECT billing.update_tariff('gold', 'Gold HD')$$);
SELECT err($$SELECT billing.set_tariff_price('gold', 200)$$);
SELECT err($$SELECT billing.set_personal_discount('a0000000-0000-0000-0000-000000000001', 10)$$);
SELECT err($$SELECT billing.set_months_discount(3, 5)$$);
SELECT err($$SELECT billing.create_promo_code('SPRING', 20, '2026-06-01')$$);
SELECT billing.quote('a0000000-0000-0000-0000-000000000001', 'gold', 3, 'spring')->>'total' AS total;
SELECT err($$SELECT billing.delete_promo_code('SPRING')$$);
SELECT err($$SELECT billing.remove_months_discount(3)$$);
SELECT err($$SELECT billing.remove_personal_discount('a0000000-0000-0000-0000-000000000001')$$);
SELECT code, title, monthly_price FROM marketing.tariffs ORDER BY id;
SELECT count(*) AS audit_rows FROM billing.admin_audit;
SELECT err($$UPDATE marketing.tariffs SET monthly_price = 1$$);
SELECT err($$INSERT INTO marketing.personal_discounts (user_id, percent) VALUES ('a0000000-0000-0000-0000-000000000001', 99)$$);
SELECT err($$DELETE FROM marketing.promo_codes$$);
-- Only a superuser moves the billing clock.
SELECT err($$SET billing.test_clock = '2030-01-01'$$);
RESET ROLE;

REVOKE USAGE ON SCHEMA billing, marketing FROM priv_plain;
DROP OWNED BY priv_plain, priv_admin;
DROP ROLE priv_plain, priv_admin;
