/*
 * admin.c — what an admin does to money and access, attributable: settling or
 * canceling a payment by hand (marking one paid with a reason) and running the
 * expiry sweep now.  Each goes
 * through the same path as the system's own (payments.c, expiry.c), records
 * its payment events with source "admin", and appends a billing.admin_audit
 * row (audit.c) in the same transaction.
 *
 * Separate functions rather than an audit inside billing.settle_payment and
 * billing.run_expiry: those are also what the provider code, pg_cron and the
 * benchmarks call, where nobody is acting and an audit row would be noise
 * (and cost on the hot path).  billing_admin is granted these, not those.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "audit.h"
#include "common.h"
#include "payments.h"

extern Datum billing_run_expiry(PG_FUNCTION_ARGS);

/*
 * The payment as the audit shows it, before or after an admin's change: its
 * status, money and provider references, and the term of its subscription.
 * The first read locks the row (FOR UPDATE, as payment_lock does next), so
 * nothing changes it between "before" and the change.  (Datum) 0 when there
 * is no such payment (of that user): the change itself then raises P0002.
 */
static Datum
payment_snapshot(const pg_uuid_t *payment_id, const pg_uuid_t *user_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, UUIDOID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	Datum		d;

	values[0] = UUIDPGetDatum(payment_id);
	if (user_id)
		values[1] = UUIDPGetDatum(user_id);
	else
		nulls[1] = 'n';
	if (billing_spi_exec(&plan,
						 "SELECT pg_catalog.jsonb_build_object("
						 "  'status', p.status, 'user_id', p.user_id, 'total', p.total,"
						 "  'currency', p.currency, 'paid_at', p.paid_at, 'closed_at', p.closed_at,"
						 "  'provider_payment_intent', p.provider_payment_intent,"
						 "  'provider_refund_id', p.provider_refund_id,"
						 "  'subscription', (SELECT pg_catalog.jsonb_build_object("
						 "       'id', s.id, 'status', s.status, 'months', s.months,"
						 "       'ends_at', s.ends_at, 'grace_ends_at', s.grace_ends_at)"
						 "     FROM billing.subscriptions s WHERE s.id = p.subscription_id)) "
						 "FROM billing.payments p "
						 "WHERE p.id = $1 AND ($2::uuid IS NULL OR p.user_id = $2) "
						 "FOR UPDATE OF p",
						 2, argtypes, values, nulls, false, 1) == 0)
		return (Datum) 0;
	d = billing_spi_get(0, 1, &isnull);
	/* Out of SPI's tuple table: the change runs more statements before we use it. */
	return PointerGetDatum(PG_DETOAST_DATUM_COPY(d));
}

/*
 * Audit a payment change, when there was one (an idempotent repeat is none);
 * a reason, when given, is kept in the row's "after".
 */
static void
audit_payment(const char *action, const pg_uuid_t *payment_id, Datum before,
			  const pg_uuid_t *user_id, const char *reason)
{
	Datum		after = payment_snapshot(payment_id, user_id);

	if (before == (Datum) 0 || after == (Datum) 0 ||
		DatumGetBool(DirectFunctionCall2(jsonb_eq, before, after)))
		return;
	if (reason)
	{
		StringInfoData note;

		initStringInfo(&note);
		appendStringInfoString(&note, "{\"reason\": ");
		escape_json(&note, reason);
		appendStringInfoChar(&note, '}');
		after = DirectFunctionCall2(jsonb_concat, after,
									DirectFunctionCall1(jsonb_in, CStringGetDatum(note.data)));
	}
	audit_record(action, psprintf("payment:%s", billing_uuid_str(payment_id)),
				 before, after);
}

/*
 * billing.admin_settle_payment(payment_id, outcome, provider_ref, at) → text:
 * billing.settle_payment with source "admin", audited.
 */
PG_FUNCTION_INFO_V1(billing_admin_settle_payment);
Datum
billing_admin_settle_payment(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *payment_id;
	PaymentStatus outcome;
	char	   *provider_ref = NULL;
	TimestampTz at = 0;
	PaymentStatus status;
	Datum		before;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "payment_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "outcome");
	payment_id = PG_GETARG_UUID_P(0);
	outcome = payment_outcome_arg(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	if (!PG_ARGISNULL(2))
		provider_ref = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		at = PG_GETARG_TIMESTAMPTZ(3);

	SPI_connect();
	before = payment_snapshot(payment_id, NULL);
	status = payment_settle(payment_id, outcome, provider_ref,
							PG_ARGISNULL(3) ? NULL : &at, "admin", NULL);
	audit_payment("settle_payment", payment_id, before, NULL, NULL);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(payment_status_name(status)));
}

/*
 * billing.mark_payment_paid(payment_id, reason) → text: an unpaid payment
 * settled as paid by an admin (money that reached the cinema outside the
 * provider), with source "admin", audited with the reason, which is what
 * makes such a payment accountable.
 */
#define MAX_REASON_CHARS 500

