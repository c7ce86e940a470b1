/*
 * outbox_delivery.c — one batch of billing.outbox at a time: claim due rows
 * and commit the claim, turn each into a gRPC call (grpc.c), judge the
 * answers, record every outcome in one transaction.
 *
 * Delivery is at least once: a row is marked done only after the service
 * answered, so a crash between the two repeats the call with the same
 * idempotency key.  Rows sharing an ordering key go out one at a time in id
 * order; role operations wait until the tariff's auth role id is known.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common.h"
#include "grpc.h"
#include "notifications.h"
#include "outbox_delivery.h"
#include "messagesender.pb-c.h"
#include "rolescontrol.pb-c.h"

/* --- one claimed message --------------------------------------------------- */

typedef enum OutboxKind
{
	KIND_CREATE_ROLE,
	KIND_UPDATE_ROLE,
	KIND_GRANT_ROLE,
	KIND_REVOKE_ROLE,
	KIND_FETCH_EMAIL,
	KIND_NOTIFY,
	KIND_UNKNOWN
} OutboxKind;

typedef enum Outcome
{
	OUTCOME_DONE,
	OUTCOME_RETRY,
	OUTCOME_DEAD,
	OUTCOME_RELEASE				/* not attempted after all: back to pending */
} Outcome;

struct OutboxMsg
{
	int64		id;
	OutboxKind	kind;
	char	   *key;
	int32		attempts;
	/* payload fields (NULL when absent) and the tariff's role id */
	char	   *tariff_id;
	char	   *user_id;
	char	   *name;
	char	   *template_num;
	char	   *role_description;
	char	   *end_payment;
	char	   *amount;			/* a charge's (auto-renewal templates), or NULL */
	char	   *currency;
	char	   *charge_at;
	char	   *action_url;
	char	   *role_id;
	/* delivery */
	int			call;			/* index into the calls array, or -1 */
	Outcome		outcome;
	char	   *error;
	double		delay_ms;
	char	   *result;			/* CreateRole's role id / GetUserInfo's email */
};

static const char *const kind_names[] = {
	"create_role", "update_role", "grant_role", "revoke_role", "fetch_email", "notify"
};

/* --- SQL the worker runs -------------------------------------------------- */

/* A numeric tariff id from the payload, or NULL: a bad payload never errors here. */
#define TARIFF_ID_EXPR \
	"CASE WHEN o.payload->>'tariff_id' ~ '^[0-9]{1,18}$' " \
	"THEN (o.payload->>'tariff_id')::bigint END"

static const char *const claim_sql =
"WITH due AS ("
"  SELECT o.id FROM billing.outbox o"
"  WHERE o.status = 'pending' AND o.next_attempt_at <= now()"
"    AND o.kind = ANY ($2)"
/*
 * An earlier undelivered message with the same ordering key goes first; a
 * dead one too, so that requeueing it later cannot put it behind its
 * successors (a grant retried after the revoke that followed it).
 */
"    AND (o.ordering_key IS NULL OR NOT EXISTS ("
"          SELECT 1 FROM billing.outbox e"
"          WHERE e.ordering_key = o.ordering_key AND e.id < o.id"
"            AND e.status IN ('pending', 'in_flight', 'dead')))"
/* role operations wait for CreateRole's answer (a missing tariff is claimed, then parked) */
"    AND (o.kind NOT IN ('update_role', 'grant_role', 'revoke_role') OR NOT EXISTS ("
"          SELECT 1 FROM marketing.tariffs t"
"          WHERE t.id = " TARIFF_ID_EXPR " AND t.auth_role_id IS NULL))"
"  ORDER BY o.next_attempt_at, o.id"
"  LIMIT $1"
"  FOR UPDATE OF o SKIP LOCKED)"
"UPDATE billing.outbox o"
"   SET status = 'in_flight', attempts = o.attempts + 1,"
"       claimed_at = now(), claimed_by = $3, claimed_by_start = $4"
"  FROM due WHERE o.id = due.id "
"RETURNING o.id, o.kind, o.idempotency_key, o.attempts,"
"  o.payload->>'tariff_id', o.payload->>'user_id', o.payload->>'name',"
"  o.payload->>'template', o.payload->>'role_description', o.payload->>'end_payment',"
"  (SELECT t.auth_role_id FROM marketing.tariffs t WHERE t.id = " TARIFF_ID_EXPR "),"
"  o.payload->>'amount', o.payload->>'currency', o.payload->>'charge_at', o.payload->>'action_url'";

