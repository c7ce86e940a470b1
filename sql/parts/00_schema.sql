-- billing: the schema every capability shares.  Assembled into
-- billing--<version>.sql by the Makefile from sql/parts/*.sql in name order.
\echo Use "CREATE EXTENSION billing CASCADE" to load this file. \quit

-- Schemas: marketing is what the marketing team edits, billing is the ledger.
CREATE SCHEMA marketing;
COMMENT ON SCHEMA billing IS 'The ledger: payments, subscriptions, the outbox, the audit, and the functions that change them.  On a standby every function that writes refuses at once with 25006 and a hint to use the primary; the reading ones answer.';
COMMENT ON SCHEMA marketing IS 'The catalog the marketing team edits (through the billing.* admin functions): tariffs, price history, personal and months discounts, promo codes.';
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

-- On a hot standby every function that writes refuses at once with 25006
-- (C functions call the same guard directly).
CREATE FUNCTION billing.require_primary(what text) RETURNS void
    VOLATILE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_require_primary_sql';
COMMENT ON FUNCTION billing.require_primary(text) IS
    'Raises 25006 with a hint to use the primary when this server is a standby; does nothing on the primary.';
REVOKE ALL ON FUNCTION billing.require_primary(text) FROM PUBLIC;

-- The one clock (clock.c).
CREATE FUNCTION billing.now() RETURNS timestamptz
    STABLE PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_now_sql';
COMMENT ON FUNCTION billing.now() IS
$$The time every billing rule uses: the setting `billing.test_clock` when it is set (superuser only; tests move time with it, like Stripe test clocks), else `now()`.  Callable by every role.$$;

CREATE FUNCTION billing.add_months(anchor timestamptz, months int) RETURNS timestamptz
    STABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_add_months_sql';
COMMENT ON FUNCTION billing.add_months(timestamptz, int) IS
$$`anchor` plus `months` calendar months counted in `billing.time_zone`, the day clamped to the month's end like Stripe's billing-cycle anchor (Jan 31 + 1 = Feb 28, + 2 = Mar 31).  The same as PostgreSQL's `timestamp + interval` in that zone, over the whole range of `timestamptz` (before 1 AD too); 0 months is the anchor itself; NULL in, NULL out.

Errors: a result outside the range of `timestamptz` 22008.$$;

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
COMMENT ON TABLE marketing.tariffs IS
$$Tariff plans ("priority films"); each is a role in the auth service, referenced by id, never by name.  Changed only through billing.create_tariff, update_tariff and set_tariff_price (audited); readable by billing_admin.$$;
COMMENT ON COLUMN marketing.tariffs.id IS 'Stable id: payments, subscriptions and outbox messages refer to it, so a renamed tariff orphans nothing.';
COMMENT ON COLUMN marketing.tariffs.code IS 'Permanent code, 1-64 of a-z 0-9 _ - starting with a letter or digit: the tariff argument of quote, create_invoice and has_access.  A trigger refuses changing it (55000).';
COMMENT ON COLUMN marketing.tariffs.title IS 'Title shown to customers (1-200 characters); also the name of the auth service''s role.';
COMMENT ON COLUMN marketing.tariffs.description IS 'What the tariff gives (optional).';
COMMENT ON COLUMN marketing.tariffs.monthly_price IS 'Price of one month in minor units of the currency (kopecks, cents; whole yen for zero-decimal currencies), at least 0.  History in marketing.tariff_price_history.';
COMMENT ON COLUMN marketing.tariffs.currency IS 'ISO 4217 code of a currency Stripe can charge in (default RUB).';
COMMENT ON COLUMN marketing.tariffs.active IS 'On sale.  False: quotes and invoices refuse the tariff (55000); subscriptions go on.';
COMMENT ON COLUMN marketing.tariffs.auth_role_id IS 'The auth service''s role id, stored when its CreateRole answered (outbox create_role); null until then.';
COMMENT ON COLUMN marketing.tariffs.created_at IS 'Created (billing.now()).';
COMMENT ON COLUMN marketing.tariffs.updated_at IS 'Last change (billing.now()).';

CREATE TABLE marketing.tariff_price_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tariff_id       bigint NOT NULL REFERENCES marketing.tariffs,
    old_price       bigint CHECK (old_price >= 0),        -- NULL for the first price
    new_price       bigint NOT NULL CHECK (new_price >= 0),
    changed_by      name NOT NULL DEFAULT current_user,
    changed_at      timestamptz NOT NULL DEFAULT billing.now()
);
CREATE INDEX ON marketing.tariff_price_history (tariff_id, changed_at);
COMMENT ON TABLE marketing.tariff_price_history IS 'Every monthly price a tariff had, with who changed it and when.  Append-only: a trigger refuses UPDATE and DELETE, even for the owner (42501).';
COMMENT ON COLUMN marketing.tariff_price_history.id IS 'Order of the changes.';
COMMENT ON COLUMN marketing.tariff_price_history.tariff_id IS 'The tariff (marketing.tariffs.id).';
COMMENT ON COLUMN marketing.tariff_price_history.old_price IS 'The price before, in minor units; null for the first price.';
COMMENT ON COLUMN marketing.tariff_price_history.new_price IS 'The price from then on, in minor units.';
COMMENT ON COLUMN marketing.tariff_price_history.changed_by IS 'The database role that made the change.';
COMMENT ON COLUMN marketing.tariff_price_history.changed_at IS 'When (billing.now()).';

CREATE TABLE marketing.personal_discounts (
    user_id         uuid PRIMARY KEY,
    percent         numeric(5,2) NOT NULL CHECK (percent > 0 AND percent <= 100),
    valid_until     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT billing.now()
);
COMMENT ON TABLE marketing.personal_discounts IS 'At most one personal discount per user (billing.set_personal_discount, remove_personal_discount).';
COMMENT ON COLUMN marketing.personal_discounts.user_id IS 'The user (the cinema''s user id).';
COMMENT ON COLUMN marketing.personal_discounts.percent IS 'Discount in percent, in (0, 100], two decimals.';
COMMENT ON COLUMN marketing.personal_discounts.valid_until IS 'The discount applies while billing.now() is before this; null: no end.';
COMMENT ON COLUMN marketing.personal_discounts.updated_at IS 'Last set (billing.now()).';

CREATE TABLE marketing.months_discounts (
    months          int PRIMARY KEY CHECK (months >= 1),
    percent         numeric(5,2) NOT NULL CHECK (percent > 0 AND percent <= 100)
);
COMMENT ON TABLE marketing.months_discounts IS 'Discount tiers by months bought: a purchase of N months gets the tier with the largest months <= N (billing.set_months_discount, remove_months_discount).';
COMMENT ON COLUMN marketing.months_discounts.months IS 'Purchases of at least this many months get the tier (at least 1).';
COMMENT ON COLUMN marketing.months_discounts.percent IS 'Discount in percent, in (0, 100], two decimals.';

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
COMMENT ON TABLE marketing.promo_codes IS 'Promo codes: not tied to a user, once per user, optionally for one tariff and a limited number of uses in all; soft-deleted so payments that used one still show it (billing.create_promo_code, delete_promo_code).';
COMMENT ON COLUMN marketing.promo_codes.id IS 'Stable id (payments.promo_code_id).';
COMMENT ON COLUMN marketing.promo_codes.code IS 'The code as given, 1-64 of letters, digits, _ and -; matched case-insensitively, unique among live codes.';
COMMENT ON COLUMN marketing.promo_codes.percent IS 'Discount in percent, in (0, 100], two decimals.';
COMMENT ON COLUMN marketing.promo_codes.valid_from IS 'Usable from then on (billing.now()); null: from its creation.';
COMMENT ON COLUMN marketing.promo_codes.valid_until IS 'Usable before then.';
COMMENT ON COLUMN marketing.promo_codes.tariff_id IS 'Only for this tariff; null: any tariff.';
COMMENT ON COLUMN marketing.promo_codes.max_redemptions IS 'Most uses in all; null: no limit.';
COMMENT ON COLUMN marketing.promo_codes.redemptions IS 'Open invoices holding a reservation plus paid uses; never above max_redemptions.';
COMMENT ON COLUMN marketing.promo_codes.created_by IS 'The database role that created it.';
COMMENT ON COLUMN marketing.promo_codes.created_at IS 'Created (billing.now()).';
COMMENT ON COLUMN marketing.promo_codes.deleted_at IS 'Soft delete (billing.delete_promo_code): no longer usable, its name free for a new code; null while live.';

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
COMMENT ON DOMAIN billing.purchase_months IS 'Months of one purchase, at least 1 (at most billing.max_months when quoted).';
CREATE DOMAIN billing.term_months AS int CHECK (VALUE >= 0);
COMMENT ON DOMAIN billing.term_months IS 'Months of a subscription''s term: those of its paid, unrefunded payments (0 once refunds took them all).';
CREATE DOMAIN billing.currency_code AS char(3) CHECK (VALUE ~ '^[A-Z]{3}$');
COMMENT ON DOMAIN billing.currency_code IS 'ISO 4217 code, three capital letters.';
CREATE DOMAIN billing.discount_applied AS text CHECK (VALUE IN ('discounts', 'promo', 'none'));
COMMENT ON DOMAIN billing.discount_applied IS 'Which option a quote applied: discounts (personal and months), promo (the code was strictly cheaper) or none.';
CREATE DOMAIN billing.payment_status AS text CHECK (VALUE IN
    ('invoiced', 'pending', 'paid', 'canceled', 'expired', 'failed', 'refund_pending', 'refunded'));
COMMENT ON DOMAIN billing.payment_status IS 'invoiced -> pending (checkout opened) -> paid | canceled | expired | failed; paid -> refund_pending -> refunded.';
CREATE DOMAIN billing.event_source AS text CHECK (VALUE IN ('api', 'webhook', 'poll', 'admin', 'system'));
COMMENT ON DOMAIN billing.event_source IS 'Who reported a payment transition: api (the buyer), webhook and poll (Stripe), admin, system (zero totals, invoice expiry).';
CREATE DOMAIN billing.auto_renew_reason AS text CHECK (VALUE IN
    ('checkout', 'buyer', 'admin', 'charge_failed', 'authentication_failed', 'method_revoked',
     'not_completed', 'refunded', 'lapsed', 'tariff_unavailable'));
COMMENT ON DOMAIN billing.auto_renew_reason IS 'Why auto-renewal was switched on or off: checkout (a paid checkout with auto_renew), buyer or admin (billing.set_auto_renew), charge_failed (the last retry was declined), authentication_failed (the buyer did not pass the bank''s check), method_revoked (the buyer withdrew the permission to charge the saved method), not_completed (the charge that needed the buyer was never completed), refunded (a payment of the subscription was refunded), lapsed (the subscription was blocked), tariff_unavailable (the tariff is off sale or its months no longer sold).';
CREATE DOMAIN billing.subscription_status AS text CHECK (VALUE IN ('active', 'grace', 'blocked'));
COMMENT ON DOMAIN billing.subscription_status IS 'active until ends_at, grace (access continues) until grace_ends_at, then blocked (role revoked).';
CREATE DOMAIN billing.outbox_kind AS text CHECK (VALUE IN ('create_role', 'update_role', 'grant_role',
                                                          'revoke_role', 'fetch_email', 'notify'));
COMMENT ON DOMAIN billing.outbox_kind IS 'The call an outbox message makes: create_role, update_role, grant_role, revoke_role (auth service), fetch_email (auth service), notify (notification service).';
CREATE DOMAIN billing.outbox_state AS text CHECK (VALUE IN ('pending', 'in_flight', 'done', 'dead'));
COMMENT ON DOMAIN billing.outbox_state IS 'pending (due at next_attempt_at), in_flight (claimed by the worker), done (delivered), dead (parked until an admin acts).';

CREATE TABLE billing.customers (
    user_id         uuid PRIMARY KEY,
    email           text,                        -- from the auth service (GetUserInfo)
    created_at      timestamptz NOT NULL DEFAULT billing.now()
);
COMMENT ON TABLE billing.customers IS 'Every user who made an invoice: created by the first billing.create_invoice of that user.';
COMMENT ON COLUMN billing.customers.user_id IS 'The cinema''s user id (from the auth service).';
COMMENT ON COLUMN billing.customers.email IS 'The e-mail the auth service gave (outbox fetch_email, GetUserInfo); null until it answered.';
COMMENT ON COLUMN billing.customers.created_at IS 'First invoice (billing.now()).';

-- The buyer's customer at a provider, made the first time a checkout asks to
-- save a payment method (auto-renewal): one per user and provider.
CREATE TABLE billing.provider_customers (
    user_id         uuid NOT NULL REFERENCES billing.customers,
    provider        text NOT NULL CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$'),
    customer        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT billing.now(),
    PRIMARY KEY (user_id, provider)
);
COMMENT ON TABLE billing.provider_customers IS 'The buyer''s customer at each provider (a Stripe Customer; for YooKassa, which keeps no customers, the merchant_customer_id we send: the user''s uuid), recorded by the first checkout with auto_renew; saved payment methods live under it at the provider.  Readable by billing_admin.';
COMMENT ON COLUMN billing.provider_customers.user_id IS 'The buyer.';
COMMENT ON COLUMN billing.provider_customers.provider IS 'The provider (stripe, yookassa).';
COMMENT ON COLUMN billing.provider_customers.customer IS 'The provider''s customer id (Stripe''s cus_…; YooKassa: the user''s uuid).';
COMMENT ON COLUMN billing.provider_customers.created_at IS 'When it was made (billing.now()).';

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
    -- auto-renewal (autorenew.c): the buyer's choice, the saved payment
    -- method (the provider's ids only, never card data) and the dunning
    -- state.  renew_at is when billing.run_renewals charges next; the job
    -- reads only the subscriptions_renew index.
    auto_renew      boolean NOT NULL DEFAULT false,
    renew_months    billing.purchase_months,
    renew_provider  text,
    renew_customer  text,
    renew_method    text,
    card_brand      text,
    card_last4      text,
    renew_at        timestamptz,
    renew_failures  int NOT NULL DEFAULT 0 CHECK (renew_failures >= 0),
    auto_renew_reason billing.auto_renew_reason,
    auto_renew_changed_at timestamptz,
    UNIQUE (user_id, tariff_id),
    CHECK (grace_ends_at >= ends_at),
    CHECK (NOT auto_renew OR (renew_months IS NOT NULL AND renew_provider IS NOT NULL
                              AND renew_customer IS NOT NULL)),
    CHECK (auto_renew OR renew_at IS NULL)
);
CREATE INDEX subscriptions_due ON billing.subscriptions (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX subscriptions_renew ON billing.subscriptions (renew_at) WHERE renew_at IS NOT NULL;
COMMENT ON TABLE billing.subscriptions IS
$$One subscription per user and tariff: active until `ends_at`, in grace (access continues) until `grace_ends_at`, then blocked and the role revoked; billing.run_expiry moves it on.  Its term is `anchor_at` plus `months` calendar months in billing.time_zone, like Stripe's billing-cycle anchor (a term begun on Jan 31 ends Feb 28, then Mar 31 after a renewal, never drifting); `grace_ends_at = ends_at + billing.grace_period`, fixed when the term is set.  Row-level security: a billing_user sees its own rows only.

A paid payment is judged at its `paid_at`, not only by the stored status (the sweep may not have run yet): while active or in grace its months go onto the same anchor, so the term goes on from its current end; new, blocked or past its grace, it starts a new term anchored at `paid_at` and queues grant_role.  Every paid payment queues notify template 1 "subscribed" with the new end (a renewal too: the receipt of that payment); a renewal in grace writes no grant.  A paid payment records the term its months count in, so a term's months are always exactly those of its paid, unrefunded payments, whatever order the provider's events settled them in.

A refund takes that payment's months off the term they count in.  If no paid month is left, or the shortened term ends at or before billing.now(), access ends at once in any billing.time_zone: blocked, grace_ends_at = ends_at (no grace for refunded time) and revoke_role.  Otherwise it stays active with the shorter term, its grace and its own reminder.  Either way notify template 4 "refunded".  A payment of an earlier, ended term takes nothing off the present one.  Until the provider confirms (refund_pending), access is unchanged.$$;
COMMENT ON COLUMN billing.subscriptions.id IS 'Subscription id (payments.subscription_id).';
COMMENT ON COLUMN billing.subscriptions.user_id IS 'The subscriber.';
COMMENT ON COLUMN billing.subscriptions.tariff_id IS 'The tariff (marketing.tariffs.id).';
COMMENT ON COLUMN billing.subscriptions.status IS 'active, grace or blocked as of the last change or sweep; billing.has_access and payment_info judge the present moment.';
COMMENT ON COLUMN billing.subscriptions.anchor_at IS 'Start of the term: ends_at = billing.add_months(anchor_at, months), counted in billing.time_zone, so renewals never drift.';
COMMENT ON COLUMN billing.subscriptions.months IS 'Months of the term: exactly those of its paid, unrefunded payments.';
COMMENT ON COLUMN billing.subscriptions.term IS 'Which term: 1 for the first purchase, one more each time a payment starts a new term (after a block or a lapse).';
COMMENT ON COLUMN billing.subscriptions.ends_at IS 'End of the paid term.';
COMMENT ON COLUMN billing.subscriptions.grace_ends_at IS 'End of access: ends_at plus billing.grace_period, fixed when the term is set; equal to ends_at when a refund ended access (no grace for refunded time).';
COMMENT ON COLUMN billing.subscriptions.next_check_at IS 'When billing.run_expiry looks at the row next: the reminder time (ends_at minus billing.reminder_before) while the reminder is still to be sent, else ends_at while active, grace_ends_at in grace; null when blocked.';
COMMENT ON COLUMN billing.subscriptions.created_at IS 'First purchase (billing.now()).';
COMMENT ON COLUMN billing.subscriptions.updated_at IS 'Last change (billing.now()).';
COMMENT ON COLUMN billing.subscriptions.auto_renew IS 'The buyer renews automatically: billing.run_renewals charges the saved method billing.renewal_lead before ends_at.  Switched on by a checkout with auto_renew that was paid, on and off by billing.set_auto_renew; switched off by the system with a reason in auto_renew_reason.';
COMMENT ON COLUMN billing.subscriptions.renew_months IS 'Months each automatic charge buys: those of the purchase that switched auto-renewal on.';
COMMENT ON COLUMN billing.subscriptions.renew_provider IS 'The provider holding the saved method (stripe).';
COMMENT ON COLUMN billing.subscriptions.renew_customer IS 'The provider''s customer id the method is saved under.';
COMMENT ON COLUMN billing.subscriptions.renew_method IS 'The provider''s id of the saved payment method; null until the provider reported it (the charge then asks the provider for the customer''s newest card).';
COMMENT ON COLUMN billing.subscriptions.card_brand IS 'The saved card''s brand, when the provider reported it (visa, mastercard, ...).';
COMMENT ON COLUMN billing.subscriptions.card_last4 IS 'The saved card''s last four digits, when the provider reported them.';
COMMENT ON COLUMN billing.subscriptions.renew_at IS 'When billing.run_renewals charges next: ends_at minus billing.renewal_lead, or the next retry after a declined charge (billing.renewal_retry_delays); null when nothing is due (auto-renewal off, a charge in flight, the buyer asked to authenticate).';
COMMENT ON COLUMN billing.subscriptions.renew_failures IS 'Declined automatic charges of the present end of term; 0 again once a payment extends the term.';
COMMENT ON COLUMN billing.subscriptions.auto_renew_reason IS 'Why auto-renewal was last switched on or off (billing.auto_renew_reason).';
COMMENT ON COLUMN billing.subscriptions.auto_renew_changed_at IS 'When auto_renew last changed.';

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
    -- provider state: the provider is chosen when the checkout opens
    -- (billing.providers); every later call for the payment goes to it
    provider            text CHECK (provider ~ '^[a-z][a-z0-9_]{0,31}$'),
    provider_session_id text,                    -- unique when set (index below)
    provider_url        text,
    provider_payment_intent text,
    provider_refund_id  text,
    next_poll_at        timestamptz,                 -- poller backoff
    poll_attempts       int NOT NULL DEFAULT 0,
    -- closed here while the provider may still take the money (a YooKassa
    -- confirmation cannot be cancelled): the poller keeps asking, and money
    -- that arrives anyway is refunded
    provider_watch      boolean NOT NULL DEFAULT false,
    -- auto-renewal: a checkout that asked the provider to save the method,
    -- the method the provider reported, and what an automatic charge renews
    save_method         boolean NOT NULL DEFAULT false,
    provider_customer   text,
    provider_method     text,
    card_brand          text,
    card_last4          text,
    renewal_of          timestamptz,                 -- the end of term an automatic charge continues
    renewal_attempt     int CHECK (renewal_attempt >= 1),
    CHECK ((renewal_of IS NULL) = (renewal_attempt IS NULL)),
    CHECK ((promo_code_id IS NULL) = (promo_code IS NULL)),
    -- a paid (or since refunded) payment says when it was paid; the statuses
    -- are named in C: a call is far cheaper to load per statement than a list
    CHECK (paid_at IS NOT NULL OR NOT billing.payment_status_paid(status))
);
CREATE INDEX payments_user ON billing.payments (user_id, created_at);
CREATE INDEX payments_open ON billing.payments (expires_at) WHERE status IN ('invoiced', 'pending');
CREATE INDEX payments_poll ON billing.payments (next_poll_at)
    WHERE status IN ('pending', 'refund_pending') OR provider_watch;
-- Partial: the many payments without a provider session add no index entry
-- (NULLs never conflict anyway), on insert or on any later update.
CREATE UNIQUE INDEX payments_provider_session ON billing.payments (provider_session_id)
    WHERE provider_session_id IS NOT NULL;
-- One live or paid automatic charge per end of term: a second job, a retry
-- or a crash can never charge the same term twice.
CREATE UNIQUE INDEX payments_renewal_once ON billing.payments (user_id, tariff_id, renewal_of)
    WHERE renewal_of IS NOT NULL AND status IN ('invoiced', 'pending', 'paid', 'refund_pending');
-- One live use of a promo code per user: a reservation or a paid use.
CREATE UNIQUE INDEX payments_promo_once ON billing.payments (promo_code_id, user_id)
    WHERE promo_code_id IS NOT NULL AND status IN ('invoiced', 'pending', 'paid', 'refund_pending');
COMMENT ON TABLE billing.payments IS
$$Every purchase: the snapshot of its quote (later catalog edits never change it) and its place in the payment state machine.  Written only by the billing functions (every transition through billing.settle_payment's path, with one billing.payment_events row); readable by billing_admin (billing.admin_payments), and by a billing_user for its own rows (row-level security).

```
invoiced ──► pending ──► paid ──► refund_pending ──► refunded
    │           │          └───────────────────────────►┘
    ├───────────┴──► canceled | expired | failed
    └──► paid   (a zero total, or a settle without checkout)
```$$;
COMMENT ON COLUMN billing.payments.id IS 'Payment id: the payment_id argument of checkout, confirm_payment, cancel_payment and settle_payment.';
COMMENT ON COLUMN billing.payments.user_id IS 'The buyer.';
COMMENT ON COLUMN billing.payments.tariff_id IS 'The tariff bought (marketing.tariffs.id).';
COMMENT ON COLUMN billing.payments.tariff_code IS 'The tariff''s code when invoiced.';
COMMENT ON COLUMN billing.payments.tariff_title IS 'The tariff''s title when invoiced.';
COMMENT ON COLUMN billing.payments.months IS 'Months bought (1 to billing.max_months when invoiced).';
COMMENT ON COLUMN billing.payments.monthly_price IS 'Monthly price quoted, minor units.';
COMMENT ON COLUMN billing.payments.list_price IS 'Monthly price times months, before discounts, minor units.';
COMMENT ON COLUMN billing.payments.personal_percent IS 'The buyer''s personal discount valid when quoted (0: none).';
COMMENT ON COLUMN billing.payments.months_percent IS 'The months tier that applied (0: none).';
COMMENT ON COLUMN billing.payments.promo_percent IS 'The promo code''s percent (0 without a code).';
COMMENT ON COLUMN billing.payments.promo_code_id IS 'The promo code used (marketing.promo_codes.id), only when it won the quote.';
COMMENT ON COLUMN billing.payments.promo_code IS 'The promo code as stored, only when it won the quote.';
COMMENT ON COLUMN billing.payments.applied IS 'Which option won: discounts, promo or none.';
COMMENT ON COLUMN billing.payments.total IS 'What the buyer pays, minor units: never negative, never above list_price.  0 is paid at once.';
COMMENT ON COLUMN billing.payments.currency IS 'ISO 4217 currency code.';
COMMENT ON COLUMN billing.payments.status IS 'invoiced, pending, paid, canceled, expired, failed, refund_pending or refunded (billing.payment_status).';
COMMENT ON COLUMN billing.payments.created_at IS 'When the invoice was made (billing.now()).';
COMMENT ON COLUMN billing.payments.updated_at IS 'Last change.';
COMMENT ON COLUMN billing.payments.expires_at IS 'created_at plus billing.invoice_lifetime: an unpaid invoice expires then (billing.expire_invoices, or the poller for an open checkout, through its provider).';
COMMENT ON COLUMN billing.payments.paid_at IS 'The provider''s time of success; billing.refund_window counts from it.';
COMMENT ON COLUMN billing.payments.closed_at IS 'When it was canceled, expired, failed or refunded.';
COMMENT ON COLUMN billing.payments.subscription_id IS 'The subscription its months went to, once paid.';
COMMENT ON COLUMN billing.payments.subscription_term IS 'The subscription''s term its months count in (a refund takes them off that term).';
COMMENT ON COLUMN billing.payments.provider IS 'The provider the checkout went to (stripe, yookassa), chosen by billing.checkout and kept: every later call for the payment goes to it; null before checkout.';
COMMENT ON COLUMN billing.payments.provider_session_id IS 'The provider''s id of the payment page (a Stripe Checkout Session, a YooKassa payment), once checkout opened one (unique when set).';
COMMENT ON COLUMN billing.payments.provider_url IS 'The payment page of that session.';
COMMENT ON COLUMN billing.payments.provider_payment_intent IS 'The provider''s id of the charge (Stripe''s payment intent), once paid.';
COMMENT ON COLUMN billing.payments.provider_refund_id IS 'The provider''s refund id, once a refund was created.';
COMMENT ON COLUMN billing.payments.next_poll_at IS 'When the poller next asks the provider about this pending or refund_pending payment: billing.stripe_poll_interval doubling per poll, at most billing.stripe_poll_max_interval.';
COMMENT ON COLUMN billing.payments.poll_attempts IS 'Polls so far (the backoff''s exponent).';
COMMENT ON COLUMN billing.payments.save_method IS 'The checkout asked the provider to save the payment method for automatic renewal (billing.checkout(…, auto_renew => true)); once paid, the subscription renews with it.';
COMMENT ON COLUMN billing.payments.provider_customer IS 'The provider''s customer id the payment was made under (a checkout with auto_renew, an automatic charge).';
COMMENT ON COLUMN billing.payments.provider_method IS 'The provider''s id of the payment method used, when the provider reported it.';
COMMENT ON COLUMN billing.payments.card_brand IS 'The card''s brand, when the provider reported it.';
COMMENT ON COLUMN billing.payments.card_last4 IS 'The card''s last four digits, when the provider reported them.';
COMMENT ON COLUMN billing.payments.renewal_of IS 'An automatic charge (billing.run_renewals): the end of term it continues; null for a purchase.  At most one live or paid charge per end of term.';
COMMENT ON COLUMN billing.payments.renewal_attempt IS 'Which attempt of that automatic charge: 1, then one more per retry after a decline.';
COMMENT ON COLUMN billing.payments.provider_watch IS 'Closed here while the provider may still take the money (a YooKassa confirmation cannot be cancelled): the poller keeps asking until the provider closes it, and money that arrives anyway is refunded.';

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
COMMENT ON TABLE billing.payment_events IS 'Append-only history of every payment transition, one row each: a trigger refuses UPDATE, DELETE and TRUNCATE by anyone but the table''s owner (the extension owner, for retention), a superuser too (42501).  Readable by billing_admin.';
COMMENT ON COLUMN billing.payment_events.id IS 'Order of the events.';
COMMENT ON COLUMN billing.payment_events.payment_id IS 'The payment.';
COMMENT ON COLUMN billing.payment_events.from_status IS 'Status before; null for the creation.';
COMMENT ON COLUMN billing.payment_events.to_status IS 'Status after.';
COMMENT ON COLUMN billing.payment_events.source IS 'Who reported it: api, webhook, poll, admin or system.';
COMMENT ON COLUMN billing.payment_events.at IS 'When it happened: the provider''s time of the event when it gave one, else billing.now().';
COMMENT ON COLUMN billing.payment_events.detail IS 'What else is known: the provider reference, recorded_at when at differs from billing.now(), {"refund": "without_provider"}, ...';

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
    claimed_by_start timestamptz,                -- its process start: with the pid, one worker run (pids repeat, this pair does not)
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX outbox_due ON billing.outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_order ON billing.outbox (ordering_key, id) WHERE status <> 'done';
COMMENT ON TABLE billing.outbox IS 'Side effects for the auth and notification services, written in the transaction that decided them and delivered at least once, in order per ordering key, by the outbox worker (billing.database).  Delivered rows are deleted by billing.outbox_purge.  Readable by billing_admin (billing.outbox_status, billing.outbox_dead).';
COMMENT ON COLUMN billing.outbox.id IS 'Order of the messages: one waits for every earlier one with the same ordering key.';
COMMENT ON COLUMN billing.outbox.kind IS 'The call: create_role, update_role, grant_role, revoke_role, fetch_email or notify.';
COMMENT ON COLUMN billing.outbox.payload IS 'The call''s fields (a jsonb object), e.g. {"template", "user_id", "role_description", "end_payment"} for notify.';
COMMENT ON COLUMN billing.outbox.idempotency_key IS 'Stable key sent with every attempt (request field 15 and idempotency-key metadata), e.g. payment:<id>:grant; unique.';
COMMENT ON COLUMN billing.outbox.ordering_key IS 'user:tariff, or tariff:<id> for role changes: delivered in id order per key (a revoke never overtakes its grant).';
COMMENT ON COLUMN billing.outbox.status IS 'pending, in_flight, done or dead.';
COMMENT ON COLUMN billing.outbox.attempts IS 'Attempts so far (dead after billing.outbox_max_attempts).';
COMMENT ON COLUMN billing.outbox.next_attempt_at IS 'When a pending message is due: billing.outbox_backoff_base doubling per attempt, at most billing.outbox_backoff_max, with jitter.';
COMMENT ON COLUMN billing.outbox.claimed_at IS 'When the worker claimed it (in_flight).';
COMMENT ON COLUMN billing.outbox.claimed_by IS 'Process id of the worker holding the claim.';
COMMENT ON COLUMN billing.outbox.claimed_by_start IS 'Start time of that worker''s process: with the pid it names one worker run (pids repeat, the pair does not), so a restarted worker puts its predecessor''s claims back.';
COMMENT ON COLUMN billing.outbox.last_error IS 'The last failure, "<gRPC status>: <message>" (e.g. "UNAVAILABLE: ..." or "malformed payload: ...").';
COMMENT ON COLUMN billing.outbox.created_at IS 'Queued.';
COMMENT ON COLUMN billing.outbox.delivered_at IS 'When the service answered OK (done).';

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
COMMENT ON COLUMN billing.admin_audit.id IS 'Order of the changes.';
COMMENT ON COLUMN billing.admin_audit.actor IS 'The database role that made the change (the role you are, or SET ROLE to; not the extension owner).';
COMMENT ON COLUMN billing.admin_audit.actor_subject IS 'The person: the JWT''s user claim when the change came over HTTP (every admin shares the role billing_admin there).';
COMMENT ON COLUMN billing.admin_audit.action IS 'The function: create_tariff, set_tariff_price, settle_payment, cancel_payment_for, run_expiry, outbox_retry_dead, ...';
COMMENT ON COLUMN billing.admin_audit.target IS 'What changed: tariff:<code>, user:<uuid>, months:<n>, promo:<code>, payment:<uuid>, subscription:<id>, billing.outbox, ...';
COMMENT ON COLUMN billing.admin_audit.before IS 'The row before, as jsonb (null for a creation).';
COMMENT ON COLUMN billing.admin_audit.after IS 'The row after, as jsonb (null for a removal).';
COMMENT ON COLUMN billing.admin_audit.at IS 'When (billing.now()).';
COMMENT ON TABLE billing.admin_audit IS 'Append-only record of every admin change (catalog, payments settled or canceled by an admin, manual expiry sweeps, dead outbox messages requeued or discarded): who, what, the row before and after, when.';

-- Nobody but the owner touches the tables directly; functions grant what is needed.
REVOKE ALL ON ALL TABLES IN SCHEMA billing, marketing FROM PUBLIC;
GRANT SELECT ON ALL TABLES IN SCHEMA marketing TO billing_admin;
GRANT SELECT ON billing.admin_audit, billing.outbox TO billing_admin;
