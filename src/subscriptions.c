/*
 * subscriptions.c — the subscription of a user to a tariff: what a paid and
 * a refunded payment do to its term (calendar months on one anchor), and who
 * has access now (billing.has_access, billing.payment_info).
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
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "autorenew.h"
#include "billing.h"
#include "common.h"
#include "clock.h"
#include "notifications.h"
#include "outbox.h"
#include "subscriptions.h"

/* Settings, in seconds (GUC_UNIT_S: '2d', '36h', '90min' all work). */
static int	grace_period_secs = 2 * SECS_PER_DAY;
static int	reminder_before_secs = 3 * SECS_PER_DAY;

void
subscriptions_define_gucs(void)
{
	DefineCustomIntVariable("billing.grace_period",
							"How long access continues after a subscription's term has ended.",
							"Stored per term when the term is set (by a payment or a refund).",
							&grace_period_secs,
							2 * SECS_PER_DAY, 0, 366 * SECS_PER_DAY,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("billing.reminder_before",
							"How long before the end of a term the reminder is sent (0: no reminders).",
							NULL,
							&reminder_before_secs,
							3 * SECS_PER_DAY, 0, 366 * SECS_PER_DAY,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

int64
subscription_grace_usecs(void)
{
	return (int64) grace_period_secs * USECS_PER_SEC;
}

int64
subscription_reminder_usecs(void)
{
	return (int64) reminder_before_secs * USECS_PER_SEC;
}

TimestampTz
subscription_active_next_check(TimestampTz ends_at, bool reminder_pending)
{
	if (reminder_pending && reminder_before_secs > 0)
		return ends_at - subscription_reminder_usecs();
	return ends_at;
}

int64
subscription_epoch(TimestampTz ts)
{
	int64		secs = ts / USECS_PER_SEC;

	/* floor, not truncation, for times before 2000 */
	if (ts < 0 && ts % USECS_PER_SEC != 0)
		secs--;
	return secs + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

char *
subscription_role_payload(pg_uuid_t *user_id, int64 tariff_id)
{
	return psprintf("{\"user_id\": \"%s\", \"tariff_id\": " INT64_FORMAT "}",
					billing_uuid_str(user_id), tariff_id);
}

bool
subscription_role_message(const char *kind, pg_uuid_t *user_id, int64 tariff_id,
						  const char *idempotency_key)
{
	return outbox_enqueue(kind, subscription_role_payload(user_id, tariff_id),
						  idempotency_key,
						  outbox_ordering_key(user_id, tariff_id));
}

/* The subscription row as the functions below read it (locked). */
typedef struct SubRow
{
	int64		id;
	char		status[8];
	TimestampTz anchor_at;
	int32		months;
	TimestampTz ends_at;
	TimestampTz grace_ends_at;
	bool		next_check_null;
	TimestampTz next_check_at;
	pg_uuid_t	user_id;
	int64		tariff_id;
	char	   *title;			/* copied into the caller's context */
	int32		term;
} SubRow;

#define SUB_COLUMNS \
	"s.id, s.status, s.anchor_at, s.months, s.ends_at, s.grace_ends_at, " \
	"s.next_check_at, s.user_id, s.tariff_id, t.title, s.term "

/* Read row 0 of SPI_tuptable (selected with SUB_COLUMNS) into *r. */
static void
sub_row_from_spi(SubRow *r, MemoryContext cxt)
{
	bool		isnull;
	char	   *status;

	r->id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	status = TextDatumGetCString(billing_spi_get(0, 2, &isnull));
	strlcpy(r->status, status, sizeof(r->status));
	r->anchor_at = DatumGetTimestampTz(billing_spi_get(0, 3, &isnull));
	r->months = DatumGetInt32(billing_spi_get(0, 4, &isnull));
	r->ends_at = DatumGetTimestampTz(billing_spi_get(0, 5, &isnull));
	r->grace_ends_at = DatumGetTimestampTz(billing_spi_get(0, 6, &isnull));
	r->next_check_at = DatumGetTimestampTz(billing_spi_get(0, 7, &r->next_check_null));
	memcpy(&r->user_id, DatumGetUUIDP(billing_spi_get(0, 8, &isnull)), sizeof(pg_uuid_t));
	r->tariff_id = DatumGetInt64(billing_spi_get(0, 9, &isnull));
	r->title = MemoryContextStrdup(cxt, TextDatumGetCString(billing_spi_get(0, 10, &isnull)));
	r->term = DatumGetInt32(billing_spi_get(0, 11, &isnull));
}

static bool
lock_subscription(SubRow *r, pg_uuid_t *user_id, int64 tariff_id, MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, INT8OID};
	Datum		values[2] = {UUIDPGetDatum(user_id), Int64GetDatum(tariff_id)};

	if (billing_spi_exec(&plan,
						 "SELECT " SUB_COLUMNS
						 "FROM billing.subscriptions s "
						 "JOIN marketing.tariffs t ON t.id = s.tariff_id "
						 "WHERE s.user_id = $1 AND s.tariff_id = $2 "
						 "FOR UPDATE OF s",
						 2, argtypes, values, NULL, false, 0) == 0)
		return false;
	sub_row_from_spi(r, cxt);
	return true;
}

static bool
lock_subscription_by_id(SubRow *r, int64 id, MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	if (billing_spi_exec(&plan,
						 "SELECT " SUB_COLUMNS
						 "FROM billing.subscriptions s "
						 "JOIN marketing.tariffs t ON t.id = s.tariff_id "
						 "WHERE s.id = $1 "
						 "FOR UPDATE OF s",
						 1, argtypes, values, NULL, false, 0) == 0)
		return false;
	sub_row_from_spi(r, cxt);
	return true;
}

/* Write the term and state of a locked subscription. */
static void
store_subscription(int64 id, const char *status, TimestampTz anchor_at, int32 months,
				   TimestampTz ends_at, TimestampTz grace_ends_at,
				   bool next_null, TimestampTz next_check_at)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[8] = {INT8OID, TEXTOID, TIMESTAMPTZOID, INT4OID,
							   TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(status);
	values[2] = TimestampTzGetDatum(anchor_at);
	values[3] = Int32GetDatum(months);
	values[4] = TimestampTzGetDatum(ends_at);
	values[5] = TimestampTzGetDatum(grace_ends_at);
	values[6] = TimestampTzGetDatum(next_check_at);
	if (next_null)
		nulls[6] = 'n';
	values[7] = TimestampTzGetDatum(billing_now());

	billing_spi_exec(&plan,
					 "UPDATE billing.subscriptions "
					 "SET status = $2, anchor_at = $3, months = $4, ends_at = $5, "
					 "    grace_ends_at = $6, next_check_at = $7, updated_at = $8 "
					 "WHERE id = $1",
					 8, argtypes, values, nulls, false, 0);
}

/*
 * The messages of a paid payment: grant_role (when the role must be given,
 * with_grant) and notify(subscribed), as $9..$13 of the two statements below.
 */
#define PAID_MESSAGES \
	"(VALUES ('grant_role', $9, $10), ('notify', $11, $12)) AS m(kind, payload, key) " \
	"WHERE m.kind = 'notify' OR $13 "

/*
 * $2..$13 of the two statements below: the new term ($2..$6), the time of
 * the change ($7) and the paid messages ($8 ordering key, $9..$13).  $1 is
 * the caller's.
 */
static void
paid_values(Datum *values, TimestampTz anchor_at, int32 months, TimestampTz ends_at,
			TimestampTz grace_ends_at, TimestampTz next_check_at,
			pg_uuid_t *payment_id, pg_uuid_t *user_id, int64 tariff_id,
			const char *title, bool with_grant)
{
	char	   *pid = billing_uuid_str(payment_id);

	values[1] = TimestampTzGetDatum(anchor_at);
	values[2] = Int32GetDatum(months);
	values[3] = TimestampTzGetDatum(ends_at);
	values[4] = TimestampTzGetDatum(grace_ends_at);
	values[5] = TimestampTzGetDatum(next_check_at);
	values[6] = TimestampTzGetDatum(billing_now());
	values[7] = CStringGetTextDatum(outbox_ordering_key(user_id, tariff_id));
	values[8] = CStringGetTextDatum(subscription_role_payload(user_id, tariff_id));
	values[9] = CStringGetTextDatum(psprintf("payment:%s:grant", pid));
	values[10] = CStringGetTextDatum(notification_payload(TEMPLATE_SUBSCRIBED, user_id,
														  tariff_id, title, ends_at));
	values[11] = CStringGetTextDatum(psprintf("payment:%s:subscribed", pid));
	values[12] = BoolGetDatum(with_grant);
}

static Oid	paid_argtypes[13] = {INT8OID, TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID,
								 TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID,
								 TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID};

/*
 * Extend a locked subscription to a new active term and queue its messages,
 * in one statement: a paid settle runs this on every renewal, and each
 * statement of its own would cost an executor start-up.
 */
static void
renew_subscription(int64 id, int32 term, TimestampTz anchor_at, int32 months,
				   TimestampTz ends_at, TimestampTz grace_ends_at,
				   TimestampTz next_check_at, pg_uuid_t *payment_id,
				   pg_uuid_t *user_id, int64 tariff_id, const char *title,
				   bool with_grant)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[15];
	Datum		values[15];
	bool		isnull;

	memcpy(argtypes, paid_argtypes, sizeof(paid_argtypes));
	argtypes[13] = INT4OID;
	values[13] = Int32GetDatum(term);
	argtypes[14] = TIMESTAMPTZOID;
	values[14] = TimestampTzGetDatum(autorenew_first_charge(ends_at));
	values[0] = Int64GetDatum(id);
	paid_values(values, anchor_at, months, ends_at, grace_ends_at, next_check_at,
				payment_id, user_id, tariff_id, title, with_grant);

	if (billing_spi_exec(&plan,
						 "WITH s AS ("
						 " UPDATE billing.subscriptions"
						 " SET status = 'active', anchor_at = $2, months = $3, ends_at = $4,"
						 "     grace_ends_at = $5, next_check_at = $6, updated_at = $7, term = $14,"
						 "     renew_at = CASE WHEN auto_renew THEN $15 END, renew_failures = 0"
						 " WHERE id = $1 RETURNING id), "
						 "o AS ("
						 OUTBOX_INSERT_SELECT("SELECT m.kind, m.payload::jsonb, m.key, $8 FROM s, " PAID_MESSAGES)
						 " RETURNING 1) "
						 "SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM o)",
						 15, argtypes, values, NULL, false, 0) != 1 ||
		DatumGetInt64(billing_spi_get(0, 1, &isnull)) != 1)
		elog(ERROR, "subscription " INT64_FORMAT " vanished under its row lock", id);
	if (DatumGetInt64(billing_spi_get(0, 2, &isnull)) > 0)
		outbox_wake_at_commit();
}

/*
 * Insert the first subscription of a user for a tariff and queue its
 * messages, in one statement.  Returns 0 (and queues nothing) when a
 * concurrent transaction inserted it first (the caller then locks that row).
 */
static int64
insert_subscription(pg_uuid_t *user_id, int64 tariff_id, TimestampTz anchor_at,
					int32 months, TimestampTz ends_at, TimestampTz grace_ends_at,
					TimestampTz next_check_at, pg_uuid_t *payment_id, const char *title)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[14];
	Datum		values[14];
	bool		isnull;
	int64		id;

	memcpy(argtypes, paid_argtypes, sizeof(paid_argtypes));
	argtypes[13] = UUIDOID;
	values[13] = UUIDPGetDatum(user_id);
	values[0] = Int64GetDatum(tariff_id);
	paid_values(values, anchor_at, months, ends_at, grace_ends_at, next_check_at,
				payment_id, user_id, tariff_id, title, true);

	if (billing_spi_exec(&plan,
						 "WITH s AS ("
						 " INSERT INTO billing.subscriptions AS s"
						 "  (user_id, tariff_id, status, anchor_at, months, ends_at,"
						 "   grace_ends_at, next_check_at, created_at, updated_at)"
						 " VALUES ($14, $1, 'active', $2, $3, $4,"
						 "   $5, $6, $7, $7)"
						 " ON CONFLICT (user_id, tariff_id) DO NOTHING"
						 " RETURNING s.id), "
						 "o AS ("
						 OUTBOX_INSERT_SELECT("SELECT m.kind, m.payload::jsonb, m.key, $8 FROM s, " PAID_MESSAGES)
						 " RETURNING 1) "
						 "SELECT s.id, (SELECT count(*) FROM o) FROM s",
						 14, argtypes, values, NULL, false, 0) == 0)
		return 0;
	id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	if (DatumGetInt64(billing_spi_get(0, 2, &isnull)) > 0)
		outbox_wake_at_commit();
	return id;
}

static char *
tariff_title(int64 tariff_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(tariff_id)};
	bool		isnull;

	if (billing_spi_exec(&plan,
						 "SELECT title FROM marketing.tariffs WHERE id = $1",
						 1, argtypes, values, NULL, true, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("tariff " INT64_FORMAT " does not exist", tariff_id)));
	return TextDatumGetCString(billing_spi_get(0, 1, &isnull));
}

