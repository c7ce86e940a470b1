/*
 * log_redact.c — keeps the module's secrets out of the server log.
 *
 * A secret setting (superuser-only and hidden from SHOW ALL: the Stripe and
 * YooKassa keys, the webhook secrets, the admin tokens' signing secret) never
 * appears in a message of ours, but PostgreSQL writes one to the log itself:
 *   - after a reload the postmaster logs `parameter "…" changed to "<value>"`;
 *   - a statement that sets one (ALTER SYSTEM, SET, set_config, EXECUTE of a
 *     prepared set_config) is echoed by log_statement and
 *     log_min_duration_statement, with its bound values and prepared text in
 *     the detail, and under an error as STATEMENT, bound values in CONTEXT.
 * An emit_log_hook, installed in the postmaster so that every process inherits
 * it, drops the value from the first, replaces the echo of such a statement
 * (pg_cron's "cron job … starting: …" too), and takes STATEMENT, CONTEXT, the
 * PL/pgSQL QUERY and the log-only detail (a deadlock report quotes other
 * sessions' statements) off any other message about a secret.  What is left
 * says which setting changed, or that a statement was held back.
 *
 * A text "names" a secret when it contains the setting's name after
 * "billing." anywhere, in any case: that also catches a name that is quoted,
 * spaced around its dot, or put together at run time ('billing.' || '…').
 * Names can still be hidden (a function that sets the secret for its
 * caller); so, last, the current value of every secret is replaced wherever
 * it appears, and a statement that holds one is not echoed under an error.
 * log_statement logs a statement before it runs, before any value is set:
 * set secrets in postgresql.conf or with a statement that names them.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "billing.h"

#define MAX_SECRETS 16

static emit_log_hook_type prev_emit_log_hook = NULL;

/* The secret settings' full names ("billing.stripe_secret_key"). */
static const char *secrets[MAX_SECRETS];
static int	nsecrets = 0;

/* Whether text contains word, ignoring case. */
static bool
contains_ignoring_case(const char *text, const char *word)
{
	size_t		len = strlen(word);

	for (const char *p = text; *p; p++)
		if (pg_strncasecmp(p, word, len) == 0)
			return true;
	return false;
}

/* The first secret setting named in the text (NULL if none). */
static const char *
secret_named_in(const char *text)
{
	for (int i = 0; i < nsecrets; i++)
		if (contains_ignoring_case(text, secrets[i] + strlen("billing.")))
			return secrets[i];
	return NULL;
}

/* The first secret named by any of the texts (NULLs skipped). */
static const char *
secret_named_by(const char *a, const char *b, const char *c)
{
	const char *texts[] = {a, b, c};
	const char *name;

	for (size_t i = 0; i < lengthof(texts); i++)
		if (texts[i] && (name = secret_named_in(texts[i])) != NULL)
			return name;
	return NULL;
}

/*
 * Whether the message is PostgreSQL's echo of a statement (postgres.c):
 * log_statement's "statement: …" (an EXECUTE's prepared text in its detail),
 * log_min_duration_statement's "duration: … ms  …", the extended protocol's
 * "execute <portal>: …" (format "%s %s%s%s: %s", the bound values in its
 * detail).
 */
static bool
echoes_statement(const ErrorData *edata)
{
	const char *id = edata->message_id;

	return id && (strncmp(id, "statement: ", 11) == 0 || strncmp(id, "duration: ", 10) == 0 ||
				  strcmp(id, "%s %s%s%s: %s") == 0 || strcmp(id, "cron job %ld starting: %s") == 0);
}

/* Text with every occurrence of what replaced by with (NULL stays NULL). */
static char *
replace_all(char *text, const char *what, const char *with)
{
	StringInfoData out;
	size_t		len = strlen(what);
	const char *p;
	const char *hit;

	if (text == NULL || strstr(text, what) == NULL)
		return text;
	initStringInfo(&out);
	for (p = text; (hit = strstr(p, what)) != NULL; p = hit + len)
	{
		appendBinaryStringInfo(&out, p, hit - p);
		appendStringInfoString(&out, with);
	}
	appendStringInfoString(&out, p);
	return out.data;
}

