/*
 * poll.c — PROCEDURE billing.stripe_poll(): asks Stripe about pending
 * checkouts and refunds that no webhook has settled, oldest due first, in a
 * bounded batch with backoff per payment; expires abandoned sessions; purges
 * old webhook events.  Scheduled by pg_cron (billing.stripe_poll_schedule).
 *
 * No transaction stays open across a Stripe call: the claim (which is also
 * the backoff: next_poll_at moves forward) commits first, the calls run with
 * no snapshot, lock or xid held, and each result is settled and committed on
 * its own.  A crash in between loses nothing: the row is due again after its
 * backoff.  CALLed inside a transaction block it cannot commit, and then
 * simply does everything in the caller's transaction.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/uuid.h"

#include "common.h"
#include "clock.h"
#include "stripe.h"

typedef struct PollItem
{
	pg_uuid_t	id;
	bool		refund;			/* refund_pending (else pending) */
	char	   *session_id;
	char	   *refund_id;
	TimestampTz expires_at;
} PollItem;

typedef struct PollCounts
{
	int			claimed;
	int			settled;
	int			unchanged;
	int			errors;
	int64		purged;
} PollCounts;

static void
log_failure(const PollItem *item, const StripeResult *r)
{
	ereport(WARNING,
			(errmsg("stripe poll of payment %s failed; retrying after backoff", billing_uuid_str(&item->id)),
			 r->http_status ?
			 errdetail("Stripe answered HTTP %ld (%s): %s", r->http_status,
					   r->error_code ? r->error_code : (r->error_type ? r->error_type : "no code"),
					   r->error_message ? r->error_message : "(no message)") :
			 errdetail("%s.", r->transport_error ? r->transport_error : "No response")));
}

/*
 * Ask Stripe about one payment.  Returns the object to apply, or NULL after
 * logging why not.  Runs with no transaction state of interest held.
 */
static Jsonb *
fetch(const PollItem *item, TimestampTz now)
{
	StripeResult r;
	StringInfoData q;
	char	   *path;

	initStringInfo(&q);
	if (item->refund)
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
			log_failure(item, &r);
			return NULL;
		}
		return r.body;
	}

	if (item->session_id == NULL)
		return NULL;
	stripe_check_id(item->session_id, "checkout session");
	path = psprintf("/v1/checkout/sessions/%s", item->session_id);
	stripe_form_add(&q, "expand[]", "payment_intent.latest_charge");
	stripe_request(&r, "GET", path, q.data, NULL);
	if (r.outcome != STRIPE_OK)
	{
		log_failure(item, &r);
		return NULL;
	}

	/*
	 * Still open although the invoice has run out (the session may live a
	 * little longer, Stripe's minimum being 30 minutes): expire it, so it
	 * can no longer be paid, then settle what Stripe says it is.
	 */
	{
		char	   *st = stripe_json_str(&r.body->root, "status");

		if (st && strcmp(st, "open") == 0 && item->expires_at <= now)
		{
			StripeResult e;

			stripe_request(&e, "POST", psprintf("%s/expire", path), NULL,
						   psprintf("billing-expire-%s", billing_uuid_str(&item->id)));
			if (e.outcome == STRIPE_OK)
				return e.body;
			/* Completed meanwhile (400), or Stripe failing: fetch once more next time. */
			log_failure(item, &e);
			return NULL;
		}
	}
	return r.body;
}

/*
 * Claim the due payments: push each one's next poll forward by its backoff,
 * so that the claim is also the backoff and a crash before settling only
 * delays the row.  Returns the claimed rows, copied out of SPI's tuple table
 * into the current context (SPI's procedure context, which outlives the
 * commits of a non-atomic call); *n is how many.
 */
