/*
 * pricing.c — the price of a purchase (billing.quote and the C API used by
 * create_invoice): list = monthly price × months; personal and months-tier
 * discounts multiply; a promo code never stacks and wins only when strictly
 * cheaper; exact int128 arithmetic, rounded half-up once at the end.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/int.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "billing.h"
#include "common.h"
#include "clock.h"
#include "pricing.h"

int			pricing_max_months = 12;

void
pricing_define_gucs(void)
{
	/*
	 * SUSET: a business rule, not a per-session preference; an administrator
	 * sets it in postgresql.conf or with ALTER DATABASE/ROLE … SET.
	 */
	DefineCustomIntVariable("billing.max_months",
							"Longest purchase in months (a purchase is 1..max_months months).",
							NULL,
							&pricing_max_months,
							12, 1, 1200,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

/* round_half_up(num / den) for num >= 0, den > 0. */
static inline int128
div_half_up(int128 num, int128 den)
{
	return (num + den / 2) / den;
}

int64
pricing_apply_discounts(int64 list, int32 personal_bp, int32 months_bp)
{
	int128		num;

	Assert(list >= 0);
	Assert(personal_bp >= 0 && personal_bp <= PRICING_BP_FULL);
	Assert(months_bp >= 0 && months_bp <= PRICING_BP_FULL);

	/* list < 2^63 and each factor <= 10^4, so num < 2^90: no overflow. */
	num = (int128) list * (PRICING_BP_FULL - personal_bp) * (PRICING_BP_FULL - months_bp);
	/* The result is <= list, hence fits in int64 and is never negative. */
	return (int64) div_half_up(num, (int128) PRICING_BP_FULL * PRICING_BP_FULL);
}

static int64
apply_promo(int64 list, int32 promo_bp)
{
	return (int64) div_half_up((int128) list * (PRICING_BP_FULL - promo_bp),
							   PRICING_BP_FULL);
}

int32
pricing_percent_to_bp(Numeric percent, const char *what)
{
	Numeric		hundredths;
	Datum		d;

	if (numeric_is_nan(percent) || numeric_is_inf(percent))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", what)));

	d = DirectFunctionCall2(numeric_mul, NumericGetDatum(percent),
							NumericGetDatum(int64_to_numeric(100)));
	hundredths = DatumGetNumeric(d);

	if (DatumGetBool(DirectFunctionCall2(numeric_le, d,
										 NumericGetDatum(int64_to_numeric(0)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_gt, d,
										 NumericGetDatum(int64_to_numeric(PRICING_BP_FULL)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be greater than 0 and at most 100", what)));

	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, d,
										  DirectFunctionCall2(numeric_trunc, d,
															  Int32GetDatum(0)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must have at most two decimal places", what)));

	return DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(hundredths)));
}

Numeric
pricing_bp_to_numeric(int32 bp)
{
	return int64_div_fast_to_numeric(bp, 2);
}

static char *
copy_text(MemoryContext cxt, Datum d)
{
	char	   *s = TextDatumGetCString(d);
	char	   *r = MemoryContextStrdup(cxt, s);

	pfree(s);
	return r;
}

/*
 * Fills the tariff part of *q and the two discounts (P0002 / 55000 for the
 * tariff).  One statement for the three lookups: create_invoice runs this on
 * every purchase.
 */
static void
load_tariff_and_discounts(BillingQuote *q, const char *tariff_code,
						  pg_uuid_t *user_id, int32 months, TimestampTz now,
						  MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {TEXTOID, UUIDOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[4];
	bool		isnull;
	Datum		d;
	char	   *currency;

	values[0] = CStringGetTextDatum(tariff_code);
	values[1] = UUIDPGetDatum(user_id);
	values[2] = TimestampTzGetDatum(now);
	values[3] = Int32GetDatum(months);

	/*
	 * The personal discount's valid_until is the first instant it no longer
	 * applies; the months tier is the one with the largest months <= months.
	 */
	if (billing_spi_exec(&plan,
						 "SELECT t.id, t.code, t.title, t.currency::text, t.monthly_price, t.active, "
						 "  (SELECT (d.percent * 100)::int4 FROM marketing.personal_discounts d "
						 "    WHERE d.user_id = $2 AND (d.valid_until IS NULL OR d.valid_until > $3)), "
						 "  (SELECT (m.percent * 100)::int4 FROM marketing.months_discounts m "
						 "    WHERE m.months <= $4 ORDER BY m.months DESC LIMIT 1) "
						 "FROM marketing.tariffs t WHERE t.code = $1",
						 4, argtypes, values, NULL, true, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("tariff \"%s\" does not exist", billing_echo(tariff_code))));

	if (!DatumGetBool(billing_spi_get(0, 6, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tariff \"%s\" is not on sale", billing_echo(tariff_code)),
				 errdetail("The tariff has been deactivated.")));

	q->tariff_id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	q->tariff_code = copy_text(cxt, billing_spi_get(0, 2, &isnull));
	q->tariff_title = copy_text(cxt, billing_spi_get(0, 3, &isnull));
	currency = TextDatumGetCString(billing_spi_get(0, 4, &isnull));
	strlcpy(q->currency, currency, sizeof(q->currency));
	q->monthly_price = DatumGetInt64(billing_spi_get(0, 5, &isnull));
	d = billing_spi_get(0, 7, &isnull);
	q->personal_bp = isnull ? 0 : DatumGetInt32(d);
	d = billing_spi_get(0, 8, &isnull);
	q->months_bp = isnull ? 0 : DatumGetInt32(d);
}

/* Finds the code and checks that this user may use it for this purchase now. */
static void
load_promo(BillingQuote *q, pg_uuid_t *user_id, const char *promo_code,
		   TimestampTz now, MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr used_plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	Oid			used_types[2] = {INT8OID, UUIDOID};
	Datum		used_values[2];
	bool		isnull;
	bool		from_null,
				max_null,
				tariff_null;
	int64		id;
	TimestampTz valid_from,
				valid_until;
	int64		restricted_to;
	int32		max_redemptions;
	int32		redemptions;

	/*
	 * Codes are case-insensitive.  A live code wins over deleted ones of the
	 * same name, so that a deleted code reports "withdrawn", not "unknown".
	 */
	values[0] = CStringGetTextDatum(promo_code);
	if (billing_spi_exec(&plan,
						 "SELECT p.id, p.code, (p.percent * 100)::int4, p.valid_from, p.valid_until, "
						 "       p.tariff_id, t.code, p.max_redemptions, p.redemptions, "
						 "       p.deleted_at IS NOT NULL "
						 "FROM marketing.promo_codes p "
						 "LEFT JOIN marketing.tariffs t ON t.id = p.tariff_id "
						 "WHERE lower(p.code) = lower($1) "
						 "ORDER BY p.deleted_at IS NULL DESC, p.id DESC LIMIT 1",
						 1, argtypes, values, NULL, true, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("promo code \"%s\" does not exist", billing_echo(promo_code))));

	if (DatumGetBool(billing_spi_get(0, 10, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" has been withdrawn", billing_echo(promo_code))));

	id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	valid_from = DatumGetTimestampTz(billing_spi_get(0, 4, &from_null));
	valid_until = DatumGetTimestampTz(billing_spi_get(0, 5, &isnull));
	restricted_to = DatumGetInt64(billing_spi_get(0, 6, &tariff_null));
	max_redemptions = DatumGetInt32(billing_spi_get(0, 8, &max_null));
	redemptions = DatumGetInt32(billing_spi_get(0, 9, &isnull));

	if (!from_null && now < valid_from)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" is not valid yet", billing_echo(promo_code)),
				 errdetail("It is valid from %s.", timestamptz_to_str(valid_from))));

	/* valid_until is the first instant the code no longer works. */
	if (now >= valid_until)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" has expired", billing_echo(promo_code)),
				 errdetail("It was valid until %s.", timestamptz_to_str(valid_until))));

	if (!tariff_null && restricted_to != q->tariff_id)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" does not apply to tariff \"%s\"",
						billing_echo(promo_code), q->tariff_code),
				 errdetail("It applies only to tariff \"%s\".",
						   TextDatumGetCString(billing_spi_get(0, 7, &isnull)))));

	/* redemptions counts open reservations too: they may come back. */
	if (!max_null && redemptions >= max_redemptions)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" has no redemptions left", billing_echo(promo_code)),
				 errdetail("All %d redemptions are taken.", max_redemptions)));

	q->promo_id = id;
	q->promo_code = copy_text(cxt, billing_spi_get(0, 2, &isnull));
	q->promo_bp = DatumGetInt32(billing_spi_get(0, 3, &isnull));

	/*
	 * One use per user: an open invoice holding the code or a paid one.  The
	 * unique index payments_promo_once is what really enforces it under
	 * concurrency; this check just says so before an invoice is attempted.
	 */
	used_values[0] = Int64GetDatum(id);
	used_values[1] = UUIDPGetDatum(user_id);
	if (billing_spi_exec(&used_plan,
						 "SELECT 1 FROM billing.payments "
						 "WHERE promo_code_id = $1 AND user_id = $2 "
						 "AND status IN ('invoiced', 'pending', 'paid', 'refund_pending') LIMIT 1",
						 2, used_types, used_values, NULL, true, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("promo code \"%s\" has already been used by this user", billing_echo(promo_code)),
				 errdetail("A code can be used once per user; an open or paid invoice holds it.")));
}

