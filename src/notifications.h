/*
 * notifications.h — the notification templates the cinema's notification
 * service knows (messagesender.BillingMessage.template_num), in one table
 * (notifications.c), and the notify messages that carry them.
 */
#ifndef BILLING_NOTIFICATIONS_H
#define BILLING_NOTIFICATIONS_H

#include "postgres.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* Numbers are the wire contract: never renumber, only add. */
typedef enum NotificationTemplate
{
	TEMPLATE_SUBSCRIBED = 1,
	TEMPLATE_BLOCKED = 2,
	TEMPLATE_ENDED = 3,
	TEMPLATE_REFUNDED = 4,
	TEMPLATE_REMINDER = 5,
	TEMPLATE_RENEWAL_REMINDER = 6,
	TEMPLATE_RENEWAL_FAILED = 7,
	TEMPLATE_RENEWAL_ACTION = 8
} NotificationTemplate;

/*
 * What the auto-renewal templates say besides the end of the term: the
 * charge's amount (minor units) and currency, when it is or will be tried
 * (has_charge_at false: no retry is left), the page that completes it.
 */
typedef struct NotificationCharge
{
	int64		amount;
	const char *currency;
	bool		has_charge_at;
	TimestampTz charge_at;
	const char *action_url;		/* or NULL */
} NotificationCharge;

/* One template: what it is called, when it is sent, what end_payment says. */
typedef struct NotificationInfo
{
	NotificationTemplate num;
	const char *name;
	const char *when;
	const char *end_payment;
} NotificationInfo;

/* The template numbered num, or NULL when there is none. */
extern const NotificationInfo *notification_template(int num);

/*
 * The payload of a notify message, as jsonb text (palloc'd): template,
 * user_id, tariff_id, role_description (the tariff's title) and end_payment
 * (ISO 8601, UTC); with a charge (may be NULL) also amount, currency,
 * charge_at and action_url.
 */
extern char *notification_payload(NotificationTemplate t, const pg_uuid_t *user_id,
								  int64 tariff_id, const char *tariff_title,
								  TimestampTz end_payment);
extern char *notification_charge_payload(NotificationTemplate t, const pg_uuid_t *user_id,
										 int64 tariff_id, const char *tariff_title,
										 TimestampTz end_payment,
										 const NotificationCharge *charge);

/*
 * Queue one notify message for the user and tariff (ordered with their role
 * messages).  Returns true when it was new (false: this event's key was
 * queued already).  The caller must be connected to SPI.
 */
extern bool notification_enqueue(NotificationTemplate t, const pg_uuid_t *user_id,
								 int64 tariff_id, const char *tariff_title,
								 TimestampTz end_payment, const char *idempotency_key);

#endif							/* BILLING_NOTIFICATIONS_H */
