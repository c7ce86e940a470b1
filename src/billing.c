/*
 * billing.c — module entry point: refuses to load unless preloaded, then lets
 * each capability define its settings and (for the outbox) its worker.
 * Also home of the shared helpers (SPI, uuid text, hex digits, the standby
 * guard) declared in billing.h.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/namespace.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "billing.h"

PG_MODULE_MAGIC;

void		_PG_init(void);
PG_FUNCTION_INFO_V1(billing_require_primary_sql);

void
_PG_init(void)
{
	/*
	 * The outbox worker and the settings must exist before any backend uses
	 * them, and a worker can only be registered by the postmaster.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("billing must be loaded via shared_preload_libraries"),
				 errhint("Add billing to shared_preload_libraries in postgresql.conf and restart the server.")));

	clock_define_gucs();
	subscriptions_define_gucs();
	expiry_define_gucs();
	pricing_define_gucs();
	payments_define_gucs();
	stripe_define_gucs();
	api_define_gucs();
	outbox_worker_init();

	MarkGUCPrefixReserved("billing");
}

uint64
billing_spi_exec(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes,
				 Datum *values, const char *nulls, bool read_only, long tcount)
{
	int			rc;

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*plan = p;
	}

	rc = SPI_execute_plan(*plan, values, nulls, read_only, tcount);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 sql, SPI_result_code_string(rc));
	return SPI_processed;
}

Datum
billing_spi_get(uint64 row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
						 col, isnull);
}

char *
billing_spi_text(uint64 row, int col)
{
	bool		isnull;
	Datum		d = billing_spi_get(row, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

char *
billing_uuid_str(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

int
billing_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A function that writes, called on a hot standby, stops here: before any
 * side effect outside the database (a Stripe call, a latch), and with a
 * message that says where to go instead of whichever error its first write
 * would raise (or XX000 for an xid or a sequence during recovery).
 */
void
billing_require_primary(const char *what)
{
	if (!RecoveryInProgress())
		return;
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("%s cannot run on a standby", what),
			 errdetail("This server is a standby in recovery: it answers reads and takes no writes."),
			 errhint("Connect to the primary, for example with a connection string that lists every node and target_session_attrs=read-write.")));
}

/* The calling C function's schema-qualified name, for billing_require_primary(). */
void
billing_require_primary_fn(FunctionCallInfo fcinfo)
{
	Oid			fn = fcinfo->flinfo ? fcinfo->flinfo->fn_oid : InvalidOid;
	char	   *name;

	if (!RecoveryInProgress())
		return;
	name = OidIsValid(fn) ? get_func_name(fn) : NULL;
	if (name == NULL)
		billing_require_primary("this function");
	billing_require_primary(quote_qualified_identifier(get_namespace_name(get_func_namespace(fn)),
													   name));
}

/* billing.require_primary(what text): the same guard for SQL and PL/pgSQL functions. */
Datum
billing_require_primary_sql(PG_FUNCTION_ARGS)
{
	billing_require_primary(PG_ARGISNULL(0) ? "this function" : text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
