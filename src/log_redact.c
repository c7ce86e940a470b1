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
 * The first billing.* setting named in the text that is a secret, copied into
 * name (NULL if there is none).  Setting names are case-insensitive, and may
 * be quoted or written in upper case in a statement.
 */
static const char *
secret_named_in(const char *text, char *name, size_t size)
{
	static const char prefix[] = "billing.";

	for (const char *p = text; *p; p++)
	{
		size_t		n = 0;

		if (pg_strncasecmp(p, prefix, sizeof(prefix) - 1) != 0)
			continue;
		while (n + 1 < size && (isalnum((unsigned char) p[n]) || p[n] == '_' || p[n] == '.'))
		{
			name[n] = pg_tolower((unsigned char) p[n]);
			n++;
		}
		name[n] = '\0';
		/* A lookup only: no placeholder is made, an unknown name gives 0. */
		if ((GetConfigOptionFlags(name, true) & (GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL)) ==
			(GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL))
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
