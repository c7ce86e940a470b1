/*
 * stripe.c — the Stripe API client and the billing.stripe_* settings:
 * form-encoded requests with Bearer auth, Idempotency-Key and Stripe-Version
 * sent through http_client.c, and mapping failures to SQLSTATEs.
 */
#include "postgres.h"

#include <string.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "billing.h"
#include "common.h"
#include "http_client.h"
#include "stripe.h"

char	   *stripe_api_base = NULL;
char	   *stripe_api_version = NULL;
int			stripe_connect_timeout_ms = 2000;
int			stripe_timeout_ms = 10000;
int			stripe_webhook_tolerance = 300;
char	   *stripe_success_url = NULL;
char	   *stripe_cancel_url = NULL;
int			stripe_poll_interval = 60;
int			stripe_poll_max_interval = 3600;
int			stripe_poll_batch = 50;
int			stripe_event_retention = 30;

static char *stripe_secret_key = NULL;
static char *stripe_poll_schedule = NULL;
static char *stripe_webhook_secrets = NULL;

/* Parsed billing.stripe_webhook_secrets (the GUC "extra"). */
typedef struct WebhookSecrets
{
	int			count;
	char	   *secret[FLEXIBLE_ARRAY_MEMBER];	/* point into the same block */
} WebhookSecrets;

static WebhookSecrets *webhook_secrets = NULL;

/* ---------------------------------------------------------------------
 * Settings
 * --------------------------------------------------------------------- */

static bool
check_api_base(char **newval, void **extra, GucSource source)
{
	if (!http_url_acceptable(*newval))
	{
		billing_guc_invalid("billing.stripe_api_base", *newval);
		GUC_check_errdetail("The Stripe API base must be an http:// or https:// URL without spaces.");
		return false;
	}
	return true;
}

static bool
check_optional_url(char **newval, const char *name)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!http_url_acceptable(*newval))
	{
		billing_guc_invalid(name, *newval);
		GUC_check_errdetail("The URL must start with http:// or https:// and contain no spaces.");
		return false;
	}
	return true;
}

static bool
check_success_url(char **newval, void **extra, GucSource source)
{
	return check_optional_url(newval, "billing.stripe_success_url");
}

static bool
check_cancel_url(char **newval, void **extra, GucSource source)
{
	return check_optional_url(newval, "billing.stripe_cancel_url");
}

/* Keys and secrets are [A-Za-z0-9_-]: nothing that could break a header. */
static bool
token_is_acceptable(const char *s, size_t len)
{
	size_t		i;

	if (len == 0 || len > 255)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool
check_secret_key(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!token_is_acceptable(*newval, strlen(*newval)))
	{
		/* Never echo the value: it is a secret. */
		GUC_check_errmsg("invalid value for billing.stripe_secret_key");
		GUC_check_errdetail("A Stripe secret key consists of letters, digits, \"_\" and \"-\".");
		return false;
	}
	return true;
}

