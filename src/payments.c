/*
 * payments.c — the payment state machine: create_invoice (quote snapshot,
 * customer, promo reservation), settle_payment (the one transition path for
 * every source), cancel_payment (cancel or refund request) and expire_invoices.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "billing.h"
#include "common.h"
#include "clock.h"
#include "autorenew.h"
#include "outbox.h"
#include "payments.h"
#include "pricing.h"
#include "subscriptions.h"

int			payments_invoice_lifetime = 24 * 60 * 60;
int			payments_refund_window = 60 * 60;
int			payments_expiry_batch = 1000;
static char *payments_expiry_schedule = NULL;

payment_cancel_hook_type payment_cancel_hook = NULL;

/* ------------------------------------------------------------------------
 * Settings
 * ------------------------------------------------------------------------
 */

void
payments_define_gucs(void)
{
	/*
	 * Business rules, not session preferences: a user with a login must not
	 * widen their own refund window, hence superuser-only.
	 */
	DefineCustomIntVariable("billing.invoice_lifetime",
							"How long an unpaid invoice stays payable.",
							"billing.expire_invoices() expires it after that.",
							&payments_invoice_lifetime,
							24 * 60 * 60, 60, 30 * 24 * 60 * 60,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("billing.refund_window",
							"How long after a payment succeeded its buyer may still get a refund.",
							"Measured from the provider's time of success (paid_at).",
							&payments_refund_window,
							60 * 60, 0, 30 * 24 * 60 * 60,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("billing.invoice_expiry_batch",
							"Most invoices one run of billing.expire_invoices() expires.",
							NULL,
							&payments_expiry_batch,
							1000, 1, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("billing.invoice_expiry_schedule",
							   "pg_cron schedule of billing.expire_invoices() (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.",
							   &payments_expiry_schedule,
							   "*/5 * * * *",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}

/* ------------------------------------------------------------------------
 * The state machine
 * ------------------------------------------------------------------------
 */

/*
 * billing.payment_status_paid(status text) -> boolean, for the CHECK that a
 * payment in one of these statuses has paid_at.  PostgreSQL reads a table's
 * CHECK constraints back from their stored text in every statement that
 * writes the table; a function call is a fraction of an IN list's text.
 */
PG_FUNCTION_INFO_V1(billing_payment_status_paid);
Datum
billing_payment_status_paid(PG_FUNCTION_ARGS)
{
	text	   *status = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(status);
	int			len = VARSIZE_ANY_EXHDR(status);

#define STATUS_IS(lit) (len == sizeof(lit) - 1 && memcmp(s, lit, len) == 0)
	PG_RETURN_BOOL(STATUS_IS("paid") || STATUS_IS("refund_pending") || STATUS_IS("refunded"));
#undef STATUS_IS
}

/* The names, in the order of PaymentStatus: the one table of them. */
static const char *const status_names[PAYMENT_N_STATUSES] = {
	[PAYMENT_INVOICED] = "invoiced",
	[PAYMENT_PENDING] = "pending",
	[PAYMENT_PAID] = "paid",
	[PAYMENT_CANCELED] = "canceled",
	[PAYMENT_EXPIRED] = "expired",
	[PAYMENT_FAILED] = "failed",
	[PAYMENT_REFUND_PENDING] = "refund_pending",
	[PAYMENT_REFUNDED] = "refunded",
};

const char *
payment_status_name(PaymentStatus status)
{
	Assert(status >= 0 && status < PAYMENT_N_STATUSES);
	return status_names[status];
}

bool
payment_status_parse(const char *s, PaymentStatus *status)
{
	for (int i = 0; i < PAYMENT_N_STATUSES; i++)
		if (strcmp(s, status_names[i]) == 0)
		{
			*status = (PaymentStatus) i;
			return true;
		}
	return false;
}

PaymentStatus
payment_outcome_arg(const char *outcome)
{
	PaymentStatus o;

	/* "pending" and "refund_pending" come from checkout and cancel. */
	if (!payment_status_parse(outcome, &o) ||
		o == PAYMENT_INVOICED || o == PAYMENT_PENDING || o == PAYMENT_REFUND_PENDING)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid payment outcome \"%s\"", billing_echo(outcome)),
				 errhint("Use paid, canceled, expired, failed or refunded.")));
	return o;
}

/* Statuses from which nothing but a refund can follow. */
static bool
is_closed_unpaid(PaymentStatus status)
{
	return status == PAYMENT_CANCELED || status == PAYMENT_EXPIRED ||
		status == PAYMENT_FAILED;
}

static bool
is_open(PaymentStatus status)
{
	return status == PAYMENT_INVOICED || status == PAYMENT_PENDING;
}

/*
 * Does `outcome` reported for a payment in `status` change nothing because
 * it already happened?  Besides the same outcome twice, a late "paid" for a
 * payment that has moved on to a refund, and a closing outcome for a payment
 * that is already closed unpaid (a provider reports "expired" for the session
 * we expired when the user canceled) are no-ops.
 */
static bool
outcome_already_applied(PaymentStatus outcome, PaymentStatus status)
{
	if (outcome == status)
		return true;
	if (outcome == PAYMENT_PAID)
		return status == PAYMENT_REFUND_PENDING || status == PAYMENT_REFUNDED;
	if (is_closed_unpaid(outcome))
		return is_closed_unpaid(status);
	return false;
}

/* Is `status` -> `outcome` a transition of the state machine? */
static bool
transition_allowed(PaymentStatus status, PaymentStatus outcome)
{
	switch (outcome)
	{
		case PAYMENT_PENDING:
			return status == PAYMENT_INVOICED;
		case PAYMENT_PAID:
		case PAYMENT_CANCELED:
		case PAYMENT_EXPIRED:
		case PAYMENT_FAILED:
			return is_open(status);
		case PAYMENT_REFUND_PENDING:
			return status == PAYMENT_PAID;
		case PAYMENT_REFUNDED:
			return status == PAYMENT_PAID || status == PAYMENT_REFUND_PENDING;
		case PAYMENT_INVOICED:
			break;
	}
	return false;
}

static const char *
check_source(const char *source)
{
	static const char *const all[] = {"api", "webhook", "poll", "admin", "system"};

	for (int i = 0; i < (int) lengthof(all); i++)
		if (strcmp(source, all[i]) == 0)
			return all[i];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid payment event source \"%s\"", billing_echo(source)),
			 errhint("Use api, webhook, poll, admin or system.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * Text column `col` of the first SPI row, copied with SPI_palloc into the
 * context that was current when the caller connected to SPI, so it survives
 * SPI_finish.  NULL for a NULL value.
 */
static char *
spi_text_upper(int col)
{
	char	   *s = billing_spi_text(0, col);
	char	   *copy;
	size_t		len;

	if (s == NULL)
		return NULL;
	len = strlen(s) + 1;
	copy = SPI_palloc(len);
	memcpy(copy, s, len);
	return copy;
}

void
payment_lock(PaymentInfo *p, const pg_uuid_t *payment_id, const pg_uuid_t *user_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, UUIDOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	Datum		d;

	values[0] = UUIDPGetDatum(payment_id);
	if (user_id)
		values[1] = UUIDPGetDatum(user_id);
	else
		nulls[1] = 'n';

	/* Someone else's payment looks exactly like a missing one. */
	if (billing_spi_exec(&plan,
						 "SELECT status, user_id, tariff_id, tariff_code, tariff_title, months, "
						 "       total, currency::text, promo_code_id, subscription_id, "
						 "       created_at, expires_at, paid_at, provider_session_id, "
						 "       provider_url, provider_payment_intent, provider_refund_id, provider, "
						 "       save_method, provider_customer, provider_method, renewal_of, renewal_attempt "
						 "FROM billing.payments "
						 "WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2) "
						 "FOR UPDATE",
						 2, argtypes, values, nulls, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("payment not found")));

	memset(p, 0, sizeof(*p));
	memcpy(&p->id, payment_id, sizeof(pg_uuid_t));
	if (!payment_status_parse(TextDatumGetCString(billing_spi_get(0, 1, &isnull)),
							  &p->status))
		elog(ERROR, "payment %s has an unknown status", billing_uuid_str(payment_id));
	memcpy(&p->user_id, DatumGetUUIDP(billing_spi_get(0, 2, &isnull)), sizeof(pg_uuid_t));
	p->tariff_id = DatumGetInt64(billing_spi_get(0, 3, &isnull));
	p->tariff_code = spi_text_upper(4);
	p->tariff_title = spi_text_upper(5);
	p->months = DatumGetInt32(billing_spi_get(0, 6, &isnull));
	p->total = DatumGetInt64(billing_spi_get(0, 7, &isnull));
	strlcpy(p->currency, TextDatumGetCString(billing_spi_get(0, 8, &isnull)),
			sizeof(p->currency));
	d = billing_spi_get(0, 9, &isnull);
	p->promo_code_id = isnull ? 0 : DatumGetInt64(d);
	d = billing_spi_get(0, 10, &isnull);
	p->subscription_id = isnull ? 0 : DatumGetInt64(d);
	p->created_at = DatumGetTimestampTz(billing_spi_get(0, 11, &isnull));
	p->expires_at = DatumGetTimestampTz(billing_spi_get(0, 12, &isnull));
	d = billing_spi_get(0, 13, &isnull);
	p->has_paid_at = !isnull;
	p->paid_at = isnull ? 0 : DatumGetTimestampTz(d);
	p->provider_session_id = spi_text_upper(14);
	p->provider_url = spi_text_upper(15);
	p->provider_payment_intent = spi_text_upper(16);
	p->provider_refund_id = spi_text_upper(17);
	p->provider = spi_text_upper(18);
	p->save_method = DatumGetBool(billing_spi_get(0, 19, &isnull));
	p->provider_customer = spi_text_upper(20);
	p->provider_method = spi_text_upper(21);
	d = billing_spi_get(0, 22, &isnull);
	p->is_renewal = !isnull;
	p->renewal_of = isnull ? 0 : DatumGetTimestampTz(d);
	d = billing_spi_get(0, 23, &isnull);
	p->renewal_attempt = isnull ? 0 : DatumGetInt32(d);
}

/*
 * Give the promo code reservation of a payment back (canceled, expired,
 * failed, refunded).  Guarded so a counter can never go below zero even if
 * the catalog was edited by hand.
 */
static void
promo_release(int64 promo_code_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(promo_code_id);
	billing_spi_exec(&plan,
					 "UPDATE marketing.promo_codes SET redemptions = redemptions - 1 "
					 "WHERE id = $1 AND redemptions > 0",
					 1, argtypes, values, NULL, false, 0);
}

/*
 * Make the transition of *p (locked, allowed) to `outcome`: its side effects,
 * then the guarded update and its event.  Updates *p.
 */
static void
apply_transition(PaymentInfo *p, PaymentStatus outcome, const char *provider_ref,
				 const TimestampTz *at, const char *source, const char *detail_json)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[12] = {UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
								TIMESTAMPTZOID, INT8OID, TEXTOID, TEXTOID,
								TEXTOID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[12];
	char		nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	TimestampTz now = billing_now();

	/*
	 * Nothing is paid in the future: a provider's clock ahead of ours, or a
	 * time typed by hand, would open a term that has not begun and take the
	 * present term's months out of count.  Such a time is taken as now; the
	 * event keeps the reported one.
	 */
	TimestampTz when = (at && *at <= now) ? *at : now;
	int64		subscription_id = 0;
	int32		term = 0;

	/* Side effects first: the payment row then records their results. */
	if (outcome == PAYMENT_PAID)
		subscription_id = subscription_apply_payment(&p->id, &p->user_id,
													 p->tariff_id, p->months, when,
													 &term);
	else if (outcome == PAYMENT_REFUNDED)
	{
		if (p->subscription_id == 0)
			elog(ERROR, "paid payment %s has no subscription", billing_uuid_str(&p->id));
		subscription_refund_payment(&p->id, p->subscription_id, p->months);
	}

	/*
	 * Auto-renewal: a paid checkout that saved the method switches it on; a
	 * closed automatic charge is retried later or ends it (autorenew.c).
	 */
	if (outcome == PAYMENT_PAID && p->save_method)
		autorenew_enable_from_payment(p, subscription_id);
	else if (p->is_renewal && is_closed_unpaid(outcome))
		autorenew_charge_closed(p, outcome);

	/* paid keeps the promo code; every other way out of a reservation frees it */
	if (p->promo_code_id != 0 &&
		(is_closed_unpaid(outcome) || outcome == PAYMENT_REFUNDED))
		promo_release(p->promo_code_id);

	values[0] = UUIDPGetDatum(&p->id);
	values[1] = CStringGetTextDatum(payment_status_name(outcome));
	values[2] = CStringGetTextDatum(payment_status_name(p->status));
	values[3] = TimestampTzGetDatum(now);
	values[4] = TimestampTzGetDatum(when);
	if (subscription_id != 0)
	{
		values[5] = Int64GetDatum(subscription_id);
		values[10] = Int32GetDatum(term);
	}
	else
		nulls[5] = nulls[10] = 'n';
	if (provider_ref)
		values[6] = CStringGetTextDatum(provider_ref);
	else
		nulls[6] = 'n';
	values[7] = CStringGetTextDatum(source);
	if (detail_json)
		values[8] = CStringGetTextDatum(detail_json);
	else
		nulls[8] = 'n';
	/* An event reported for another time than now also says when we learnt it. */
	if (when != now)
		values[9] = TimestampTzGetDatum(now);
	else
		nulls[9] = 'n';
	if (at && *at > now)
		values[11] = TimestampTzGetDatum(*at);
	else
		nulls[11] = 'n';

	/*
	 * One statement for the guarded update and its event: the WHERE on the
	 * old status makes the transition happen at most once even without the
	 * row lock, and the event exists exactly when the update happened.
	 */
	if (billing_spi_exec(&plan,
						 "WITH u AS ("
						 " UPDATE billing.payments SET"
						 "  status = $2,"
						 "  updated_at = $4,"
						 "  paid_at = CASE WHEN $2 = 'paid' THEN $5 ELSE paid_at END,"
						 "  closed_at = CASE WHEN $2 IN ('canceled', 'expired', 'failed', 'refunded')"
						 "              THEN $5 ELSE closed_at END,"
						 "  subscription_id = COALESCE($6, subscription_id),"
						 "  subscription_term = COALESCE($11, subscription_term),"
						 "  provider_session_id = CASE WHEN $2 = 'pending'"
						 "              THEN COALESCE(provider_session_id, $7) ELSE provider_session_id END,"
						 "  provider_payment_intent = CASE WHEN $2 = 'paid'"
						 "              THEN COALESCE(provider_payment_intent, $7) ELSE provider_payment_intent END,"
						 "  provider_refund_id = CASE WHEN $2 IN ('refund_pending', 'refunded')"
						 "              THEN COALESCE(provider_refund_id, $7) ELSE provider_refund_id END"
						 " WHERE id = $1 AND status = $3"
						 " RETURNING id)"
						 "INSERT INTO billing.payment_events (payment_id, from_status, to_status, source, at, detail) "
						 "SELECT id, $3, $2, $8, $5,"
						 "       NULLIF(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object("
						 "                'provider_ref', $7, 'recorded_at', $10, 'reported_at', $12))"
						 "              || COALESCE($9::jsonb, '{}'), '{}') "
						 "FROM u",
						 12, argtypes, values, nulls, false, 0) != 1)
		elog(ERROR, "payment %s changed under its row lock", billing_uuid_str(&p->id));

	p->status = outcome;
	if (subscription_id != 0)
		p->subscription_id = subscription_id;
	if (outcome == PAYMENT_PAID)
	{
		p->has_paid_at = true;
		p->paid_at = when;
	}
}

/* The arguments of a settle that do not depend on the payment. */
static void
check_event(PaymentStatus outcome, const char *source, const TimestampTz *at)
{
	if (outcome == PAYMENT_INVOICED)
		elog(ERROR, "a payment cannot be settled as invoiced");
	(void) check_source(source);
	if (at && TIMESTAMP_NOT_FINITE(*at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the time of a payment event must be finite")));
}

PaymentSettleResult
payment_settle_locked(PaymentInfo *p, PaymentStatus outcome, const char *provider_ref,
					  const TimestampTz *at, const char *source, const char *detail_json)
{
	check_event(outcome, source, at);
	if (outcome_already_applied(outcome, p->status))
		return PAYMENT_UNCHANGED;
	if (!transition_allowed(p->status, outcome))
		return PAYMENT_STALE;
	apply_transition(p, outcome, provider_ref, at, source, detail_json);
	return PAYMENT_APPLIED;
}

const char *
payment_settle_result_name(PaymentSettleResult r)
{
	switch (r)
	{
		case PAYMENT_APPLIED:
			return "applied";
		case PAYMENT_UNCHANGED:
			return "unchanged";
		case PAYMENT_STALE:
			break;
	}
	return "stale";
}

void
payment_remember_session(PaymentInfo *p, const char *session_id, const char *provider)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {UUIDOID, TEXTOID, TEXTOID};
	Datum		values[3] = {UUIDPGetDatum(&p->id), CStringGetTextDatum(session_id),
							 CStringGetTextDatum(provider)};

	Assert(p->provider_session_id == NULL);
	billing_spi_exec(&plan,
					 "UPDATE billing.payments SET provider_session_id = $2, "
					 "       provider = COALESCE(provider, $3) "
					 "WHERE id = $1 AND provider_session_id IS NULL",
					 3, types, values, NULL, false, 0);
	p->provider_session_id = SPI_palloc(strlen(session_id) + 1);
	strcpy(p->provider_session_id, session_id);
	if (p->provider == NULL)
	{
		p->provider = SPI_palloc(strlen(provider) + 1);
		strcpy(p->provider, provider);
	}
}

/* A copy in the context the caller connected to SPI from (see PaymentInfo). */
static char *
spi_strdup(const char *s)
{
	char	   *copy = SPI_palloc(strlen(s) + 1);

	strcpy(copy, s);
	return copy;
}

void
payment_remember_method(PaymentInfo *p, const char *customer, const char *method,
						const char *card_brand, const char *card_last4)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	const char *given[4] = {customer, method, card_brand, card_last4};

	if (customer == NULL && method == NULL)
		return;
	values[0] = UUIDPGetDatum(&p->id);
	for (int i = 0; i < 4; i++)
	{
		if (given[i])
			values[i + 1] = CStringGetTextDatum(given[i]);
		else
			nulls[i + 1] = 'n';
	}
	if (billing_spi_exec(&plan,
						 "UPDATE billing.payments SET"
						 "  provider_customer = COALESCE($2, provider_customer),"
						 "  provider_method = COALESCE($3, provider_method),"
						 "  card_brand = COALESCE($4, card_brand),"
						 "  card_last4 = COALESCE($5, card_last4) "
						 "WHERE id = $1 AND (provider_customer IS DISTINCT FROM COALESCE($2, provider_customer)"
						 "  OR provider_method IS DISTINCT FROM COALESCE($3, provider_method)"
						 "  OR card_last4 IS DISTINCT FROM COALESCE($5, card_last4))",
						 5, types, values, nulls, false, 0) == 0)
		return;					/* nothing new */
	if (customer)
		p->provider_customer = spi_strdup(customer);
	if (method)
		p->provider_method = spi_strdup(method);
	autorenew_method_reported(p);
}

void
payment_needs_buyer(PaymentInfo *p, const char *url)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, TEXTOID};
	Datum		values[2] = {UUIDPGetDatum(&p->id), CStringGetTextDatum(url)};

	if (p->status != PAYMENT_PENDING || !p->is_renewal ||
		(p->provider_url && strcmp(p->provider_url, url) == 0))
		return;
	billing_spi_exec(&plan,
					 "UPDATE billing.payments SET provider_url = $2, updated_at = billing.now() "
					 "WHERE id = $1 AND status = 'pending'",
					 2, types, values, NULL, false, 0);
	p->provider_url = spi_strdup(url);
	autorenew_needs_buyer(p, url);
}

