/*
 * yookassa.c — the YooKassa API v3 client and the billing.yookassa_*
 * settings: JSON requests with HTTP Basic auth (shop id : secret key) and an
 * Idempotence-Key sent through http_client.c, mapping failures to
 * SQLSTATEs, and amounts as decimal strings.
 */
#include "postgres.h"

#include <string.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "billing.h"
#include "common.h"
#include "currency.h"
#include "http_client.h"
#include "yookassa.h"

#define YOO_MAX_ID 64

char	   *yookassa_api_base = NULL;
char	   *yookassa_return_url = NULL;
bool		yookassa_receipts = false;
int			yookassa_vat_code = 1;
char	   *yookassa_notify_from = NULL;

static char *yookassa_shop_id = NULL;
static char *yookassa_secret_key = NULL;
static int	yookassa_connect_timeout_ms = 2000;
static int	yookassa_timeout_ms = 10000;

/* ---------------------------------------------------------------------
 * Settings
 * --------------------------------------------------------------------- */

static bool
check_api_base(char **newval, void **extra, GucSource source)
{
	if (!http_url_acceptable(*newval))
	{
		billing_guc_invalid("billing.yookassa_api_base", *newval);
		GUC_check_errdetail("The YooKassa API base must be an http:// or https:// URL without spaces.");
		return false;
	}
	return true;
}

static bool
check_return_url(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' || http_url_acceptable(*newval))
		return true;
	billing_guc_invalid("billing.yookassa_return_url", *newval);
	GUC_check_errdetail("The URL must start with http:// or https:// and contain no spaces.");
	return false;
}

/* Shop ids are digits, secret keys [A-Za-z0-9_-]: nothing that breaks a header. */
static bool
check_secret(char **newval, const char *name, bool digits_only)
{
	const char *s = *newval ? *newval : "";
	size_t		len = strlen(s);

	if (len == 0)
		return true;
	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= '0' && c <= '9') ||
			  (!digits_only && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
								c == '_' || c == '-'))))
			len = 0;
	}
	if (len == 0 || len > 255)
	{
		/* Never echo the value: it is a secret. */
		GUC_check_errmsg("invalid value for %s", name);
		GUC_check_errdetail(digits_only ? "A YooKassa shop id consists of digits." :
							"A YooKassa secret key consists of letters, digits, \"_\" and \"-\".");
		return false;
	}
	return true;
}

static bool
check_shop_id(char **newval, void **extra, GucSource source)
{
	return check_secret(newval, "billing.yookassa_shop_id", true);
}

static bool
check_secret_key(char **newval, void **extra, GucSource source)
{
	return check_secret(newval, "billing.yookassa_secret_key", false);
}

/* Addresses and networks (inet/cidr text) separated by commas. */
static bool
check_notify_from(char **newval, void **extra, GucSource source)
{
	for (const char *p = *newval ? *newval : ""; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') ||
			  *p == '.' || *p == ':' || *p == '/' || *p == ',' || *p == ' '))
		{
			billing_guc_invalid("billing.yookassa_notify_from", *newval);
			GUC_check_errdetail("List IP addresses or networks separated by commas, such as 185.71.76.0/27, 77.75.156.11.");
			return false;
		}
	return true;
}

