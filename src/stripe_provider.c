/*
 * stripe_provider.c — Stripe behind the provider boundary (provider.h):
 * open a Checkout Session, fetch it back, expire it, refund at Stripe, and
 * the poller's fetch of a session or refund.  What a Stripe object means for
 * a payment is stripe_apply.c's; the HTTP client is stripe.c's.
 *
 * Every call is idempotent: the Idempotency-Key is derived from our payment
 * id, so a retry, a second caller, or a retry after a rollback gets the very
 * same session or refund.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "common.h"
#include "clock.h"
#include "payments.h"
#include "provider.h"
#include "stripe.h"

/* Stripe accepts a session expiry between 30 minutes and 24 hours ahead. */
#define SESSION_MIN_LIFETIME (31 * SECS_PER_MINUTE)
#define SESSION_MAX_LIFETIME (24 * SECS_PER_HOUR - 5 * SECS_PER_MINUTE)

static char *
lower_str(const char *s)
{
	char	   *r = pstrdup(s);

	for (char *p = r; *p; p++)
		*p = pg_tolower((unsigned char) *p);
	return r;
}

/* Stripe's idempotency keys live 24 h, as long as a session can. */
static char *
idempotency_key(const char *what, const pg_uuid_t *payment_id)
{
	return psprintf("billing-%s-%s", what, billing_uuid_str(payment_id));
}

static char *
stripe_checkout(const ProviderCheckout *c, char **url_out)
{
	const char *success_url = c->return_url ? c->return_url : stripe_success_url;
	const char *cancel_url = c->cancel_url ? c->cancel_url : stripe_cancel_url;
	StringInfoData form;
	int64		session_end;
	Jsonb	   *session;
	char	   *session_id;
	char	   *url;
	char	   *session_status;

	if (success_url == NULL || success_url[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("success_url is required"),
				 errhint("Pass success_url or set billing.stripe_success_url.")));

	/*
	 * The session ends with the invoice (Stripe's 30 min .. 24 h bounds
	 * permitting), so a buyer cannot pay an invoice we have let go.  The
	 * value must be the same on every attempt, or a retry under the same
	 * Idempotency-Key would be refused as "other parameters": it depends on
	 * the invoice only (created_at + the longest lifetime), except in an
	 * invoice's last half hour, where Stripe's minimum is rounded up to a
	 * 10-minute grid so that retries close together still agree.
	 */
	session_end = Min(timestamptz_to_time_t(c->expires_at),
					  timestamptz_to_time_t(c->created_at) + SESSION_MAX_LIFETIME);
	if (session_end < timestamptz_to_time_t(c->now) + SESSION_MIN_LIFETIME)
	{
		session_end = timestamptz_to_time_t(c->now) + SESSION_MIN_LIFETIME;
		session_end += 600 - session_end % 600;
	}

	initStringInfo(&form);
	stripe_form_add(&form, "mode", "payment");
	stripe_form_add(&form, "line_items[0][quantity]", "1");
	stripe_form_add(&form, "line_items[0][price_data][currency]", lower_str(c->currency));
	stripe_form_add(&form, "line_items[0][price_data][unit_amount]",
					psprintf(INT64_FORMAT, stripe_amount(c->total, c->currency)));
	stripe_form_add(&form, "line_items[0][price_data][product_data][name]",
					psprintf("%s, %d month%s", c->tariff_title, c->months,
							 c->months == 1 ? "" : "s"));
	stripe_form_add(&form, "client_reference_id", billing_uuid_str(&c->payment_id));
	stripe_form_add(&form, "metadata[payment_id]", billing_uuid_str(&c->payment_id));
	stripe_form_add(&form, "metadata[user_id]", billing_uuid_str(&c->user_id));
	stripe_form_add(&form, "payment_intent_data[metadata][payment_id]", billing_uuid_str(&c->payment_id));
	stripe_form_add(&form, "success_url", success_url);
	if (cancel_url && cancel_url[0])
		stripe_form_add(&form, "cancel_url", cancel_url);
	stripe_form_add(&form, "expires_at", psprintf(INT64_FORMAT, session_end));
	if (c->customer)
	{
		/* Auto-renewal: Stripe keeps the card under the customer for off-session charges. */
		stripe_form_add(&form, "customer", c->customer);
		stripe_form_add(&form, "payment_intent_data[setup_future_usage]", "off_session");
	}

	session = stripe_call("POST", "/v1/checkout/sessions", form.data,
						  idempotency_key("checkout", &c->payment_id),
						  "create the checkout session");
	session_id = billing_json_str(&session->root, "id");
	url = billing_json_str(&session->root, "url");
	session_status = billing_json_str(&session->root, "status");
	if (session_id == NULL || url == NULL ||
		(strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("stripe returned a checkout session without id or url")));
	stripe_check_id(session_id, "checkout session");
	if (session_status && strcmp(session_status, "open") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the checkout session of this payment is %s at stripe", session_status),
				 errhint("Call billing.confirm_payment, or create a new invoice.")));
	*url_out = url;
	return session_id;
}

