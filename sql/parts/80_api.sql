---------------------------------------------------------------------------
-- HTTP API: schema api, served by PostgREST 12.
--
-- Thin functions and views over billing.*: the user id comes from the JWT,
-- errors are mapped to HTTP statuses, per-user rows are guarded by row-level
-- security.  No billing rule lives here.  Roles (cluster-wide, created once):
--   billing_authenticator  PostgREST logs in as this role (NOINHERIT; the
--                          deployment gives it LOGIN and a password)
--   billing_anon           requests without a token: catalog and webhook only
--   billing_user           a signed-in customer (token with a user id claim)
--   billing_admin          a token whose "role" claim is billing_admin
---------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_anon') THEN
        CREATE ROLE billing_anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_user') THEN
        CREATE ROLE billing_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_authenticator') THEN
        CREATE ROLE billing_authenticator NOLOGIN NOINHERIT;
    END IF;
    -- PostgREST switches from the authenticator to one of these per request.
    IF NOT pg_catalog.pg_has_role('billing_authenticator', 'billing_anon', 'MEMBER') THEN
        GRANT billing_anon TO billing_authenticator;
    END IF;
    IF NOT pg_catalog.pg_has_role('billing_authenticator', 'billing_user', 'MEMBER') THEN
        GRANT billing_user TO billing_authenticator;
    END IF;
    IF NOT pg_catalog.pg_has_role('billing_authenticator', 'billing_admin', 'MEMBER') THEN
        GRANT billing_admin TO billing_authenticator;
    END IF;
END
$$;
COMMENT ON ROLE billing_authenticator IS 'PostgREST connects as this role and switches to billing_anon, billing_user or billing_admin per request.';
COMMENT ON ROLE billing_anon IS 'HTTP requests without a token: the public catalog and the Stripe webhook.';
COMMENT ON ROLE billing_user IS 'HTTP requests of a signed-in customer (a JWT with a user id).';

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS
$$Billing HTTP API

Subscriptions to the online cinema's tariff plans: the catalog, quotes, invoices, payment through Stripe Checkout, refunds within the refund window, access checks, and the marketing team's admin functions.  Send the cinema's JWT as "Authorization: Bearer <token>"; the user id is read from its "user" claim (billing.jwt_user_claim), or "sub".  Errors are JSON {code, message, details, hint} where code is the PostgreSQL SQLSTATE: 400 bad input, 401 no or bad token, 403 not allowed, 404 unknown tariff/payment/promo code, 409 wrong state, 502/503 payment provider unavailable.$$;
REVOKE ALL ON SCHEMA api FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO billing_anon, billing_user, billing_admin;

-- Helpers of the endpoints, out of PostgREST's sight (only api is exposed).
CREATE SCHEMA api_private;
COMMENT ON SCHEMA api_private IS 'Helpers of the HTTP API: identity, error mapping.  Not exposed over HTTP.';
REVOKE ALL ON SCHEMA api_private FROM PUBLIC;
GRANT USAGE ON SCHEMA api_private TO billing_anon, billing_user, billing_admin;

---------------------------------------------------------------------------
-- Errors: SQLSTATE -> HTTP status.
--
-- PostgREST's own table sends P0002 and 55000 as 500.  Each endpoint catches
-- what billing raises and re-raises it as PostgREST's "PGRST" error, whose
-- message is the JSON body (keeping the original SQLSTATE as "code") and
-- whose detail carries the status.  States not in this table keep PostgREST's
-- default mapping.
---------------------------------------------------------------------------

CREATE FUNCTION api_private.http_status(state text) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE
        WHEN state IN ('P0002', '42704') THEN 404           -- no such tariff, payment, promo code
        WHEN state LIKE '22%' THEN 400                      -- bad argument, NULL argument
        WHEN state IN ('23502', '23514') THEN 400           -- value rejected by a constraint
        WHEN state IN ('23505', '23P01', '23503') THEN 409  -- duplicate, or still referenced
        WHEN state LIKE '55%' THEN 409                      -- wrong state for the operation
        WHEN state = '42501' THEN 403                       -- not allowed (caller is known)
        WHEN state LIKE '28%' THEN 401                      -- bad credentials / signature
        WHEN state IN ('40001', '40P01') THEN 503           -- lost a race: retry
        WHEN state IN ('08001', '08006') THEN 503           -- neighbour unreachable / timed out
        WHEN state LIKE '08%' THEN 502                      -- neighbour answered with a failure
        WHEN state = '57014' THEN 503                       -- statement timeout
    END;
COMMENT ON FUNCTION api_private.http_status(text) IS 'The HTTP status an endpoint answers for an error with this SQLSTATE (NULL: PostgREST''s default).';

