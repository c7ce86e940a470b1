/*
 * poll.c — PROCEDURE billing.poll_payments() (also called
 * billing.stripe_poll, its name from before there were two providers): asks
 * each payment's provider about pending checkouts and refunds that no
 * notification has settled, and about payments closed here that the
 * provider could still take money for (provider_watch); oldest due first, a
 * bounded batch per provider with backoff per payment; purges old Stripe
 * webhook events.  Scheduled by pg_cron (billing.stripe_poll_schedule).
 *
 * No transaction stays open across a provider call: the claim (which is
 * also the backoff: next_poll_at moves forward) commits first, the calls run
 * with no snapshot, lock or xid held, and each result is settled and
 * committed on its own.  A crash in between loses nothing: the row is due
 * again after its backoff.  CALLed inside a transaction block it cannot
 * commit, and then simply does everything in the caller's transaction.
 *
 * One provider's outage never holds up another's: each provider claims its
 * own batch, the providers' items take turns, and once a provider cannot be
 * reached at all its remaining items wait for the next run (their backoff
 * already moved on) instead of each waiting out a timeout.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "common.h"
#include "clock.h"
#include "provider.h"
#include "renewal_job.h"
#include "stripe.h"

typedef struct PollItem
{
	ProviderPollItem item;
	const BillingProvider *provider;
} PollItem;

typedef struct PollCounts
{
	int			claimed;
	int			settled;
	int			unchanged;
	int			errors;
	int64		purged;
} PollCounts;

#define MAX_PROVIDERS 8

/*
 * Claim one provider's due payments: push each one's next poll forward by
 * its backoff, so that the claim is also the backoff and a crash before
 * settling only delays the row.  Returns the claimed rows, copied out of
 * SPI's tuple table into the current context (SPI's procedure context,
 * which outlives the commits of a non-atomic call); *n is how many.  A
 * payment without a recorded provider is Stripe's (provider_of).
 */
static PollItem *
claim_due_payments(const BillingProvider *prov, TimestampTz now, uint64 *n)
{
	static SPIPlanPtr claim_plan = NULL;
	Oid			types[5] = {TIMESTAMPTZOID, INT4OID, INT4OID, INT4OID, TEXTOID};
	Datum		values[5] = {TimestampTzGetDatum(now), Int32GetDatum(stripe_poll_batch),
							 Int32GetDatum(stripe_poll_interval),
							 Int32GetDatum(stripe_poll_max_interval),
							 CStringGetTextDatum(prov->name)};
	PollItem   *items;

	*n = billing_spi_exec(&claim_plan,
						  "WITH due AS ("
						  "  SELECT id FROM billing.payments"
						  "  WHERE (status IN ('pending', 'refund_pending') OR provider_watch)"
						  "    AND next_poll_at <= $1"
						  "    AND coalesce(provider, 'stripe') = $5"
						  "  ORDER BY next_poll_at, created_at"
						  "  LIMIT $2"
						  "  FOR UPDATE SKIP LOCKED),"
						  " backoff AS ("
						  "  SELECT p.id, make_interval(secs => least($3::float8 * power(2, least(p.poll_attempts, 30)),"
						  "                                          $4::float8)) AS wait"
						  "  FROM billing.payments p JOIN due USING (id))"
						  "UPDATE billing.payments p"
						  "   SET poll_attempts = p.poll_attempts + 1,"
						  "       next_poll_at = CASE WHEN p.status = 'pending' AND p.expires_at > $1"
						  "                           THEN least($1 + b.wait, p.expires_at)"
						  "                           ELSE $1 + b.wait END"
						  "  FROM backoff b WHERE p.id = b.id "
						  "RETURNING p.id, p.status::text, p.provider_session_id,"
						  "          p.provider_refund_id, p.expires_at, p.renewal_of IS NOT NULL",
						  5, types, values, NULL, false, 0);

	items = palloc0(sizeof(PollItem) * Max(*n, 1));
	for (uint64 i = 0; i < *n; i++)
	{
		bool		isnull;
		ProviderPollItem *it = &items[i].item;

		items[i].provider = prov;
		memcpy(&it->id, DatumGetUUIDP(billing_spi_get(i, 1, &isnull)), sizeof(pg_uuid_t));
		if (!payment_status_parse(billing_spi_text(i, 2), &it->status))
			elog(ERROR, "payment %s has an unknown status", billing_uuid_str(&it->id));
		it->session_id = billing_spi_text(i, 3);
		it->refund_id = billing_spi_text(i, 4);
		it->expires_at = DatumGetTimestampTz(billing_spi_get(i, 5, &isnull));
		it->is_renewal = DatumGetBool(billing_spi_get(i, 6, &isnull));
	}
	return items;
}

