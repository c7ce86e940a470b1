/*
 * yookassa_webhook.c — billing.yookassa_webhook(body, sender): YooKassa's
 * HTTP notifications.  YooKassa signs nothing, so the body is never
 * trusted: only the object's id is taken from it, the payment or refund is
 * read back from the API, and what the API says is applied through the same
 * path as the poller (yookassa_apply.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "common.h"
#include "stripe.h"				/* billing_json_*: reading JSON objects */
#include "yookassa.h"

#define MAX_NOTIFICATION_BODY (1024 * 1024)

static void
malformed(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed yookassa notification"),
			 errdetail("%s", why)));
}

/* billing.yookassa_notify_from, when set, must contain the sender. */
static void
check_sender(const char *sender)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	bool		ok;

	if (yookassa_notify_from == NULL || yookassa_notify_from[0] == '\0')
		return;
	if (sender == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("yookassa notification without a sender address"),
				 errdetail("billing.yookassa_notify_from is set, and the HTTP layer passed no client address."),
				 errhint("Let the proxy set X-Forwarded-For, or clear billing.yookassa_notify_from.")));
	/* An address, nothing else (the header is the sender's to write). */
	ok = strlen(sender) > 0 && strlen(sender) <= 45;
	for (const char *p = sender; *p; p++)
		ok &= ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			   (*p >= 'A' && *p <= 'F') || *p == '.' || *p == ':');
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("yookassa notification from \"%s\" is not allowed", billing_echo(sender)),
				 errdetail("That is not an IP address.")));
	values[0] = CStringGetTextDatum(sender);
	values[1] = CStringGetTextDatum(yookassa_notify_from);
	SPI_connect();
	billing_spi_exec(&plan,
					 "SELECT coalesce(bool_or($1::inet <<= btrim(n)::cidr), false) "
					 "FROM unnest(string_to_array($2, ',')) AS n WHERE btrim(n) <> ''",
					 2, types, values, NULL, true, 1);
	ok = DatumGetBool(billing_spi_get(0, 1, &isnull));
	SPI_finish();
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("yookassa notification from %s is not allowed", billing_echo(sender)),
				 errhint("YooKassa's addresses are listed in billing.yookassa_notify_from.")));
}

static bool
find_payment(SPIPlanPtr *plan, const char *sql, const char *key, pg_uuid_t *out)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(key)};
	bool		isnull;
	bool		found;

	SPI_connect();
	found = billing_spi_exec(plan, sql, 1, types, values, NULL, false, 1) == 1;
	if (found)
		memcpy(out, DatumGetUUIDP(billing_spi_get(0, 1, &isnull)), sizeof(pg_uuid_t));
	SPI_finish();
	return found;
}

/* The status the event names: "payment.succeeded" -> "succeeded". */
static const char *
event_status(const char *event, const char *prefix)
{
	size_t		n = strlen(prefix);

	if (strncmp(event, prefix, n) == 0)
		return event + n;
	return NULL;
}