void
pricing_quote(BillingQuote *q, pg_uuid_t *user_id, const char *tariff_code,
			  int32 months, const char *promo_code)
{
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz now = billing_now();

	if (user_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("user_id must not be null")));
	if (tariff_code == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tariff must not be null")));
	if (months < 1 || months > pricing_max_months)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("months must be between 1 and %d", pricing_max_months),
				 errhint("The longest purchase is set by billing.max_months.")));

	memset(q, 0, sizeof(*q));
	q->months = months;
	q->promo_total = -1;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	load_tariff_and_discounts(q, tariff_code, user_id, months, now, cxt);

	if (pg_mul_s64_overflow(q->monthly_price, months, &q->list_price))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("price of %d months of tariff \"%s\" is out of range",
						months, billing_echo(tariff_code))));

	if (promo_code != NULL)
		load_promo(q, user_id, promo_code, now, cxt);

	SPI_finish();

	q->discounts_total = pricing_apply_discounts(q->list_price, q->personal_bp,
												 q->months_bp);
	q->total = q->discounts_total;
	q->applied = (q->personal_bp > 0 || q->months_bp > 0) ? "discounts" : "none";

	/*
	 * The promo code never stacks: it wins only when strictly cheaper.  On a
	 * tie the discounts stay, so the code is not spent for nothing and the
	 * user keeps it for later.
	 */
	if (q->promo_id != 0)
	{
		q->promo_total = apply_promo(q->list_price, q->promo_bp);
		if (q->promo_total < q->discounts_total)
		{
			q->total = q->promo_total;
			q->applied = "promo";
		}
	}
}

