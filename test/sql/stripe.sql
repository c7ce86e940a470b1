-- Stripe without Stripe: the settings and their secrecy, the webhook's
-- signature check and once-per-event store, and what checkout, confirm,
-- cancel and the poller do when Stripe cannot be reached.  The conversation
-- with a Stripe server is test/e2e/test_stripe.py.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- A Stripe-Signature header for body at Unix time t with secret.
CREATE FUNCTION pg_temp.sig(body text, t bigint, secret text) RETURNS text LANGUAGE sql AS $$
    SELECT 't=' || t || ',v1=' || encode(hmac(t || '.' || body, secret, 'sha256'), 'hex')
$$;

---------------------------------------------------------------------------
-- Settings: validated, and the secrets are for superusers only.
---------------------------------------------------------------------------
SELECT err($$SET billing.stripe_api_base = 'ftp://api.stripe.com'$$);
SELECT err($$SET billing.stripe_secret_key = 'sk_test_x
Injected: header'$$);
SELECT err($$SET billing.stripe_webhook_secrets = 'whsec_a; whsec_b'$$);
SELECT err($$SET billing.stripe_webhook_secrets = 'whsec_a, whsec_b'$$);
SELECT err($$SET billing.stripe_success_url = 'https://cinema.example/ok page'$$);
SET billing.stripe_secret_key = 'sk_test_regress_secret';
SET billing.stripe_webhook_secrets = 'whsec_old, whsec_regress';
SELECT name FROM pg_settings WHERE name LIKE 'billing.stripe%' ORDER BY name;
CREATE ROLE stripe_reader;
SET ROLE stripe_reader;
SELECT err($$SELECT current_setting('billing.stripe_secret_key')$$);
SELECT err($$SELECT current_setting('billing.stripe_webhook_secrets')$$);
SELECT count(*) AS visible_secrets FROM pg_settings
WHERE name IN ('billing.stripe_secret_key', 'billing.stripe_webhook_secrets');
SELECT err($$SET billing.stripe_api_base = 'https://attacker.example'$$);
-- Nor can anyone but the owner call the functions.
SELECT err($$SELECT billing.stripe_webhook('{}', 't=1,v1=00')$$);
SELECT err($$CALL billing.stripe_poll(NULL)$$);
RESET ROLE;
DROP ROLE stripe_reader;

---------------------------------------------------------------------------
-- Webhook signatures (t = 1772366400 is the test clock).
---------------------------------------------------------------------------
CREATE TEMP TABLE ev (name text PRIMARY KEY, body text);
INSERT INTO ev VALUES
  ('ping', '{"id": "evt_ping_1", "object": "event", "type": "customer.created", "created": 1772366400, "data": {"object": {"id": "cus_1", "object": "customer"}}}'),
  ('spaced', E'{\n  "id": "evt_spaced_1",\n  "object": "event",\n  "type": "charge.succeeded",\n  "created": 1772366400,\n  "data": {\n    "object": {\n      "id": "ch_1"\n    }\n  }\n}');

-- Valid: acknowledged, stored once; the raw bytes (whitespace included) are what is signed.
SELECT billing.stripe_webhook(body::json, pg_temp.sig(body, 1772366400, 'whsec_regress')) FROM ev WHERE name = 'ping';
SELECT billing.stripe_webhook(body::json, pg_temp.sig(body, 1772366400, 'whsec_regress')) FROM ev WHERE name = 'ping';
SELECT billing.stripe_webhook(body::json, pg_temp.sig(body, 1772366300, 'whsec_old')) FROM ev WHERE name = 'spaced';
-- Several v1 signatures (Stripe signs with each secret while one rolls): any match passes.
SELECT billing.stripe_webhook(body::json,
         't=1772366400,v1=' || repeat('ab', 32) || ',v0=zz,' || split_part(pg_temp.sig(body, 1772366400, 'whsec_regress'), ',', 2)
       )->>'result' FROM ev WHERE name = 'ping';
SELECT id, type, object_id, payment_id, result FROM billing.stripe_events ORDER BY id;

-- Rejected, and recorded nowhere.
SELECT err(format('SELECT billing.stripe_webhook(%L, %L)', replace(body, 'ping', 'pong'),
                          pg_temp.sig(body, 1772366400, 'whsec_regress'))) FROM ev WHERE name = 'ping';
SELECT err(format('SELECT billing.stripe_webhook(%L, %L)', body,
                          pg_temp.sig(body, 1772366400, 'whsec_forged'))) FROM ev WHERE name = 'ping';
SELECT err(format('SELECT billing.stripe_webhook(%L, %L)', body,
                          pg_temp.sig(body, 1772366099, 'whsec_regress'))) FROM ev WHERE name = 'ping';
SELECT err(format('SELECT billing.stripe_webhook(%L, %L)', body,
                          pg_temp.sig(body, 1772366701, 'whsec_regress'))) FROM ev WHERE name = 'ping';
SELECT err(format('SELECT billing.stripe_webhook(%L, %L)', body, h))
FROM ev, (VALUES (''), ('t=1772366400'), ('v1=' || repeat('0', 64)), ('t=1772366400,t=1772366400,v1=' || repeat('0', 64)),
                 ('t=12ab,v1=' || repeat('0', 64)), ('t=1772366400,v1=xyz'), ('no equals sign'),
                 (repeat('t=1,', 2000))) AS h(h)
WHERE name = 'ping';
SELECT err($$SELECT billing.stripe_webhook('{}', NULL)$$);
SELECT err($$SELECT billing.stripe_webhook(NULL, 't=1,v1=00')$$);
-- Signed, but not an event.
SELECT err(format('SELECT billing.stripe_webhook(%L, %L)', b, pg_temp.sig(b, 1772366400, 'whsec_regress')))
FROM (VALUES ('[]'), ('{"id": "evt_x"}'), ('{"id": "evt x", "type": "a", "created": 1, "data": {"object": {}}}'),
             ('{"id": "evt_x", "type": "a", "created": 1.5, "data": {"object": {}}}'),
             ('{"id": "evt_x", "type": "a", "created": 1, "data": {"object": []}}')) AS b(b);
-- No secret configured: nothing can be verified.
SET billing.stripe_webhook_secrets = '';
SELECT err(format('SELECT billing.stripe_webhook(%L, %L)', body,
                          pg_temp.sig(body, 1772366400, 'whsec_regress'))) FROM ev WHERE name = 'ping';
SET billing.stripe_webhook_secrets = 'whsec_regress';
SELECT count(*) AS stored_events FROM billing.stripe_events;

---------------------------------------------------------------------------
-- Checkout, confirm, cancel and the poller with Stripe unreachable.
---------------------------------------------------------------------------
SELECT billing.create_tariff('prime', 'Prime films', 29900) IS NOT NULL;
CREATE TEMP TABLE p AS
SELECT billing.create_invoice('b0000000-0000-0000-0000-000000000001', 'prime', 1) AS id;

SELECT err(format('SELECT billing.checkout(%L, %L)', 'b0000000-0000-0000-0000-000000000001', id)) FROM p;
SET billing.stripe_success_url = 'https://cinema.example/paid?session={CHECKOUT_SESSION_ID}';
SELECT regexp_replace(err(format('SELECT billing.checkout(%L, %L)', 'b0000000-0000-0000-0000-000000000002', id)),
                      '[0-9a-f-]{36}', '<id>') FROM p;
SELECT err(format('SELECT billing.checkout(%L, %L, %L)', 'b0000000-0000-0000-0000-000000000001', id,
                          'javascript:alert(1)')) FROM p;
SELECT err('SELECT billing.checkout(NULL, NULL)');
RESET billing.stripe_secret_key;
SELECT err(format('SELECT billing.checkout(%L, %L)', 'b0000000-0000-0000-0000-000000000001', id)) FROM p;
SET billing.stripe_secret_key = 'sk_test_regress_secret';
SET billing.stripe_api_base = 'http://127.0.0.1:1';
-- The remote failure is class 08 (the detail names libcurl's reason).
SELECT regexp_replace(err(format('SELECT billing.checkout(%L, %L)', 'b0000000-0000-0000-0000-000000000001', id)),
                      'regress_secret', '<LEAKED>') FROM p;
SELECT status, provider_session_id, next_poll_at FROM billing.payments;
SELECT billing.confirm_payment('b0000000-0000-0000-0000-000000000001', id) FROM p;
-- An invoice that never went to Stripe is canceled without asking it.
SELECT billing.cancel_payment('b0000000-0000-0000-0000-000000000001', id) FROM p;
CALL billing.stripe_poll(NULL);
BEGIN;
CALL billing.stripe_poll(NULL);
COMMIT;
SELECT to_status, source FROM billing.payment_events ORDER BY id;

-- Amounts Stripe cannot charge are refused before asking it (the base URL is
-- still the closed port: a call would be 08001).  ISK is two-decimal in
-- Stripe's API but charged in whole krónur.
SELECT billing.create_tariff('reykjavik', 'Reykjavik nights', 12345, 'ISK') IS NOT NULL;
SELECT billing.create_tariff('oslo', 'Oslo nights', 12300, 'ISK') IS NOT NULL;
SELECT err(format('SELECT billing.checkout(%L, billing.create_invoice(%L, %L, 1))',
                          'b0000000-0000-0000-0000-000000000003', 'b0000000-0000-0000-0000-000000000003', 'reykjavik'));
SELECT split_part(err(format('SELECT billing.checkout(%L, billing.create_invoice(%L, %L, 1))',
                          'b0000000-0000-0000-0000-000000000004', 'b0000000-0000-0000-0000-000000000004', 'oslo')), ':', 1);
