/*
 * provider.h — the boundary between the payment state machine and the
 * payment providers (Stripe, YooKassa): which provider a payment goes to
 * (billing.providers, or checkout's provider argument) and the table of
 * functions through which checkout, confirm_payment, cancel_payment and the
 * poller reach it.  A provider only speaks its API and translates what it
 * says into payments.c's transitions; a third provider is one more file
 * with one more table, listed in provider.c.
 */
#ifndef BILLING_PROVIDER_H
#define BILLING_PROVIDER_H

#include "postgres.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "payments.h"

/* What a provider needs to open its payment page for an invoiced payment. */
typedef struct ProviderCheckout
{
	pg_uuid_t	payment_id;
	pg_uuid_t	user_id;
	const char *tariff_title;
	int32		months;
	int64		total;			/* minor units, > 0 */
	const char *currency;
	const char *email;			/* the customer's, or NULL */
	TimestampTz created_at;
	TimestampTz expires_at;
	TimestampTz now;
	const char *return_url;		/* NULL: the provider's setting */
	const char *cancel_url;		/* NULL: the provider's setting */
	/* auto-renewal: save the method under this customer (NULL: do not save) */
	const char *customer;
} ProviderCheckout;

/* An automatic charge of a saved method (renewal_job.c). */
typedef struct ProviderCharge
{
	pg_uuid_t	payment_id;
	pg_uuid_t	user_id;
	const char *tariff_title;
	int32		months;
	int64		total;			/* minor units, > 0 */
	const char *currency;
	const char *customer;
	const char *method;			/* NULL: the customer's newest saved card */
	const char *idempotency_key;	/* from the subscription, its end, the attempt */
	TimestampTz created_at;		/* the payment's */
} ProviderCharge;

/* A payment the poller claimed (payments with a checkout open, a refund
 * under way, or closed while the provider could still take the money). */
typedef struct ProviderPollItem
{
	pg_uuid_t	id;
	PaymentStatus status;
	char	   *session_id;		/* provider_session_id */
	char	   *refund_id;		/* provider_refund_id */
	TimestampTz expires_at;
	bool		is_renewal;		/* an automatic charge: session_id is its charge */
} ProviderPollItem;

typedef struct BillingProvider
{
	/* Stored in billing.payments.provider and named in billing.providers. */
	const char *name;

	/*
	 * Open the payment page under an idempotency key derived from the
	 * payment id (a retry gets the same page).  Returns the provider's id of
	 * it (kept as provider_session_id) and sets *url (the redirect).
	 * Raises when the provider refuses or cannot be reached; nothing of ours
	 * has changed then.  Runs with no row lock held.
	 */
	char	   *(*checkout) (const ProviderCheckout *c, char **url);

	/*
	 * confirm_payment: fetch the payment's object now and apply it (source
	 * "api"); sets *status to the payment's status afterwards.  Raises when
	 * the provider cannot be reached.  Runs with no row lock held.
	 */
	void		(*confirm) (const pg_uuid_t *payment_id, const char *session_id,
							const char **status);

	/*
	 * cancel_payment's provider half, under payment_cancel's row lock (the
	 * contract of payment_cancel_hook in payments.h): returns the outcome to
	 * apply; an error leaves everything unchanged.
	 */
	PaymentStatus (*cancel_unpaid) (const PaymentInfo *p, PaymentStatus proposed);
	PaymentStatus (*refund) (const PaymentInfo *p, PaymentStatus proposed,
							 char **provider_ref);

	/*
	 * The poller, in two halves.  poll_fetch asks the provider about one
	 * item with no transaction state of interest held: it returns the
	 * object to apply, or NULL after logging why not, and sets *unreachable
	 * when the provider could not be reached at all (the poller then leaves
	 * this provider's other items for the next run, so that one provider's
	 * outage never holds up another's).  poll_apply applies that object
	 * (source "poll") inside the poller's subtransaction and returns a short
	 * word for what happened ("applied" counts as settled).
	 */
	void	   *(*poll_fetch) (const ProviderPollItem *item, TimestampTz now,
							   bool *unreachable);
	const char *(*poll_apply) (const ProviderPollItem *item, void *object,
							   const char **status);

	/*
	 * Auto-renewal (NULL members: this provider does not renew).
	 *
	 * customer: the buyer's customer at the provider, made under an
	 * idempotency key derived from the user id; returns its id.  Raises as
	 * checkout does.
	 *
	 * charge: charge the saved method off-session under c->idempotency_key
	 * (the same call again gets the same charge, never a second one).
	 * Returns the provider's object for apply_charge, or NULL with
	 * *unreachable set when no answer came (the payment stays pending and is
	 * asked about again under the same key).  A refusal that is no answer
	 * about the charge (bad parameters) raises.
	 *
	 * find_charge: the charge made under the payment, looked up without
	 * making one (after a crash: was it sent?); NULL when there is none, or
	 * with *unreachable set when the provider could not be asked.
	 *
	 * apply_charge: apply such an object to the payment (source as for
	 * payment_settle), locking it; returns a word as poll_apply does.
	 */
	char	   *(*customer) (const pg_uuid_t *user_id, const char *email);
	void	   *(*charge) (const ProviderCharge *c, bool *unreachable);
	void	   *(*find_charge) (const ProviderCharge *c, bool *unreachable);
	const char *(*apply_charge) (const pg_uuid_t *payment_id, void *object,
								 const char *source, const char **status);
} BillingProvider;

/* Every provider this build knows, NULL-terminated (provider.c). */
extern const BillingProvider *const billing_providers[];

/* The provider called `name`, or NULL. */
extern const BillingProvider *provider_lookup(const char *name);

/*
 * The provider a new checkout in `currency` goes to: `requested` when given
 * (it must be configured in billing.providers), else billing.providers' entry
 * for the currency, else its "*" entry.  Raises 22023 for a name no build
 * knows and 55000 for one that is not configured or a currency no provider
 * takes.
 */
extern const BillingProvider *provider_choose(const char *currency, const char *requested);

/*
 * The provider a payment went to.  A payment that went to a provider
 * without recording which (rows written by hand, as some tests do) is
 * Stripe's, the only provider before billing.payments.provider existed.
 */
extern const BillingProvider *provider_of(const char *stored_name);

/*
 * The buyer's customer at the provider (billing.provider_customers), made
 * there on first use.  Raises 0A000 for a provider that does not renew.
 * The caller must be connected to SPI.
 */
extern char *provider_customer(const BillingProvider *prov, const pg_uuid_t *user_id,
							   const char *email);

/* The providers' own tables (one file each). */
extern const BillingProvider stripe_provider;
extern const BillingProvider yookassa_provider;

#endif							/* BILLING_PROVIDER_H */
