/*
 * autorenew.c — a subscription's auto-renewal: its settings, the buyer's
 * switch (billing.set_auto_renew), and what the outcome of an automatic
 * charge does to it: a decline is retried on the billing.renewal_retry_delays
 * schedule while the grace period lasts, and auto-renewal stops (with its
 * reason) when no retry is left or only the buyer can mend it.  The charges
 * themselves are made by renewal_job.c.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "autorenew.h"
#include "billing.h"
#include "common.h"
#include "clock.h"
#include "notifications.h"
#include "outbox.h"

int			autorenew_lead = SECS_PER_DAY;
int			autorenew_batch = 500;
static char *renewal_schedule = NULL;
static char *retry_delays_setting = NULL;

/* billing.renewal_retry_delays, parsed (the GUC "extra", malloc'd). */
#define MAX_RETRIES 16
typedef struct RetryDelays
{
	int			count;
	int64		secs[MAX_RETRIES];
} RetryDelays;

static RetryDelays *retry_delays = NULL;

/* "N unit" with unit second(s)/minute(s)/hour(s)/day(s) (or s, min, h, d). */
static bool
parse_delay(const char *s, int len, int64 *secs)
{
	int64		n = 0;
	int			i = 0;
	char		unit[16];
	int			u = 0;
	static const struct
	{
		const char *name;
		int64		secs;
	}			units[] = {
		{"s", 1}, {"second", 1}, {"seconds", 1},
		{"min", 60}, {"minute", 60}, {"minutes", 60},
		{"h", 3600}, {"hour", 3600}, {"hours", 3600},
		{"d", 86400}, {"day", 86400}, {"days", 86400},
	};

	while (i < len && s[i] == ' ')
		i++;
	if (i == len || s[i] < '0' || s[i] > '9')
		return false;
	while (i < len && s[i] >= '0' && s[i] <= '9')
	{
		n = n * 10 + (s[i++] - '0');
		if (n > 366 * 86400)
			return false;
	}
	while (i < len && s[i] == ' ')
		i++;
	while (i < len && s[i] != ' ' && u < (int) sizeof(unit) - 1)
		unit[u++] = s[i++];
	unit[u] = '\0';
	while (i < len && s[i] == ' ')
		i++;
	if (i != len || n == 0)
		return false;
	for (int k = 0; k < (int) lengthof(units); k++)
		if (strcmp(unit, units[k].name) == 0)
		{
			*secs = n * units[k].secs;
			return *secs <= 366 * 86400;
		}
	return false;
}

static bool
check_retry_delays(char **newval, void **extra, GucSource source)
{
	const char *s = *newval ? *newval : "";
	RetryDelays *d = (RetryDelays *) malloc(sizeof(RetryDelays));

	if (d == NULL)
		return false;
	d->count = 0;
	while (*s)
	{
		const char *end = strchr(s, ',');
		int			len = end ? (int) (end - s) : (int) strlen(s);
		bool		blank = strspn(s, " ") >= (size_t) len;

		if (blank && end == NULL && d->count == 0)
			break;				/* an empty setting: no retries */
		if (d->count == MAX_RETRIES || !parse_delay(s, len, &d->secs[d->count]))
		{
			free(d);
			billing_guc_invalid("billing.renewal_retry_delays", *newval);
			GUC_check_errdetail("A list of up to %d delays such as \"1 day, 2 days\" (units: seconds, minutes, hours, days), each more than 0 and at most 366 days.",
								MAX_RETRIES);
			return false;
		}
		d->count++;
		s += len + (end ? 1 : 0);
	}
	*extra = d;
	return true;
}

static void
assign_retry_delays(const char *newval, void *extra)
{
	retry_delays = (RetryDelays *) extra;
}

