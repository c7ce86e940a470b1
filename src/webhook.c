/*
 * webhook.c — billing.stripe_webhook(body, signature): verifies the
 * Stripe-Signature header over the raw body, stores each event once by its
 * id, and applies the events that concern our payments.
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "common.h"
#include "clock.h"
#include "stripe.h"

#define MAX_SIGNATURE_HEADER 4096
#define MAX_SIGNATURES 16
#define MAX_EVENT_BODY (1024 * 1024)
#define SHA256_LEN 32

static void
malformed_header(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed stripe signature header"),
			 errdetail("%s", why),
			 errhint("Stripe sends \"t=<unix time>,v1=<hex HMAC-SHA256>\".")));
}

/*
 * Stripe's scheme (https://stripe.com/docs/webhooks#verify-manually): the
 * header is "t=<timestamp>,v1=<sig>[,v1=<sig>...][,v0=...]"; a signature is
 * hex HMAC-SHA256(secret, "<t>.<raw body>").  Any v1 matching any configured
 * secret passes (secrets rotate, Stripe signs with each active one).  The
 * comparison is constant-time; the timestamp must lie within the tolerance
 * of billing.now(), in either direction.
 */
static void
verify_signature(const char *body, size_t body_len, const char *header)
{
	size_t		hlen = strlen(header);
	int64		t = -1;
	unsigned char sigs[MAX_SIGNATURES][SHA256_LEN];
	int			nsigs = 0;
	const char *p = header;
	bool		matched = false;
	char	   *payload;
	size_t		tlen;
	char		tbuf[32];
	int64		now_s;
	int			i,
				j;

	if (hlen == 0)
		malformed_header("The header is empty.");
	if (hlen > MAX_SIGNATURE_HEADER)
		malformed_header("The header is too long.");

	while (*p)
	{
		const char *item = p;
		const char *eq;
		const char *end = strchr(p, ',');
		size_t		klen,
					vlen;
		const char *v;

		if (end == NULL)
			end = p + strlen(p);
		p = *end ? end + 1 : end;
		while (item < end && *item == ' ')
			item++;
		eq = memchr(item, '=', end - item);
		if (eq == NULL)
			malformed_header("An element has no \"=\".");
		klen = eq - item;
		v = eq + 1;
		vlen = end - v;
		while (vlen > 0 && v[vlen - 1] == ' ')
			vlen--;

		if (klen == 1 && item[0] == 't')
		{
			if (t >= 0)
				malformed_header("The timestamp appears twice.");
			if (vlen == 0 || vlen > 12)
				malformed_header("The timestamp is not a Unix time.");
			t = 0;
			for (i = 0; i < (int) vlen; i++)
			{
				if (v[i] < '0' || v[i] > '9')
					malformed_header("The timestamp is not a Unix time.");
				t = t * 10 + (v[i] - '0');
			}
		}
		else if (klen == 2 && item[0] == 'v' && item[1] == '1')
		{
			/* Not 64 hex digits: cannot be ours, ignore like other schemes. */
			if (vlen != 2 * SHA256_LEN || nsigs >= MAX_SIGNATURES)
				continue;
			for (i = 0; i < SHA256_LEN; i++)
			{
				int			hi = billing_hexval(v[2 * i]),
							lo = billing_hexval(v[2 * i + 1]);

				if (hi < 0 || lo < 0)
					break;
				sigs[nsigs][i] = (unsigned char) (hi << 4 | lo);
			}
			if (i == SHA256_LEN)
				nsigs++;
		}
		/* other schemes (v0 test signatures) are ignored, as Stripe says */
	}
	if (t < 0)
		malformed_header("There is no timestamp (t=).");
	if (nsigs == 0)
		malformed_header("There is no v1 signature.");

	if (stripe_webhook_secret_count() == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("billing.stripe_webhook_secrets is not set"),
				 errhint("Set it to the endpoint's signing secret (whsec_...) and reload.")));

	/* The signed payload: "<t>.<body>", the timestamp exactly as sent. */
	snprintf(tbuf, sizeof(tbuf), INT64_FORMAT ".", t);
	tlen = strlen(tbuf);
	payload = palloc(tlen + body_len);
	memcpy(payload, tbuf, tlen);
	memcpy(payload + tlen, body, body_len);

	for (j = 0; j < stripe_webhook_secret_count(); j++)
	{
		const char *secret = stripe_webhook_secret(j);
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;

		if (HMAC(EVP_sha256(), secret, (int) strlen(secret),
				 (const unsigned char *) payload, tlen + body_len, mac, &maclen) == NULL ||
			maclen != SHA256_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not compute HMAC-SHA256")));
		/* Compare with every candidate; no early exit that timing could reveal. */
		for (i = 0; i < nsigs; i++)
			matched |= (CRYPTO_memcmp(mac, sigs[i], SHA256_LEN) == 0);
	}
	pfree(payload);

	if (!matched)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("stripe signature does not match"),
				 errdetail("No v1 signature matches the body with any configured webhook secret."),
				 errhint("Check billing.stripe_webhook_secrets and that the body reaches the function byte for byte.")));

	now_s = (int64) timestamptz_to_time_t(billing_now());
	if (t < now_s - stripe_webhook_tolerance || t > now_s + stripe_webhook_tolerance)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("stripe signature timestamp is outside the tolerance"),
				 errdetail("Signed at Unix time " INT64_FORMAT ", now is " INT64_FORMAT "; the tolerance is %d s.",
						   t, now_s, stripe_webhook_tolerance)));
}