static Jsonb *
fetch_session(const char *session_id, const char *what)
{
	StringInfoData q;

	stripe_check_id(session_id, "checkout session");
	initStringInfo(&q);
	stripe_form_add(&q, "expand[]", "payment_intent.latest_charge");
	return stripe_call("GET", psprintf("/v1/checkout/sessions/%s", session_id), q.data,
					   NULL, what);
}

static void
stripe_confirm(const pg_uuid_t *payment_id, const char *session_id, const char **status)
{
	Jsonb	   *session = fetch_session(session_id, "fetch the checkout session");

	stripe_apply_session(payment_id, &session->root, NULL, NULL, "api", NULL, status);
}

/*
 * An automatic charge waiting for the buyer: cancel its PaymentIntent, so the
 * page it sent can no longer take the money.
 */
static PaymentStatus
cancel_intent(const PaymentInfo *p, PaymentStatus proposed)
{
	StripeResult r;

	stripe_check_id(p->provider_session_id, "payment intent");
	stripe_request(&r, "POST", psprintf("/v1/payment_intents/%s/cancel", p->provider_session_id),
				   NULL, idempotency_key("cancel", &p->id));
	if (r.outcome == STRIPE_OK)
		return proposed;
	if (r.outcome == STRIPE_REFUSED && r.error_code &&
		strcmp(r.error_code, "payment_intent_unexpected_state") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment was completed at stripe before it could be canceled"),
				 errhint("It will show as paid shortly; cancel it again then to get a refund.")));
	stripe_raise(&r, "cancel the payment intent");
	return proposed;			/* keep the compiler quiet */
}

/* Expire the checkout session (the payment then becomes canceled). */
static PaymentStatus
stripe_cancel_unpaid(const PaymentInfo *p, PaymentStatus proposed)
{
	StripeResult r;
	Jsonb	   *session;
	char	   *st;
	char	   *pay;

	if (p->is_renewal)
		return cancel_intent(p, proposed);

	stripe_check_id(p->provider_session_id, "checkout session");
	stripe_request(&r, "POST",
				   psprintf("/v1/checkout/sessions/%s/expire", p->provider_session_id),
				   NULL, idempotency_key("expire", &p->id));
	if (r.outcome == STRIPE_OK)
		return proposed;		/* expired at Stripe: canceled here */
	if (r.outcome != STRIPE_REFUSED || r.http_status != 400)
		stripe_raise(&r, "expire the checkout session");

	/* Stripe refused: the session is not open any more.  Why? */
	session = fetch_session(p->provider_session_id, "fetch the checkout session");
	st = billing_json_str(&session->root, "status");
	pay = billing_json_str(&session->root, "payment_status");
	if (st && strcmp(st, "expired") == 0)
		return proposed;
	if (st && strcmp(st, "complete") == 0 && pay && strcmp(pay, "paid") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment was completed at stripe before it could be canceled"),
				 errhint("It will show as paid shortly; cancel it again then to get a refund.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("payment is being processed at stripe and cannot be canceled now"),
			 errhint("Try again when it has succeeded or failed.")));
	return proposed;			/* keep the compiler quiet */
}

