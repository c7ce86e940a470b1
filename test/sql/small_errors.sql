-- Caller input quoted in an error is cut to its first 64 characters and an
-- ellipsis (billing_echo), between characters: a megabyte argument does not
-- come back whole in the message, detail or hint, nor go whole into the
-- server log.  Short input is quoted as it is.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';
SELECT billing.create_tariff('films', 'Films', 1000) IS NOT NULL;

-- The SQLSTATE, the lengths of message, detail and hint, and the message.
CREATE FUNCTION pg_temp.fail_sizes(sql text) RETURNS TABLE (state text, message_chars int,
                                                            detail_chars int, hint_chars int, message text)
LANGUAGE plpgsql AS $$
DECLARE
    d text; h text;
BEGIN
    EXECUTE sql;
    RAISE EXCEPTION 'no error from %', sql;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    message_chars := length(message);
    detail_chars := length(d);
    hint_chars := length(h);
    RETURN NEXT;
END
$$;

SELECT r.* FROM (VALUES
    ($$SELECT billing.quote(md5('u')::uuid, repeat('t', 1048576), 1)$$),
    ($$SELECT billing.quote(md5('u')::uuid, 'films', 1, repeat('p', 1048576))$$),
    ($$SELECT billing.create_invoice(md5('u')::uuid, repeat('t', 1048576), 1)$$),
    ($$SELECT billing.create_invoice(md5('u')::uuid, 'films', 1, repeat('p', 1048576))$$),
    ($$SELECT billing.has_access(md5('u')::uuid, repeat('t', 1048576))$$),
    ($$SELECT billing.create_tariff(repeat('t', 1048576), 'T', 1)$$),
    ($$SELECT billing.create_tariff('gold', 'T', 1, repeat('r', 1048576))$$),
    ($$SELECT billing.update_tariff(repeat('t', 1048576), 'T')$$),
    ($$SELECT billing.set_tariff_price(repeat('t', 1048576), 1)$$),
    ($$SELECT billing.create_promo_code(repeat('p', 1048576), 10, '2026-06-01')$$),
    ($$SELECT billing.create_promo_code('P1', 10, '2026-06-01', tariff => repeat('t', 1048576))$$),
    ($$SELECT billing.delete_promo_code(repeat('p', 1048576))$$),
    ($$SELECT billing.settle_payment(gen_random_uuid(), repeat('o', 1048576))$$),
    ($$SELECT billing.settle_payment(gen_random_uuid(), 'paid', source => repeat('s', 1048576))$$),
    ($$SELECT billing.admin_settle_payment(gen_random_uuid(), repeat('o', 1048576))$$),
    ($$SET billing.test_clock = '$$ || repeat('c', 1048576) || $$'$$),
    ($$SET billing.jwt_user_claim = '$$ || repeat('j', 1048576) || $$'$$)
) AS c(sql), pg_temp.fail_sizes(c.sql) AS r;

-- The cut falls between characters (64 two-byte letters, not 64 bytes), and
-- input of exactly 64 characters is quoted whole.
SELECT message, length(substring(message from '"(.*)"')) AS quoted_chars
FROM pg_temp.fail_sizes($$SELECT billing.quote(md5('u')::uuid, repeat('я', 65), 1)$$);
SELECT message, length(substring(message from '"(.*)"')) AS quoted_chars
FROM pg_temp.fail_sizes($$SELECT billing.quote(md5('u')::uuid, repeat('я', 64), 1)$$);
