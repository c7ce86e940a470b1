/*
 * admin_login.c — personal admin accounts: their passwords (pgcrypto's
 * bcrypt), signing in with a lock after repeated failures, the HS256 token
 * that PostgREST verifies, and the pre-request check that an admin token still
 * belongs to an enabled account.  The tables are in
 * sql/parts/95_admin_accounts.sql.
 */
#include "postgres.h"

#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "api.h"
#include "audit.h"
#include "billing.h"
#include "clock.h"
#include "common.h"

static char *admin_jwt_secret = NULL;
static int	admin_token_lifetime = 8 * 3600;
static int	admin_password_cost = 10;
static int	admin_login_max_failures = 5;
static int	admin_login_window = 15 * 60;
static int	admin_login_lock = 15 * 60;
static bool admin_trust_external_tokens = false;

/* bcrypt allows at most 72 bytes; anything longer would be cut silently. */
#define MIN_PASSWORD_CHARS 12
#define MAX_PASSWORD_BYTES 72
/* Longest e-mail address (RFC 5321 path limit); a longer one is cut. */
#define MAX_EMAIL_BYTES 254

/*
 * Compared against when no account has the e-mail (and no account exists to
 * borrow a hash from), so that an unknown e-mail costs one bcrypt round like a
 * wrong password.  Cost 10, the default of billing.admin_password_cost.
 */
static const char dummy_hash[] = "$2a$10$abcdefghijklmnopqrstuu6o1TOAYAYoJ785hMJNlfNC.HQdnp95u";

static bool
check_jwt_secret(char **newval, void **extra, GucSource source)
{
	/* PostgREST refuses a secret shorter than 32 characters. */
	if (*newval != NULL && (*newval)[0] != '\0' && strlen(*newval) < 32)
	{
		/* Our own message: PostgreSQL's default one would quote the secret. */
		GUC_check_errmsg("invalid value for billing.admin_jwt_secret");
		GUC_check_errdetail("The secret must be at least 32 characters long, as PostgREST requires.");
		return false;
	}
	return true;
}

void
admin_login_define_gucs(void)
{
	DefineCustomStringVariable("billing.admin_jwt_secret",
							   "Secret that signs admin tokens (HS256): PostgREST's jwt-secret.",
							   "Empty: admin sign-in is off.",
							   &admin_jwt_secret, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_jwt_secret, NULL, NULL);
	DefineCustomIntVariable("billing.admin_token_lifetime",
							"How long an admin token from billing.admin_login() is valid.",
							NULL,
							&admin_token_lifetime, 8 * 3600, 60, 8 * 3600,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.admin_password_cost",
							"bcrypt cost of new admin password hashes.",
							NULL,
							&admin_password_cost, 10, 10, 15,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.admin_login_max_failures",
							"Failed admin sign-ins within billing.admin_login_window that lock the e-mail.",
							NULL,
							&admin_login_max_failures, 5, 1, 100,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.admin_login_window",
							"Time within which failed admin sign-ins are counted.",
							NULL,
							&admin_login_window, 15 * 60, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("billing.admin_login_lock",
							"How long an e-mail stays locked after too many failed admin sign-ins.",
							NULL,
							&admin_login_lock, 15 * 60, 1, 86400,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("billing.admin_trust_external_tokens",
							 "Accept billing_admin tokens whose user id is no admin account (issued by the auth service).",
							 "Off: only tokens of enabled personal admin accounts open the admin endpoints.",
							 &admin_trust_external_tokens, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
}

static void
connect_spi(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/* pgcrypto's schema, quoted: it is relocatable, so ask where it lives. */
static char *
pgcrypto_schema(void)
{
	static SPIPlanPtr plan = NULL;
	char	   *schema;

	if (billing_spi_exec(&plan,
						 "SELECT n.nspname::text FROM pg_catalog.pg_extension e "
						 "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
						 "WHERE e.extname = 'pgcrypto'",
						 0, NULL, NULL, NULL, true, 1) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"pgcrypto\" is not installed"),
				 errhint("Run CREATE EXTENSION pgcrypto.")));
	schema = billing_spi_text(0, 1);
	return pstrdup(quote_identifier(schema));
}

/* crypt(password, salt_or_hash) through pgcrypto, as a C string. */
static char *
pgcrypto_crypt(const char *password, const char *salt)
{
	char	   *sql = psprintf("SELECT %s.crypt($1, $2)", pgcrypto_schema());
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(password);
	values[1] = CStringGetTextDatum(salt);
	if (SPI_execute_with_args(sql, 2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "crypt() through pgcrypto failed");
	return billing_spi_text(0, 1);
}

static char *
hash_password(const char *password)
{
	int			chars = pg_mbstrlen(password);
	char	   *sql;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];

	if (chars < MIN_PASSWORD_CHARS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too short"),
				 errdetail("It has %d characters; an admin password needs at least %d.",
						   chars, MIN_PASSWORD_CHARS),
				 errhint("Use a passphrase of a few words.")));
	if (strlen(password) > MAX_PASSWORD_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("password is too long"),
				 errdetail("bcrypt uses at most %d bytes of a password.", MAX_PASSWORD_BYTES)));

	sql = psprintf("SELECT %s.gen_salt('bf', $1)", pgcrypto_schema());
	values[0] = Int32GetDatum(admin_password_cost);
	if (SPI_execute_with_args(sql, 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "gen_salt() through pgcrypto failed");
	return pgcrypto_crypt(password, billing_spi_text(0, 1));
}

/* Lower-cased and cut to MAX_EMAIL_BYTES: the key of accounts and locks. */
static char *
normalize_email(text *email)
{
	char	   *lowered = TextDatumGetCString(DirectFunctionCall1Coll(lower, DEFAULT_COLLATION_OID,
																	PointerGetDatum(email)));
	int			len = strlen(lowered);

	if (len > MAX_EMAIL_BYTES)
		lowered[pg_mbcliplen(lowered, len, MAX_EMAIL_BYTES)] = '\0';
	return lowered;
}

static Datum
jsonb_from_cstring(const char *s)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(s));
}