static void
malformed_event(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed stripe event"),
			 errdetail("%s", why)));
}

static bool
is_token(const char *s, bool allow_dot)
{
	size_t		n = 0;

	for (; *s; s++, n++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || (allow_dot && *s == '.')))
			return false;
	return n > 0 && n <= 255;
}

/* The payment a uuid/text query returns, if any. */
static bool
find_payment(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *values,
			 pg_uuid_t *out)
{
	bool		isnull;

	if (billing_spi_exec(plan, sql, nargs, types, values, NULL, false, 1) == 0)
		return false;
	memcpy(out, DatumGetUUIDP(billing_spi_get(0, 1, &isnull)), sizeof(pg_uuid_t));
	return true;
}

static bool
is_refund_event(const char *type)
{
	return strcmp(type, "refund.created") == 0 || strcmp(type, "refund.updated") == 0 ||
		strcmp(type, "refund.failed") == 0 || strcmp(type, "charge.refund.updated") == 0;
}

static bool
is_session_event(const char *type)
{
	return strcmp(type, "checkout.session.completed") == 0 ||
		strcmp(type, "checkout.session.async_payment_succeeded") == 0 ||
		strcmp(type, "checkout.session.async_payment_failed") == 0 ||
		strcmp(type, "checkout.session.expired") == 0;
}

