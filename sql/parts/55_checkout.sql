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
