-- The payments benchmarks' data (psql -v users=N): one tariff with a
-- 3-month tier, N returning customers, a ledger with history, the bare
-- INSERT's table and the settle queue.  Shared by core_payments.sh (tps)
-- and instructions.sh (callgrind).
UPDATE cron.job SET active = false;
CREATE SCHEMA bench;
INSERT INTO marketing.tariffs (code, title, monthly_price) VALUES ('films', 'Priority films', 29900);
INSERT INTO marketing.months_discounts (months, percent) VALUES (3, 10);
-- User n is 00000000-0000-4000-8000-<n, 12 digits>.
CREATE FUNCTION bench.user_id(n int) RETURNS uuid IMMUTABLE LANGUAGE sql
    AS $$ SELECT ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;
INSERT INTO billing.customers (user_id) SELECT bench.user_id(n) FROM generate_series(1, :users) n;
-- The bare INSERT's table: the same columns (names, types, NOT NULL,
-- defaults) and primary key as billing.payments; its other indexes and
-- constraints are part of the cost being measured, so they are left out
-- here.  A column whose type is a domain (billing.amount, ...) gets the
-- domain's base type: a domain is a constraint too.
CREATE TABLE bench.wide (LIKE billing.payments INCLUDING DEFAULTS);
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT a.attname, format_type(t.typbasetype, t.typtypmod) AS base
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = 'bench.wide'::regclass AND a.attnum > 0 AND t.typtype = 'd'
    LOOP
        EXECUTE format('ALTER TABLE bench.wide ALTER COLUMN %I TYPE %s', c.attname, c.base);
    END LOOP;
END
$$;
ALTER TABLE bench.wide ADD PRIMARY KEY (id);
-- A ledger with history, as in production (plans made against empty tables
-- would be seq scans): half the users have paid once, a quarter have an open
-- invoice, all through the functions under test.
SELECT count(billing.settle_payment(billing.create_invoice(bench.user_id(n), 'films', 1), 'paid'))
FROM generate_series(1, :users / 2) n;
SELECT count(billing.create_invoice(bench.user_id(n), 'films', 1))
FROM generate_series(:users / 2 + 1, :users * 3 / 4) n;
INSERT INTO bench.wide SELECT * FROM billing.payments;
-- The settle queue: open invoices, numbered (bench.enqueue() appends the
-- new ones); each settle takes the next number, so each is paid once.
CREATE TABLE bench.queue (n bigint PRIMARY KEY, id uuid NOT NULL UNIQUE);
CREATE SEQUENCE bench.next;
CREATE PROCEDURE bench.enqueue() LANGUAGE sql AS $$
    INSERT INTO bench.queue
    SELECT (SELECT coalesce(max(n), 0) FROM bench.queue) + row_number() OVER (ORDER BY p.id), p.id
    FROM billing.payments p
    WHERE p.status = 'invoiced' AND NOT EXISTS (SELECT FROM bench.queue q WHERE q.id = p.id);
$$;
CALL bench.enqueue();
VACUUM ANALYZE;
