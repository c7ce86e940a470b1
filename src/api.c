/*
 * api.c — settings of the HTTP API (schema api, served by PostgREST).  The
 * SQL side lives in sql/parts/80_api.sql; C is needed only because the
 * billing.* setting prefix is reserved and so must be defined here.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "billing.h"

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
		GUC_check_errdetail("The claim name must not be empty.");
		return false;
	}
	if (strlen(*newval) > 64)
	{
		GUC_check_errdetail("The claim name must be at most 64 characters long.");
		return false;
	}
	for (p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
			  *p == '.' || *p == ':' || *p == '/'))
		{
			GUC_check_errdetail("The claim name may contain only letters, digits and _ - . : /.");
			return false;
		}
	}
	return true;
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