int64
subscription_apply_payment(pg_uuid_t *payment_id, pg_uuid_t *user_id,
						   int64 tariff_id, int32 months, TimestampTz paid_at,
						   int32 *term)
{
	MemoryContext cxt = CurrentMemoryContext;
	SubRow		r;
	char	   *title;
	int64		id;
	bool		new_term;
	TimestampTz anchor_at;
	int32		total_months;
	TimestampTz ends_at;
	TimestampTz grace_ends_at;

	if (months < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("months must be at least 1, not %d", months)));
	if (TIMESTAMP_NOT_FINITE(paid_at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the payment time must be finite")));

	SPI_connect();

	if (!lock_subscription(&r, user_id, tariff_id, cxt))
	{
		/* The first purchase of this tariff: a term anchored at paid_at. */
		ends_at = billing_add_months(paid_at, months);
		grace_ends_at = ends_at + subscription_grace_usecs();
		title = tariff_title(tariff_id);
		id = insert_subscription(user_id, tariff_id, paid_at, months, ends_at,
								 grace_ends_at,
								 subscription_active_next_check(ends_at, true),
								 payment_id, title);
		if (id != 0)
		{
			SPI_finish();
			*term = 1;
			return id;
		}

		/*
		 * A concurrent first purchase committed the row between our look and
		 * our insert (ON CONFLICT waited for it); lock it and extend it.
		 */
		if (!lock_subscription(&r, user_id, tariff_id, cxt))
			elog(ERROR, "subscription of the user for tariff " INT64_FORMAT " vanished",
				 tariff_id);
	}

	/*
	 * Judge the state at the payment's time, not only by the stored status:
	 * the sweep may not have run yet.  Blocked, or past its grace when the
	 * money came: a new term from paid_at.  Active or in grace: the months go
	 * onto the same anchor, so the term goes on from its current end.
	 */
	new_term = strcmp(r.status, "blocked") == 0 || paid_at >= r.grace_ends_at;
	if (new_term)
	{
		anchor_at = paid_at;
		total_months = months;
		if (pg_add_s32_overflow(r.term, 1, term))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("subscription has too many terms")));
	}
	else
	{
		anchor_at = r.anchor_at;
		*term = r.term;
		if (pg_add_s32_overflow(r.months, months, &total_months))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("subscription term is too long")));
	}
	ends_at = billing_add_months(anchor_at, total_months);
	grace_ends_at = ends_at + subscription_grace_usecs();

	/*
	 * In grace the role is still held; a lapsed term (blocked, or its grace
	 * over before the sweep came) gets the role again.  A grant the auth
	 * service already applied is harmless: grants are idempotent there.
	 */
	renew_subscription(r.id, *term, anchor_at, total_months, ends_at, grace_ends_at,
					   subscription_active_next_check(ends_at, true),
					   payment_id, user_id, tariff_id, r.title, new_term);

	SPI_finish();
	return r.id;
}

