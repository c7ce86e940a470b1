/*
 * common.c — the small helpers every capability shares (common.h): saved SPI
 * plans, uuid text, hex digits, cutting caller input quoted in errors, the
 * guard that keeps functions that write off a standby, and reading a
 * provider's JSON.
 * The bottom of the module: it calls nothing of the extension's own.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/uuid.h"

#include "common.h"

PG_FUNCTION_INFO_V1(billing_require_primary_sql);

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

bool
billing_parse_uuid(const char *s, int len, pg_uuid_t *out)
{
	int			byte = 0;

	if (s == NULL)
		return false;
	if (len < 0)
		len = strlen(s);
	if (len != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		int			hi,
					lo;

		if (i == 8 || i == 13 || i == 18 || i == 23)
		{
			if (s[i] != '-')
				return false;
			continue;
		}
		hi = billing_hexval(s[i]);
		lo = billing_hexval(s[i + 1]);
		if (hi < 0 || lo < 0 || i + 1 == 8 || i + 1 == 13 || i + 1 == 18 || i + 1 == 23)
			return false;
		if (out)
			out->data[byte] = (unsigned char) (hi << 4 | lo);
		byte++;
		i++;
	}
	return byte == UUID_LEN;
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

		if ((size_t) l > len - cut)
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

/* --- reading a provider's JSON -------------------------------------------- */

static JsonbValue *
json_get(JsonbContainer *c, const char *key, JsonbValue *v)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), v);
}

char *
billing_json_str(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (json_get(c, key, &v) == NULL || v.type != jbvString)
		return NULL;
	return pnstrdup(v.val.string.val, v.val.string.len);
}

bool
billing_json_int(JsonbContainer *c, const char *key, int64 *out)
{
	JsonbValue	v;
	bool		have_error = false;
	Numeric		n;

	if (json_get(c, key, &v) == NULL || v.type != jbvNumeric)
		return false;
	n = v.val.numeric;
	if (numeric_is_nan(n) || numeric_is_inf(n))
		return false;
	/* Reject fractions and out-of-range values instead of rounding or throwing. */
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
										  DirectFunctionCall2(numeric_trunc, NumericGetDatum(n),
															  Int32GetDatum(0)))))
		return false;
	*out = numeric_int4_opt_error(n, &have_error);
	if (have_error)
	{
		/* Beyond int32: go through int8 with its own range check. */
		char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
		int64		val;
		char	   *end;

		errno = 0;
		val = strtoi64(s, &end, 10);
		if (errno != 0 || *end != '\0')
			return false;
		*out = val;
	}
	return true;
}

JsonbContainer *
billing_json_obj(JsonbContainer *c, const char *key)
{
	JsonbValue	v;

	if (json_get(c, key, &v) == NULL || v.type != jbvBinary ||
		!JsonContainerIsObject(v.val.binary.data))
		return NULL;
	return v.val.binary.data;
}

Jsonb *
billing_json_copy(JsonbContainer *c)
{
	char	   *text = JsonbToCString(NULL, c, -1);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

bool
billing_guarded(void (*fn) (void *arg), void *arg, const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("%s: %s", what, edata->message),
				 edata->detail ? errdetail("%s", edata->detail) : 0,
				 edata->hint ? errhint("%s", edata->hint) : 0));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