/*
 * The last line of defence, whatever the message: a secret's value itself
 * (each of a list's values; at least 8 characters, so that a short test value
 * does not blank out common words) wherever it appears.  It reaches the text
 * only once set, so it cannot help log_statement, which logs a statement
 * before it runs.
 */
static void
redact_values(ErrorData *edata)
{
	for (int i = 0; i < nsecrets; i++)
	{
		const char *value = GetConfigOption(secrets[i], true, false);
		char	   *copy;
		char	   *piece;
		char	   *save;

		if (value == NULL || strlen(value) < 8)
			continue;
		copy = pstrdup(value);
		for (piece = strtok_r(copy, ", \t", &save); piece; piece = strtok_r(NULL, ", \t", &save))
		{
			if (strlen(piece) < 8)
				continue;
			edata->message = replace_all(edata->message, piece, "[secret]");
			edata->detail = replace_all(edata->detail, piece, "[secret]");
			edata->detail_log = replace_all(edata->detail_log, piece, "[secret]");
			edata->hint = replace_all(edata->hint, piece, "[secret]");
			edata->context = replace_all(edata->context, piece, "[secret]");
			edata->internalquery = replace_all(edata->internalquery, piece, "[secret]");
			/* The STATEMENT line is debug_query_string itself: hide it whole. */
			if (debug_query_string && strstr(debug_query_string, piece))
				edata->hide_stmt = true;
		}
		pfree(copy);
	}
}

static void
redact_secrets(ErrorData *edata)
{
	const char *id = edata->message_id;
	const char *name;

	if (id && edata->message &&
		(strcmp(id, "parameter \"%s\" changed to \"%s\"") == 0 ||
		 strcmp(id, "invalid value for parameter \"%s\": \"%s\"") == 0) &&
		(name = secret_named_in(edata->message)) != NULL)
		edata->message = psprintf(strncmp(id, "parameter", 9) == 0 ?
								  "parameter \"%s\" changed (a secret: its value is not logged)" :
								  "invalid value for parameter \"%s\" (a secret: its value is not logged)",
								  name);
	else if (echoes_statement(edata))
	{
		/*
		 * The statement, its bound values or its prepared text name one; or
		 * a bound value mentions "billing." (log_parameter_max_length may have
		 * cut a name short).
		 */
		const char *detail = edata->detail_log ? edata->detail_log : edata->detail;

		name = secret_named_by(debug_query_string, edata->message, detail);
		if (name == NULL && detail && contains_ignoring_case(detail, "billing."))
			name = "billing.*";
		if (name)
		{
			edata->message = psprintf("statement not logged: it names the secret setting %s", name);
			edata->detail = edata->detail_log = NULL;
			edata->hide_stmt = true;
		}
	}
	else if (secret_named_by(debug_query_string, edata->message, edata->detail) ||
			 secret_named_by(edata->detail_log, edata->context, edata->internalquery))
	{
		/*
		 * An error about a secret (a mistyped value, a SET without the right)
		 * or in a statement that names one: the STATEMENT line, the query of
		 * a PL/pgSQL EXECUTE, the context (a portal's bound values) and the
		 * log-only detail (a deadlock report quotes the other sessions'
		 * statements) may each hold the value.
		 */
		edata->hide_stmt = true;
		edata->context = NULL;
		edata->internalquery = NULL;
		edata->internalpos = 0;
		if (edata->detail_log && secret_named_in(edata->detail_log))
			edata->detail_log = NULL;
	}
	redact_values(edata);

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* After every setting is defined (the end of _PG_init), in the postmaster. */
void
log_redact_init(void)
{
	struct config_generic **vars = get_guc_variables();
	const int	secret = GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL;

	for (int i = 0; i < GetNumConfigOptions(); i++)
		if (strncmp(vars[i]->name, "billing.", strlen("billing.")) == 0 &&
			(vars[i]->flags & secret) == secret)
		{
			if (nsecrets == MAX_SECRETS)
				elog(ERROR, "more than %d secret settings", MAX_SECRETS);
			secrets[nsecrets++] = vars[i]->name;	/* lives as long as the process */
		}
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_secrets;
}