void
subscription_refund_payment(pg_uuid_t *payment_id, int64 subscription_id, int32 months)
{
	static SPIPlanPtr payment_plan = NULL;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(payment_id)};
	SubRow		r;
	char	   *pid;
	bool		isnull;
	bool		sub_isnull;
	bool		term_isnull;
	int32		term;
	TimestampTz now = billing_now();
	TimestampTz end_payment;

	if (months < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("months must be at least 1, not %d", months)));

	SPI_connect();
	pid = billing_uuid_str(payment_id);

	if (!lock_subscription_by_id(&r, subscription_id, cxt))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("subscription " INT64_FORMAT " does not exist", subscription_id)));

	if (billing_spi_exec(&payment_plan,
						 "SELECT paid_at, subscription_id, subscription_term "
						 "FROM billing.payments WHERE id = $1",
						 1, argtypes, values, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("payment %s does not exist", pid)));
	(void) billing_spi_get(0, 1, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment %s was never paid", pid)));
	if (DatumGetInt64(billing_spi_get(0, 2, &sub_isnull)) != subscription_id && !sub_isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payment %s does not belong to subscription " INT64_FORMAT,
						pid, subscription_id)));
	term = DatumGetInt32(billing_spi_get(0, 3, &term_isnull));
	if (sub_isnull || term_isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment %s was never applied to a subscription", pid)));

	if (term != r.term)
	{
		/*
		 * Its months counted in an earlier term, which has ended (the
		 * subscription was blocked and started again since): the refund
		 * takes nothing off the present one.
		 */
		end_payment = strcmp(r.status, "blocked") == 0 ? r.grace_ends_at : r.ends_at;
	}
	else
	{
		/*
		 * The term's months are exactly those of its paid, unrefunded
		 * payments, so this payment's months are in them whatever order the
		 * payments were settled in.
		 */
		int32		left = r.months - months;
		TimestampTz ends_at;

		if (left < 0)
			elog(ERROR, "subscription " INT64_FORMAT " holds %d months, fewer than payment %s bought",
				 r.id, r.months, pid);

		/*
		 * No paid month left: the term is empty, whatever the calendar of
		 * the time zone says about anchor + 0 months (a repeated hour).
		 */
		ends_at = left == 0 ? r.anchor_at : billing_add_months(r.anchor_at, left);

		if (left == 0 || ends_at <= now || strcmp(r.status, "blocked") == 0)
		{
			/*
			 * Nothing paid is left now: access ends at once, no grace for
			 * refunded time.  A subscription blocked already had its role
			 * revoked.
			 */
			store_subscription(r.id, "blocked", r.anchor_at, left, ends_at,
							   ends_at, true, 0);
			if (strcmp(r.status, "blocked") != 0)
			{
				subscription_role_message("revoke_role", &r.user_id, r.tariff_id,
										  psprintf("payment:%s:revoke", pid));
				end_payment = now;
			}
			else
				end_payment = Min(r.grace_ends_at, now);
		}
		else
		{
			/* Still paid until ends_at: a shorter active term, its own reminder. */
			store_subscription(r.id, "active", r.anchor_at, left, ends_at,
							   ends_at + subscription_grace_usecs(), false,
							   subscription_active_next_check(ends_at, true));
			end_payment = ends_at;
		}
	}

	/*
	 * A buyer who takes money back is not charged again by himself: any
	 * refund of the subscription switches its auto-renewal off.
	 */
	autorenew_switch_off(r.id, "refunded");

	notification_enqueue(TEMPLATE_REFUNDED, &r.user_id, r.tariff_id, r.title,
						 end_payment, psprintf("payment:%s:refunded", pid));
	SPI_finish();
}

