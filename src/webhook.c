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

/* What a Stripe-Signature header carries that we use. */
typedef struct SignatureHeader
{
	int64		t;				/* the signing time, as sent */
	unsigned char sigs[MAX_SIGNATURES][SHA256_LEN];	/* the usable v1 values */
	int			nsigs;
} SignatureHeader;

/* The t= element: a Unix time in decimal digits, nothing else. */
static int64
parse_signature_time(const char *v, size_t vlen)
{
	int64		t = 0;

	if (vlen == 0 || vlen > 12)
		malformed_header("The timestamp is not a Unix time.");
	for (size_t i = 0; i < vlen; i++)
	{
		if (v[i] < '0' || v[i] > '9')
			malformed_header("The timestamp is not a Unix time.");
		t = t * 10 + (v[i] - '0');
	}
	return t;
}

/*
 * A v1 element: 64 hex digits, decoded into out.  Anything else cannot be
 * ours, and is ignored like other schemes rather than refused.
 */
static bool
parse_signature_v1(const char *v, size_t vlen, unsigned char *out)
{
	if (vlen != 2 * SHA256_LEN)
		return false;
	for (int i = 0; i < SHA256_LEN; i++)
	{
		int			hi = billing_hexval(v[2 * i]),
					lo = billing_hexval(v[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (unsigned char) (hi << 4 | lo);
	}
	return true;
}

/*
 * Split the header into its comma-separated key=value elements and keep
 * the timestamp and the v1 signatures; other schemes (v0 test signatures)
 * are ignored, as Stripe says.  A header without a timestamp or without a
 * usable v1 signature is refused here, before any HMAC is computed.
 */
static void
parse_signature_header(const char *header, SignatureHeader *sh)
{
	size_t		hlen = strlen(header);
	const char *p = header;

	sh->t = -1;
	sh->nsigs = 0;
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
			if (sh->t >= 0)
				malformed_header("The timestamp appears twice.");
			sh->t = parse_signature_time(v, vlen);
		}
		else if (klen == 2 && item[0] == 'v' && item[1] == '1' &&
				 sh->nsigs < MAX_SIGNATURES &&
				 parse_signature_v1(v, vlen, sh->sigs[sh->nsigs]))
			sh->nsigs++;
	}
	if (sh->t < 0)
		malformed_header("There is no timestamp (t=).");
	if (sh->nsigs == 0)
		malformed_header("There is no v1 signature.");
}

/*
 * Does any v1 signature match HMAC-SHA256(secret, "<t>.<body>") for any
 * configured secret?  Every candidate is compared with every secret, in
 * constant time and with no early exit that timing could reveal.
 */
static bool
signature_matches(const char *body, size_t body_len, const SignatureHeader *sh)
{
	bool		matched = false;
	char	   *payload;
	size_t		tlen;
	char		tbuf[32];

	/* The signed payload: "<t>.<body>", the timestamp exactly as sent. */
	snprintf(tbuf, sizeof(tbuf), INT64_FORMAT ".", sh->t);
	tlen = strlen(tbuf);
	payload = palloc(tlen + body_len);
	memcpy(payload, tbuf, tlen);
	memcpy(payload + tlen, body, body_len);

	for (int j = 0; j < stripe_webhook_secret_count(); j++)
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
		for (int i = 0; i < sh->nsigs; i++)
			matched |= (CRYPTO_memcmp(mac, sh->sigs[i], SHA256_LEN) == 0);
	}
	pfree(payload);
	return matched;
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
	SignatureHeader sh;
	int64		now_s;

	parse_signature_header(header, &sh);

	if (stripe_webhook_secret_count() == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("billing.stripe_webhook_secrets is not set"),
				 errhint("Set it to the endpoint's signing secret (whsec_...) and reload.")));

	if (!signature_matches(body, body_len, &sh))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("stripe signature does not match"),
				 errdetail("No v1 signature matches the body with any configured webhook secret."),
				 errhint("Check billing.stripe_webhook_secrets and that the body reaches the function byte for byte.")));

	now_s = (int64) timestamptz_to_time_t(billing_now());
	if (sh.t < now_s - stripe_webhook_tolerance || sh.t > now_s + stripe_webhook_tolerance)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("stripe signature timestamp is outside the tolerance"),
				 errdetail("Signed at Unix time " INT64_FORMAT ", now is " INT64_FORMAT "; the tolerance is %d s.",
						   sh.t, now_s, stripe_webhook_tolerance)));
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

