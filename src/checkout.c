/*
 * checkout.c — the buyer's side of a payment provider, whichever it is
 * (provider.h): billing.checkout (choose the provider, open its payment
 * page, return the URL), billing.confirm_payment (back from the provider:
 * fetch the payment and settle it) and the dispatch of billing.cancel_payment
 * to the payment's provider (cancel it there, or refund it).
 *
 * Locks and transactions: these run inside the caller's transaction, so a
 * provider call cannot be kept outside it.  Instead every call is idempotent
 * (the idempotency key is derived from our payment id: a retry, a second
 * caller, or a retry after a rollback gets the very same payment page or
 * refund) and checkout/confirm hold no row lock while the provider answers:
 * they read the payment unlocked, call the provider, then lock the row and
 * apply the result with a guarded transition.  cancel_payment's hook runs
 * under the row lock that payment_cancel took (the refund window must be
 * judged and acted on atomically); that lock lasts at most the provider's
 * timeout.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "billing.h"
#include "common.h"
#include "clock.h"
#include "payments.h"
#include "provider.h"
#include "stripe.h"

typedef struct PaymentRow
{
	pg_uuid_t	id;
	pg_uuid_t	user_id;
	PaymentStatus status;
	char	   *tariff_title;
	int32		months;
	int64		total;
	char		currency[4];
	TimestampTz created_at;
	TimestampTz expires_at;
	char	   *session_id;
	char	   *url;
	char	   *provider;
	char	   *email;
} PaymentRow;

/*
 * Read the payment without locking it; someone else's payment is "not
 * found" like a missing one, so ids do not leak.  Strings are allocated in
 * `cxt` (they outlive SPI_finish).
 */
static void
read_payment(PaymentRow *row, const pg_uuid_t *payment_id, const pg_uuid_t *user_id,
			 MemoryContext cxt)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, UUIDOID};
	Datum		values[2] = {UUIDPGetDatum(payment_id), UUIDPGetDatum(user_id)};
	bool		isnull;
	MemoryContext old;
	char	   *s;

	if (billing_spi_exec(&plan,
						 "SELECT p.status, p.tariff_title, p.months, p.total, p.currency::text, p.expires_at, "
						 "       p.provider_session_id, p.provider_url, p.created_at, p.provider, c.email "
						 "FROM billing.payments p LEFT JOIN billing.customers c USING (user_id) "
						 "WHERE p.id = $1 AND p.user_id = $2",
						 2, types, values, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("payment %s not found", billing_uuid_str(payment_id))));

	old = MemoryContextSwitchTo(cxt);
	memcpy(&row->id, payment_id, sizeof(pg_uuid_t));
	memcpy(&row->user_id, user_id, sizeof(pg_uuid_t));
	if (!payment_status_parse(billing_spi_text(0, 1), &row->status))
		elog(ERROR, "payment %s has an unknown status", billing_uuid_str(payment_id));
	row->tariff_title = billing_spi_text(0, 2);
	row->months = DatumGetInt32(billing_spi_get(0, 3, &isnull));
	row->total = DatumGetInt64(billing_spi_get(0, 4, &isnull));
	s = billing_spi_text(0, 5);
	strlcpy(row->currency, s, sizeof(row->currency));
	row->expires_at = DatumGetTimestampTz(billing_spi_get(0, 6, &isnull));
	row->session_id = billing_spi_text(0, 7);
	row->url = billing_spi_text(0, 8);
	row->created_at = DatumGetTimestampTz(billing_spi_get(0, 9, &isnull));
	row->provider = billing_spi_text(0, 10);
	row->email = billing_spi_text(0, 11);
	MemoryContextSwitchTo(old);
}

static void
check_url_arg(const char *url, const char *name)
{
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be an http:// or https:// URL", name)));
	if (strlen(url) > 2048)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", name),
				 errdetail("The limit is 2048 characters.")));
	for (const char *p = url; *p; p++)
		if ((unsigned char) *p <= ' ' || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain spaces or control characters", name)));
}

/* The poller's first look at a payment the provider now holds. */
static void
schedule_poll(const pg_uuid_t *payment_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {UUIDOID, TIMESTAMPTZOID};
	Datum		values[2] = {UUIDPGetDatum(payment_id),
							 TimestampTzGetDatum(billing_now() + (int64) stripe_poll_interval * USECS_PER_SEC)};

	billing_spi_exec(&plan,
					 "UPDATE billing.payments SET next_poll_at = $2, poll_attempts = 0 WHERE id = $1",
					 2, types, values, NULL, false, 0);
}

