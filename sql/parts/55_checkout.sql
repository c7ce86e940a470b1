---------------------------------------------------------------------------
-- Checkout, whichever the provider (checkout.c, provider.c): the provider is
-- chosen when the checkout opens and stored on the payment.
---------------------------------------------------------------------------

CREATE FUNCTION billing.checkout(user_id uuid, payment_id uuid,
                                 success_url text DEFAULT NULL, cancel_url text DEFAULT NULL,
                                 provider text DEFAULT NULL)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_checkout';
COMMENT ON FUNCTION billing.checkout(uuid, uuid, text, text, text) IS
    'Open the payment page of the user''s invoiced payment at its provider (provider, or billing.providers by currency; only configured providers) and return its URL (the redirect); the payment becomes pending and stays with that provider. success_url: where the page sends the buyer back (default billing.stripe_success_url or billing.yookassa_return_url). Again for a pending payment: the same URL, no second payment page.';

CREATE FUNCTION billing.confirm_payment(user_id uuid, payment_id uuid)
    RETURNS text
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_confirm_payment';
COMMENT ON FUNCTION billing.confirm_payment(uuid, uuid) IS
    'Back from checkout: fetch the payment from its provider now and settle it (paid, expired, failed, or still pending). Returns the status.';

REVOKE ALL ON FUNCTION billing.checkout(uuid, uuid, text, text, text),
                       billing.confirm_payment(uuid, uuid) FROM PUBLIC;
-- Users reach checkout and confirm through the api schema with their own id.
GRANT EXECUTE ON FUNCTION billing.checkout(uuid, uuid, text, text, text),
                          billing.confirm_payment(uuid, uuid) TO billing_admin;

-- Not SECURITY DEFINER and no SET clause: either would make the CALL atomic
-- (PostgreSQL forbids COMMIT there), and the poller must commit between its
-- claim, its provider calls and its settles.  It is for the superuser that
-- pg_cron runs it as; every name in it is schema-qualified.
CREATE PROCEDURE billing.poll_payments(OUT result jsonb)
    LANGUAGE C
    AS 'MODULE_PATHNAME', 'billing_poll_payments';
COMMENT ON PROCEDURE billing.poll_payments(jsonb) IS
    'Ask each payment''s provider about due pending checkouts and refunds, and about closed payments it could still take money for (provider_watch): a batch per provider (billing.stripe_poll_batch) with backoff per payment (billing.stripe_poll_interval doubling up to billing.stripe_poll_max_interval), an unreachable provider skipped for the rest of the run; settle them, expire abandoned checkouts; commits between calls. Scheduled by pg_cron.';
REVOKE ALL ON PROCEDURE billing.poll_payments(jsonb) FROM PUBLIC;

-- The poller's pg_cron job, in the shared registry (30_payments.sql).
INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-poll-payments', 'billing.stripe_poll_schedule', 'CALL billing.poll_payments(NULL)');
SELECT billing.schedule_jobs();
