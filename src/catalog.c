/*
 * catalog.c — the marketing team's admin functions: tariffs and their price
 * history, personal and months discounts, promo codes.  Each call validates
 * everything first, then changes the rows, writes its audit row and its
 * outbox rows (create/update role) in the same transaction.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "audit.h"
#include "common.h"
#include "clock.h"
#include "currency.h"
#include "outbox.h"
#include "pricing.h"

/* ---------- validation ---------- */

static void
check_tariff_code(const char *code)
{
	size_t		len = strlen(code);
	bool		ok = len >= 1 && len <= 64;

	/* Same rule as the CHECK on marketing.tariffs.code: ^[a-z0-9][a-z0-9_-]{0,63}$ */
	for (size_t i = 0; ok && i < len; i++)
	{
		char		c = code[i];

		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			(i > 0 && (c == '_' || c == '-'));
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tariff code \"%s\"", billing_echo(code)),
				 errdetail("A tariff code is 1 to 64 characters: lower-case letters, digits, \"_\" and \"-\", starting with a letter or digit.")));
}

static void
check_promo_code(const char *code)
{
	size_t		len = strlen(code);
	bool		ok = len >= 1 && len <= 64;

	/* Same rule as the CHECK on marketing.promo_codes.code. */
	for (size_t i = 0; ok && i < len; i++)
	{
		char		c = code[i];

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '_' || c == '-';
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid promo code \"%s\"", billing_echo(code)),
				 errdetail("A promo code is 1 to 64 characters: letters, digits, \"_\" and \"-\".")));
}

static void
check_title(const char *title)
{
	int			len = pg_mbstrlen(title);
	bool		blank = true;

	for (const char *p = title; *p; p++)
		if (!isspace((unsigned char) *p))
			blank = false;
	if (len < 1 || len > 200 || blank)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tariff title must be 1 to 200 characters and not blank")));
}

static void
check_price(int64 price)
{
	if (price < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("monthly_price must not be negative"),
				 errdetail("Prices are in minor units of the currency (kopecks, cents).")));
}

/* Upper-cased currency code Stripe can charge in, or 22023. */
static char *
check_currency(const char *currency)
{
	char	   *code = pstrdup(currency);

	for (char *p = code; *p; p++)
		*p = pg_ascii_toupper((unsigned char) *p);
	if (!currency_supported(code))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("currency \"%s\" is not supported", billing_echo(currency)),
				 errhint("Use an ISO 4217 code the payment provider can charge in, such as RUB, EUR or USD.")));
	return code;
}

/* valid_until must lie ahead of billing.now(): a discount that is already
 * over is a mistake, not a change. */
static void
check_future(TimestampTz ts, const char *what)
{
	if (ts <= billing_now())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be later than billing.now()", what),
				 errdetail("billing.now() is %s.", timestamptz_to_str(billing_now()))));
}