PG_FUNCTION_INFO_V1(billing_stripe_webhook);
Datum
billing_stripe_webhook(PG_FUNCTION_ARGS)
{
	text	   *body;
	char	   *header;
	char	   *body_str;
	size_t		body_len;
	Jsonb	   *event;
	JsonbContainer *data;
	JsonbContainer *obj;
	char	   *event_id;
	char	   *type;
	char	   *object_id;
	int64		created;
	TimestampTz created_ts;
	pg_uuid_t	payment_id;
	bool		have_payment = false;
	const char *result;
	const char *status = NULL;
	StringInfoData out;
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr update_plan = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("body must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("missing stripe signature"),
				 errhint("Pass the Stripe-Signature header of the request.")));
	body = PG_GETARG_TEXT_PP(0);
	body_len = VARSIZE_ANY_EXHDR(body);
	if (body_len > MAX_EVENT_BODY)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("stripe event body is too large"),
				 errdetail("The body has %zu bytes; the limit is %d.", body_len, MAX_EVENT_BODY)));
	header = text_to_cstring(PG_GETARG_TEXT_PP(1));

	/* Nothing is read from the body, or written anywhere, before this. */
	verify_signature(VARDATA_ANY(body), body_len, header);

	body_str = text_to_cstring(body);
	event = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(body_str)));
	if (!JB_ROOT_IS_OBJECT(event))
		malformed_event("The body is not a JSON object.");
	event_id = stripe_json_str(&event->root, "id");
	type = stripe_json_str(&event->root, "type");
	data = stripe_json_obj(&event->root, "data");
	obj = data ? stripe_json_obj(data, "object") : NULL;
	if (event_id == NULL || !is_token(event_id, false))
		malformed_event("The event has no valid \"id\".");
	if (type == NULL || !is_token(type, true))
		malformed_event("The event has no valid \"type\".");
	if (obj == NULL)
		malformed_event("The event has no \"data.object\".");
	if (!stripe_json_int(&event->root, "created", &created) ||
		created <= 0 || created > ((int64) 1) << 40)
		malformed_event("The event has no valid \"created\" time.");
	created_ts = time_t_to_timestamptz((pg_time_t) created);
	object_id = stripe_json_str(obj, "id");

	SPI_connect();

	/* Once per event id: a replay (or Stripe's retry) stops here. */
	{
		Oid			types[5] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, JSONBOID};
		Datum		values[5] = {CStringGetTextDatum(event_id), CStringGetTextDatum(type),
								 TimestampTzGetDatum(created_ts),
								 object_id ? CStringGetTextDatum(object_id) : (Datum) 0,
								 JsonbPGetDatum(event)};
		char		nulls[5] = {' ', ' ', ' ', object_id ? ' ' : 'n', ' '};

		if (billing_spi_exec(&insert_plan,
							 "INSERT INTO billing.stripe_events (id, type, created, object_id, payload) "
							 "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
							 5, types, values, nulls, false, 0) == 0)
		{
			SPI_finish();
			initStringInfo(&out);
			appendStringInfoString(&out, "{\"received\": true, \"event\": ");
			escape_json(&out, event_id);
			appendStringInfoString(&out, ", \"result\": \"duplicate\"}");
			PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
		}
	}

	/*
	 * Which payment?  Only by the ids Stripe gave us for our own objects
	 * (session, refund, payment intent): what the body claims in metadata
	 * never picks a payment on its own.
	 */
	if (is_session_event(type) && object_id)
	{
		static SPIPlanPtr by_session = NULL;
		static SPIPlanPtr by_metadata = NULL;
		Oid			t1[1] = {TEXTOID};
		Datum		v1[1] = {CStringGetTextDatum(object_id)};

		have_payment = find_payment(&by_session,
									"SELECT id FROM billing.payments WHERE provider_session_id = $1",
									1, t1, v1, &payment_id);
		if (!have_payment)
		{
			/*
			 * A session we made but did not record, because the transaction
			 * of checkout() rolled back after Stripe answered: it carries our
			 * payment id and user id, and must be for an invoiced payment
			 * with no session yet.  stripe_apply_session then checks amount
			 * and currency.
			 */
			JsonbContainer *md = stripe_json_obj(obj, "metadata");
			pg_uuid_t	pid,
						uid;
			char	   *ref = stripe_json_str(obj, "client_reference_id");

			if (md && billing_parse_uuid(stripe_json_str(md, "payment_id"), -1, &pid) &&
				billing_parse_uuid(stripe_json_str(md, "user_id"), -1, &uid) &&
				billing_parse_uuid(ref, -1, &payment_id) && memcmp(&pid, &payment_id, sizeof(pid)) == 0)
			{
				Oid			t2[2] = {UUIDOID, UUIDOID};
				Datum		v2[2] = {UUIDPGetDatum(&pid), UUIDPGetDatum(&uid)};

				have_payment = find_payment(&by_metadata,
											"SELECT id FROM billing.payments WHERE id = $1 AND user_id = $2 "
											"AND provider_session_id IS NULL AND status = 'invoiced'",
											2, t2, v2, &payment_id);
			}
		}
		if (have_payment)
			result = stripe_apply_session(&payment_id, obj, type, &created_ts, "webhook",
										  event_id, &status);
		else
			result = "unknown_payment";
	}
	else if (is_refund_event(type) && object_id)
	{
		static SPIPlanPtr by_refund = NULL;
		static SPIPlanPtr by_intent = NULL;
		Oid			t1[1] = {TEXTOID};
		Datum		v1[1] = {CStringGetTextDatum(object_id)};
		char	   *pi = stripe_json_str(obj, "payment_intent");

		have_payment = find_payment(&by_refund,
									"SELECT id FROM billing.payments WHERE provider_refund_id = $1",
									1, t1, v1, &payment_id);
		if (!have_payment && pi)
		{
			/* A refund we asked for but did not record, or one made in Stripe's dashboard. */
			v1[0] = CStringGetTextDatum(pi);
			have_payment = find_payment(&by_intent,
										"SELECT id FROM billing.payments WHERE provider_payment_intent = $1",
										1, t1, v1, &payment_id);
		}
		if (have_payment)
			result = stripe_apply_refund(&payment_id, obj, &created_ts, "webhook",
										 event_id, &status);
		else
			result = "unknown_payment";
	}
	else
		result = "ignored";		/* acknowledged: Stripe stops sending it */

	if (strcmp(result, "unknown_payment") == 0)
		ereport(WARNING,
				(errmsg("stripe event %s (%s) refers to no payment of ours",
						billing_echo(event_id), billing_echo(type)),
				 errdetail("Object %s; the event was recorded and not applied.",
						   object_id ? billing_echo(object_id) : "?")));

	{
		Oid			types[3] = {TEXTOID, UUIDOID, TEXTOID};
		Datum		values[3] = {CStringGetTextDatum(event_id), UUIDPGetDatum(&payment_id),
								 CStringGetTextDatum(result)};
		char		nulls[3] = {' ', have_payment ? ' ' : 'n', ' '};

		billing_spi_exec(&update_plan,
						 "UPDATE billing.stripe_events SET payment_id = $2, result = $3 WHERE id = $1",
						 3, types, values, nulls, false, 0);
	}
	SPI_finish();

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"received\": true, \"event\": ");
	escape_json(&out, event_id);
	appendStringInfoString(&out, ", \"type\": ");
	escape_json(&out, type);
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
