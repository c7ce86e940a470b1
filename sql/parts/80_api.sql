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
--   billing_admin          a token whose "role" claim is billing_admin, with a user id
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
COMMENT ON ROLE billing_anon IS 'HTTP requests without a token: the public catalog and the providers'' notifications (Stripe, YooKassa).';
COMMENT ON ROLE billing_user IS 'HTTP requests of a signed-in customer (a JWT with a user id).';

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS
$$Billing HTTP API

Subscriptions to the online cinema's tariff plans: the catalog, quotes, invoices, payment through the provider's payment page (YooKassa for roubles, Stripe), refunds within the refund window, access checks, and the marketing team's admin functions.  Send the cinema's JWT as "Authorization: Bearer <token>"; the user id is read from its "user" claim (billing.jwt_user_claim), or "sub".  Errors are JSON {code, message, details, hint} where code is the PostgreSQL SQLSTATE: 400 bad input, 401 no or bad token, 403 not allowed, 404 unknown tariff/payment/promo code, 409 wrong state, 502/503 payment provider unavailable.$$;
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
        WHEN state LIKE '28%' THEN 401                      -- no usable identity in the token
        WHEN state = '54000' THEN 413                       -- webhook body too large
        WHEN state IN ('40001', '40P01') THEN 503           -- lost a race: retry
        WHEN state IN ('08001', '08006') THEN 503           -- neighbour unreachable / timed out
        WHEN state LIKE '08%' THEN 502                      -- neighbour answered with a failure
        WHEN state = '57014' THEN 503                       -- statement timeout
        WHEN state = '25006' THEN 503                       -- a standby: the primary is elsewhere
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

-- The user id from the verified JWT (api.c): the claim named by
-- billing.jwt_user_claim, else "sub"; no usable id is a 401, never a 500.
CREATE FUNCTION api_private.current_user_id() RETURNS uuid
    LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'api_current_user_id';
COMMENT ON FUNCTION api_private.current_user_id() IS 'The calling user''s id from the JWT claim named by billing.jwt_user_claim (fallback "sub"); 401 when there is none.';

-- PostgREST's db-pre-request hook.  The cinema's tokens carry no "role"
-- claim, so PostgREST starts every signed request as billing_anon; a token
-- with a usable user id becomes billing_user here, any other token (no claims
-- at all, no user id, a malformed one) is refused with 401.  Tokens naming
-- billing_admin keep that role, but only with a usable user id as well: every
-- admin shares that role over HTTP, and the audit names the person by it.
CREATE FUNCTION api_private.pre_request() RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    signed boolean;
    path text;
    allowed boolean;
BEGIN
    -- An admin token must carry a uuid user id (current_user_id) of an
    -- enabled admin account (check_admin_token, admin_login.c).
    IF current_user = 'billing_admin' THEN
        PERFORM api_private.current_user_id();
        PERFORM api_private.check_admin_token();
        RETURN;
    ELSIF current_user NOT IN ('billing_anon', 'billing_user') THEN
        RETURN;
    END IF;
    signed := current_setting('request.headers', true)::jsonb ? 'authorization';
    IF signed THEN
        PERFORM api_private.current_user_id();
        PERFORM pg_catalog.set_config('role', 'billing_user', true);
    END IF;

    -- Say plainly why a request is refused, instead of PostgREST's "permission
    -- denied for function ...", which it also sends as 401 to a signed-in user
    -- (it takes the request for an anonymous one: no role claim).  The path
    -- names a function (/rpc/<name>) or a view (/<name>) of schema api; a name
    -- that does not exist is left to PostgREST (404).
    path := current_setting('request.path', true);
    IF path LIKE '/rpc/%' THEN
        SELECT bool_or(pg_catalog.has_function_privilege(p.oid, 'EXECUTE')) INTO allowed
        FROM pg_catalog.pg_proc p
        WHERE p.proname = substr(path, 6) AND p.pronamespace = 'api'::regnamespace;
    ELSIF path ~ '^/[^/]+$' THEN
        SELECT pg_catalog.has_table_privilege(c.oid,
                   CASE current_setting('request.method', true)
                       WHEN 'POST' THEN 'INSERT' WHEN 'PUT' THEN 'INSERT'
                       WHEN 'PATCH' THEN 'UPDATE' WHEN 'DELETE' THEN 'DELETE'
                       ELSE 'SELECT' END) INTO allowed
        FROM pg_catalog.pg_class c
        WHERE c.relname = substr(path, 2) AND c.relnamespace = 'api'::regnamespace;
    END IF;
    IF coalesce(allowed, true) THEN
        RETURN;
    ELSIF signed THEN
        PERFORM api_private.raise_http(403, '42501', 'permission denied',
            format('%s %s is not open to customers.', current_setting('request.method', true), path),
            'Admin endpoints need a token whose "role" claim is billing_admin.');
    ELSE
        PERFORM api_private.raise_http(401, '42501', 'sign-in required',
            format('%s %s needs a token.', current_setting('request.method', true), path),
            'Send the token from the auth service as "Authorization: Bearer <token>".',
            '{"WWW-Authenticate": "Bearer"}');
    END IF;
