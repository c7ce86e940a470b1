/*
 * outbox.h — billing.outbox from the writing side: the one place that
 * queues side effects (inside the caller's transaction), wakes the outbox
 * worker at commit through a slot in shared memory, and lets admins retry
 * or discard dead messages.  Delivery is outbox_delivery.c's business.
 */
#ifndef BILLING_OUTBOX_H
#define BILLING_OUTBOX_H

#include "postgres.h"
#include "utils/uuid.h"

/*
 * Queue one message.  kind is one of the outbox kinds, payload a jsonb text,
 * idempotency_key stable for the event it reports (a second enqueue of the
 * same key is a no-op: that is how "once per term" is enforced), and
 * ordering_key (outbox_ordering_key) or NULL.  Returns true when a row was
 * written.  The caller must be connected to SPI.
 */
extern bool outbox_enqueue(const char *kind, const char *payload,
						   const char *idempotency_key,
						   const char *ordering_key);

/*
 * The INSERT for a statement that queues messages from rows of its own (a
 * CTE beside the change that causes them: one executor run, not two).
 * `select` yields (kind, payload jsonb, idempotency_key, ordering_key).  The
 * caller calls outbox_wake_at_commit() when the statement queued anything.
 */
#define OUTBOX_INSERT_SELECT(select) \
	"INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) " \
	select " ON CONFLICT (idempotency_key) DO NOTHING"

/*
 * Many messages queued by one statement (the expiry sweep's batches): add
 * them, then flush.  `counted` marks the messages whose newness the caller
 * wants to know: flush returns how many of them were new.
 */
typedef struct OutboxBatch
{
	int			n;
	int			cap;
	Datum	   *kinds;
	Datum	   *payloads;
	Datum	   *keys;
	Datum	   *orderings;
	Datum	   *counted;
} OutboxBatch;

extern void outbox_batch_add(OutboxBatch *b, const char *kind, const char *payload,
							 const char *idempotency_key, const char *ordering_key,
							 bool counted);
extern int64 outbox_batch_flush(OutboxBatch *b);

/* "user_id:tariff_id": messages of one key are delivered one at a time, in order. */
extern char *outbox_ordering_key(const pg_uuid_t *user_id, int64 tariff_id);

/*
 * Wake the outbox worker when the current transaction commits (once per
 * transaction, whatever the number of calls).  outbox_enqueue does this;
 * SQL that changes outbox rows by other means calls billing.outbox_wake().
 */
extern void outbox_wake_at_commit(void);

/*
 * The worker's side of the slot: take it at start (false: another worker
 * holds it), give it back on exit; the launcher asks whether it is taken.
 */
extern bool outbox_slot_take(void);
extern void outbox_slot_release(void);
extern bool outbox_slot_taken(void);

#endif							/* BILLING_OUTBOX_H */
