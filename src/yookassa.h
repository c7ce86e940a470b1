/*
 * yookassa.h — the YooKassa (ЮKassa) API v3 client and what the YooKassa
 * capability shares between its files: settings, the request/response type,
 * error mapping, amounts as decimal strings, and applying a YooKassa object
 * (payment, refund) to one of our payments.
 */
#ifndef BILLING_YOOKASSA_H
#define BILLING_YOOKASSA_H

#include "postgres.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* Settings (yookassa.c). */
extern char *yookassa_api_base;
extern char *yookassa_return_url;
extern bool yookassa_receipts;
extern int	yookassa_vat_code;
extern char *yookassa_notify_from;

/* How a call ended (as StripeOutcome). */
typedef enum YooOutcome
{
	YOO_OK,						/* 2xx (not 202) with a JSON object body */
	YOO_REFUSED,				/* 4xx: retrying the same is useless */
	YOO_UNAVAILABLE,			/* timeout, connection failure, 5xx, 429, 202
								 * "still processing": safe to retry with the
								 * same Idempotence-Key */
	YOO_BAD_RESPONSE			/* 2xx whose body is not a JSON object */
} YooOutcome;

typedef struct YooResult
{
	YooOutcome	outcome;
	long		http_status;	/* 0 when no response arrived */
	Jsonb	   *body;			/* the JSON object, or NULL */
	char	   *error_code;		/* YooKassa's error "code" */
	char	   *error_description;
	char	   *transport_error;	/* libcurl's message when no response */
	bool		connect_failed;
} YooResult;

/*
 * One request to billing.yookassa_api_base + path with HTTP Basic auth
 * (billing.yookassa_shop_id : billing.yookassa_secret_key).  json_body is
 * sent for POST (may be NULL: "{}"); idempotence_key may be NULL.  Never
 * raises for a remote failure; does raise for an interrupt that arrives
 * during the call and for missing credentials.
 */
extern void yookassa_request(YooResult *r, const char *method, const char *path,
							 const char *json_body, const char *idempotence_key);

/* Raises the error a failed call maps to (08xxx retryable, 4xx clear). */
extern void yookassa_raise(const YooResult *r, const char *what) pg_attribute_noreturn();

/* The same request, raising on any failure; returns the JSON object. */
extern Jsonb *yookassa_call(const char *method, const char *path, const char *json_body,
							const char *idempotence_key, const char *what);

/* Unreachable (no HTTP answer at all): the poller skips the provider's rest. */
extern bool yookassa_unreachable(const YooResult *r);

/* Logs a failed poll of one payment at WARNING. */
extern void yookassa_log_failure(const pg_uuid_t *payment_id, const YooResult *r);

/* YooKassa ids ([A-Za-z0-9_-], at most 64): anything else is refused. */
extern bool yookassa_id_ok(const char *id);
extern void yookassa_check_id(const char *id, const char *what);

/*
 * Our minor units as YooKassa's decimal string ("1234.50" for 123450 RUB
 * kopecks), by the currency's exponent; integer arithmetic only.
 */
extern char *yookassa_amount(int64 minor_units, const char *currency);

/* "billing-<what>-<payment id>": at most 64 characters, YooKassa's limit. */
extern char *yookassa_idempotence_key(const char *what, const pg_uuid_t *payment_id);

/* Append {"value": "...", "currency": "..."} to a JSON text. */
extern void yookassa_append_amount(StringInfo s, int64 minor_units, const char *currency);

/*
 * 54-FZ receipts (billing.yookassa_receipts): the item text "<title>, N
 * months" cut to YooKassa's 128 characters; the customer's e-mail from
 * billing.customers (NULL when unknown); a 55000 when there is none; and the
 * "receipt" member appended to a JSON object's text.
 */
extern char *yookassa_item_text(const char *title, int32 months);
extern char *yookassa_customer_email(const pg_uuid_t *user_id);
extern void yookassa_require_email(const char *email);
extern void yookassa_append_receipt(StringInfo s, const char *email, const char *item,
									int64 total, const char *currency);

/*
 * Applying what YooKassa says to our payment (yookassa_apply.c).  Both lock
 * the payment row, check that the object really is this payment's (id,
 * amount, currency), decide the outcome and settle through
 * payment_settle_locked with the given source.  They return a short word for
 * what happened ("applied", "unchanged", "stale", "mismatch", "waiting",
 * "refund_failed", "late_refunded") and set *status to the payment's status
 * afterwards.  A payment that YooKassa reports succeeded after we closed it
 * unpaid is refunded at YooKassa (a confirmation cannot be cancelled).
 * expire_pending: the invoice has run out and the object is still pending
 * (only the poller passes true): close ours as expired and watch it.
 * Auto-renewal: a checkout that saved its method, and an automatic charge
 * (renewal_job.c's payment with the saved method), learn the saved method
 * before the settle; a declined charge keeps YooKassa's cancellation reason
 * as its failure_code.
 */
extern const char *yookassa_apply_payment(const pg_uuid_t *payment_id, JsonbContainer *payment,
										  const char *source, bool expire_pending,
										  const char **status);
extern const char *yookassa_apply_refund(const pg_uuid_t *payment_id, JsonbContainer *refund,
										 const char *source, const char **status);

/* Watch a payment we closed while YooKassa may still take the money. */
extern void yookassa_watch(const pg_uuid_t *payment_id, bool on);

#endif							/* BILLING_YOOKASSA_H */