static bool
check_api_version(char **newval, void **extra, GucSource source)
{
	const char *p;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	for (p = *newval; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
		{
			billing_guc_invalid("billing.stripe_api_version", *newval);
			GUC_check_errdetail("A Stripe API version looks like 2024-06-20.");
			return false;
		}
	return true;
}

/* "whsec_a, whsec_b" (commas and/or spaces): several secrets while rotating. */
static bool
check_webhook_secrets(char **newval, void **extra, GucSource source)
{
	const char *s = *newval ? *newval : "";
	size_t		len = strlen(s);
	int			count = 0;
	size_t		i;
	WebhookSecrets *ws;
	char	   *copy;

	/* First pass: validate and count. */
	for (i = 0; i < len;)
	{
		size_t		start;

		while (i < len && (s[i] == ',' || s[i] == ' ' || s[i] == '\t'))
			i++;
		start = i;
		while (i < len && s[i] != ',' && s[i] != ' ' && s[i] != '\t')
			i++;
		if (i > start)
		{
			if (!token_is_acceptable(s + start, i - start))
			{
				GUC_check_errmsg("invalid value for billing.stripe_webhook_secrets");
				GUC_check_errdetail("Each webhook secret (whsec_...) consists of letters, digits, \"_\" and \"-\"; separate several with commas.");
				return false;
			}
			count++;
		}
	}

	ws = (WebhookSecrets *) malloc(offsetof(WebhookSecrets, secret) +
								   sizeof(char *) * Max(count, 1) + len + 1);
	if (ws == NULL)
	{
		/* Said here: PostgreSQL's default message would quote the secrets. */
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory for billing.stripe_webhook_secrets");
		return false;
	}
	copy = (char *) ws + offsetof(WebhookSecrets, secret) + sizeof(char *) * Max(count, 1);
	memcpy(copy, s, len + 1);
	ws->count = 0;
	for (i = 0; i < len;)
	{
		size_t		start;

		while (i < len && (copy[i] == ',' || copy[i] == ' ' || copy[i] == '\t'))
			copy[i++] = '\0';
		start = i;
		while (i < len && copy[i] != ',' && copy[i] != ' ' && copy[i] != '\t')
			i++;
		if (i > start)
			ws->secret[ws->count++] = copy + start;
	}
	*extra = ws;
	return true;
}

static void
assign_webhook_secrets(const char *newval, void *extra)
{
	webhook_secrets = (WebhookSecrets *) extra;
}

int
stripe_webhook_secret_count(void)
{
	return webhook_secrets ? webhook_secrets->count : 0;
}

const char *
stripe_webhook_secret(int i)
{
	Assert(webhook_secrets && i >= 0 && i < webhook_secrets->count);
	return webhook_secrets->secret[i];
}

void
stripe_define_gucs(void)
{
	/*
	 * The base URL decides where the secret key is sent: superusers only.
	 * The secrets are hidden from everyone else (GUC_SUPERUSER_ONLY) and from
	 * SHOW ALL / pg_settings listings (GUC_NO_SHOW_ALL).
	 */
	DefineCustomStringVariable("billing.stripe_api_base",
							   "Base URL of the Stripe API.",
							   "Point it at the Stripe stand-in for tests and the local stack.",
							   &stripe_api_base, "https://api.stripe.com",
							   PGC_SUSET, 0, check_api_base, NULL, NULL);
	DefineCustomStringVariable("billing.stripe_secret_key",
							   "Stripe secret API key (sk_...).",
							   NULL,
							   &stripe_secret_key, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_secret_key, NULL, NULL);
	DefineCustomStringVariable("billing.stripe_webhook_secrets",
							   "Webhook signing secrets (whsec_...), comma-separated; several while rotating.",
							   NULL,
							   &stripe_webhook_secrets, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_webhook_secrets, assign_webhook_secrets, NULL);
	DefineCustomStringVariable("billing.stripe_api_version",
							   "Stripe-Version header sent with every request (empty: the account's default).",
							   NULL,
							   &stripe_api_version, "2024-06-20",
							   PGC_SUSET, 0, check_api_version, NULL, NULL);
	DefineCustomIntVariable("billing.stripe_connect_timeout",
							"Time allowed to connect to Stripe.",
							NULL,
							&stripe_connect_timeout_ms, 2000, 1, 60000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.stripe_timeout",
							"Time allowed for a whole Stripe request, connecting included.",
							NULL,
							&stripe_timeout_ms, 10000, 1, 300000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.stripe_webhook_tolerance",
							"How far a webhook's signed timestamp may be from billing.now().",
							NULL,
							&stripe_webhook_tolerance, 300, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomStringVariable("billing.stripe_success_url",
							   "Where Stripe Checkout sends the buyer after paying, when checkout() is given none.",
							   "{CHECKOUT_SESSION_ID} is replaced by Stripe.",
							   &stripe_success_url, "",
							   PGC_SUSET, 0, check_success_url, NULL, NULL);
	DefineCustomStringVariable("billing.stripe_cancel_url",
							   "Where Stripe Checkout sends a buyer who goes back, when checkout() is given none.",
							   NULL,
							   &stripe_cancel_url, "",
							   PGC_SUSET, 0, check_cancel_url, NULL, NULL);
	DefineCustomIntVariable("billing.stripe_poll_interval",
							"Delay before the first poll of a pending payment; doubles after each poll.",
							NULL,
							&stripe_poll_interval, 60, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.stripe_poll_max_interval",
							"Longest delay between two polls of one payment.",
							NULL,
							&stripe_poll_max_interval, 3600, 1, 7 * 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.stripe_poll_batch",
							"Most payments one run of billing.stripe_poll() asks their provider (Stripe or YooKassa) about.",
							NULL,
							&stripe_poll_batch, 50, 1, 10000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("billing.stripe_poll_schedule",
							   "pg_cron schedule of billing.stripe_poll(), which polls both providers (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.  The name predates YooKassa.",
							   &stripe_poll_schedule, "* * * * *",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.stripe_event_retention",
							"Days a received Stripe event is kept (replays of it are recognised meanwhile).",
							NULL,
							&stripe_event_retention, 30, 4, 3650,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Requests
 * --------------------------------------------------------------------- */

void
stripe_form_add(StringInfo form, const char *key, const char *value)
{
	const char *parts[2] = {key, value};
	int			i;

	if (form->len > 0)
		appendStringInfoChar(form, '&');
	for (i = 0; i < 2; i++)
	{
		const unsigned char *p;

		if (i == 1)
			appendStringInfoChar(form, '=');
		for (p = (const unsigned char *) parts[i]; *p; p++)
		{
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
				(*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '*')
				appendStringInfoChar(form, (char) *p);
			else if (*p == ' ')
				appendStringInfoChar(form, '+');
			else
				appendStringInfo(form, "%%%02X", *p);
		}
	}
}

void
stripe_check_id(const char *id, const char *what)
{
	if (!token_is_acceptable(id, strlen(id)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed stripe %s id", what)));
}

/*
 * A response arrived: keep its JSON object, and classify it.  Stripe's error
 * object, when there is one, is kept for the caller's message; 409 (a
 * concurrent request with the same key, or a lock) and 429 (rate limit) are
 * worth retrying like a 5xx.
 */
static void
classify_response(StripeResult *r, const HttpResponse *resp)
{
	long		status = resp->status;

	r->http_status = status;
	r->body = resp->body;
	if (status >= 200 && status < 300)
		r->outcome = r->body ? STRIPE_OK : STRIPE_BAD_RESPONSE;
	else
	{
		JsonbContainer *err = r->body ? billing_json_obj(&r->body->root, "error") : NULL;

		if (err)
		{
			r->error_type = billing_json_str(err, "type");
			r->error_code = billing_json_str(err, "code");
			r->error_message = billing_json_str(err, "message");
		}
		if (status >= 500 || status == 429 || status == 409 || status < 400)
			r->outcome = STRIPE_UNAVAILABLE;
		else
			r->outcome = STRIPE_REFUSED;
	}
}

void
stripe_request(StripeResult *r, const char *method, const char *path,
			   const char *form, const char *idempotency_key)
{
	HttpRequest req = {0};
	HttpResponse resp;
	StringInfoData auth;
	const char *headers[3];
	int			nheaders = 0;
	bool		is_post = strcmp(method, "POST") == 0;

	memset(r, 0, sizeof(*r));

	if (stripe_secret_key == NULL || stripe_secret_key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("billing.stripe_secret_key is not set"),
				 errhint("Set it in postgresql.conf (or ALTER SYSTEM) and reload.")));

	/* A GET carries the form as its query string. */
	req.url = http_url(stripe_api_base, path, is_post ? NULL : form);
	req.post = is_post;
	req.body = form;
	initStringInfo(&auth);
	appendStringInfo(&auth, "Authorization: Bearer %s", stripe_secret_key);
	req.authorization = auth.data;	/* http_perform wipes it */
	if (is_post)
		headers[nheaders++] = "Content-Type: application/x-www-form-urlencoded";
	if (stripe_api_version && stripe_api_version[0])
		headers[nheaders++] = psprintf("Stripe-Version: %s", stripe_api_version);
	if (idempotency_key)
		headers[nheaders++] = psprintf("Idempotency-Key: %s", idempotency_key);
	req.headers = headers;
	req.nheaders = nheaders;
	req.connect_timeout_ms = stripe_connect_timeout_ms;
	req.timeout_ms = stripe_timeout_ms;
	req.service = "stripe";

	http_perform(&req, &resp);
	if (!resp.responded)
	{
		r->outcome = STRIPE_UNAVAILABLE;
		r->transport_error = resp.transport_error;
		r->connect_failed = resp.connect_failed;
		return;
	}
	classify_response(r, &resp);
}

/* Stripe error codes that mean "the object is in the wrong state". */
static bool
is_state_code(const char *code)
{
	static const char *const codes[] = {
		"charge_already_refunded", "charge_not_refundable", "charge_disputed",
		"payment_intent_unexpected_state", "refund_disputed_payment",
		"checkout_session_expired", NULL
	};
	int			i;

	if (code == NULL)
		return false;
	for (i = 0; codes[i]; i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

void
stripe_raise(const StripeResult *r, const char *what)
{
	const char *msg = r->error_message ? r->error_message : "(no message)";

	switch (r->outcome)
	{
		case STRIPE_UNAVAILABLE:
			if (r->http_status == 0)
				ereport(ERROR,
						(errcode(r->connect_failed ? ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION
								 : ERRCODE_CONNECTION_FAILURE),
						 errmsg("could not %s: stripe is unreachable", what),
						 errdetail("%s.", r->transport_error ? r->transport_error : "No response"),
						 errhint("Nothing was changed; try again later.")));
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not %s: stripe is unavailable", what),
					 errdetail("Stripe answered HTTP %ld (%s): %s", r->http_status,
							   r->error_code ? r->error_code :
							   (r->error_type ? r->error_type : "no code"), msg),
					 errhint("Nothing was changed; try again later.")));
			break;
		case STRIPE_BAD_RESPONSE:
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("could not %s: stripe sent a response that is not a JSON object", what),
					 errdetail("HTTP status %ld.", r->http_status),
					 errhint("Nothing was changed; try again later.")));
			break;
		case STRIPE_REFUSED:
			if (r->http_status == 401 || r->http_status == 403)
				/* Stripe's message quotes part of the key: leave it out. */
				ereport(ERROR,
						(errcode(ERRCODE_SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION),
						 errmsg("could not %s: stripe refused the api key", what),
						 errdetail("Stripe answered HTTP %ld.", r->http_status),
						 errhint("Check billing.stripe_secret_key; nothing was changed.")));
			ereport(ERROR,
					(errcode(r->http_status == 404 ? ERRCODE_NO_DATA_FOUND :
							 is_state_code(r->error_code) ? ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE :
							 /* the key was first used with other parameters */
							 (r->error_type && strcmp(r->error_type, "idempotency_error") == 0) ?
							 ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE :
							 ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("could not %s: stripe refused the request", what),
					 errdetail("Stripe answered HTTP %ld (%s): %s", r->http_status,
							   r->error_code ? r->error_code :
							   (r->error_type ? r->error_type : "no code"), msg),
					 errhint("Nothing was changed.")));
			break;
		case STRIPE_OK:
			break;
	}
	elog(ERROR, "stripe_raise called for a successful call");
}

Jsonb *
stripe_call(const char *method, const char *path, const char *form,
			const char *idempotency_key, const char *what)
{
	StripeResult r;

	stripe_request(&r, method, path, form, idempotency_key);
	if (r.outcome != STRIPE_OK)
		stripe_raise(&r, what);
	return r.body;
}

/* ---------------------------------------------------------------------
 * Amounts and JSON
 * --------------------------------------------------------------------- */

int64
stripe_amount(int64 minor_units, const char *currency)
{
	static const char *const three_decimal[] = {"BHD", "JOD", "KWD", "OMR", "TND", NULL};
	int			i;

	if (minor_units <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be positive to go to stripe")));
	/*
	 * Prices are stored in Stripe's own minor units (currency.h), so they go
	 * unchanged; Stripe only refuses amounts its card networks cannot carry.
	 */
	for (i = 0; three_decimal[i]; i++)
		if (strcmp(currency, three_decimal[i]) == 0 && minor_units % 10 != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("stripe cannot charge " INT64_FORMAT " minor units of %s", minor_units, currency),
					 errdetail("Stripe requires amounts in three-decimal currencies to end in 0.")));
	if (strcmp(currency, "ISK") == 0 && minor_units % 100 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stripe cannot charge " INT64_FORMAT " minor units of ISK", minor_units),
				 errdetail("Stripe requires whole krónur (amounts divisible by 100).")));
	return minor_units;
}

