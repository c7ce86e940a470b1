/*
 * outbox.h — writing side effects into billing.outbox, inside the caller's
 * transaction.  Delivery is the outbox worker's business (outbox_worker.c).
 */
#ifndef BILLING_OUTBOX_H
#define BILLING_OUTBOX_H

#include "postgres.h"

/* Notification templates of messagesender.BillingMessage.template_num. */
#define TEMPLATE_SUBSCRIBED	1
#define TEMPLATE_BLOCKED	2
#define TEMPLATE_ENDED		3
#define TEMPLATE_REFUNDED	4
#define TEMPLATE_REMINDER	5

/*
 * Queue one message.  kind is one of the outbox kinds, payload a jsonb text,
 * idempotency_key stable for the event it reports (a second enqueue of the
 * same key is a no-op: that is how "once per term" is enforced), and
 * ordering_key "user_id:tariff_id" or NULL.  Returns true when a row was
 * written.  The caller must be connected to SPI.
 */
extern bool outbox_enqueue(const char *kind, const char *payload,
						   const char *idempotency_key,
						   const char *ordering_key);

/*
 * Wake the outbox worker when the current transaction commits (once per
 * transaction, whatever the number of calls).  outbox_enqueue does this;
 * SQL that changes outbox rows by other means calls billing.outbox_wake().
 */
extern void outbox_wake_at_commit(void);

/* Set the worker's latch now (outbox_worker.c); a no-op when none runs. */
extern void outbox_wake_worker(void);

#endif							/* BILLING_OUTBOX_H */