/* A stale outcome asked for by a caller who must know: 55000. */
static void
refuse_stale(const PaymentInfo *p, PaymentStatus outcome)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("payment cannot go from %s to %s",
					payment_status_name(p->status), payment_status_name(outcome))));
}

PaymentStatus
payment_settle(const pg_uuid_t *payment_id, PaymentStatus outcome,
			   const char *provider_ref, const TimestampTz *at,
			   const char *source, const char *detail_json)
{
	PaymentInfo p;

	/* Bad arguments are refused before the payment is looked at. */
	check_event(outcome, source, at);
	SPI_connect();
	payment_lock(&p, payment_id, NULL);
	if (payment_settle_locked(&p, outcome, provider_ref, at, source, detail_json) == PAYMENT_STALE)
		refuse_stale(&p, outcome);
	SPI_finish();
	return p.status;
}

/* ------------------------------------------------------------------------
 * create_invoice
 * ------------------------------------------------------------------------
 */

/*
 * Take one redemption of the promo code.  The guarded UPDATE re-checks the
 * limit on the latest row version after waiting for a concurrent reservation,
 * so two sessions can never both take the last one.
 */
static void
promo_reserve(const BillingQuote *q)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(q->promo_id);
	if (billing_spi_exec(&plan,
						 "UPDATE marketing.promo_codes SET redemptions = redemptions + 1 "
						 "WHERE id = $1 AND deleted_at IS NULL "
						 "  AND (max_redemptions IS NULL OR redemptions < max_redemptions)",
						 1, argtypes, values, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" has no redemptions left", q->promo_code),
				 errdetail("Its last redemption was taken by a concurrent purchase, or it was withdrawn.")));
}

