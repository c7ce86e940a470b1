---------------------------------------------------------------------------
-- Personal admin accounts (admin_login.c): who signs in to the admin panel.
--
-- DBAs manage the accounts in psql (create, set password, disable, enable);
-- a person signs in over HTTP with POST /rpc/login and gets a short-lived
-- HS256 token (role billing_admin, user = the account id) that PostgREST
-- verifies with its own secret, billing.admin_jwt_secret being the same one.
-- The pre-request hook looks the account up on every admin request, so a
-- disabled account is shut out at once.  The audit names the person.
---------------------------------------------------------------------------

CREATE TABLE billing.admin_accounts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$' AND length(email) <= 254),
    display_name    text NOT NULL CHECK (display_name ~ '[^[:space:]]' AND length(display_name) <= 100),
    -- bcrypt ($2a$, cost >= 10) from pgcrypto's crypt(); never shown to anyone
    password_hash   text NOT NULL CHECK (password_hash ~ '^\$2a\$(1[0-9]|2[0-9]|3[01])\$'),
    created_at      timestamptz NOT NULL DEFAULT billing.now(),
    disabled_at     timestamptz
);
CREATE UNIQUE INDEX admin_accounts_email ON billing.admin_accounts (lower(email));
COMMENT ON TABLE billing.admin_accounts IS 'Personal admin accounts of the admin panel: e-mail (unique, case-insensitive), display name shown in the audit, bcrypt password hash, disabled since.';

-- Failed sign-ins per e-mail tried (known or not, so that the lock says
-- nothing about which e-mails have accounts).  One row per e-mail.
CREATE TABLE billing.admin_login_throttle (
    email           text PRIMARY KEY,            -- lower-cased, as tried
    failures        int NOT NULL CHECK (failures >= 0),
    window_start    timestamptz NOT NULL,        -- first failure of the current window
    locked_until    timestamptz
);
COMMENT ON TABLE billing.admin_login_throttle IS 'Failed admin sign-ins per e-mail tried within billing.admin_login_window; a lock after billing.admin_login_max_failures.';

REVOKE ALL ON billing.admin_accounts, billing.admin_login_throttle FROM PUBLIC;

-- The audit keeps the person's name as it was when they acted.
ALTER TABLE billing.admin_audit ADD COLUMN actor_name text;
COMMENT ON COLUMN billing.admin_audit.actor_name IS 'The admin account''s display name when the change came from a signed-in admin; otherwise the database role.';