void
yookassa_define_gucs(void)
{
	/* As for Stripe: the base URL decides where the secret key goes. */
	DefineCustomStringVariable("billing.yookassa_api_base",
							   "Base URL of the YooKassa API (v3 paths are appended).",
							   "Point it at the YooKassa stand-in for tests and the local stack.",
							   &yookassa_api_base, "https://api.yookassa.ru",
							   PGC_SUSET, 0, check_api_base, NULL, NULL);
	DefineCustomStringVariable("billing.yookassa_shop_id",
							   "YooKassa shop id (the Basic auth user name).",
							   NULL,
							   &yookassa_shop_id, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_shop_id, NULL, NULL);
	DefineCustomStringVariable("billing.yookassa_secret_key",
							   "YooKassa secret key (the Basic auth password).",
							   NULL,
							   &yookassa_secret_key, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_secret_key, NULL, NULL);
	DefineCustomIntVariable("billing.yookassa_connect_timeout",
							"Time allowed to connect to YooKassa.",
							NULL,
							&yookassa_connect_timeout_ms, 2000, 1, 60000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.yookassa_timeout",
							"Time allowed for a whole YooKassa request, connecting included.",
							NULL,
							&yookassa_timeout_ms, 10000, 1, 300000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("billing.yookassa_return_url",
							   "Where YooKassa's confirmation page sends the buyer back, when checkout() is given none.",
							   NULL,
							   &yookassa_return_url, "",
							   PGC_SUSET, 0, check_return_url, NULL, NULL);
	DefineCustomBoolVariable("billing.yookassa_receipts",
							 "Send a 54-FZ receipt with every YooKassa payment and refund.",
							 "The receipt names the customer's e-mail, one item (the tariff and months), billing.yookassa_vat_code, payment_subject service and payment_mode full_payment.",
							 &yookassa_receipts, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.yookassa_vat_code",
							"VAT code of the receipt item (YooKassa's vat_code, 1 = without VAT).",
							NULL,
							&yookassa_vat_code, 1, 1, 12,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("billing.yookassa_notify_from",
							   "Addresses YooKassa notifications may come from (empty: any).",
							   "Checked against the forwarded client address where the HTTP layer passes one; the real check is that every notification is read back from the API.",
							   &yookassa_notify_from, "",
							   PGC_SUSET, 0, check_notify_from, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Requests
 * --------------------------------------------------------------------- */

/*
 * "Authorization: Basic base64(shop id:secret key)" (RFC 7617); the plain
 * pair is wiped as soon as it is encoded, the line by http_perform.
 */
static char *
basic_authorization(void)
{
	char	   *pair = psprintf("%s:%s", yookassa_shop_id, yookassa_secret_key);
	int			pair_len = strlen(pair);
	int			enc_len = pg_b64_enc_len(pair_len);
	char	   *line = palloc(sizeof("Authorization: Basic ") + enc_len);
	int			n;

	strcpy(line, "Authorization: Basic ");
	n = pg_b64_encode(pair, pair_len, line + strlen(line), enc_len);
	explicit_bzero(pair, pair_len);
	if (n < 0)
		elog(ERROR, "could not encode the yookassa credentials");
	line[strlen("Authorization: Basic ") + n] = '\0';
	return line;
}

/*
 * A response arrived: keep its JSON object, and classify it.  YooKassa's
 * error ("code", "description"), when the body has one, is kept for the
 * caller's message; 202 ("still processing, ask again with the same key")
 * and 429 are worth retrying like a 5xx.
 */
static void
classify_response(YooResult *r, const HttpResponse *resp)
{
	long		status = resp->status;

	r->http_status = status;
	r->body = resp->body;
	if (status == 202)
	{
		r->outcome = YOO_UNAVAILABLE;
		r->error_code = pstrdup("processing");
	}
	else if (status >= 200 && status < 300)
		r->outcome = r->body ? YOO_OK : YOO_BAD_RESPONSE;
	else
	{
		if (r->body)
		{
			r->error_code = billing_json_str(&r->body->root, "code");
			r->error_description = billing_json_str(&r->body->root, "description");
		}
		if (status >= 500 || status == 429 || status < 400)
			r->outcome = YOO_UNAVAILABLE;
		else
			r->outcome = YOO_REFUSED;
	}
}

void
yookassa_request(YooResult *r, const char *method, const char *path,
				 const char *json_body, const char *idempotence_key)
{
	HttpRequest req = {0};
	HttpResponse resp;
	const char *headers[2];
	int			nheaders = 0;
	bool		is_post = strcmp(method, "POST") == 0;

	memset(r, 0, sizeof(*r));

	if (yookassa_shop_id == NULL || yookassa_shop_id[0] == '\0' ||
		yookassa_secret_key == NULL || yookassa_secret_key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("billing.yookassa_shop_id and billing.yookassa_secret_key are not set"),
				 errhint("Set both in postgresql.conf (or ALTER SYSTEM) and reload.")));

	req.url = http_url(yookassa_api_base, path, NULL);
	req.post = is_post;
	req.body = json_body ? json_body : "{}";
	req.authorization = basic_authorization();	/* http_perform wipes it */
	if (is_post)
		headers[nheaders++] = "Content-Type: application/json";
	if (idempotence_key)
		headers[nheaders++] = psprintf("Idempotence-Key: %s", idempotence_key);
	req.headers = headers;
	req.nheaders = nheaders;
	req.connect_timeout_ms = yookassa_connect_timeout_ms;
	req.timeout_ms = yookassa_timeout_ms;
	req.service = "yookassa";

	http_perform(&req, &resp);
	if (!resp.responded)
	{
		r->outcome = YOO_UNAVAILABLE;
		r->transport_error = resp.transport_error;
		r->connect_failed = resp.connect_failed;
		return;
	}
	classify_response(r, &resp);
}

void
yookassa_raise(const YooResult *r, const char *what)
{
	const char *code = r->error_code ? r->error_code : "no code";
	const char *msg = r->error_description ? billing_echo(r->error_description) : "(no description)";

	switch (r->outcome)
	{
		case YOO_UNAVAILABLE:
			if (r->http_status == 0)
				ereport(ERROR,
						(errcode(r->connect_failed ? ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION
								 : ERRCODE_CONNECTION_FAILURE),
						 errmsg("could not %s: yookassa is unreachable", what),
						 errdetail("%s.", r->transport_error ? r->transport_error : "No response"),
						 errhint("Nothing was changed; try again later.")));
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not %s: yookassa is unavailable", what),
					 errdetail("YooKassa answered HTTP %ld (%s): %s", r->http_status, code, msg),
					 errhint("Nothing was changed; try again later.")));
			break;
		case YOO_BAD_RESPONSE:
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("could not %s: yookassa sent a response that is not a JSON object", what),
					 errdetail("HTTP status %ld.", r->http_status),
					 errhint("Nothing was changed; try again later.")));
			break;
		case YOO_REFUSED:
			if (r->http_status == 401 || r->http_status == 403)
				ereport(ERROR,
						(errcode(ERRCODE_SQLSERVER_REJECTED_ESTABLISHMENT_OF_SQLCONNECTION),
						 errmsg("could not %s: yookassa refused the shop id or secret key", what),
						 errdetail("YooKassa answered HTTP %ld.", r->http_status),
						 errhint("Check billing.yookassa_shop_id and billing.yookassa_secret_key; nothing was changed.")));
			ereport(ERROR,
					(errcode(r->http_status == 404 ? ERRCODE_NO_DATA_FOUND :
							 /* a key reused with other parameters, or a wrong state */
							 (r->error_code && strcmp(r->error_code, "invalid_request") != 0) ?
							 ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE :
							 ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("could not %s: yookassa refused the request", what),
					 errdetail("YooKassa answered HTTP %ld (%s): %s", r->http_status, code, msg),
					 errhint("Nothing was changed.")));
			break;
		case YOO_OK:
			break;
	}
	elog(ERROR, "yookassa_raise called for a successful call");
}