/*
 * A promo code counts (reserved, stored with the payment, once per user) only
 * when it won over the discounts; a code that lost is not used up.
 */
static bool
promo_used(const BillingQuote *q)
{
	return q->promo_id != 0 && strcmp(q->applied, "promo") == 0;
}

/*
 * One statement (one executor run, one round trip through SPI) for the
 * customer, the payment and its creation event.  The customer is created on
 * first use: ON CONFLICT DO NOTHING waits for a concurrent first purchase of
 * the same user to commit and then does nothing, so there is one customer per
 * user and only the session that inserted it queues the e-mail fetch.  The
 * foreign keys are checked at the end of the statement, when the new
 * customer and payment are visible.
 */
#define INSERT_PAYMENT \
	"WITH c AS (" \
	" INSERT INTO billing.customers (user_id) VALUES ($1)" \
	" ON CONFLICT (user_id) DO NOTHING" \
	" RETURNING user_id), " \
	"p AS (" \
	" INSERT INTO billing.payments (user_id, tariff_id, tariff_code, tariff_title, months," \
	"   monthly_price, list_price, personal_percent, months_percent, promo_percent," \
	"   promo_code_id, promo_code, applied, total, currency, created_at, updated_at, expires_at)" \
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8 / 100.0, $9 / 100.0, $10 / 100.0," \
	"   $11, $12, $13, $14, $15, $16, $16, $17)" \
	" %s" \
	" RETURNING id, created_at), " \
	"e AS (" \
	" INSERT INTO billing.payment_events (payment_id, from_status, to_status, source, at)" \
	" SELECT id, NULL, 'invoiced', 'api', created_at FROM p" \
	" RETURNING payment_id) " \
	"SELECT e.payment_id, EXISTS (SELECT FROM c) FROM e"

