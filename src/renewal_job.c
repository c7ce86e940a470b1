/*
 * renewal_job.c — PROCEDURE billing.run_renewals(), the pg_cron job of
 * auto-renewal: finds the subscriptions whose charge is due through the
 * subscriptions_renew index and, for each in transactions of its own, makes
 * the renewal's invoice (priced by today's rules, no promo code) and charges
 * the saved method off-session.  What the outcome does is the settle path's
 * (payments.c) and autorenew.c's.
 *
 * Crashes and races: the invoice (pending, with the poller's first look
 * scheduled) commits before the provider is called, so a crash after the
 * charge leaves a pending payment that the poller finishes by asking the
 * provider (renewal_charge with lookup_first); the charge's idempotency key
 * comes from the subscription, its end of term and the attempt, so no call
 * can charge a term twice, and billing.payments allows one live or paid
 * charge per end of term.  The charge itself holds the payment and
 * subscription rows, so billing.set_auto_renew(false) either wins (nothing
 * is charged) or waits for it (at most the provider's timeout).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "autorenew.h"
#include "common.h"
#include "clock.h"
#include "payments.h"
#include "pricing.h"
#include "provider.h"
#include "renewal_job.h"
#include "stripe.h"
#include "subscriptions.h"

typedef struct RenewalCounts
{
	int			due;
	int			invoiced;
	int			paid;
	int			failed;
	int			waiting;
	int			skipped;
	int			errors;
	double		provider_ms;	/* time spent waiting for the provider */
} RenewalCounts;

/* ---------------------------------------------------------------------
 * The charge
 * --------------------------------------------------------------------- */

/* The subscription a charge renews, locked. */
typedef struct ChargedSub
{
	int64		id;
	bool		auto_renew;
	bool		blocked;
	bool		on_sale;
	TimestampTz ends_at;
} ChargedSub;

static void
lock_charged_sub(ChargedSub *s, const PaymentInfo *p)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, INT8OID};
	Datum		values[2] = {UUIDPGetDatum(&p->user_id), Int64GetDatum(p->tariff_id)};
	bool		isnull;

	if (billing_spi_exec(&plan,
						 "SELECT s.id, s.auto_renew, s.status = 'blocked', t.active, s.ends_at "
						 "FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id "
						 "WHERE s.user_id = $1 AND s.tariff_id = $2 FOR UPDATE OF s",
						 2, types, values, NULL, false, 0) == 0)
		elog(ERROR, "automatic charge %s has no subscription", billing_uuid_str(&p->id));
	s->id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	s->auto_renew = DatumGetBool(billing_spi_get(0, 2, &isnull));
	s->blocked = DatumGetBool(billing_spi_get(0, 3, &isnull));
	s->on_sale = DatumGetBool(billing_spi_get(0, 4, &isnull));
	s->ends_at = DatumGetTimestampTz(billing_spi_get(0, 5, &isnull));
}

const char *
renewal_charge(const pg_uuid_t *payment_id, bool lookup_first, const char *source,
			   instr_time *spent, const char **status)
{
	instr_time	start;

	PaymentInfo p;
	ChargedSub	s;
	const BillingProvider *prov;
	ProviderCharge c;
	bool		unreachable = false;
	void	   *obj;
	const char *result;

	INSTR_TIME_SET_ZERO(*spent);
	SPI_connect();
	payment_lock(&p, payment_id, NULL);
	*status = payment_status_name(p.status);
	if (p.status != PAYMENT_PENDING || !p.is_renewal || p.provider_session_id != NULL)
	{
		SPI_finish();
		return "unchanged";
	}
	lock_charged_sub(&s, &p);
	prov = provider_of(p.provider);
	if (prov->charge == NULL)
		elog(ERROR, "provider %s cannot charge automatic payment %s", prov->name,
			 billing_uuid_str(payment_id));

	memset(&c, 0, sizeof(c));
	c.payment_id = p.id;
	c.user_id = p.user_id;
	c.tariff_title = p.tariff_title;
	c.months = p.months;
	c.total = p.total;
	c.currency = p.currency;
	c.customer = p.provider_customer;
	c.method = p.provider_method;
	c.created_at = p.created_at;
	c.idempotency_key = psprintf("billing-renew-" INT64_FORMAT "-" INT64_FORMAT "-%d",
								 s.id, subscription_epoch(p.renewal_of), p.renewal_attempt);

	if (lookup_first)
	{
		INSTR_TIME_SET_CURRENT(start);
		obj = prov->find_charge(&c, &unreachable);
		INSTR_TIME_SET_CURRENT(*spent);
		INSTR_TIME_SUBTRACT(*spent, start);
		if (obj)
		{
			result = prov->apply_charge(payment_id, obj, source, status);
			SPI_finish();
			return result;
		}
		if (unreachable)
		{
			SPI_finish();
			return "unreachable";
		}
	}

	/*
	 * Never charged when, since the job picked it up, the buyer switched
	 * auto-renewal off, the subscription ended or moved on, or the tariff
	 * went off sale: the invoice closes unpaid instead.
	 */
	if (!s.auto_renew || s.blocked || !s.on_sale || s.ends_at != p.renewal_of ||
		billing_now() >= p.expires_at)
	{
		if (!s.on_sale)
			autorenew_switch_off(s.id, "tariff_unavailable");
		payment_settle_locked(&p, billing_now() >= p.expires_at ? PAYMENT_EXPIRED : PAYMENT_CANCELED,
							  NULL, NULL, source, "{\"renewal\": \"not_charged\"}");
		*status = payment_status_name(p.status);
		SPI_finish();
		return "canceled";
	}

	INSTR_TIME_SET_CURRENT(start);
	obj = prov->charge(&c, &unreachable);
	{
		instr_time	now;

		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, start);
		INSTR_TIME_ADD(*spent, now);
	}
	if (obj == NULL)
	{
		SPI_finish();
		return "unreachable";
	}
	result = prov->apply_charge(payment_id, obj, source, status);
	SPI_finish();
	return result;
}

