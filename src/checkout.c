/*
 * checkout.c — the buyer's side of Stripe Checkout: billing.checkout (open a
 * Checkout Session, return its URL), billing.confirm_payment (back from
 * Stripe: fetch the session and settle it) and the provider half of
 * billing.cancel_payment (expire the session, or refund at Stripe).
 *
 * Locks and transactions: these run inside the caller's transaction, so a
 * Stripe call cannot be kept outside it.  Instead every call is idempotent
 * (the Idempotency-Key is derived from our payment id: a retry, a second
 * caller, or a retry after a rollback gets the very same session or refund)
 * and checkout/confirm hold no row lock while Stripe answers: they read the
 * payment unlocked, call Stripe, then lock the row and apply the result with
 * a guarded transition.  cancel_payment's hook runs under the row lock that
 * payment_cancel took (the refund window must be judged and acted on
 * atomically); that lock lasts at most billing.stripe_timeout.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "billing.h"
#include "common.h"
#include "clock.h"
#include "payments.h"
#include "stripe.h"

/* Stripe accepts a session expiry between 30 minutes and 24 hours ahead. */
#define SESSION_MIN_LIFETIME (31 * SECS_PER_MINUTE)
#define SESSION_MAX_LIFETIME (24 * SECS_PER_HOUR - 5 * SECS_PER_MINUTE)

typedef struct PaymentRow
{
	pg_uuid_t	id;
	pg_uuid_t	user_id;
	PaymentStatus status;
	char	   *tariff_title;
	int32		months;
	int64		total;
	char		currency[4];
	TimestampTz created_at;
	TimestampTz expires_at;
	char	   *session_id;
	char	   *url;
} PaymentRow;

/*
 * Read the payment without locking it; someone else's payment is "not
 * found" like a missing one, so ids do not leak.  Strings are allocated in
 * `cxt` (they outlive SPI_finish).
 */
static void
read_payment(PaymentRow *row, const pg_uuid_t *payment_id, const pg_uuid_t *user_id,
			 MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2] = {UUIDPGetDatum(payment_id), UUIDPGetDatum(user_id)};
	bool		isnull;
	MemoryContext old;
	char	   *s;

	if (billing_spi_exec(&plan,
						 "SELECT status, tariff_title, months, total, currency::text, expires_at, "
						 "       provider_session_id, provider_url, created_at "
						 "FROM billing.payments WHERE id = $1 AND user_id = $2",
						 2, types, values, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("payment %s not found", billing_uuid_str(payment_id))));

	old = MemoryContextSwitchTo(cxt);
	memcpy(&row->id, payment_id, sizeof(pg_uuid_t));
	memcpy(&row->user_id, user_id, sizeof(pg_uuid_t));
	if (!payment_status_parse(billing_spi_text(0, 1), &row->status))
		elog(ERROR, "payment %s has an unknown status", billing_uuid_str(payment_id));
	row->tariff_title = billing_spi_text(0, 2);
	row->months = DatumGetInt32(billing_spi_get(0, 3, &isnull));
	row->total = DatumGetInt64(billing_spi_get(0, 4, &isnull));
	s = billing_spi_text(0, 5);
	strlcpy(row->currency, s, sizeof(row->currency));
	row->expires_at = DatumGetTimestampTz(billing_spi_get(0, 6, &isnull));
	row->session_id = billing_spi_text(0, 7);
	row->url = billing_spi_text(0, 8);
	row->created_at = DatumGetTimestampTz(billing_spi_get(0, 9, &isnull));
	MemoryContextSwitchTo(old);
}

static char *
lower_str(const char *s)
{
	char	   *r = pstrdup(s);

	for (char *p = r; *p; p++)
		*p = pg_tolower((unsigned char) *p);
	return r;
}

static void
check_url_arg(const char *url, const char *name)
{
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an http:// or https:// URL", name)));
	if (strlen(url) > 2048)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", name),
				 errdetail("The limit is 2048 characters.")));
	for (const char *p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain spaces or control characters", name)));
}

/* Stripe's idempotency keys live 24 h, as long as a session can. */
static char *
idempotency_key(const char *what, const pg_uuid_t *payment_id)
{
	return psprintf("billing-%s-%s", what, billing_uuid_str(payment_id));
}