/*
 * Every provider's batch, the providers taking turns (first of each, second
 * of each, ...), so that a slow provider's items are spread out instead of
 * queued in front of another's.
 */
static PollItem *
claim_all(TimestampTz now, uint64 *total)
{
	PollItem   *batch[MAX_PROVIDERS];
	uint64		count[MAX_PROVIDERS];
	int			np = 0;
	uint64		most = 0;
	PollItem   *all;
	uint64		k = 0;

	*total = 0;
	for (int p = 0; billing_providers[p] && p < MAX_PROVIDERS; p++, np++)
	{
		batch[p] = claim_due_payments(billing_providers[p], now, &count[p]);
		*total += count[p];
		most = Max(most, count[p]);
	}
	all = palloc0(sizeof(PollItem) * Max(*total, 1));
	for (uint64 i = 0; i < most; i++)
		for (int p = 0; p < np; p++)
			if (i < count[p])
				all[k++] = batch[p][i];
	return all;
}

/*
 * Apply what the provider said about one payment.  One bad row must not stop
 * the batch, so the settle runs in a subtransaction (billing_guarded): an
 * error rolls back only this payment and becomes a WARNING.
 */
typedef struct ItemArgs
{
	const PollItem *item;
	TimestampTz now;
	void	   *obj;			/* settle: in; fetch: out */
	bool		unreachable;	/* fetch: out */
	PollCounts *counts;
} ItemArgs;

static void
settle_guarded(void *arg)
{
	ItemArgs   *a = (ItemArgs *) arg;
	const char *status;

	if (strcmp(a->item->provider->poll_apply(&a->item->item, a->obj, &status), "applied") == 0)
		a->counts->settled++;
	else
		a->counts->unchanged++;
}

static void
settle_item(const PollItem *item, void *obj, PollCounts *counts)
{
	ItemArgs	a = {item, 0, obj, false, counts};

	if (!billing_guarded(settle_guarded, &a,
						 psprintf("could not settle payment %s from %s",
								  billing_uuid_str(&item->item.id), item->provider->name)))
		counts->errors++;
}

/*
 * Ask the provider about one payment (poll_fetch).  An error raised there
 * (its settings incomplete, a malformed id) must not end the poll for every
 * other provider either: it is caught in a subtransaction, logged, and the
 * provider is treated as unreachable for the rest of this run.  A query
 * cancel is not swallowed: it ends the poll as it should.
 */
static void
fetch_guarded(void *arg)
{
	ItemArgs   *a = (ItemArgs *) arg;

	a->obj = a->item->provider->poll_fetch(&a->item->item, a->now, &a->unreachable);
}

static void *
fetch_item(const PollItem *item, TimestampTz now, bool *unreachable)
{
	ItemArgs	a = {item, now, NULL, false, NULL};

	if (!billing_guarded(fetch_guarded, &a,
						 psprintf("could not poll payment %s at %s",
								  billing_uuid_str(&item->item.id), item->provider->name)))
	{
		*unreachable = true;
		return NULL;
	}
	*unreachable = a.unreachable;
	return a.obj;
}

typedef struct ResolveArgs
{
	pg_uuid_t	id;
	PollCounts *counts;
} ResolveArgs;

static void
resolve_charge(void *arg)
{
	ResolveArgs *a = (ResolveArgs *) arg;
	instr_time	spent;
	const char *status;
	const char *word = renewal_charge(&a->id, true, "poll", &spent, &status);

	if (strcmp(word, "applied") == 0)
		a->counts->settled++;
	else if (strcmp(word, "unreachable") == 0)
		a->counts->errors++;
	else
		a->counts->unchanged++;
}

/*
 * Ask the provider about each claimed payment and settle it, one at a time:
 * the call runs with no transaction state held, and each settle commits on
 * its own (when the call may commit).  A per-payment memory context, reset
 * every turn, keeps a large batch from growing memory.
 */