END
$$;
COMMENT ON FUNCTION api_private.pre_request() IS 'PostgREST db-pre-request: a signed request with a user id runs as billing_user, a token without one is 401 (an admin token too: its user id names the person in the audit); a request for an endpoint the role may not use is 401 without a token, 403 with one.';

---------------------------------------------------------------------------
-- Public endpoints.
---------------------------------------------------------------------------

CREATE FUNCTION api.ping() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN 'pong';
COMMENT ON FUNCTION api.ping() IS
$$Liveness check

Answers "pong" once PostgREST and the database are both up.  No arguments; any caller.$$;


CREATE VIEW api.tariffs WITH (security_barrier) AS
SELECT code, title, description, monthly_price, currency
FROM marketing.tariffs
WHERE active;
COMMENT ON VIEW api.tariffs IS
$$Tariff plans on sale

The active tariffs; anyone may read them.  Prices are in minor units (kopecks, cents) of the currency.$$;
COMMENT ON COLUMN api.tariffs.code IS 'Permanent code of the tariff: the "tariff" argument of quote, create_invoice and has_access.';
COMMENT ON COLUMN api.tariffs.title IS 'Title shown to customers (the auth service''s role name).';
COMMENT ON COLUMN api.tariffs.description IS 'What the tariff gives.';
COMMENT ON COLUMN api.tariffs.monthly_price IS 'Price of one month in minor units of the currency.';
COMMENT ON COLUMN api.tariffs.currency IS 'ISO 4217 currency code.';

-- The decimals of each currency, for the admin panel: it formats every amount
-- by these, and converts the major units a person types back to minor units
-- by them.  (It calls billing.currencies() in the reader's role, and the user
-- roles reach no billing function.)
CREATE VIEW api.currencies AS
SELECT code, exponent
FROM billing.currencies();
COMMENT ON VIEW api.currencies IS
$$Currencies and their decimals (admin)

Every currency a tariff may be priced in, with the decimals of its minor unit: amounts in the api (prices, totals, discounts) are integers in minor units, so 42330 in RUB (exponent 2) is 423.30 roubles and 500 in JPY (exponent 0) is 500 yen.$$;
COMMENT ON COLUMN api.currencies.code IS 'ISO 4217 code, upper case.';
COMMENT ON COLUMN api.currencies.exponent IS 'Decimal places of the minor unit: an amount of N minor units is N / 10^exponent in the currency.';

CREATE VIEW api.months_discounts AS
SELECT months, percent
FROM marketing.months_discounts;
COMMENT ON VIEW api.months_discounts IS
$$Discounts for buying several months

For a purchase of N months the tier with the largest months <= N applies (after a personal discount, never together with a promo code).$$;
COMMENT ON COLUMN api.months_discounts.months IS 'Purchases of at least this many months get the discount.';
COMMENT ON COLUMN api.months_discounts.percent IS 'Discount in percent, two decimals.';

