/*
 * outbox.c — queues side effects in billing.outbox in the caller's
 * transaction (the only writer of new rows), wakes the outbox worker when
 * that transaction commits, and the admin functions on dead messages.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "audit.h"
#include "billing.h"
#include "common.h"
#include "outbox.h"

PG_FUNCTION_INFO_V1(billing_outbox_wake);
PG_FUNCTION_INFO_V1(billing_outbox_retry_dead);
PG_FUNCTION_INFO_V1(billing_outbox_discard_dead);

/* --- the wake-up slot: who the worker is, as a procno (never a pointer) --- */

#define NO_WORKER 0
typedef struct OutboxSlot
{
	pg_atomic_uint32 worker_procno_plus1;	/* 0 = no worker running */
} OutboxSlot;

static OutboxSlot *slot = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
outbox_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(OutboxSlot)));
}

static void
outbox_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slot = ShmemInitStruct("billing outbox", sizeof(OutboxSlot), &found);
	if (!found)
		pg_atomic_init_u32(&slot->worker_procno_plus1, NO_WORKER);
	LWLockRelease(AddinShmemInitLock);
}

void
outbox_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = outbox_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = outbox_shmem_startup;
}

/*
 * One worker at a time: claims of another live worker must not be taken for
 * a dead one's.  The slot is cleared on any exit, and shared memory is
 * reinitialised after a crash.
 */
bool
outbox_slot_take(void)
{
	uint32		expected = NO_WORKER;

	return pg_atomic_compare_exchange_u32(&slot->worker_procno_plus1, &expected,
										  (uint32) MyProc->pgprocno + 1);
}

void
outbox_slot_release(void)
{
	pg_atomic_write_u32(&slot->worker_procno_plus1, NO_WORKER);
}

bool
outbox_slot_taken(void)
{
	return pg_atomic_read_u32(&slot->worker_procno_plus1) != NO_WORKER;
}

/*
 * Set the worker's latch.  A stale procno (the worker just exited) only
 * wakes whoever owns that PGPROC now, which is harmless.
 */
static void
wake_worker(void)
{
	uint32		procno;

	if (slot == NULL)
		return;
	procno = pg_atomic_read_u32(&slot->worker_procno_plus1);
	if (procno != NO_WORKER && procno - 1 < ProcGlobal->allProcCount)
		SetLatch(&ProcGlobal->allProcs[procno - 1].procLatch);
}

/* --- waking at commit ------------------------------------------------------ */

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
				wake_worker();
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

/* SQL: billing.outbox_wake() — for SQL that changed outbox rows. */
Datum
billing_outbox_wake(PG_FUNCTION_ARGS)
{
	outbox_wake_at_commit();
	PG_RETURN_VOID();
}

/* --- queueing -------------------------------------------------------------- */

char *
outbox_ordering_key(const pg_uuid_t *user_id, int64 tariff_id)
{
	return psprintf("%s:" INT64_FORMAT, billing_uuid_str(user_id), tariff_id);
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
						 OUTBOX_INSERT_SELECT("VALUES ($1, $2::jsonb, $3, $4)"),
						 4, argtypes, values, nulls, false, 0) == 0)
		return false;
	outbox_wake_at_commit();
	return true;
}

static Datum *
grow(Datum *a, int cap)
{
	return a ? repalloc(a, cap * sizeof(Datum)) : palloc(cap * sizeof(Datum));
}

void
outbox_batch_add(OutboxBatch *b, const char *kind, const char *payload,
				 const char *idempotency_key, const char *ordering_key, bool counted)
{
	if (b->n == b->cap)
	{
		b->cap = b->cap ? b->cap * 2 : 256;
		b->kinds = grow(b->kinds, b->cap);
		b->payloads = grow(b->payloads, b->cap);
		b->keys = grow(b->keys, b->cap);
		b->orderings = grow(b->orderings, b->cap);
		b->counted = grow(b->counted, b->cap);
	}
	b->kinds[b->n] = CStringGetTextDatum(kind);
	b->payloads[b->n] = CStringGetTextDatum(payload);
	b->keys[b->n] = CStringGetTextDatum(idempotency_key);
	b->orderings[b->n] = CStringGetTextDatum(ordering_key);
	b->counted[b->n] = BoolGetDatum(counted);
	b->n++;
}

