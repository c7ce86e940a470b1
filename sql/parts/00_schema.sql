-- billing: the schema every capability shares.  Assembled into
-- billing--<version>.sql by the Makefile from sql/parts/*.sql in name order.
\echo Use "CREATE EXTENSION billing CASCADE" to load this file. \quit

-- Schemas: marketing is what the marketing team edits, billing is the ledger.
CREATE SCHEMA marketing;
REVOKE ALL ON SCHEMA billing, marketing FROM PUBLIC;

-- Roles are cluster-wide, so they outlive the extension; create them once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'billing_admin') THEN
        CREATE ROLE billing_admin NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE billing_admin IS 'The marketing team and billing operators: catalog, discounts, promo codes, payments view.';

GRANT USAGE ON SCHEMA billing, marketing TO billing_admin;

-- The one clock (clock.c).
CREATE FUNCTION billing.now() RETURNS timestamptz
    STABLE PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_now_sql';
COMMENT ON FUNCTION billing.now() IS 'Current time for all billing logic: billing.test_clock when set (superuser only), else now().';

CREATE FUNCTION billing.add_months(anchor timestamptz, months int) RETURNS timestamptz
    STABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_add_months_sql';
COMMENT ON FUNCTION billing.add_months(timestamptz, int) IS 'anchor + months calendar months in billing.time_zone, the day clamped to the month''s end (billing-cycle anchor).';

GRANT EXECUTE ON FUNCTION billing.now(), billing.add_months(timestamptz, int) TO PUBLIC;

---------------------------------------------------------------------------
-- Catalog (marketing)
---------------------------------------------------------------------------

CREATE TABLE marketing.tariffs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     text,
    monthly_price   bigint NOT NULL CHECK (monthly_price >= 0),
    currency        char(3) NOT NULL DEFAULT 'RUB' CHECK (currency ~ '^[A-Z]{3}$'),
    active          boolean NOT NULL DEFAULT true,
    auth_role_id    text,                       -- filled when the auth service created the role
    created_at      timestamptz NOT NULL DEFAULT billing.now(),
    updated_at      timestamptz NOT NULL DEFAULT billing.now()
);
COMMENT ON TABLE marketing.tariffs IS 'Tariff plans ("priority films"); each is a role in the auth service, referenced by id.';

CREATE TABLE marketing.tariff_price_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tariff_id       bigint NOT NULL REFERENCES marketing.tariffs,
    old_price       bigint CHECK (old_price >= 0),        -- NULL for the first price
    new_price       bigint NOT NULL CHECK (new_price >= 0),
    changed_by      name NOT NULL DEFAULT current_user,
    changed_at      timestamptz NOT NULL DEFAULT billing.now()
);
CREATE INDEX ON marketing.tariff_price_history (tariff_id, changed_at);

CREATE TABLE marketing.personal_discounts (
    user_id         uuid PRIMARY KEY,
    percent         numeric(5,2) NOT NULL CHECK (percent > 0 AND percent <= 100),
    valid_until     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT billing.now()
);

CREATE TABLE marketing.months_discounts (
    months          int PRIMARY KEY CHECK (months >= 1),
    percent         numeric(5,2) NOT NULL CHECK (percent > 0 AND percent <= 100)
);

CREATE TABLE marketing.promo_codes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code            text NOT NULL CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    percent         numeric(5,2) NOT NULL CHECK (percent > 0 AND percent <= 100),
    valid_from      timestamptz,
    valid_until     timestamptz NOT NULL,
    tariff_id       bigint REFERENCES marketing.tariffs,
    max_redemptions int CHECK (max_redemptions > 0),
    -- invoices holding a reservation plus paid uses; the limit holds in the row itself
    redemptions     int NOT NULL DEFAULT 0 CHECK (redemptions >= 0),
    created_by      name NOT NULL DEFAULT current_user,
    created_at      timestamptz NOT NULL DEFAULT billing.now(),
    deleted_at      timestamptz,
    CHECK (valid_from IS NULL OR valid_from < valid_until),
    CHECK (max_redemptions IS NULL OR redemptions <= max_redemptions)
);
-- Codes are case-insensitive; a deleted code frees its name but keeps its row.
CREATE UNIQUE INDEX promo_codes_live_code ON marketing.promo_codes (lower(code)) WHERE deleted_at IS NULL;

---------------------------------------------------------------------------
-- Ledger (billing)
---------------------------------------------------------------------------

-- Single-column rules of the ledger tables are domains, not table CHECKs:
-- PostgreSQL re-reads and re-compiles every CHECK constraint of a table
-- (from its stored text) in each statement that writes the table, and an
-- UPDATE re-checks all of them, whereas a domain's constraints are loaded
-- once into the type cache and checked only for the columns a statement
-- assigns.  Same rules, same SQLSTATE (23514); the hot paths (create_invoice,
-- settle_payment) pay for them far less.  Rules that relate two columns stay
-- table CHECKs.
CREATE DOMAIN billing.amount AS bigint CHECK (VALUE >= 0);
COMMENT ON DOMAIN billing.amount IS 'Money in minor units, never negative.';
CREATE DOMAIN billing.percent AS numeric(5,2) CHECK (VALUE BETWEEN 0 AND 100);
COMMENT ON DOMAIN billing.percent IS 'A discount in percent, 0 to 100, two decimals.';
CREATE DOMAIN billing.purchase_months AS int CHECK (VALUE >= 1);
CREATE DOMAIN billing.term_months AS int CHECK (VALUE >= 0);
CREATE DOMAIN billing.currency_code AS char(3) CHECK (VALUE ~ '^[A-Z]{3}$');
COMMENT ON DOMAIN billing.currency_code IS 'ISO 4217 code, three capital letters.';
CREATE DOMAIN billing.discount_applied AS text CHECK (VALUE IN ('discounts', 'promo', 'none'));
CREATE DOMAIN billing.payment_status AS text CHECK (VALUE IN
    ('invoiced', 'pending', 'paid', 'canceled', 'expired', 'failed', 'refund_pending', 'refunded'));
CREATE DOMAIN billing.event_source AS text CHECK (VALUE IN ('api', 'webhook', 'poll', 'admin', 'system'));
CREATE DOMAIN billing.subscription_status AS text CHECK (VALUE IN ('active', 'grace', 'blocked'));
CREATE DOMAIN billing.outbox_kind AS text CHECK (VALUE IN ('create_role', 'update_role', 'grant_role',
                                                          'revoke_role', 'fetch_email', 'notify'));
CREATE DOMAIN billing.outbox_state AS text CHECK (VALUE IN ('pending', 'in_flight', 'done', 'dead'));

CREATE TABLE billing.customers (
    user_id         uuid PRIMARY KEY,
    email           text,                        -- from the auth service (GetUserInfo)
    created_at      timestamptz NOT NULL DEFAULT billing.now()
);

CREATE TABLE billing.subscriptions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES billing.customers,
    tariff_id       bigint NOT NULL REFERENCES marketing.tariffs,
    status          billing.subscription_status NOT NULL,
    -- ends_at = add_months(anchor_at, months): renewals add months to the same
    -- anchor, so a term that began on the 31st keeps returning to the 31st.
    anchor_at       timestamptz NOT NULL,
    months          billing.term_months NOT NULL,
    -- which term this is: a new term (first purchase, or after a block or a
    -- lapse) counts up; a paid payment records the term its months count in,
    -- so a refund takes them off exactly that term, whatever order the
    -- payments were settled in.  months = the months of the term's paid,
    -- unrefunded payments.
    term            int NOT NULL DEFAULT 1 CHECK (term >= 1),
    ends_at         timestamptz NOT NULL,
    grace_ends_at   timestamptz NOT NULL,
    -- when run_expiry must look at this row next (reminder, end, grace end);
    -- NULL when nothing is due (blocked).  The sweep reads only this index.
    next_check_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT billing.now(),
    updated_at      timestamptz NOT NULL DEFAULT billing.now(),
    UNIQUE (user_id, tariff_id),
    CHECK (grace_ends_at >= ends_at)
);
CREATE INDEX subscriptions_due ON billing.subscriptions (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE FUNCTION billing.payment_status_paid(status text) RETURNS boolean
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_payment_status_paid';
COMMENT ON FUNCTION billing.payment_status_paid(text) IS 'True for the statuses a payment reaches only once its money came: paid, refund_pending, refunded.';
GRANT EXECUTE ON FUNCTION billing.payment_status_paid(text) TO PUBLIC;

CREATE TABLE billing.payments (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL REFERENCES billing.customers,
    -- snapshot of the quote: later catalog edits never change it
    tariff_id           bigint NOT NULL REFERENCES marketing.tariffs,
    tariff_code         text NOT NULL,
    tariff_title        text NOT NULL,
    months              billing.purchase_months NOT NULL,
    monthly_price       billing.amount NOT NULL,
    list_price          billing.amount NOT NULL,
    personal_percent    billing.percent NOT NULL DEFAULT 0,
    months_percent      billing.percent NOT NULL DEFAULT 0,
    promo_percent       billing.percent NOT NULL DEFAULT 0,
    promo_code_id       bigint REFERENCES marketing.promo_codes,
    promo_code          text,
    applied             billing.discount_applied NOT NULL,
    total               billing.amount NOT NULL CHECK (total <= list_price),
    currency            billing.currency_code NOT NULL,
    status              billing.payment_status NOT NULL DEFAULT 'invoiced',
    created_at          timestamptz NOT NULL DEFAULT billing.now(),
    updated_at          timestamptz NOT NULL DEFAULT billing.now(),
    expires_at          timestamptz NOT NULL,        -- an unpaid invoice expires then
    paid_at             timestamptz,                 -- the provider's time of success
    closed_at           timestamptz,                 -- canceled / expired / failed / refunded
    subscription_id     bigint REFERENCES billing.subscriptions,
    subscription_term   int,                         -- the subscription's term its months count in
    -- provider (Stripe) state
    provider_session_id text,                    -- unique when set (index below)
    provider_url        text,
    provider_payment_intent text,
    provider_refund_id  text,
    next_poll_at        timestamptz,                 -- poller backoff
    poll_attempts       int NOT NULL DEFAULT 0,
    CHECK ((promo_code_id IS NULL) = (promo_code IS NULL)),
    -- a paid (or since refunded) payment says when it was paid; the statuses
    -- are named in C: a call is far cheaper to load per statement than a list
    CHECK (paid_at IS NOT NULL OR NOT billing.payment_status_paid(status))
);
CREATE INDEX payments_user ON billing.payments (user_id, created_at);
CREATE INDEX payments_open ON billing.payments (expires_at) WHERE status IN ('invoiced', 'pending');
CREATE INDEX payments_poll ON billing.payments (next_poll_at) WHERE status IN ('pending', 'refund_pending');
-- Partial: the many payments without a provider session add no index entry
-- (NULLs never conflict anyway), on insert or on any later update.
CREATE UNIQUE INDEX payments_provider_session ON billing.payments (provider_session_id)
    WHERE provider_session_id IS NOT NULL;
-- One live use of a promo code per user: a reservation or a paid use.
CREATE UNIQUE INDEX payments_promo_once ON billing.payments (promo_code_id, user_id)
    WHERE promo_code_id IS NOT NULL AND status IN ('invoiced', 'pending', 'paid', 'refund_pending');

CREATE TABLE billing.payment_events (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    payment_id      uuid NOT NULL REFERENCES billing.payments,
    from_status     text,                        -- NULL for creation
    to_status       text NOT NULL,
    source          billing.event_source NOT NULL,
    at              timestamptz NOT NULL DEFAULT billing.now(),
    detail          jsonb,
    -- One index for the key and for a payment's history in order: every
    -- invoice and every transition writes an event, so each index costs.
    PRIMARY KEY (payment_id, id)
);
COMMENT ON TABLE billing.payment_events IS 'Append-only history of every payment transition.';

---------------------------------------------------------------------------
-- Outbox: side effects, written in the same transaction as the change.
---------------------------------------------------------------------------

CREATE TABLE billing.outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            billing.outbox_kind NOT NULL,
    payload         jsonb NOT NULL,
    idempotency_key text NOT NULL UNIQUE,        -- stable: sent with every attempt
    ordering_key    text,                        -- user:tariff; delivered in id order per key
    status          billing.outbox_state NOT NULL DEFAULT 'pending',
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_at      timestamptz,
    claimed_by      int,                         -- pid of the worker holding the claim
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX outbox_due ON billing.outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_order ON billing.outbox (ordering_key, id) WHERE status <> 'done';
COMMENT ON TABLE billing.outbox IS 'Side effects for the auth and notification services, delivered at least once by the outbox worker.';

---------------------------------------------------------------------------
-- Audit of admin changes (append-only).
---------------------------------------------------------------------------

CREATE TABLE billing.admin_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor           name NOT NULL DEFAULT current_user,
    actor_subject   text,                        -- the JWT's user claim when the change came over HTTP
    action          text NOT NULL,
    target          text NOT NULL,
    before          jsonb,
    after           jsonb,
    at              timestamptz NOT NULL DEFAULT billing.now()
);
COMMENT ON TABLE billing.admin_audit IS 'Append-only record of every admin change (catalog, payments settled or canceled by an admin, manual expiry sweeps, dead outbox messages requeued or discarded): who, what, the row before and after, when.';

-- Nobody but the owner touches the tables directly; functions grant what is needed.
REVOKE ALL ON ALL TABLES IN SCHEMA billing, marketing FROM PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA marketing TO billing_admin;
GRANT SELECT ON billing.admin_audit, billing.outbox TO billing_admin;
