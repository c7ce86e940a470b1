---------------------------------------------------------------------------
-- YooKassa (yookassa.c, yookassa_provider.c, yookassa_apply.c,
-- yookassa_webhook.c): payments in roubles with a redirect confirmation,
-- unsigned notifications that are read back from the API, the poller.
---------------------------------------------------------------------------

CREATE FUNCTION billing.yookassa_webhook(body json, sender text DEFAULT NULL)
    RETURNS jsonb
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_yookassa_webhook';
COMMENT ON FUNCTION billing.yookassa_webhook(json, text) IS
    'A YooKassa notification {type: notification, event, object}: only object.id is read from the body; the payment or refund is fetched from the YooKassa API and applied as the poller would. An unknown object, a payment of no one of ours, or a fetched state that contradicts the event changes nothing and is logged. sender: the client address, checked against billing.yookassa_notify_from when that is set. Returns what it did; YooKassa unreachable is an error (08xxx), so the notification comes again.';

REVOKE ALL ON FUNCTION billing.yookassa_webhook(json, text) FROM PUBLIC;
-- The notification endpoint is granted by the HTTP layer to the role it runs as.
