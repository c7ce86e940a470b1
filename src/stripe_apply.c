/*
 * stripe_apply.c — what a Stripe object (a Checkout Session, a Refund) means
 * for one of our payments, applied through payment_settle_locked.  The webhook,
 * confirm_payment and the poller all come through here, so a paid session
 * is the same outcome whichever of them sees it first.
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/json.h"

#include "clock.h"
#include "common.h"
#include "payments.h"
#include "stripe.h"

/*
 * {"stripe_object": ..., "stripe_event": ...} for the payment event's
 * detail, and a failed charge's codes and attempt when failure_code is set.
 */
static char *
failure_detail(const char *event_id, const char *object_id, const char *failure_code,
			   const char *decline_code, int32 attempt)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"stripe_object\": ");
	escape_json(&s, object_id ? object_id : "");
	if (event_id)
	{
		appendStringInfoString(&s, ", \"stripe_event\": ");
		escape_json(&s, event_id);
	}
	if (failure_code)
	{
		appendStringInfoString(&s, ", \"failure_code\": ");
		escape_json(&s, failure_code);
		if (decline_code)
		{
			appendStringInfoString(&s, ", \"decline_code\": ");
			escape_json(&s, decline_code);
		}
		appendStringInfo(&s, ", \"attempt\": %d", attempt);
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

static char *
detail_json(const char *event_id, const char *object_id)
{
	return failure_detail(event_id, object_id, NULL, NULL, 0);
}

/*
 * Settle `outcome` through the state machine (payments.c).  What it calls
 * stale (a late "expired" after "paid", events out of order) is reported,
 * not an error: Stripe would otherwise retry the event for days.
 */
static const char *
settle(PaymentInfo *p, PaymentStatus outcome, const char *provider_ref,
	   const TimestampTz *at, const char *source, const char *event_id,
	   const char *object_id, const char **status)
{
	PaymentSettleResult r = payment_settle_locked(p, outcome, provider_ref, at, source,
												  detail_json(event_id, object_id));

	*status = payment_status_name(p->status);
	if (r == PAYMENT_STALE && outcome == PAYMENT_PAID)
		/* Money arrived for a payment we had closed: someone must refund it. */
		ereport(WARNING,
				(errmsg("stripe reports payment %s paid, but it is %s",
						billing_uuid_str(&p->id), *status),
				 errdetail("Stripe object %s.", object_id ? object_id : "?"),
				 errhint("Refund it at Stripe; the payment was not changed.")));
	return payment_settle_result_name(r);
}

/* The id of an expandable field: a string, or an expanded object's "id". */
static char *
expandable_id(JsonbContainer *c, const char *key, JsonbContainer **expanded)
{
	char	   *s = billing_json_str(c, key);

	*expanded = NULL;
	if (s)
		return s;
	*expanded = billing_json_obj(c, key);
	return *expanded ? billing_json_str(*expanded, "id") : NULL;
}

/*
 * The method a successful intent was paid with, as Stripe reports it: the
 * customer and payment method ids, and the card when the charge is expanded.
 */
static void
remember_method(PaymentInfo *p, JsonbContainer *pi, const char *customer)
{
	JsonbContainer *expanded;
	char	   *method = expandable_id(pi, "payment_method", &expanded);
	JsonbContainer *charge = billing_json_obj(pi, "latest_charge");
	JsonbContainer *details = charge ? billing_json_obj(charge, "payment_method_details") : NULL;
	JsonbContainer *card = details ? billing_json_obj(details, "card") : NULL;
	char	   *last4 = card ? billing_json_str(card, "last4") : NULL;

	if (customer == NULL)
		customer = expandable_id(pi, "customer", &expanded);
	/* Ids only, never card data: the brand and the last four digits are what people see. */
	if (last4 && (strlen(last4) != 4 || strspn(last4, "0123456789") != 4))
		last4 = NULL;
	payment_remember_method(p, customer, method,
							card ? billing_json_str(card, "brand") : NULL, last4);
}

/* The time of the intent's charge, when Stripe tells it. */
static bool
charge_time(JsonbContainer *pi, TimestampTz *out)
{
	JsonbContainer *charge = pi ? billing_json_obj(pi, "latest_charge") : NULL;
	int64		created;

	if (charge && billing_json_int(charge, "created", &created) &&
		created > 0 && created < ((int64) 1) << 40)
	{
		*out = time_t_to_timestamptz((pg_time_t) created);
		return true;
	}
	return false;
}

const char *
stripe_apply_intent(const pg_uuid_t *payment_id, JsonbContainer *pi, const char *event_type,
					const TimestampTz *at, const char *source, const char *event_id,
					const char **status)
{
	PaymentInfo p;
	char	   *id = billing_json_str(pi, "id");
	char	   *st = billing_json_str(pi, "status");
	char	   *currency = billing_json_str(pi, "currency");
	JsonbContainer *md = billing_json_obj(pi, "metadata");
	char	   *ours = md ? billing_json_str(md, "payment_id") : NULL;
	int64		amount;
	TimestampTz paid_at;
	const char *result;

	SPI_connect();
	payment_lock(&p, payment_id, NULL);
	*status = payment_status_name(p.status);

	/* The intent must be this payment's: our id in its metadata, the exact amount. */
	if (id == NULL || st == NULL || ours == NULL ||
		strcmp(ours, billing_uuid_str(payment_id)) != 0 ||
		!billing_json_int(pi, "amount", &amount) ||
		amount != stripe_amount(p.total, p.currency) ||
		currency == NULL || pg_strcasecmp(currency, p.currency) != 0 ||
		(p.is_renewal && p.provider_session_id && strcmp(p.provider_session_id, id) != 0))
	{
		ereport(WARNING,
				(errmsg("stripe payment intent %s does not match payment %s",
						id ? id : "?", billing_uuid_str(payment_id)),
				 errdetail("The intent's id, metadata, amount or currency differs from the payment's; nothing was changed.")));
		SPI_finish();
		return "mismatch";
	}

	if (!p.is_renewal)
	{
		/* A checkout's intent: the session settles the payment; here only its method. */
		result = "ignored";
		if (p.save_method && strcmp(st, "succeeded") == 0)
		{
			remember_method(&p, pi, NULL);
			result = "method";
		}
		SPI_finish();
		return result;
	}

	/* An intent made while we did not record its id (a crash after the call). */
	if (p.provider_session_id == NULL)
		payment_remember_session(&p, id, "stripe");

	if (strcmp(st, "succeeded") == 0)
	{
		remember_method(&p, pi, NULL);
		if (at == NULL && charge_time(pi, &paid_at))
			at = &paid_at;
		result = settle(&p, PAYMENT_PAID, id, at, source, event_id, id, status);
	}
	else if (strcmp(st, "requires_action") == 0)
	{
		JsonbContainer *next = billing_json_obj(pi, "next_action");
		JsonbContainer *redirect = next ? billing_json_obj(next, "redirect_to_url") : NULL;
		char	   *url = redirect ? billing_json_str(redirect, "url") : NULL;

		if (url && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
			payment_needs_buyer(&p, url);
		result = "waiting";
	}
	else if (strcmp(st, "requires_payment_method") == 0)
	{
		JsonbContainer *err = billing_json_obj(pi, "last_payment_error");
		char	   *code = err ? billing_json_str(err, "code") : NULL;
		char	   *decline = err ? billing_json_str(err, "decline_code") : NULL;

		if (code && strcmp(code, "authentication_required") == 0)
		{
			/* The fetching side asks for the buyer's page (stripe_provider.c). */
			SPI_finish();
			return "waiting";
		}
		/* A buyer who failed the bank's check: retrying without them cannot help. */
		if (code && strcmp(code, "payment_intent_authentication_failure") == 0)
			p.stop_reason = "authentication_failed";
		result = payment_settle_result_name(payment_settle_locked(&p, PAYMENT_FAILED, NULL, at, source,
																  failure_detail(event_id, id,
																				 code ? code : "unknown",
																				 decline,
																				 p.renewal_attempt)));
		*status = payment_status_name(p.status);
	}
	else if (strcmp(st, "canceled") == 0)
		result = settle(&p, p.expires_at <= billing_now() ? PAYMENT_EXPIRED : PAYMENT_CANCELED,
						NULL, at, source, event_id, id, status);
	else
		result = "waiting";		/* processing, requires_confirmation, requires_capture */

	SPI_finish();
	return result;
}

const char *
stripe_apply_session(const pg_uuid_t *payment_id, JsonbContainer *session,
					 const char *event_type, const TimestampTz *at,
					 const char *source, const char *event_id, const char **status)
{
	PaymentInfo p;
	char	   *sid = billing_json_str(session, "id");
	char	   *st = billing_json_str(session, "status");
	char	   *pay_status = billing_json_str(session, "payment_status");
	char	   *currency = billing_json_str(session, "currency");
	JsonbContainer *pi_obj;
	char	   *pi = expandable_id(session, "payment_intent", &pi_obj);
	int64		amount;
	PaymentStatus outcome;
	bool		known = true;
	TimestampTz paid_at;
	const char *result;

	SPI_connect();
	payment_lock(&p, payment_id, NULL);

	/*
	 * The session must be the one we opened for this payment, for its exact
	 * amount and currency; anything else is reported and not applied.
	 */
	if (sid == NULL || st == NULL ||
		(p.provider_session_id && strcmp(p.provider_session_id, sid) != 0) ||
		!billing_json_int(session, "amount_total", &amount) || amount != p.total ||
		currency == NULL || pg_strcasecmp(currency, p.currency) != 0)
	{
		ereport(WARNING,
				(errmsg("stripe session %s does not match payment %s",
						sid ? sid : "?",
						billing_uuid_str(payment_id)),
				 errdetail("The session's id, amount or currency differs from the payment's; nothing was changed.")));
		*status = payment_status_name(p.status);
		SPI_finish();
		return "mismatch";
	}

	if (event_type && strcmp(event_type, "checkout.session.async_payment_failed") == 0)
		outcome = PAYMENT_FAILED;
	else if (strcmp(st, "complete") == 0 && pay_status &&
			 (strcmp(pay_status, "paid") == 0 || strcmp(pay_status, "no_payment_required") == 0))
		outcome = PAYMENT_PAID;
	else if (strcmp(st, "expired") == 0)
		outcome = PAYMENT_EXPIRED;
	else
	{
		/* Fetched with the payment intent expanded: a delayed method that failed. */
		char	   *pi_status = pi_obj ? billing_json_str(pi_obj, "status") : NULL;

		outcome = PAYMENT_FAILED;
		known = strcmp(st, "complete") == 0 && pi_status &&
			(strcmp(pi_status, "requires_payment_method") == 0 ||
			 strcmp(pi_status, "canceled") == 0);
	}

	if (!known)
	{
		/* open, or complete with a delayed payment method still processing */
		*status = payment_status_name(p.status);
		SPI_finish();
		return "waiting";
	}

	/*
	 * A session paid while we did not know its id (the checkout call's
	 * transaction rolled back after Stripe made the session): remember it.
	 */
	if (p.provider_session_id == NULL)
		payment_remember_session(&p, sid, "stripe");

	/* Paid when the charge succeeded, when Stripe tells us; else the event's time. */
	if (outcome == PAYMENT_PAID && at == NULL && charge_time(pi_obj, &paid_at))
		at = &paid_at;

	/* Auto-renewal: the customer and, when Stripe tells it, the saved method. */
	if (outcome == PAYMENT_PAID && p.save_method)
	{
		JsonbContainer *cust_obj;
		char	   *customer = expandable_id(session, "customer", &cust_obj);

		if (pi_obj)
			remember_method(&p, pi_obj, customer);
		else
			payment_remember_method(&p, customer, NULL, NULL, NULL);
	}

	result = settle(&p, outcome, outcome == PAYMENT_PAID ? pi : NULL,
					at, source, event_id, sid, status);
	SPI_finish();
	return result;
}

const char *
stripe_apply_refund(const pg_uuid_t *payment_id, JsonbContainer *refund,
					const TimestampTz *at, const char *source,
					const char *event_id, const char **status)
{
	PaymentInfo p;
	char	   *rid = billing_json_str(refund, "id");
	char	   *st = billing_json_str(refund, "status");
	char	   *currency = billing_json_str(refund, "currency");
	JsonbContainer *pi_obj;
	char	   *pi = expandable_id(refund, "payment_intent", &pi_obj);
	int64		amount;
	const char *result;

	SPI_connect();
	payment_lock(&p, payment_id, NULL);

	if (rid == NULL || st == NULL ||
		(p.provider_refund_id && strcmp(p.provider_refund_id, rid) != 0) ||
		(p.provider_payment_intent && pi && strcmp(p.provider_payment_intent, pi) != 0) ||
		currency == NULL || pg_strcasecmp(currency, p.currency) != 0 ||
		!billing_json_int(refund, "amount", &amount))
	{
		ereport(WARNING,
				(errmsg("stripe refund %s does not match payment %s",
						rid ? rid : "?",
						billing_uuid_str(payment_id)),
				 errdetail("The refund's id, payment intent or currency differs from the payment's; nothing was changed.")));
		*status = payment_status_name(p.status);
		SPI_finish();
		return "mismatch";
	}

	if (strcmp(st, "succeeded") == 0)
	{
		if (amount != p.total)
		{
			/* A partial refund made at Stripe: months cannot be split; report it. */
			ereport(WARNING,
					(errmsg("stripe refund %s is partial (" INT64_FORMAT " of " INT64_FORMAT ")",
							rid, amount, p.total),
					 errdetail("Only full refunds change a payment; nothing was changed.")));
			*status = payment_status_name(p.status);
			result = "partial";
		}
		else
			result = settle(&p, PAYMENT_REFUNDED, rid, at, source, event_id, rid, status);
	}
	else if (strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0)
	{
		/*
		 * The state machine has no way back from refund_pending: say so
		 * loudly, an operator settles it (the money is still with us).
		 */
		if (p.status == PAYMENT_REFUND_PENDING)
			ereport(WARNING,
					(errmsg("stripe refund %s of payment %s %s", rid,
							billing_uuid_str(payment_id), st),
					 errhint("Refund it again at Stripe, then settle it as refunded.")));
		*status = payment_status_name(p.status);
		result = "refund_failed";
	}
	else
	{
		*status = payment_status_name(p.status);
		result = "waiting";
	}
	SPI_finish();
	return result;
}
