/*
 * yookassa_provider.c — YooKassa behind the provider boundary (provider.h):
 * create a payment with a redirect confirmation (and a 54-FZ receipt when
 * billing.yookassa_receipts is on), read it back, cancel or refund it, and
 * the poller's reads.  What an object means is yookassa_apply.c's; the HTTP
 * client is yookassa.c's.
 *
 * Cancelling an unpaid payment: YooKassa cancels only a payment that is
 * waiting_for_capture.  One still waiting for the buyer's confirmation
 * (pending) cannot be cancelled, so ours becomes canceled at once and is
 * watched: if the buyer confirms after all, the money is refunded (see
 * yookassa_apply.c).  The buyer asked to cancel, so nothing they could still
 * do on YooKassa's page may reopen the purchase.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "common.h"
#include "payments.h"
#include "provider.h"
#include "stripe.h"				/* billing_json_*: reading JSON objects */
#include "yookassa.h"

static char *
yoo_checkout(const ProviderCheckout *c, char **url_out)
{
	const char *return_url = c->return_url ? c->return_url : yookassa_return_url;
	char	   *text = yookassa_item_text(c->tariff_title, c->months);
	StringInfoData b;
	Jsonb	   *pay;
	JsonbContainer *conf;
	char	   *id;
	char	   *st;
	char	   *url;

	if (return_url == NULL || return_url[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("success_url is required"),
				 errhint("Pass success_url or set billing.yookassa_return_url.")));
	if (yookassa_receipts)
		yookassa_require_email(c->email);

	/*
	 * The body depends on the invoice and the settings only, so that a retry
	 * under the same Idempotence-Key sends the same request.
	 */
	initStringInfo(&b);
	appendStringInfoString(&b, "{\"amount\": ");
	yookassa_append_amount(&b, c->total, c->currency);
	appendStringInfoString(&b, ", \"capture\": true, \"confirmation\": {\"type\": \"redirect\", \"return_url\": ");
	escape_json(&b, return_url);
	appendStringInfoString(&b, "}, \"description\": ");
	escape_json(&b, text);
	appendStringInfoString(&b, ", \"metadata\": {\"payment_id\": ");
	escape_json(&b, billing_uuid_str(&c->payment_id));
	appendStringInfoString(&b, ", \"user_id\": ");
	escape_json(&b, billing_uuid_str(&c->user_id));
	appendStringInfoChar(&b, '}');
	if (yookassa_receipts)
		yookassa_append_receipt(&b, c->email, text, c->total, c->currency);
	appendStringInfoChar(&b, '}');

	pay = yookassa_call("POST", "/v3/payments", b.data,
						yookassa_idempotence_key("checkout", &c->payment_id),
						"create the yookassa payment");
	id = billing_json_str(&pay->root, "id");
	st = billing_json_str(&pay->root, "status");
	conf = billing_json_obj(&pay->root, "confirmation");
	url = conf ? billing_json_str(conf, "confirmation_url") : NULL;
	if (id == NULL || !yookassa_id_ok(id) || st == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("yookassa returned a payment without id or status")));
	if (strcmp(st, "pending") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the yookassa payment of this payment is %s", st),
				 errhint("A notification or the poller settles it; or create a new invoice.")));
	if (url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("yookassa returned a payment without confirmation_url")));
	*url_out = url;
	return id;
}

static Jsonb *
fetch_payment(const char *yoo_id)
{
	yookassa_check_id(yoo_id, "payment");
	return yookassa_call("GET", psprintf("/v3/payments/%s", yoo_id), NULL, NULL,
						 "read the yookassa payment");
}

static void
yoo_confirm(const pg_uuid_t *payment_id, const char *session_id, const char **status)
{
	Jsonb	   *pay = fetch_payment(session_id);

	yookassa_apply_payment(payment_id, &pay->root, "api", false, status);
}