-- The account behind the token's user id, else the token's "name" claim (a
-- token from the auth service), else the database role.
CREATE FUNCTION billing.admin_audit_actor_name() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.actor_name IS NULL THEN
        SELECT a.display_name INTO NEW.actor_name
          FROM billing.admin_accounts a
         WHERE a.id::text = pg_catalog.lower(NEW.actor_subject);
        NEW.actor_name := coalesce(NEW.actor_name,
            NULLIF(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'name',
            NEW.actor::text);
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION billing.admin_audit_actor_name() FROM PUBLIC;
CREATE TRIGGER admin_audit_actor_name BEFORE INSERT ON billing.admin_audit
    FOR EACH ROW EXECUTE FUNCTION billing.admin_audit_actor_name();

---------------------------------------------------------------------------
-- For DBAs (superusers) in psql.  Each change is audited; the hash never is.
---------------------------------------------------------------------------

CREATE FUNCTION billing.create_admin_account(email text, display_name text, password text, id uuid DEFAULT NULL)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_create_admin_account';
COMMENT ON FUNCTION billing.create_admin_account(text, text, text, uuid) IS
    'Creates a personal admin account (password of at least 12 characters, stored as a bcrypt hash) with the given id (the person''s user id in the auth service) or a new one; returns the account without its hash.';

CREATE FUNCTION billing.set_admin_password(email text, password text)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_set_admin_password';
COMMENT ON FUNCTION billing.set_admin_password(text, text) IS
    'Sets an admin account''s password (at least 12 characters) and lifts a sign-in lock on its e-mail.';

CREATE FUNCTION billing.disable_admin_account(email text)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_disable_admin_account';
COMMENT ON FUNCTION billing.disable_admin_account(text) IS
    'Disables an admin account: it can no longer sign in, and its tokens are refused from the next request on.';

CREATE FUNCTION billing.enable_admin_account(email text)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_enable_admin_account';
COMMENT ON FUNCTION billing.enable_admin_account(text) IS
    'Enables a disabled admin account again.';

CREATE VIEW billing.admin_account_list AS
SELECT id, email, display_name, created_at, disabled_at FROM billing.admin_accounts;
COMMENT ON VIEW billing.admin_account_list IS 'The admin accounts without their password hashes.';

REVOKE ALL ON FUNCTION billing.create_admin_account(text, text, text, uuid),
    billing.set_admin_password(text, text), billing.disable_admin_account(text),
    billing.enable_admin_account(text) FROM PUBLIC;
REVOKE ALL ON billing.admin_account_list FROM PUBLIC;
GRANT SELECT ON billing.admin_account_list TO billing_admin;

---------------------------------------------------------------------------
-- Signing in.
---------------------------------------------------------------------------

-- Not an exception on failure: the failure must be counted (and audited) in
-- a transaction that commits.
CREATE FUNCTION billing.admin_login(email text, password text)
    RETURNS jsonb VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'billing_admin_login';
COMMENT ON FUNCTION billing.admin_login(text, text) IS
    'Checks an admin''s e-mail and password: {"token", "expires_at"} (an HS256 JWT signed with billing.admin_jwt_secret), or {"error": {"status", "code", "message", "details", "hint"}}.  An unknown e-mail and a wrong password take the same time and get the same answer; billing.admin_login_max_failures failures within billing.admin_login_window lock the e-mail for billing.admin_login_lock.';
REVOKE ALL ON FUNCTION billing.admin_login(text, text) FROM PUBLIC;

-- The pre-request hook's check of an admin token (api_private.pre_request).
CREATE FUNCTION api_private.check_admin_token() RETURNS void
    STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    LANGUAGE C AS 'MODULE_PATHNAME', 'api_check_admin_token';
COMMENT ON FUNCTION api_private.check_admin_token() IS 'For a request with role billing_admin: the token''s user id must be an enabled admin account (or, with billing.admin_trust_external_tokens, no account at all); else 401.';
REVOKE ALL ON FUNCTION api_private.check_admin_token() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_private.check_admin_token() TO billing_admin;

CREATE FUNCTION api.login(email text, password text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r jsonb;
    e jsonb;
    st text; msg text; det text; hnt text;
BEGIN
    BEGIN
        r := billing.admin_login(email, password);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
        PERFORM api_private.reraise(st, msg, det, hnt);
    END;
    e := r -> 'error';
    IF e IS NULL THEN
        RETURN r;
    END IF;
    PERFORM pg_catalog.set_config('response.status', e ->> 'status', true);
    IF e ? 'retry_after' THEN
        PERFORM pg_catalog.set_config('response.headers',
            pg_catalog.json_build_array(pg_catalog.json_build_object('Retry-After', e ->> 'retry_after'))::text, true);
    END IF;
    RETURN e - 'status' - 'retry_after';
END
$$;
COMMENT ON FUNCTION api.login(text, text) IS
$$Sign in to the admin panel

Arguments: email — a personal admin account's e-mail (accounts are made by a DBA in psql); password — its password.  Returns {token, expires_at}: send the token as "Authorization: Bearer <token>" to the admin endpoints; it expires within billing.admin_token_lifetime (8 hours at most).  A wrong e-mail or password is 401; after billing.admin_login_max_failures failures within billing.admin_login_window the e-mail is locked for billing.admin_login_lock: 429 with Retry-After.$$;
REVOKE ALL ON FUNCTION api.login(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.login(text, text) TO billing_anon, billing_user, billing_admin;

-- Who is signed in (the panel's user menu).
CREATE FUNCTION api.admin_whoami() RETURNS jsonb
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    RETURN (SELECT pg_catalog.jsonb_build_object('id', a.id, 'email', a.email, 'name', a.display_name)
              FROM billing.admin_accounts a
             WHERE a.id::text = pg_catalog.current_setting('request.jwt.claims', true)::jsonb
                                ->> pg_catalog.current_setting('billing.jwt_user_claim'));
COMMENT ON FUNCTION api.admin_whoami() IS
$$The signed-in admin (admin)

No arguments.  {id, email, name} of the admin account behind the token; null for a token from the auth service.$$;
REVOKE ALL ON FUNCTION api.admin_whoami() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.admin_whoami() TO billing_admin;

-- The audit with the person's name.
CREATE OR REPLACE VIEW api.admin_audit WITH (security_invoker) AS
SELECT id, actor, actor_subject, action, target, before, after, at, actor_name FROM billing.admin_audit;

COMMENT ON COLUMN billing.admin_accounts.id IS 'The account id: the user claim of its tokens (may be the person''s user id in the auth service).';
COMMENT ON COLUMN billing.admin_accounts.email IS 'Sign-in e-mail, unique without case.';
COMMENT ON COLUMN billing.admin_accounts.display_name IS 'The name the audit shows for the account''s changes.';
COMMENT ON COLUMN billing.admin_accounts.password_hash IS 'bcrypt hash (pgcrypto crypt(), cost billing.admin_password_cost, at least 10); never shown.';
COMMENT ON COLUMN billing.admin_accounts.created_at IS 'Created (billing.now()).';
COMMENT ON COLUMN billing.admin_accounts.disabled_at IS 'Disabled since; null while enabled.  A disabled account''s tokens are refused at their next request.';
COMMENT ON COLUMN billing.admin_account_list.id IS 'The account id.';
COMMENT ON COLUMN billing.admin_account_list.email IS 'Sign-in e-mail.';
COMMENT ON COLUMN billing.admin_account_list.display_name IS 'The name the audit shows.';
COMMENT ON COLUMN billing.admin_account_list.created_at IS 'Created.';
COMMENT ON COLUMN billing.admin_account_list.disabled_at IS 'Disabled since; null while enabled.';
COMMENT ON COLUMN billing.admin_login_throttle.email IS 'The e-mail tried, lower-cased (known or not).';
COMMENT ON COLUMN billing.admin_login_throttle.failures IS 'Failures since window_start.';
COMMENT ON COLUMN billing.admin_login_throttle.window_start IS 'First failure of the current billing.admin_login_window.';
COMMENT ON COLUMN billing.admin_login_throttle.locked_until IS 'Sign-in with the e-mail is refused (429) until then; null when not locked.';
