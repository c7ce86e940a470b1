/*
 * yookassa_apply.c — what a YooKassa object (a payment, a refund) means for
 * one of our payments, applied through payment_settle_locked.  The
 * notification endpoint, confirm_payment and the poller all come through
 * here with an object read from the API (never a notification's body), so a
 * succeeded payment is the same outcome whichever of them sees it first.
 *
 * A YooKassa payment waiting for the buyer's confirmation cannot be
 * cancelled through the API.  When we close such a payment (the buyer
 * cancels, the invoice runs out) we watch it (provider_watch): the poller
 * keeps reading it until YooKassa closes it too, and if it succeeds after
 * all, the money is refunded at once (idempotently: one refund per payment)
 * instead of reopening a payment the buyer gave up.
 *
 * Auto-renewal: a checkout that asked to save the method learns it from the
 * succeeded payment (payment_method.id when YooKassa says saved, the card's
 * type and last four digits) before it is settled, so that the subscription
 * starts renewing with it.  An automatic charge (a payment with the saved
 * method, made by renewal_job.c) is the same kind of YooKassa payment: its
 * id is remembered whoever sees it first, a decline keeps YooKassa's
 * cancellation reason as the failure code, and a reason that retrying
 * cannot mend (the buyer revoked the permission, or failed 3-D Secure)
 * stops the retries.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "common.h"
#include "clock.h"
#include "payments.h"
#include "stripe.h"				/* billing_json_*: reading JSON objects */
#include "yookassa.h"

/* {"yookassa_object": ...} for the payment event's detail. */
static char *
detail_json(const char *object_id, const char *extra_key, const char *extra_value)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"yookassa_object\": ");
	escape_json(&s, object_id ? object_id : "");
	if (extra_key && extra_value)
	{
		appendStringInfoString(&s, ", ");
		escape_json(&s, extra_key);
		appendStringInfoString(&s, ": ");
		escape_json(&s, extra_value);
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

void
yookassa_watch(const pg_uuid_t *payment_id, bool on)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {UUIDOID, BOOLOID, TIMESTAMPTZOID};
	Datum		values[3] = {UUIDPGetDatum(payment_id), BoolGetDatum(on),
							 TimestampTzGetDatum(billing_now() + (int64) stripe_poll_interval * USECS_PER_SEC)};

	SPI_connect();
	billing_spi_exec(&plan,
					 "UPDATE billing.payments SET provider_watch = $2, "
					 "  next_poll_at = CASE WHEN $2 THEN $3 ELSE next_poll_at END, "
					 "  poll_attempts = CASE WHEN $2 THEN 0 ELSE poll_attempts END "
					 "WHERE id = $1 AND provider_watch IS DISTINCT FROM $2",
					 3, types, values, NULL, false, 0);
	SPI_finish();
}

/* The object's amount is exactly ours: the same decimal string and currency. */
static bool
amount_matches(JsonbContainer *obj, const PaymentInfo *p)
{
	JsonbContainer *amount = billing_json_obj(obj, "amount");
	char	   *value = amount ? billing_json_str(amount, "value") : NULL;
	char	   *currency = amount ? billing_json_str(amount, "currency") : NULL;
	char	   *ours = yookassa_amount(p->total, p->currency);
	size_t		n;

	if (value == NULL || currency == NULL || strcmp(currency, p->currency) != 0)
		return false;
	/* YooKassa writes "299.00"; accept "299.0" or "299" for the same amount. */
	n = strlen(value);
	if (strncmp(value, ours, n) != 0)
		return false;
	for (const char *t = ours + n; *t; t++)
		if (!(*t == '0' || (*t == '.' && t == ours + n)))
			return false;
	return n > 0;
}

/* A JSON boolean member: true only when it is the boolean true. */
static bool
json_true(JsonbContainer *c, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(c, key, strlen(key), NULL);

	return v && v->type == jbvBool && v->val.boolean;
}

/*
 * The method a succeeded payment was made with: its id only when YooKassa
 * saved it (a method it did not save cannot be charged again), and the
 * card's type and last four digits for people to recognise it.  Ids only,
 * never card data.  A checkout that asked to save the method but got none
 * saved forgets its customer, so the subscription does not switch to
 * renewing a method that does not exist (autorenew.c then says so).
 */