CREATE FUNCTION api_private.raise_http(status int, state text, message text, detail text DEFAULT NULL,
                               hint text DEFAULT NULL, headers jsonb DEFAULT '{}')
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE SQLSTATE 'PGRST' USING
        MESSAGE = pg_catalog.json_build_object('code', state, 'message', message,
                                               'details', detail, 'hint', hint)::text,
        DETAIL = pg_catalog.json_build_object('status', status, 'headers', headers)::text;
END
$$;
COMMENT ON FUNCTION api_private.raise_http(int, text, text, text, text, jsonb) IS 'Ends the request with this HTTP status and a JSON error body {code, message, details, hint}.';

-- Called from each endpoint's exception handler with what it caught.
CREATE FUNCTION api_private.reraise(state text, message text, detail text, hint text)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    status int := api_private.http_status(state);
BEGIN
    IF status IS NOT NULL THEN
        PERFORM api_private.raise_http(status, state, message, nullif(detail, ''), nullif(hint, ''),
            CASE WHEN status = 401 THEN '{"WWW-Authenticate": "Bearer"}'::jsonb ELSE '{}'::jsonb END);
    END IF;
    -- Not ours to map: raise it again as it was (RAISE refuses NULL options).
    detail := coalesce(detail, '');
    hint := coalesce(hint, '');
    IF detail = '' AND hint = '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message;
    ELSIF hint = '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, DETAIL = detail;
    ELSIF detail = '' THEN
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, HINT = hint;
    ELSE
        RAISE EXCEPTION USING ERRCODE = state, MESSAGE = message, DETAIL = detail, HINT = hint;
    END IF;
END
$$;
COMMENT ON FUNCTION api_private.reraise(text, text, text, text) IS 'Re-raises a caught error with the HTTP status of api_private.http_status().';

---------------------------------------------------------------------------
-- Identity: who is calling.
---------------------------------------------------------------------------

-- The user id from the verified JWT (PostgREST checked signature and expiry):
-- the claim named by billing.jwt_user_claim, else "sub".  No usable id is a
-- 401, never a 500.
CREATE FUNCTION api_private.current_user_id() RETURNS uuid
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
    claim text := current_setting('billing.jwt_user_claim');
    value jsonb;
BEGIN
    value := claims -> claim;
    IF value IS NULL OR value = 'null' THEN
        value := claims -> 'sub';
    END IF;
    IF value IS NULL OR value = 'null' THEN
        PERFORM api_private.raise_http(401, '28000', 'the token carries no user id',
            format('Expected the user id in the claim "%s" or "sub".', claim),
            'Sign in again to get a token from the auth service.',
            '{"WWW-Authenticate": "Bearer error=\"invalid_token\""}');
    END IF;
    IF jsonb_typeof(value) <> 'string'
       OR (value #>> '{}') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
        PERFORM api_private.raise_http(401, '28000', 'the token''s user id is not a uuid',
            format('The claim "%s" must be a uuid string.', CASE WHEN claims ? claim THEN claim ELSE 'sub' END),
            NULL, '{"WWW-Authenticate": "Bearer error=\"invalid_token\""}');
    END IF;
    RETURN (value #>> '{}')::uuid;
END
$$;
COMMENT ON FUNCTION api_private.current_user_id() IS 'The calling user''s id from the JWT claim named by billing.jwt_user_claim (fallback "sub"); 401 when there is none.';

-- PostgREST's db-pre-request hook.  The cinema's tokens carry no "role"
-- claim, so PostgREST starts every signed request as billing_anon; a token
-- with a usable user id becomes billing_user here, any other token (no claims
-- at all, no user id, a malformed one) is refused with 401.  Tokens naming
-- billing_admin keep that role.
CREATE FUNCTION api_private.pre_request() RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    IF current_user IN ('billing_anon', 'billing_user')
       AND current_setting('request.headers', true)::jsonb ? 'authorization' THEN
        PERFORM api_private.current_user_id();
        PERFORM pg_catalog.set_config('role', 'billing_user', true);
    END IF;
END
$$;
COMMENT ON FUNCTION api_private.pre_request() IS 'PostgREST db-pre-request: a signed request with a user id runs as billing_user; one without is refused with 401.';

---------------------------------------------------------------------------
-- Public endpoints.
---------------------------------------------------------------------------

CREATE FUNCTION api.ping() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN 'pong';
COMMENT ON FUNCTION api.ping() IS
$$Liveness check

Answers "pong" once PostgREST and the database are both up.  No arguments; any caller.$$;

---------------------------------------------------------------------------
-- Privileges: nothing by default, then exactly what each role calls.
---------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api, api_private FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA api FROM PUBLIC;
-- Helpers the endpoints and policies call in the caller's role.
GRANT EXECUTE ON FUNCTION api_private.current_user_id(), api_private.pre_request(), api_private.http_status(text),
    api_private.raise_http(int, text, text, text, text, jsonb), api_private.reraise(text, text, text, text)
    TO billing_anon, billing_user, billing_admin;
GRANT EXECUTE ON FUNCTION api.ping() TO billing_anon, billing_user, billing_admin;