/*
 * One statement for the whole batch, in the order added (the worker delivers
 * one ordering key in id order): a statement per message would spend most
 * of the sweep starting executors.
 */
int64
outbox_batch_flush(OutboxBatch *b)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[5] = {TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
							   BOOLARRAYOID};
	Datum		values[5];
	bool		isnull;
	int64		added;

	if (b->n == 0)
		return 0;
	values[0] = PointerGetDatum(construct_array(b->kinds, b->n, TEXTOID, -1, false, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_array(b->payloads, b->n, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(b->keys, b->n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(b->orderings, b->n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(b->counted, b->n, BOOLOID, 1, true, TYPALIGN_CHAR));
	billing_spi_exec(&plan,
					 "WITH u AS ("
					 "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])"
					 "         WITH ORDINALITY AS u(kind, payload, key, ordering, counted, n)), "
					 "ins AS ("
					 OUTBOX_INSERT_SELECT("SELECT u.kind, u.payload::jsonb, u.key, u.ordering FROM u ORDER BY u.n")
					 "  RETURNING idempotency_key) "
					 "SELECT count(*) FROM ins JOIN u ON u.key = ins.idempotency_key WHERE u.counted",
					 5, argtypes, values, NULL, false, 0);
	outbox_wake_at_commit();
	added = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return added;
}

/* --- admin: dead messages -------------------------------------------------- */

/*
 * billing.outbox_retry_dead(ids bigint[] DEFAULT NULL) → bigint: dead
 * messages (all, or those of ids) go back to pending with a fresh round of
 * attempts; their last error stays for reference until the next outcome.
 * Audited; wakes the worker at commit.
 */
Datum
billing_outbox_retry_dead(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];
	char		nulls[1] = {' '};
	bool		isnull;
	int64		n;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	if (PG_ARGISNULL(0))
		nulls[0] = 'n';
	else
		values[0] = PG_GETARG_DATUM(0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	billing_spi_exec(&plan,
					 "WITH r AS ("
					 "  UPDATE billing.outbox"
					 "     SET status = 'pending', attempts = 0, next_attempt_at = now(),"
					 "         claimed_at = NULL, claimed_by = NULL, claimed_by_start = NULL"
					 "   WHERE status = 'dead' AND ($1::bigint[] IS NULL OR id = ANY ($1))"
					 "  RETURNING id) "
					 "SELECT count(*), jsonb_build_object('status', 'pending',"
					 "       'ids', coalesce(jsonb_agg(id ORDER BY id), '[]')) FROM r",
					 1, argtypes, values, nulls, false, 0);
	n = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	if (n > 0)
	{
		Datum		after = billing_spi_get(0, 2, &isnull);
		Datum		before = DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"status\": \"dead\"}"));

		audit_record("outbox_retry_dead", "billing.outbox", before, after);
		outbox_wake_at_commit();
	}
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * billing.outbox_discard_dead(ids bigint[]) → bigint: deletes the given dead
 * messages (a payload that can never be sent, a message made moot), which
 * lets the messages queued behind them with the same ordering key go.  The
 * audit row keeps what was discarded.  Wakes the worker at commit.
 */
Datum
billing_outbox_discard_dead(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		values[1];
	bool		isnull;
	int64		n;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "ids");
	values[0] = PG_GETARG_DATUM(0);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	billing_spi_exec(&plan,
					 "WITH d AS ("
					 "  DELETE FROM billing.outbox WHERE status = 'dead' AND id = ANY ($1)"
					 "  RETURNING id, kind, payload, idempotency_key, ordering_key, attempts, last_error) "
					 "SELECT count(*), coalesce(jsonb_agg(to_jsonb(d) ORDER BY d.id), '[]') FROM d",
					 1, argtypes, values, NULL, false, 0);
	n = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	if (n > 0)
	{
		audit_record("outbox_discard_dead", "billing.outbox",
					 billing_spi_get(0, 2, &isnull), (Datum) 0);
		outbox_wake_at_commit();
	}
	SPI_finish();
	PG_RETURN_INT64(n);
}
