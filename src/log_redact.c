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
 * it, drops the value from the first, replaces the echo of such a statement,
 * and takes STATEMENT and CONTEXT off an error about a secret.  What is left
 * says which setting changed, or that a statement was held back.
 *
 * A text "names" a secret when it contains the setting's name after
 * "billing." anywhere, in any case: that also catches a name that is quoted,
 * spaced around its dot, or put together at run time ('billing.' || '…').
 */
#include "postgres.h"

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
				  strcmp(id, "%s %s%s%s: %s") == 0);
}

static void
redact_secrets(ErrorData *edata)
{
	const char *name;

	if (edata->message_id && edata->message &&
		strcmp(edata->message_id, "parameter \"%s\" changed to \"%s\"") == 0 &&
		(name = secret_named_in(edata->message)) != NULL)
		edata->message = psprintf("parameter \"%s\" changed (a secret: its value is not logged)", name);
	else if (echoes_statement(edata))
	{
		/* The statement, its bound values or its prepared text name one. */
		name = secret_named_by(debug_query_string, edata->message,
							   edata->detail_log ? edata->detail_log : edata->detail);
		if (name)
		{
			edata->message = psprintf("statement not logged: it names the secret setting %s", name);
			edata->detail = edata->detail_log = NULL;
			edata->hide_stmt = true;
		}
	}
	else if (secret_named_by(debug_query_string, edata->message, edata->detail))
	{
		/*
		 * An error about a secret (a mistyped value, a SET without the right)
		 * or in a statement that names one: its STATEMENT line would show the
		 * value, and so might its context (the bound values of a portal).
		 */
		edata->hide_stmt = true;
		edata->context = NULL;
	}

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
