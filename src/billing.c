/*
 * billing.c — module entry point: refuses to load unless preloaded, then lets
 * each capability define its settings and (for the outbox) its worker.
 * Also home of the shared helpers (SPI, uuid text, hex digits) declared in
 * billing.h.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "billing.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	/*
	 * The outbox worker and the settings must exist before any backend uses
	 * them, and a worker can only be registered by the postmaster.
	 */
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("billing must be loaded via shared_preload_libraries"),
				 errhint("Add billing to shared_preload_libraries in postgresql.conf and restart the server.")));

	clock_define_gucs();
	subscriptions_define_gucs();
	expiry_define_gucs();
	pricing_define_gucs();
	payments_define_gucs();
	autorenew_define_gucs();
	stripe_define_gucs();
	provider_define_gucs();
	yookassa_define_gucs();
	api_define_gucs();
	admin_login_define_gucs();
	admin_panel_define_gucs();
	/* billing.cancel_payment asks the payment's provider through this hook. */
	checkout_init();
	outbox_init();
	outbox_worker_init();
	log_redact_init();

	MarkGUCPrefixReserved("billing");
}