/*
 * billing.has_access(user_id uuid, tariff text) → boolean: true while the
 * subscription is active or in grace, judged at billing.now() from the
 * stored term, so the answer is right before the sweep has run.
 */
PG_FUNCTION_INFO_V1(billing_has_access);
Datum
billing_has_access(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	bool		result = false;

	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "tariff");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);

	SPI_connect();
	if (billing_spi_exec(&plan,
						 "SELECT s.status, s.grace_ends_at "
						 "FROM marketing.tariffs t "
						 "LEFT JOIN billing.subscriptions s "
						 "  ON s.tariff_id = t.id AND s.user_id = $1 "
						 "WHERE t.code = $2",
						 2, argtypes, values, NULL, true, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("tariff \"%s\" does not exist", billing_echo(text_to_cstring(PG_GETARG_TEXT_PP(1))))));

	{
		Datum		status = billing_spi_get(0, 1, &isnull);

		if (!isnull)
		{
			TimestampTz grace_ends_at = DatumGetTimestampTz(billing_spi_get(0, 2, &isnull));

			/* grace_ends_at >= ends_at, so this covers active and grace. */
			result = strcmp(TextDatumGetCString(status), "blocked") != 0 &&
				billing_now() < grace_ends_at;
		}
	}
	SPI_finish();
	PG_RETURN_BOOL(result);
}

