/*
 * outbox_delivery.h — delivering billing.outbox rows over gRPC, one batch at
 * a time: claim due rows (a short committed transaction), call the auth and
 * notification services in parallel, record every outcome.  The process
 * around it (settings, launcher, main loop) is outbox_worker.c.
 */
#ifndef BILLING_OUTBOX_DELIVERY_H
#define BILLING_OUTBOX_DELIVERY_H

#include "postgres.h"

/* The settings delivery works by (billing.* GUCs, owned by outbox_worker.c). */
typedef struct OutboxSettings
{
	char	   *auth_target;
	char	   *notify_target;
	char	   *ca_file;
	int			connect_timeout_ms;
	int			deadline_ms;
	int			batch_size;
	int			concurrency;
	int			max_attempts;
	int			backoff_base_ms;
	int			backoff_max_ms;
	int			poll_interval_ms;
} OutboxSettings;

typedef struct OutboxMsg OutboxMsg;

/*
 * In one short transaction: requeue claims of a worker that died (once per
 * process: *reclaimed), claim up to a batch of due messages, and find when
 * the next one falls due.  Returns the messages, allocated in cxt, and sets
 * *nmsgs and *sleep_ms.
 */
extern OutboxMsg *outbox_claim_batch(const OutboxSettings *s, MemoryContext cxt,
									 bool *reclaimed, int *nmsgs, long *sleep_ms);

/*
 * Deliver a claimed batch and record its outcomes.  Returns false when an
 * interrupt cut it short (what had been answered is recorded all the same).
 */
extern bool outbox_deliver_batch(const OutboxSettings *s, OutboxMsg *msgs, int n);

#endif							/* BILLING_OUTBOX_DELIVERY_H */
