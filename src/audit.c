/*
 * audit.c — appends to billing.admin_audit, in the same transaction as the
 * admin change it describes, and keeps that table (and the price history)
 * append-only with a trigger, even for the table owner.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "audit.h"
#include "api.h"
#include "common.h"
#include "clock.h"

char *
audit_actor(void)
{
	return GetUserNameFromId(GetOuterUserId(), false);
}

int64
audit_record(const char *action, const char *target, Datum before, Datum after)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[7] = {NAMEOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	char	   *subject = api_request_subject();

	values[0] = DirectFunctionCall1(namein, CStringGetDatum(audit_actor()));
	values[1] = CStringGetTextDatum(action);
	values[2] = CStringGetTextDatum(target);
	values[3] = before;
	if (before == (Datum) 0)
		nulls[3] = 'n';
	values[4] = after;
	if (after == (Datum) 0)
		nulls[4] = 'n';
	values[5] = TimestampTzGetDatum(billing_now());
	/* Over HTTP every admin shares the role billing_admin: keep who it was. */
	if (subject)
		values[6] = CStringGetTextDatum(subject);
	else
		nulls[6] = 'n';

	billing_spi_exec(&plan,
					 "INSERT INTO billing.admin_audit (actor, actor_subject, action, target, before, after, at) "
					 "VALUES ($1, $7, $2, $3, $4, $5, $6) RETURNING id",
					 7, argtypes, values, nulls, false, 0);
	return DatumGetInt64(billing_spi_get(0, 1, &isnull));
}

/*
 * BEFORE UPDATE OR DELETE trigger: history tables are append-only.  TRUNCATE
 * (a deliberate, owner-only wipe) stays possible.
 */
PG_FUNCTION_INFO_V1(billing_forbid_change);
Datum
billing_forbid_change(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("billing.forbid_change() must be called as a trigger")));

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s.%s is append-only",
					get_namespace_name(RelationGetNamespace(trigdata->tg_relation)),
					RelationGetRelationName(trigdata->tg_relation)),
			 errdetail("Rows of this history cannot be updated or deleted.")));
	PG_RETURN_NULL();
}