/* The account without its hash, as jsonb (the row of an SPI result). */
#define ACCOUNT_JSON "(pg_catalog.to_jsonb(a) - 'password_hash')"

static Datum
spi_jsonb_copy(int col)
{
	bool		isnull;
	Datum		d = billing_spi_get(0, col, &isnull);

	return isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
}

/* ---------------------------------------------------------------------
 * For DBAs.
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(billing_create_admin_account);
Datum
billing_create_admin_account(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr exists_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, UUIDOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	char	   *email;
	char	   *name;
	char	   *password;
	Datum		after;

	BILLING_REQUIRE_PRIMARY(fcinfo);

	BILLING_REQUIRE_ARG(fcinfo, 0, "email");
	BILLING_REQUIRE_ARG(fcinfo, 1, "display_name");
	BILLING_REQUIRE_ARG(fcinfo, 2, "password");
	email = TextDatumGetCString(PG_GETARG_DATUM(0));
	name = TextDatumGetCString(PG_GETARG_DATUM(1));
	password = TextDatumGetCString(PG_GETARG_DATUM(2));

	connect_spi();
	values[0] = CStringGetTextDatum(email);
	if (billing_spi_exec(&exists_plan,
						 "SELECT 1 FROM billing.admin_accounts WHERE lower(email) = lower($1)",
						 1, argtypes, values, NULL, true, 1) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("an admin account with e-mail \"%s\" exists", billing_echo(email)),
				 errhint("E-mails are compared without case; use billing.set_admin_password() to change its password.")));

	values[1] = CStringGetTextDatum(name);
	values[2] = CStringGetTextDatum(hash_password(password));
	if (PG_ARGISNULL(3))
		nulls[3] = 'n';
	else
		values[3] = PG_GETARG_DATUM(3);
	billing_spi_exec(&insert_plan,
					 "INSERT INTO billing.admin_accounts AS a (id, email, display_name, password_hash, created_at) "
					 "VALUES (coalesce($4, gen_random_uuid()), $1, $2, $3, billing.now()) RETURNING " ACCOUNT_JSON,
					 4, argtypes, values, nulls, false, 0);
	after = spi_jsonb_copy(1);
	audit_record("create_admin_account", psprintf("admin:%s", email), (Datum) 0, after);
	SPI_finish();
	PG_RETURN_DATUM(after);
}

/*
 * One change of an account found by e-mail: the row before (locked), the
 * UPDATE (parameters $1 = e-mail, $2 = now, $3 = extra text), the audit.
 */
