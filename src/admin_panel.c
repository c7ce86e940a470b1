/*
 * admin_panel.c — the admin panel's setting: the schedule of the dashboard's
 * revenue rollup.  The panel's views, the dashboard and the rollup are SQL,
 * in sql/parts/96_admin_panel.sql; its actions are admin.c's.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "billing.h"

static char *revenue_rollup_schedule = NULL;

void
admin_panel_define_gucs(void)
{
	DefineCustomStringVariable("billing.revenue_rollup_schedule",
							   "pg_cron schedule of billing.revenue_rollup() (empty: not scheduled).",
							   "Read by billing.schedule_jobs(), which CREATE EXTENSION runs.",
							   &revenue_rollup_schedule,
							   "17 * * * *",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}