/* ---------------------------------------------------------------------
 * billing.checkout
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(billing_checkout);
Datum
billing_checkout(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id;
	pg_uuid_t  *payment_id;
	const char *success_url;
	const char *cancel_url;
	PaymentRow	row;
	MemoryContext cxt = CurrentMemoryContext;
	StringInfoData form;
	TimestampTz now = billing_now();
	int64		session_end;
	Jsonb	   *session;
	char	   *session_id;
	char	   *url;
	char	   *session_status;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "payment_id");
	user_id = PG_GETARG_UUID_P(0);
	payment_id = PG_GETARG_UUID_P(1);
	success_url = PG_ARGISNULL(2) ? stripe_success_url : text_to_cstring(PG_GETARG_TEXT_PP(2));
	cancel_url = PG_ARGISNULL(3) ? stripe_cancel_url : text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (success_url == NULL || success_url[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("success_url is required"),
				 errhint("Pass success_url or set billing.stripe_success_url.")));
	check_url_arg(success_url, "success_url");
	if (cancel_url && cancel_url[0])
		check_url_arg(cancel_url, "cancel_url");

	SPI_connect();
	read_payment(&row, payment_id, user_id, cxt);

	/* Pending with a session: the same URL again, no second session. */
	if (row.status == PAYMENT_PENDING && row.session_id && row.url)
	{
		if (row.expires_at <= now)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("invoice has expired"),
					 errhint("Create a new invoice.")));
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.url));
	}
	if (row.status != PAYMENT_INVOICED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment is %s", payment_status_name(row.status)),
				 errdetail("Only an invoiced payment can go to checkout.")));
	if (row.total == 0)
		/* create_invoice pays a zero total at once; this is a safety net. */
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment has nothing to pay"),
				 errdetail("A zero total never goes to Stripe.")));
	if (row.expires_at <= now)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invoice has expired"),
				 errhint("Create a new invoice.")));

	/*
	 * The session ends with the invoice (Stripe's 30 min .. 24 h bounds
	 * permitting), so a buyer cannot pay an invoice we have let go.  The
	 * value must be the same on every attempt, or a retry under the same
	 * Idempotency-Key would be refused as "other parameters": it depends on
	 * the invoice only (created_at + the longest lifetime), except in an
	 * invoice's last half hour, where Stripe's minimum is rounded up to a
	 * 10-minute grid so that retries close together still agree.
	 */
	session_end = Min(timestamptz_to_time_t(row.expires_at),
					  timestamptz_to_time_t(row.created_at) + SESSION_MAX_LIFETIME);
	if (session_end < timestamptz_to_time_t(now) + SESSION_MIN_LIFETIME)
	{
		session_end = timestamptz_to_time_t(now) + SESSION_MIN_LIFETIME;
		session_end += 600 - session_end % 600;
	}

	initStringInfo(&form);
	stripe_form_add(&form, "mode", "payment");
	stripe_form_add(&form, "line_items[0][quantity]", "1");
	stripe_form_add(&form, "line_items[0][price_data][currency]", lower_str(row.currency));
	stripe_form_add(&form, "line_items[0][price_data][unit_amount]",
					psprintf(INT64_FORMAT, stripe_amount(row.total, row.currency)));
	stripe_form_add(&form, "line_items[0][price_data][product_data][name]",
					psprintf("%s, %d month%s", row.tariff_title, row.months,
							 row.months == 1 ? "" : "s"));
	stripe_form_add(&form, "client_reference_id", billing_uuid_str(payment_id));
	stripe_form_add(&form, "metadata[payment_id]", billing_uuid_str(payment_id));
	stripe_form_add(&form, "metadata[user_id]", billing_uuid_str(user_id));
	stripe_form_add(&form, "payment_intent_data[metadata][payment_id]", billing_uuid_str(payment_id));
	stripe_form_add(&form, "success_url", success_url);
	if (cancel_url && cancel_url[0])
		stripe_form_add(&form, "cancel_url", cancel_url);
	stripe_form_add(&form, "expires_at", psprintf(INT64_FORMAT, session_end));

	/* No lock is held here: a concurrent webhook or cancel is not kept waiting. */
	session = stripe_call("POST", "/v1/checkout/sessions", form.data,
						  idempotency_key("checkout", payment_id),
						  "create the checkout session");
	session_id = stripe_json_str(&session->root, "id");
	url = stripe_json_str(&session->root, "url");
	session_status = stripe_json_str(&session->root, "status");
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

	/*
	 * invoiced -> pending through the guarded transition (it locks the row
	 * now, briefly).  If a cancel won the race, this raises 55000 and the
	 * session simply expires at Stripe unpaid: nobody has its URL.
	 */
	payment_settle(payment_id, PAYMENT_PENDING, session_id, NULL, "api", NULL);
	{
		static SPIPlanPtr plan = NULL;
		Oid			types[3] = {UUIDOID, TEXTOID, TIMESTAMPTZOID};
		Datum		values[3] = {UUIDPGetDatum(payment_id), CStringGetTextDatum(url),
								 TimestampTzGetDatum(now + (int64) stripe_poll_interval * USECS_PER_SEC)};

		billing_spi_exec(&plan,
						 "UPDATE billing.payments SET provider_url = $2, next_poll_at = $3, poll_attempts = 0 "
						 "WHERE id = $1 AND status = 'pending'",
						 3, types, values, NULL, false, 0);
	}
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(url));
}