void
autorenew_define_gucs(void)
{
	/* Business rules about charging people's cards: superuser only. */
	DefineCustomIntVariable("billing.renewal_lead",
							"How long before the end of a term the automatic charge is made.",
							"A charge that needs retrying has until the end of the grace period.",
							&autorenew_lead,
							SECS_PER_DAY, 0, 30 * SECS_PER_DAY,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomStringVariable("billing.renewal_retry_delays",
							   "When a declined automatic charge is tried again: the wait after each failed attempt.",
							   "Comma-separated, such as \"1 day, 1 day\"; a retry that would fall at or after the end of the grace period is not made.  Empty: no retries.",
							   &retry_delays_setting, "1 day, 1 day",
							   PGC_SUSET, 0,
							   check_retry_delays, assign_retry_delays, NULL);

	DefineCustomIntVariable("billing.renewal_batch",
							"Most subscriptions one run of billing.run_renewals charges.",
							NULL,
							&autorenew_batch,
							500, 1, 100000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("billing.renewal_schedule",
							   "pg_cron schedule of billing.run_renewals() (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.",
							   &renewal_schedule,
							   "*/10 * * * *",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}

TimestampTz
autorenew_first_charge(TimestampTz ends_at)
{
	return ends_at - (int64) autorenew_lead * USECS_PER_SEC;
}

void
autorenew_enable_from_payment(const PaymentInfo *p, int64 subscription_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {UUIDOID, INT8OID, INT4OID};
	Datum		values[3] = {UUIDPGetDatum(&p->id), Int64GetDatum(subscription_id),
							 Int32GetDatum(autorenew_lead)};

	SPI_connect();
	if (billing_spi_exec(&plan,
						 "UPDATE billing.subscriptions s SET"
						 "  auto_renew = true, renew_months = p.months, renew_provider = p.provider,"
						 "  renew_customer = p.provider_customer, renew_method = p.provider_method,"
						 "  card_brand = p.card_brand, card_last4 = p.card_last4,"
						 "  renew_failures = 0, renew_at = s.ends_at - make_interval(secs => $3),"
						 "  auto_renew_reason = 'checkout', auto_renew_changed_at = billing.now(),"
						 "  updated_at = billing.now() "
						 "FROM billing.payments p "
						 "WHERE p.id = $1 AND s.id = $2 AND p.provider IS NOT NULL"
						 "  AND p.provider_customer IS NOT NULL",
						 3, types, values, NULL, false, 0) == 0)
		ereport(WARNING,
				(errmsg("payment %s asked to renew automatically, but its provider reported no customer",
						billing_uuid_str(&p->id)),
				 errdetail("The subscription was extended; it does not renew by itself."),
				 errhint("The buyer can check out again with auto_renew.")));
	SPI_finish();
}

void
autorenew_method_reported(const PaymentInfo *p)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(&p->id)};

	/* Only a subscription that renews under this customer, with this method or none known. */
	SPI_connect();
	billing_spi_exec(&plan,
					 "UPDATE billing.subscriptions s SET"
					 "  renew_method = COALESCE(p.provider_method, s.renew_method),"
					 "  card_brand = COALESCE(p.card_brand, s.card_brand),"
					 "  card_last4 = COALESCE(p.card_last4, s.card_last4) "
					 "FROM billing.payments p "
					 "WHERE p.id = $1 AND s.user_id = p.user_id AND s.tariff_id = p.tariff_id"
					 "  AND s.auto_renew AND s.renew_provider = p.provider"
					 "  AND s.renew_customer = p.provider_customer"
					 "  AND (s.renew_method IS NULL OR s.renew_method = p.provider_method)"
					 "  AND (s.renew_method IS DISTINCT FROM p.provider_method"
					 "       OR s.card_last4 IS DISTINCT FROM COALESCE(p.card_last4, s.card_last4))",
					 1, types, values, NULL, false, 0);
	SPI_finish();
}

/* The subscription an automatic charge renews, locked. */
typedef struct RenewedSub
{
	int64		id;
	bool		auto_renew;
	int32		failures;
	TimestampTz ends_at;
	TimestampTz grace_ends_at;
	char	   *title;
} RenewedSub;

static bool
lock_renewed(RenewedSub *s, const PaymentInfo *p)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, INT8OID};
	Datum		values[2] = {UUIDPGetDatum(&p->user_id), Int64GetDatum(p->tariff_id)};
	bool		isnull;

	if (billing_spi_exec(&plan,
						 "SELECT s.id, s.auto_renew, s.renew_failures, s.ends_at, s.grace_ends_at, t.title "
						 "FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id "
						 "WHERE s.user_id = $1 AND s.tariff_id = $2 FOR UPDATE OF s",
						 2, types, values, NULL, false, 0) == 0)
		return false;
	s->id = DatumGetInt64(billing_spi_get(0, 1, &isnull));
	s->auto_renew = DatumGetBool(billing_spi_get(0, 2, &isnull));
	s->failures = DatumGetInt32(billing_spi_get(0, 3, &isnull));
	s->ends_at = DatumGetTimestampTz(billing_spi_get(0, 4, &isnull));
	s->grace_ends_at = DatumGetTimestampTz(billing_spi_get(0, 5, &isnull));
	s->title = billing_spi_text(0, 6);
	return true;
}

