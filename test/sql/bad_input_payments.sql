-- Bad input to the payment functions: each case is a clear error with its
-- SQLSTATE, and none of them changes anything.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 10:00:00+00';

INSERT INTO marketing.tariffs (code, title, monthly_price, active) VALUES
    ('films', 'Priority films', 29900, true),
    ('old', 'Old plan', 9900, false);
INSERT INTO marketing.promo_codes (code, percent, valid_until, max_redemptions) VALUES
    ('ONE', 20, '2027-01-01', 1),
    ('PAST', 20, '2026-02-01', NULL);

SELECT billing.create_invoice('dddddddd-0000-4000-8000-000000000001', 'films', 1) AS paid \gset
SELECT billing.settle_payment(:'paid', 'paid');
SELECT billing.create_invoice('dddddddd-0000-4000-8000-000000000001', 'films', 1, 'ONE') AS open \gset

-- Everything a bad call could have touched.
CREATE FUNCTION pg_temp.state() RETURNS text LANGUAGE sql AS $$
    SELECT format('payments=%s customers=%s events=%s outbox=%s subscriptions=%s redemptions=%s statuses=%s',
        (SELECT count(*) FROM billing.payments),
        (SELECT count(*) FROM billing.customers),
        (SELECT count(*) FROM billing.payment_events),
        (SELECT count(*) FROM billing.outbox),
        (SELECT string_agg(months::text || '/' || ends_at::text, ',') FROM billing.subscriptions),
        (SELECT sum(redemptions) FROM marketing.promo_codes),
        (SELECT string_agg(status, ',' ORDER BY status) FROM billing.payments))
$$;

SELECT pg_temp.state() AS before \gset

\set new_user '''dddddddd-0000-4000-8000-000000000002'''
SELECT replace(replace(c, :'open', '<open>'), :'paid', '<paid>') AS call, err(c) AS result FROM (VALUES
    -- create_invoice
    ($$SELECT billing.create_invoice(NULL, 'films', 1)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, NULL, 1)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', NULL)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', 0)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', -3)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', 13)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'nope', 1)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'old', 1)$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', 1, 'NOPE')$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', 1, 'PAST')$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', 1, 'ONE')$$),
    ($$SELECT billing.create_invoice($$ || :'new_user' || $$, 'films', 1, '')$$),
    ($$SELECT billing.create_invoice('not-a-uuid', 'films', 1)$$),
    -- settle_payment
    ($$SELECT billing.settle_payment(NULL, 'paid')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, NULL)$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'PAID')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'bogus')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'pending')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'refund_pending')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'invoiced')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'paid', source => 'stripe')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'paid', source => NULL)$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'paid', at => 'infinity')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'paid', at => '-infinity')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'open') || $$, 'refunded')$$),
    ($$SELECT billing.settle_payment($$ || quote_literal(:'paid') || $$, 'canceled')$$),
    ($$SELECT billing.settle_payment('00000000-0000-4000-8000-000000000000', 'paid')$$),
    ($$SELECT billing.settle_payment('not-a-uuid', 'paid')$$),
    -- cancel_payment
    ($$SELECT billing.cancel_payment(NULL, $$ || quote_literal(:'open') || $$)$$),
    ($$SELECT billing.cancel_payment('dddddddd-0000-4000-8000-000000000001', NULL)$$),
    ($$SELECT billing.cancel_payment($$ || :'new_user' || $$, $$ || quote_literal(:'open') || $$)$$),
    ($$SELECT billing.cancel_payment('dddddddd-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000000')$$)
) AS t(c);

-- Nothing changed.
SELECT pg_temp.state() = :'before' AS unchanged;
SELECT pg_temp.state();

-- The refund window is checked after the owner: late, then a clear 55000.
SET billing.test_clock = '2026-03-01 11:00:01+00';
SELECT err($$SELECT billing.cancel_payment('dddddddd-0000-4000-8000-000000000001', $$ || quote_literal(:'paid') || $$)$$);
SELECT pg_temp.state() = :'before' AS unchanged;

-- Settings refuse values out of range.
SET billing.invoice_lifetime = '10s';
SET billing.invoice_lifetime = '31d';
SET billing.refund_window = -1;
SET billing.invoice_expiry_batch = 0;