static bool
is_intent_event(const char *type)
{
	return strcmp(type, "payment_intent.succeeded") == 0 ||
		strcmp(type, "payment_intent.payment_failed") == 0 ||
		strcmp(type, "payment_intent.requires_action") == 0 ||
		strcmp(type, "payment_intent.canceled") == 0;
}

/* An event as read from a verified body: what the steps below need of it. */
typedef struct StripeEvent
{
	Jsonb	   *event;			/* the whole body, stored as the payload */
	char	   *id;
	char	   *type;
	JsonbContainer *object;		/* data.object */
	char	   *object_id;		/* data.object.id, or NULL */
	TimestampTz created;
} StripeEvent;

/* What applying an event came to, for the event row and the answer. */
typedef struct EventOutcome
{
	const char *result;
	bool		have_payment;
	pg_uuid_t	payment_id;		/* valid when have_payment */
	const char *status;			/* the payment's status afterwards, or NULL */
} EventOutcome;

/*
 * Parse the verified body and check the fields every later step relies on,
 * so that a malformed event is refused before anything is written.
 */
static void
parse_event(text *body, StripeEvent *ev)
{
	char	   *body_str = text_to_cstring(body);
	JsonbContainer *data;
	int64		created;

	ev->event = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(body_str)));
	if (!JB_ROOT_IS_OBJECT(ev->event))
		malformed_event("The body is not a JSON object.");
	ev->id = billing_json_str(&ev->event->root, "id");
	ev->type = billing_json_str(&ev->event->root, "type");
	data = billing_json_obj(&ev->event->root, "data");
	ev->object = data ? billing_json_obj(data, "object") : NULL;
	if (ev->id == NULL || !is_token(ev->id, false))
		malformed_event("The event has no valid \"id\".");
	if (ev->type == NULL || !is_token(ev->type, true))
		malformed_event("The event has no valid \"type\".");
	if (ev->object == NULL)
		malformed_event("The event has no \"data.object\".");
	if (!billing_json_int(&ev->event->root, "created", &created) ||
		created <= 0 || created > ((int64) 1) << 40)
		malformed_event("The event has no valid \"created\" time.");
	ev->created = time_t_to_timestamptz((pg_time_t) created);
	ev->object_id = billing_json_str(ev->object, "id");
}

/*
 * Store the event, once per event id.  Returns false when it was already
 * stored: a replay, or Stripe's retry, stops there.
 */
static bool
record_event(const StripeEvent *ev)
{
	static SPIPlanPtr insert_plan = NULL;
	Oid			types[5] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, JSONBOID};
	Datum		values[5] = {CStringGetTextDatum(ev->id), CStringGetTextDatum(ev->type),
							 TimestampTzGetDatum(ev->created),
							 ev->object_id ? CStringGetTextDatum(ev->object_id) : (Datum) 0,
							 JsonbPGetDatum(ev->event)};
	char		nulls[5] = {' ', ' ', ' ', ev->object_id ? ' ' : 'n', ' '};

	return billing_spi_exec(&insert_plan,
							"INSERT INTO billing.stripe_events (id, type, created, object_id, payload) "
							"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
							5, types, values, nulls, false, 0) != 0;
}

/*
 * The payment a checkout session event is about: the one that recorded this
 * session id.  Failing that, a session we made but did not record, because
 * the transaction of checkout() rolled back after Stripe answered: it
 * carries our payment id and user id, and must be for an invoiced payment
 * with no session yet.  stripe_apply_session then checks amount and
 * currency.
 */
