/*
 * renewal_job.h — the automatic charge of one renewal, shared by the job
 * that makes it (billing.run_renewals) and the poller that finishes one a
 * crash cut short.
 */
#ifndef BILLING_RENEWAL_JOB_H
#define BILLING_RENEWAL_JOB_H

#include "postgres.h"
#include "portability/instr_time.h"
#include "utils/uuid.h"

/*
 * Charge the pending automatic charge payment_id has not yet made (no
 * provider object recorded), holding its payment and subscription rows
 * locked across the provider call, so that switching auto-renewal off
 * either comes first (nothing is charged: the payment is canceled) or waits
 * for the charge.  lookup_first: ask the provider whether the charge was
 * made already (after a crash) before making it.  Returns a word: "applied",
 * "waiting", "canceled", "unreachable", "unchanged", ...  *spent: the time
 * the provider took; *status: the payment's status afterwards.  The caller
 * must be in a transaction that it commits after.
 */
extern const char *renewal_charge(const pg_uuid_t *payment_id, bool lookup_first,
								  const char *source, instr_time *spent,
								  const char **status);

#endif							/* BILLING_RENEWAL_JOB_H */
