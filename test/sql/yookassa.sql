-- YooKassa without YooKassa: the provider settings and their secrecy, the
-- choice of provider at checkout, and what checkout, the notification
-- endpoint and the poller do when YooKassa cannot be reached.  The
-- conversation with a YooKassa server is test/e2e/test_yookassa.py.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';

---------------------------------------------------------------------------
-- Settings: validated, never echoed when secret, superusers only.
---------------------------------------------------------------------------
SELECT err($$SET billing.providers = 'RUB:paypal'$$);
SELECT err($$SET billing.providers = 'RUB'$$);
SELECT err($$SET billing.providers = 'rub:yookassa'$$);
SELECT err($$SET billing.providers = 'RUB:yookassa, RUB:stripe'$$);
SELECT err($$SET billing.providers = 'RUB:yookassa, *:stripe'$$);
SELECT err($$SET billing.yookassa_api_base = 'ftp://api.yookassa.ru'$$);
SELECT err($$SET billing.yookassa_shop_id = 'shop-secret-1'$$);
SELECT err($$SET billing.yookassa_secret_key = 'test_abc
Injected: header'$$);
SELECT err($$SET billing.yookassa_notify_from = '185.71.76.0/27; rm -rf'$$);
SELECT err($$SET billing.yookassa_notify_from = '185.71.76.0/27, 77.75.156.11'$$);
SELECT err($$SET billing.yookassa_vat_code = 13$$);
SELECT name FROM pg_settings WHERE name LIKE 'billing.yookassa%' OR name = 'billing.providers'
ORDER BY name;
RESET billing.providers;
RESET billing.yookassa_notify_from;
SET billing.yookassa_shop_id = '123456';
SET billing.yookassa_secret_key = 'test_regress_secret';
-- A closed port: nothing here may reach a real YooKassa.
SET billing.yookassa_api_base = 'http://127.0.0.1:1';
CREATE ROLE yookassa_reader;
SET ROLE yookassa_reader;
SELECT err($$SELECT current_setting('billing.yookassa_secret_key')$$);
SELECT err($$SELECT current_setting('billing.yookassa_shop_id')$$);
SELECT err($$SET billing.yookassa_api_base = 'https://attacker.example'$$);
SELECT err($$SET billing.providers = '*:yookassa'$$);
SELECT err($$SELECT billing.yookassa_webhook('{}')$$);
SELECT err($$CALL billing.poll_payments(NULL)$$);
RESET ROLE;
DROP ROLE yookassa_reader;

---------------------------------------------------------------------------
-- Choosing the provider: only configured ones; the payment stays invoiced.
---------------------------------------------------------------------------
SELECT billing.create_tariff('prime', 'Prime films', 29950) IS NOT NULL;
CREATE TEMP TABLE p AS
SELECT billing.create_invoice('c0000000-0000-0000-0000-000000000001', 'prime', 1) AS id;
SET billing.yookassa_return_url = 'https://cinema.example/back';
SELECT err(format('SELECT billing.checkout(%L, %L, provider => %L)',
                  'c0000000-0000-0000-0000-000000000001', id, 'paypal')) FROM p;
SELECT err(format('SELECT billing.checkout(%L, %L, provider => %L)',
                  'c0000000-0000-0000-0000-000000000001', id, 'yookassa')) FROM p;
SET billing.providers = 'EUR:stripe';
SELECT err(format('SELECT billing.checkout(%L, %L)', 'c0000000-0000-0000-0000-000000000001', id)) FROM p;
SET billing.providers = 'RUB:yookassa, *:stripe';
RESET billing.yookassa_secret_key;
SELECT err(format('SELECT billing.checkout(%L, %L)', 'c0000000-0000-0000-0000-000000000001', id)) FROM p;
SET billing.yookassa_secret_key = 'test_regress_secret';
-- Unreachable: class 08, and the secret appears nowhere.
SELECT regexp_replace(err(format('SELECT billing.checkout(%L, %L)', 'c0000000-0000-0000-0000-000000000001', id)),
                      'regress_secret', '<LEAKED>') FROM p;
SELECT status, provider, provider_session_id FROM billing.payments;

---------------------------------------------------------------------------
-- Notifications: malformed ones are refused before anything is asked;
-- a well-formed one needs YooKassa (08: YooKassa delivers it again).
---------------------------------------------------------------------------
SELECT err($$SELECT billing.yookassa_webhook('[1]')$$);
SELECT err($$SELECT billing.yookassa_webhook('{"type": "notification", "event": "payment.succeeded"}')$$);
SELECT err($$SELECT billing.yookassa_webhook('{"type": "note", "event": "payment.succeeded", "object": {"id": "x"}}')$$);
SELECT err($$SELECT billing.yookassa_webhook('{"type": "notification", "event": "payment.succeeded", "object": {"id": "../refunds"}}')$$);
SELECT err($$SELECT billing.yookassa_webhook(NULL)$$);
SELECT billing.yookassa_webhook('{"type": "notification", "event": "deal.closed", "object": {"id": "dl-1"}}');
SELECT err($$SELECT billing.yookassa_webhook('{"type": "notification", "event": "payment.succeeded", "object": {"id": "2d5e4f6a-000f-5000-8000-1b2c3d4e5f60"}}')$$);
-- Senders: only the listed addresses, when a list is set.
SET billing.yookassa_notify_from = '185.71.76.0/27, 77.75.156.11';
SELECT err($$SELECT billing.yookassa_webhook('{"type": "notification", "event": "deal.closed", "object": {"id": "dl-1"}}', '10.1.2.3')$$);
SELECT err($$SELECT billing.yookassa_webhook('{"type": "notification", "event": "deal.closed", "object": {"id": "dl-1"}}')$$);
SELECT billing.yookassa_webhook('{"type": "notification", "event": "deal.closed", "object": {"id": "dl-1"}}', '185.71.76.30') ->> 'result';
RESET billing.yookassa_notify_from;

---------------------------------------------------------------------------
-- The poller with YooKassa unreachable: the payment stays pending, its
-- backoff moves on.
---------------------------------------------------------------------------
UPDATE billing.payments SET status = 'pending', provider = 'yookassa',
       provider_session_id = '2d5e4f6a-000f-5000-8000-1b2c3d4e5f60', next_poll_at = billing.now();
SET client_min_messages = error;
CALL billing.poll_payments(NULL);
RESET client_min_messages;
SELECT status, poll_attempts, next_poll_at > billing.now() AS backed_off FROM billing.payments;
-- Cancel asks YooKassa first (a pending confirmation stays payable there).
SELECT err(format('SELECT billing.cancel_payment(%L, %L)', 'c0000000-0000-0000-0000-000000000001', id)) FROM p;
SELECT status FROM billing.payments;