PG_FUNCTION_INFO_V1(billing_mark_payment_paid);
Datum
billing_mark_payment_paid(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *payment_id;
	char	   *reason;
	PaymentStatus status;
	PaymentStatus was;
	Datum		before;

	BILLING_REQUIRE_PRIMARY(fcinfo);

	BILLING_REQUIRE_ARG(fcinfo, 0, "payment_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "reason");
	payment_id = PG_GETARG_UUID_P(0);
	reason = text_to_cstring(PG_GETARG_TEXT_PP(1));
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

	SPI_connect();
	before = payment_snapshot(payment_id, NULL);
	if (before == (Datum) 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("payment %s does not exist", billing_uuid_str(payment_id))));
	/* settle_payment repeats "paid" silently; here a repeat is a mistake. */
	if (payment_status_parse(TextDatumGetCString(DirectFunctionCall2(jsonb_object_field_text, before,
																	 CStringGetTextDatum("status"))),
							 &was) &&
		(was == PAYMENT_PAID || was == PAYMENT_REFUND_PENDING || was == PAYMENT_REFUNDED))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment %s is already %s", billing_uuid_str(payment_id),
						payment_status_name(was)),
				 errhint("Only an unpaid payment can be marked paid.")));
	status = payment_settle(payment_id, PAYMENT_PAID, NULL, NULL, "admin", NULL);
	audit_payment("mark_payment_paid", payment_id, before, NULL, reason);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(payment_status_name(status)));
}

/*
 * billing.admin_cancel_payment(user_id, payment_id) → text: the buyer's
 * cancel_payment on their behalf (cancel, or refund within the window), with
 * source "admin", audited.
 */
PG_FUNCTION_INFO_V1(billing_admin_cancel_payment);
Datum
billing_admin_cancel_payment(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id;
	pg_uuid_t  *payment_id;
	PaymentStatus status;
	Datum		before;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "payment_id");
	user_id = PG_GETARG_UUID_P(0);
	payment_id = PG_GETARG_UUID_P(1);

	SPI_connect();
	before = payment_snapshot(payment_id, user_id);
	status = payment_cancel(user_id, payment_id, "admin");
	audit_payment("cancel_payment_for", payment_id, before, user_id, NULL);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(payment_status_name(status)));
}

/*
 * billing.admin_run_expiry() → jsonb: the sweep now, audited with its counts
 * (a sweep an admin started is recorded even when nothing was due).
 */
PG_FUNCTION_INFO_V1(billing_admin_run_expiry);
Datum
billing_admin_run_expiry(PG_FUNCTION_ARGS)
{
	LOCAL_FCINFO(sweep, 0);
	Datum		counts;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	InitFunctionCallInfoData(*sweep, NULL, 0, InvalidOid, NULL, NULL);
	counts = billing_run_expiry(sweep);

	SPI_connect();
	audit_record("run_expiry", "billing.subscriptions", (Datum) 0, counts);
	SPI_finish();
	PG_RETURN_DATUM(counts);
}

/*
 * billing.admin_set_auto_renew(user_id, tariff, enabled) → jsonb: the buyer's
 * switch thrown by an admin (billing.set_auto_renew with source "admin",
 * which is also the reason recorded), audited with the subscription's
 * renewal state before and after.  The subscription row is locked first, as
 * set_auto_renew does itself, so "before" is what the switch changed and a
 * charge in flight finishes before either.
 */
#define RENEWAL_STATE_SQL \
	"SELECT s.id, pg_catalog.jsonb_build_object(" \
	"  'auto_renew', s.auto_renew, 'auto_renew_reason', s.auto_renew_reason," \
	"  'renew_at', s.renew_at, 'renew_failures', s.renew_failures) " \
	"FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id " \
	"WHERE s.user_id = $1 AND t.code = $2 FOR UPDATE OF s"

PG_FUNCTION_INFO_V1(billing_admin_set_auto_renew);
Datum
billing_admin_set_auto_renew(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr state_plan = NULL;
	static SPIPlanPtr set_plan = NULL;
	Oid			types[3] = {UUIDOID, TEXTOID, BOOLOID};
	Datum		values[3];
	Datum		before = (Datum) 0;
	Datum		after;
	Datum		state;
	int64		id = 0;
	bool		isnull;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "tariff");
	BILLING_REQUIRE_ARG(fcinfo, 2, "enabled");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);

	SPI_connect();
	/* no row: set_auto_renew raises its own P0002 below */
	if (billing_spi_exec(&state_plan, RENEWAL_STATE_SQL,
						 2, types, values, NULL, false, 0) > 0)
	{
		id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
		before = PointerGetDatum(PG_DETOAST_DATUM_COPY(billing_spi_get(0, 2, &isnull)));
	}
	billing_spi_exec(&set_plan, "SELECT billing.set_auto_renew($1, $2, $3, 'admin')",
					 3, types, values, NULL, false, 0);
	state = SPI_datumTransfer(billing_spi_get(0, 1, &isnull), false, -1);
	/* a statement of its own: it must see what set_auto_renew changed */
	billing_spi_exec(&state_plan, RENEWAL_STATE_SQL, 2, types, values, NULL, false, 0);
	after = PointerGetDatum(PG_DETOAST_DATUM_COPY(billing_spi_get(0, 2, &isnull)));
	if (before != (Datum) 0 && !DatumGetBool(DirectFunctionCall2(jsonb_eq, before, after)))
		audit_record("set_auto_renew", psprintf("subscription:" INT64_FORMAT, id), before, after);
	SPI_finish();
	PG_RETURN_DATUM(state);
}
