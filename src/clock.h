/*
 * clock.h — the one clock and the one calendar of the billing engine.
 */
#ifndef BILLING_CLOCK_H
#define BILLING_CLOCK_H

#include "postgres.h"
#include "utils/timestamp.h"

/* billing.now(): the test clock when set, else the transaction start time. */
extern TimestampTz billing_now(void);

/*
 * anchor + months calendar months in the billing time zone, the day of the
 * month clamped to the month's last day (Stripe's billing-cycle anchor):
 * Jan 31 + 1 = Feb 28/29, Jan 31 + 2 = Mar 31.  months may be negative;
 * 0 months is the anchor itself.  A result outside timestamptz raises 22008.
 */
extern TimestampTz billing_add_months(TimestampTz anchor, int months);

#endif							/* BILLING_CLOCK_H */