static Datum
change_account(text *email_arg, const char *action, SPIPlanPtr *plan,
			   const char *update_sql, const char *extra, bool password_changed)
{
	static SPIPlanPtr before_plan = NULL;
	Oid			argtypes[3] = {TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	char	   *email = TextDatumGetCString(PointerGetDatum(email_arg));
	Datum		before,
				after;

	values[0] = PointerGetDatum(email_arg);
	values[1] = TimestampTzGetDatum(billing_now());
	if (extra)
		values[2] = CStringGetTextDatum(extra);
	else
		nulls[2] = 'n';

	if (billing_spi_exec(&before_plan,
						 "SELECT " ACCOUNT_JSON " FROM billing.admin_accounts a "
						 "WHERE lower(a.email) = lower($1) FOR UPDATE",
						 1, argtypes, values, NULL, false, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("there is no admin account with e-mail \"%s\"", billing_echo(email)),
				 errhint("SELECT email FROM billing.admin_account_list shows the accounts.")));
	before = spi_jsonb_copy(1);

	billing_spi_exec(plan, update_sql, 3, argtypes, values, nulls, false, 0);
	after = spi_jsonb_copy(1);
	if (password_changed)
	{
		/* The audit says the password changed, never what it is. */
		after = SPI_datumTransfer(DirectFunctionCall2(jsonb_concat, after,
													  jsonb_from_cstring("{\"password\": \"changed\"}")),
								  false, -1);
	}
	audit_record(action, psprintf("admin:%s", email), before, after);
	return after;
}

PG_FUNCTION_INFO_V1(billing_set_admin_password);
Datum
billing_set_admin_password(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr unlock_plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	char	   *hash;
	Datum		after;

	BILLING_REQUIRE_PRIMARY(fcinfo);

	BILLING_REQUIRE_ARG(fcinfo, 0, "email");
	BILLING_REQUIRE_ARG(fcinfo, 1, "password");

	connect_spi();
	hash = hash_password(TextDatumGetCString(PG_GETARG_DATUM(1)));
	after = change_account(PG_GETARG_TEXT_PP(0), "set_admin_password", &plan,
						   "UPDATE billing.admin_accounts a SET password_hash = $3 "
						   "WHERE lower(a.email) = lower($1) AND $2 IS NOT NULL RETURNING " ACCOUNT_JSON,
						   hash, true);
	/* A new password is the way out of a lock. */
	values[0] = CStringGetTextDatum(normalize_email(PG_GETARG_TEXT_PP(0)));
	billing_spi_exec(&unlock_plan,
					 "DELETE FROM billing.admin_login_throttle WHERE email = $1",
					 1, argtypes, values, NULL, false, 0);
	SPI_finish();
	PG_RETURN_DATUM(after);
}

PG_FUNCTION_INFO_V1(billing_disable_admin_account);
Datum
billing_disable_admin_account(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		after;

	BILLING_REQUIRE_PRIMARY(fcinfo);

	BILLING_REQUIRE_ARG(fcinfo, 0, "email");
	connect_spi();
	after = change_account(PG_GETARG_TEXT_PP(0), "disable_admin_account", &plan,
						   "UPDATE billing.admin_accounts a SET disabled_at = coalesce(a.disabled_at, $2) "
						   "WHERE lower(a.email) = lower($1) AND $3 IS NULL RETURNING " ACCOUNT_JSON,
						   NULL, false);
	SPI_finish();
	PG_RETURN_DATUM(after);
}

PG_FUNCTION_INFO_V1(billing_enable_admin_account);
Datum
billing_enable_admin_account(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		after;

	BILLING_REQUIRE_PRIMARY(fcinfo);

	BILLING_REQUIRE_ARG(fcinfo, 0, "email");
	connect_spi();
	after = change_account(PG_GETARG_TEXT_PP(0), "enable_admin_account", &plan,
						   "UPDATE billing.admin_accounts a SET disabled_at = NULL "
						   "WHERE lower(a.email) = lower($1) AND $2 IS NOT NULL AND $3 IS NULL "
						   "RETURNING " ACCOUNT_JSON,
						   NULL, false);
	SPI_finish();
	PG_RETURN_DATUM(after);
}

/* ---------------------------------------------------------------------
 * The token.
 * ---------------------------------------------------------------------
 */

static void
append_b64url(StringInfo out, const char *data, int len)
{
	int			enclen = pg_b64_enc_len(len);
	char	   *buf = palloc(enclen + 1);
	int			n = pg_b64_encode(data, len, buf, enclen);
	int			i;

	if (n < 0)
		elog(ERROR, "base64 encoding failed");
	for (i = 0; i < n; i++)
	{
		if (buf[i] == '=')
			break;
		appendStringInfoChar(out, buf[i] == '+' ? '-' : buf[i] == '/' ? '_' : buf[i]);
	}
	pfree(buf);
}

/*
 * An HS256 JWT with the claims PostgREST and the billing API read: role, the
 * user id under billing.jwt_user_claim, the person's name and e-mail.  Times
 * are the real clock's: PostgREST checks "exp" against it, not billing.now().
 */
static char *
sign_token(const char *account_id, const char *name, const char *email, int64 iat, int64 exp)
{
	StringInfoData claims;
	StringInfoData token;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	const char *user_claim = GetConfigOption("billing.jwt_user_claim", false, false);

	initStringInfo(&claims);
	appendStringInfoString(&claims, "{\"role\":\"billing_admin\",");
	escape_json(&claims, user_claim);
	appendStringInfoChar(&claims, ':');
	escape_json(&claims, account_id);
	appendStringInfoString(&claims, ",\"name\":");
	escape_json(&claims, name);
	appendStringInfoString(&claims, ",\"email\":");
	escape_json(&claims, email);
	appendStringInfo(&claims, ",\"iat\":" INT64_FORMAT ",\"exp\":" INT64_FORMAT "}", iat, exp);

	initStringInfo(&token);
	append_b64url(&token, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27);
	appendStringInfoChar(&token, '.');
	append_b64url(&token, claims.data, claims.len);

	if (HMAC(EVP_sha256(), admin_jwt_secret, (int) strlen(admin_jwt_secret),
			 (unsigned char *) token.data, token.len, mac, &maclen) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute HMAC-SHA256")));
	appendStringInfoChar(&token, '.');
	append_b64url(&token, (char *) mac, (int) maclen);
	return token.data;
}

/* {"error": {...}}: what api.login turns into an HTTP error. */
static Datum
login_error(int status, const char *code, const char *message, const char *detail,
			const char *hint, int retry_after)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"error\": {\"status\": %d, \"code\": ", status);
	escape_json(&s, code);
	appendStringInfoString(&s, ", \"message\": ");
	escape_json(&s, message);
	appendStringInfoString(&s, ", \"details\": ");
	if (detail)
		escape_json(&s, detail);
	else
		appendStringInfoString(&s, "null");
	appendStringInfoString(&s, ", \"hint\": ");
	escape_json(&s, hint);
	if (retry_after > 0)
		appendStringInfo(&s, ", \"retry_after\": %d", retry_after);
	appendStringInfoString(&s, "}}");
	return jsonb_from_cstring(s.data);
}

