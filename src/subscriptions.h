/*
 * subscriptions.h — one subscription per user and tariff: what a paid or a
 * refunded payment does to it, and the pieces the expiry sweep (expiry.c)
 * shares with it (settings, the next-check rule, outbox messages).
 */
#ifndef BILLING_SUBSCRIPTIONS_H
#define BILLING_SUBSCRIPTIONS_H

#include "postgres.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/*
 * A payment became paid at paid_at: extend (or start) the user's subscription
 * for the tariff by months; writes grant_role / notify(subscribed) outbox
 * rows as needed.  Returns billing.subscriptions.id and sets *term to the
 * term the months count in (payments stores both: a refund takes the months
 * off that term only).
 *
 * While the subscription is active or in grace at paid_at, the months are
 * added to the same anchor (the term goes on from its current end); when it
 * is new, blocked, or its grace had ended by paid_at, a new term starts at
 * paid_at and the role is granted again.  Every paid payment writes one
 * "subscribed" notification (a renewal too: it is the payment's receipt).
 * Locks the subscription row; the caller must be in a transaction (SPI is
 * connected here, nested calls are fine).
 */
extern int64 subscription_apply_payment(pg_uuid_t *payment_id, pg_uuid_t *user_id,
										int64 tariff_id, int32 months,
										TimestampTz paid_at, int32 *term);

/*
 * A paid payment was refunded: take its months off the term they count in;
 * if no paid time is left, access ends now (status blocked, revoke_role, no
 * grace); writes notify(refunded).  A payment of an earlier term (one that
 * ended in a block) takes nothing off the current term: only the
 * notification is written.
 */
extern void subscription_refund_payment(pg_uuid_t *payment_id, int64 subscription_id,
										int32 months);

/* Settings (microseconds), read by the sweep too. */
extern int64 subscription_grace_usecs(void);
extern int64 subscription_reminder_usecs(void);

/*
 * When the expiry sweep must next look at an active subscription whose term
 * ends at ends_at: the reminder time while the reminder of this term is still
 * to be sent, else the end itself.
 */
extern TimestampTz subscription_active_next_check(TimestampTz ends_at,
												  bool reminder_pending);

/* Queue grant_role or revoke_role ("grant_role"/"revoke_role"). */
extern bool subscription_role_message(const char *kind, pg_uuid_t *user_id,
									  int64 tariff_id,
									  const char *idempotency_key);

/* The payload of the two, as jsonb text (palloc'd), for batched inserts. */
extern char *subscription_role_payload(pg_uuid_t *user_id, int64 tariff_id);

/* Whole seconds since the Unix epoch: the term part of idempotency keys. */
extern int64 subscription_epoch(TimestampTz ts);

#endif							/* BILLING_SUBSCRIPTIONS_H */
