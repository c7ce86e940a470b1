/*
 * audit.h — the append-only record of admin changes (billing.admin_audit):
 * who (the calling role), what, on which object, the row before and after.
 */
#ifndef BILLING_AUDIT_H
#define BILLING_AUDIT_H

#include "postgres.h"

/*
 * The role on whose behalf an admin function runs.  Admin functions are
 * SECURITY DEFINER, where current_user is the extension owner; the caller is
 * the outer user (the session user or the role it SET ROLE to — for
 * PostgREST, the role from the JWT).
 */
extern char *audit_actor(void);

/*
 * Appends one audit row in the caller's transaction and returns its id.
 * before/after are jsonb Datums, or (Datum) 0 for "no row" (creation,
 * removal).  The caller must be connected to SPI.
 */
extern int64 audit_record(const char *action, const char *target,
						  Datum before, Datum after);

#endif							/* BILLING_AUDIT_H */