static void
remember_method(PaymentInfo *p, JsonbContainer *obj)
{
	JsonbContainer *pm = billing_json_obj(obj, "payment_method");
	JsonbContainer *card = pm ? billing_json_obj(pm, "card") : NULL;
	char	   *id = pm ? billing_json_str(pm, "id") : NULL;
	char	   *brand = card ? billing_json_str(card, "card_type") : NULL;
	char	   *last4 = card ? billing_json_str(card, "last4") : NULL;

	if (id && !(yookassa_id_ok(id) && json_true(pm, "saved")))
		id = NULL;
	if (last4 && (strlen(last4) != 4 || strspn(last4, "0123456789") != 4))
		last4 = NULL;
	if (brand && (strlen(brand) > 32 || !yookassa_id_ok(brand)))
		brand = NULL;
	if (id == NULL && p->save_method && !p->is_renewal && p->provider_customer)
	{
		static SPIPlanPtr plan = NULL;
		Oid			types[1] = {UUIDOID};
		Datum		values[1] = {UUIDPGetDatum(&p->id)};

		ereport(WARNING,
				(errmsg("yookassa did not save the payment method of payment %s",
						billing_uuid_str(&p->id)),
				 errdetail("The buyer may have paid with a method that cannot be saved, or the shop may not be allowed recurring payments.")));
		billing_spi_exec(&plan,
						 "UPDATE billing.payments SET provider_customer = NULL WHERE id = $1",
						 1, types, values, NULL, false, 0);
		p->provider_customer = NULL;
		return;
	}
	payment_remember_method(p, NULL, id, brand, last4);
}

/* {"yookassa_object", "cancellation_reason", "failure_code", "party", "attempt"}: a declined automatic charge. */
static char *
failure_json(const PaymentInfo *p, const char *object_id, const char *reason, const char *party)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, "{\"yookassa_object\": ");
	escape_json(&s, object_id);
	appendStringInfoString(&s, ", \"cancellation_reason\": ");
	escape_json(&s, reason ? reason : "unknown");
	appendStringInfoString(&s, ", \"failure_code\": ");
	escape_json(&s, reason ? reason : "unknown");
	if (party)
	{
		appendStringInfoString(&s, ", \"party\": ");
		escape_json(&s, party);
	}
	appendStringInfo(&s, ", \"attempt\": %d}", p->renewal_attempt);
	return s.data;
}

/* YooKassa's ISO 8601 time ("2026-12-02T01:02:03.456Z"), or false. */
static bool
parse_time(const char *s, TimestampTz *out)
{
	size_t		n;

	if (s == NULL)
		return false;
	n = strlen(s);
	if (n < 20 || n > 35 || s[4] != '-' || s[10] != 'T')
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == ':' || *p == 'T' ||
			  *p == '.' || *p == 'Z' || *p == '+'))
			return false;
	*out = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
												   ObjectIdGetDatum(InvalidOid),
												   Int32GetDatum(-1)));
	return true;
}

/*
 * YooKassa took money for a payment we had closed unpaid: give it back.
 * One refund per payment (the Idempotence-Key); a failure leaves the payment
 * watched, so the poller tries again.
 */
static const char *
refund_late_payment(PaymentInfo *p, const char *yoo_id)
{
	StringInfoData body;
	YooResult	r;
	char	   *rid;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"payment_id\": ");
	escape_json(&body, yoo_id);
	appendStringInfoString(&body, ", \"amount\": ");
	yookassa_append_amount(&body, p->total, p->currency);
	appendStringInfoString(&body, ", \"description\": \"Payment canceled before it was confirmed\"");
	if (yookassa_receipts)
	{
		/* Without an e-mail YooKassa refuses: logged below, tried again. */
		char	   *email = yookassa_customer_email(&p->user_id);

		if (email)
			yookassa_append_receipt(&body, email, yookassa_item_text(p->tariff_title, p->months),
									p->total, p->currency);
	}
	appendStringInfoChar(&body, '}');
	yookassa_request(&r, "POST", "/v3/refunds", body.data,
					 yookassa_idempotence_key("late-refund", &p->id));
	if (r.outcome != YOO_OK ||
		(rid = billing_json_str(&r.body->root, "id")) == NULL || !yookassa_id_ok(rid))
	{
		ereport(WARNING,
				(errmsg("yookassa took payment %s after it was %s, and refunding it failed",
						billing_uuid_str(&p->id), payment_status_name(p->status)),
				 errdetail("YooKassa payment %s; the payment stays watched and is tried again.", yoo_id)));
		yookassa_watch(&p->id, true);
		return "late_refund_failed";
	}
	{
		static SPIPlanPtr plan = NULL;
		Oid			types[2] = {UUIDOID, TEXTOID};
		Datum		values[2] = {UUIDPGetDatum(&p->id), CStringGetTextDatum(rid)};

		billing_spi_exec(&plan,
						 "UPDATE billing.payments SET provider_refund_id = COALESCE(provider_refund_id, $2), "
						 "       provider_watch = false WHERE id = $1",
						 2, types, values, NULL, false, 0);
	}
	ereport(WARNING,
			(errmsg("yookassa took payment %s after it was %s; it was refunded",
					billing_uuid_str(&p->id), payment_status_name(p->status)),
			 errdetail("YooKassa payment %s, refund %s; the payment was not changed.", yoo_id, rid)));
	return "late_refunded";
}