/* Refund the payment at Stripe: refunded when it succeeded at once. */
static PaymentStatus
stripe_refund(const PaymentInfo *p, PaymentStatus proposed, char **provider_ref)
{
	StringInfoData form;
	Jsonb	   *refund;
	char	   *pi = p->provider_payment_intent;
	char	   *refund_id;
	char	   *st;

	if (pi == NULL)
	{
		/* Paid by a path that did not record the intent: ask the session. */
		Jsonb	   *session = fetch_session(p->provider_session_id, "fetch the checkout session");
		JsonbContainer *obj = billing_json_obj(&session->root, "payment_intent");

		pi = obj ? billing_json_str(obj, "id") : billing_json_str(&session->root, "payment_intent");
		if (pi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("stripe knows no payment for this checkout session"),
					 errhint("Refund it at Stripe and settle it as refunded.")));
	}

	initStringInfo(&form);
	stripe_form_add(&form, "payment_intent", pi);
	stripe_form_add(&form, "reason", "requested_by_customer");
	stripe_form_add(&form, "metadata[payment_id]", billing_uuid_str(&p->id));
	refund = stripe_call("POST", "/v1/refunds", form.data, idempotency_key("refund", &p->id),
						 "refund the payment");
	refund_id = billing_json_str(&refund->root, "id");
	st = billing_json_str(&refund->root, "status");
	if (refund_id == NULL || st == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("stripe returned a refund without id or status")));
	stripe_check_id(refund_id, "refund");
	if (strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stripe could not refund the payment"),
				 errdetail("Refund %s is %s.", refund_id, st)));

	*provider_ref = refund_id;
	return strcmp(st, "succeeded") == 0 ? PAYMENT_REFUNDED : proposed;
}

/* ---------------------------------------------------------------------
 * Auto-renewal: the customer, off-session charges
 * --------------------------------------------------------------------- */

static char *
stripe_customer(const pg_uuid_t *user_id, const char *email)
{
	StringInfoData form;
	Jsonb	   *customer;
	char	   *id;

	initStringInfo(&form);
	if (email)
		stripe_form_add(&form, "email", email);
	stripe_form_add(&form, "metadata[user_id]", billing_uuid_str(user_id));
	customer = stripe_call("POST", "/v1/customers", form.data,
						   psprintf("billing-customer-%s", billing_uuid_str(user_id)),
						   "create the customer");
	id = billing_json_str(&customer->root, "id");
	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("stripe returned a customer without id")));
	stripe_check_id(id, "customer");
	return id;
}

static void
log_charge_failure(const pg_uuid_t *payment_id, const char *what, const StripeResult *r)
{
	ereport(WARNING,
			(errmsg("stripe could not %s for payment %s; it is asked again later",
					what, billing_uuid_str(payment_id)),
			 r->http_status ?
			 errdetail("Stripe answered HTTP %ld (%s): %s", r->http_status,
					   r->error_code ? r->error_code : "no code",
					   r->error_message ? r->error_message : "(no message)") :
			 errdetail("%s.", r->transport_error ? r->transport_error : "No response")));
}

/*
 * The payment intent a call answered with: the body, or for a card error
 * (402) the intent Stripe puts in the error object (it exists, declined).
 * NULL with *unreachable for no answer; a refusal without an intent raises.
 */
static Jsonb *
intent_of(StripeResult *r, const pg_uuid_t *payment_id, const char *what, bool *unreachable)
{
	JsonbContainer *err;
	JsonbContainer *pi;

	*unreachable = false;
	if (r->outcome == STRIPE_OK)
		return r->body;
	if (r->outcome == STRIPE_UNAVAILABLE || r->outcome == STRIPE_BAD_RESPONSE)
	{
		*unreachable = true;
		log_charge_failure(payment_id, what, r);
		return NULL;
	}
	err = r->body ? billing_json_obj(&r->body->root, "error") : NULL;
	pi = err ? billing_json_obj(err, "payment_intent") : NULL;
	if (pi == NULL)
		stripe_raise(r, what);
	return billing_json_copy(pi);
}

