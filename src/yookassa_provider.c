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
 *
 * Auto-renewal: YooKassa has no customer object.  A checkout with
 * auto_renew asks YooKassa to save the method (save_payment_method) under
 * merchant_customer_id, our own stable id of the buyer (the user's uuid,
 * kept in billing.provider_customers like Stripe's cus_ ids); the renewal
 * charges that saved method (payment_method_id) without the buyer, under
 * the job's Idempotence-Key, which YooKassa keeps for 24 hours.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
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
	if (c->customer)
	{
		/* Auto-renewal: YooKassa keeps the method for payments without the buyer. */
		appendStringInfoString(&b, ", \"save_payment_method\": true, \"merchant_customer_id\": ");
		escape_json(&b, c->customer);
	}
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

/* ---------------------------------------------------------------------
 * Auto-renewal: the buyer's id, charges of the saved method
 * --------------------------------------------------------------------- */

/*
 * YooKassa keeps no customers: merchant_customer_id is ours to choose, and
 * the user's uuid is stable and names nobody else.  No call is made.
 */
static char *
yoo_customer(const pg_uuid_t *user_id, const char *email)
{
	return billing_uuid_str(user_id);
}

static void
log_charge_failure(const pg_uuid_t *payment_id, const char *what, const YooResult *r)
{
	ereport(WARNING,
			(errmsg("yookassa could not %s for payment %s; it is asked again later",
					what, billing_uuid_str(payment_id)),
			 r->http_status ?
			 errdetail("YooKassa answered HTTP %ld (%s): %s", r->http_status,
					   r->error_code ? r->error_code : "no code",
					   r->error_description ? billing_echo(r->error_description) : "(no description)") :
			 errdetail("%s.", r->transport_error ? r->transport_error : "No response")));
}

/*
 * The charge: POST /v3/payments with the saved method.  YooKassa decides a
 * payment without the buyer at once (succeeded or canceled), or leaves it
 * pending for a moment (the poller asks again), or, rarely, pending with a
 * confirmation_url for the buyer (yookassa_apply.c passes it on).  A 202
 * ("still processing, ask again with the same key"), a 5xx, a 429 or no
 * answer is no answer about the charge: the payment stays pending and the
 * poller asks again under the same key.  A 4xx is a refusal of the request
 * itself (the method unknown to YooKassa, the key reused with another body):
 * it raises, and the poller's next attempt meets the same refusal until the
 * invoice runs out at the end of the grace period.
 */
static void *
yoo_charge(const ProviderCharge *c, bool *unreachable)
{
	char	   *text = yookassa_item_text(c->tariff_title, c->months);
	StringInfoData b;
	YooResult	r;

	*unreachable = false;
	if (c->method == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no saved yookassa payment method for payment %s",
						billing_uuid_str(&c->payment_id)),
				 errdetail("YooKassa did not report a saved method for the buyer's checkout."),
				 errhint("The buyer can check out again with auto_renew.")));
	yookassa_check_id(c->method, "payment method");

	/* The body depends on the payment and the settings only: a retry sends the same. */
	initStringInfo(&b);
	appendStringInfoString(&b, "{\"amount\": ");
	yookassa_append_amount(&b, c->total, c->currency);
	appendStringInfoString(&b, ", \"capture\": true, \"payment_method_id\": ");
	escape_json(&b, c->method);
	appendStringInfoString(&b, ", \"description\": ");
	escape_json(&b, text);
	appendStringInfoString(&b, ", \"metadata\": {\"payment_id\": ");
	escape_json(&b, billing_uuid_str(&c->payment_id));
	appendStringInfoString(&b, ", \"user_id\": ");
	escape_json(&b, billing_uuid_str(&c->user_id));
	appendStringInfoChar(&b, '}');
	if (yookassa_receipts)
	{
		char	   *email = yookassa_customer_email(&c->user_id);

		yookassa_require_email(email);
		yookassa_append_receipt(&b, email, text, c->total, c->currency);
	}
	appendStringInfoChar(&b, '}');

	yookassa_request(&r, "POST", "/v3/payments", b.data, c->idempotency_key);
	if (r.outcome == YOO_OK)
		return r.body;
	if (r.outcome == YOO_UNAVAILABLE || r.outcome == YOO_BAD_RESPONSE)
	{
		*unreachable = true;
		log_charge_failure(&c->payment_id, "charge the saved method", &r);
		return NULL;
	}
	yookassa_raise(&r, "charge the saved yookassa payment method");
}

