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
	char		status[16];
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
	char	   *provider_session_id;
	char	   *provider_url;
	char	   *provider_payment_intent;
	char	   *provider_refund_id;
} PaymentInfo;

/*
 * Canonical string constant for an outcome or a status, or NULL when unknown.
 * Returning constants lets callers keep the result past SPI_finish.
 */
extern const char *payment_status_const(const char *s);

/*
 * Lock the payment row (FOR UPDATE) and read it into *p.  When user_id is not
 * NULL the payment must belong to that user; a missing payment and someone
 * else's payment both raise the same P0002, so ids do not leak.  The caller
 * must be connected to SPI; the lock lasts until the end of the transaction.
 */
extern void payment_lock(PaymentInfo *p, const pg_uuid_t *payment_id,
						 const pg_uuid_t *user_id);

/*
 * THE transition routine.  Applies `outcome` to the payment and returns its
 * status afterwards (a string constant).
 *
 * outcome: "paid", "canceled", "expired", "failed", "refunded" (what the SQL
 * function billing.settle_payment accepts), and for the provider code also
 * "pending" (checkout opened: invoiced -> pending) and "refund_pending"
 * (refund requested: paid -> refund_pending).
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
 * The same outcome twice changes nothing the second time and returns the
 * status; a transition the state machine does not have raises 55000 with
 * nothing changed.  Side effects happen in the caller's transaction: paid
 * calls subscription_apply_payment(), refunded calls
 * subscription_refund_payment(), canceled/expired/failed/refunded release the
 * promo code reservation.  Connects to SPI itself (nestable).
 */
extern const char *payment_settle(const pg_uuid_t *payment_id, const char *outcome,
								  const char *provider_ref, const TimestampTz *at,
								  const char *source, const char *detail_json);

/*
 * Provider hook for billing.cancel_payment (the Stripe code sets it from its
 * _PG_init hook).  cancel_payment locks the row, checks owner, status and
 * refund window, then calls the hook before changing anything:
 *
 *   PAYMENT_CANCEL_UNPAID  invoiced/pending payment about to become canceled
 *                          (e.g. expire the checkout session first);
 *   PAYMENT_CANCEL_REFUND  paid payment inside the refund window about to
 *                          become refund_pending (e.g. create the refund).
 *
 * The hook returns the outcome to apply: NULL for the default ("canceled" or
 * "refund_pending"), or another outcome such as "refunded" when the provider
 * refunded at once.  It may set *provider_ref (e.g. the refund id), which is
 * passed on to payment_settle.  An error raised by the hook aborts the call
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

typedef const char *(*payment_cancel_hook_type) (const PaymentInfo *p,
												 PaymentCancelKind kind,
												 char **provider_ref);

extern PGDLLIMPORT payment_cancel_hook_type payment_cancel_hook;

/*
 * The whole of billing.cancel_payment for callers in C: returns the status
 * afterwards.  source is "api" or "admin".
 */
extern const char *payment_cancel(const pg_uuid_t *user_id, const pg_uuid_t *payment_id,
								  const char *source);

#endif							/* BILLING_PAYMENTS_H */