/* ---------------------------------------------------------------------
 * billing.confirm_payment
 * --------------------------------------------------------------------- */

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

PG_FUNCTION_INFO_V1(billing_confirm_payment);
Datum
billing_confirm_payment(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id;
	pg_uuid_t  *payment_id;
	PaymentRow	row;
	Jsonb	   *session;
	const char *status;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "payment_id");
	user_id = PG_GETARG_UUID_P(0);
	payment_id = PG_GETARG_UUID_P(1);

	SPI_connect();
	read_payment(&row, payment_id, user_id, CurrentMemoryContext);
	if (row.status != PAYMENT_PENDING || row.session_id == NULL)
	{
		/* Nothing to ask Stripe: the status is what it is. */
		status = payment_status_name(row.status);
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(status));
	}

	session = fetch_session(row.session_id, "fetch the checkout session");
	stripe_apply_session(payment_id, &session->root, NULL, NULL, "api", NULL, &status);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(status));
}

/* ---------------------------------------------------------------------
 * cancel_payment's provider half
 * --------------------------------------------------------------------- */

/* Expire the checkout session (the payment then becomes canceled). */
static void
cancel_unpaid(const PaymentInfo *p)
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
		return;					/* expired at Stripe: canceled here */
	if (r.outcome != STRIPE_REFUSED || r.http_status != 400)
		stripe_raise(&r, "expire the checkout session");

	/* Stripe refused: the session is not open any more.  Why? */
	session = fetch_session(p->provider_session_id, "fetch the checkout session");
	st = stripe_json_str(&session->root, "status");
	pay = stripe_json_str(&session->root, "payment_status");
	if (st && strcmp(st, "expired") == 0)
		return;
	if (st && strcmp(st, "complete") == 0 && pay && strcmp(pay, "paid") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment was completed at stripe before it could be canceled"),
				 errhint("It will show as paid shortly; cancel it again then to get a refund.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("payment is being processed at stripe and cannot be canceled now"),
			 errhint("Try again when it has succeeded or failed.")));
}

/* Refund the payment at Stripe: true when the refund succeeded at once. */
static bool
cancel_refund(const PaymentInfo *p, char **provider_ref)
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
		JsonbContainer *obj = stripe_json_obj(&session->root, "payment_intent");

		pi = obj ? stripe_json_str(obj, "id") : stripe_json_str(&session->root, "payment_intent");
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
	refund_id = stripe_json_str(&refund->root, "id");
	st = stripe_json_str(&refund->root, "status");
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

	/* The poller follows a refund that is not final yet. */
	{
		static SPIPlanPtr plan = NULL;
		Oid			types[2] = {UUIDOID, TIMESTAMPTZOID};
		Datum		values[2] = {UUIDPGetDatum(&p->id),
								 TimestampTzGetDatum(billing_now() + (int64) stripe_poll_interval * USECS_PER_SEC)};

		billing_spi_exec(&plan,
						 "UPDATE billing.payments SET next_poll_at = $2, poll_attempts = 0 WHERE id = $1",
						 2, types, values, NULL, false, 0);
	}
	return strcmp(st, "succeeded") == 0;
}

static PaymentStatus
stripe_cancel_hook(const PaymentInfo *p, PaymentCancelKind kind, PaymentStatus proposed,
				   char **provider_ref)
{
	if (kind == PAYMENT_CANCEL_UNPAID)
	{
		cancel_unpaid(p);
		return proposed;
	}
	return cancel_refund(p, provider_ref) ? PAYMENT_REFUNDED : proposed;
}

void
checkout_init(void)
{
	payment_cancel_hook = stripe_cancel_hook;
}