static void
poll_items(PollItem *items, uint64 n, TimestampTz now, bool nonatomic, PollCounts *counts)
{
	MemoryContext itercxt;
	const BillingProvider *down[MAX_PROVIDERS];
	int			ndown = 0;

	itercxt = AllocSetContextCreate(CurrentMemoryContext, "poll_payments item",
									ALLOCSET_DEFAULT_SIZES);
	for (uint64 i = 0; i < n; i++)
	{
		PollItem   *item = &items[i];
		MemoryContext old;
		void	   *obj;
		bool		unreachable = false;
		bool		skip = false;

		CHECK_FOR_INTERRUPTS();
		for (int d = 0; d < ndown; d++)
			skip |= (down[d] == item->provider);
		if (skip)
		{
			/* Its provider is unreachable this run: due again after its backoff. */
			counts->errors++;
			continue;
		}
		MemoryContextReset(itercxt);
		old = MemoryContextSwitchTo(itercxt);

		/*
		 * An automatic charge whose provider object we never recorded (a
		 * crash cut the job short): ask whether it was made, and make it
		 * when it was not and is still wanted (renewal_job.c).
		 */
		if (item->item.is_renewal && item->item.session_id == NULL &&
			item->item.status == PAYMENT_PENDING)
		{
			ResolveArgs r = {item->item.id, counts};

			if (!billing_guarded(resolve_charge, &r,
								 psprintf("could not finish automatic charge %s",
										  billing_uuid_str(&item->item.id))))
				counts->errors++;
			MemoryContextSwitchTo(old);
			if (nonatomic)
				SPI_commit();
			continue;
		}

		obj = fetch_item(item, now, &unreachable);
		if (obj == NULL)
		{
			counts->errors++;
			if (unreachable && ndown < MAX_PROVIDERS)
			{
				down[ndown++] = item->provider;
				ereport(WARNING,
						(errmsg("%s is unreachable; its other payments wait for the next poll",
								item->provider->name)));
			}
			MemoryContextSwitchTo(old);
			continue;
		}

		settle_item(item, obj, counts);
		MemoryContextSwitchTo(old);
		if (nonatomic)
			SPI_commit();
	}
	MemoryContextDelete(itercxt);
}

/* Forget old events; a bounded slice each run, so one run stays short. */
static int64
purge_old_events(void)
{
	static SPIPlanPtr purge_plan = NULL;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(stripe_event_retention)};

	return (int64) billing_spi_exec(&purge_plan,
									"DELETE FROM billing.stripe_events WHERE id IN ("
									"  SELECT id FROM billing.stripe_events"
									"  WHERE received_at < now() - make_interval(days => $1)"
									"  ORDER BY received_at LIMIT 1000)",
									1, types, values, NULL, false, 0);
}

/*
 * The procedure's one output row, built in the caller's context: SPI's
 * contexts are gone once SPI_finish has run.
 */
static Datum
poll_result(TupleDesc tupdesc, MemoryContext callcxt, const PollCounts *counts)
{
	MemoryContext old = MemoryContextSwitchTo(callcxt);
	char	   *json = psprintf("{\"claimed\": %d, \"settled\": %d, \"unchanged\": %d, "
								"\"errors\": %d, \"purged\": " INT64_FORMAT "}",
								counts->claimed, counts->settled, counts->unchanged,
								counts->errors, counts->purged);
	Datum		values[1];
	bool		nulls[1] = {false};
	HeapTuple	tuple;

	values[0] = DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
	tuple = heap_form_tuple(tupdesc, values, nulls);
	MemoryContextSwitchTo(old);
	return HeapTupleGetDatum(tuple);
}

PG_FUNCTION_INFO_V1(billing_poll_payments);
Datum
billing_poll_payments(PG_FUNCTION_ARGS)
{
	bool		nonatomic;
	MemoryContext callcxt = CurrentMemoryContext;
	TupleDesc	tupdesc;
	PollItem   *items;
	PollCounts	counts = {0};
	TimestampTz now = billing_now();
	uint64		n;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "billing.poll_payments must return a record");
	tupdesc = BlessTupleDesc(tupdesc);

	SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0);

	/* 1. Claim, and commit the claim before any provider call. */
	items = claim_all(now, &n);
	counts.claimed = (int) n;
	if (nonatomic)
		SPI_commit();

	/* 2. Ask the providers and settle, one payment at a time. */
	poll_items(items, n, now, nonatomic, &counts);

	/* 3. Forget old events. */
	counts.purged = purge_old_events();
	SPI_finish();

	PG_RETURN_DATUM(poll_result(tupdesc, callcxt, &counts));
}
