/*
 * expiry.c — billing.run_expiry(), the sweep pg_cron runs: reminders before
 * the end of a term, active → grace at the end, grace → blocked after it.
 * It reads only due rows through the subscriptions_due index.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "autorenew.h"
#include "billing.h"
#include "common.h"
#include "clock.h"
#include "notifications.h"
#include "outbox.h"
#include "pricing.h"
#include "subscriptions.h"

static char *expiry_schedule = NULL;
static int	expiry_batch_size = 1000;

void
expiry_define_gucs(void)
{
	DefineCustomStringVariable("billing.expiry_schedule",
							   "pg_cron schedule of billing.run_expiry() (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.",
							   &expiry_schedule,
							   "7 * * * *",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("billing.expiry_batch_size",
							"Subscriptions billing.run_expiry() locks and handles per batch.",
							NULL,
							&expiry_batch_size,
							1000, 1, 100000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

typedef enum ExpiryAction
{
	EXPIRY_NONE,				/* only next_check_at was stale */
	EXPIRY_REMINDER,
	EXPIRY_GRACE,
	EXPIRY_BLOCK
} ExpiryAction;

/* The due rows of one batch, locked by the statement that reads them. */
#define DUE_SQL \
	"SELECT s.id, s.status, s.ends_at, s.grace_ends_at, s.next_check_at, " \
	"       s.user_id, s.tariff_id, t.title, s.auto_renew AND t.active, s.renew_months, " \
	"       s.renew_at, t.code " \
	"FROM billing.subscriptions s " \
	"JOIN marketing.tariffs t ON t.id = s.tariff_id " \
	"WHERE s.next_check_at <= $1 " \
	"ORDER BY s.next_check_at " \
	"LIMIT $2 " \
	"FOR UPDATE OF s SKIP LOCKED"

/*
 * Where a due row goes: still active (its next check is the end), grace
 * (next check: the end of grace) or blocked (nothing more to check).  One
 * statement per target writes the whole batch, through the primary key;
 * the next check comes from the row's own times, which are the ones decide()
 * judged (we hold the row locks).  The status guards are redundant under
 * those locks and keep a bug from ever moving a row backwards.
 */
typedef enum ExpiryTarget
{
	TARGET_ACTIVE,
	TARGET_GRACE,
	TARGET_BLOCKED,
	NUM_TARGETS
} ExpiryTarget;

static const char *const store_sql[NUM_TARGETS] = {
	"UPDATE billing.subscriptions SET next_check_at = ends_at, updated_at = $2 "
	"WHERE id = ANY ($1) AND status = 'active'",
	"UPDATE billing.subscriptions SET status = 'grace', next_check_at = grace_ends_at, updated_at = $2 "
	"WHERE id = ANY ($1) AND status IN ('active', 'grace')",
	"UPDATE billing.subscriptions SET status = 'blocked', next_check_at = NULL, updated_at = $2, "
	"  auto_renew = false, renew_at = NULL, "
	"  auto_renew_reason = CASE WHEN auto_renew THEN 'lapsed' ELSE auto_renew_reason END, "
	"  auto_renew_changed_at = CASE WHEN auto_renew THEN $2 ELSE auto_renew_changed_at END "
	"WHERE id = ANY ($1)"
};

/*
 * What the sweep does to one due row at `now`.  A row jumps straight to the
 * state `now` calls for: an active row whose grace is over too is blocked
 * without a belated "ended" message (it would announce a grace already past).
 */
static ExpiryAction
decide(const char *status, TimestampTz now, TimestampTz ends_at,
	   TimestampTz grace_ends_at, TimestampTz next_check_at, ExpiryTarget *target)
{
	if (strcmp(status, "blocked") == 0)
	{
		*target = TARGET_BLOCKED;
		return EXPIRY_NONE;
	}
	if (now >= grace_ends_at)
	{
		*target = TARGET_BLOCKED;
		return EXPIRY_BLOCK;
	}
	*target = TARGET_GRACE;
	if (strcmp(status, "grace") == 0)
		return EXPIRY_NONE;
	if (now >= ends_at)
		return EXPIRY_GRACE;
	/* Active, before the end: the check was the reminder time. */
	*target = TARGET_ACTIVE;
	return next_check_at < ends_at ? EXPIRY_REMINDER : EXPIRY_NONE;
}

static char *
term_key(int64 id, const char *event, TimestampTz ends_at)
{
	return psprintf("sub:" INT64_FORMAT ":%s:" INT64_FORMAT,
					id, event, subscription_epoch(ends_at));
}

/*
 * The reminder of a term: to a buyer whose subscription renews by itself, the
 * amount (priced by today's rules, as the charge will be) and the time of
 * the coming charge; to any other, the end of the term.
 */
static char *
reminder_payload(pg_uuid_t *user_id, int64 tariff_id, const char *title, TimestampTz ends_at,
				 bool renews, int32 renew_months, bool renew_at_null, TimestampTz renew_at,
				 const char *tariff_code)
{
	BillingQuote q;
	NotificationCharge c = {0};

	if (!renews || renew_months > pricing_max_months)
		return notification_payload(TEMPLATE_REMINDER, user_id, tariff_id, title, ends_at);
	pricing_quote(&q, user_id, tariff_code, renew_months, NULL);
	c.amount = q.total;
	c.currency = q.currency;
	c.has_charge_at = true;
	c.charge_at = renew_at_null ? autorenew_first_charge(ends_at) : renew_at;
	return notification_charge_payload(TEMPLATE_RENEWAL_REMINDER, user_id, tariff_id, title,
									   ends_at, &c);
}