/*
 * $1..$9 of both statements that store a quote as a payment: the buyer and
 * the snapshot (tariff id, code, title, months, monthly and list price, the
 * personal and months percents in basis points).
 */
static void
quote_values(Datum *values, const pg_uuid_t *user_id, const BillingQuote *q)
{
	values[0] = UUIDPGetDatum(user_id);
	values[1] = Int64GetDatum(q->tariff_id);
	values[2] = CStringGetTextDatum(q->tariff_code);
	values[3] = CStringGetTextDatum(q->tariff_title);
	values[4] = Int32GetDatum(q->months);
	values[5] = Int64GetDatum(q->monthly_price);
	values[6] = Int64GetDatum(q->list_price);
	values[7] = Int32GetDatum(q->personal_bp);
	values[8] = Int32GetDatum(q->months_bp);
}

/*
 * Store the customer (first use), the quote snapshot and its creation event;
 * returns the payment id.
 */
static pg_uuid_t *
payment_insert(pg_uuid_t *user_id, const BillingQuote *q)
{
	/* Two plans: only an invoice with a promo code needs the conflict arbiter. */
	static SPIPlanPtr plan_plain = NULL;
	static SPIPlanPtr plan_promo = NULL;
	static char *sql_plain = NULL;
	static char *sql_promo = NULL;
	Oid			argtypes[17] = {UUIDOID, INT8OID, TEXTOID, TEXTOID, INT4OID,
								INT8OID, INT8OID, INT4OID, INT4OID, INT4OID,
								INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID,
								TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[17];
	char		nulls[17];
	TimestampTz now = billing_now();
	bool		isnull;
	pg_uuid_t  *id;
	bool		with_promo = promo_used(q);

	if (sql_plain == NULL)
	{
		sql_plain = MemoryContextStrdup(TopMemoryContext, psprintf(INSERT_PAYMENT, ""));
		sql_promo = MemoryContextStrdup(TopMemoryContext, psprintf(INSERT_PAYMENT,
			"ON CONFLICT (promo_code_id, user_id) WHERE promo_code_id IS NOT NULL"
			" AND status IN ('invoiced', 'pending', 'paid', 'refund_pending') DO NOTHING"));
	}

	memset(nulls, ' ', sizeof(nulls));
	quote_values(values, user_id, q);
	values[9] = Int32GetDatum(with_promo ? q->promo_bp : 0);
	if (with_promo)
	{
		values[10] = Int64GetDatum(q->promo_id);
		values[11] = CStringGetTextDatum(q->promo_code);
	}
	else
		nulls[10] = nulls[11] = 'n';
	values[12] = CStringGetTextDatum(q->applied);
	values[13] = Int64GetDatum(q->total);
	values[14] = CStringGetTextDatum(q->currency);
	values[15] = TimestampTzGetDatum(now);
	values[16] = TimestampTzGetDatum(now + (int64) payments_invoice_lifetime * USECS_PER_SEC);

	if (billing_spi_exec(with_promo ? &plan_promo : &plan_plain,
						 with_promo ? sql_promo : sql_plain,
						 17, argtypes, values, nulls, false, 0) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" has already been used by this user", q->promo_code),
				 errdetail("A code can be used once per user; a concurrent invoice of this user took it.")));

	id = palloc(sizeof(pg_uuid_t));
	memcpy(id, DatumGetUUIDP(billing_spi_get(0, 1, &isnull)), sizeof(pg_uuid_t));

	/* A new customer: the auth service knows the e-mail. */
	if (DatumGetBool(billing_spi_get(0, 2, &isnull)))
	{
		char	   *u = billing_uuid_str(user_id);

		outbox_enqueue("fetch_email",
					   psprintf("{\"user_id\": \"%s\"}", u),
					   psprintf("customer:%s:email", u),
					   NULL);
	}
	return id;
}

