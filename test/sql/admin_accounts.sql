-- Personal admin accounts: DBAs create them, set passwords, disable and
-- enable them (each audited, never the hash); an admin signs in with e-mail
-- and password and gets an HS256 token; an unknown e-mail and a wrong password
-- get the same answer; repeated failures lock the e-mail; the pre-request
-- check refuses tokens of disabled or unknown accounts; the audit shows the
-- person's name.
SELECT test_reset();
TRUNCATE billing.admin_accounts, billing.admin_login_throttle;
SET billing.test_clock = '2026-03-01 12:00:00+00';
SET billing.admin_jwt_secret = 'regress-admin-secret-0123456789abcdefghij';

-- Passwords shorter than 12 characters are refused; nothing is written.
SELECT err($$SELECT billing.create_admin_account('ann@example.com', 'Ann Smith', 'short-pw')$$);
SELECT err($$SELECT billing.create_admin_account('ann@example.com', 'Ann Smith', repeat('x', 73))$$);
SELECT err($$SELECT billing.create_admin_account('not an e-mail', 'Ann Smith', 'long enough password')$$);
SELECT err($$SELECT billing.create_admin_account(NULL, 'Ann Smith', 'long enough password')$$);
SELECT count(*) AS accounts, (SELECT count(*) FROM billing.admin_audit) AS audit_rows FROM billing.admin_accounts;

-- A bcrypt hash of cost 10 or more; the returned row has no hash.
SELECT a - 'id' AS account FROM billing.create_admin_account('Ann@Example.com', 'Ann Smith', 'correct horse battery') a;
SELECT password_hash ~ '^\$2a\$1[0-9]\$' AS bcrypt_cost_10_plus, password_hash <> 'correct horse battery' AS not_plain
FROM billing.admin_accounts;
-- E-mails are unique without case.
SELECT err($$SELECT billing.create_admin_account('ANN@example.com', 'Another Ann', 'another long password')$$);
-- The id may be given: the person's user id in the auth service.
SELECT billing.create_admin_account('bob@example.com', 'Bob Jones', 'bobs long password',
                                    'b0b00000-0000-4000-8000-000000000000') ->> 'id' AS bob;

-- Signing in: a token and when it expires (at most 8 hours ahead).
CREATE TEMP TABLE login AS SELECT billing.admin_login('ann@EXAMPLE.com', 'correct horse battery') AS r;
SELECT r ? 'token' AS has_token, r ? 'error' AS has_error,
       (r->>'expires_at')::timestamptz BETWEEN now() + interval '7 hours 59 minutes' AND now() + interval '8 hours 1 minute' AS expires_in_8h
FROM login;
-- The token: header, claims, and an HMAC-SHA256 signature with the secret
-- (checked here with pgcrypto, independently of the C code that made it).
CREATE FUNCTION pg_temp.b64url_decode(s text) RETURNS bytea LANGUAGE sql AS $$
    SELECT decode(rpad(translate(s, '-_', '+/'), (length(s) + 3) / 4 * 4, '='), 'base64') $$;
SELECT convert_from(pg_temp.b64url_decode(split_part(r->>'token', '.', 1)), 'UTF8')::jsonb AS header,
       convert_from(pg_temp.b64url_decode(split_part(r->>'token', '.', 2)), 'UTF8')::jsonb - 'iat' - 'exp' - 'user' AS claims,
       (convert_from(pg_temp.b64url_decode(split_part(r->>'token', '.', 2)), 'UTF8')::jsonb ->> 'user')::uuid
           = (SELECT id FROM billing.admin_accounts WHERE email = 'Ann@Example.com') AS user_is_account,
       pg_temp.b64url_decode(split_part(r->>'token', '.', 3))
           = public.hmac(split_part(r->>'token', '.', 1) || '.' || split_part(r->>'token', '.', 2),
                         'regress-admin-secret-0123456789abcdefghij', 'sha256') AS signature_ok
FROM login;

-- An unknown e-mail and a wrong password: the same answer, 401.
SELECT billing.admin_login('nobody@example.com', 'correct horse battery') AS unknown_email;
SELECT billing.admin_login('ann@example.com', 'wrong horse battery') = billing.admin_login('nobody@example.com', 'x')
    AS same_answer;

-- Failures are audited with the e-mail tried; the fifth within the window
-- locks the e-mail, and the sixth attempt meets the lock even with the right
-- password (429 with Retry-After in seconds).
TRUNCATE billing.admin_login_throttle;
SELECT test_reset();
SET billing.test_clock = '2026-03-01 12:00:00+00';
SELECT i, billing.admin_login('ann@example.com', 'wrong password ' || i) -> 'error' ->> 'status' AS status
FROM generate_series(1, 5) i;
SELECT billing.admin_login('ann@example.com', 'correct horse battery') AS sixth;
SELECT actor, actor_name, action, target, after FROM billing.admin_audit ORDER BY id;
-- Still locked 14 minutes later; free after 15.
SET billing.test_clock = '2026-03-01 12:14:59+00';
SELECT billing.admin_login('ann@example.com', 'correct horse battery') -> 'error' ->> 'status' AS status_14min;
SET billing.test_clock = '2026-03-01 12:15:00+00';
SELECT billing.admin_login('ann@example.com', 'correct horse battery') ? 'token' AS signed_in_15min;
-- Unknown e-mails lock the same way (the lock tells nothing about accounts).
SELECT count(*) FILTER (WHERE billing.admin_login('ghost@example.com', 'pw') -> 'error' ->> 'status' = '429') AS locked_after
FROM generate_series(1, 6);
-- Failures spread over more than the window never lock.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 13:00:00+00';
SELECT billing.admin_login('bob@example.com', 'nope') -> 'error' ->> 'status' AS s1;
SELECT billing.admin_login('bob@example.com', 'nope') -> 'error' ->> 'status' AS s2;
SELECT billing.admin_login('bob@example.com', 'nope') -> 'error' ->> 'status' AS s3;
SELECT billing.admin_login('bob@example.com', 'nope') -> 'error' ->> 'status' AS s4;
SET billing.test_clock = '2026-03-01 13:15:01+00';
SELECT billing.admin_login('bob@example.com', 'nope') -> 'error' ->> 'status' AS s5_after_window;
SELECT billing.admin_login('bob@example.com', 'bobs long password') ? 'token' AS bob_signs_in;

