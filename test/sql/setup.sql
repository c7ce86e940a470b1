-- The first test: the helpers every other test uses (replaced when the
-- suite runs again against the same server: make installcheck).
-- test_reset() empties the ledger and the catalog, and puts every billing
-- setting a session may change back to its default, so that each test file
-- starts from nothing and from the same rules, whatever ran before it and
-- whatever postgresql.conf says.
CREATE OR REPLACE FUNCTION public.test_reset() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE billing.stripe_events, billing.payment_events, billing.payments, billing.subscriptions,
             billing.provider_customers,
             billing.customers, billing.outbox, billing.admin_audit,
             marketing.promo_codes, marketing.months_discounts,
             marketing.personal_discounts, marketing.tariff_price_history,
             marketing.tariffs RESTART IDENTITY CASCADE;
    -- The scheduled jobs run on the real clock while a test moves the billing
    -- clock; they would change rows under the test.  Tests call the job
    -- functions themselves.
    UPDATE cron.job SET active = false WHERE active;
    RESET billing.test_clock;
    -- The rules the expected outputs were written for: each setting's
    -- built-in default (refund window, grace, reminder, lifetimes, batches).
    -- Secrets and URLs are left alone: tests that need them set them.
    PERFORM set_config(name, boot_val, false)
    FROM pg_catalog.pg_settings
    WHERE name LIKE 'billing.%' AND context IN ('superuser', 'user')
      AND name NOT IN ('billing.test_clock', 'billing.stripe_secret_key',
                       'billing.stripe_webhook_secrets', 'billing.stripe_api_base')
      AND setting IS DISTINCT FROM boot_val;
    -- Server-wide ones cannot be set here: say so instead of failing oddly.
    IF current_setting('billing.time_zone') <> 'UTC' THEN
        RAISE EXCEPTION 'the tests expect billing.time_zone = UTC, not %',
            current_setting('billing.time_zone');
    END IF;
    -- Readable, machine-independent output.
    PERFORM set_config('TimeZone', 'UTC', false);
    PERFORM set_config('DateStyle', 'ISO, YMD', false);
END
$$;

-- err(sql): runs sql and shows its SQLSTATE and message instead of failing,
-- so a test can list many bad calls and their errors in one result.
CREATE OR REPLACE FUNCTION public.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- test_pay(label, who, tariff, months): user md5(who) buys `months` of
-- `tariff` through the real path (invoice, then the provider says paid, with
-- provider ref 'pi_' || label); the payment is remembered as `label` in the
-- calling test's temp table labels (label, id).  Returns its subscription id.
CREATE OR REPLACE FUNCTION public.test_pay(label text, who text, tariff text, months int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    pid uuid := billing.create_invoice(md5(who)::uuid, tariff, months);
BEGIN
    INSERT INTO labels VALUES (label, pid);
    PERFORM billing.settle_payment(pid, 'paid', 'pi_' || label);
    RETURN (SELECT subscription_id FROM billing.payments WHERE id = pid);
END
$$;
