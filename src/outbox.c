/*
 * outbox.c — queues side effects in billing.outbox in the caller's
 * transaction, and wakes the outbox worker when that transaction commits.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "common.h"
#include "outbox.h"

PG_FUNCTION_INFO_V1(billing_outbox_wake);

/* This transaction queued something: wake the worker when (if) it commits. */
static bool wake_at_commit = false;
static bool callback_registered = false;

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* runs after the commit is visible to other transactions */
			if (wake_at_commit)
				outbox_wake_worker();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* a prepared transaction commits later, elsewhere: the worker's poll finds it */
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/* Arrange, once per transaction, for the outbox worker to be woken at commit. */
void
outbox_wake_at_commit(void)
{
	if (!callback_registered)
	{
		RegisterXactCallback(outbox_xact_callback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
}

/* SQL: billing.outbox_wake() — for SQL that changed outbox rows (admin retry). */
Datum
billing_outbox_wake(PG_FUNCTION_ARGS)
{
	outbox_wake_at_commit();
	PG_RETURN_VOID();
}

bool
outbox_enqueue(const char *kind, const char *payload,
			   const char *idempotency_key, const char *ordering_key)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(payload);
	values[2] = CStringGetTextDatum(idempotency_key);
	if (ordering_key)
		values[3] = CStringGetTextDatum(ordering_key);
	else
		nulls[3] = 'n';

	if (billing_spi_exec(&plan,
						 "INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) "
						 "VALUES ($1, $2::jsonb, $3, $4) "
						 "ON CONFLICT (idempotency_key) DO NOTHING",
						 4, argtypes, values, nulls, false, 0) == 0)
		return false;
	outbox_wake_at_commit();
	return true;
}