static PaymentStatus
yoo_cancel_unpaid(const PaymentInfo *p, PaymentStatus proposed)
{
	Jsonb	   *pay = fetch_payment(p->provider_session_id);
	char	   *st = billing_json_str(&pay->root, "status");

	if (st && strcmp(st, "pending") == 0)
	{
		/* Cannot be cancelled at YooKassa: canceled here, and watched. */
		yookassa_watch(&p->id, true);
		return proposed;
	}
	if (st && strcmp(st, "waiting_for_capture") == 0)
	{
		Jsonb	   *c = yookassa_call("POST",
									  psprintf("/v3/payments/%s/cancel", p->provider_session_id),
									  "{}", yookassa_idempotence_key("cancel", &p->id),
									  "cancel the yookassa payment");
		char	   *cst = billing_json_str(&c->root, "status");

		if (cst && strcmp(cst, "canceled") == 0)
			return proposed;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("yookassa did not cancel the payment"),
				 errdetail("It is %s there.", cst ? cst : "in an unknown state"),
				 errhint("Try again.")));
	}
	if (st && strcmp(st, "canceled") == 0)
		return proposed;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("payment was completed at yookassa before it could be canceled"),
			 errhint("It will show as paid shortly; cancel it again then to get a refund.")));
	return proposed;			/* keep the compiler quiet */
}

static PaymentStatus
yoo_refund(const PaymentInfo *p, PaymentStatus proposed, char **provider_ref)
{
	StringInfoData b;
	Jsonb	   *refund;
	char	   *rid;
	char	   *st;

	yookassa_check_id(p->provider_session_id, "payment");
	initStringInfo(&b);
	appendStringInfoString(&b, "{\"payment_id\": ");
	escape_json(&b, p->provider_session_id);
	appendStringInfoString(&b, ", \"amount\": ");
	yookassa_append_amount(&b, p->total, p->currency);
	if (yookassa_receipts)
	{
		char	   *email = yookassa_customer_email(&p->user_id);

		yookassa_require_email(email);
		yookassa_append_receipt(&b, email, yookassa_item_text(p->tariff_title, p->months), p->total, p->currency);
	}
	appendStringInfoChar(&b, '}');

	refund = yookassa_call("POST", "/v3/refunds", b.data,
						   yookassa_idempotence_key("refund", &p->id), "refund the payment");
	rid = billing_json_str(&refund->root, "id");
	st = billing_json_str(&refund->root, "status");
	if (rid == NULL || !yookassa_id_ok(rid) || st == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("yookassa returned a refund without id or status")));
	if (strcmp(st, "canceled") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("yookassa could not refund the payment"),
				 errdetail("Refund %s is canceled.", rid)));
	*provider_ref = rid;
	return strcmp(st, "succeeded") == 0 ? PAYMENT_REFUNDED : proposed;
}

static void *
yoo_poll_fetch(const ProviderPollItem *item, TimestampTz now, bool *down)
{
	YooResult	r;

	*down = false;
	if (item->status == PAYMENT_REFUND_PENDING)
	{
		if (!yookassa_id_ok(item->refund_id))
		{
			ereport(WARNING,
					(errmsg("payment %s is refund_pending without a yookassa refund id",
							billing_uuid_str(&item->id)),
					 errhint("Settle it by hand once the refund is known.")));
			return NULL;
		}
		yookassa_request(&r, "GET", psprintf("/v3/refunds/%s", item->refund_id), NULL, NULL);
	}
	else
	{
		if (!yookassa_id_ok(item->session_id))
			return NULL;
		yookassa_request(&r, "GET", psprintf("/v3/payments/%s", item->session_id), NULL, NULL);
	}
	if (r.outcome != YOO_OK)
	{
		*down = yookassa_unreachable(&r);
		yookassa_log_failure(&item->id, &r);
		return NULL;
	}
	return r.body;
}

static const char *
yoo_poll_apply(const ProviderPollItem *item, void *object, const char **status)
{
	Jsonb	   *obj = (Jsonb *) object;

	if (item->status == PAYMENT_REFUND_PENDING)
		return yookassa_apply_refund(&item->id, &obj->root, "poll", status);
	return yookassa_apply_payment(&item->id, &obj->root, "poll", true, status);
}

const BillingProvider yookassa_provider = {
	.name = "yookassa",
	.checkout = yoo_checkout,
	.confirm = yoo_confirm,
	.cancel_unpaid = yoo_cancel_unpaid,
	.refund = yoo_refund,
	.poll_fetch = yoo_poll_fetch,
	.poll_apply = yoo_poll_apply,
};
