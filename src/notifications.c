/*
 * notifications.c — the table of notification templates and the notify
 * messages that carry them.  A new template is one entry here plus the code
 * that decides when to send it (subscriptions.c, expiry.c); the outbox
 * worker accepts exactly the templates of this table.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/datetime.h"
#include "utils/json.h"

#include "common.h"
#include "notifications.h"
#include "outbox.h"

static const NotificationInfo templates[] = {
	{TEMPLATE_SUBSCRIBED, "subscribed",
		"a payment was paid, a first purchase or a renewal: its receipt",
	"the new end of the term"},
	{TEMPLATE_BLOCKED, "blocked",
		"the grace period is over and access ends (the expiry sweep)",
	"the end of the grace period"},
	{TEMPLATE_ENDED, "ended",
		"the term ended and the grace period began (the expiry sweep)",
	"the end of the term"},
	{TEMPLATE_REFUNDED, "refunded",
		"a payment was refunded",
	"the end of access: the shortened term's end, or the moment access ended"},
	{TEMPLATE_REMINDER, "reminder",
		"billing.reminder_before ahead of the end of a term, once per term (the expiry sweep); to a buyer without auto-renewal",
	"the end of the term"},
	{TEMPLATE_RENEWAL_REMINDER, "renewal_reminder",
		"the reminder to a buyer with auto-renewal: amount, currency and charge_at of the coming automatic charge",
	"the end of the term"},
	{TEMPLATE_RENEWAL_FAILED, "renewal_failed",
		"an automatic charge was declined: payment failed, update your card; amount and currency, charge_at of the next retry (empty when none is left)",
	"the end of the term (access lasts until its grace ends)"},
	{TEMPLATE_RENEWAL_ACTION, "renewal_action_required",
		"the bank asked the buyer to authenticate an automatic charge: action_url is the page that completes it; amount and currency",
	"the end of the term"},
};

const NotificationInfo *
notification_template(int num)
{
	for (int i = 0; i < (int) lengthof(templates); i++)
		if ((int) templates[i].num == num)
			return &templates[i];
	return NULL;
}

/* ISO 8601 in UTC with an explicit offset: 2026-02-28T10:00:00+00:00. */
static void
append_iso8601(StringInfo buf, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	/* A NULL tz pointer asks timestamp2tm for UTC, whatever the session zone. */
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	appendStringInfo(buf, "%04d-%02d-%02dT%02d:%02d:%02d",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (fsec != 0)
		appendStringInfo(buf, ".%06d", (int) fsec);
	appendStringInfoString(buf, "+00:00");
}

char *
notification_payload(NotificationTemplate t, const pg_uuid_t *user_id, int64 tariff_id,
					 const char *tariff_title, TimestampTz end_payment)
{
	return notification_charge_payload(t, user_id, tariff_id, tariff_title, end_payment, NULL);
}

char *
notification_charge_payload(NotificationTemplate t, const pg_uuid_t *user_id, int64 tariff_id,
							const char *tariff_title, TimestampTz end_payment,
							const NotificationCharge *charge)
{
	StringInfoData buf;

	Assert(notification_template(t) != NULL);
	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"template\": %d, \"user_id\": \"%s\", \"tariff_id\": " INT64_FORMAT
					 ", \"role_description\": ",
					 (int) t, billing_uuid_str(user_id), tariff_id);
	escape_json(&buf, tariff_title);
	appendStringInfoString(&buf, ", \"end_payment\": \"");
	append_iso8601(&buf, end_payment);
	appendStringInfoChar(&buf, '"');
	if (charge)
	{
		appendStringInfo(&buf, ", \"amount\": " INT64_FORMAT ", \"currency\": ", charge->amount);
		escape_json(&buf, charge->currency);
		if (charge->has_charge_at)
		{
			appendStringInfoString(&buf, ", \"charge_at\": \"");
			append_iso8601(&buf, charge->charge_at);
			appendStringInfoChar(&buf, '"');
		}
		if (charge->action_url)
		{
			appendStringInfoString(&buf, ", \"action_url\": ");
			escape_json(&buf, charge->action_url);
		}
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

bool
notification_enqueue(NotificationTemplate t, const pg_uuid_t *user_id, int64 tariff_id,
					 const char *tariff_title, TimestampTz end_payment,
					 const char *idempotency_key)
{
	return outbox_enqueue("notify",
						  notification_payload(t, user_id, tariff_id, tariff_title, end_payment),
						  idempotency_key,
						  outbox_ordering_key(user_id, tariff_id));
}