-- The raw body reaches billing.stripe_webhook byte for byte: a function with
-- a single unnamed json parameter gets PostgREST's request body as it came.
CREATE FUNCTION api.stripe_webhook(json) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.stripe_webhook($1,
        current_setting('request.headers', true)::json ->> 'stripe-signature');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.stripe_webhook(json) IS
$$Stripe webhook endpoint

For Stripe only: the body is the event exactly as Stripe sent it, verified against the Stripe-Signature header (HMAC-SHA256 with one of billing.stripe_webhook_secrets, its timestamp within billing.stripe_webhook_tolerance), stored once by event id and applied to the payment.  Answers what it did; a bad or stale signature is 403 and changes nothing.$$;

-- YooKassa signs nothing: the body is only a hint of which object to read
-- back.  The sender is the last address the proxy in front of PostgREST
-- appended to X-Forwarded-For (the one hop we can trust), if any.
CREATE FUNCTION api.yookassa_webhook(json) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fwd text := current_setting('request.headers', true)::json ->> 'x-forwarded-for';
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.yookassa_webhook($1,
        nullif(pg_catalog.btrim(pg_catalog.split_part(fwd, ',',
               pg_catalog.array_length(pg_catalog.string_to_array(fwd, ','), 1))), ''));
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.yookassa_webhook(json) IS
$$YooKassa notification endpoint

For YooKassa only: {type: "notification", event, object}.  The body is not trusted: the payment or refund it names is read back from the YooKassa API and applied as the poller would; a notification that names nothing of ours, or that the API contradicts, changes nothing.  Answers 200 once the result is committed; 502/503 when YooKassa cannot be reached (YooKassa delivers again).  With billing.yookassa_notify_from set, other senders (X-Forwarded-For) get 403.$$;

---------------------------------------------------------------------------
-- A signed-in user's endpoints.  SECURITY DEFINER: billing's functions take
-- any user id, so users reach them only through these, which pass the id
-- from the token.
---------------------------------------------------------------------------