/* ---------------------------------------------------------------------
 * The job
 * --------------------------------------------------------------------- */

/* The due subscriptions, oldest charge first (read only; each is locked when handled). */
static int64 *
due_subscriptions(TimestampTz now, uint64 *n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		values[2] = {TimestampTzGetDatum(now), Int32GetDatum(autorenew_batch)};
	int64	   *ids;
	bool		isnull;

	*n = billing_spi_exec(&plan,
						  "SELECT id FROM billing.subscriptions WHERE renew_at <= $1 "
						  "ORDER BY renew_at LIMIT $2",
						  2, types, values, NULL, true, 0);
	ids = palloc(sizeof(int64) * Max(*n, 1));
	for (uint64 i = 0; i < *n; i++)
		ids[i] = DatumGetInt64(billing_spi_get(i, 1, &isnull));
	return ids;
}

typedef struct OpenArgs
{
	int64		subscription_id;
	TimestampTz now;
	bool		made;			/* out: an invoice to charge */
	pg_uuid_t	payment_id;		/* out */
	RenewalCounts *counts;
} OpenArgs;

/*
 * The renewal's invoice for one due subscription, under its row lock: a
 * subscription another job holds is skipped (SKIP LOCKED), one that should
 * no longer renew is switched off, and renew_at is cleared (the outcome of
 * the charge sets the next one).
 */
static void
open_renewal(void *arg)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr taken_plan = NULL;
	OpenArgs   *a = (OpenArgs *) arg;
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2] = {Int64GetDatum(a->subscription_id), TimestampTzGetDatum(a->now)};
	bool		isnull;
	pg_uuid_t	user_id;
	bool		blocked;
	bool		on_sale;
	int32		months;
	char	   *code;
	BillingQuote q;
	RenewalInvoice r;

	SPI_connect();
	if (billing_spi_exec(&lock_plan,
						 "SELECT s.user_id, s.status = 'blocked' OR s.grace_ends_at <= $2, t.active,"
						 "       s.renew_months, t.code, s.ends_at, s.grace_ends_at, s.renew_failures,"
						 "       s.renew_provider, s.renew_customer, s.renew_method "
						 "FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id "
						 "WHERE s.id = $1 AND s.renew_at <= $2 AND s.auto_renew "
						 "FOR UPDATE OF s SKIP LOCKED",
						 2, types, values, NULL, false, 0) == 0)
	{
		a->counts->skipped++;
		SPI_finish();
		return;
	}
	memcpy(&user_id, DatumGetUUIDP(billing_spi_get(0, 1, &isnull)), sizeof(pg_uuid_t));
	blocked = DatumGetBool(billing_spi_get(0, 2, &isnull));
	on_sale = DatumGetBool(billing_spi_get(0, 3, &isnull));
	months = DatumGetInt32(billing_spi_get(0, 4, &isnull));
	code = billing_spi_text(0, 5);
	memset(&r, 0, sizeof(r));
	r.renewal_of = DatumGetTimestampTz(billing_spi_get(0, 6, &isnull));
	r.expires_at = DatumGetTimestampTz(billing_spi_get(0, 7, &isnull));
	r.attempt = DatumGetInt32(billing_spi_get(0, 8, &isnull)) + 1;
	r.provider = billing_spi_text(0, 9);
	r.customer = billing_spi_text(0, 10);
	r.method = billing_spi_text(0, 11);
	r.next_poll_at = a->now + (int64) stripe_poll_interval * USECS_PER_SEC;

	if (blocked || !on_sale || months > pricing_max_months)
	{
		autorenew_switch_off(a->subscription_id, blocked ? "lapsed" : "tariff_unavailable");
		a->counts->skipped++;
		SPI_finish();
		return;
	}

	billing_spi_exec(&taken_plan,
					 "UPDATE billing.subscriptions SET renew_at = NULL WHERE id = $1",
					 1, types, values, NULL, false, 0);
	pricing_quote(&q, &user_id, code, months, NULL);
	if (!payment_create_renewal(&a->payment_id, &user_id, &q, &r))
	{
		/* A live charge of this end exists: its outcome decides what follows. */
		a->counts->skipped++;
		SPI_finish();
		return;
	}
	a->counts->invoiced++;
	a->made = q.total > 0;
	if (!a->made)
		a->counts->paid++;
	SPI_finish();
}