/* ---------------------------------------------------------------------
 * billing.checkout
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(billing_checkout);
Datum
billing_checkout(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id;
	pg_uuid_t  *payment_id;
	const char *return_url;
	const char *cancel_url;
	const char *requested;
	PaymentRow	row;
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz now = billing_now();
	const BillingProvider *prov;
	ProviderCheckout c;
	char	   *session_id;
	char	   *url = NULL;
	bool		save_method;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "payment_id");
	user_id = PG_GETARG_UUID_P(0);
	payment_id = PG_GETARG_UUID_P(1);
	return_url = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	cancel_url = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	requested = (PG_NARGS() < 5 || PG_ARGISNULL(4)) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	save_method = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
	if (return_url)
		check_url_arg(return_url, "success_url");
	if (cancel_url && cancel_url[0])
		check_url_arg(cancel_url, "cancel_url");

	SPI_connect();
	read_payment(&row, payment_id, user_id, cxt);

	/* Pending with a payment page: the same URL again, no second one. */
	if (row.status == PAYMENT_PENDING && row.session_id && row.url)
	{
		if (row.expires_at <= now)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("invoice has expired"),
					 errhint("Create a new invoice.")));
		if (requested && strcmp(provider_of(row.provider)->name, requested) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("payment already went to %s", provider_of(row.provider)->name),
					 errdetail("A payment stays with the provider its checkout opened at.")));
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(row.url));
	}
	if (row.status != PAYMENT_INVOICED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment is %s", payment_status_name(row.status)),
				 errdetail("Only an invoiced payment can go to checkout.")));
	if (row.total == 0)
		/* create_invoice pays a zero total at once; this is a safety net. */
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("payment has nothing to pay"),
				 errdetail("A zero total never goes to a payment provider.")));
	if (row.expires_at <= now)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invoice has expired"),
				 errhint("Create a new invoice.")));

	/* Refused here (unknown or unconfigured): the payment stays invoiced. */
	prov = provider_choose(row.currency, requested);

	memset(&c, 0, sizeof(c));
	c.payment_id = row.id;
	c.user_id = row.user_id;
	c.tariff_title = row.tariff_title;
	c.months = row.months;
	c.total = row.total;
	c.currency = row.currency;
	c.email = row.email;
	c.created_at = row.created_at;
	c.expires_at = row.expires_at;
	c.now = now;
	c.return_url = return_url;
	c.cancel_url = cancel_url;

	/* Auto-renewal: the method is saved under the buyer's customer there. */
	if (save_method)
		c.customer = provider_customer(prov, &row.user_id, row.email);

	/* No lock is held here: a concurrent webhook or cancel is not kept waiting. */
	session_id = prov->checkout(&c, &url);
	if (session_id == NULL || url == NULL ||
		(strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("%s returned a payment without id or url", prov->name)));

	/*
	 * The provider first (the pending transition below records the session
	 * id, and every later call follows the provider), then invoiced ->
	 * pending through the guarded transition (it locks the row now,
	 * briefly).  If a cancel won the race, this raises 55000 and the
	 * provider's payment is never paid: nobody has its URL.
	 */
	{
		static SPIPlanPtr plan = NULL;
		Oid			types[4] = {UUIDOID, TEXTOID, BOOLOID, TEXTOID};
		Datum		values[4] = {UUIDPGetDatum(payment_id), CStringGetTextDatum(prov->name),
								 BoolGetDatum(save_method),
								 c.customer ? CStringGetTextDatum(c.customer) : (Datum) 0};
		char		nulls[4] = {' ', ' ', ' ', c.customer ? ' ' : 'n'};

		billing_spi_exec(&plan,
						 "UPDATE billing.payments SET provider = $2, save_method = $3,"
						 "  provider_customer = $4 "
						 "WHERE id = $1 AND status = 'invoiced'",
						 4, types, values, nulls, false, 0);
	}
	payment_settle(payment_id, PAYMENT_PENDING, session_id, NULL, "api", NULL);
	{
		static SPIPlanPtr plan = NULL;
		Oid			types[2] = {UUIDOID, TEXTOID};
		Datum		values[2] = {UUIDPGetDatum(payment_id), CStringGetTextDatum(url)};

		billing_spi_exec(&plan,
						 "UPDATE billing.payments SET provider_url = $2 "
						 "WHERE id = $1 AND status = 'pending'",
						 2, types, values, NULL, false, 0);
	}
	schedule_poll(payment_id);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(url));
}

/* ---------------------------------------------------------------------
 * billing.confirm_payment
 * --------------------------------------------------------------------- */

PG_FUNCTION_INFO_V1(billing_confirm_payment);
Datum
billing_confirm_payment(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *user_id;
	pg_uuid_t  *payment_id;
	PaymentRow	row;
	const char *status;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	BILLING_REQUIRE_ARG(fcinfo, 0, "user_id");
	BILLING_REQUIRE_ARG(fcinfo, 1, "payment_id");
	user_id = PG_GETARG_UUID_P(0);
	payment_id = PG_GETARG_UUID_P(1);

	SPI_connect();
	read_payment(&row, payment_id, user_id, CurrentMemoryContext);
	if (row.status != PAYMENT_PENDING || row.session_id == NULL)
	{
		/* Nothing to ask the provider: the status is what it is. */
		status = payment_status_name(row.status);
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(status));
	}

	provider_of(row.provider)->confirm(payment_id, row.session_id, &status);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(status));
}

/* ---------------------------------------------------------------------
 * cancel_payment's provider half
 * --------------------------------------------------------------------- */

static PaymentStatus
provider_cancel_hook(const PaymentInfo *p, PaymentCancelKind kind, PaymentStatus proposed,
					 char **provider_ref)
{
	const BillingProvider *prov = provider_of(p->provider);
	PaymentStatus outcome;

	if (kind == PAYMENT_CANCEL_UNPAID)
		return prov->cancel_unpaid(p, proposed);
	outcome = prov->refund(p, proposed, provider_ref);
	/* The poller follows a refund that is not final yet. */
	schedule_poll(&p->id);
	return outcome;
}

void
checkout_init(void)
{
	payment_cancel_hook = provider_cancel_hook;
}