CREATE FUNCTION api.quote(tariff text, months int, promo_code text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.quote(uid, tariff, months, promo_code);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.quote(text, int, text) IS
$$Price of a purchase, for the signed-in user

Arguments: tariff — the tariff's code; months — how many months (1..billing.max_months); promo_code — optional, case-insensitive.  Returns {tariff, months, currency, list_price, personal_percent, months_percent, promo_percent, applied, total, ...}: personal and months discounts apply one after the other, a promo code never stacks with them and is used only when strictly cheaper ("applied" says which).  Amounts in minor units.  Changes nothing.  404 unknown tariff or promo code, 400 bad months, 409 inactive tariff or unusable promo code.$$;

CREATE FUNCTION api.create_invoice(tariff text, months int, promo_code text DEFAULT NULL) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.create_invoice(uid, tariff, months, promo_code);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.create_invoice(text, int, text) IS
$$Invoice a purchase, for the signed-in user

Arguments: tariff — the tariff's code; months — how many months; promo_code — optional.  Stores the quote as a payment in status "invoiced" and returns its id (see my_payments); a promo code is reserved until the invoice is paid, canceled or expires.  A zero total is paid at once.  Errors as for quote.$$;

CREATE FUNCTION api.checkout(payment_id uuid, success_url text DEFAULT NULL, cancel_url text DEFAULT NULL,
                             auto_renew boolean DEFAULT false)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    url text;
    st text; msg text; det text; hnt text;
BEGIN
    url := billing.checkout(uid, payment_id, success_url, cancel_url, NULL, auto_renew);
    PERFORM pg_catalog.set_config('response.headers',
        pg_catalog.json_build_array(pg_catalog.json_build_object('Location', url))::text, true);
    RETURN url;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.checkout(uuid, text, text, boolean) IS
$$Pay an invoice: the redirect to the payment page

Arguments: payment_id — the invoice (one of the user's own); success_url — optional, where the payment page sends the customer after paying (default billing.stripe_success_url or billing.yookassa_return_url); cancel_url — optional, where it sends a customer who gives up (default billing.stripe_cancel_url; YooKassa's page has one return address); auto_renew — optional, true to renew by itself with the card paid with (see set_auto_renew).  Opens the payment page at the provider billing.providers chooses for the currency (YooKassa for roubles, Stripe Checkout) and returns its URL, also as the Location header; the payment becomes "pending".  Calling it again returns the same URL.  404 not the user's payment, 409 not payable, 502/503 the provider unavailable (the payment stays payable).$$;

CREATE FUNCTION api.confirm_payment(payment_id uuid) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.confirm_payment(uid, payment_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.confirm_payment(uuid) IS
$$Back from the payment page

Arguments: payment_id — the user's payment.  Asks the payment's provider about it now (no need to wait for the notification) and settles it; returns the payment's status: "paid", "pending" (not finished yet), "expired", "failed".$$;

CREATE FUNCTION api.cancel_payment(payment_id uuid) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.cancel_payment(uid, payment_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.cancel_payment(uuid) IS
$$Cancel an unpaid payment, or refund a paid one within the refund window

Arguments: payment_id — the user's payment.  An unpaid payment becomes "canceled" (its checkout is closed at the provider); a paid one within billing.refund_window of its payment is refunded ("refund_pending" or "refunded") and its months are taken off the subscription.  Returns the status.  404 not the user's payment, 409 too late or wrong status.$$;

CREATE FUNCTION api.set_auto_renew(tariff text, enabled boolean) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.set_auto_renew(uid, tariff, enabled);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.set_auto_renew(text, boolean) IS
$$Turn automatic renewal of a subscription on or off

Arguments: tariff — the tariff's code; enabled — true or false.  Off keeps the paid term and stops the next charge; on needs a card saved by a checkout with auto_renew.  Returns the subscription's renewal state (auto_renew, next_charge_at, card_brand, card_last4, ...).  404 no subscription to that tariff, 409 ended, no saved card, or the tariff is off sale.$$;

CREATE FUNCTION api.has_access(tariff text) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.has_access(uid, tariff);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.has_access(text) IS
$$Does the signed-in user have access to a tariff?

Arguments: tariff — the tariff's code.  True while the user's subscription is active or in its grace period.  Use GET /rpc/has_access?tariff=<code>.$$;

CREATE FUNCTION api.payment_info() RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid := api_private.current_user_id();
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.payment_info(uid);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.payment_info() IS
$$The signed-in user's subscriptions and payments in one document

No arguments.  Subscriptions with their status judged now, end and grace end; payments with amounts and statuses.$$;

---------------------------------------------------------------------------
-- The user's own rows: views that run as the caller (security_invoker), so
-- row-level security on the tables decides what anyone sees, whatever
-- filter they add.
---------------------------------------------------------------------------

ALTER TABLE billing.payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.subscriptions ENABLE ROW LEVEL SECURITY;
-- The owner (the functions, all SECURITY DEFINER) is not subject to these.
CREATE POLICY payments_own ON billing.payments FOR SELECT TO billing_user
    USING (user_id = api_private.current_user_id());
CREATE POLICY subscriptions_own ON billing.subscriptions FOR SELECT TO billing_user
    USING (user_id = api_private.current_user_id());
-- Admins keep whatever their grants give them.
CREATE POLICY payments_admin ON billing.payments TO billing_admin USING (true) WITH CHECK (true);
CREATE POLICY subscriptions_admin ON billing.subscriptions TO billing_admin USING (true) WITH CHECK (true);

GRANT USAGE ON SCHEMA billing, marketing TO billing_user;
GRANT SELECT (id, user_id, tariff_code, tariff_title, months, currency, monthly_price, list_price,
              personal_percent, months_percent, promo_percent, promo_code, applied, total, status,
              created_at, updated_at, expires_at, paid_at, closed_at, provider_url)
    ON billing.payments TO billing_user;
GRANT SELECT (id, user_id, tariff_id, status, ends_at, grace_ends_at, created_at, updated_at)
    ON billing.subscriptions TO billing_user;
GRANT SELECT (id, code, title) ON marketing.tariffs TO billing_user;

CREATE VIEW api.my_payments WITH (security_invoker) AS
SELECT p.id, p.user_id, p.tariff_code, p.tariff_title, p.months, p.currency,
       p.monthly_price, p.list_price, p.personal_percent, p.months_percent, p.promo_percent,
       p.promo_code, p.applied, p.total, p.status, p.created_at, p.updated_at, p.expires_at,
       p.paid_at, p.closed_at, p.provider_url AS checkout_url
FROM billing.payments p
WHERE p.user_id = api_private.current_user_id();
COMMENT ON VIEW api.my_payments IS
$$The signed-in user's payments

Only the caller's own rows, whatever the filter.  Amounts in minor units; status is one of invoiced, pending, paid, canceled, expired, failed, refund_pending, refunded.$$;
COMMENT ON COLUMN api.my_payments.id IS 'Payment id (the payment_id argument of checkout, confirm_payment, cancel_payment).';
COMMENT ON COLUMN api.my_payments.user_id IS 'The buyer: always the caller.';
COMMENT ON COLUMN api.my_payments.tariff_code IS 'Tariff bought (as it was at the time of the invoice).';
COMMENT ON COLUMN api.my_payments.tariff_title IS 'Tariff title at the time of the invoice.';
COMMENT ON COLUMN api.my_payments.months IS 'Months bought.';
COMMENT ON COLUMN api.my_payments.currency IS 'ISO 4217 currency code.';
COMMENT ON COLUMN api.my_payments.monthly_price IS 'Monthly price quoted.';
COMMENT ON COLUMN api.my_payments.list_price IS 'Monthly price × months, before discounts.';
COMMENT ON COLUMN api.my_payments.personal_percent IS 'Personal discount the user had.';
COMMENT ON COLUMN api.my_payments.months_percent IS 'Months discount tier that applied.';
COMMENT ON COLUMN api.my_payments.promo_percent IS 'Promo code discount (0 without a code).';
COMMENT ON COLUMN api.my_payments.promo_code IS 'Promo code used, if any.';
COMMENT ON COLUMN api.my_payments.applied IS 'Which discount won: discounts, promo or none.';
COMMENT ON COLUMN api.my_payments.total IS 'Amount to pay (minor units).';
COMMENT ON COLUMN api.my_payments.status IS 'invoiced, pending, paid, canceled, expired, failed, refund_pending or refunded.';
COMMENT ON COLUMN api.my_payments.created_at IS 'When the invoice was made.';
COMMENT ON COLUMN api.my_payments.updated_at IS 'Last change.';
COMMENT ON COLUMN api.my_payments.expires_at IS 'An unpaid invoice expires then.';
COMMENT ON COLUMN api.my_payments.paid_at IS 'When the provider took the money.';
COMMENT ON COLUMN api.my_payments.closed_at IS 'When it was canceled, expired, failed or refunded.';
COMMENT ON COLUMN api.my_payments.checkout_url IS 'The payment page, once checkout was called.';

CREATE VIEW api.my_subscriptions WITH (security_invoker) AS
SELECT s.id, s.user_id, t.code AS tariff_code, t.title AS tariff_title, s.status,
       s.ends_at, s.grace_ends_at, s.created_at, s.updated_at
FROM billing.subscriptions s
JOIN marketing.tariffs t ON t.id = s.tariff_id
WHERE s.user_id = api_private.current_user_id();
COMMENT ON VIEW api.my_subscriptions IS
$$The signed-in user's subscriptions

One per tariff bought.  Access continues until grace_ends_at; status is updated by the expiry sweep, on billing.expiry_schedule (GET /rpc/has_access judges the present moment).$$;
COMMENT ON COLUMN api.my_subscriptions.id IS 'Subscription id.';
COMMENT ON COLUMN api.my_subscriptions.user_id IS 'The subscriber: always the caller.';
COMMENT ON COLUMN api.my_subscriptions.tariff_code IS 'The tariff.';
COMMENT ON COLUMN api.my_subscriptions.tariff_title IS 'The tariff''s title.';
COMMENT ON COLUMN api.my_subscriptions.status IS 'active, grace (ended, access continues) or blocked.';
COMMENT ON COLUMN api.my_subscriptions.ends_at IS 'End of the paid term.';
COMMENT ON COLUMN api.my_subscriptions.grace_ends_at IS 'End of the grace period: access ends then unless renewed.';
COMMENT ON COLUMN api.my_subscriptions.created_at IS 'First purchase.';
COMMENT ON COLUMN api.my_subscriptions.updated_at IS 'Last change.';

---------------------------------------------------------------------------
-- Admin endpoints (token role billing_admin).  They run as the admin
-- (SECURITY INVOKER): billing_admin's own grants apply and the audit names it.
---------------------------------------------------------------------------

CREATE FUNCTION api.create_tariff(code text, title text, monthly_price bigint, currency text DEFAULT 'RUB', description text DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.create_tariff(code, title, monthly_price, currency, description);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.create_tariff(text, text, bigint, text, text) IS
$$Create a tariff (admin)

Arguments: code — permanent code, [a-z0-9_-]; title — shown to customers and used as the auth service's role name; monthly_price — minor units; currency — ISO 4217 (default RUB); description — optional.  Queues the role's creation in the auth service.  Returns the tariff.  409 the code exists, 400 bad values.$$;

CREATE FUNCTION api.update_tariff(code text, title text DEFAULT NULL, description text DEFAULT NULL, active boolean DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.update_tariff(code, title, description, active);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.update_tariff(text, text, text, boolean) IS
$$Change a tariff's title, description or active flag (admin)

Arguments: code — the tariff; title — new title; description — new description (empty clears it); active — whether it is on sale; an absent or null argument keeps the field.  A new title renames the auth service's role.  Returns the tariff.  404 unknown tariff.$$;

CREATE FUNCTION api.set_tariff_price(code text, monthly_price bigint) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.set_tariff_price(code, monthly_price);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.set_tariff_price(text, bigint) IS
$$Change a tariff's monthly price (admin)

Arguments: code — the tariff; monthly_price — minor units.  Recorded in the price history; existing invoices keep their price.  Returns the tariff.$$;

CREATE FUNCTION api.set_personal_discount(user_id uuid, percent numeric, valid_until timestamptz DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.set_personal_discount(user_id, percent, valid_until);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.set_personal_discount(uuid, numeric, timestamptz) IS
$$Give a user a personal discount (admin)

Arguments: user_id — the user; percent — in (0, 100], two decimals; valid_until — optional end.  Replaces the user's previous one.  Returns the discount.$$;

CREATE FUNCTION api.remove_personal_discount(user_id uuid) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.remove_personal_discount(user_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.remove_personal_discount(uuid) IS
$$Remove a user's personal discount (admin)

Arguments: user_id — the user.  Returns the removed discount.  404 when there is none.$$;

CREATE FUNCTION api.set_months_discount(months int, percent numeric) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.set_months_discount(months, percent);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.set_months_discount(int, numeric) IS
$$Set the discount for buying several months (admin)

Arguments: months — purchases of at least this many months; percent — in (0, 100].  Returns the tier.$$;

CREATE FUNCTION api.remove_months_discount(months int) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.remove_months_discount(months);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.remove_months_discount(int) IS
$$Remove a months discount tier (admin)

Arguments: months — the tier.  Returns the removed tier.  404 when there is none.$$;

CREATE FUNCTION api.create_promo_code(code text, percent numeric, valid_until timestamptz, max_redemptions int DEFAULT NULL, tariff text DEFAULT NULL, valid_from timestamptz DEFAULT NULL) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.create_promo_code(code, percent, valid_until, max_redemptions, tariff, valid_from);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.create_promo_code(text, numeric, timestamptz, int, text, timestamptz) IS
$$Create a promo code (admin)

Arguments: code — case-insensitive, unique among live codes; percent — in (0, 100]; valid_until — end; max_redemptions — optional limit of uses overall; tariff — optional: only for this tariff's code; valid_from — optional start.  Each user may use a code once.  Returns the code.  409 the code exists.$$;

CREATE FUNCTION api.delete_promo_code(code text) RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.delete_promo_code(code);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.delete_promo_code(text) IS
$$Delete a promo code (admin)

Arguments: code — the code.  A soft delete: it can no longer be used, payments that used it still show it.  Returns the code.  404 unknown code.$$;

CREATE FUNCTION api.settle_payment(payment_id uuid, outcome text, provider_ref text DEFAULT NULL, at timestamptz DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.admin_settle_payment(payment_id, outcome, provider_ref, at);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.settle_payment(uuid, text, text, timestamptz) IS
$$Record what happened to a payment at the provider (admin)

Arguments: payment_id — any payment; outcome — paid, canceled, expired, failed or refunded; provider_ref — optional reference at the provider; at — when it happened there (default now).  Idempotent; recorded with source "admin" and, when it changed something, in the admin audit (the payment before and after).  Returns the status.  409 impossible transition (nothing changes).$$;

CREATE FUNCTION api.cancel_payment_for(user_id uuid, payment_id uuid) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.admin_cancel_payment(user_id, payment_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.cancel_payment_for(uuid, uuid) IS
$$Cancel or refund a payment on a user's behalf (admin)

Arguments: user_id — the buyer; payment_id — the payment.  As the user's own cancel_payment: unpaid → canceled, paid within the refund window → refunded; recorded with source "admin" and in the admin audit (the payment before and after).  Returns the status.$$;

CREATE FUNCTION api.user_payment_info(user_id uuid) RETURNS jsonb
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.admin_user_info(user_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.user_payment_info(uuid) IS
$$A user's subscriptions and payments (admin)

Arguments: user_id — the user.  The same document as the user's own payment_info, each subscription with renew_failures (declined automatic charges of the present end of term) and auto_renew_changed_at too.$$;

CREATE FUNCTION api.run_expiry() RETURNS jsonb
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.admin_run_expiry();
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.run_expiry() IS
$$Run the expiry and grace sweep now (admin)

No arguments.  What pg_cron runs on billing.expiry_schedule: active subscriptions past their end go to grace, grace past its end to blocked, reminders before the end.  Recorded in the admin audit with the counts.  Returns the counts.$$;

-- What admins read: run as the admin (security_invoker), so billing_admin's
-- grants decide.
CREATE VIEW api.admin_payments WITH (security_invoker) AS
SELECT * FROM billing.admin_payments;
COMMENT ON VIEW api.admin_payments IS
$$Every payment (admin)

Buyer (user id, e-mail when known), tariff, months, amounts and discounts, status, times, and the provider and its references.  Filter with PostgREST's operators, e.g. ?status=eq.paid&created_at=gte.2026-01-01.$$;

CREATE VIEW api.admin_tariffs WITH (security_invoker) AS
SELECT id, code, title, description, monthly_price, currency, active, auth_role_id, created_at, updated_at
FROM marketing.tariffs;
COMMENT ON VIEW api.admin_tariffs IS
$$Every tariff, active or not (admin)

With the auth service's role id (null until the role exists).$$;

CREATE VIEW api.admin_promo_codes WITH (security_invoker) AS
SELECT pc.id, pc.code, pc.percent, pc.valid_from, pc.valid_until, t.code AS tariff_code,
       pc.max_redemptions, pc.redemptions, pc.created_by, pc.created_at, pc.deleted_at
FROM marketing.promo_codes pc
LEFT JOIN marketing.tariffs t ON t.id = pc.tariff_id;
COMMENT ON COLUMN api.admin_promo_codes.tariff_code IS 'Only for this tariff (its code); null: any tariff.';
COMMENT ON VIEW api.admin_promo_codes IS
$$Every promo code, deleted ones included (admin)

redemptions counts open reservations and paid uses.$$;

CREATE VIEW api.admin_personal_discounts WITH (security_invoker) AS
SELECT user_id, percent, valid_until, updated_at FROM marketing.personal_discounts;
COMMENT ON VIEW api.admin_personal_discounts IS 'Every personal discount (admin).';

CREATE VIEW api.admin_audit WITH (security_invoker) AS
SELECT id, actor, actor_subject, action, target, before, after, at FROM billing.admin_audit;
COMMENT ON VIEW api.admin_audit IS
$$The audit of admin changes (admin)

Who (database role, and the token's user id over HTTP), what, the row before and after, when.  Catalog changes, payments settled or canceled by an admin, manual expiry sweeps, requeued or discarded dead messages.  Append-only.$$;

CREATE VIEW api.outbox_status WITH (security_invoker) AS
SELECT * FROM billing.outbox_status;
COMMENT ON VIEW api.outbox_status IS
$$Delivery backlog to the auth and notification services (admin)

Per kind of message: pending, in flight and dead counts, the age of the oldest undelivered one, the last delivery.$$;

CREATE VIEW api.outbox_dead WITH (security_invoker) AS
SELECT * FROM billing.outbox_dead;
COMMENT ON VIEW api.outbox_dead IS
$$Dead messages (admin)

Messages to the auth or notification service parked after a permanent error or too many attempts, with the last error.  Requeue them with POST /rpc/outbox_retry_dead once the cause is fixed.$$;

CREATE FUNCTION api.outbox_retry_dead(ids bigint[] DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    RETURN billing.outbox_retry_dead(ids);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM api_private.reraise(st, msg, det, hnt);
END
$$;
COMMENT ON FUNCTION api.outbox_retry_dead(bigint[]) IS
$$Requeue dead messages (admin)

Arguments: ids — optional, the outbox_dead ids to requeue (absent: all).  Their attempts start again; audited.  Returns how many were requeued.$$;

---------------------------------------------------------------------------
-- Privileges: nothing by default, then exactly what each role calls.
---------------------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA api, api_private FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA api FROM PUBLIC;
-- Helpers the endpoints, the hook and the policies call in the caller's role.
GRANT EXECUTE ON FUNCTION api_private.current_user_id(), api_private.pre_request(),
    api_private.http_status(text), api_private.raise_http(int, text, text, text, text, jsonb),
    api_private.reraise(text, text, text, text)
    TO billing_anon, billing_user, billing_admin;

GRANT EXECUTE ON FUNCTION api.ping(), api.stripe_webhook(json), api.yookassa_webhook(json)
    TO billing_anon, billing_user, billing_admin;
GRANT SELECT ON api.tariffs, api.months_discounts TO billing_anon, billing_user, billing_admin;

GRANT EXECUTE ON FUNCTION api.quote(text, int, text), api.create_invoice(text, int, text),
    api.checkout(uuid, text, text, boolean), api.confirm_payment(uuid), api.cancel_payment(uuid),
    api.has_access(text), api.payment_info(), api.set_auto_renew(text, boolean)
    TO billing_user;
GRANT SELECT ON api.my_payments, api.my_subscriptions TO billing_user;

GRANT EXECUTE ON FUNCTION
    api.create_tariff(text, text, bigint, text, text),
    api.update_tariff(text, text, text, boolean),
    api.set_tariff_price(text, bigint),
    api.set_personal_discount(uuid, numeric, timestamptz),
    api.remove_personal_discount(uuid),
    api.set_months_discount(int, numeric),
    api.remove_months_discount(int),
    api.create_promo_code(text, numeric, timestamptz, int, text, timestamptz),
    api.delete_promo_code(text),
    api.settle_payment(uuid, text, text, timestamptz),
    api.cancel_payment_for(uuid, uuid),
    api.user_payment_info(uuid),
    api.run_expiry(),
    api.outbox_retry_dead(bigint[])
    TO billing_admin;
GRANT SELECT ON api.admin_payments, api.admin_tariffs, api.admin_promo_codes,
    api.admin_personal_discounts, api.admin_audit, api.outbox_status, api.outbox_dead,
    api.currencies
    TO billing_admin;