/* Append key=value to a query string, both percent-encoded. */
static void
query_add(StringInfo q, const char *key, const char *value)
{
	const char *parts[2] = {key, value};

	if (q->len > 0)
		appendStringInfoChar(q, '&');
	for (int i = 0; i < 2; i++)
	{
		if (i == 1)
			appendStringInfoChar(q, '=');
		for (const unsigned char *p = (const unsigned char *) parts[i]; *p; p++)
		{
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
				appendStringInfoChar(q, (char) *p);
			else
				appendStringInfo(q, "%%%02X", *p);
		}
	}
}

/* A time as YooKassa writes it: "2026-12-02T01:02:03.456Z" (UTC). */
static char *
iso_time(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		elog(ERROR, "timestamp out of range");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
					(int) (fsec / 1000));
}

/*
 * Allowance for clocks: ours made the invoice, YooKassa's stamps the
 * payment made right after it (or later, by the poller).
 */
#define FIND_MARGIN (60 * 60 * USECS_PER_SEC)

/* Most pages one look-up reads (100 payments each). */
#define FIND_MAX_PAGES 1000

/*
 * Was the charge made?  YooKassa cannot search payments by metadata, so
 * list the shop's payments made since the invoice (less a margin), 100 a
 * page following next_cursor, and pick ours by metadata.payment_id.  Only
 * after a crash or a lost answer does anyone ask.  A list longer than
 * FIND_MAX_PAGES pages is given up as "none found": charging again then
 * uses the same Idempotence-Key, which YooKassa answers with the payment it
 * made under it for 24 hours.
 */
static void *
yoo_find_charge(const ProviderCharge *c, bool *unreachable)
{
	char	   *ours = billing_uuid_str(&c->payment_id);
	char	   *since = iso_time(c->created_at - FIND_MARGIN);
	char	   *cursor = NULL;

	*unreachable = false;
	for (int page = 0; page < FIND_MAX_PAGES; page++)
	{
		StringInfoData q;
		YooResult	r;
		JsonbValue *items;

		CHECK_FOR_INTERRUPTS();
		initStringInfo(&q);
		query_add(&q, "created_at.gte", since);
		query_add(&q, "limit", "100");
		if (cursor)
			query_add(&q, "cursor", cursor);
		yookassa_request(&r, "GET", psprintf("/v3/payments?%s", q.data), NULL, NULL);
		if (r.outcome != YOO_OK)
		{
			*unreachable = true;
			log_charge_failure(&c->payment_id, "list the payments", &r);
			return NULL;
		}
		items = getKeyJsonValueFromContainer(&r.body->root, "items", 5, NULL);
		if (items && items->type == jbvBinary)
		{
			JsonbIterator *it = JsonbIteratorInit(items->val.binary.data);
			JsonbValue	v;
			JsonbIteratorToken tok;

			while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			{
				JsonbContainer *md;
				char	   *pid;

				if (tok != WJB_ELEM || v.type != jbvBinary)
					continue;
				md = billing_json_obj(v.val.binary.data, "metadata");
				pid = md ? billing_json_str(md, "payment_id") : NULL;
				if (pid && strcmp(pid, ours) == 0)
					return billing_json_copy(v.val.binary.data);
			}
		}
		cursor = billing_json_str(&r.body->root, "next_cursor");
		if (cursor == NULL || cursor[0] == '\0')
			return NULL;
	}
	ereport(WARNING,
			(errmsg("yookassa lists more than %d payments since payment %s was made; its charge was not found",
					FIND_MAX_PAGES * 100, ours),
			 errdetail("A charge made under its Idempotence-Key within 24 hours is answered again, not made twice.")));
	return NULL;
}

static const char *
yoo_apply_charge(const pg_uuid_t *payment_id, void *object, const char *source,
				 const char **status)
{
	return yookassa_apply_payment(payment_id, &((Jsonb *) object)->root, source, false, status);
}

/* ---------------------------------------------------------------------
 * The poller's half
 * --------------------------------------------------------------------- */

/*
 * A checkout's payment, an automatic charge's (item->session_id is the
 * YooKassa payment the charge made; yookassa_apply.c tells them apart), or
 * a refund: read it back.
 */
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
	.customer = yoo_customer,
	.charge = yoo_charge,
	.find_charge = yoo_find_charge,
	.apply_charge = yoo_apply_charge,
};
