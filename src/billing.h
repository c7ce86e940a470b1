/*
 * billing.h — the entry hooks each capability exposes to _PG_init
 * (billing.c), the module's top.  Shared helpers are in common.h.
 */
#ifndef BILLING_H
#define BILLING_H

/* Custom SQLSTATE class for billing-specific conditions is not used: every
 * error maps onto a standard code (docs/operations.md, "Errors"). */

/* Each capability defines its settings here; called once from _PG_init. */
extern void clock_define_gucs(void);
extern void subscriptions_define_gucs(void);
extern void expiry_define_gucs(void);
extern void pricing_define_gucs(void);
extern void payments_define_gucs(void);
extern void autorenew_define_gucs(void);
extern void stripe_define_gucs(void);
extern void provider_define_gucs(void);
extern void yookassa_define_gucs(void);
extern void api_define_gucs(void);
extern void admin_login_define_gucs(void);
extern void admin_panel_define_gucs(void);
extern void checkout_init(void);		/* the providers' cancel/refund hook */
extern void outbox_init(void);	/* the worker's wake-up slot in shared memory */
extern void outbox_worker_init(void);	/* its settings, its launcher */
extern void log_redact_init(void);	/* keeps secret settings out of the log */

#endif							/* BILLING_H */