Jsonb *
yookassa_call(const char *method, const char *path, const char *json_body,
			  const char *idempotence_key, const char *what)
{
	YooResult	r;

	yookassa_request(&r, method, path, json_body, idempotence_key);
	if (r.outcome != YOO_OK)
		yookassa_raise(&r, what);
	return r.body;
}

bool
yookassa_unreachable(const YooResult *r)
{
	return r->outcome == YOO_UNAVAILABLE && r->http_status == 0;
}

void
yookassa_log_failure(const pg_uuid_t *payment_id, const YooResult *r)
{
	ereport(WARNING,
			(errmsg("yookassa poll of payment %s failed; retrying after backoff",
					billing_uuid_str(payment_id)),
			 r->http_status ?
			 errdetail("YooKassa answered HTTP %ld (%s): %s", r->http_status,
					   r->error_code ? r->error_code : "no code",
					   r->error_description ? billing_echo(r->error_description) : "(no description)") :
			 errdetail("%s.", r->transport_error ? r->transport_error : "No response")));
}

/* ---------------------------------------------------------------------
 * Ids, keys, amounts
 * --------------------------------------------------------------------- */

bool
yookassa_id_ok(const char *id)
{
	size_t		n = 0;

	if (id == NULL)
		return false;
	for (const char *p = id; *p; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return false;
	return n > 0 && n <= YOO_MAX_ID;
}

void
yookassa_check_id(const char *id, const char *what)
{
	if (!yookassa_id_ok(id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed yookassa %s id", what)));
}

char *
yookassa_idempotence_key(const char *what, const pg_uuid_t *payment_id)
{
	char	   *key = psprintf("billing-%s-%s", what, billing_uuid_str(payment_id));

	Assert(strlen(key) <= 64);
	return key;
}

char *
yookassa_amount(int64 minor_units, const char *currency)
{
	int			exp = currency_exponent(currency);
	int64		scale = 1;

	if (minor_units <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("amount must be positive to go to yookassa")));
	if (exp < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("yookassa cannot charge in %s", currency)));
	if (exp == 0)
		return psprintf(INT64_FORMAT, minor_units);
	for (int i = 0; i < exp; i++)
		scale *= 10;
	return psprintf(INT64_FORMAT ".%0*" INT64_MODIFIER "d",
					minor_units / scale, exp, minor_units % scale);
}

void
yookassa_append_amount(StringInfo s, int64 minor_units, const char *currency)
{
	appendStringInfoString(s, "{\"value\": ");
	escape_json(s, yookassa_amount(minor_units, currency));
	appendStringInfoString(s, ", \"currency\": ");
	escape_json(s, currency);
	appendStringInfoChar(s, '}');
}

/* ---------------------------------------------------------------------
 * 54-FZ receipts
 * --------------------------------------------------------------------- */

/* YooKassa's limit for description and receipt item texts. */
#define YOO_TEXT_CHARS 128

static char *
clip_text(const char *s)
{
	int			len = strlen(s);
	int			n = 0;
	int			bytes = 0;

	while (bytes < len && n < YOO_TEXT_CHARS)
	{
		bytes += pg_mblen(s + bytes);
		n++;
	}
	return pnstrdup(s, Min(bytes, len));
}

void
yookassa_append_receipt(StringInfo b, const char *email, const char *item, int64 total,
			   const char *currency)
{
	appendStringInfoString(b, ", \"receipt\": {\"customer\": {\"email\": ");
	escape_json(b, email);
	appendStringInfoString(b, "}, \"items\": [{\"description\": ");
	escape_json(b, item);
	appendStringInfoString(b, ", \"quantity\": \"1.00\", \"amount\": ");
	yookassa_append_amount(b, total, currency);
	appendStringInfo(b, ", \"vat_code\": %d, \"payment_subject\": \"service\", "
					 "\"payment_mode\": \"full_payment\"}]}", yookassa_vat_code);
}

char *
yookassa_customer_email(const pg_uuid_t *user_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {UUIDOID};
	Datum		values[1] = {UUIDPGetDatum(user_id)};
	char	   *email = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	SPI_connect();
	if (billing_spi_exec(&plan, "SELECT email FROM billing.customers WHERE user_id = $1",
						 1, types, values, NULL, true, 1) == 1)
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		email = billing_spi_text(0, 1);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return email;
}

void
yookassa_require_email(const char *email)
{
	if (email == NULL || email[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("a 54-FZ receipt needs the customer's e-mail, and none is known"),
				 errdetail("billing.yookassa_receipts is on."),
				 errhint("Record the customer's e-mail (billing.customers), or turn receipts off.")));
}

char *
yookassa_item_text(const char *title, int32 months)
{
	return clip_text(psprintf("%s, %d month%s", title, months, months == 1 ? "" : "s"));
}