bool
payment_create_renewal(pg_uuid_t *payment_id, const pg_uuid_t *user_id,
					   const BillingQuote *q, const RenewalInvoice *r)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[20] = {UUIDOID, INT8OID, TEXTOID, TEXTOID, INT4OID,
							 INT8OID, INT8OID, INT4OID, INT4OID, TEXTOID,
							 INT8OID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID,
							 TEXTOID, TEXTOID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[20];
	char		nulls[20];
	bool		isnull;

	memset(nulls, ' ', sizeof(nulls));
	quote_values(values, user_id, q);
	values[9] = CStringGetTextDatum(q->applied);
	values[10] = Int64GetDatum(q->total);
	values[11] = CStringGetTextDatum(q->currency);
	values[12] = TimestampTzGetDatum(billing_now());
	values[13] = TimestampTzGetDatum(r->expires_at);
	values[14] = CStringGetTextDatum(r->provider);
	values[15] = CStringGetTextDatum(r->customer);
	if (r->method)
		values[16] = CStringGetTextDatum(r->method);
	else
		nulls[16] = 'n';
	values[17] = TimestampTzGetDatum(r->renewal_of);
	values[18] = Int32GetDatum(r->attempt);
	values[19] = TimestampTzGetDatum(r->next_poll_at);

	SPI_connect();
	if (billing_spi_exec(&plan,
						 "WITH p AS ("
						 " INSERT INTO billing.payments (user_id, tariff_id, tariff_code, tariff_title, months,"
						 "   monthly_price, list_price, personal_percent, months_percent, applied, total,"
						 "   currency, created_at, updated_at, expires_at, provider, provider_customer,"
						 "   provider_method, renewal_of, renewal_attempt, next_poll_at)"
						 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8 / 100.0, $9 / 100.0, $10, $11,"
						 "   $12, $13, $13, $14, $15, $16, $17, $18, $19, $20)"
						 " ON CONFLICT (user_id, tariff_id, renewal_of) WHERE renewal_of IS NOT NULL"
						 "   AND status IN ('invoiced', 'pending', 'paid', 'refund_pending') DO NOTHING"
						 " RETURNING id, created_at) "
						 "INSERT INTO billing.payment_events (payment_id, from_status, to_status, source, at, detail) "
						 "SELECT id, NULL, 'invoiced', 'system', created_at,"
						 "       jsonb_build_object('renewal_of', $18, 'attempt', $19) FROM p "
						 "RETURNING payment_id",
						 20, types, values, nulls, false, 0) == 0)
	{
		SPI_finish();
		return false;
	}
	memcpy(payment_id, DatumGetUUIDP(billing_spi_get(0, 1, &isnull)), sizeof(pg_uuid_t));
	SPI_finish();

	payment_settle(payment_id, q->total == 0 ? PAYMENT_PAID : PAYMENT_PENDING, NULL, NULL,
				   "system", NULL);
	return true;
}

