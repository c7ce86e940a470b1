/*
 * stripe.h — the Stripe client (over http_client.h) and what the Stripe
 * capability shares between its files: settings, the request/response type,
 * error mapping, amounts, reading Stripe's JSON objects, and applying a
 * Stripe object (session, refund) to one of our payments.
 */
#ifndef BILLING_STRIPE_H
#define BILLING_STRIPE_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* Settings (stripe.c). */
extern char *stripe_api_base;
extern char *stripe_api_version;
extern int	stripe_connect_timeout_ms;
extern int	stripe_timeout_ms;
extern int	stripe_webhook_tolerance;	/* seconds */
extern char *stripe_success_url;
extern char *stripe_cancel_url;
extern int	stripe_poll_interval;	/* seconds: first poll, then doubling */
extern int	stripe_poll_max_interval;	/* seconds */
extern int	stripe_poll_batch;
extern int	stripe_event_retention; /* days */

extern void stripe_define_gucs(void);

/* The configured webhook secrets (billing.stripe_webhook_secrets), parsed. */
extern int	stripe_webhook_secret_count(void);
extern const char *stripe_webhook_secret(int i);

/* How a call ended. */
typedef enum StripeOutcome
{
	STRIPE_OK,					/* 2xx with a JSON object body */
	STRIPE_REFUSED,				/* 4xx: Stripe refused; retrying the same is useless */
	STRIPE_UNAVAILABLE,			/* timeout, connection failure, 5xx, 429, 409:
								 * safe to retry (same Idempotency-Key) */
	STRIPE_BAD_RESPONSE			/* 2xx whose body is not a JSON object */
} StripeOutcome;

typedef struct StripeResult
{
	StripeOutcome outcome;
	long		http_status;	/* 0 when no response arrived */
	Jsonb	   *body;			/* the JSON object, or NULL */
	/* Stripe's error object, when the body had one (palloc'd or NULL) */
	char	   *error_type;
	char	   *error_code;
	char	   *error_message;
	char	   *transport_error;	/* libcurl's message when no response */
	bool		connect_failed; /* could not connect at all */
} StripeResult;

/*
 * One request to billing.stripe_api_base + path.  method is "GET" or
 * "POST"; form is the application/x-www-form-urlencoded body (POST) or query
 * (GET), may be NULL; idempotency_key may be NULL.  Never raises for a
 * remote failure: the caller decides (stripe_raise, or log and go on).  It
 * does raise for a query cancel or a backend shutdown that arrives during
 * the call (after libcurl returned), and for a missing secret key.
 */
extern void stripe_request(StripeResult *r, const char *method, const char *path,
						   const char *form, const char *idempotency_key);

/* Raises the error a failed call maps to (08xxx retryable, 4xx clear). */
extern void stripe_raise(const StripeResult *r, const char *what) pg_attribute_noreturn();

/* The same request, raising on any failure; returns the JSON object. */
extern Jsonb *stripe_call(const char *method, const char *path, const char *form,
						  const char *idempotency_key, const char *what);

/* Append key=value to a form, both percent-encoded. */
extern void stripe_form_add(StringInfo form, const char *key, const char *value);

/* Path segment check: Stripe ids are [A-Za-z0-9_]; refuse anything else. */
extern void stripe_check_id(const char *id, const char *what);

/*
 * Our minor units -> the integer Stripe expects for that currency (see
 * https://stripe.com/docs/currencies): the same number for two- and
 * zero-decimal currencies, ×100 for ISK (zero-decimal in ISO 4217, two in
 * Stripe's API); three-decimal currencies must end in 0.  Raises 22023 when
 * Stripe cannot take the amount.
 */
extern int64 stripe_amount(int64 minor_units, const char *currency);

/*
 * Applying what Stripe says to our payment (stripe_apply.c).  Both lock the
 * payment row, check that the object really is this payment's (amount,
 * currency), decide the outcome and settle through payment_settle with the
 * given source.  They return a short word for what happened ("applied",
 * "unchanged", "stale", "mismatch", "waiting") and set *status to the
 * payment's status afterwards.  at: the provider's time of the event, or NULL.
 * event_type: the webhook event's type, or NULL when the object was fetched
 * (an async_payment_failed event is the only word for a failed session).
 */
extern const char *stripe_apply_session(const pg_uuid_t *payment_id, JsonbContainer *session,
										const char *event_type, const TimestampTz *at,
										const char *source, const char *event_id,
										const char **status);
/*
 * A PaymentIntent: an automatic charge's outcome (succeeded: paid; declined:
 * failed, retried or not by autorenew.c; waiting for the buyer: the page is
 * kept and sent; canceled: expired), or, for a checkout payment that saves
 * its method, only the method it was paid with.  Words as above, plus
 * "method" (a method learnt, nothing settled) and "ignored".
 */
extern const char *stripe_apply_intent(const pg_uuid_t *payment_id, JsonbContainer *intent,
									   const char *event_type, const TimestampTz *at,
									   const char *source, const char *event_id,
									   const char **status);
extern const char *stripe_apply_refund(const pg_uuid_t *payment_id, JsonbContainer *refund,
									   const TimestampTz *at, const char *source,
									   const char *event_id, const char **status);

#endif							/* BILLING_STRIPE_H */
