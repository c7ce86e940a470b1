/*
 * payments.h — the payment state machine: invoices, the one settle path every
 * source (api, webhook, poll, admin, system) goes through, cancel/refund
 * requests and the expiry of unpaid invoices.
 */
#ifndef BILLING_PAYMENTS_H
#define BILLING_PAYMENTS_H

#include "postgres.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* Settings (payments.c). */
extern int	payments_invoice_lifetime;	/* seconds */
extern int	payments_refund_window;		/* seconds */
extern int	payments_expiry_batch;

extern void payments_define_gucs(void);

/* The statuses of a payment (billing.payment_status); names in payments.c. */
typedef enum PaymentStatus
{
	PAYMENT_INVOICED,
	PAYMENT_PENDING,
	PAYMENT_PAID,
	PAYMENT_CANCELED,
	PAYMENT_EXPIRED,
	PAYMENT_FAILED,
	PAYMENT_REFUND_PENDING,
	PAYMENT_REFUNDED
} PaymentStatus;

#define PAYMENT_N_STATUSES (PAYMENT_REFUNDED + 1)

/* The status's name, a constant (outlives any memory context). */
extern const char *payment_status_name(PaymentStatus status);

/* The status named s; false when there is none. */
extern bool payment_status_parse(const char *s, PaymentStatus *status);

/*
 * The outcome argument of the SQL settle functions (paid, canceled, expired,
 * failed, refunded); anything else raises 22023.
 */
extern PaymentStatus payment_outcome_arg(const char *outcome);

/*
 * A payment row as the state machine sees it.  Strings are allocated with
 * SPI_palloc (the memory context that was current when the caller connected
 * to SPI, so they outlive the caller's SPI_finish); NULL when the column is
 * NULL.
 */
typedef struct PaymentInfo
{
	pg_uuid_t	id;
	pg_uuid_t	user_id;
	PaymentStatus status;
	int64		tariff_id;
	char	   *tariff_code;
	char	   *tariff_title;
	int32		months;
	int64		total;
	char		currency[4];
	int64		promo_code_id;	/* 0 when none */
	int64		subscription_id;	/* 0 when none */
	TimestampTz created_at;
	TimestampTz expires_at;
	bool		has_paid_at;
	TimestampTz paid_at;
	char	   *provider;		/* provider.h; NULL before the checkout */
	char	   *provider_session_id;
	char	   *provider_url;
	char	   *provider_payment_intent;
	char	   *provider_refund_id;
	/* auto-renewal */
	bool		save_method;	/* the checkout asked to save the method */
	char	   *provider_customer;
	char	   *provider_method;
	bool		is_renewal;		/* an automatic charge (renewal_of below) */
	TimestampTz renewal_of;
	int32		renewal_attempt;

	/*
	 * Set by a provider before it settles an automatic charge as failed when
	 * retrying cannot help: auto-renewal then stops instead of retrying
	 * (autorenew.h), with this as its reason (billing.auto_renew_reason:
	 * authentication_failed, method_revoked).  NULL: retry as scheduled.
	 */
	const char *stop_reason;
} PaymentInfo;

/*
 * Lock the payment row (FOR UPDATE) and read it into *p.  When user_id is not
 * NULL the payment must belong to that user; a missing payment and someone
 * else's payment both raise the same P0002, so ids do not leak.  The caller
 * must be connected to SPI; the lock lasts until the end of the transaction.
 */
extern void payment_lock(PaymentInfo *p, const pg_uuid_t *payment_id,
						 const pg_uuid_t *user_id);

/*
 * THE transition routine, for a payment whose row the caller locked with
 * payment_lock (inside its SPI connection).  A provider calls this with
 * whatever its API reported; the SQL functions go through payment_settle.
 *
 * outcome: any status but invoiced ("pending": checkout opened;
 * "refund_pending": refund requested).  Answers
 *   PAYMENT_APPLIED    the transition happened (*p is updated);
 *   PAYMENT_UNCHANGED  it had already happened: the same outcome again, a
 *                      late "paid" after a refund, a closing outcome for a
 *                      payment already closed unpaid;
 *   PAYMENT_STALE      the state machine has no such transition (the payment
 *                      moved on: a late or out-of-order report); nothing
 *                      changed.  A provider reports this, it is no error.
 *
 * provider_ref (may be NULL) is kept in the event's detail and, when the
 * column is still empty, in the column matching the new status: pending ->
 * provider_session_id, paid -> provider_payment_intent, refund_pending /
 * refunded -> provider_refund_id.
 *
 * at (may be NULL = billing.now()) is the provider's time of the event; it
 * becomes paid_at for "paid" and the event's time.  A time later than
 * billing.now() is taken as now (kept as reported_at in the event's detail).
 *
 * source: "api", "webhook", "poll", "admin" or "system".
 * detail_json (may be NULL): a jsonb object text merged into the event detail.
 *
 * Side effects happen in the caller's transaction: paid calls
 * subscription_apply_payment(), refunded calls subscription_refund_payment(),
 * canceled/expired/failed/refunded release the promo code reservation.
 */