/* The customer's newest saved card, when the payment does not name one. */
static char *
newest_card(const ProviderCharge *c)
{
	StringInfoData q;
	Jsonb	   *list;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue *data;

	initStringInfo(&q);
	stripe_form_add(&q, "customer", c->customer);
	stripe_form_add(&q, "type", "card");
	stripe_form_add(&q, "limit", "1");
	list = stripe_call("GET", "/v1/payment_methods", q.data, NULL, "list the saved cards");
	data = getKeyJsonValueFromContainer(&list->root, "data", 4, NULL);
	if (data == NULL || data->type != jbvBinary)
		return NULL;
	it = JsonbIteratorInit(data->val.binary.data);
	while (JsonbIteratorNext(&it, &v, true) != WJB_DONE)
		if (v.type == jbvBinary)
			return billing_json_str(v.val.binary.data, "id");
	return NULL;
}

/*
 * An off-session charge the bank refused without the buyer (3-D Secure:
 * authentication_required) is confirmed again on-session with a return URL:
 * Stripe answers with the page where the buyer completes this very payment
 * (next_action.redirect_to_url).  Any other intent is returned as it is.
 */
static Jsonb *
needs_buyer(Jsonb *pi, const pg_uuid_t *payment_id, bool *unreachable)
{
	JsonbContainer *err = billing_json_obj(&pi->root, "last_payment_error");
	char	   *code = err ? billing_json_str(err, "code") : NULL;
	char	   *st = billing_json_str(&pi->root, "status");
	char	   *id = billing_json_str(&pi->root, "id");
	JsonbContainer *pm_obj;
	char	   *pm = billing_json_str(&pi->root, "payment_method");
	StringInfoData form;
	StripeResult r;

	if (code == NULL || strcmp(code, "authentication_required") != 0 || id == NULL ||
		st == NULL || strcmp(st, "requires_payment_method") != 0)
		return pi;
	if (pm == NULL && (pm_obj = billing_json_obj(err, "payment_method")) != NULL)
		pm = billing_json_str(pm_obj, "id");
	stripe_check_id(id, "payment intent");
	initStringInfo(&form);
	if (pm)
		stripe_form_add(&form, "payment_method", pm);
	stripe_form_add(&form, "return_url",
					stripe_success_url && stripe_success_url[0] ? stripe_success_url :
					"https://example.invalid/");
	stripe_form_add(&form, "expand[]", "latest_charge");
	stripe_request(&r, "POST", psprintf("/v1/payment_intents/%s/confirm", id), form.data,
				   psprintf("billing-authenticate-%s", billing_uuid_str(payment_id)));
	return intent_of(&r, payment_id, "ask for the buyer's authentication", unreachable);
}

static void *
stripe_charge(const ProviderCharge *c, bool *unreachable)
{
	StringInfoData form;
	StripeResult r;
	Jsonb	   *pi;
	const char *method = c->method;

	if (method == NULL)
		method = newest_card(c);
	if (method == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("stripe customer %s has no saved card", c->customer),
				 errhint("The buyer can check out again with auto_renew.")));
	stripe_check_id(method, "payment method");

	initStringInfo(&form);
	stripe_form_add(&form, "amount", psprintf(INT64_FORMAT, stripe_amount(c->total, c->currency)));
	stripe_form_add(&form, "currency", lower_str(c->currency));
	stripe_form_add(&form, "customer", c->customer);
	stripe_form_add(&form, "payment_method", method);
	stripe_form_add(&form, "off_session", "true");
	stripe_form_add(&form, "confirm", "true");
	stripe_form_add(&form, "description",
					psprintf("%s, %d month%s (renewal)", c->tariff_title, c->months,
							 c->months == 1 ? "" : "s"));
	stripe_form_add(&form, "metadata[payment_id]", billing_uuid_str(&c->payment_id));
	stripe_form_add(&form, "metadata[user_id]", billing_uuid_str(&c->user_id));
	stripe_form_add(&form, "expand[]", "latest_charge");
	stripe_request(&r, "POST", "/v1/payment_intents", form.data, c->idempotency_key);
	pi = intent_of(&r, &c->payment_id, "charge the saved card", unreachable);
	if (pi == NULL)
		return NULL;

	return needs_buyer(pi, &c->payment_id, unreachable);
}

