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
 * spaced around its dot, or prefixed at run time ('billing.' || '…'), not one
 * spelt in pieces or escapes.
 * Names can still be hidden (a function that sets the secret for its
 * caller); so, last, the current value of every secret is replaced wherever
 * it appears, and a statement that holds one is not echoed under an error.
 * log_statement logs a statement before it runs, before any value is set:
 * set secrets in postgresql.conf or with a statement that names them.
 *
 * The hook edits the message itself, so a client that gets it sees the same
 * (an error quoting a secret's value says [secret] to the client too).  It
 * runs for every message every process logs: the common path allocates
 * nothing and reads each text once.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"

#include "billing.h"

#define MAX_SECRETS 16
#define MIN_VALUE_LEN 8			/* shorter values are not searched for */

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * The secret settings: full names ("billing.stripe_secret_key") and the part
 * after "billing." that a text is searched for; which one is a list.
 */
static const char *secrets[MAX_SECRETS];
static const char *short_names[MAX_SECRETS];
static int	nsecrets = 0;
static const char *const list_secret = "billing.stripe_webhook_secrets";

/* The first secret named in the text (NULL if none), in one pass. */
static const char *
secret_named_in(const char *text)
{
	for (const char *p = text; *p; p++)
	{
		char		c = pg_tolower((unsigned char) *p);

		for (int i = 0; i < nsecrets; i++)
			if (c == short_names[i][0] &&
				pg_strncasecmp(p, short_names[i], strlen(short_names[i])) == 0)
				return secrets[i];
	}
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
 * Whether bound values (a "parameters: $1 = '…', …" detail) hold a secret's
 * name cut short by log_parameter_max_length: 'billing.stripe_secret_ke...'.
 */
static bool
truncated_name_in(const char *detail)
{
	if (detail == NULL || strncmp(detail, "parameters: ", 12) != 0)
		return false;
	for (const char *p = detail; (p = strchr(p, '\'')) != NULL; p++)
	{
		const char *start = p + 1;
		const char *dots;
		size_t		len;

		if (pg_strncasecmp(start, "billing.", 8) != 0 || (dots = strstr(start, "...'")) == NULL)
			continue;
		len = dots - start;
		for (int i = 0; i < nsecrets; i++)
			if (len <= strlen(secrets[i]) && pg_strncasecmp(start, secrets[i], len) == 0)
				return true;
	}
	return false;
}

/*
 * Whether the message is PostgreSQL's echo of a statement (postgres.c):
 * log_statement's "statement: …" (an EXECUTE's prepared text in its detail),
 * log_min_duration_statement's "duration: … ms  …", the extended protocol's
 * "execute <portal>: …" (format "%s %s%s%s: %s", the bound values in its
 * detail); and pg_cron's "cron job … starting: <command>".
 */
static bool
echoes_statement(const ErrorData *edata)
{
	const char *id = edata->message_id;

	return id && (strncmp(id, "statement: ", 11) == 0 || strncmp(id, "duration: ", 10) == 0 ||
				  strcmp(id, "%s %s%s%s: %s") == 0 || strcmp(id, "cron job %ld starting: %s") == 0);
}

/* Where the len bytes of what first occur in text (NULL if nowhere). */
static const char *
find(const char *text, const char *what, size_t len)
{
	for (const char *p = text; (p = strchr(p, what[0])) != NULL; p++)
		if (strncmp(p, what, len) == 0)
			return p;
	return NULL;
}

/* A field of edata with each occurrence of the value replaced; the old one freed. */
static void
replace_value(char **field, const char *value, size_t len)
{
	StringInfoData out;
	const char *p;
	const char *hit;

	if (*field == NULL || find(*field, value, len) == NULL)
		return;
	initStringInfo(&out);
	for (p = *field; (hit = find(p, value, len)) != NULL; p = hit + len)
	{
		appendBinaryStringInfo(&out, p, hit - p);
		appendStringInfoString(&out, "[secret]");
	}
	appendStringInfoString(&out, p);
	pfree(*field);
	*field = out.data;
}

static void
redact_value(ErrorData *edata, const char *value, size_t len)
{
	if (len < MIN_VALUE_LEN)
		return;
	replace_value(&edata->message, value, len);
	replace_value(&edata->detail, value, len);
	replace_value(&edata->detail_log, value, len);
	replace_value(&edata->hint, value, len);
	replace_value(&edata->context, value, len);
	replace_value(&edata->internalquery, value, len);
	/* The STATEMENT line is debug_query_string itself: hide it whole. */
	if (debug_query_string && find(debug_query_string, value, len))
		edata->hide_stmt = true;
}

/*
 * The last line of defence, whatever the message: each secret's current
 * value (and each item of the webhook secrets' list), if at least
 * MIN_VALUE_LEN bytes, wherever it appears.  It reaches a text only once set,
 * so it cannot help log_statement, which logs a statement before it runs.
 */
static void
redact_values(ErrorData *edata)
{
	for (int i = 0; i < nsecrets; i++)
	{
		const char *value = GetConfigOption(secrets[i], true, false);

		if (value == NULL || value[0] == '\0')
			continue;
		redact_value(edata, value, strlen(value));
		if (strcmp(secrets[i], list_secret) != 0)
			continue;
		for (const char *p = value; *p;)
		{
			size_t		len = strcspn(p, ", \t");

			redact_value(edata, p, len);
			p += len;
			p += strspn(p, ", \t");
		}
	}
}

/* Replace a field of edata with NULL or a new text, freeing the old one. */
static void
set_field(char **field, char *text)
{
	if (*field)
		pfree(*field);
	*field = text;
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
		set_field(&edata->message,
				  psprintf(strncmp(id, "parameter", 9) == 0 ?
						   "parameter \"%s\" changed (a secret: its value is not logged)" :
						   "invalid value for parameter \"%s\" (a secret: its value is not logged)",
						   name));
	else if (echoes_statement(edata))
	{
		/* The statement, its bound values or its prepared text name one. */
		const char *detail = edata->detail_log ? edata->detail_log : edata->detail;

		name = secret_named_by(debug_query_string, edata->message, detail);
		if (name == NULL && truncated_name_in(detail))
			name = "billing.*";
		if (name)
		{
			set_field(&edata->message,
					  psprintf("statement not logged: it names the secret setting %s", name));
			set_field(&edata->detail, NULL);
			set_field(&edata->detail_log, NULL);
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
		set_field(&edata->context, NULL);
		set_field(&edata->internalquery, NULL);
		edata->internalpos = 0;
		if (edata->detail_log && secret_named_in(edata->detail_log))
			set_field(&edata->detail_log, NULL);
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
			/* Names are lower case and live as long as the process. */
			secrets[nsecrets] = vars[i]->name;
			short_names[nsecrets] = vars[i]->name + strlen("billing.");
			nsecrets++;
		}
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_secrets;
}