typedef enum PaymentSettleResult
{
	PAYMENT_APPLIED,
	PAYMENT_UNCHANGED,
	PAYMENT_STALE
} PaymentSettleResult;

extern PaymentSettleResult payment_settle_locked(PaymentInfo *p, PaymentStatus outcome,
												 const char *provider_ref,
												 const TimestampTz *at,
												 const char *source,
												 const char *detail_json);

/* The word for a settle's answer: "applied", "unchanged", "stale" (a constant). */
extern const char *payment_settle_result_name(PaymentSettleResult r);

/*
 * The provider made a payment page for this payment while we did not know
 * its id (the checkout's transaction rolled back after the provider answered),
 * and it now reports on it: keep its id in provider_session_id, and the
 * provider when none was chosen.  For a payment locked with payment_lock
 * whose provider_session_id is NULL; *p is updated.
 */
extern void payment_remember_session(PaymentInfo *p, const char *session_id,
									 const char *provider);

/*
 * The provider reported the method a payment was made with (customer and
 * method ids, the card's brand and last four digits; any may be NULL): keep
 * what is new on the payment, and let a subscription renewing under that
 * customer learn it (autorenew.h).  For a payment locked with payment_lock.
 */
extern void payment_remember_method(PaymentInfo *p, const char *customer, const char *method,
									const char *card_brand, const char *card_last4);

/*
 * An automatic charge needs its buyer (the bank asked for authentication):
 * keep the page that completes it as provider_url and tell the buyer
 * (autorenew.h).  For a pending payment locked with payment_lock; once per
 * payment.
 */
extern void payment_needs_buyer(PaymentInfo *p, const char *url);

/*
 * An automatic charge's invoice (renewal_job.c): priced by the quote, for
 * the subscription's end of term renewal_of and that end's attempt; pending
 * at once with its provider (the charge follows at once, there is no page to
 * open), payable until expires_at (the end of the grace period), asked about
 * by the poller from next_poll_at.  A zero total is paid at once.  Returns
 * false, writing nothing, when a live or paid charge of that end exists.
 */
typedef struct RenewalInvoice
{
	TimestampTz renewal_of;
	int32		attempt;
	const char *provider;
	const char *customer;
	const char *method;			/* or NULL */
	TimestampTz expires_at;
	TimestampTz next_poll_at;
} RenewalInvoice;

struct BillingQuote;
extern bool payment_create_renewal(pg_uuid_t *payment_id, const pg_uuid_t *user_id,
								   const struct BillingQuote *q, const RenewalInvoice *r);

/*
 * Lock the payment and settle it (above); a stale outcome raises 55000 with
 * nothing changed.  Returns the status afterwards.  Connects to SPI itself
 * (nestable).
 */
extern PaymentStatus payment_settle(const pg_uuid_t *payment_id, PaymentStatus outcome,
									const char *provider_ref, const TimestampTz *at,
									const char *source, const char *detail_json);

/*
 * Provider hook for billing.cancel_payment (checkout.c sets it from
 * _PG_init: it calls the payment's provider, provider.h).  cancel_payment locks the row, checks owner, status and
 * refund window, then calls the hook before changing anything:
 *
 *   PAYMENT_CANCEL_UNPAID  invoiced/pending payment about to become canceled
 *                          (e.g. expire the checkout session first);
 *   PAYMENT_CANCEL_REFUND  paid payment inside the refund window about to
 *                          become refund_pending (e.g. create the refund).
 *
 * The hook returns the outcome to apply: `proposed` (canceled or
 * refund_pending), or another such as refunded when the provider refunded at
 * once.  It may set *provider_ref (e.g. the refund id), which is passed on
 * to the settle.  An error raised by the hook aborts the call
 * with nothing changed.  Called only for payments that went to the provider
 * (provider_session_id set).  Without one: unpaid -> canceled; paid ->
 * refunded at once, with {"refund": "without_provider"} in the event (a zero
 * total, or a payment an admin settled by hand: no provider holds the money,
 * so there is nothing to wait for; money taken off-band goes back off-band).
 */
typedef enum PaymentCancelKind
{
	PAYMENT_CANCEL_UNPAID,
	PAYMENT_CANCEL_REFUND
} PaymentCancelKind;

typedef PaymentStatus (*payment_cancel_hook_type) (const PaymentInfo *p,
												   PaymentCancelKind kind,
												   PaymentStatus proposed,
												   char **provider_ref);

extern PGDLLIMPORT payment_cancel_hook_type payment_cancel_hook;

/*
 * The whole of billing.cancel_payment for callers in C: returns the status
 * afterwards.  source is "api" or "admin".
 */
extern PaymentStatus payment_cancel(const pg_uuid_t *user_id, const pg_uuid_t *payment_id,
									const char *source);

#endif							/* BILLING_PAYMENTS_H */