/* The payment's intent among the customer's, by our payment id in its metadata. */
static void *
stripe_find_charge(const ProviderCharge *c, bool *unreachable)
{
	StringInfoData q;
	StripeResult r;
	JsonbValue *data;
	JsonbIterator *it;
	JsonbValue	v;
	char	   *ours = billing_uuid_str(&c->payment_id);

	*unreachable = false;
	initStringInfo(&q);
	stripe_form_add(&q, "customer", c->customer);
	/* Stripe's list is strongly consistent (its search is not). */
	stripe_form_add(&q, "created[gte]",
					psprintf(INT64_FORMAT, (int64) timestamptz_to_time_t(c->created_at) - 3600));
	stripe_form_add(&q, "limit", "100");
	stripe_form_add(&q, "expand[]", "data.latest_charge");
	stripe_request(&r, "GET", "/v1/payment_intents", q.data, NULL);
	if (r.outcome != STRIPE_OK)
	{
		*unreachable = true;
		log_charge_failure(&c->payment_id, "list the customer's charges", &r);
		return NULL;
	}
	data = getKeyJsonValueFromContainer(&r.body->root, "data", 4, NULL);
	if (data == NULL || data->type != jbvBinary)
		return NULL;
	it = JsonbIteratorInit(data->val.binary.data);
	while (JsonbIteratorNext(&it, &v, true) != WJB_DONE)
	{
		JsonbContainer *md;
		char	   *pid;

		if (v.type != jbvBinary)
			continue;
		md = billing_json_obj(v.val.binary.data, "metadata");
		pid = md ? billing_json_str(md, "payment_id") : NULL;
		if (pid && strcmp(pid, ours) == 0)
			return billing_json_copy(v.val.binary.data);
	}
	return NULL;
}

static const char *
stripe_apply_charge(const pg_uuid_t *payment_id, void *object, const char *source,
					const char **status)
{
	return stripe_apply_intent(payment_id, &((Jsonb *) object)->root, NULL, NULL, source,
							   NULL, status);
}

/* ---------------------------------------------------------------------
 * The poller's half
 * --------------------------------------------------------------------- */

static void
log_failure(const ProviderPollItem *item, const StripeResult *r)
{
	ereport(WARNING,
			(errmsg("stripe poll of payment %s failed; retrying after backoff", billing_uuid_str(&item->id)),
			 r->http_status ?
			 errdetail("Stripe answered HTTP %ld (%s): %s", r->http_status,
					   r->error_code ? r->error_code : (r->error_type ? r->error_type : "no code"),
					   r->error_message ? r->error_message : "(no message)") :
			 errdetail("%s.", r->transport_error ? r->transport_error : "No response")));
}

static bool
unreachable(const StripeResult *r)
{
	return r->outcome == STRIPE_UNAVAILABLE && r->http_status == 0;
}

/*
 * Ask Stripe about one payment.  Returns the object to apply, or NULL after
 * logging why not.
 */
/*
 * A pending automatic charge: fetch its intent; one that waits for the
 * buyer's authentication gets its page (needs_buyer); one still unpaid when
 * the payment expires (the end of the grace period) is canceled at Stripe,
 * so it can no longer take the money.
 */
