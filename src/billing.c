/*
 * billing.c — module entry point: refuses to load unless preloaded, then lets
 * each capability define its settings and (for the outbox) its worker.
 * Also home of the shared helpers (SPI, uuid text, hex digits) declared in
 * billing.h.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "billing.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

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

char *
billing_echo(const char *s)
{
	int			encoding = GetDatabaseEncoding();
	size_t		len;
	size_t		cut = 0;
	int			chars = 0;

	if (s == NULL)
		return NULL;
	/* Outside a database (a settings check in the postmaster) assume UTF-8. */
	if (encoding == PG_SQL_ASCII)
		encoding = PG_UTF8;
	len = strlen(s);
	while (cut < len && chars < BILLING_ECHO_CHARS)
	{
		int			l = pg_encoding_mblen(encoding, s + cut);

		if (l > len - cut)
			break;				/* a truncated last character: never split it */
		cut += l;
		chars++;
	}
	if (cut >= len)
		return (char *) s;
	return psprintf("%.*s%s", (int) cut, s, encoding == PG_UTF8 ? "\xE2\x80\xA6" : "...");
}

void
billing_guc_invalid(const char *name, const char *value)
{
	GUC_check_errmsg("invalid value for parameter \"%s\": \"%s\"", name, billing_echo(value));
}
