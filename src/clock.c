/*
 * clock.c — billing.now() with its superuser-only test clock, and calendar
 * month arithmetic in the configured billing time zone.  Every rule about
 * time in the extension goes through these two functions.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "access/xact.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "billing.h"
#include "common.h"
#include "clock.h"

static char *test_clock_string = NULL;
static char *time_zone_string = NULL;

/* Parsed forms, kept by the assign hooks (GUC "extra" values). */
static TimestampTz *test_clock_value = NULL;
static pg_tz *billing_tz = NULL;

static bool
check_test_clock(char **newval, void **extra, GucSource source)
{
	TimestampTz ts;
	TimestampTz *result;
	MemoryContext oldcxt = CurrentMemoryContext;

	if (*newval == NULL || (*newval)[0] == '\0')
	{
		*extra = NULL;
		return true;
	}

	/* timestamptz_in reports bad input by ereport; turn that into a GUC check failure. */
	PG_TRY();
	{
		ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
													 CStringGetDatum(*newval),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		GUC_check_errmsg("invalid value for billing.test_clock: \"%s\"", billing_echo(*newval));
		GUC_check_errdetail("It must be a timestamptz, such as 2026-03-01 12:00:00+00.");
		FreeErrorData(edata);
		return false;
	}
	PG_END_TRY();

	if (TIMESTAMP_NOT_FINITE(ts))
	{
		GUC_check_errdetail("The test clock must be a finite time.");
		return false;
	}

	result = (TimestampTz *) malloc(sizeof(TimestampTz));
	if (result == NULL)
		return false;
	*result = ts;
	*extra = result;
	return true;
}

static void
assign_test_clock(const char *newval, void *extra)
{
	test_clock_value = (TimestampTz *) extra;
}

static bool
check_time_zone(char **newval, void **extra, GucSource source)
{
	pg_tz	   *tz = pg_tzset(*newval);

	if (tz == NULL)
	{
		billing_guc_invalid("billing.time_zone", *newval);
		GUC_check_errdetail("Time zone \"%s\" is not recognized.", billing_echo(*newval));
		return false;
	}
	if (!pg_tz_acceptable(tz))
	{
		billing_guc_invalid("billing.time_zone", *newval);
		GUC_check_errdetail("Time zone \"%s\" uses leap seconds.", billing_echo(*newval));
		return false;
	}
	/* pg_tzset results live for the life of the process: no copy needed. */
	*extra = malloc(sizeof(pg_tz *));
	if (*extra == NULL)
		return false;
	*(pg_tz **) *extra = tz;
	return true;
}

static void
assign_time_zone(const char *newval, void *extra)
{
	billing_tz = extra ? *(pg_tz **) extra : NULL;
}

void
clock_define_gucs(void)
{
	DefineCustomStringVariable("billing.test_clock",
							   "Overrides billing.now() for tests (empty: real time).",
							   "Like Stripe test clocks: lets tests move time. Superuser only.",
							   &test_clock_string,
							   "",
							   PGC_SUSET,
							   0,
							   check_test_clock, assign_test_clock, NULL);

	DefineCustomStringVariable("billing.time_zone",
							   "Time zone in which calendar months of subscriptions are counted.",
							   NULL,
							   &time_zone_string,
							   "UTC",
							   PGC_SIGHUP,
							   0,
							   check_time_zone, assign_time_zone, NULL);
}

TimestampTz
billing_now(void)
{
	if (test_clock_value != NULL)
		return *test_clock_value;
	return GetCurrentTransactionStartTimestamp();
}

TimestampTz
billing_add_months(TimestampTz anchor, int months)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	int64		total;
	int64		year;
	int			month0;
	int			mdays;
	TimestampTz result;
	pg_tz	   *zone = billing_tz ? billing_tz : pg_tzset("UTC");

	/*
	 * Zero months is the anchor itself: going through the wall clock and
	 * back could move an instant in an hour that daylight saving repeats.
	 */
	if (TIMESTAMP_NOT_FINITE(anchor) || months == 0)
		return anchor;

	if (timestamp2tm(anchor, &tz, &tm, &fsec, NULL, zone) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));

	/*
	 * Months counted from year 0 (tm_year is astronomical: 0 is 1 BC), in 64
	 * bits, divided with floor semantics: C's truncating / and % would put
	 * a negative count in the wrong year and month.
	 */
	total = (int64) tm.tm_year * MONTHS_PER_YEAR + (tm.tm_mon - 1) + months;
	year = total / MONTHS_PER_YEAR;
	month0 = (int) (total % MONTHS_PER_YEAR);
	if (month0 < 0)
	{
		month0 += MONTHS_PER_YEAR;
		year--;
	}
	if (year < JULIAN_MINYEAR || year > JULIAN_MAXYEAR)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range"),
				 errdetail("%d months from the anchor fall outside the range of timestamptz.",
						   months)));
	tm.tm_year = (int) year;
	tm.tm_mon = month0 + 1;

	/* The anchor's day, or the month's last day when the month is shorter. */
	mdays = day_tab[isleap(tm.tm_year)][tm.tm_mon - 1];
	if (tm.tm_mday > mdays)
		tm.tm_mday = mdays;

	/* The wall-clock time is kept; its UTC offset is the one in force then. */
	tz = DetermineTimeZoneOffset(&tm, zone);
	if (tm2timestamp(&tm, fsec, &tz, &result) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range"),
				 errdetail("%d months from the anchor fall outside the range of timestamptz.",
						   months)));
	return result;
}

PG_FUNCTION_INFO_V1(billing_now_sql);
Datum
billing_now_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(billing_now());
}

PG_FUNCTION_INFO_V1(billing_add_months_sql);
Datum
billing_add_months_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(billing_add_months(PG_GETARG_TIMESTAMPTZ(0),
											 PG_GETARG_INT32(1)));
}