static char *
timestamptz_text(TimestampTz t)
{
	return DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(t)));
}

PG_FUNCTION_INFO_V1(billing_admin_login);
Datum
billing_admin_login(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lookup_plan = NULL;
	static SPIPlanPtr fail_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr ok_plan = NULL;
	Oid			argtypes[3] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	TimestampTz now = billing_now();
	char	   *email;
	char	   *password;
	char	   *account_id;
	char	   *name = NULL;
	char	   *account_email = NULL;
	char	   *hash;
	char	   *computed;
	bool		disabled = false;
	bool		isnull;
	bool		match;
	TimestampTz locked_until = 0;
	bool		locked;
	Datum		result;
	char	   *result_text;
	MemoryContext caller = CurrentMemoryContext;

	BILLING_REQUIRE_PRIMARY(fcinfo);

	if (admin_jwt_secret == NULL || admin_jwt_secret[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("admin sign-in is not configured"),
				 errdetail("billing.admin_jwt_secret is empty."),
				 errhint("Set billing.admin_jwt_secret to PostgREST's jwt-secret and reload.")));

	email = normalize_email(PG_ARGISNULL(0) ? cstring_to_text("") : PG_GETARG_TEXT_PP(0));
	password = PG_ARGISNULL(1) ? "" : TextDatumGetCString(PG_GETARG_DATUM(1));

	connect_spi();
	values[0] = CStringGetTextDatum(email);
	values[1] = TimestampTzGetDatum(now);

	/*
	 * One query whatever the e-mail: the account if any, else the newest
	 * account's hash as the dummy (so its bcrypt cost is today's), and the
	 * lock on the e-mail.
	 */
	billing_spi_exec(&lookup_plan,
					 "SELECT a.id::text, a.display_name, a.email, a.disabled_at IS NOT NULL, "
					 "       coalesce(a.password_hash, (SELECT d.password_hash FROM billing.admin_accounts d "
					 "                                   ORDER BY d.created_at DESC LIMIT 1)), "
					 "       t.locked_until "
					 "FROM (SELECT $1::text AS email) q "
					 "LEFT JOIN billing.admin_accounts a ON lower(a.email) = q.email "
					 "LEFT JOIN billing.admin_login_throttle t ON t.email = q.email AND t.locked_until > $2",
					 2, argtypes, values, NULL, false, 1);
	account_id = billing_spi_text(0, 1);
	if (account_id)
	{
		name = billing_spi_text(0, 2);
		account_email = billing_spi_text(0, 3);
		disabled = DatumGetBool(billing_spi_get(0, 4, &isnull));
	}
	hash = billing_spi_text(0, 5);
	if (hash == NULL)
		hash = pstrdup(dummy_hash);
	locked_until = DatumGetTimestampTz(billing_spi_get(0, 6, &locked));
	locked = !locked;

	/* Always one bcrypt round, also when the answer is already known. */
	computed = pgcrypto_crypt(strlen(password) > MAX_PASSWORD_BYTES ? "" : password, hash);
	match = strlen(computed) == strlen(hash) &&
		CRYPTO_memcmp(computed, hash, strlen(hash)) == 0 &&
		account_id != NULL && !disabled && strlen(password) <= MAX_PASSWORD_BYTES;

	if (locked)
	{
		int			secs = (int) ((locked_until - now + USECS_PER_SEC - 1) / USECS_PER_SEC);

		result = login_error(429, "28000", "too many failed sign-ins",
							 psprintf("Sign-in with this e-mail is locked until %s.",
									  timestamptz_text(locked_until)),
							 "Wait until then, or ask a DBA to set a new password.",
							 Max(secs, 1));
	}
	else if (!match)
	{
		int32		failures;
		StringInfoData after;

		values[2] = TimestampTzGetDatum(now - (int64) admin_login_window * USECS_PER_SEC);
		billing_spi_exec(&fail_plan,
						 "INSERT INTO billing.admin_login_throttle AS t (email, failures, window_start) "
						 "VALUES ($1, 1, $2) "
						 "ON CONFLICT (email) DO UPDATE SET "
						 "  failures = CASE WHEN t.window_start <= $3 OR t.locked_until IS NOT NULL "
						 "                  THEN 1 ELSE t.failures + 1 END, "
						 "  window_start = CASE WHEN t.window_start <= $3 OR t.locked_until IS NOT NULL "
						 "                      THEN $2 ELSE t.window_start END, "
						 "  locked_until = NULL "
						 "RETURNING t.failures",
						 3, argtypes, values, NULL, false, 0);
		failures = DatumGetInt32(billing_spi_get(0, 1, &isnull));

		initStringInfo(&after);
		appendStringInfoString(&after, "{\"email\": ");
		escape_json(&after, email);
		appendStringInfo(&after, ", \"failures\": %d}", failures);
		audit_record("admin_login_failed", psprintf("login:%s", email), (Datum) 0,
					 jsonb_from_cstring(after.data));

		if (failures >= admin_login_max_failures)
		{
			locked_until = now + (int64) admin_login_lock * USECS_PER_SEC;
			values[2] = TimestampTzGetDatum(locked_until);
			billing_spi_exec(&lock_plan,
							 "UPDATE billing.admin_login_throttle SET locked_until = $3 "
							 "WHERE email = $1 AND $2 IS NOT NULL",
							 3, argtypes, values, NULL, false, 0);
			resetStringInfo(&after);
			appendStringInfoString(&after, "{\"email\": ");
			escape_json(&after, email);
			appendStringInfoString(&after, ", \"locked_until\": ");
			escape_json(&after, timestamptz_text(locked_until));
			appendStringInfoChar(&after, '}');
			audit_record("admin_login_locked", psprintf("login:%s", email), (Datum) 0,
						 jsonb_from_cstring(after.data));
		}
		/* The same answer for an unknown e-mail, a wrong password, a disabled account. */
		result = login_error(401, "28P01", "wrong e-mail or password", NULL,
							 psprintf("After %d failed attempts within %d minutes sign-in with the e-mail is locked for %d minutes.",
									  admin_login_max_failures, admin_login_window / 60,
									  admin_login_lock / 60),
							 0);
	}
	else
	{
		int64		iat = (int64) time(NULL);
		int64		exp = iat + admin_token_lifetime;
		TimestampTz expires_at = time_t_to_timestamptz((pg_time_t) exp);
		StringInfoData s;

		billing_spi_exec(&ok_plan,
						 "DELETE FROM billing.admin_login_throttle WHERE email = $1 AND $2 IS NOT NULL",
						 2, argtypes, values, NULL, false, 0);
		initStringInfo(&s);
		appendStringInfoString(&s, "{\"token\": ");
		escape_json(&s, sign_token(account_id, name, account_email, iat, exp));
		appendStringInfoString(&s, ", \"expires_at\": ");
		escape_json(&s, timestamptz_text(expires_at));
		appendStringInfoChar(&s, '}');
		result = jsonb_from_cstring(s.data);
	}

	/* The answer outlives SPI's memory. */
	result_text = MemoryContextStrdup(caller, DatumGetCString(DirectFunctionCall1(jsonb_out, result)));
	SPI_finish();
	PG_RETURN_DATUM(jsonb_from_cstring(result_text));
}