PG_FUNCTION_INFO_V1(billing_create_invoice);
Datum
billing_create_invoice(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id;
	char	   *tariff;
	int32		months;
	char	   *promo = NULL;
	BillingQuote q;
	pg_uuid_t  *id;
	pg_uuid_t  *result;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "tariff");
	BILLING_REQUIRE_ARG(fcinfo, 2, "months");
	user_id = PG_GETARG_UUID_P(0);
	tariff = text_to_cstring(PG_GETARG_TEXT_PP(1));
	months = PG_GETARG_INT32(2);
	if (!PG_ARGISNULL(3))
		promo = text_to_cstring(PG_GETARG_TEXT_PP(3));

	/* Validates tariff, months and promo code; raises before we change anything. */
	pricing_quote(&q, user_id, tariff, months, promo);

	SPI_connect();
	if (promo_used(&q))
		promo_reserve(&q);
	id = payment_insert(user_id, &q);
	result = (pg_uuid_t *) SPI_palloc(sizeof(pg_uuid_t));
	memcpy(result, id, sizeof(pg_uuid_t));

	/* Nothing to collect: paid at once, through the one settle path. */
	if (q.total == 0)
		payment_settle(result, PAYMENT_PAID, NULL, NULL, "system", NULL);
	SPI_finish();

	PG_RETURN_UUID_P(result);
}

