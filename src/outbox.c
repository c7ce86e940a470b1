/*
 * outbox.c — queues side effects in billing.outbox in the caller's
 * transaction, and wakes the outbox worker when that transaction commits.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "utils/builtins.h"

#include "billing.h"
#include "outbox.h"

bool
outbox_enqueue(const char *kind, const char *payload,
			   const char *idempotency_key, const char *ordering_key)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(payload);
	values[2] = CStringGetTextDatum(idempotency_key);
	if (ordering_key)
		values[3] = CStringGetTextDatum(ordering_key);
	else
		nulls[3] = 'n';

	return billing_spi_exec(&plan,
							"INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) "
							"VALUES ($1, $2::jsonb, $3, $4) "
							"ON CONFLICT (idempotency_key) DO NOTHING",
							4, argtypes, values, nulls, false, 0) > 0;
}