/* ---------------------------------------------------------------------
 * The pre-request check.
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(api_check_admin_token);
Datum
api_check_admin_token(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];
	char	   *subject = api_request_subject();
	bool		isnull;
	bool		disabled;
	pg_uuid_t	id;

	/* The user id itself (present, a uuid) is checked by current_user_id(). */
	if (subject == NULL)
		api_unauthorized("the token carries no user id",
						   "An admin token must name the admin account in its user claim.",
						   "Sign in to the admin panel again.");
	if (!billing_parse_uuid(subject, -1, &id))
		api_unauthorized("the token's user id is not a uuid",
						   "An admin token must name the admin account by its uuid.",
						   "Sign in to the admin panel again.");
	values[0] = UUIDPGetDatum(&id);

	connect_spi();
	if (billing_spi_exec(&plan,
						 "SELECT disabled_at IS NOT NULL FROM billing.admin_accounts WHERE id = $1",
						 1, argtypes, values, NULL, true, 1) == 0)
	{
		SPI_finish();
		if (admin_trust_external_tokens)
			PG_RETURN_VOID();
		api_unauthorized("the token names no admin account",
						   "Admin tokens are accepted only for personal admin accounts (billing.admin_trust_external_tokens is off).",
						   "Sign in to the admin panel with your admin account.");
	}
	disabled = DatumGetBool(billing_spi_get(0, 1, &isnull));
	SPI_finish();
	if (disabled)
		api_unauthorized("this admin account is disabled",
						   "A DBA disabled the account; its tokens no longer work.",
						   "Ask a DBA to enable the account again.");
	PG_RETURN_VOID();
}