static char *
text_arg(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* ---------- SPI helpers ---------- */

static void
connect_spi(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* Copies a jsonb result column out of SPI into the function's context. */
static Datum
result_jsonb(int col)
{
	bool		isnull;
	Datum		d = billing_spi_get(0, col, &isnull);

	return SPI_datumTransfer(d, false, -1);
}

/* The current row of a tariff as jsonb, locked; P0002 when missing. */
static void
lock_tariff(const char *code, int64 *id, Datum *row)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		isnull;

	values[0] = CStringGetTextDatum(code);
	if (billing_spi_exec(&plan,
						 "SELECT t.id, to_jsonb(t) FROM marketing.tariffs t WHERE t.code = $1 FOR UPDATE",
						 1, argtypes, values, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("tariff \"%s\" does not exist", billing_echo(code))));
	*id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	*row = billing_spi_get(0, 2, &isnull);
}

static void
record_price(int64 tariff_id, int64 old_price, bool first, int64 new_price)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[5] = {INT8OID, INT8OID, INT8OID, NAMEOID, TIMESTAMPTZOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(tariff_id);
	values[1] = Int64GetDatum(old_price);
	if (first)
		nulls[1] = 'n';
	values[2] = Int64GetDatum(new_price);
	values[3] = DirectFunctionCall1(namein, CStringGetDatum(audit_actor()));
	values[4] = TimestampTzGetDatum(billing_now());
	billing_spi_exec(&plan,
					 "INSERT INTO marketing.tariff_price_history "
					 "(tariff_id, old_price, new_price, changed_by, changed_at) "
					 "VALUES ($1, $2, $3, $4, $5)",
					 5, argtypes, values, nulls, false, 0);
}

/* create_role / update_role for the auth service (see CONTRACTS.md). */
static void
enqueue_role(const char *kind, int64 tariff_id, const char *title, int64 audit_id)
{
	StringInfoData payload;
	char	   *key;
	char	   *ordering = psprintf("tariff:" INT64_FORMAT, tariff_id);

	initStringInfo(&payload);
	appendStringInfo(&payload, "{\"tariff_id\": " INT64_FORMAT ", \"name\": ", tariff_id);
	escape_json(&payload, title);
	appendStringInfoChar(&payload, '}');

	if (strcmp(kind, "create_role") == 0)
		key = psprintf("tariff:" INT64_FORMAT ":create_role", tariff_id);
	else
		key = psprintf("tariff:" INT64_FORMAT ":rename:" INT64_FORMAT, tariff_id, audit_id);

	outbox_enqueue(kind, payload.data, key, ordering);
}

/* ---------- tariffs ---------- */

PG_FUNCTION_INFO_V1(billing_create_tariff);
Datum
billing_create_tariff(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	char	   *code,
			   *title,
			   *currency,
			   *description;
	int64		price,
				id,
				audit_id;
	bool		isnull;
	Datum		after;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "code");
	BILLING_REQUIRE_ARG(fcinfo, 1, "title");
	BILLING_REQUIRE_ARG(fcinfo, 2, "monthly_price");
	BILLING_REQUIRE_ARG(fcinfo, 3, "currency");

	code = text_arg(fcinfo, 0);
	title = text_arg(fcinfo, 1);
	price = PG_GETARG_INT64(2);
	description = text_arg(fcinfo, 4);

	check_tariff_code(code);
	check_title(title);
	check_price(price);
	currency = check_currency(text_arg(fcinfo, 3));

	connect_spi();

	values[0] = CStringGetTextDatum(code);
	values[1] = CStringGetTextDatum(title);
	if (description && description[0] != '\0')
		values[2] = CStringGetTextDatum(description);
	else
		nulls[2] = 'n';
	values[3] = Int64GetDatum(price);
	values[4] = CStringGetTextDatum(currency);

	/* ON CONFLICT: a concurrent creator of the same code gets the same clear error. */
	if (billing_spi_exec(&plan,
						 "INSERT INTO marketing.tariffs AS t (code, title, description, monthly_price, currency) "
						 "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO NOTHING "
						 "RETURNING t.id, to_jsonb(t)",
						 5, argtypes, values, nulls, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("tariff \"%s\" already exists", billing_echo(code)),
				 errhint("Tariff codes are permanent; choose another code or update the existing tariff.")));

	id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	after = result_jsonb(2);

	record_price(id, 0, true, price);
	audit_id = audit_record("create_tariff", psprintf("tariff:%s", code), (Datum) 0, after);
	(void) audit_id;
	enqueue_role("create_role", id, title, 0);

	SPI_finish();
	PG_RETURN_DATUM(after);
}