static PollItem *
claim_due_payments(TimestampTz now, uint64 *n)
{
	static SPIPlanPtr claim_plan = NULL;
	Oid			types[4] = {TIMESTAMPTZOID, INT4OID, INT4OID, INT4OID};
	Datum		values[4] = {TimestampTzGetDatum(now), Int32GetDatum(stripe_poll_batch),
							 Int32GetDatum(stripe_poll_interval),
							 Int32GetDatum(stripe_poll_max_interval)};
	PollItem   *items;

	*n = billing_spi_exec(&claim_plan,
						  "WITH due AS ("
						  "  SELECT id FROM billing.payments"
						  "  WHERE status IN ('pending', 'refund_pending') AND next_poll_at <= $1"
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
						  "RETURNING p.id, p.status = 'refund_pending', p.provider_session_id,"
						  "          p.provider_refund_id, p.expires_at",
						  4, types, values, NULL, false, 0);

	items = palloc0(sizeof(PollItem) * Max(*n, 1));
	for (uint64 i = 0; i < *n; i++)
	{
		bool		isnull;

		memcpy(&items[i].id, DatumGetUUIDP(billing_spi_get(i, 1, &isnull)), sizeof(pg_uuid_t));
		items[i].refund = DatumGetBool(billing_spi_get(i, 2, &isnull));
		items[i].session_id = billing_spi_text(i, 3);
		items[i].refund_id = billing_spi_text(i, 4);
		items[i].expires_at = DatumGetTimestampTz(billing_spi_get(i, 5, &isnull));
	}
	return items;
}

/*
 * Apply what Stripe said about one payment.  One bad row must not stop the
 * batch, so the settle runs in a subtransaction: an error rolls back only
 * this payment and becomes a WARNING.  Everything the error path reads is
 * either a parameter (never assigned here) or behind a pointer, so nothing
 * needs to be volatile across the longjmp.
 */
static void
settle_item(const PollItem *item, Jsonb *obj, MemoryContext itercxt, PollCounts *counts)
{
	ResourceOwner owner = CurrentResourceOwner;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(itercxt);
	PG_TRY();
	{
		const char *status;
		const char *result;

		if (item->refund)
			result = stripe_apply_refund(&item->id, &obj->root, NULL, "poll", NULL, &status);
		else
			result = stripe_apply_session(&item->id, &obj->root, NULL, NULL, "poll", NULL, &status);
		if (strcmp(result, "applied") == 0)
			counts->settled++;
		else
			counts->unchanged++;
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(itercxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(itercxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(itercxt);
		CurrentResourceOwner = owner;
		counts->errors++;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("could not settle payment %s from stripe: %s",
						billing_uuid_str(&item->id), edata->message),
				 edata->detail ? errdetail("%s", edata->detail) : 0));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Ask Stripe about each claimed payment and settle it, one at a time: the
 * Stripe call runs with no transaction state held, and each settle commits
 * on its own (when the call may commit).  A per-payment memory context,
 * reset every turn, keeps a large batch from growing memory.
 */
static void
poll_items(PollItem *items, uint64 n, TimestampTz now, bool nonatomic, PollCounts *counts)
{
	MemoryContext itercxt;

	itercxt = AllocSetContextCreate(CurrentMemoryContext, "stripe_poll item",
									ALLOCSET_DEFAULT_SIZES);
	for (uint64 i = 0; i < n; i++)
	{
		PollItem   *item = &items[i];
		MemoryContext old;
		Jsonb	   *obj;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(itercxt);
		old = MemoryContextSwitchTo(itercxt);

		obj = fetch(item, now);
		if (obj == NULL)
		{
			counts->errors++;
			MemoryContextSwitchTo(old);
			continue;
		}

		settle_item(item, obj, itercxt, counts);
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

PG_FUNCTION_INFO_V1(billing_stripe_poll);
Datum
billing_stripe_poll(PG_FUNCTION_ARGS)
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
		elog(ERROR, "billing.stripe_poll must return a record");
	tupdesc = BlessTupleDesc(tupdesc);

	SPI_connect_ext(nonatomic ? SPI_OPT_NONATOMIC : 0);

	/* 1. Claim, and commit the claim before any Stripe call. */
	items = claim_due_payments(now, &n);
	counts.claimed = (int) n;
	if (nonatomic)
		SPI_commit();

	/* 2. Ask Stripe and settle, one payment at a time. */
	poll_items(items, n, now, nonatomic, &counts);

	/* 3. Forget old events. */
	counts.purged = purge_old_events();
	SPI_finish();

	PG_RETURN_DATUM(poll_result(tupdesc, callcxt, &counts));
}
