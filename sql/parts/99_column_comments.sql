---------------------------------------------------------------------------
-- Column contracts of the views, written once.  A view column that shows a
-- table's column unchanged gets that column's COMMENT here, at install time,
-- so the text lives in one place (on the table) and still reaches psql's \d+,
-- the OpenAPI document of the api views and docs/ (scripts/docs).  Columns a
-- view computes or renames carry their own COMMENT next to the view.  Pairs
-- are handled in order: a view may take its texts from a view filled earlier.
---------------------------------------------------------------------------

DO $$
DECLARE
    pair record;
    col record;
BEGIN
    FOR pair IN
        SELECT m.target, m.source
        FROM (VALUES (1, 'billing.admin_payments'::regclass, 'billing.payments'::regclass),
                     (2, 'billing.outbox_dead', 'billing.outbox'),
                     (3, 'api.admin_payments', 'billing.admin_payments'),
                     (4, 'api.admin_tariffs', 'marketing.tariffs'),
                     (5, 'api.admin_promo_codes', 'marketing.promo_codes'),
                     (6, 'api.admin_personal_discounts', 'marketing.personal_discounts'),
                     (7, 'api.admin_audit', 'billing.admin_audit'),
                     (8, 'api.outbox_status', 'billing.outbox_status'),
                     (9, 'api.outbox_dead', 'billing.outbox_dead'),
                     (10, 'billing.admin_renewal_charges', 'billing.payments'),
                     (11, 'api.admin_renewal_charges', 'billing.admin_renewal_charges')) AS m(ord, target, source)
        ORDER BY m.ord
    LOOP
        FOR col IN
            SELECT v.attname, pg_catalog.col_description(s.attrelid, s.attnum) AS text
            FROM pg_catalog.pg_attribute v
            JOIN pg_catalog.pg_attribute s ON s.attrelid = pair.source AND s.attname = v.attname
                                          AND s.attnum > 0 AND NOT s.attisdropped
            WHERE v.attrelid = pair.target AND v.attnum > 0 AND NOT v.attisdropped
              AND pg_catalog.col_description(v.attrelid, v.attnum) IS NULL
              AND pg_catalog.col_description(s.attrelid, s.attnum) IS NOT NULL
        LOOP
            EXECUTE pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', pair.target, col.attname, col.text);
        END LOOP;
    END LOOP;
END
$$;