/* Queue one message of a subscription's term in the sweep's batch. */
static void
queue(OutboxBatch *b, const char *kind, char *payload, char *key,
	  pg_uuid_t *user_id, int64 tariff_id, bool reminder)
{
	outbox_batch_add(b, kind, payload, key, outbox_ordering_key(user_id, tariff_id), reminder);
}

PG_FUNCTION_INFO_V1(billing_run_expiry);
Datum
billing_run_expiry(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr due_plan = NULL;
	static SPIPlanPtr store_plans[NUM_TARGETS];
	TimestampTz now = billing_now();
	int			batch_size = expiry_batch_size;
	int64		reminders = 0,
				graces = 0,
				blocks = 0,
				batches = 0;
	MemoryContext batch_cxt;
	MemoryContext outer_cxt;
	Jsonb	   *result;
	char	   *json;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	SPI_connect();
	outer_cxt = CurrentMemoryContext;
	batch_cxt = AllocSetContextCreate(outer_cxt, "run_expiry batch",
									  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		Oid			due_types[2] = {TIMESTAMPTZOID, INT4OID};
		Datum		due_values[2] = {TimestampTzGetDatum(now), Int32GetDatum(batch_size)};
		uint64		n;
		uint64		i;
		uint64		stored = 0;
		int			t;
		Datum	   *ids[NUM_TARGETS];
		int			nids[NUM_TARGETS] = {0};
		SPITupleTable *tuptable;
		OutboxBatch msgs = {0};

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(batch_cxt);

		n = billing_spi_exec(&due_plan, DUE_SQL, 2, due_types, due_values,
							 NULL, false, 0);
		if (n == 0)
			break;
		batches++;

		/* SPI_tuptable is replaced by the statements below: keep ours. */
		tuptable = SPI_tuptable;
		MemoryContextSwitchTo(batch_cxt);
		for (t = 0; t < NUM_TARGETS; t++)
			ids[t] = palloc(n * sizeof(Datum));

		for (i = 0; i < n; i++)
		{
			HeapTuple	tup = tuptable->vals[i];
			TupleDesc	desc = tuptable->tupdesc;
			bool		isnull;
			int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			char	   *status = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
			TimestampTz ends_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
			TimestampTz grace_ends_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
			TimestampTz next_check_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
			pg_uuid_t  *user_id = DatumGetUUIDP(SPI_getbinval(tup, desc, 6, &isnull));
			int64		tariff_id = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
			char	   *title = TextDatumGetCString(SPI_getbinval(tup, desc, 8, &isnull));
			bool		renews = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
			Datum		renew_months = SPI_getbinval(tup, desc, 10, &isnull);
			bool		renew_at_null;
			TimestampTz renew_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 11, &renew_at_null));
			ExpiryTarget target;

			/*
			 * The idempotency keys carry the term's end: each message goes out
			 * once per term, and a later sweep or a concurrent one writes
			 * nothing new.
			 */
			switch (decide(status, now, ends_at, grace_ends_at, next_check_at, &target))
			{
				case EXPIRY_REMINDER:
					queue(&msgs, "notify",
						  reminder_payload(user_id, tariff_id, title, ends_at, renews,
										   renews ? DatumGetInt32(renew_months) : 0,
										   renew_at_null, renew_at,
										   TextDatumGetCString(SPI_getbinval(tup, desc, 12, &isnull))),
						  term_key(id, "reminder", ends_at), user_id, tariff_id, true);
					break;
				case EXPIRY_GRACE:
					queue(&msgs, "notify",
						  notification_payload(TEMPLATE_ENDED, user_id, tariff_id,
											   title, ends_at),
						  term_key(id, "ended", ends_at), user_id, tariff_id, false);
					graces++;
					break;
				case EXPIRY_BLOCK:
					/* the revoke first: the worker delivers per user:tariff in id order */
					queue(&msgs, "revoke_role",
						  subscription_role_payload(user_id, tariff_id),
						  term_key(id, "revoke", ends_at), user_id, tariff_id, false);
					queue(&msgs, "notify",
						  notification_payload(TEMPLATE_BLOCKED, user_id, tariff_id,
											   title, grace_ends_at),
						  term_key(id, "blocked", ends_at), user_id, tariff_id, false);
					blocks++;
					break;
				case EXPIRY_NONE:
					break;
			}
			ids[target][nids[target]++] = Int64GetDatum(id);
		}

		for (t = 0; t < NUM_TARGETS; t++)
		{
			Oid			store_types[2] = {INT8ARRAYOID, TIMESTAMPTZOID};
			Datum		store_values[2];

			if (nids[t] == 0)
				continue;
			store_values[0] = PointerGetDatum(construct_array(ids[t], nids[t], INT8OID, 8,
															  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			store_values[1] = TimestampTzGetDatum(now);
			stored += billing_spi_exec(&store_plans[t], store_sql[t], 2, store_types,
									   store_values, NULL, false, 0);
		}
		if (stored != n)
			elog(ERROR, "run_expiry: a locked subscription changed under the sweep");
		SPI_freetuptable(tuptable);

		/*
		 * A refund can bring back an end whose reminder was sent already; its
		 * key then holds, and that is no new reminder: count only new ones.
		 */
		reminders += outbox_batch_flush(&msgs);
		MemoryContextSwitchTo(outer_cxt);

		/* Handled rows are no longer due: a short batch was the last one. */
		if (n < (uint64) batch_size)
			break;
	}

	MemoryContextDelete(batch_cxt);

	SPI_finish();
	json = psprintf("{\"reminders\": " INT64_FORMAT ", \"grace\": " INT64_FORMAT
					", \"blocked\": " INT64_FORMAT ", \"batches\": " INT64_FORMAT "}",
					reminders, graces, blocks, batches);
	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	PG_RETURN_JSONB_P(result);
}
