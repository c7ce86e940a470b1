/*
 * autorenew.h — a subscription's auto-renewal: switched on by a paid
 * checkout that saved the payment method, on and off by the buyer, and what
 * an automatic charge's outcome does to it (the retries after a decline, and
 * when to give up).  The job that makes the charges is renewal_job.c; this
 * is the state it reads and the rules the state machine (payments.c) calls.
 */
#ifndef BILLING_AUTORENEW_H
#define BILLING_AUTORENEW_H

#include "postgres.h"
#include "utils/timestamp.h"

#include "payments.h"

/* Settings (autorenew.c). */
extern int	autorenew_lead;			/* seconds before ends_at */
extern int	autorenew_batch;

/* When the first charge for a term ending at ends_at is due. */
extern TimestampTz autorenew_first_charge(TimestampTz ends_at);

/*
 * A payment whose checkout saved the payment method (save_method) was paid
 * and extended subscription_id: the subscription renews from now on, with
 * that method, for the payment's months.
 */
extern void autorenew_enable_from_payment(const PaymentInfo *p, int64 subscription_id);

/*
 * The provider reported the method a payment was made with (the payment row
 * already records it): a subscription that renews under the same customer
 * and did not know its method or card learns them.
 */
extern void autorenew_method_reported(const PaymentInfo *p);

/*
 * An automatic charge closed unpaid (failed, expired, canceled): count the
 * failure and schedule the next retry, or switch auto-renewal off when there
 * is none (no retry left inside the grace period, or p->stop_reason: the buyer
 * must act).  Queues the "renewal failed" notification.  The subscription
 * row is locked here.
 */
extern void autorenew_charge_closed(const PaymentInfo *p, PaymentStatus outcome);

/*
 * An automatic charge needs the buyer (the bank asked for authentication):
 * no retry is scheduled; the buyer is sent the provider's page (url) that
 * completes this very payment.
 */
extern void autorenew_needs_buyer(const PaymentInfo *p, const char *url);

/*
 * Switch auto-renewal off for a subscription the caller has locked (a
 * refund, a block), recording why; nothing when it was off already.
 */
extern void autorenew_switch_off(int64 subscription_id, const char *reason);

#endif							/* BILLING_AUTORENEW_H */
