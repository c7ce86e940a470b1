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
$$YooKassa's notification {type: "notification", event, object}.  YooKassa signs nothing, so the body is never trusted: only object.id is read, the payment (or refund) is fetched from the YooKassa API (GET /v3/payments/{id} or /v3/refunds/{id}) and applied as the poller would.  `sender`: the client address (api.yookassa_webhook passes the last X-Forwarded-For entry), checked against billing.yookassa_notify_from when that is set.

Returns {"received": true, "event", "result", ...}; result is applied, unchanged, waiting, mismatch, ignored (other events), unknown_object (YooKassa does not know the id), unknown_payment (none of ours), contradiction (the API does not say what the event says: a forgery or an old notification) or late_refunded (money taken after we closed the payment, refunded); the last four change nothing else and are logged as WARNINGs.

Errors: YooKassa unreachable 08xxx (so the notification comes again; a success means the result is committed); a malformed notification 22023; a sender billing.yookassa_notify_from does not list 42501; the shop id or key not set 55000.  YooKassa calls api.yookassa_webhook.$$;

REVOKE ALL ON FUNCTION billing.yookassa_webhook(json, text) FROM PUBLIC;
-- The notification endpoint is granted by the HTTP layer to the role it runs as.
