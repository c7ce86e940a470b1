-- Fuzzing billing.stripe_webhook inside the database, in one call: 6,000
-- malformed bodies and signature headers (random mutations of real event
-- shapes, correctly signed half of the time so they reach the parser and the
-- payment they name).  Nothing may crash; every failure is a clean error
-- with an expected SQLSTATE; only verified, well-formed events are stored.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';
SET billing.stripe_webhook_secrets = 'whsec_fuzz';
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SELECT billing.create_tariff('prime', 'Prime films', 29900) IS NOT NULL;
-- A real invoice the fuzzed sessions can name (by metadata) and even pay.
CREATE TEMP TABLE target AS
SELECT billing.create_invoice('c0000000-0000-0000-0000-000000000001', 'prime', 1) AS id;

CREATE TEMP TABLE fuzz_out (i int, sqlstate text, signed bool, result text);
SELECT setseed(0.2026);
SET client_min_messages = error;    -- the events naming nobody warn; not here
DO $$
DECLARE
    pid text := (SELECT id::text FROM target);
    weird text[] := ARRAY['null', 'true', '0', '-1', '1.5', '1e30', '99999999999999999999', '""', '"x"',
                          '"\u0000"', '"\ud800"', '[]', '{}', '[1,{"a":[]}]', '"' || repeat('z', 300) || '"',
                          '"evt_ok"', '"cs_fuzz"', '"complete"', '"paid"', '"expired"', '"open"', '"rub"',
                          '"RUB"', '29900', '"' || pid || '"', '"c0000000-0000-0000-0000-000000000001"',
                          '{"payment_id": "' || pid || '", "user_id": "c0000000-0000-0000-0000-000000000001"}',
                          '"refund.updated"', '"checkout.session.completed"', '"checkout.session.expired"',
                          '"checkout.session.async_payment_failed"', '"a.b"', '"succeeded"'];
    paths text[] := ARRAY['{id}', '{type}', '{created}', '{data}', '{data,object}', '{data,object,id}',
                          '{data,object,amount_total}', '{data,object,amount}', '{data,object,currency}',
                          '{data,object,status}', '{data,object,payment_status}', '{data,object,metadata}',
                          '{data,object,payment_intent}', '{data,object,client_reference_id}',
                          '{data,object,metadata,payment_id}', '{data,object,metadata,user_id}'];
    base jsonb;
    doc jsonb;
    body text;
    sig text;
    t bigint := 1772366400;
    signed bool;
    n int;
    res jsonb;
