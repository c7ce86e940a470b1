/*
 * admin.c — what an admin does to money and access, attributable: settling or
 * canceling a payment by hand and running the expiry sweep now.  Each goes
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

/* Audit a payment change, when there was one (an idempotent repeat is none). */
static void
audit_payment(const char *action, const pg_uuid_t *payment_id, Datum before,
			  const pg_uuid_t *user_id)
{
	Datum		after = payment_snapshot(payment_id, user_id);

	if (before == (Datum) 0 || after == (Datum) 0 ||
		DatumGetBool(DirectFunctionCall2(jsonb_eq, before, after)))
		return;
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
	audit_payment("settle_payment", payment_id, before, NULL);
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
	audit_payment("cancel_payment_for", payment_id, before, user_id);
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