typedef struct ChargeArgs
{
	pg_uuid_t	payment_id;
	RenewalCounts *counts;
} ChargeArgs;

static void
charge_one(void *arg)
{
	ChargeArgs *a = (ChargeArgs *) arg;
	instr_time	spent;
	const char *status;

	(void) renewal_charge(&a->payment_id, false, "system", &spent, &status);
	a->counts->provider_ms += INSTR_TIME_GET_MILLISEC(spent);

	/* Count by where the payment now stands. */
	if (strcmp(status, "paid") == 0)
		a->counts->paid++;
	else if (strcmp(status, "failed") == 0 || strcmp(status, "canceled") == 0 ||
			 strcmp(status, "expired") == 0)
		a->counts->failed++;
	else
		a->counts->waiting++;
}

PG_FUNCTION_INFO_V1(billing_run_renewals);
Datum
billing_run_renewals(PG_FUNCTION_ARGS)
{
	bool		nonatomic;
	MemoryContext callcxt = CurrentMemoryContext;
	MemoryContext itercxt;
	TupleDesc	tupdesc;
	RenewalCounts counts = {0};
	TimestampTz now = billing_now();
	int64	   *ids;
	uint64		n;
	char	   *json;
	Datum		values[1];
	bool		nulls[1] = {false};
	HeapTuple	tuple;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "billing.run_renewals must return a record");
	tupdesc = BlessTupleDesc(tupdesc);

	SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0);
	ids = due_subscriptions(now, &n);
	counts.due = (int) n;
	if (nonatomic)
		SPI_commit();

	itercxt = AllocSetContextCreate(CurrentMemoryContext, "run_renewals item",
									ALLOCSET_DEFAULT_SIZES);
	for (uint64 i = 0; i < n; i++)
	{
		OpenArgs	open = {0};
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(itercxt);
		old = MemoryContextSwitchTo(itercxt);

		/* 1. The invoice, committed before any provider call. */
		open.subscription_id = ids[i];
		open.now = now;
		open.counts = &counts;
		if (!billing_guarded(open_renewal, &open,
							 psprintf("could not renew subscription " INT64_FORMAT, ids[i])))
			counts.errors++;
		if (nonatomic)
			SPI_commit();

		/* 2. The charge, and its outcome. */
		if (open.made)
		{
			ChargeArgs	charge = {open.payment_id, &counts};

			if (!billing_guarded(charge_one, &charge,
								 psprintf("could not charge payment %s; the poller asks again",
										  billing_uuid_str(&open.payment_id))))
				counts.errors++;
			if (nonatomic)
				SPI_commit();
		}
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(itercxt);
	SPI_finish();

	/* The output row, in the caller's context: SPI's are gone. */
	MemoryContextSwitchTo(callcxt);
	json = psprintf("{\"due\": %d, \"invoiced\": %d, \"paid\": %d, \"failed\": %d, "
					"\"waiting\": %d, \"skipped\": %d, \"errors\": %d, \"provider_ms\": %.1f}",
					counts.due, counts.invoiced, counts.paid, counts.failed,
					counts.waiting, counts.skipped, counts.errors, counts.provider_ms);
	values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	tuple = heap_form_tuple(tupdesc, values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