PG_FUNCTION_INFO_V1(billing_update_tariff);
Datum
billing_update_tariff(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {INT8OID, TEXTOID, TEXTOID, BOOLOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *code,
			   *title,
			   *description;
	int64		id,
				audit_id;
	Datum		before,
				after;
	bool		title_changed;
	bool		isnull;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "code");
	code = text_arg(fcinfo, 0);
	title = text_arg(fcinfo, 1);
	description = text_arg(fcinfo, 2);

	if (title == NULL && description == NULL && PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("nothing to update"),
				 errhint("Pass title, description or active.")));
	if (title)
		check_title(title);

	connect_spi();
	lock_tariff(code, &id, &before);

	/*
	 * NULL keeps a field; an empty description clears it.  The title
	 * comparison decides whether the auth service must rename the role.
	 */
	values[0] = Int64GetDatum(id);
	if (title)
		values[1] = CStringGetTextDatum(title);
	else
		nulls[1] = 'n';
	if (description)
		values[2] = CStringGetTextDatum(description);
	else
		nulls[2] = 'n';
	if (!PG_ARGISNULL(3))
		values[3] = BoolGetDatum(PG_GETARG_BOOL(3));
	else
		nulls[3] = 'n';

	billing_spi_exec(&plan,
					 "WITH old AS (SELECT title FROM marketing.tariffs WHERE id = $1) "
					 "UPDATE marketing.tariffs AS t SET "
					 "  title = coalesce($2, t.title), "
					 "  description = CASE WHEN $3 IS NULL THEN t.description ELSE nullif($3, '') END, "
					 "  active = coalesce($4, t.active), "
					 "  updated_at = billing.now() "
					 "FROM old WHERE t.id = $1 "
					 "RETURNING to_jsonb(t), t.title IS DISTINCT FROM old.title",
					 4, argtypes, values, nulls, false, 0);
	after = result_jsonb(1);
	title_changed = DatumGetBool(billing_spi_get(0, 2, &isnull));

	audit_id = audit_record("update_tariff", psprintf("tariff:%s", code), before, after);
	if (title_changed)
		enqueue_role("update_role", id, title, audit_id);

	SPI_finish();
	PG_RETURN_DATUM(after);
}

PG_FUNCTION_INFO_V1(billing_set_tariff_price);
Datum
billing_set_tariff_price(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];
	char	   *code;
	int64		price,
				old_price,
				id;
	Datum		before,
				after;
	bool		isnull;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "code");
	BILLING_REQUIRE_ARG(fcinfo, 1, "monthly_price");
	code = text_arg(fcinfo, 0);
	price = PG_GETARG_INT64(1);
	check_price(price);

	connect_spi();
	lock_tariff(code, &id, &before);

	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(price);
	billing_spi_exec(&plan,
					 "WITH old AS (SELECT monthly_price FROM marketing.tariffs WHERE id = $1) "
					 "UPDATE marketing.tariffs AS t SET monthly_price = $2, updated_at = billing.now() "
					 "FROM old WHERE t.id = $1 RETURNING to_jsonb(t), old.monthly_price",
					 2, argtypes, values, NULL, false, 0);
	after = result_jsonb(1);
	old_price = DatumGetInt64(billing_spi_get(0, 2, &isnull));

	/* The history records changes; payments keep their own snapshot. */
	if (old_price != price)
		record_price(id, old_price, false, price);
	audit_record("set_tariff_price", psprintf("tariff:%s", code), before, after);

	SPI_finish();
	PG_RETURN_DATUM(after);
}

/*
 * Replace-or-create of a one-row-per-key setting (a personal discount, a
 * months tier) that also reports the row before, for the audit.  Three saved
 * statements share one parameter list: lock_sql ($1 = key) returns the row
 * locked, update_sql and insert_sql (ON CONFLICT DO NOTHING) return the new
 * row.  A row created by a concurrent call between our look and our insert
 * is locked and updated on the next turn, so "before" is never missed.
 */
typedef struct UpsertPlans
{
	SPIPlanPtr	lock;
	SPIPlanPtr	update;
	SPIPlanPtr	insert;
} UpsertPlans;