static bool
session_payment(const StripeEvent *ev, pg_uuid_t *payment_id)
{
	static SPIPlanPtr by_session = NULL;
	static SPIPlanPtr by_metadata = NULL;
	Oid			t1[1] = {TEXTOID};
	Datum		v1[1] = {CStringGetTextDatum(ev->object_id)};
	JsonbContainer *md;
	pg_uuid_t	pid,
				uid;
	char	   *ref;

	if (find_payment(&by_session,
					 "SELECT id FROM billing.payments WHERE provider_session_id = $1",
					 1, t1, v1, payment_id))
		return true;

	md = billing_json_obj(ev->object, "metadata");
	ref = billing_json_str(ev->object, "client_reference_id");
	if (md && billing_parse_uuid(billing_json_str(md, "payment_id"), -1, &pid) &&
		billing_parse_uuid(billing_json_str(md, "user_id"), -1, &uid) &&
		billing_parse_uuid(ref, -1, payment_id) && memcmp(&pid, payment_id, sizeof(pid)) == 0)
	{
		Oid			t2[2] = {UUIDOID, UUIDOID};
		Datum		v2[2] = {UUIDPGetDatum(&pid), UUIDPGetDatum(&uid)};

		return find_payment(&by_metadata,
							"SELECT id FROM billing.payments WHERE id = $1 AND user_id = $2 "
							"AND provider_session_id IS NULL AND status = 'invoiced'",
							2, t2, v2, payment_id);
	}
	return false;
}

/*
 * The payment a refund event is about: the one that recorded this refund
 * id, else the one whose payment intent was refunded (a refund we asked for
 * but did not record, or one made in Stripe's dashboard).
 */
static bool
refund_payment(const StripeEvent *ev, pg_uuid_t *payment_id)
{
	static SPIPlanPtr by_refund = NULL;
	static SPIPlanPtr by_intent = NULL;
	Oid			t1[1] = {TEXTOID};
	Datum		v1[1] = {CStringGetTextDatum(ev->object_id)};
	char	   *pi = billing_json_str(ev->object, "payment_intent");

	if (find_payment(&by_refund,
					 "SELECT id FROM billing.payments WHERE provider_refund_id = $1",
					 1, t1, v1, payment_id))
		return true;
	if (pi == NULL)
		return false;
	v1[0] = CStringGetTextDatum(pi);
	return find_payment(&by_intent,
						"SELECT id FROM billing.payments WHERE provider_payment_intent = $1",
						1, t1, v1, payment_id);
}

/*
 * The payment a payment intent event is about: an automatic charge that
 * recorded this intent as its own, or a paid checkout whose charge it is.
 * Failing that, an intent we made but did not record (a crash after the
 * call): it carries our payment id and user id, and must be for a pending
 * automatic charge with no intent yet, or for a checkout that saves its
 * method.  stripe_apply_intent then checks the amount.
 */
static bool
intent_payment(const StripeEvent *ev, pg_uuid_t *payment_id)
{
	static SPIPlanPtr by_intent = NULL;
	static SPIPlanPtr by_metadata = NULL;
	Oid			t1[1] = {TEXTOID};
	Datum		v1[1] = {CStringGetTextDatum(ev->object_id)};
	JsonbContainer *md;
	pg_uuid_t	pid,
				uid;

	if (find_payment(&by_intent,
					 "SELECT id FROM billing.payments "
					 "WHERE provider_session_id = $1 AND renewal_of IS NOT NULL "
					 "UNION ALL "
					 "SELECT id FROM billing.payments WHERE provider_payment_intent = $1",
					 1, t1, v1, payment_id))
		return true;
	md = billing_json_obj(ev->object, "metadata");
	if (md && billing_parse_uuid(billing_json_str(md, "payment_id"), -1, &pid) &&
		billing_parse_uuid(billing_json_str(md, "user_id"), -1, &uid))
	{
		Oid			t2[2] = {UUIDOID, UUIDOID};
		Datum		v2[2] = {UUIDPGetDatum(&pid), UUIDPGetDatum(&uid)};

		return find_payment(&by_metadata,
							"SELECT id FROM billing.payments WHERE id = $1 AND user_id = $2 "
							"AND ((renewal_of IS NOT NULL AND status = 'pending'"
							"      AND provider_session_id IS NULL) OR save_method)",
							2, t2, v2, payment_id);
	}
	return false;
}

/*
 * Apply the event to the payment it concerns.  Which payment is decided
 * only by the ids Stripe gave us for our own objects (session, refund,
 * payment intent): what the body claims in metadata never picks a payment
 * on its own.  Other event types are acknowledged and ignored, so that
 * Stripe stops sending them.
 */
