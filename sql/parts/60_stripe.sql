---------------------------------------------------------------------------
-- Stripe (stripe.c, checkout.c, webhook.c, stripe_apply.c, poll.c):
-- checkout redirect, confirm, signed webhooks stored once, the poller.
---------------------------------------------------------------------------

-- Every verified webhook event, once by Stripe's event id: a replay or a
-- retry of the same event finds its row and changes nothing.  Unverified
-- bodies never get here.  Kept billing.stripe_event_retention days.
CREATE TABLE billing.stripe_events (
    id              text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,255}$'),
    type            text NOT NULL,
    created         timestamptz NOT NULL,            -- Stripe's time of the event
    object_id       text,                            -- data.object.id (session, refund, ...)
    payment_id      uuid REFERENCES billing.payments ON DELETE SET NULL,
    -- applied | unchanged | stale | waiting | mismatch | partial | refund_failed
    -- | unknown_payment | ignored; NULL only inside the receiving transaction
    result          text,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_events_received ON billing.stripe_events (received_at);
CREATE INDEX stripe_events_payment ON billing.stripe_events (payment_id) WHERE payment_id IS NOT NULL;
COMMENT ON TABLE billing.stripe_events IS 'Verified Stripe webhook events, stored once by event id, with what applying them did.';
REVOKE ALL ON billing.stripe_events FROM PUBLIC;
GRANT SELECT ON billing.stripe_events TO billing_admin;

CREATE FUNCTION billing.stripe_webhook(body json, signature text)
    RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_stripe_webhook';
COMMENT ON FUNCTION billing.stripe_webhook(json, text) IS
    'A Stripe webhook: verifies the Stripe-Signature header over the raw body, stores the event once by id and applies it. Returns what it did.';

-- The poller under its first name (55_checkout.sql: billing.poll_payments,
-- which pg_cron runs); kept for the callers that know it.
CREATE PROCEDURE billing.stripe_poll(OUT result jsonb)
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'billing_poll_payments';
COMMENT ON PROCEDURE billing.stripe_poll(jsonb) IS
    'The poller''s first name: the same as billing.poll_payments (every provider, not only Stripe).';

REVOKE ALL ON FUNCTION billing.stripe_webhook(json, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE billing.stripe_poll(jsonb) FROM PUBLIC;
-- The webhook endpoint is granted by the HTTP layer to the role it runs as.