/* bp as a JSON number: 1250 -> 12.5, 1000 -> 10, 1234 -> 12.34. */
static void
append_percent(StringInfo buf, int32 bp)
{
	if (bp % 100 == 0)
		appendStringInfo(buf, "%d", bp / 100);
	else if (bp % 10 == 0)
		appendStringInfo(buf, "%d.%d", bp / 100, (bp % 100) / 10);
	else
		appendStringInfo(buf, "%d.%02d", bp / 100, bp % 100);
}

Jsonb *
pricing_quote_jsonb(const BillingQuote *q)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"tariff\": ");
	escape_json(&buf, q->tariff_code);
	appendStringInfo(&buf, ", \"tariff_id\": " INT64_FORMAT, q->tariff_id);
	appendStringInfoString(&buf, ", \"tariff_title\": ");
	escape_json(&buf, q->tariff_title);
	appendStringInfoString(&buf, ", \"currency\": ");
	escape_json(&buf, q->currency);
	appendStringInfo(&buf, ", \"months\": %d", q->months);
	appendStringInfo(&buf, ", \"monthly_price\": " INT64_FORMAT, q->monthly_price);
	appendStringInfo(&buf, ", \"list_price\": " INT64_FORMAT, q->list_price);
	appendStringInfoString(&buf, ", \"personal_percent\": ");
	append_percent(&buf, q->personal_bp);
	appendStringInfoString(&buf, ", \"months_percent\": ");
	append_percent(&buf, q->months_bp);
	appendStringInfoString(&buf, ", \"promo_code\": ");
	if (q->promo_code)
		escape_json(&buf, q->promo_code);
	else
		appendStringInfoString(&buf, "null");
	appendStringInfoString(&buf, ", \"promo_percent\": ");
	append_percent(&buf, q->promo_bp);
	appendStringInfo(&buf, ", \"discounts_total\": " INT64_FORMAT, q->discounts_total);
	if (q->promo_total >= 0)
		appendStringInfo(&buf, ", \"promo_total\": " INT64_FORMAT, q->promo_total);
	else
		appendStringInfoString(&buf, ", \"promo_total\": null");
	appendStringInfoString(&buf, ", \"applied\": ");
	escape_json(&buf, q->applied);
	appendStringInfo(&buf, ", \"total\": " INT64_FORMAT "}", q->total);

	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

PG_FUNCTION_INFO_V1(billing_quote);
Datum
billing_quote(PG_FUNCTION_ARGS)
{
	BillingQuote q;
	char	   *tariff;
	char	   *promo = NULL;

	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "tariff");
	BILLING_REQUIRE_ARG(fcinfo, 2, "months");

	tariff = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(3))
		promo = text_to_cstring(PG_GETARG_TEXT_PP(3));

	pricing_quote(&q, PG_GETARG_UUID_P(0), tariff, PG_GETARG_INT32(2), promo);
	PG_RETURN_JSONB_P(pricing_quote_jsonb(&q));
}