static void
apply_event(const StripeEvent *ev, EventOutcome *out)
{
	out->have_payment = false;
	out->status = NULL;
	if (is_session_event(ev->type) && ev->object_id)
	{
		out->have_payment = session_payment(ev, &out->payment_id);
		if (out->have_payment)
			out->result = stripe_apply_session(&out->payment_id, ev->object, ev->type,
											   &ev->created, "webhook", ev->id, &out->status);
		else
			out->result = "unknown_payment";
	}
	else if (is_refund_event(ev->type) && ev->object_id)
	{
		out->have_payment = refund_payment(ev, &out->payment_id);
		if (out->have_payment)
			out->result = stripe_apply_refund(&out->payment_id, ev->object, &ev->created,
											  "webhook", ev->id, &out->status);
		else
			out->result = "unknown_payment";
	}
	else if (is_intent_event(ev->type) && ev->object_id)
	{
		out->have_payment = intent_payment(ev, &out->payment_id);
		if (out->have_payment)
			out->result = stripe_apply_intent(&out->payment_id, ev->object, ev->type,
											  &ev->created, "webhook", ev->id, &out->status);
		else
			out->result = "ignored";	/* a checkout's own intent, or not ours */
	}
	else
		out->result = "ignored";

	if (strcmp(out->result, "unknown_payment") == 0)
		ereport(WARNING,
				(errmsg("stripe event %s (%s) refers to no payment of ours",
						billing_echo(ev->id), billing_echo(ev->type)),
				 errdetail("Object %s; the event was recorded and not applied.",
						   ev->object_id ? billing_echo(ev->object_id) : "?")));
}

/* Keep on the event row which payment it touched and what came of it. */
static void
record_outcome(const StripeEvent *ev, const EventOutcome *out)
{
	static SPIPlanPtr update_plan = NULL;
	Oid			types[3] = {TEXTOID, UUIDOID, TEXTOID};
	Datum		values[3] = {CStringGetTextDatum(ev->id), UUIDPGetDatum(&out->payment_id),
							 CStringGetTextDatum(out->result)};
	char		nulls[3] = {' ', out->have_payment ? ' ' : 'n', ' '};

	billing_spi_exec(&update_plan,
					 "UPDATE billing.stripe_events SET payment_id = $2, result = $3 WHERE id = $1",
					 3, types, values, nulls, false, 0);
}

/* The answer to an event already stored: acknowledged, nothing applied. */
static Datum
duplicate_reply(const StripeEvent *ev)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"received\": true, \"event\": ");
	escape_json(&out, ev->id);
	appendStringInfoString(&out, ", \"result\": \"duplicate\"}");
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data));
}

/* The answer to a new event: what was done, and to which payment. */
static Datum
event_reply(const StripeEvent *ev, const EventOutcome *outcome)
{
	StringInfoData out;

	initStringInfo(&out);
	appendStringInfoString(&out, "{\"received\": true, \"event\": ");
	escape_json(&out, ev->id);
	appendStringInfoString(&out, ", \"type\": ");
	escape_json(&out, ev->type);
	appendStringInfoString(&out, ", \"result\": ");
	escape_json(&out, outcome->result);
	if (outcome->have_payment)
	{
		appendStringInfoString(&out, ", \"payment_id\": ");
		escape_json(&out, billing_uuid_str(&outcome->payment_id));
		appendStringInfoString(&out, ", \"status\": ");
		escape_json(&out, outcome->status ? outcome->status : "unknown");
	}
	appendStringInfoChar(&out, '}');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data));
}

PG_FUNCTION_INFO_V1(billing_stripe_webhook);
Datum
billing_stripe_webhook(PG_FUNCTION_ARGS)
{
	text	   *body;
	char	   *header;
	size_t		body_len;
	StripeEvent ev;
	EventOutcome outcome;

	BILLING_REQUIRE_PRIMARY(fcinfo);
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
	parse_event(body, &ev);

	SPI_connect();
	if (!record_event(&ev))
	{
		SPI_finish();
		PG_RETURN_DATUM(duplicate_reply(&ev));
	}
	apply_event(&ev, &outcome);
	record_outcome(&ev, &outcome);
	SPI_finish();

	PG_RETURN_DATUM(event_reply(&ev, &outcome));
}