/* ------------------------------------------------------------------------
 * settle_payment
 * ------------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(billing_settle_payment);
Datum
billing_settle_payment(PG_FUNCTION_ARGS)
{
	PaymentStatus outcome;
	char	   *provider_ref = NULL;
	TimestampTz at = 0;
	PaymentStatus status;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "payment_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "outcome");
	BILLING_REQUIRE_ARG(fcinfo, 4, "source");
	outcome = payment_outcome_arg(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	if (!PG_ARGISNULL(2))
		provider_ref = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		at = PG_GETARG_TIMESTAMPTZ(3);

	status = payment_settle(PG_GETARG_UUID_P(0), outcome, provider_ref,
							PG_ARGISNULL(3) ? NULL : &at,
							text_to_cstring(PG_GETARG_TEXT_PP(4)), NULL);
	PG_RETURN_TEXT_P(cstring_to_text(payment_status_name(status)));
}

/* ------------------------------------------------------------------------
 * cancel_payment
 * ------------------------------------------------------------------------
 */

PaymentStatus
payment_cancel(const pg_uuid_t *user_id, const pg_uuid_t *payment_id, const char *source)
{
	PaymentInfo p;
	PaymentCancelKind kind;
	PaymentStatus outcome;
	char	   *provider_ref = NULL;
	const char *detail = NULL;

	source = check_source(source);
	SPI_connect();
	payment_lock(&p, payment_id, user_id);

	switch (p.status)
	{
		case PAYMENT_INVOICED:
		case PAYMENT_PENDING:
			kind = PAYMENT_CANCEL_UNPAID;
			outcome = PAYMENT_CANCELED;
			break;
		case PAYMENT_PAID:
			{
				TimestampTz now = billing_now();
				TimestampTz deadline = p.paid_at + (int64) payments_refund_window * USECS_PER_SEC;

				if (now > deadline)
					ereport(ERROR,
							(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							 errmsg("refund window has passed"),
							 errdetail("The payment succeeded at %s; refunds are accepted until %s.",
									   pstrdup(timestamptz_to_str(p.paid_at)),
									   pstrdup(timestamptz_to_str(deadline)))));
				kind = PAYMENT_CANCEL_REFUND;

				/*
				 * A payment that never went to a provider (a zero total, or
				 * one an admin settled by hand) has no provider refund to
				 * wait for: it is refunded at once, and the event says so.
				 * Money an admin took off-band goes back the same way.
				 */
				if (p.provider_session_id == NULL)
				{
					outcome = PAYMENT_REFUNDED;
					detail = "{\"refund\": \"without_provider\"}";
				}
				else
					outcome = PAYMENT_REFUND_PENDING;
				break;
			}
		case PAYMENT_REFUND_PENDING:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("a refund of this payment is already in progress")));
			break;
		case PAYMENT_REFUNDED:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("payment is already refunded")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("payment is already %s", payment_status_name(p.status)),
					 errdetail("Only an unpaid or a recently paid payment can be canceled.")));
	}

	if (payment_cancel_hook && p.provider_session_id)
		outcome = payment_cancel_hook(&p, kind, outcome, &provider_ref);

	/* Judged above under the row lock: the transition is allowed. */
	if (payment_settle_locked(&p, outcome, provider_ref, NULL, source, detail) == PAYMENT_STALE)
		refuse_stale(&p, outcome);
	SPI_finish();
	return p.status;
}

