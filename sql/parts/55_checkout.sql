---------------------------------------------------------------------------
-- Checkout, whichever the provider (checkout.c, provider.c): the provider is
-- chosen when the checkout opens and stored on the payment.
---------------------------------------------------------------------------

CREATE FUNCTION billing.checkout(user_id uuid, payment_id uuid,
                                 success_url text DEFAULT NULL, cancel_url text DEFAULT NULL,
                                 provider text DEFAULT NULL, auto_renew boolean DEFAULT false)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_checkout';
COMMENT ON FUNCTION billing.checkout(uuid, uuid, text, text, text, boolean) IS
$$Opens the payment page of the user's invoiced payment at its provider and returns its URL (the redirect); the payment becomes pending, with the provider, its payment's id and the URL stored, and stays with that provider (confirm, cancel, refund and the poller ask it).  The provider is `provider` when given, else the one billing.providers maps the invoice's currency to; only providers billing.providers names can be chosen.  Called again for the pending payment it returns the same URL without calling the provider (unless the invoice has expired).

`auto_renew => true` opts in to automatic renewal: the provider saves the payment method under the buyer's customer there (made on first use, billing.provider_customers; Stripe: a Customer and payment_intent_data[setup_future_usage]=off_session; YooKassa, which has no customer object: save_payment_method and merchant_customer_id, the user's uuid), and once the payment is paid the subscription renews by itself for the same months (billing.run_renewals; billing.set_auto_renew turns it off).  Only the provider's ids are stored, never card data; a YooKassa payment whose method YooKassa did not save is paid without auto-renewal (a WARNING says so).  A provider that cannot renew refuses it with 0A000.  Every creating call carries an idempotency key derived from our payment id (billing-checkout-<id>), so a retry gets the very same page.  No row lock is held while the provider answers.

Stripe: a Checkout Session (mode payment, one line item "<tariff title>, N months" with the total and currency, our ids in client_reference_id and metadata, expires_at = the invoice's expiry, at most 23 h 55 min after the invoice and at least Stripe's 30 minutes ahead); `success_url` and `cancel_url` default to billing.stripe_success_url and billing.stripe_cancel_url (Stripe replaces {CHECKOUT_SESSION_ID}).  YooKassa: POST /v3/payments (amount as a decimal string, capture, a redirect confirmation to `success_url`, default billing.yookassa_return_url; with billing.yookassa_receipts a 54-FZ receipt with the customer's e-mail).

Errors: no such payment or someone else's P0002; not invoiced (paid, canceled, ...), a zero total, an expired invoice, a provider billing.providers does not name, its keys not set, no e-mail for a receipt 55000; an unknown provider, a missing or non-http(s) URL, an amount the provider cannot charge in that currency 22023.  Provider failures leave the payment as it was: unreachable 08001; timeout, dropped connection, 5xx or 429 (Stripe's 409, YooKassa's 202 "still processing") 08006, retry with the same idempotency key; the key refused 08004; an answer that is not JSON 08P01; a refused request 22023 (the detail has the provider's status, code and message; YooKassa's reused Idempotence-Key with another body too); the object's state 55000 (Stripe's reused idempotency key with other parameters too); unknown object P0002; interrupted by a cancel or statement_timeout 57014.  End users call api.checkout.$$;

CREATE FUNCTION billing.confirm_payment(user_id uuid, payment_id uuid)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_confirm_payment';
COMMENT ON FUNCTION billing.confirm_payment(uuid, uuid) IS
$$"I'm back from checkout": fetches the payment from its provider now and settles it; returns the status.  Paid at the provider: paid (at the provider's time of the charge); expired: expired; declined or a delayed method that failed: failed (YooKassa's canceled maps to expired, canceled or failed by its reason); open or still processing: stays pending.  A payment that is not pending is returned as it is, without asking the provider.

Errors: no such payment or someone else's P0002.  Provider failures leave the payment as it was: unreachable 08001; timeout, dropped connection, 5xx or 429 (Stripe's 409, YooKassa's 202 "still processing") 08006, retry with the same idempotency key; the key refused 08004; an answer that is not JSON 08P01; a refused request 22023 (the detail has the provider's status, code and message; YooKassa's reused Idempotence-Key with another body too); the object's state 55000 (Stripe's reused idempotency key with other parameters too); unknown object P0002; interrupted by a cancel or statement_timeout 57014.  End users call api.confirm_payment.$$;

REVOKE ALL ON FUNCTION billing.checkout(uuid, uuid, text, text, text, boolean),
                       billing.confirm_payment(uuid, uuid) FROM PUBLIC;
-- Users reach checkout and confirm through the api schema with their own id.
GRANT EXECUTE ON FUNCTION billing.checkout(uuid, uuid, text, text, text, boolean),
                          billing.confirm_payment(uuid, uuid) TO billing_admin;

-- Not SECURITY DEFINER and no SET clause: either would make the CALL atomic
-- (PostgreSQL forbids COMMIT there), and the poller must commit between its
-- claim, its provider calls and its settles.  It is for the superuser that
-- pg_cron runs it as; every name in it is schema-qualified.
CREATE PROCEDURE billing.poll_payments(OUT result jsonb)
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'billing_poll_payments';
COMMENT ON PROCEDURE billing.poll_payments(jsonb) IS
$$The poller of every provider (pg_cron job billing-poll-payments, schedule billing.stripe_poll_schedule), for pending checkouts and refunds whose notification has not come, and for closed payments a provider could still take money for (provider_watch).  Per provider it claims up to billing.stripe_poll_batch due payments (next_poll_at, oldest first, SKIP LOCKED), moves each one's next poll forward (billing.stripe_poll_interval doubling per poll, at most billing.stripe_poll_max_interval, never past the invoice's expiry) and commits; then, holding no transaction or lock, asks the provider about each (the providers take turns; one that cannot be reached is skipped for the rest of the run, so its outage never holds up another's); then settles each answer in its own subtransaction.  A checkout still open after the invoice's expiry is expired at the provider and the payment expired.  A provider failure or a bad row is a WARNING, and that payment is simply due again later.  It also deletes Stripe webhook events older than billing.stripe_event_retention days (1,000 per run).

Returns (OUT result) {"claimed", "settled", "unchanged", "errors", "purged"}.  It commits only when CALLed as a statement of its own (CALL billing.poll_payments(NULL), as pg_cron does); inside a transaction block it does everything in the caller's transaction.  Superuser (the extension owner) only.$$;
REVOKE ALL ON PROCEDURE billing.poll_payments(jsonb) FROM PUBLIC;

-- The poller's pg_cron job, in the shared registry (30_payments.sql).
INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-poll-payments', 'billing.stripe_poll_schedule', 'CALL billing.poll_payments(NULL)');
SELECT billing.schedule_jobs();