static const char *const outcome_sql =
"UPDATE billing.outbox o"
"   SET status = r.status,"
"       attempts = o.attempts - r.undo,"
"       delivered_at = CASE WHEN r.status = 'done' THEN now() END,"
"       next_attempt_at = CASE WHEN r.status = 'pending'"
"                         THEN now() + r.delay_ms * interval '1 millisecond'"
"                         ELSE o.next_attempt_at END,"
"       last_error = CASE WHEN r.status = 'done' THEN NULL ELSE coalesce(r.error, o.last_error) END,"
"       claimed_at = NULL, claimed_by = NULL, claimed_by_start = NULL"
"  FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[], $5::int[])"
"       AS r(id, status, delay_ms, error, undo)"
" WHERE o.id = r.id AND o.status = 'in_flight'"
"   AND o.claimed_by = $6 AND o.claimed_by_start = $7";

/* --- claiming ------------------------------------------------------------- */

/* The settings of the batch at hand (set by the two entry points below). */
static const OutboxSettings *cfg = NULL;
static MemoryContext batch_cxt = NULL;

static OutboxKind
kind_from_name(const char *name)
{
	for (int i = 0; i < (int) lengthof(kind_names); i++)
		if (strcmp(name, kind_names[i]) == 0)
			return (OutboxKind) i;
	return KIND_UNKNOWN;
}

static bool
is_auth_kind(OutboxKind kind)
{
	return kind != KIND_NOTIFY;
}

/*
 * Whether this server takes writes now.  The worker only starts once
 * recovery has ended, but a node that pg_auto_failover has just promoted
 * stays read-only (default_transaction_read_only) until the monitor lets it
 * take writes: meanwhile the worker waits instead of failing every claim.
 */
static bool
outbox_server_writable(void)
{
	return !RecoveryInProgress() && !DefaultXactReadOnly;
}