PG_FUNCTION_INFO_V1(billing_yookassa_webhook);
Datum
billing_yookassa_webhook(PG_FUNCTION_ARGS)
{
	text	   *body;
	size_t		body_len;
	Jsonb	   *note;
	char	   *type;
	char	   *event;
	JsonbContainer *obj;
	char	   *object_id;
	const char *want = NULL;
	bool		is_refund = false;
	YooResult	r;
	JsonbContainer *fetched = NULL;
	char	   *fetched_status = NULL;
	pg_uuid_t	payment_id;
	bool		have_payment = false;
	const char *result;
	const char *status = NULL;
	StringInfoData out;

	BILLING_REQUIRE_PRIMARY(fcinfo);
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("body must not be null")));
	check_sender(PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)));

	body = PG_GETARG_TEXT_PP(0);
	body_len = VARSIZE_ANY_EXHDR(body);
	if (body_len > MAX_NOTIFICATION_BODY)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("yookassa notification body is too large"),
				 errdetail("The body has %zu bytes; the limit is %d.", body_len, MAX_NOTIFICATION_BODY)));
	note = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text_to_cstring(body))));
	if (!JB_ROOT_IS_OBJECT(note))
		malformed("The body is not a JSON object.");
	type = billing_json_str(&note->root, "type");
	event = billing_json_str(&note->root, "event");
	obj = billing_json_obj(&note->root, "object");
	object_id = obj ? billing_json_str(obj, "id") : NULL;
	if (type == NULL || strcmp(type, "notification") != 0)
		malformed("The \"type\" is not \"notification\".");
	if (event == NULL || strlen(event) > 64)
		malformed("The notification has no valid \"event\".");
	if (object_id == NULL || !yookassa_id_ok(object_id))
		malformed("The notification has no valid \"object.id\".");

	if ((want = event_status(event, "payment.")) != NULL)
		is_refund = false;
	else if ((want = event_status(event, "refund.")) != NULL)
		is_refund = true;
	else
	{
		/* Acknowledged, so YooKassa stops sending it; nothing of ours. */
		result = "ignored";
		goto answer;
	}

	/* The only thing taken from the body: which object to read back. */
	yookassa_request(&r, "GET",
					 psprintf(is_refund ? "/v3/refunds/%s" : "/v3/payments/%s", object_id),
					 NULL, NULL);
	if (r.outcome == YOO_REFUSED && r.http_status == 404)
	{
		ereport(WARNING,
				(errmsg("yookassa notification %s names %s %s, which yookassa does not know",
						billing_echo(event), is_refund ? "refund" : "payment", object_id),
				 errdetail("Nothing was changed.")));
		result = "unknown_object";
		goto answer;
	}
	if (r.outcome != YOO_OK)
		/* An error answer: YooKassa delivers the notification again. */
		yookassa_raise(&r, is_refund ? "read the yookassa refund" : "read the yookassa payment");
	fetched = &r.body->root;
	fetched_status = billing_json_str(fetched, "status");

	/* Which payment?  Only by ids YooKassa gave us for our own objects. */
	if (is_refund)
	{
		static SPIPlanPtr by_refund = NULL;
		static SPIPlanPtr by_payment = NULL;
		char	   *yoo_payment = billing_json_str(fetched, "payment_id");

		have_payment = find_payment(&by_refund,
									"SELECT id FROM billing.payments "
									"WHERE provider_refund_id = $1 AND provider = 'yookassa'",
									object_id, &payment_id);
		/* A refund we asked for but did not record, or one made in the dashboard. */
		if (!have_payment && yoo_payment && yookassa_id_ok(yoo_payment))
			have_payment = find_payment(&by_payment,
										"SELECT id FROM billing.payments "
										"WHERE provider_session_id = $1 AND provider = 'yookassa'",
										yoo_payment, &payment_id);
	}
	else
	{
		static SPIPlanPtr by_session = NULL;
		static SPIPlanPtr by_metadata = NULL;
		JsonbContainer *md = billing_json_obj(fetched, "metadata");
		char	   *md_pid = md ? billing_json_str(md, "payment_id") : NULL;

		have_payment = find_payment(&by_session,
									"SELECT id FROM billing.payments "
									"WHERE provider_session_id = $1 AND provider = 'yookassa'",
									object_id, &payment_id);

		/*
		 * A payment YooKassa made while we did not record its id: the
		 * metadata YooKassa itself returns names our invoiced payment
		 * whose checkout's transaction rolled back, or our automatic charge
		 * (pending from the start) whose answer was lost or is still being
		 * recorded (yookassa_apply_payment then waits for the charge's row
		 * lock).  yookassa_apply_payment checks the amount and currency.
		 */
		if (!have_payment && md_pid && billing_parse_uuid(md_pid, -1, NULL))
			have_payment = find_payment(&by_metadata,
										"SELECT id FROM billing.payments "
										"WHERE id = $1::uuid AND provider_session_id IS NULL "
										"AND (status = 'invoiced' OR (status = 'pending' "
										"     AND renewal_of IS NOT NULL AND provider = 'yookassa'))",
										md_pid, &payment_id);
	}
	if (!have_payment)
	{
		ereport(WARNING,
				(errmsg("yookassa notification %s names %s %s, which is none of our payments",
						billing_echo(event), is_refund ? "refund" : "payment", object_id),
				 errdetail("Nothing was changed.")));
		result = "unknown_payment";
		goto answer;
	}

	/*
	 * What YooKassa says now must be what the notification announced;
	 * otherwise the notification is forged or stale: nothing is applied
	 * (the poller and the real notification settle the payment).
	 */
	if (fetched_status == NULL || strcmp(fetched_status, want) != 0)
	{
		ereport(WARNING,
				(errmsg("yookassa notification %s for %s %s contradicts the api",
						billing_echo(event), is_refund ? "refund" : "payment", object_id),
				 errdetail("YooKassa says the %s is %s; nothing was changed.",
						   is_refund ? "refund" : "payment",
						   fetched_status ? billing_echo(fetched_status) : "in no known state")));
		result = "contradiction";
		goto answer;
	}

	if (is_refund)
		result = yookassa_apply_refund(&payment_id, fetched, "webhook", &status);
	else
		result = yookassa_apply_payment(&payment_id, fetched, "webhook", false, &status);

answer:
	initStringInfo(&out);
	appendStringInfoString(&out, "{\"received\": true, \"event\": ");
	escape_json(&out, event ? event : "");
	appendStringInfoString(&out, ", \"result\": ");
	escape_json(&out, result);
	if (have_payment)
	{
		appendStringInfoString(&out, ", \"payment_id\": ");
		escape_json(&out, billing_uuid_str(&payment_id));
		appendStringInfoString(&out, ", \"status\": ");
		escape_json(&out, status ? status : "unknown");
	}
	appendStringInfoChar(&out, '}');
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}
