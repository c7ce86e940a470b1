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

/* Expire the checkout session (the payment then becomes canceled). */
static PaymentStatus
stripe_cancel_unpaid(const PaymentInfo *p, PaymentStatus proposed)
{
	StripeResult r;
	Jsonb	   *session;
	char	   *st;
	char	   *pay;

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
};