OutboxMsg *
outbox_claim_batch(const OutboxSettings *s, MemoryContext cxt, bool *reclaimed,
				   int *nmsgs, long *sleep_ms)
{
	OutboxMsg  *msgs = NULL;
	Datum		kinds[lengthof(kind_names)];
	int			nkinds = 0;
	bool		auth;
	bool		notify;

	cfg = s;
	batch_cxt = cxt;
	auth = cfg->auth_target && cfg->auth_target[0];
	notify = cfg->notify_target && cfg->notify_target[0];

	*nmsgs = 0;
	*sleep_ms = cfg->poll_interval_ms;

	/* Without a target there is nothing to do: rows stay pending, untouched. */
	if (!auth && !notify)
		return NULL;
	if (!outbox_server_writable())
		return NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "claiming outbox messages");

	/* The extension may not exist (yet, or any more) in this database. */
	if (!OidIsValid(get_extension_oid("billing", true)))
		goto done;

	if (!*reclaimed)
	{
		/*
		 * Only one worker runs, so any claim still in flight belongs to a
		 * predecessor that died mid-batch (crash, kill, immediate stop).
		 * Those calls may or may not have reached the service; deliver them
		 * again under the same idempotency key.  A claim is recognised by
		 * the pid *and* the start time of the process that made it: after a
		 * crash the kernel may hand us our predecessor's pid, but never with
		 * our start time.
		 */
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
		Datum		values[2] = {Int32GetDatum(MyProcPid),
		TimestampTzGetDatum(MyStartTimestamp)};
		uint64		n;

		n = billing_spi_exec(&plan,
							 "UPDATE billing.outbox SET status = 'pending', claimed_at = NULL,"
							 " claimed_by = NULL, claimed_by_start = NULL, next_attempt_at = now(),"
							 " last_error = 'requeued: the worker holding the claim stopped mid-delivery'"
							 " WHERE status = 'in_flight'"
							 "   AND (claimed_by, claimed_by_start) IS DISTINCT FROM ($1, $2)",
							 2, argtypes, values, NULL, false, 0);
		if (n > 0)
			ereport(LOG,
					(errmsg("billing outbox worker requeued %llu messages claimed by a stopped worker",
							(unsigned long long) n)));
		*reclaimed = true;
	}

	for (int i = 0; i < (int) lengthof(kind_names); i++)
		if ((i == KIND_NOTIFY) ? notify : auth)
			kinds[nkinds++] = CStringGetTextDatum(kind_names[i]);

	{
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[4] = {INT4OID, TEXTARRAYOID, INT4OID, TIMESTAMPTZOID};
		Datum		values[4];
		uint64		n;
		MemoryContext old;

		values[0] = Int32GetDatum(cfg->batch_size);
		values[1] = PointerGetDatum(construct_array(kinds, nkinds, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = Int32GetDatum(MyProcPid);
		values[3] = TimestampTzGetDatum(MyStartTimestamp);
		n = billing_spi_exec(&plan, claim_sql, 4, argtypes, values, NULL, false, 0);

		msgs = MemoryContextAllocZero(batch_cxt, sizeof(OutboxMsg) * Max(n, 1));
		/* the strings must outlive SPI_finish: they live in the batch */
		old = MemoryContextSwitchTo(batch_cxt);
		for (uint64 r = 0; r < n; r++)
		{
			OutboxMsg  *m = &msgs[r];
			bool		isnull;
			char	   *kind;

			m->id = DatumGetInt64(billing_spi_get(r, 1, &isnull));
			kind = billing_spi_text(r, 2);
			m->kind = kind_from_name(kind);
			m->key = billing_spi_text(r, 3);
			m->attempts = DatumGetInt32(billing_spi_get(r, 4, &isnull));
			m->tariff_id = billing_spi_text(r, 5);
			m->user_id = billing_spi_text(r, 6);
			m->name = billing_spi_text(r, 7);
			m->template_num = billing_spi_text(r, 8);
			m->role_description = billing_spi_text(r, 9);
			m->end_payment = billing_spi_text(r, 10);
			m->role_id = billing_spi_text(r, 11);
			m->amount = billing_spi_text(r, 12);
			m->currency = billing_spi_text(r, 13);
			m->charge_at = billing_spi_text(r, 14);
			m->action_url = billing_spi_text(r, 15);
			m->call = -1;
		}
		MemoryContextSwitchTo(old);
		*nmsgs = (int) n;
	}

	/* When does the next message that is not due yet fall due? */
	if (*nmsgs < cfg->batch_size)
	{
		static SPIPlanPtr plan = NULL;
		bool		isnull;
		Datum		d;

		billing_spi_exec(&plan,
						 "SELECT (extract(epoch FROM min(next_attempt_at) - now()) * 1000)::float8"
						 "  FROM billing.outbox WHERE status = 'pending' AND next_attempt_at > now()",
						 0, NULL, NULL, NULL, true, 1);
		d = billing_spi_get(0, 1, &isnull);
		if (!isnull)
		{
			double		ms = DatumGetFloat8(d);

			if (ms < *sleep_ms)
				*sleep_ms = (long) Max(ms + 1, 1);
		}
	}

done:
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return msgs;
}

/* --- building the calls --------------------------------------------------- */

/* A uuid user id as billing writes it (the payload is never trusted). */
static bool
valid_uuid(const char *s)
{
	return billing_parse_uuid(s, -1, NULL);
}

static void
park(OutboxMsg *m, const char *fmt, const char *arg)
{
	m->outcome = OUTCOME_DEAD;
	m->error = psprintf(fmt, arg ? arg : "");
}

#define PARK(m, fmt, arg) do { park(m, fmt, arg); return; } while (0)

/* A tariff id as billing writes it: digits only, fits in bigint. */
static bool
valid_id(const char *s)
{
	size_t		len = s ? strlen(s) : 0;

	return len >= 1 && len <= 18 && strspn(s, "0123456789") == len;
}

/*
 * Turn a claimed row into a gRPC call; a row that cannot be sent (bad
 * payload, unknown kind, tariff gone) is parked as dead instead.
 */
static void
build_call(OutboxMsg *m, GrpcCall *call)
{
	const char *target = is_auth_kind(m->kind) ? cfg->auth_target : cfg->notify_target;

	/* The key travels as gRPC metadata too: printable ASCII only. */
	for (const char *c = m->key; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			PARK(m, "malformed idempotency key: only printable ASCII can travel as metadata%s", NULL);

	switch (m->kind)
	{
		case KIND_CREATE_ROLE:
			{
				Rolescontrol__NewRole req = ROLESCONTROL__NEW_ROLE__INIT;

				if (!valid_id(m->tariff_id) || m->name == NULL || m->name[0] == '\0')
					PARK(m, "malformed payload: create_role needs tariff_id and name%s", NULL);
				req.name = m->name;
				req.idempotency_key = m->key;
				grpc_prepare(call, target, "/rolescontrol.RolesControl/CreateRole",
							 &req.base, m->key);
				break;
			}
		case KIND_UPDATE_ROLE:
			{
				Rolescontrol__Role req = ROLESCONTROL__ROLE__INIT;

				if (!valid_id(m->tariff_id) || m->name == NULL || m->name[0] == '\0')
					PARK(m, "malformed payload: update_role needs tariff_id and name%s", NULL);
				if (m->role_id == NULL)
					PARK(m, "tariff %s does not exist", m->tariff_id);
				req.role_id = m->role_id;
				req.name = m->name;
				req.idempotency_key = m->key;
				grpc_prepare(call, target, "/rolescontrol.RolesControl/UpdateRole",
							 &req.base, m->key);
				break;
			}
		case KIND_GRANT_ROLE:
		case KIND_REVOKE_ROLE:
			{
				Rolescontrol__ProvideRole req = ROLESCONTROL__PROVIDE_ROLE__INIT;

				if (!valid_id(m->tariff_id) || !valid_uuid(m->user_id))
					PARK(m, "malformed payload: %s needs tariff_id and a uuid user_id",
								kind_names[m->kind]);
				if (m->role_id == NULL)
					PARK(m, "tariff %s does not exist", m->tariff_id);
				req.user_id = m->user_id;
				req.role_id = m->role_id;
				req.idempotency_key = m->key;
				grpc_prepare(call, target,
							 m->kind == KIND_GRANT_ROLE ?
							 "/rolescontrol.RolesControl/ProvideRoleUser" :
							 "/rolescontrol.RolesControl/RevokeRoleUser",
							 &req.base, m->key);
				break;
			}
		case KIND_FETCH_EMAIL:
			{
				Rolescontrol__Uuid req = ROLESCONTROL__UUID__INIT;

				if (!valid_uuid(m->user_id))
					PARK(m, "malformed payload: fetch_email needs a uuid user_id%s", NULL);
				req.id = m->user_id;
				grpc_prepare(call, target, "/rolescontrol.RolesControl/GetUserInfo",
							 &req.base, m->key);
				break;
			}
		case KIND_NOTIFY:
			{
				Messagesender__BillingMessage req = MESSAGESENDER__BILLING_MESSAGE__INIT;
				int			t;

				if (m->template_num == NULL || strlen(m->template_num) > 9 ||
					strspn(m->template_num, "0123456789") != strlen(m->template_num) ||
					notification_template(t = atoi(m->template_num)) == NULL)
					PARK(m, "malformed payload: notify needs a known template%s", NULL);
				if (!valid_uuid(m->user_id))
					PARK(m, "malformed payload: notify needs a uuid user_id%s", NULL);
				req.template_num = t;
				req.user_id = m->user_id;
				req.role_description = m->role_description ? m->role_description : "";
				req.end_payment = m->end_payment ? m->end_payment : "";
				if (m->amount)
				{
					if (strlen(m->amount) > 19 || strspn(m->amount, "0123456789") != strlen(m->amount))
						PARK(m, "malformed payload: notify's amount must be whole minor units%s", NULL);
					req.amount = strtoll(m->amount, NULL, 10);
				}
				req.currency = m->currency ? m->currency : "";
				req.charge_at = m->charge_at ? m->charge_at : "";
				req.action_url = m->action_url ? m->action_url : "";
				req.idempotency_key = m->key;
				grpc_prepare(call, target, "/messagesender.MessageSender/SendBillingMessage",
							 &req.base, m->key);
				break;
			}
		case KIND_UNKNOWN:
			PARK(m, "unknown kind%s", NULL);
	}
}

/* --- outcomes -------------------------------------------------------------- */

static bool
permanent_status(int status)
{
	switch (status)
	{
		case GRPC_INVALID_ARGUMENT:
		case GRPC_NOT_FOUND:
		case GRPC_ALREADY_EXISTS:
		case GRPC_PERMISSION_DENIED:
		case GRPC_FAILED_PRECONDITION:
		case GRPC_OUT_OF_RANGE:
		case GRPC_UNIMPLEMENTED:
		case GRPC_UNAUTHENTICATED:
			return true;
		default:
			/* UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, ... */
			return false;
	}
}

/* Exponential backoff with jitter: base * 2^(attempt-1), capped, times [0.5, 1). */
static double
backoff_ms(int attempts)
{
	double		d = cfg->backoff_base_ms * pow(2.0, Min(attempts - 1, 40));

	if (d > cfg->backoff_max_ms)
		d = cfg->backoff_max_ms;
	return d * (0.5 + 0.5 * pg_prng_double(&pg_global_prng_state));
}

#define RETRY(m, error) do { retry(m, error); return; } while (0)

static void
retry(OutboxMsg *m, char *error)
{
	m->error = error;
	if (m->attempts >= cfg->max_attempts)
	{
		m->outcome = OUTCOME_DEAD;
		m->error = psprintf("%s (gave up after %d attempts)", error, m->attempts);
	}
	else
	{
		m->outcome = OUTCOME_RETRY;
		m->delay_ms = backoff_ms(m->attempts);
	}
}

/* Judge one finished call. */
static void
judge(OutboxMsg *m, GrpcCall *call, bool finished)
{
	/* cut short by an interrupt: not an attempt, back to the queue as it was */
	if (!finished && call->status == GRPC_CANCELLED)
	{
		m->outcome = OUTCOME_RELEASE;
		return;
	}
	if (call->status != GRPC_OK)
	{
		char	   *err = psprintf("%s: %s", grpc_status_name(call->status), call->message);

		if (permanent_status(call->status))
		{
			m->outcome = OUTCOME_DEAD;
			m->error = err;
		}
		else
			retry(m, err);
		return;
	}

	switch (m->kind)
	{
		case KIND_CREATE_ROLE:
			{
				Rolescontrol__Uuid *r = (Rolescontrol__Uuid *)
					grpc_unpack(call, &rolescontrol__uuid__descriptor);

				if (r == NULL || r->id == NULL || r->id[0] == '\0' ||
					strlen(r->id) > 200 || !pg_verifymbstr(r->id, strlen(r->id), true))
					RETRY(m, pstrdup("INTERNAL: CreateRole answered without a usable role id"));
				m->result = r->id;
				break;
			}
		case KIND_FETCH_EMAIL:
			{
				Rolescontrol__UserInfo *r = (Rolescontrol__UserInfo *)
					grpc_unpack(call, &rolescontrol__user_info__descriptor);

				if (r == NULL || r->email == NULL ||
					strlen(r->email) > 320 || !pg_verifymbstr(r->email, strlen(r->email), true))
					RETRY(m, pstrdup("INTERNAL: GetUserInfo answered with an unusable e-mail"));
				m->result = r->email[0] ? r->email : NULL;
				break;
			}
		default:
			{
				/* Both services answer OperationResult, which has the same shape. */
				Rolescontrol__OperationResult *r = (Rolescontrol__OperationResult *)
					grpc_unpack(call, &rolescontrol__operation_result__descriptor);

				if (r == NULL)
					RETRY(m, pstrdup("INTERNAL: malformed OperationResult"));
				if (!r->successful)
					RETRY(m, pstrdup("the service answered successful=false"));
				break;
			}
	}
	m->outcome = OUTCOME_DONE;
}

/* Record every outcome of the batch, and what the answers taught us, in one transaction. */
static void
record_outcomes(OutboxMsg *msgs, int n)
{
	static const char *const status_of[] = {"done", "pending", "dead", "pending"};
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *statuses = palloc(sizeof(Datum) * n);
	Datum	   *delays = palloc(sizeof(Datum) * n);
	Datum	   *errors = palloc(sizeof(Datum) * n);
	bool	   *errnulls = palloc(sizeof(bool) * n);
	Datum	   *undos = palloc(sizeof(Datum) * n);
	Datum	   *role_tariffs = palloc(sizeof(Datum) * n);
	Datum	   *role_ids = palloc(sizeof(Datum) * n);
	Datum	   *email_users = palloc(sizeof(Datum) * n);
	Datum	   *emails = palloc(sizeof(Datum) * n);
	bool	   *emailnulls = palloc(sizeof(bool) * n);
	int			nroles = 0,
				nemails = 0;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		OutboxMsg  *m = &msgs[i];

		ids[i] = Int64GetDatum(m->id);
		statuses[i] = CStringGetTextDatum(status_of[m->outcome]);
		delays[i] = Float8GetDatum(m->delay_ms);
		errnulls[i] = (m->error == NULL);
		errors[i] = m->error ? CStringGetTextDatum(m->error) : (Datum) 0;
		undos[i] = Int32GetDatum(m->outcome == OUTCOME_RELEASE ? 1 : 0);
		if (m->outcome == OUTCOME_DONE && m->kind == KIND_CREATE_ROLE)
		{
			role_tariffs[nroles] = DirectFunctionCall1(int8in, CStringGetDatum(m->tariff_id));
			role_ids[nroles++] = CStringGetTextDatum(m->result);
		}
		if (m->outcome == OUTCOME_DONE && m->kind == KIND_FETCH_EMAIL)
		{
			email_users[nemails] = CStringGetTextDatum(m->user_id);
			emailnulls[nemails] = (m->result == NULL);
			emails[nemails++] = m->result ? CStringGetTextDatum(m->result) : (Datum) 0;
		}
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "recording outbox outcomes");

	{
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[7] = {INT8ARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID,
		TEXTARRAYOID, INT4ARRAYOID, INT4OID, TIMESTAMPTZOID};
		Datum		values[7];

		values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(statuses, n, TEXTOID, -1, false, TYPALIGN_INT));
		values[2] = PointerGetDatum(construct_array(delays, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[3] = PointerGetDatum(construct_md_array(errors, errnulls, 1, dims, lbs,
													   TEXTOID, -1, false, TYPALIGN_INT));
		values[4] = PointerGetDatum(construct_array(undos, n, INT4OID, 4, true, TYPALIGN_INT));
		values[5] = Int32GetDatum(MyProcPid);
		values[6] = TimestampTzGetDatum(MyStartTimestamp);
		billing_spi_exec(&plan, outcome_sql, 7, argtypes, values, NULL, false, 0);
	}

	if (nroles > 0)
	{
		/* The first answer wins: a repeated CreateRole never moves a tariff to another role. */
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[2] = {INT8ARRAYOID, TEXTARRAYOID};
		Datum		values[2];

		values[0] = PointerGetDatum(construct_array(role_tariffs, nroles, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(role_ids, nroles, TEXTOID, -1, false, TYPALIGN_INT));
		billing_spi_exec(&plan,
						 "UPDATE marketing.tariffs t SET auth_role_id = r.role_id"
						 "  FROM unnest($1::bigint[], $2::text[]) AS r(tariff_id, role_id)"
						 " WHERE t.id = r.tariff_id AND t.auth_role_id IS NULL",
						 2, argtypes, values, NULL, false, 0);
	}

	if (nemails > 0)
	{
		static SPIPlanPtr plan = NULL;
		Oid			argtypes[2] = {TEXTARRAYOID, TEXTARRAYOID};
		Datum		values[2];
		int			edims[1] = {nemails};

		values[0] = PointerGetDatum(construct_array(email_users, nemails, TEXTOID, -1, false, TYPALIGN_INT));
		values[1] = PointerGetDatum(construct_md_array(emails, emailnulls, 1, edims, lbs,
													   TEXTOID, -1, false, TYPALIGN_INT));
		billing_spi_exec(&plan,
						 "UPDATE billing.customers c SET email = r.email"
						 "  FROM unnest($1::text[], $2::text[]) AS r(user_id, email)"
						 " WHERE c.user_id = r.user_id::uuid",
						 2, argtypes, values, NULL, false, 0);
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

bool
outbox_deliver_batch(const OutboxSettings *s, OutboxMsg *msgs, int n)
{
	GrpcCall   *calls = palloc(sizeof(GrpcCall) * n);
	int			ncalls = 0;
	GrpcOptions opt;
	bool		finished;

	cfg = s;

	for (int i = 0; i < n; i++)
	{
		build_call(&msgs[i], &calls[ncalls]);
		if (msgs[i].outcome != OUTCOME_DEAD)
			msgs[i].call = ncalls++;
	}

	opt.connect_timeout_ms = cfg->connect_timeout_ms;
	opt.deadline_ms = cfg->deadline_ms;
	opt.ca_file = cfg->ca_file;
	pgstat_report_activity(STATE_RUNNING, "delivering outbox messages");
	finished = grpc_run(calls, ncalls, cfg->concurrency, &opt);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (int i = 0; i < n; i++)
		if (msgs[i].call >= 0)
			judge(&msgs[i], &calls[msgs[i].call], finished);

	if (!finished && !PostmasterIsAlive())
		proc_exit(1);

	/*
	 * Even when asked to stop, record what the services already answered
	 * (one short transaction) so that a clean shutdown repeats nothing and
	 * leaves nothing in flight; the interrupt is served right after.
	 */
	HOLD_INTERRUPTS();
	record_outcomes(msgs, n);
	RESUME_INTERRUPTS();
	return finished;
}