/*
 * billing.payment_info(user_id uuid) → jsonb: the user's subscriptions (state
 * judged at billing.now(), term end, grace end) and payments, newest first.
 */
PG_FUNCTION_INFO_V1(billing_payment_info);
Datum
billing_payment_info(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	Jsonb	   *result;

	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = TimestampTzGetDatum(billing_now());

	SPI_connect();
	billing_spi_exec(&plan,
					 "SELECT jsonb_build_object("
					 " 'user_id', $1,"
					 " 'at', $2,"
					 " 'subscriptions', COALESCE((SELECT jsonb_agg(jsonb_build_object("
					 "    'subscription_id', s.id,"
					 "    'tariff', t.code,"
					 "    'tariff_title', t.title,"
					 "    'status', CASE WHEN s.status = 'blocked' OR $2 >= s.grace_ends_at THEN 'blocked'"
					 "                   WHEN $2 >= s.ends_at THEN 'grace' ELSE 'active' END,"
					 "    'has_access', s.status <> 'blocked' AND $2 < s.grace_ends_at,"
					 "    'term_started_at', s.anchor_at,"
					 "    'months', s.months,"
					 "    'ends_at', s.ends_at,"
					 "    'grace_ends_at', s.grace_ends_at,"
					 "    'auto_renew', s.auto_renew,"
					 "    'auto_renew_reason', s.auto_renew_reason,"
					 "    'renew_months', s.renew_months,"
					 "    'next_charge_at', s.renew_at,"
					 "    'next_charge_total', CASE WHEN s.auto_renew AND t.active"
					 "         AND s.renew_months <= current_setting('billing.max_months')::int"
					 "         THEN billing.quote(s.user_id, t.code, s.renew_months)->'total' END,"
					 "    'currency', t.currency,"
					 "    'card_brand', s.card_brand,"
					 "    'card_last4', s.card_last4) ORDER BY t.code)"
					 "   FROM billing.subscriptions s"
					 "   JOIN marketing.tariffs t ON t.id = s.tariff_id"
					 "   WHERE s.user_id = $1), '[]'::jsonb),"
					 " 'payments', COALESCE((SELECT jsonb_agg(jsonb_build_object("
					 "    'payment_id', p.id,"
					 "    'tariff', p.tariff_code,"
					 "    'tariff_title', p.tariff_title,"
					 "    'months', p.months,"
					 "    'list_price', p.list_price,"
					 "    'applied', p.applied,"
					 "    'promo_code', p.promo_code,"
					 "    'total', p.total,"
					 "    'currency', p.currency,"
					 "    'status', p.status,"
					 "    'created_at', p.created_at,"
					 "    'paid_at', p.paid_at,"
					 "    'closed_at', p.closed_at,"
					 "    'subscription_id', p.subscription_id,"
					 "    'renewal', p.renewal_of IS NOT NULL,"
					 "    'renewal_attempt', p.renewal_attempt,"
					 "    'action_url', CASE WHEN p.renewal_of IS NOT NULL AND p.status = 'pending'"
					 "                       THEN p.provider_url END) ORDER BY p.created_at DESC, p.id)"
					 "   FROM billing.payments p WHERE p.user_id = $1), '[]'::jsonb))",
					 2, argtypes, values, NULL, true, 0);
	/* into the caller's context: SPI_finish frees the SPI one */
	result = DatumGetJsonbP(SPI_datumTransfer(billing_spi_get(0, 1, &isnull), false, -1));
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}

/*
 * Test paths: not installed by the extension script.  A regression test (as
 * superuser, the only one who may create a C function) declares them to
 * drive the two entry points above without the payment state machine.
 */
PG_FUNCTION_INFO_V1(billing_test_apply_payment);
Datum
billing_test_apply_payment(PG_FUNCTION_ARGS)
{
	int32		term;

	PG_RETURN_INT64(subscription_apply_payment(PG_GETARG_UUID_P(0), PG_GETARG_UUID_P(1),
											   PG_GETARG_INT64(2), PG_GETARG_INT32(3),
											   PG_GETARG_TIMESTAMPTZ(4), &term));
}

PG_FUNCTION_INFO_V1(billing_test_refund_payment);
Datum
billing_test_refund_payment(PG_FUNCTION_ARGS)
{
	subscription_refund_payment(PG_GETARG_UUID_P(0), PG_GETARG_INT64(1), PG_GETARG_INT32(2));
	PG_RETURN_VOID();
}
