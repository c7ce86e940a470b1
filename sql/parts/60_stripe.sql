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

CREATE FUNCTION billing.checkout(user_id uuid, payment_id uuid,
                                 success_url text DEFAULT NULL, cancel_url text DEFAULT NULL)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_checkout';
COMMENT ON FUNCTION billing.checkout(uuid, uuid, text, text) IS
$$Opens a Stripe Checkout Session for the user's invoiced payment and returns its URL (the redirect); the payment becomes pending with the session id and URL stored.  Called again for the pending payment it returns the same URL without calling Stripe (unless the invoice has expired).  The session: mode payment, one line item (the invoice's total and currency, "<tariff title>, N months"), our payment and user ids as client_reference_id and metadata, expires_at = the invoice's expiry (at most 23 h 55 min after the invoice, at least Stripe's 30 minutes ahead), idempotency key billing-checkout-<payment id> (a retry gets the very same session).  `success_url` and `cancel_url` default to billing.stripe_success_url and billing.stripe_cancel_url (Stripe replaces {CHECKOUT_SESSION_ID}).  No row lock is held while Stripe answers.

Errors: no such payment or someone else's P0002; not invoiced (paid, canceled, ...), a zero total, an expired invoice 55000; a missing or non-http(s) URL, an amount Stripe cannot charge in that currency 22023; billing.stripe_secret_key not set 55000.  Stripe failures leave the payment as it was: unreachable 08001, timeout, dropped connection or 5xx/429/409 08006 (retry: same idempotency key), the key refused 08004, a non-JSON answer 08P01, a refused request 22023 (the detail has Stripe's status, code and message), an idempotency key reused with other parameters or the object's state 55000, unknown object P0002, interrupted by a cancel or statement_timeout 57014.  End users call api.checkout.$$;

CREATE FUNCTION billing.confirm_payment(user_id uuid, payment_id uuid)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_confirm_payment';
COMMENT ON FUNCTION billing.confirm_payment(uuid, uuid) IS
$$"I'm back from checkout": fetches the payment's Stripe session now (payment intent and charge expanded) and settles it; returns the status.  complete with payment_status paid: paid (at the charge's time); expired: expired; a delayed payment method that failed: failed; open or still processing: stays pending.  A payment that is not pending is returned as it is, without asking Stripe.

Errors: no such payment or someone else's P0002.  Stripe failures leave the payment as it was: unreachable 08001, timeout, dropped connection or 5xx/429/409 08006 (retry: same idempotency key), the key refused 08004, a non-JSON answer 08P01, a refused request 22023 (the detail has Stripe's status, code and message), an idempotency key reused with other parameters or the object's state 55000, unknown object P0002, interrupted by a cancel or statement_timeout 57014.  End users call api.confirm_payment.$$;

CREATE FUNCTION billing.stripe_webhook(body json, signature text)
    RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_stripe_webhook';
COMMENT ON FUNCTION billing.stripe_webhook(json, text) IS
$$Stripe's webhook: `body` is the event exactly as sent (PostgREST passes the raw body through api.stripe_webhook), `signature` the Stripe-Signature header, t=<unix time>,v1=<hex>[,v1=...].  A v1 must be HMAC-SHA256 over "<t>.<raw body>" with one of billing.stripe_webhook_secrets (several while rotating), compared in constant time, and t within billing.stripe_webhook_tolerance of billing.now(); nothing is read or written before that.  A verified event is stored once in billing.stripe_events by its id (a replay or Stripe's retry returns result duplicate and changes nothing), then applied to the payment it concerns, found only by the ids Stripe gave our own objects (session, refund, payment intent) and with the session's amount and currency checked.

Returns {"received": true, "event", "type", "result", "payment_id", "status"}; result is applied, unchanged, stale (a late or out-of-order event), waiting (open, processing, refund pending), mismatch (amount, currency or ids differ: WARNING, not applied), partial (a partial refund made at Stripe: not applied), refund_failed (WARNING: an operator must act), unknown_payment (WARNING, recorded), ignored (types we do not use) or duplicate.

Errors: no, a malformed or a non-matching signature, or t outside the tolerance 42501; a malformed event 22023; billing.stripe_webhook_secrets not set 55000; a body too large 54000.  Stripe calls api.stripe_webhook.$$;

-- Not SECURITY DEFINER and no SET clause: either would make the CALL atomic
-- (PostgreSQL forbids COMMIT there), and the poller must commit between its
-- claim, its Stripe calls and its settles.  It is for the superuser that
-- pg_cron runs it as; every name in it is schema-qualified.
CREATE PROCEDURE billing.stripe_poll(OUT result jsonb)
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'billing_stripe_poll';
COMMENT ON PROCEDURE billing.stripe_poll(jsonb) IS
$$The Stripe poller (pg_cron job billing-stripe-poll, schedule billing.stripe_poll_schedule), for pending checkouts and refunds whose webhook has not come.  It claims up to billing.stripe_poll_batch due payments (next_poll_at, oldest first, SKIP LOCKED), moves each one's next poll forward (billing.stripe_poll_interval doubling per poll, at most billing.stripe_poll_max_interval, never past the invoice's expiry) and commits; then, holding no transaction or lock, asks Stripe about each; then settles each answer in its own subtransaction.  A session still open after the invoice's expiry is expired at Stripe and the payment expired.  A Stripe failure or a bad row is a WARNING, and that payment is simply due again later.  It also deletes webhook events older than billing.stripe_event_retention days (1,000 per run).

Returns (OUT result) {"claimed", "settled", "unchanged", "errors", "purged"}.  It commits only when CALLed as a statement of its own (CALL billing.stripe_poll(NULL), as pg_cron does); inside a transaction block it does everything in the caller's transaction.  Superuser (the extension owner) only.$$;

REVOKE ALL ON FUNCTION billing.checkout(uuid, uuid, text, text),
                       billing.confirm_payment(uuid, uuid),
                       billing.stripe_webhook(json, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE billing.stripe_poll(jsonb) FROM PUBLIC;
-- Users reach checkout and confirm through the api schema with their own id;
-- the webhook endpoint is granted by the HTTP layer to the role it runs as.
GRANT EXECUTE ON FUNCTION billing.checkout(uuid, uuid, text, text),
                          billing.confirm_payment(uuid, uuid) TO billing_admin;

-- The poller's pg_cron job, in the shared registry (30_payments.sql).
INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-stripe-poll', 'billing.stripe_poll_schedule', 'CALL billing.stripe_poll(NULL)');
SELECT billing.schedule_jobs();
