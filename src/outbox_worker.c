/*
 * outbox_worker.c — the process side of outbox delivery: its settings, the
 * launcher that waits for the database and (re)starts the worker, and the
 * worker's loop, which sleeps until a commit wakes it (outbox.c) or a
 * message falls due, and hands each batch to outbox_delivery.c.
 */
#include "postgres.h"

#include <unistd.h>

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "billing.h"
#include "common.h"
#include "grpc.h"
#include "outbox.h"
#include "outbox_delivery.h"

PGDLLEXPORT void outbox_launcher_main(Datum main_arg);
PGDLLEXPORT void outbox_worker_main(Datum main_arg);

/* --- settings ------------------------------------------------------------- */

static char *outbox_database = NULL;
static char *outbox_purge_schedule = NULL;
static OutboxSettings settings = {
	.connect_timeout_ms = 2000,
	.deadline_ms = 5000,
	.batch_size = 500,
	.concurrency = 64,
	.max_attempts = 20,
	.backoff_base_ms = 1000,
	.backoff_max_ms = 300000,
	.poll_interval_ms = 1000,
};

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
							   &settings.auth_target, "",
							   PGC_SIGHUP, 0, check_auth_target, NULL, NULL);
	DefineCustomStringVariable("billing.notify_target",
							   "gRPC target of the notification service (messagesender.MessageSender).",
							   "http://host:port or https://host:port.  Empty: notifications stay pending.",
							   &settings.notify_target, "",
							   PGC_SIGHUP, 0, check_notify_target, NULL, NULL);
	DefineCustomStringVariable("billing.grpc_ca_file",
							   "CA certificates (PEM) that https:// gRPC targets are verified against.",
							   "Empty: the system's CA store.",
							   &settings.ca_file, "",
							   PGC_SIGHUP, 0, check_ca_file, NULL, NULL);
	DefineCustomIntVariable("billing.grpc_connect_timeout",
							"Time allowed to connect to a gRPC service.",
							NULL, &settings.connect_timeout_ms, 2000, 1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.grpc_deadline",
							"Deadline of one gRPC call (sent as grpc-timeout).",
							NULL, &settings.deadline_ms, 5000, 1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_batch_size",
							"Outbox messages claimed per batch.",
							NULL, &settings.batch_size, 500, 1, 10000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_concurrency",
							"gRPC calls the outbox worker keeps in flight at once.",
							NULL, &settings.concurrency, 64, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_max_attempts",
							"Delivery attempts before a message is parked as dead.",
							NULL, &settings.max_attempts, 20, 1, 1000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_backoff_base",
							"Delay before the first retry; doubles with each attempt (with jitter).",
							NULL, &settings.backoff_base_ms, 1000, 1, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_backoff_max",
							"Longest delay between two attempts.",
							NULL, &settings.backoff_max_ms, 300000, 1, 86400000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.outbox_poll_interval",
							"Longest sleep of the outbox worker between two looks at the queue.",
							"Commits that queue messages wake the worker at once; this is the safety net.",
							&settings.poll_interval_ms, 1000, 10, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomStringVariable("billing.outbox_purge_schedule",
							   "pg_cron schedule of billing.outbox_purge() (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.",
							   &outbox_purge_schedule, "23 3 * * *",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

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

/* --- the launcher ------------------------------------------------------- */

/*
 * Does the worker's database exist?  pg_database is shared, so the launcher
 * reads it with no database of its own, but only through its heap, as
 * autovacuum's launcher does: an index scan (get_database_oid) needs the
 * index's relcache entry, which a process without a database can only take
 * from the shared relcache init file; on a fresh cluster, and on a standby
 * made by pg_basebackup (which leaves that file out) once promoted, there is
 * none yet, and the launcher died with "cannot read pg_class without having
 * selected a database".  The table has a row per database: a scan is cheap.
 */
static bool
database_exists(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tuple;
	bool		exists = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!exists && (tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tuple);

		/* One left invalid by an interrupted DROP DATABASE takes no connection. */
		exists = strcmp(NameStr(db->datname), outbox_database) == 0 && !database_is_invalid_form(db);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
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
		if (outbox_slot_taken())
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

static void
outbox_worker_detach(int code, Datum arg)
{
	outbox_slot_release();
}

void
outbox_worker_main(Datum main_arg)
{
	bool		reclaimed = false;
	MemoryContext batch_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(outbox_database, NULL, 0);
	pgstat_report_appname("billing outbox worker");

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "billing outbox batch",
									  ALLOCSET_DEFAULT_SIZES);

	/* One worker at a time: claims of a live worker must not pass for a dead one's. */
	if (!outbox_slot_take())
	{
		ereport(LOG,
				(errmsg("billing outbox worker not started: another one is running")));
		proc_exit(0);
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
		msgs = outbox_claim_batch(&settings, batch_cxt, &reclaimed, &n, &sleep_ms);
		if (n > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(batch_cxt);
			bool		finished = outbox_deliver_batch(&settings, msgs, n);

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

