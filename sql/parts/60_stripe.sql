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
COMMENT ON TABLE billing.stripe_events IS 'Verified Stripe webhook events, stored once by event id (replays are recognised while kept: billing.stripe_event_retention days), with what applying them did.  Readable by billing_admin.';
COMMENT ON COLUMN billing.stripe_events.id IS 'Stripe''s event id (evt_...).';
COMMENT ON COLUMN billing.stripe_events.type IS 'Stripe''s event type, e.g. checkout.session.completed.';
COMMENT ON COLUMN billing.stripe_events.created IS 'Stripe''s time of the event.';
COMMENT ON COLUMN billing.stripe_events.object_id IS 'data.object.id: the session, refund or charge it is about.';
COMMENT ON COLUMN billing.stripe_events.payment_id IS 'Our payment it concerned; null when none.';
COMMENT ON COLUMN billing.stripe_events.result IS 'What applying it did: applied, unchanged, stale, waiting, mismatch, partial, refund_failed, unknown_payment or ignored.';
COMMENT ON COLUMN billing.stripe_events.payload IS 'The event as received.';
COMMENT ON COLUMN billing.stripe_events.received_at IS 'When it arrived.';
REVOKE ALL ON billing.stripe_events FROM PUBLIC;
GRANT SELECT ON billing.stripe_events TO billing_admin;

CREATE FUNCTION billing.stripe_webhook(body json, signature text)
    RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_stripe_webhook';
COMMENT ON FUNCTION billing.stripe_webhook(json, text) IS
$$Stripe's webhook: `body` is the event exactly as sent (PostgREST passes the raw body through api.stripe_webhook), `signature` the Stripe-Signature header, t=<unix time>,v1=<hex>[,v1=...].  A v1 must be HMAC-SHA256 over "<t>.<raw body>" with one of billing.stripe_webhook_secrets (several while rotating), compared in constant time, and t within billing.stripe_webhook_tolerance of billing.now(); nothing is read or written before that.  A verified event is stored once in billing.stripe_events by its id (a replay or Stripe's retry returns result duplicate and changes nothing), then applied to the payment it concerns, found only by the ids Stripe gave our own objects (session, refund, payment intent) and with the session's amount and currency checked.

Returns {"received": true, "event", "type", "result", "payment_id", "status"}; result is applied, unchanged, stale (a late or out-of-order event), waiting (open, processing, refund pending), mismatch (amount, currency or ids differ: WARNING, not applied), partial (a partial refund made at Stripe: not applied), refund_failed (WARNING: an operator must act), unknown_payment (WARNING, recorded), ignored (types we do not use) or duplicate.

Errors: no, a malformed or a non-matching signature, or t outside the tolerance 42501; a malformed event 22023; billing.stripe_webhook_secrets not set 55000; a body too large 54000.  Stripe calls api.stripe_webhook.$$;

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