static void
upsert_setting(UpsertPlans *plans, const char *lock_sql, const char *update_sql,
			   const char *insert_sql, int nargs, Oid *argtypes, Datum *values,
			   const char *nulls, Datum *before, Datum *after)
{
	for (int attempt = 0; attempt < 3; attempt++)
	{
		if (billing_spi_exec(&plans->lock, lock_sql, nargs, argtypes, values,
							 nulls, false, 1) > 0)
		{
			*before = result_jsonb(1);
			billing_spi_exec(&plans->update, update_sql, nargs, argtypes, values,
							 nulls, false, 0);
			*after = result_jsonb(1);
			return;
		}
		if (billing_spi_exec(&plans->insert, insert_sql, nargs, argtypes, values,
							 nulls, false, 0) > 0)
		{
			*before = (Datum) 0;
			*after = result_jsonb(1);
			return;
		}
	}

	/* Only a snapshot that cannot see the concurrent row gets here. */
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not serialize access due to a concurrent change of the same setting"),
			 errhint("Retry the transaction.")));
}

/* ---------- personal discounts ---------- */

PG_FUNCTION_INFO_V1(billing_set_personal_discount);
Datum
billing_set_personal_discount(PG_FUNCTION_ARGS)
{
	static UpsertPlans plans;
	Oid			argtypes[4] = {UUIDOID, NUMERICOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	pg_uuid_t  *user_id;
	int32		bp;
	Datum		before,
				after;
	char	   *target;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "percent");
	user_id = PG_GETARG_UUID_P(0);
	bp = pricing_percent_to_bp(PG_GETARG_NUMERIC(1), "percent");
	if (!PG_ARGISNULL(2))
		check_future(PG_GETARG_TIMESTAMPTZ(2), "valid_until");

	target = psprintf("user:%s", billing_uuid_str(user_id));

	values[0] = UUIDPGetDatum(user_id);
	values[1] = NumericGetDatum(pricing_bp_to_numeric(bp));
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	else
		values[2] = PG_GETARG_DATUM(2);
	values[3] = TimestampTzGetDatum(billing_now());

	connect_spi();
	upsert_setting(&plans,
				   "SELECT to_jsonb(d) FROM marketing.personal_discounts d "
				   "WHERE d.user_id = $1 FOR UPDATE",
				   "UPDATE marketing.personal_discounts AS d "
				   "SET percent = $2, valid_until = $3, updated_at = $4 "
				   "WHERE d.user_id = $1 RETURNING to_jsonb(d)",
				   "INSERT INTO marketing.personal_discounts AS d (user_id, percent, valid_until, updated_at) "
				   "VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING RETURNING to_jsonb(d)",
				   4, argtypes, values, nulls, &before, &after);

	audit_record("set_personal_discount", target, before, after);

	SPI_finish();
	PG_RETURN_DATUM(after);
}

PG_FUNCTION_INFO_V1(billing_remove_personal_discount);
Datum
billing_remove_personal_discount(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];
	pg_uuid_t  *user_id;
	Datum		before;
	char	   *user_text;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	user_id = PG_GETARG_UUID_P(0);
	user_text = billing_uuid_str(user_id);

	connect_spi();
	values[0] = UUIDPGetDatum(user_id);
	if (billing_spi_exec(&plan,
						 "DELETE FROM marketing.personal_discounts d WHERE d.user_id = $1 RETURNING to_jsonb(d)",
						 1, argtypes, values, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("user %s has no personal discount", user_text)));
	before = result_jsonb(1);

	audit_record("remove_personal_discount", psprintf("user:%s", user_text), before, (Datum) 0);

	SPI_finish();
	PG_RETURN_DATUM(before);
}

/* ---------- months discounts ---------- */