static void *
poll_intent(const ProviderPollItem *item, TimestampTz now, bool *down)
{
	StripeResult r;
	StringInfoData q;
	Jsonb	   *pi;
	char	   *st;

	stripe_check_id(item->session_id, "payment intent");
	initStringInfo(&q);
	stripe_form_add(&q, "expand[]", "latest_charge");
	stripe_request(&r, "GET", psprintf("/v1/payment_intents/%s", item->session_id), q.data, NULL);
	if (r.outcome != STRIPE_OK)
	{
		*down = unreachable(&r);
		log_failure(item, &r);
		return NULL;
	}
	pi = r.body;
	st = billing_json_str(&pi->root, "status");
	if (st && item->expires_at <= now &&
		(strcmp(st, "requires_payment_method") == 0 || strcmp(st, "requires_action") == 0 ||
		 strcmp(st, "requires_confirmation") == 0))
	{
		stripe_request(&r, "POST", psprintf("/v1/payment_intents/%s/cancel", item->session_id),
					   NULL, psprintf("billing-cancel-%s", billing_uuid_str(&item->id)));
		if (r.outcome == STRIPE_OK)
			return r.body;
		*down = unreachable(&r);
		log_failure(item, &r);
		return NULL;
	}
	pi = needs_buyer(pi, &item->id, down);
	return pi;
}

static void *
stripe_poll_fetch(const ProviderPollItem *item, TimestampTz now, bool *down)
{
	StripeResult r;
	StringInfoData q;
	char	   *path;

	*down = false;
	initStringInfo(&q);
	if (item->status == PAYMENT_REFUND_PENDING)
	{
		if (item->refund_id == NULL)
		{
			ereport(WARNING,
					(errmsg("payment %s is refund_pending without a stripe refund id", billing_uuid_str(&item->id)),
					 errhint("Settle it by hand once the refund is known.")));
			return NULL;
		}
		stripe_check_id(item->refund_id, "refund");
		stripe_request(&r, "GET", psprintf("/v1/refunds/%s", item->refund_id), NULL, NULL);
		if (r.outcome != STRIPE_OK)
		{
			*down = unreachable(&r);
			log_failure(item, &r);
			return NULL;
		}
		return r.body;
	}

	if (item->session_id == NULL || item->status != PAYMENT_PENDING)
		return NULL;
	if (item->is_renewal)
		return poll_intent(item, now, down);
	stripe_check_id(item->session_id, "checkout session");
	path = psprintf("/v1/checkout/sessions/%s", item->session_id);
	stripe_form_add(&q, "expand[]", "payment_intent.latest_charge");
	stripe_request(&r, "GET", path, q.data, NULL);
	if (r.outcome != STRIPE_OK)
	{
		*down = unreachable(&r);
		log_failure(item, &r);
		return NULL;
	}

	/*
	 * Still open although the invoice has run out (the session may live a
	 * little longer, Stripe's minimum being 30 minutes): expire it, so it
	 * can no longer be paid, then settle what Stripe says it is.
	 */
	{
		char	   *st = billing_json_str(&r.body->root, "status");

		if (st && strcmp(st, "open") == 0 && item->expires_at <= now)
		{
			StripeResult e;

			stripe_request(&e, "POST", psprintf("%s/expire", path), NULL,
						   psprintf("billing-expire-%s", billing_uuid_str(&item->id)));
			if (e.outcome == STRIPE_OK)
				return e.body;
			/* Completed meanwhile (400), or Stripe failing: fetch once more next time. */
			*down = unreachable(&e);
			log_failure(item, &e);
			return NULL;
		}
	}
	return r.body;
}

static const char *
stripe_poll_apply(const ProviderPollItem *item, void *object, const char **status)
{
	Jsonb	   *obj = (Jsonb *) object;

	if (item->status == PAYMENT_REFUND_PENDING)
		return stripe_apply_refund(&item->id, &obj->root, NULL, "poll", NULL, status);
	if (item->is_renewal)
		return stripe_apply_intent(&item->id, &obj->root, NULL, NULL, "poll", NULL, status);
	return stripe_apply_session(&item->id, &obj->root, NULL, NULL, "poll", NULL, status);
}

const BillingProvider stripe_provider = {
	.name = "stripe",
	.checkout = stripe_checkout,
	.confirm = stripe_confirm,
	.cancel_unpaid = stripe_cancel_unpaid,
	.refund = stripe_refund,
	.poll_fetch = stripe_poll_fetch,
	.poll_apply = stripe_poll_apply,
	.customer = stripe_customer,
	.charge = stripe_charge,
	.find_charge = stripe_find_charge,
	.apply_charge = stripe_apply_charge,
};
