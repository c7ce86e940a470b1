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

static void
redact_secrets(ErrorData *edata)
{
	char		name[NAMEDATALEN];

	if (edata->message_id && edata->message &&
		strcmp(edata->message_id, "parameter \"%s\" changed to \"%s\"") == 0 &&
		secret_named_in(edata->message, name, sizeof(name)))
		edata->message = psprintf("parameter \"%s\" changed (a secret: its value is not logged)", name);

	if (debug_query_string && secret_named_in(debug_query_string, name, sizeof(name)))
	{
		/* The STATEMENT line under an error, and log_statement's own line. */
		edata->hide_stmt = true;
		if (edata->message && strstr(edata->message, debug_query_string))
			edata->message = psprintf("statement not logged: it names the secret setting %s", name);
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
