/*
 * outbox_worker.c — the background worker that delivers billing.outbox over
 * gRPC (grpc.c): claims due rows, commits the claim, calls the auth and
 * notification services in parallel, records each outcome.  Also its
 * settings, its slot in shared memory and the wake-up other backends use.
 *
 * Delivery is at least once: a row is marked done only after the service
 * answered, so a crash between the two repeats the call with the same
 * idempotency key.  Rows sharing an ordering key go out one at a time in id
 * order; role operations wait until the tariff's auth role id is known.
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "billing.h"
#include "common.h"
#include "grpc.h"
#include "outbox.h"
#include "messagesender.pb-c.h"
#include "rolescontrol.pb-c.h"

PGDLLEXPORT void outbox_launcher_main(Datum main_arg);
PGDLLEXPORT void outbox_worker_main(Datum main_arg);
PG_FUNCTION_INFO_V1(billing_outbox_retry_dead);
PG_FUNCTION_INFO_V1(billing_outbox_discard_dead);

/* --- settings ------------------------------------------------------------- */

static char *outbox_database = NULL;
static char *auth_target = NULL;
static char *notify_target = NULL;
static char *grpc_ca_file = NULL;
static int	grpc_connect_timeout_ms = 2000;
static int	grpc_deadline_ms = 5000;
static int	outbox_batch_size = 500;
static int	outbox_concurrency = 64;
static int	outbox_max_attempts = 20;
static int	outbox_backoff_base_ms = 1000;
static int	outbox_backoff_max_ms = 300000;
static int	outbox_poll_interval_ms = 1000;
static char *outbox_purge_schedule = NULL;

/* --- shared memory: who the worker is, as a procno (never a pointer) ------ */

#define NO_WORKER 0
typedef struct OutboxShared
{
	pg_atomic_uint32 worker_procno_plus1;	/* 0 = no worker running */
} OutboxShared;

static OutboxShared *outbox_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* --- one claimed message --------------------------------------------------- */

typedef enum OutboxKind
{
	KIND_CREATE_ROLE,
	KIND_UPDATE_ROLE,
	KIND_GRANT_ROLE,
	KIND_REVOKE_ROLE,
	KIND_FETCH_EMAIL,
	KIND_NOTIFY,
	KIND_UNKNOWN
} OutboxKind;

typedef enum Outcome
{
	OUTCOME_DONE,
	OUTCOME_RETRY,
	OUTCOME_DEAD,
	OUTCOME_RELEASE				/* not attempted after all: back to pending */
} Outcome;

typedef struct OutboxMsg
{
	int64		id;
	OutboxKind	kind;
	char	   *key;
	int32		attempts;
	/* payload fields (NULL when absent) and the tariff's role id */
	char	   *tariff_id;
	char	   *user_id;
	char	   *name;
	char	   *template_num;
	char	   *role_description;
	char	   *end_payment;
	char	   *role_id;
	/* delivery */
	int			call;			/* index into the calls array, or -1 */
	Outcome		outcome;
	char	   *error;
	double		delay_ms;
	char	   *result;			/* CreateRole's role id / GetUserInfo's email */
} OutboxMsg;

static const char *const kind_names[] = {
	"create_role", "update_role", "grant_role", "revoke_role", "fetch_email", "notify"
};

/* --- settings: definition and checks ------------------------------------- */

static bool
check_target(char **newval, const char *name)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!grpc_target_valid(*newval))
	{
		billing_guc_invalid(name, *newval);
		GUC_check_errdetail("A target is http://host:port (cleartext HTTP/2) or https://host:port (TLS), with no path.");
		return false;
	}
	return true;
}

static bool
check_auth_target(char **newval, void **extra, GucSource source)
{
	return check_target(newval, "billing.auth_target");
}

static bool
check_notify_target(char **newval, void **extra, GucSource source)
{
	return check_target(newval, "billing.notify_target");
}

static bool
check_ca_file(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!is_absolute_path(*newval))
	{
		billing_guc_invalid("billing.grpc_ca_file", *newval);
		GUC_check_errdetail("The CA file must be given as an absolute path.");
		return false;
	}
	if (access(*newval, R_OK) != 0)
	{
		int			save_errno = errno;

		billing_guc_invalid("billing.grpc_ca_file", *newval);
		errno = save_errno;
		GUC_check_errdetail("The CA file \"%s\" cannot be read: %m.", billing_echo(*newval));
		return false;
	}
	return true;
}