-- Disable and enable: audited (no hash), a disabled account cannot sign in
-- and gets the same answer as a wrong password.
SELECT test_reset();
SET billing.test_clock = '2026-03-01 14:00:00+00';
SELECT (billing.disable_admin_account('BOB@example.com') ->> 'disabled_at') IS NOT NULL AS disabled;
SELECT billing.admin_login('bob@example.com', 'bobs long password') -> 'error' ->> 'message' AS disabled_login;
SELECT (billing.enable_admin_account('bob@example.com') ->> 'disabled_at') IS NULL AS enabled;
SELECT billing.admin_login('bob@example.com', 'bobs long password') ? 'token' AS bob_again;
SELECT err($$SELECT billing.set_admin_password('bob@example.com', 'too short')$$);
SELECT err($$SELECT billing.disable_admin_account('nobody@example.com')$$);
SELECT billing.set_admin_password('bob@example.com', 'a brand new password') IS NOT NULL AS changed;
SELECT billing.admin_login('bob@example.com', 'bobs long password') ? 'token' AS old_password_works;
SELECT billing.admin_login('bob@example.com', 'a brand new password') ? 'token' AS new_password_works;
SELECT actor, actor_name, action, target, before ->> 'disabled_at' IS NOT NULL AS was_disabled,
       after ->> 'disabled_at' IS NOT NULL AS is_disabled, after ->> 'password' AS password,
       before::text LIKE '%$2a$%' OR after::text LIKE '%$2a$%' AS hash_shown
FROM billing.admin_audit ORDER BY id;

-- Only superusers manage accounts; billing_admin sees the list without hashes.
SET ROLE billing_admin;
SELECT err($$SELECT billing.create_admin_account('eve@example.com', 'Eve', 'long enough password')$$);
SELECT err($$SELECT billing.disable_admin_account('ann@example.com')$$);
SELECT err($$SELECT password_hash FROM billing.admin_accounts$$);
SELECT email, display_name, disabled_at FROM billing.admin_account_list ORDER BY email;
RESET ROLE;

-- The pre-request check of admin tokens (what PostgREST runs before each
-- admin request): an enabled account passes, a disabled one is 401 at once,
-- an id of no account is 401 unless tokens of the auth service are trusted.
CREATE FUNCTION pg_temp.check_as(uid text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('request.jwt.claims', json_build_object('role', 'billing_admin', 'user', uid)::text, true);
    PERFORM api_private.check_admin_token();
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
SELECT pg_temp.check_as((SELECT id::text FROM billing.admin_accounts WHERE email = 'bob@example.com')) AS enabled;
SELECT billing.disable_admin_account('bob@example.com') IS NOT NULL AS disable_bob;
SELECT pg_temp.check_as((SELECT id::text FROM billing.admin_accounts WHERE email = 'bob@example.com')) AS disabled;
SELECT pg_temp.check_as('0f0f0f0f-0000-4000-8000-000000000000') AS unknown_account;
SET billing.admin_trust_external_tokens = on;
SELECT pg_temp.check_as('0f0f0f0f-0000-4000-8000-000000000000') AS unknown_account_trusted;
SELECT pg_temp.check_as((SELECT id::text FROM billing.admin_accounts WHERE email = 'bob@example.com')) AS disabled_trusted;
RESET billing.admin_trust_external_tokens;

-- The audit names the person behind the token, as they were named then.
SELECT test_reset();
BEGIN;
SELECT set_config('request.jwt.claims',
                  json_build_object('role', 'billing_admin',
                                    'user', (SELECT id FROM billing.admin_accounts WHERE email = 'Ann@Example.com'))::text, true) IS NOT NULL;
SELECT billing.set_months_discount(3, 5) IS NOT NULL AS tier;
COMMIT;
SELECT billing.set_months_discount(6, 10) IS NOT NULL AS tier_from_psql;
SELECT actor_name, action, target FROM billing.admin_audit ORDER BY id;

-- Without a secret there is no signing in.
RESET billing.admin_jwt_secret;
SELECT err($$SELECT billing.admin_login('ann@example.com', 'correct horse battery')$$);
-- Ordinary users cannot read the secret.
SET ROLE billing_admin;
SELECT err($$SHOW billing.admin_jwt_secret$$);
RESET ROLE;

TRUNCATE billing.admin_accounts, billing.admin_login_throttle;