const char *
yookassa_apply_payment(const pg_uuid_t *payment_id, JsonbContainer *obj,
					   const char *source, bool expire_pending, const char **status)
{
	PaymentInfo p;
	char	   *yid = billing_json_str(obj, "id");
	char	   *st = billing_json_str(obj, "status");
	JsonbContainer *md = billing_json_obj(obj, "metadata");
	char	   *md_pid = md ? billing_json_str(md, "payment_id") : NULL;
	pg_uuid_t	pid;
	PaymentStatus outcome;
	TimestampTz at;
	bool		have_at = false;
	const char *reason = NULL;
	const char *party = NULL;
	PaymentSettleResult r;
	const char *result;

	SPI_connect();
	payment_lock(&p, payment_id, NULL);

	/*
	 * The payment must be the one we created for this payment (its id, or,
	 * when our checkout rolled back after YooKassa made it, our payment id
	 * in its metadata), for the exact amount and currency.
	 */
	if (yid == NULL || st == NULL || !yookassa_id_ok(yid) ||
		(p.provider_session_id && strcmp(p.provider_session_id, yid) != 0) ||
		(p.provider_session_id == NULL &&
		 !(billing_parse_uuid(md_pid, -1, &pid) && memcmp(&pid, payment_id, sizeof(pid)) == 0)) ||
		!amount_matches(obj, &p))
	{
		ereport(WARNING,
				(errmsg("yookassa payment %s does not match payment %s",
						yid ? billing_echo(yid) : "?", billing_uuid_str(payment_id)),
				 errdetail("The payment's id, amount or currency differs from ours; nothing was changed.")));
		*status = payment_status_name(p.status);
		SPI_finish();
		return "mismatch";
	}

	/*
	 * An automatic charge whose answer we did not record (a crash or a lost
	 * answer after YooKassa made it): it is this one, whatever it says.
	 */
	if (p.is_renewal && p.provider_session_id == NULL)
		payment_remember_session(&p, yid, "yookassa");

	if (strcmp(st, "succeeded") == 0)
	{
		outcome = PAYMENT_PAID;
		have_at = parse_time(billing_json_str(obj, "captured_at"), &at);
	}
	else if (strcmp(st, "canceled") == 0)
	{
		JsonbContainer *cd = billing_json_obj(obj, "cancellation_details");

		reason = cd ? billing_json_str(cd, "reason") : NULL;
		party = cd ? billing_json_str(cd, "party") : NULL;
		if (reason && (strcmp(reason, "expired_on_confirmation") == 0 ||
					   strcmp(reason, "expired_on_capture") == 0))
			outcome = PAYMENT_EXPIRED;
		else if (reason && strcmp(reason, "canceled_by_merchant") == 0)
			outcome = PAYMENT_CANCELED;
		else
			outcome = PAYMENT_FAILED;	/* declined, 3-D Secure failed, ... */
	}
	else if (strcmp(st, "pending") == 0 && expire_pending && p.status == PAYMENT_PENDING &&
			 p.expires_at <= billing_now())
	{
		/* The invoice ran out and YooKassa cannot cancel it: close and watch. */
		r = payment_settle_locked(&p, PAYMENT_EXPIRED, NULL, NULL, source,
								  detail_json(yid, "yookassa_status", st));
		if (r == PAYMENT_APPLIED)
			yookassa_watch(payment_id, true);
		*status = payment_status_name(p.status);
		SPI_finish();
		return payment_settle_result_name(r);
	}
	else
	{
		/* pending (the buyer has not confirmed) or waiting_for_capture */
		if (p.is_renewal && strcmp(st, "pending") == 0)
		{
			/* Rare for a saved method, but YooKassa may ask for the buyer. */
			JsonbContainer *conf = billing_json_obj(obj, "confirmation");
			char	   *url = conf ? billing_json_str(conf, "confirmation_url") : NULL;

			if (url && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
				payment_needs_buyer(&p, url);
		}
		*status = payment_status_name(p.status);
		SPI_finish();
		return "waiting";
	}

	/* A payment made while we did not know its id: remember it. */
	if (p.provider_session_id == NULL)
		payment_remember_session(&p, yid, "yookassa");

	/* Auto-renewal: the saved method, before the settle switches renewal on. */
	if (outcome == PAYMENT_PAID && (p.save_method || p.is_renewal) &&
		(p.status == PAYMENT_PENDING || p.status == PAYMENT_INVOICED))
		remember_method(&p, obj);

	if (p.is_renewal && outcome == PAYMENT_FAILED)
	{
		/*
		 * The buyer revoked the permission for payments without them, or
		 * the bank's check failed: retrying the same method cannot help.
		 */
		if (reason && strcmp(reason, "permission_revoked") == 0)
			p.stop_reason = "method_revoked";
		else if (reason && strcmp(reason, "3d_secure_failed") == 0)
			p.stop_reason = "authentication_failed";
		r = payment_settle_locked(&p, outcome, NULL, NULL, source,
								  failure_json(&p, yid, reason, party));
	}
	else
		r = payment_settle_locked(&p, outcome, outcome == PAYMENT_PAID ? yid : NULL,
								  have_at ? &at : NULL, source,
								  detail_json(yid, reason ? "cancellation_reason" : NULL, reason));
	*status = payment_status_name(p.status);
	result = payment_settle_result_name(r);
	if (r == PAYMENT_STALE && outcome == PAYMENT_PAID)
		result = refund_late_payment(&p, yid);
	else if (outcome != PAYMENT_PAID)
		/* YooKassa closed it: nothing more can arrive. */
		yookassa_watch(payment_id, false);
	SPI_finish();
	return result;
}

const char *
yookassa_apply_refund(const pg_uuid_t *payment_id, JsonbContainer *refund,
					  const char *source, const char **status)
{
	PaymentInfo p;
	char	   *rid = billing_json_str(refund, "id");
	char	   *st = billing_json_str(refund, "status");
	char	   *yoo_payment = billing_json_str(refund, "payment_id");
	const char *result;

	SPI_connect();
	payment_lock(&p, payment_id, NULL);

	if (rid == NULL || st == NULL || !yookassa_id_ok(rid) ||
		(p.provider_refund_id && strcmp(p.provider_refund_id, rid) != 0) ||
		yoo_payment == NULL || p.provider_session_id == NULL ||
		strcmp(p.provider_session_id, yoo_payment) != 0)
	{
		ereport(WARNING,
				(errmsg("yookassa refund %s does not match payment %s",
						rid ? billing_echo(rid) : "?", billing_uuid_str(payment_id)),
				 errdetail("The refund's id or payment differs from ours; nothing was changed.")));
		*status = payment_status_name(p.status);
		SPI_finish();
		return "mismatch";
	}

	if (strcmp(st, "succeeded") == 0)
	{
		if (!amount_matches(refund, &p))
		{
			/* A partial refund made in YooKassa's dashboard: months cannot be split. */
			ereport(WARNING,
					(errmsg("yookassa refund %s of payment %s is partial or in another currency",
							rid, billing_uuid_str(payment_id)),
					 errdetail("Only full refunds change a payment; nothing was changed.")));
			*status = payment_status_name(p.status);
			result = "partial";
		}
		else if (p.status != PAYMENT_PAID && p.status != PAYMENT_REFUND_PENDING &&
				 p.status != PAYMENT_REFUNDED)
		{
			/* Our refund of money taken after we closed it unpaid. */
			*status = payment_status_name(p.status);
			result = "unchanged";
		}
		else
		{
			PaymentSettleResult r = payment_settle_locked(&p, PAYMENT_REFUNDED, rid, NULL, source,
														  detail_json(rid, NULL, NULL));

			*status = payment_status_name(p.status);
			result = payment_settle_result_name(r);
		}
	}
	else if (strcmp(st, "canceled") == 0)
	{
		/* No way back from refund_pending: an operator settles it. */
		if (p.status == PAYMENT_REFUND_PENDING)
			ereport(WARNING,
					(errmsg("yookassa refund %s of payment %s was canceled", rid,
							billing_uuid_str(payment_id)),
					 errhint("Refund it again at YooKassa, then settle it as refunded.")));
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
