/*
 * api.c — the HTTP API's C half: its setting (billing.jwt_user_claim) and the
 * user id of a request from the JWT claims PostgREST verified.  The endpoints
 * themselves are SQL, in sql/parts/80_api.sql.
 */
#include "postgres.h"

#include <ctype.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "api.h"
#include "billing.h"
#include "common.h"

static char *jwt_user_claim = NULL;

/*
 * A claim name is looked up as a top-level key of the JWT's claims; keep it
 * to something a token issuer would plausibly use.
 */
static bool
check_jwt_user_claim(char **newval, void **extra, GucSource source)
{
	const char *p;

	if (*newval == NULL || (*newval)[0] == '\0')
	{
		billing_guc_invalid("billing.jwt_user_claim", *newval);
		GUC_check_errdetail("The claim name must not be empty.");
		return false;
	}
	if (strlen(*newval) > 64)
	{
		billing_guc_invalid("billing.jwt_user_claim", *newval);
		GUC_check_errdetail("The claim name must be at most 64 characters long.");
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
			  *p == '.' || *p == ':' || *p == '/'))
		{
			billing_guc_invalid("billing.jwt_user_claim", *newval);
			GUC_check_errdetail("The claim name may contain only letters, digits and _ - . : /.");
			return false;
		}
	}
	return true;
}

/*
 * Ends the request with HTTP 401 through PostgREST's "PGRST" error: the
 * message is the JSON body, the detail the status and headers.  Outside
 * PostgREST it is an ordinary error whose message is that JSON.
 */
static void
unauthorized(const char *message, const char *detail)
{
	StringInfoData body;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"code\": \"28000\", \"message\": ");
	escape_json(&body, message);
	appendStringInfoString(&body, ", \"details\": ");
	escape_json(&body, detail);
	appendStringInfoString(&body, ", \"hint\": \"Sign in again to get a token from the auth service.\"}");
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE('P', 'G', 'R', 'S', 'T')),
			 errmsg_internal("%s", body.data),
			 errdetail_internal("{\"status\": 401, \"headers\": "
								"{\"WWW-Authenticate\": \"Bearer error=\\\"invalid_token\\\"\"}}")));
}

static JsonbValue *
top_level_claim(Jsonb *claims, const char *name)
{
	JsonbValue	key;

	key.type = jbvString;
	key.val.string.val = (char *) name;
	key.val.string.len = strlen(name);
	return findJsonbValueFromContainer(&claims->root, JB_FOBJECT, &key);
}

/*
 * api_private.current_user_id(): the user id of the request, from the JWT
 * claims PostgREST verified (signature, expiry) and put in
 * request.jwt.claims: the claim billing.jwt_user_claim, else "sub".  No
 * usable id is a 401, never a 500.
 *
 * In C rather than PL/pgSQL: it runs in every signed request, from the
 * pre-request hook and again from the endpoint, under two search_paths, and
 * a PL/pgSQL function's cached plans would be re-analysed at each switch.
 */
static JsonbValue *
request_user_claim(const char **claim)
{
	const char *claims_text = GetConfigOption("request.jwt.claims", true, false);
	JsonbValue *value = NULL;

	*claim = jwt_user_claim;
	if (claims_text != NULL && claims_text[0] != '\0')
	{
		Jsonb	   *claims = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																CStringGetDatum(claims_text)));

		value = top_level_claim(claims, *claim);
		if (value == NULL || value->type == jbvNull)
		{
			*claim = "sub";
			value = top_level_claim(claims, *claim);
		}
	}
	return (value == NULL || value->type == jbvNull) ? NULL : value;
}

char *
api_request_subject(void)
{
	const char *claim;
	JsonbValue *value = request_user_claim(&claim);

	if (value == NULL || value->type != jbvString)
		return NULL;
	return pnstrdup(value->val.string.val, value->val.string.len);
}

PG_FUNCTION_INFO_V1(api_current_user_id);

Datum
api_current_user_id(PG_FUNCTION_ARGS)
{
	const char *claim;
	JsonbValue *value = request_user_claim(&claim);
	pg_uuid_t  *user_id;

	if (value == NULL)
		unauthorized("the token carries no user id",
					 psprintf("Expected the user id in the claim \"%s\" or \"sub\".", jwt_user_claim));
	user_id = palloc(sizeof(pg_uuid_t));
	if (value->type != jbvString ||
		!billing_parse_uuid(value->val.string.val, value->val.string.len, user_id))
		unauthorized("the token's user id is not a uuid",
					 psprintf("The claim \"%s\" must be a uuid string.", claim));
	PG_RETURN_UUID_P(user_id);
}

void
api_define_gucs(void)
{
	/*
	 * Superuser-only: which claim names the user decides whose payments a
	 * request touches, so no session may change it for itself.
	 */
	DefineCustomStringVariable("billing.jwt_user_claim",
							   "JWT claim that carries the user id for the HTTP API.",
							   "When the token has no such claim, the standard \"sub\" claim is used.",
							   &jwt_user_claim,
							   "user",
							   PGC_SUSET,
							   0,
							   check_jwt_user_claim, NULL, NULL);
}
