/*
 * admin_panel.c — admin actions of the admin panel that need more than an
 * existing function: marking a payment paid by hand, with the reason kept in
 * the audit; the schedule of the dashboard's revenue rollup.  The panel's
 * views and the dashboard are SQL, in sql/parts/96_admin_panel.sql.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "audit.h"
#include "billing.h"
#include "common.h"

#define MAX_REASON_CHARS 500

static char *revenue_rollup_schedule = NULL;

void
admin_panel_define_gucs(void)
{
	DefineCustomStringVariable("billing.revenue_rollup_schedule",
							   "pg_cron schedule of billing.revenue_rollup() (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.",
							   &revenue_rollup_schedule,
							   "17 * * * *",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}

static Datum
payment_state(Datum payment_id, bool *found)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {payment_id};
	bool		isnull;

	*found = billing_spi_exec(&plan,
							  "SELECT pg_catalog.jsonb_build_object('status', p.status, 'paid_at', p.paid_at, "
							  "'total', p.total, 'currency', p.currency) "
							  "FROM billing.payments p WHERE p.id = $1",
							  1, argtypes, values, NULL, false, 1) == 1;
	if (!*found)
		return (Datum) 0;
	return SPI_datumTransfer(billing_spi_get(0, 1, &isnull), false, -1);
}

PG_FUNCTION_INFO_V1(billing_mark_payment_paid);
Datum
billing_mark_payment_paid(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr settle_plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];
	char	   *reason;
	char	   *id;
	char	   *status;
	bool		found;
	Datum		before,
				after;
	StringInfoData extra;

	BILLING_REQUIRE_ARG(fcinfo, 0, "payment_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "reason");
	reason = TextDatumGetCString(PG_GETARG_DATUM(1));
	/* A reason is what makes a hand-made payment accountable. */
	if (strspn(reason, " \t\r\n") == strlen(reason))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reason is required to mark a payment paid"),
				 errhint("Say where the money came from, e.g. a bank transfer's reference.")));
	if (pg_mbstrlen(reason) > MAX_REASON_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the reason is too long"),
				 errdetail("At most %d characters are kept.", MAX_REASON_CHARS)));
	id = billing_uuid_str(PG_GETARG_UUID_P(0));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	before = payment_state(PG_GETARG_DATUM(0), &found);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("payment %s does not exist", id)));

	/* settle_payment is idempotent; a second "mark paid" would audit nothing real. */
	status = TextDatumGetCString(DirectFunctionCall2(jsonb_object_field_text, before,
													 CStringGetTextDatum("status")));
	if (strcmp(status, "paid") == 0 || strcmp(status, "refund_pending") == 0 ||
		strcmp(status, "refunded") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment %s is already %s", id, status),
				 errhint("Only an unpaid payment can be marked paid.")));

	values[0] = PG_GETARG_DATUM(0);
	billing_spi_exec(&settle_plan,
					 "SELECT billing.settle_payment($1, 'paid', NULL, NULL, 'admin')",
					 1, argtypes, values, NULL, false, 0);
	status = billing_spi_text(0, 1);
	after = payment_state(PG_GETARG_DATUM(0), &found);

	initStringInfo(&extra);
	appendStringInfoString(&extra, "{\"reason\": ");
	escape_json(&extra, reason);
	appendStringInfoChar(&extra, '}');
	after = SPI_datumTransfer(DirectFunctionCall2(jsonb_concat, after,
												  DirectFunctionCall1(jsonb_in, CStringGetDatum(extra.data))),
							  false, -1);
	audit_record("mark_payment_paid", psprintf("payment:%s", id), before, after);
	status = MemoryContextStrdup(TopTransactionContext, status);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(status));
}