PG_FUNCTION_INFO_V1(billing_cancel_payment);
Datum
billing_cancel_payment(PG_FUNCTION_ARGS)
{
	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "payment_id");

	PG_RETURN_TEXT_P(cstring_to_text(payment_status_name(payment_cancel(PG_GETARG_UUID_P(0),
																		PG_GETARG_UUID_P(1),
																		"api"))));
}

/* ------------------------------------------------------------------------
 * expire_invoices
 * ------------------------------------------------------------------------
 */

/*
 * Expire unpaid invoices past their lifetime, oldest first, at most
 * billing.invoice_expiry_batch per call, through the payments_open index.
 * A payment whose checkout is open at the provider is left to the provider
 * poller: only the provider knows whether it was paid at the last second.
 * So is an automatic charge whose answer was lost (no provider object
 * recorded): the poller asks the provider whether it was made.
 * Rows locked by a concurrent settle are skipped and taken next time.
 */
PG_FUNCTION_INFO_V1(billing_expire_invoices);
Datum
billing_expire_invoices(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		values[2];
	uint64		n;
	pg_uuid_t  *ids;
	MemoryContext loopcxt;
	MemoryContext oldcxt;
	int32		expired = 0;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	SPI_connect();
	values[0] = TimestampTzGetDatum(billing_now());
	values[1] = Int32GetDatum(payments_expiry_batch);
	n = billing_spi_exec(&plan,
						 "SELECT id FROM billing.payments "
						 "WHERE status IN ('invoiced', 'pending') AND expires_at <= $1 "
						 "  AND (status = 'invoiced' OR (provider_session_id IS NULL AND renewal_of IS NULL)) "
						 "ORDER BY expires_at "
						 "LIMIT $2 "
						 "FOR UPDATE SKIP LOCKED",
						 2, argtypes, values, NULL, false, 0);

	ids = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		memcpy(&ids[i], DatumGetUUIDP(billing_spi_get(i, 1, &isnull)), sizeof(pg_uuid_t));
	}

	loopcxt = AllocSetContextCreate(CurrentMemoryContext, "expire_invoices",
									ALLOCSET_DEFAULT_SIZES);
	for (uint64 i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(loopcxt);
		/* We hold the row locks, so each is still open: this cannot be refused. */
		payment_settle(&ids[i], PAYMENT_EXPIRED, NULL, NULL, "system", NULL);
		expired++;
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(loopcxt);
	}
	SPI_finish();

	PG_RETURN_INT32(expired);
}