PG_FUNCTION_INFO_V1(billing_set_months_discount);
Datum
billing_set_months_discount(PG_FUNCTION_ARGS)
{
	static UpsertPlans plans;
	Oid			argtypes[2] = {INT4OID, NUMERICOID};
	Datum		values[2];
	int32		months;
	int32		bp;
	Datum		before,
				after;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "months");
	BILLING_REQUIRE_ARG(fcinfo, 1, "percent");
	months = PG_GETARG_INT32(0);
	if (months < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("months must be at least 1")));
	bp = pricing_percent_to_bp(PG_GETARG_NUMERIC(1), "percent");

	values[0] = Int32GetDatum(months);
	values[1] = NumericGetDatum(pricing_bp_to_numeric(bp));

	connect_spi();
	upsert_setting(&plans,
				   "SELECT to_jsonb(m) FROM marketing.months_discounts m "
				   "WHERE m.months = $1 FOR UPDATE",
				   "UPDATE marketing.months_discounts AS m SET percent = $2 "
				   "WHERE m.months = $1 RETURNING to_jsonb(m)",
				   "INSERT INTO marketing.months_discounts AS m (months, percent) VALUES ($1, $2) "
				   "ON CONFLICT (months) DO NOTHING RETURNING to_jsonb(m)",
				   2, argtypes, values, NULL, &before, &after);

	audit_record("set_months_discount", psprintf("months:%d", months), before, after);

	SPI_finish();
	PG_RETURN_DATUM(after);
}

PG_FUNCTION_INFO_V1(billing_remove_months_discount);
Datum
billing_remove_months_discount(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	int32		months;
	Datum		before;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "months");
	months = PG_GETARG_INT32(0);

	connect_spi();
	values[0] = Int32GetDatum(months);
	if (billing_spi_exec(&plan,
						 "DELETE FROM marketing.months_discounts m WHERE m.months = $1 RETURNING to_jsonb(m)",
						 1, argtypes, values, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("there is no months discount for %d months", months)));
	before = result_jsonb(1);

	audit_record("remove_months_discount", psprintf("months:%d", months), before, (Datum) 0);

	SPI_finish();
	PG_RETURN_DATUM(before);
}

/* ---------- promo codes ---------- */

PG_FUNCTION_INFO_V1(billing_create_promo_code);
Datum
billing_create_promo_code(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr tariff_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[7] = {TEXTOID, NUMERICOID, TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT4OID, NAMEOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *code,
			   *tariff;
	int32		bp;
	TimestampTz valid_until;
	Datum		after;
	bool		isnull;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "code");
	BILLING_REQUIRE_ARG(fcinfo, 1, "percent");
	BILLING_REQUIRE_ARG(fcinfo, 2, "valid_until");
	code = text_arg(fcinfo, 0);
	tariff = text_arg(fcinfo, 4);

	check_promo_code(code);
	bp = pricing_percent_to_bp(PG_GETARG_NUMERIC(1), "percent");
	valid_until = PG_GETARG_TIMESTAMPTZ(2);
	check_future(valid_until, "valid_until");
	if (!PG_ARGISNULL(5) && PG_GETARG_TIMESTAMPTZ(5) >= valid_until)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("valid_from must be earlier than valid_until")));
	if (!PG_ARGISNULL(3) && PG_GETARG_INT32(3) < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_redemptions must be at least 1"),
				 errhint("Pass NULL for a code without a limit.")));

	connect_spi();

	values[0] = CStringGetTextDatum(code);
	values[1] = NumericGetDatum(pricing_bp_to_numeric(bp));
	values[2] = TimestampTzGetDatum(valid_until);
	if (PG_ARGISNULL(5))
		nulls[3] = 'n';
	else
		values[3] = PG_GETARG_DATUM(5);
	if (tariff == NULL)
		nulls[4] = 'n';
	else
	{
		Datum		tvalues[1] = {CStringGetTextDatum(tariff)};
		Oid			ttypes[1] = {TEXTOID};

		if (billing_spi_exec(&tariff_plan,
							 "SELECT id FROM marketing.tariffs WHERE code = $1",
							 1, ttypes, tvalues, NULL, false, 1) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("tariff \"%s\" does not exist", billing_echo(tariff))));
		values[4] = billing_spi_get(0, 1, &isnull);
	}
	if (PG_ARGISNULL(3))
		nulls[5] = 'n';
	else
		values[5] = PG_GETARG_DATUM(3);
	values[6] = DirectFunctionCall1(namein, CStringGetDatum(audit_actor()));

	if (billing_spi_exec(&plan,
						 "INSERT INTO marketing.promo_codes AS p "
						 "(code, percent, valid_until, valid_from, tariff_id, max_redemptions, created_by, created_at) "
						 "VALUES ($1, $2, $3, $4, $5, $6, $7, billing.now()) "
						 "ON CONFLICT (lower(code)) WHERE deleted_at IS NULL DO NOTHING "
						 "RETURNING to_jsonb(p)",
						 7, argtypes, values, nulls, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("promo code \"%s\" already exists", billing_echo(code)),
				 errdetail("Promo codes are case-insensitive."),
				 errhint("Delete the existing code first or choose another.")));
	after = result_jsonb(1);

	audit_record("create_promo_code", psprintf("promo:%s", code), (Datum) 0, after);

	SPI_finish();
	PG_RETURN_DATUM(after);
}