static void
notify_charge(NotificationTemplate t, const PaymentInfo *p, const RenewedSub *s,
			  const TimestampTz *charge_at, const char *url, const char *event)
{
	NotificationCharge c = {0};

	c.amount = p->total;
	c.currency = p->currency;
	c.has_charge_at = charge_at != NULL;
	c.charge_at = charge_at ? *charge_at : 0;
	c.action_url = url;
	outbox_enqueue("notify",
				   notification_charge_payload(t, &p->user_id, p->tariff_id, s->title,
											   s->ends_at, &c),
				   psprintf("payment:%s:%s", billing_uuid_str(&p->id), event),
				   outbox_ordering_key(&p->user_id, p->tariff_id));
}

void
autorenew_charge_closed(const PaymentInfo *p, PaymentStatus outcome)
{
	static SPIPlanPtr retry_plan = NULL;
	RenewedSub	s;
	TimestampTz now = billing_now();
	bool		retry;
	TimestampTz next = 0;
	int32		failures;

	SPI_connect();

	/*
	 * Nothing to do when the term has moved on (the buyer paid by hand, the
	 * charge was for an older end) or auto-renewal is off already (the
	 * buyer switched it off, so the job canceled the charge).
	 */
	if (!lock_renewed(&s, p) || s.ends_at != p->renewal_of || !s.auto_renew)
	{
		SPI_finish();
		return;
	}

	failures = s.failures + 1;
	retry = outcome == PAYMENT_FAILED && p->stop_reason == NULL && retry_delays &&
		failures <= retry_delays->count;
	if (retry)
	{
		next = now + retry_delays->secs[failures - 1] * USECS_PER_SEC;
		/* A retry is only worth making while access lasts. */
		retry = next < s.grace_ends_at;
	}

	{
		Oid			types[5] = {INT8OID, INT4OID, TIMESTAMPTZOID, BOOLOID, TEXTOID};
		Datum		values[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
		const char *reason = outcome != PAYMENT_FAILED ? "not_completed" :
			p->stop_reason ? p->stop_reason : "charge_failed";

		values[0] = Int64GetDatum(s.id);
		values[1] = Int32GetDatum(failures);
		values[2] = TimestampTzGetDatum(next);
		if (!retry)
			nulls[2] = 'n';
		values[3] = BoolGetDatum(retry);
		values[4] = CStringGetTextDatum(reason);
		billing_spi_exec(&retry_plan,
						 "UPDATE billing.subscriptions SET renew_failures = $2, renew_at = $3,"
						 "  auto_renew = $4,"
						 "  auto_renew_reason = CASE WHEN $4 THEN auto_renew_reason ELSE $5 END,"
						 "  auto_renew_changed_at = CASE WHEN $4 THEN auto_renew_changed_at ELSE billing.now() END,"
						 "  updated_at = billing.now() "
						 "WHERE id = $1",
						 5, types, values, nulls, false, 0);
	}

	/* Payment failed, update your card: when it is tried again, if it is. */
	notify_charge(TEMPLATE_RENEWAL_FAILED, p, &s, retry ? &next : NULL, NULL, "renewal_failed");
	SPI_finish();
}

void
autorenew_needs_buyer(const PaymentInfo *p, const char *url)
{
	RenewedSub	s;

	/*
	 * No retry is scheduled (renew_at stays empty while this charge is
	 * open): the buyer completes this very payment, or its expiry at the end
	 * of the grace period closes it as not completed.
	 */
	SPI_connect();
	if (lock_renewed(&s, p))
		notify_charge(TEMPLATE_RENEWAL_ACTION, p, &s, NULL, url, "renewal_action");
	SPI_finish();
}

void
autorenew_switch_off(int64 subscription_id, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(subscription_id), CStringGetTextDatum(reason)};

	SPI_connect();
	billing_spi_exec(&plan,
					 "UPDATE billing.subscriptions SET auto_renew = false, renew_at = NULL,"
					 "  auto_renew_reason = $2, auto_renew_changed_at = billing.now() "
					 "WHERE id = $1 AND auto_renew",
					 2, types, values, NULL, false, 0);
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * billing.set_auto_renew
 * --------------------------------------------------------------------- */

/*
 * Switch on: the subscription must be running (not blocked, its grace not
 * over), have a saved method, and its tariff be on sale.  The next charge is
 * due billing.renewal_lead before the end, or at the next run when that time
 * has passed; while an automatic charge of this end is open, that charge
 * goes on and nothing new is scheduled.
 */
#define SET_ON_SQL \
	"UPDATE billing.subscriptions s SET auto_renew = true," \
	"  renew_at = CASE WHEN EXISTS (SELECT FROM billing.payments p" \
	"                    WHERE p.user_id = s.user_id AND p.tariff_id = s.tariff_id" \
	"                      AND p.renewal_of = s.ends_at AND p.status IN ('invoiced', 'pending'))" \
	"             THEN NULL ELSE greatest(s.ends_at - make_interval(secs => $2), $3) END," \
	"  auto_renew_reason = $4, auto_renew_changed_at = $3, updated_at = $3 " \
	"WHERE s.id = $1 AND NOT s.auto_renew"

#define SET_OFF_SQL \
	"UPDATE billing.subscriptions s SET auto_renew = false, renew_at = NULL," \
	"  auto_renew_reason = $4, auto_renew_changed_at = $3, updated_at = $3 " \
	"WHERE s.id = $1 AND s.auto_renew"

PG_FUNCTION_INFO_V1(billing_set_auto_renew);
Datum
billing_set_auto_renew(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr on_plan = NULL;
	static SPIPlanPtr off_plan = NULL;
	static SPIPlanPtr state_plan = NULL;
	Oid			types[4] = {INT8OID, INT4OID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[4];
	Oid			lock_types[2] = {UUIDOID, TEXTOID};
	Datum		lock_values[2];
	bool		enabled;
	const char *reason;
	bool		isnull;
	int64		id;
	TimestampTz now = billing_now();
	char	   *tariff;
	Jsonb	   *result;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "tariff");
	BILLING_REQUIRE_ARG(fcinfo, 2, "enabled");
	enabled = PG_GETARG_BOOL(2);
	tariff = text_to_cstring(PG_GETARG_TEXT_PP(1));
	reason = (PG_NARGS() > 3 && !PG_ARGISNULL(3)) ? text_to_cstring(PG_GETARG_TEXT_PP(3)) : "buyer";
	if (strcmp(reason, "buyer") != 0 && strcmp(reason, "admin") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid auto-renewal source \"%s\"", billing_echo(reason)),
				 errhint("Use buyer or admin.")));

	SPI_connect();
	lock_values[0] = PG_GETARG_DATUM(0);
	lock_values[1] = CStringGetTextDatum(tariff);
	if (billing_spi_exec(&lock_plan,
						 "SELECT s.id, s.status, s.grace_ends_at, s.renew_customer, t.active "
						 "FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id "
						 "WHERE s.user_id = $1 AND t.code = $2 FOR UPDATE OF s",
						 2, lock_types, lock_values, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no subscription to tariff \"%s\"", billing_echo(tariff)),
				 errhint("Auto-renewal is chosen at checkout: billing.checkout(…, auto_renew => true).")));
	id = DatumGetInt64(billing_spi_get(0, 1, &isnull));

	if (enabled)
	{
		char	   *status = billing_spi_text(0, 2);
		TimestampTz grace_ends_at = DatumGetTimestampTz(billing_spi_get(0, 3, &isnull));
		bool		no_customer;
		bool		active;

		(void) billing_spi_get(0, 4, &no_customer);
		active = DatumGetBool(billing_spi_get(0, 5, &isnull));
		if (strcmp(status, "blocked") == 0 || now >= grace_ends_at)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("subscription to tariff \"%s\" has ended", billing_echo(tariff)),
					 errhint("Buy it again with auto_renew => true at checkout.")));
		if (no_customer)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("no saved payment method for tariff \"%s\"", billing_echo(tariff)),
					 errhint("Pay once with auto_renew => true at checkout; the provider then keeps the card.")));
		if (!active)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("tariff \"%s\" is not on sale", billing_echo(tariff)),
					 errdetail("A tariff taken off sale is not renewed.")));
	}

	values[0] = Int64GetDatum(id);
	values[1] = Int32GetDatum(autorenew_lead);
	values[2] = TimestampTzGetDatum(now);
	values[3] = CStringGetTextDatum(reason);
	billing_spi_exec(enabled ? &on_plan : &off_plan, enabled ? SET_ON_SQL : SET_OFF_SQL,
					 4, types, values, NULL, false, 0);

	billing_spi_exec(&state_plan,
					 "SELECT jsonb_build_object('subscription_id', s.id, 'tariff', t.code,"
					 "  'auto_renew', s.auto_renew, 'reason', s.auto_renew_reason,"
					 "  'next_charge_at', s.renew_at, 'ends_at', s.ends_at,"
					 "  'renew_months', s.renew_months,"
					 "  'card_brand', s.card_brand, 'card_last4', s.card_last4) "
					 "FROM billing.subscriptions s JOIN marketing.tariffs t ON t.id = s.tariff_id "
					 "WHERE s.id = $1",
					 1, types, values, NULL, false, 0);
	result = DatumGetJsonbP(SPI_datumTransfer(billing_spi_get(0, 1, &isnull), false, -1));
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}