BEGIN
    FOR i IN 1..6000 LOOP
        base := CASE i % 3
            WHEN 0 THEN jsonb_build_object('id', 'evt_f' || i, 'object', 'event', 'type', 'checkout.session.completed',
                        'created', t, 'data', jsonb_build_object('object', jsonb_build_object(
                            'id', 'cs_fuzz_' || (i % 7), 'object', 'checkout.session', 'status', 'complete',
                            'payment_status', 'paid', 'amount_total', 29900, 'currency', 'rub',
                            'client_reference_id', pid, 'payment_intent', 'pi_fuzz',
                            'metadata', jsonb_build_object('payment_id', pid,
                                                           'user_id', 'c0000000-0000-0000-0000-000000000001'))))
            WHEN 1 THEN jsonb_build_object('id', 'evt_f' || i, 'object', 'event', 'type', 'refund.updated',
                        'created', t, 'data', jsonb_build_object('object', jsonb_build_object(
                            'id', 're_fuzz', 'object', 'refund', 'status', 'succeeded', 'amount', 29900,
                            'currency', 'rub', 'payment_intent', 'pi_fuzz')))
            ELSE jsonb_build_object('id', 'evt_f' || i, 'type', 'checkout.session.expired', 'created', t,
                        'data', jsonb_build_object('object', jsonb_build_object('id', 'cs_fuzz_1',
                            'status', 'expired', 'amount_total', 29900, 'currency', 'rub')))
        END;
        doc := base;
        FOR k IN 1..1 + floor(random() * 3)::int LOOP
            BEGIN
                IF random() < 0.2 THEN
                    doc := doc #- paths[1 + floor(random() * array_length(paths, 1))::int]::text[];
                ELSE
                    doc := jsonb_set(doc, paths[1 + floor(random() * array_length(paths, 1))::int]::text[],
                                     weird[1 + floor(random() * array_length(weird, 1))::int]::jsonb);
                END IF;
            EXCEPTION WHEN OTHERS THEN
                NULL;   -- a weird value jsonb itself refuses (\u0000): keep the previous doc
            END;
        END LOOP;
        body := doc::text;
        -- Sometimes raw text no JSON parser would build: cut it short or append junk.
        n := floor(random() * 10)::int;
        IF n = 0 THEN
            body := left(body, floor(random() * length(body))::int);
        ELSIF n = 1 THEN
            body := body || ' ' || chr(32 + floor(random() * 90)::int);
        ELSIF n = 2 THEN
            body := replace(body, '"rub"', '"\u00e9\ud83d\ude00"');
        END IF;
        signed := random() < 0.5;
        IF signed THEN
            sig := 't=' || t || ',v1=' || encode(hmac(t || '.' || body, 'whsec_fuzz', 'sha256'), 'hex');
            IF random() < 0.1 THEN  -- a signature off by one timestamp or one digit
                sig := CASE WHEN random() < 0.5 THEN replace(sig, 't=' || t, 't=' || (t + 1))
                            ELSE left(sig, length(sig) - 1) || 'f' END;
            END IF;
        ELSE
            sig := CASE floor(random() * 8)::int
                WHEN 0 THEN ''
                WHEN 1 THEN 't=' || t
                WHEN 2 THEN 't=' || t || ',v1=' || md5(random()::text) || md5(random()::text)
                WHEN 3 THEN repeat(',', floor(random() * 50)::int) || 'v1=' || repeat('g', 64)
                WHEN 4 THEN 't=' || (random() * 1e15)::bigint || ',v1=' || repeat('a', floor(random() * 130)::int)
                WHEN 5 THEN 't=-5,v1=' || repeat('0', 64)
                WHEN 6 THEN repeat('t=1,v1=' || repeat('0', 64) || ',', floor(random() * 200)::int)
                ELSE translate(md5(random()::text), 'abc', '=, ')
            END;
        END IF;
        BEGIN
            res := billing.stripe_webhook(body::json, sig);
            INSERT INTO fuzz_out VALUES (i, '00000', signed, res->>'result');
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO fuzz_out VALUES (i, SQLSTATE, signed, NULL);
        END;
    END LOOP;
END
$$;
RESET client_min_messages;

-- Every outcome is a clean, expected SQLSTATE: 00000 accepted, 22P02/22P05
-- not JSON (refused before the function), 22023 malformed header or event,
-- 42501 signature or timestamp refused.
-- (The exact counts move with the random payment id inside the bodies.)
SELECT sqlstate, signed, count(*) > 100 AS often FROM fuzz_out GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*) AS unexpected FROM fuzz_out
WHERE sqlstate NOT IN ('00000', '22P02', '22P05', '22023', '42501');
-- Only what was signed and well-formed was stored, once per event id;
-- unsigned input never.
SELECT count(*) = (SELECT count(*) FROM fuzz_out WHERE sqlstate = '00000' AND result <> 'duplicate')
       AS stored_only_accepted
FROM billing.stripe_events;
SELECT count(*) AS accepted_unsigned FROM fuzz_out WHERE sqlstate = '00000' AND NOT signed;
SELECT count(*) AS unknown_results FROM billing.stripe_events
WHERE result NOT IN ('applied', 'unchanged', 'stale', 'waiting', 'mismatch', 'partial',
                     'refund_failed', 'unknown_payment', 'ignored');
-- Every transition of the invoice came from exactly one applied event.
SELECT (SELECT count(*) FROM billing.payment_events e, target t WHERE e.payment_id = t.id AND e.source = 'webhook')
     = (SELECT count(*) FROM billing.stripe_events WHERE result = 'applied') AS one_transition_per_applied_event,
       (SELECT count(*) FROM billing.stripe_events WHERE result = 'applied') > 0 AS some_applied;
SELECT 'alive' AS server;