static void
outbox_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(OutboxShared)));
}

static void
outbox_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	outbox_shared = ShmemInitStruct("billing outbox", sizeof(OutboxShared), &found);
	if (!found)
		pg_atomic_init_u32(&outbox_shared->worker_procno_plus1, NO_WORKER);
	LWLockRelease(AddinShmemInitLock);
}

void
outbox_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomStringVariable("billing.database",
							   "Database whose billing.outbox the outbox worker delivers.",
							   "Empty: no worker is started.",
							   &outbox_database, "",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("billing.auth_target",
							   "gRPC target of the auth service (rolescontrol.RolesControl).",
							   "http://host:port or https://host:port.  Empty: role and e-mail messages stay pending.",
							   &auth_target, "",
							   PGC_SIGHUP, 0, check_auth_target, NULL, NULL);
	DefineCustomStringVariable("billing.notify_target",
							   "gRPC target of the notification service (messagesender.MessageSender).",
							   "http://host:port or https://host:port.  Empty: notifications stay pending.",
							   &notify_target, "",
							   PGC_SIGHUP, 0, check_notify_target, NULL, NULL);
	DefineCustomStringVariable("billing.grpc_ca_file",
							   "CA certificates (PEM) that https:// gRPC targets are verified against.",
							   "Empty: the system's CA store.",
							   &grpc_ca_file, "",
							   PGC_SIGHUP, 0, check_ca_file, NULL, NULL);
	DefineCustomIntVariable("billing.grpc_connect_timeout",
							"Time allowed to connect to a gRPC service.",
							NULL, &grpc_connect_timeout_ms, 2000, 1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.grpc_deadline",
							"Deadline of one gRPC call (sent as grpc-timeout).",
							NULL, &grpc_deadline_ms, 5000, 1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_batch_size",
							"Outbox messages claimed per batch.",
							NULL, &outbox_batch_size, 500, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_concurrency",
							"gRPC calls the outbox worker keeps in flight at once.",
							NULL, &outbox_concurrency, 64, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_max_attempts",
							"Delivery attempts before a message is parked as dead.",
							NULL, &outbox_max_attempts, 20, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_backoff_base",
							"Delay before the first retry; doubles with each attempt (with jitter).",
							NULL, &outbox_backoff_base_ms, 1000, 1, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_backoff_max",
							"Longest delay between two attempts.",
							NULL, &outbox_backoff_max_ms, 300000, 1, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_poll_interval",
							"Longest sleep of the outbox worker between two looks at the queue.",
							"Commits that queue messages wake the worker at once; this is the safety net.",
							&outbox_poll_interval_ms, 1000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomStringVariable("billing.outbox_purge_schedule",
							   "pg_cron schedule of billing.outbox_purge() (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.",
							   &outbox_purge_schedule, "23 3 * * *",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = outbox_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = outbox_shmem_startup;

	/* pg_upgrade's server must not deliver anything. */
	if (IsBinaryUpgrade)
		return;
	if (outbox_database == NULL || outbox_database[0] == '\0')
	{
		ereport(LOG,
				(errmsg("billing outbox worker not started: billing.database is empty")));
		return;
	}

	/*
	 * A launcher waits for the database to exist and (re)starts the worker
	 * in it: connecting a worker to a missing database would fail and be
	 * retried forever, and a worker terminated by DROP DATABASE ... WITH
	 * (FORCE) must not come back until the database does.
	 */
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	strlcpy(worker.bgw_library_name, "billing", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "outbox_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "billing outbox launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "billing outbox launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * Set the worker's latch.  Called by outbox.c after a commit that queued
 * messages.  A stale procno (the worker just exited) only wakes whoever owns
 * that PGPROC now, which is harmless.
 */
void
outbox_wake_worker(void)
{
	uint32		procno;

	if (outbox_shared == NULL)
		return;
	procno = pg_atomic_read_u32(&outbox_shared->worker_procno_plus1);
	if (procno != NO_WORKER && procno - 1 < ProcGlobal->allProcCount)
		SetLatch(&ProcGlobal->allProcs[procno - 1].procLatch);
}

static void
outbox_worker_detach(int code, Datum arg)
{
	pg_atomic_write_u32(&outbox_shared->worker_procno_plus1, NO_WORKER);
}

/* --- SQL the worker runs -------------------------------------------------- */

/* A numeric tariff id from the payload, or NULL: a bad payload never errors here. */
#define TARIFF_ID_EXPR \
	"CASE WHEN o.payload->>'tariff_id' ~ '^[0-9]{1,18}$' " \
	"THEN (o.payload->>'tariff_id')::bigint END"

static const char *const claim_sql =
"WITH due AS ("
"  SELECT o.id FROM billing.outbox o"
"  WHERE o.status = 'pending' AND o.next_attempt_at <= now()"
"    AND o.kind = ANY ($2)"
/*
 * An earlier undelivered message with the same ordering key goes first; a
 * dead one too, so that requeueing it later cannot put it behind its
 * successors (a grant retried after the revoke that followed it).
 */
"    AND (o.ordering_key IS NULL OR NOT EXISTS ("
"          SELECT 1 FROM billing.outbox e"
"          WHERE e.ordering_key = o.ordering_key AND e.id < o.id"
"            AND e.status IN ('pending', 'in_flight', 'dead')))"
/* role operations wait for CreateRole's answer (a missing tariff is claimed, then parked) */
"    AND (o.kind NOT IN ('update_role', 'grant_role', 'revoke_role') OR NOT EXISTS ("
"          SELECT 1 FROM marketing.tariffs t"
"          WHERE t.id = " TARIFF_ID_EXPR " AND t.auth_role_id IS NULL))"
"  ORDER BY o.next_attempt_at, o.id"
"  LIMIT $1"
"  FOR UPDATE OF o SKIP LOCKED)"
"UPDATE billing.outbox o"
"   SET status = 'in_flight', attempts = o.attempts + 1,"
"       claimed_at = now(), claimed_by = $3, claimed_by_start = $4"
"  FROM due WHERE o.id = due.id "
"RETURNING o.id, o.kind, o.idempotency_key, o.attempts,"
"  o.payload->>'tariff_id', o.payload->>'user_id', o.payload->>'name',"
"  o.payload->>'template', o.payload->>'role_description', o.payload->>'end_payment',"
"  (SELECT t.auth_role_id FROM marketing.tariffs t WHERE t.id = " TARIFF_ID_EXPR ")";

static const char *const outcome_sql =
"UPDATE billing.outbox o"
"   SET status = r.status,"
"       attempts = o.attempts - r.undo,"
"       delivered_at = CASE WHEN r.status = 'done' THEN now() END,"
"       next_attempt_at = CASE WHEN r.status = 'pending'"
"                         THEN now() + r.delay_ms * interval '1 millisecond'"
"                         ELSE o.next_attempt_at END,"
"       last_error = CASE WHEN r.status = 'done' THEN NULL ELSE coalesce(r.error, o.last_error) END,"
"       claimed_at = NULL, claimed_by = NULL, claimed_by_start = NULL"
"  FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[], $5::int[])"
"       AS r(id, status, delay_ms, error, undo)"
" WHERE o.id = r.id AND o.status = 'in_flight'"
"   AND o.claimed_by = $6 AND o.claimed_by_start = $7";

/* --- claiming ------------------------------------------------------------- */

static MemoryContext batch_cxt = NULL;

static OutboxKind
kind_from_name(const char *name)
{
	for (int i = 0; i < (int) lengthof(kind_names); i++)
		if (strcmp(name, kind_names[i]) == 0)
			return (OutboxKind) i;
	return KIND_UNKNOWN;
}

static bool
is_auth_kind(OutboxKind kind)
{
	return kind != KIND_NOTIFY;
}

/*
 * In one short transaction: requeue claims of a worker that died, claim up
 * to a batch of due messages, and find when the next one falls due.  Returns
 * the messages (in batch_cxt) and sets *nmsgs and *sleep_ms.
 */
static OutboxMsg *
claim_batch(bool *reclaimed, int *nmsgs, long *sleep_ms)
{
	OutboxMsg  *msgs = NULL;
	Datum		kinds[lengthof(kind_names)];
	int			nkinds = 0;
	bool		auth = auth_target && auth_target[0];
	bool		notify = notify_target && notify_target[0];

	*nmsgs = 0;
	*sleep_ms = outbox_poll_interval_ms;

	/* Without a target there is nothing to do: rows stay pending, untouched. */
	if (!auth && !notify)
		return NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "claiming outbox messages");

	/* The extension may not exist (yet, or any more) in this database. */
	if (!OidIsValid(get_extension_oid("billing", true)))
		goto done;

	if (!*reclaimed)
	{
		/*
		 * Only one worker runs, so any claim still in flight belongs to a
		 * predecessor that died mid-batch (crash, kill, immediate stop).
		 * Those calls may or may not have reached the service; deliver them
		 * again under the same idempotency key.  A claim is recognised by
		 * the pid *and* the start time of the process that made it: after a
		 * crash the kernel may hand us our predecessor's pid, but never with
		 * our start time.
		 */
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
		Datum		values[2] = {Int32GetDatum(MyProcPid),
		TimestampTzGetDatum(MyStartTimestamp)};
		uint64		n;

		n = billing_spi_exec(&plan,
							 "UPDATE billing.outbox SET status = 'pending', claimed_at = NULL,"
							 " claimed_by = NULL, claimed_by_start = NULL, next_attempt_at = now(),"
							 " last_error = 'requeued: the worker holding the claim stopped mid-delivery'"
							 " WHERE status = 'in_flight'"
							 "   AND (claimed_by, claimed_by_start) IS DISTINCT FROM ($1, $2)",
							 2, argtypes, values, NULL, false, 0);
		if (n > 0)
			ereport(LOG,
					(errmsg("billing outbox worker requeued %llu messages claimed by a stopped worker",
							(unsigned long long) n)));
		*reclaimed = true;
	}

	for (int i = 0; i < (int) lengthof(kind_names); i++)
		if ((i == KIND_NOTIFY) ? notify : auth)
			kinds[nkinds++] = CStringGetTextDatum(kind_names[i]);

	{
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[4] = {INT4OID, TEXTARRAYOID, INT4OID, TIMESTAMPTZOID};
		Datum		values[4];
		uint64		n;
		MemoryContext old;

		values[0] = Int32GetDatum(outbox_batch_size);
		values[1] = PointerGetDatum(construct_array(kinds, nkinds, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = Int32GetDatum(MyProcPid);
		values[3] = TimestampTzGetDatum(MyStartTimestamp);
		n = billing_spi_exec(&plan, claim_sql, 4, argtypes, values, NULL, false, 0);

		msgs = MemoryContextAllocZero(batch_cxt, sizeof(OutboxMsg) * Max(n, 1));
		/* the strings must outlive SPI_finish: they live in the batch */
		old = MemoryContextSwitchTo(batch_cxt);
		for (uint64 r = 0; r < n; r++)
		{
			OutboxMsg  *m = &msgs[r];
			bool		isnull;
			char	   *kind;

			m->id = DatumGetInt64(billing_spi_get(r, 1, &isnull));
			kind = billing_spi_text(r, 2);
			m->kind = kind_from_name(kind);
			m->key = billing_spi_text(r, 3);
			m->attempts = DatumGetInt32(billing_spi_get(r, 4, &isnull));
			m->tariff_id = billing_spi_text(r, 5);
			m->user_id = billing_spi_text(r, 6);
			m->name = billing_spi_text(r, 7);
			m->template_num = billing_spi_text(r, 8);
			m->role_description = billing_spi_text(r, 9);
			m->end_payment = billing_spi_text(r, 10);
			m->role_id = billing_spi_text(r, 11);
			m->call = -1;
		}
		MemoryContextSwitchTo(old);
		*nmsgs = (int) n;
	}

	/* When does the next message that is not due yet fall due? */
	if (*nmsgs < outbox_batch_size)
	{
		static SPIPlanPtr plan = NULL;
		bool		isnull;
		Datum		d;

		billing_spi_exec(&plan,
						 "SELECT (extract(epoch FROM min(next_attempt_at) - now()) * 1000)::float8"
						 "  FROM billing.outbox WHERE status = 'pending' AND next_attempt_at > now()",
						 0, NULL, NULL, NULL, true, 1);
		d = billing_spi_get(0, 1, &isnull);
		if (!isnull)
		{
			double		ms = DatumGetFloat8(d);

			if (ms < *sleep_ms)
				*sleep_ms = (long) Max(ms + 1, 1);
		}
	}

done:
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return msgs;
}

/* --- building the calls --------------------------------------------------- */

static bool
valid_uuid(const char *s)
{
	int			hex = 0;

	if (s == NULL)
		return false;
	/* the canonical 8-4-4-4-12 form, which is what billing writes */
	for (int i = 0; s[i]; i++)
	{
		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
		}
		else if (isxdigit((unsigned char) s[i]))
			hex++;
		else
			return false;
		if (i > 35)
			return false;
	}
	return hex == 32 && strlen(s) == 36;
}

static void
park(OutboxMsg *m, const char *fmt, const char *arg)
{
	m->outcome = OUTCOME_DEAD;
	m->error = psprintf(fmt, arg ? arg : "");
}

#define PARK(m, fmt, arg) do { park(m, fmt, arg); return; } while (0)

/* A tariff id as billing writes it: digits only, fits in bigint. */
static bool
valid_id(const char *s)
{
	size_t		len = s ? strlen(s) : 0;

	return len >= 1 && len <= 18 && strspn(s, "0123456789") == len;
}

/*
 * Turn a claimed row into a gRPC call; a row that cannot be sent (bad
 * payload, unknown kind, tariff gone) is parked as dead instead.
 */
static void
build_call(OutboxMsg *m, GrpcCall *call)
{
	const char *target = is_auth_kind(m->kind) ? auth_target : notify_target;

	/* The key travels as gRPC metadata too: printable ASCII only. */
	for (const char *c = m->key; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			PARK(m, "malformed idempotency key: only printable ASCII can travel as metadata%s", NULL);

	switch (m->kind)
	{
		case KIND_CREATE_ROLE:
			{
				Rolescontrol__NewRole req = ROLESCONTROL__NEW_ROLE__INIT;

				if (!valid_id(m->tariff_id) || m->name == NULL || m->name[0] == '\0')
					PARK(m, "malformed payload: create_role needs tariff_id and name%s", NULL);
				req.name = m->name;
				req.idempotency_key = m->key;
				grpc_prepare(call, target, "/rolescontrol.RolesControl/CreateRole",
							 &req.base, m->key);
				break;
			}
		case KIND_UPDATE_ROLE:
			{
				Rolescontrol__Role req = ROLESCONTROL__ROLE__INIT;

				if (!valid_id(m->tariff_id) || m->name == NULL || m->name[0] == '\0')
					PARK(m, "malformed payload: update_role needs tariff_id and name%s", NULL);
				if (m->role_id == NULL)
					PARK(m, "tariff %s does not exist", m->tariff_id);
				req.role_id = m->role_id;
				req.name = m->name;
				req.idempotency_key = m->key;
				grpc_prepare(call, target, "/rolescontrol.RolesControl/UpdateRole",
							 &req.base, m->key);
				break;
			}
		case KIND_GRANT_ROLE:
		case KIND_REVOKE_ROLE:
			{
				Rolescontrol__ProvideRole req = ROLESCONTROL__PROVIDE_ROLE__INIT;

				if (!valid_id(m->tariff_id) || !valid_uuid(m->user_id))
					PARK(m, "malformed payload: %s needs tariff_id and a uuid user_id",
								kind_names[m->kind]);
				if (m->role_id == NULL)
					PARK(m, "tariff %s does not exist", m->tariff_id);
				req.user_id = m->user_id;
				req.role_id = m->role_id;
				req.idempotency_key = m->key;
				grpc_prepare(call, target,
							 m->kind == KIND_GRANT_ROLE ?
							 "/rolescontrol.RolesControl/ProvideRoleUser" :
							 "/rolescontrol.RolesControl/RevokeRoleUser",
							 &req.base, m->key);
				break;
			}
		case KIND_FETCH_EMAIL:
			{
				Rolescontrol__Uuid req = ROLESCONTROL__UUID__INIT;

				if (!valid_uuid(m->user_id))
					PARK(m, "malformed payload: fetch_email needs a uuid user_id%s", NULL);
				req.id = m->user_id;
				grpc_prepare(call, target, "/rolescontrol.RolesControl/GetUserInfo",
							 &req.base, m->key);
				break;
			}
		case KIND_NOTIFY:
			{
				Messagesender__BillingMessage req = MESSAGESENDER__BILLING_MESSAGE__INIT;
				int			t;

				if (m->template_num == NULL || strspn(m->template_num, "0123456789") != strlen(m->template_num) ||
					strlen(m->template_num) != 1 ||
					(t = atoi(m->template_num)) < TEMPLATE_SUBSCRIBED || t > TEMPLATE_REMINDER)
					PARK(m, "malformed payload: notify needs a template from 1 to 5%s", NULL);
				if (!valid_uuid(m->user_id))
					PARK(m, "malformed payload: notify needs a uuid user_id%s", NULL);
				req.template_num = t;
				req.user_id = m->user_id;
				req.role_description = m->role_description ? m->role_description : "";
				req.end_payment = m->end_payment ? m->end_payment : "";
				req.idempotency_key = m->key;
				grpc_prepare(call, target, "/messagesender.MessageSender/SendBillingMessage",
							 &req.base, m->key);
				break;
			}
		case KIND_UNKNOWN:
			PARK(m, "unknown kind%s", NULL);
	}
}

/* --- outcomes -------------------------------------------------------------- */

static bool
permanent_status(int status)
{
	switch (status)
	{
		case GRPC_INVALID_ARGUMENT:
		case GRPC_NOT_FOUND:
		case GRPC_ALREADY_EXISTS:
		case GRPC_PERMISSION_DENIED:
		case GRPC_FAILED_PRECONDITION:
		case GRPC_OUT_OF_RANGE:
		case GRPC_UNIMPLEMENTED:
		case GRPC_UNAUTHENTICATED:
			return true;
		default:
			/* UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, ... */
			return false;
	}
}

/* Exponential backoff with jitter: base * 2^(attempt-1), capped, times [0.5, 1). */
static double
backoff_ms(int attempts)
{
	double		d = outbox_backoff_base_ms * pow(2.0, Min(attempts - 1, 40));

	if (d > outbox_backoff_max_ms)
		d = outbox_backoff_max_ms;
	return d * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state));
}

#define RETRY(m, error) do { retry(m, error); return; } while (0)

static void
retry(OutboxMsg *m, char *error)
{
	m->error = error;
	if (m->attempts >= outbox_max_attempts)
	{
		m->outcome = OUTCOME_DEAD;
		m->error = psprintf("%s (gave up after %d attempts)", error, m->attempts);
	}
	else
	{
		m->outcome = OUTCOME_RETRY;
		m->delay_ms = backoff_ms(m->attempts);
	}
}

/* Judge one finished call. */
static void
judge(OutboxMsg *m, GrpcCall *call, bool finished)
{
	/* cut short by an interrupt: not an attempt, back to the queue as it was */
	if (!finished && call->status == GRPC_CANCELLED)
	{
		m->outcome = OUTCOME_RELEASE;
		return;
	}
	if (call->status != GRPC_OK)
	{
		char	   *err = psprintf("%s: %s", grpc_status_name(call->status), call->message);

		if (permanent_status(call->status))
		{
			m->outcome = OUTCOME_DEAD;
			m->error = err;
		}
		else
			retry(m, err);
		return;
	}

	switch (m->kind)
	{
		case KIND_CREATE_ROLE:
			{
				Rolescontrol__Uuid *r = (Rolescontrol__Uuid *)
					grpc_unpack(call, &rolescontrol__uuid__descriptor);

				if (r == NULL || r->id == NULL || r->id[0] == '\0' ||
					strlen(r->id) > 200 || !pg_verifymbstr(r->id, strlen(r->id), true))
					RETRY(m, pstrdup("INTERNAL: CreateRole answered without a usable role id"));
				m->result = r->id;
				break;
			}
		case KIND_FETCH_EMAIL:
			{
				Rolescontrol__UserInfo *r = (Rolescontrol__UserInfo *)
					grpc_unpack(call, &rolescontrol__user_info__descriptor);

				if (r == NULL || r->email == NULL ||
					strlen(r->email) > 320 || !pg_verifymbstr(r->email, strlen(r->email), true))
					RETRY(m, pstrdup("INTERNAL: GetUserInfo answered with an unusable e-mail"));
				m->result = r->email[0] ? r->email : NULL;
				break;
			}
		default:
			{
				/* Both services answer OperationResult, which has the same shape. */
				Rolescontrol__OperationResult *r = (Rolescontrol__OperationResult *)
					grpc_unpack(call, &rolescontrol__operation_result__descriptor);

				if (r == NULL)
					RETRY(m, pstrdup("INTERNAL: malformed OperationResult"));
				if (!r->successful)
					RETRY(m, pstrdup("the service answered successful=false"));
				break;
			}
	}
	m->outcome = OUTCOME_DONE;
}

/* Record every outcome of the batch, and what the answers taught us, in one transaction. */
static void
record_outcomes(OutboxMsg *msgs, int n)
{
	static const char *const status_of[] = {"done", "pending", "dead", "pending"};
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *statuses = palloc(sizeof(Datum) * n);
	Datum	   *delays = palloc(sizeof(Datum) * n);
	Datum	   *errors = palloc(sizeof(Datum) * n);
	bool	   *errnulls = palloc(sizeof(bool) * n);
	Datum	   *undos = palloc(sizeof(Datum) * n);
	Datum	   *role_tariffs = palloc(sizeof(Datum) * n);
	Datum	   *role_ids = palloc(sizeof(Datum) * n);
	Datum	   *email_users = palloc(sizeof(Datum) * n);
	Datum	   *emails = palloc(sizeof(Datum) * n);
	bool	   *emailnulls = palloc(sizeof(bool) * n);
	int			nroles = 0,
				nemails = 0;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		OutboxMsg  *m = &msgs[i];

		ids[i] = Int64GetDatum(m->id);
		statuses[i] = CStringGetTextDatum(status_of[m->outcome]);
		delays[i] = Float8GetDatum(m->delay_ms);
		errnulls[i] = (m->error == NULL);
		errors[i] = m->error ? CStringGetTextDatum(m->error) : (Datum) 0;
		undos[i] = Int32GetDatum(m->outcome == OUTCOME_RELEASE ? 1 : 0);
		if (m->outcome == OUTCOME_DONE && m->kind == KIND_CREATE_ROLE)
		{
			role_tariffs[nroles] = DirectFunctionCall1(int8in, CStringGetDatum(m->tariff_id));
			role_ids[nroles++] = CStringGetTextDatum(m->result);
		}
		if (m->outcome == OUTCOME_DONE && m->kind == KIND_FETCH_EMAIL)
		{
			email_users[nemails] = CStringGetTextDatum(m->user_id);
			emailnulls[nemails] = (m->result == NULL);
			emails[nemails++] = m->result ? CStringGetTextDatum(m->result) : (Datum) 0;
		}
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "recording outbox outcomes");

	{
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[7] = {INT8ARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID,
		TEXTARRAYOID, INT4ARRAYOID, INT4OID, TIMESTAMPTZOID};
		Datum		values[7];

		values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(statuses, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(delays, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[3] = PointerGetDatum(construct_md_array(errors, errnulls, 1, dims, lbs,
													   TEXTOID, -1, false, TYPALIGN_INT));
		values[4] = PointerGetDatum(construct_array(undos, n, INT4OID, 4, true, TYPALIGN_INT));
		values[5] = Int32GetDatum(MyProcPid);
		values[6] = TimestampTzGetDatum(MyStartTimestamp);
		billing_spi_exec(&plan, outcome_sql, 7, argtypes, values, NULL, false, 0);
	}

	if (nroles > 0)
	{
		/* The first answer wins: a repeated CreateRole never moves a tariff to another role. */
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[2] = {INT8ARRAYOID, TEXTARRAYOID};
		Datum		values[2];

		values[0] = PointerGetDatum(construct_array(role_tariffs, nroles, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(role_ids, nroles, TEXTOID, -1, false, TYPALIGN_INT));
		billing_spi_exec(&plan,
						 "UPDATE marketing.tariffs t SET auth_role_id = r.role_id"
						 "  FROM unnest($1::bigint[], $2::text[]) AS r(tariff_id, role_id)"
						 " WHERE t.id = r.tariff_id AND t.auth_role_id IS NULL",
						 2, argtypes, values, NULL, false, 0);
	}

	if (nemails > 0)
	{
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[2] = {TEXTARRAYOID, TEXTARRAYOID};
		Datum		values[2];
		int			edims[1] = {nemails};

		values[0] = PointerGetDatum(construct_array(email_users, nemails, TEXTOID, -1, false, TYPALIGN_INT));
		values[1] = PointerGetDatum(construct_md_array(emails, emailnulls, 1, edims, lbs,
													   TEXTOID, -1, false, TYPALIGN_INT));
		billing_spi_exec(&plan,
						 "UPDATE billing.customers c SET email = r.email"
						 "  FROM unnest($1::text[], $2::text[]) AS r(user_id, email)"
						 " WHERE c.user_id = r.user_id::uuid",
						 2, argtypes, values, NULL, false, 0);
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Deliver one claimed batch.  Returns false when an interrupt cut it short. */
static bool
deliver_batch(OutboxMsg *msgs, int n)
{
	GrpcCall   *calls = palloc(sizeof(GrpcCall) * n);
	int			ncalls = 0;
	GrpcOptions opt;
	bool		finished;

	for (int i = 0; i < n; i++)
	{
		build_call(&msgs[i], &calls[ncalls]);
		if (msgs[i].outcome != OUTCOME_DEAD)
			msgs[i].call = ncalls++;
	}

	opt.connect_timeout_ms = grpc_connect_timeout_ms;
	opt.deadline_ms = grpc_deadline_ms;
	opt.ca_file = grpc_ca_file;
	pgstat_report_activity(STATE_RUNNING, "delivering outbox messages");
	finished = grpc_run(calls, ncalls, outbox_concurrency, &opt);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (int i = 0; i < n; i++)
		if (msgs[i].call >= 0)
			judge(&msgs[i], &calls[msgs[i].call], finished);

	if (!finished && !PostmasterIsAlive())
		proc_exit(1);

	/*
	 * Even when asked to stop, record what the services already answered
	 * (one short transaction) so that a clean shutdown repeats nothing and
	 * leaves nothing in flight; the interrupt is served right after.
	 */
	HOLD_INTERRUPTS();
	record_outcomes(msgs, n);
	RESUME_INTERRUPTS();
	return finished;
}

/* --- the launcher ------------------------------------------------------- */

/* Does the worker's database exist?  (pg_database is shared: no database needed.) */
static bool
database_exists(void)
{
	bool		exists;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	exists = OidIsValid(get_database_oid(outbox_database, true));
	CommitTransactionCommand();
	return exists;
}

void
outbox_launcher_main(Datum main_arg)
{
	bool		logged_missing = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	for (;;)
	{
		BackgroundWorker worker;
		BackgroundWorkerHandle *handle;
		pid_t		pid;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/* A worker of an earlier launcher may still run: never start a second. */
		if (pg_atomic_read_u32(&outbox_shared->worker_procno_plus1) != NO_WORKER)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		if (!database_exists())
		{
			if (!logged_missing)
				ereport(LOG,
						(errmsg("billing outbox worker waits for database \"%s\" to exist",
								outbox_database)));
			logged_missing = true;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 2000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		logged_missing = false;

		memset(&worker, 0, sizeof(worker));
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
		worker.bgw_restart_time = BGW_NEVER_RESTART;
		strlcpy(worker.bgw_library_name, "billing", BGW_MAXLEN);
		strlcpy(worker.bgw_function_name, "outbox_worker_main", BGW_MAXLEN);
		strlcpy(worker.bgw_name, "billing outbox worker", BGW_MAXLEN);
		strlcpy(worker.bgw_type, "billing outbox worker", BGW_MAXLEN);
		worker.bgw_notify_pid = MyProcPid;

		if (!RegisterDynamicBackgroundWorker(&worker, &handle))
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the billing outbox worker"),
					 errhint("Raise max_worker_processes.")));
		else if (WaitForBackgroundWorkerStartup(handle, &pid) == BGWH_STARTED)
		{
			/* WaitForBackgroundWorkerShutdown serves SIGTERM and postmaster death. */
			(void) WaitForBackgroundWorkerShutdown(handle);
		}

		/* The worker stopped (error, SIGTERM, its database dropped): pause, then again. */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* --- the worker ----------------------------------------------------------- */

void
outbox_worker_main(Datum main_arg)
{
	bool		reclaimed = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(outbox_database, NULL, 0);
	pgstat_report_appname("billing outbox worker");

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "billing outbox batch",
									  ALLOCSET_DEFAULT_SIZES);

	/*
	 * One worker at a time: claims of another live worker must not be taken
	 * for a dead one's.  The slot is cleared on any exit, and shared memory
	 * is reinitialised after a crash.
	 */
	{
		uint32		expected = NO_WORKER;

		if (!pg_atomic_compare_exchange_u32(&outbox_shared->worker_procno_plus1, &expected,
											(uint32) MyProc->pgprocno + 1))
		{
			ereport(LOG,
					(errmsg("billing outbox worker not started: another one is running")));
			proc_exit(0);
		}
	}
	before_shmem_exit(outbox_worker_detach, (Datum) 0);

	ereport(LOG,
			(errmsg("billing outbox worker started in database \"%s\"", outbox_database)));

	for (;;)
	{
		OutboxMsg  *msgs;
		int			n;
		long		sleep_ms;

		/*
		 * Reset before looking at the queue: a commit that lands while we
		 * work sets the latch again and the wait below returns at once.
		 */
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(batch_cxt);
		msgs = claim_batch(&reclaimed, &n, &sleep_ms);
		if (n > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(batch_cxt);
			bool		finished = deliver_batch(msgs, n);

			MemoryContextSwitchTo(old);
			if (!finished)
				CHECK_FOR_INTERRUPTS();
			/* A delivered message may have unblocked the next one of its key. */
			continue;
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
	}
}

/* --- admin: requeue dead messages ---------------------------------------- */

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