PG_FUNCTION_INFO_V1(billing_delete_promo_code);
Datum
billing_delete_promo_code(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Oid			codetypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *code;
	Datum		before,
				after;
	bool		isnull;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "code");
	code = text_arg(fcinfo, 0);

	connect_spi();
	values[0] = CStringGetTextDatum(code);
	if (billing_spi_exec(&lock_plan,
						 "SELECT p.id, to_jsonb(p), p.code FROM marketing.promo_codes p "
						 "WHERE lower(p.code) = lower($1) AND p.deleted_at IS NULL FOR UPDATE",
						 1, codetypes, values, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("promo code \"%s\" does not exist", billing_echo(code))));
	before = result_jsonb(2);
	code = TextDatumGetCString(billing_spi_get(0, 3, &isnull));	/* as stored */

	/* Soft delete: payments that used the code still show it. */
	values[0] = billing_spi_get(0, 1, &isnull);
	billing_spi_exec(&plan,
					 "UPDATE marketing.promo_codes AS p SET deleted_at = billing.now() "
					 "WHERE p.id = $1 RETURNING to_jsonb(p)",
					 1, argtypes, values, NULL, false, 0);
	after = result_jsonb(1);

	audit_record("delete_promo_code", psprintf("promo:%s", code), before, after);

	SPI_finish();
	PG_RETURN_DATUM(after);
}

/* ---------- schema guard ---------- */

/*
 * BEFORE UPDATE trigger on marketing.tariffs: the code is the tariff's
 * permanent public name (URLs, apps, payments' snapshots), so not even a
 * direct UPDATE by the owner may change it.
 */
PG_FUNCTION_INFO_V1(billing_tariff_code_immutable);
Datum
billing_tariff_code_immutable(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	int			attno;
	bool		oldnull,
				newnull;
	Datum		oldcode,
				newcode;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("billing.tariff_code_immutable() must be a row-level UPDATE trigger")));

	desc = RelationGetDescr(trigdata->tg_relation);
	attno = SPI_fnumber(desc, "code");
	if (attno <= 0)
		elog(ERROR, "marketing.tariffs has no column \"code\"");

	oldcode = heap_getattr(trigdata->tg_trigtuple, attno, desc, &oldnull);
	newcode = heap_getattr(trigdata->tg_newtuple, attno, desc, &newnull);
	if (oldnull != newnull ||
		(!oldnull && strcmp(TextDatumGetCString(oldcode), TextDatumGetCString(newcode)) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tariff code \"%s\" cannot be changed", TextDatumGetCString(oldcode)),
				 errhint("Create a new tariff and deactivate this one.")));

	return PointerGetDatum(trigdata->tg_newtuple);
}
