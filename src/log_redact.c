/*
 * log_redact.c — keeps the module's secrets out of the server log.
 *
 * A secret setting (superuser-only and hidden from SHOW ALL: the Stripe and
 * YooKassa keys, the webhook secrets, the admin tokens' signing secret) never
 * appears in a message of ours, but PostgreSQL writes it to the log itself in
 * two ways:
 *   - after a reload the postmaster logs `parameter "…" changed to "<value>"`;
 *   - a statement that sets one (ALTER SYSTEM, set_config) is echoed under an
 *     error as STATEMENT, and by log_statement / log_min_duration_statement.
 * An emit_log_hook, installed in the postmaster so that every process inherits
 * it, drops the value from the first and the statement from the second.  What
 * is left says which setting changed, or that a statement was held back.
 */
#include "postgres.h"

#include <ctype.h>

#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"

#include "billing.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * If a setting's name starts at p ("billing" "." name, each part perhaps
 * double-quoted, blanks around the dot, as SQL allows), its lower-case name
 * in name; false otherwise.
 */
static bool
setting_name_at(const char *p, char *name, size_t size)
{
	size_t		n = 0;
	bool		quoted;

	if (*p == '"')
		p++;
	if (pg_strncasecmp(p, "billing", 7) != 0)
		return false;
	p += 7;
	if (*p == '"')
		p++;
	while (isspace((unsigned char) *p))
		p++;
	if (*p++ != '.')
		return false;
	while (isspace((unsigned char) *p))
		p++;
	quoted = (*p == '"');
	if (quoted)
		p++;
	strlcpy(name, "billing.", size);
	n = strlen(name);
	while (n + 1 < size && (isalnum((unsigned char) *p) || *p == '_' || (quoted && *p && *p != '"')))
		name[n++] = pg_tolower((unsigned char) *p++);
	name[n] = '\0';
	return n > strlen("billing.");
}

/*
 * The first secret setting named in the text, in name (NULL if none).
 * Setting names are case-insensitive, and a statement may quote them.
 */
static const char *
secret_named_in(const char *text, char *name, size_t size)
{
	const int	secret = GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL;

	for (const char *p = text; *p; p++)
	{
		/* A lookup only: no placeholder is made, an unknown name gives 0. */
		if (setting_name_at(p, name, size) &&
			(GetConfigOptionFlags(name, true) & secret) == secret)
			return name;
	}
	return NULL;
}

/* The first secret named by any of the texts (NULLs skipped), in name. */
static const char *
secret_named_by(const char *a, const char *b, const char *c, char *name, size_t size)
{
	const char *texts[] = {a, b, c};

	for (size_t i = 0; i < lengthof(texts); i++)
		if (texts[i] && secret_named_in(texts[i], name, size))
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
	char		name[NAMEDATALEN];

	if (edata->message_id && edata->message &&
		strcmp(edata->message_id, "parameter \"%s\" changed to \"%s\"") == 0 &&
		secret_named_in(edata->message, name, sizeof(name)))
		edata->message = psprintf("parameter \"%s\" changed (a secret: its value is not logged)", name);
	else if (echoes_statement(edata))
	{
		/* The statement, its bound values or its prepared text name one. */
		if (secret_named_by(debug_query_string, edata->message, edata->detail_log ? edata->detail_log : edata->detail,
							name, sizeof(name)))
		{
			edata->message = psprintf("statement not logged: it names the secret setting %s", name);
			edata->detail = edata->detail_log = NULL;
			edata->hide_stmt = true;
		}
	}
	else if (secret_named_by(debug_query_string, edata->message, edata->detail, name, sizeof(name)))
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

void
log_redact_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_secrets;
}
