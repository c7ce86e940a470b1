---------------------------------------------------------------------------
-- Outbox delivery (outbox.c, outbox_worker.c): what admins see and do.
---------------------------------------------------------------------------

-- Wake the outbox worker when the calling transaction commits.
CREATE FUNCTION billing.outbox_wake() RETURNS void
    VOLATILE PARALLEL UNSAFE LANGUAGE C AS 'MODULE_PATHNAME', 'billing_outbox_wake';
COMMENT ON FUNCTION billing.outbox_wake() IS
$$Wakes the outbox worker when the calling transaction commits (what every queued message does by itself); for SQL that changes outbox rows directly.  Owner only.$$;
REVOKE ALL ON FUNCTION billing.outbox_wake() FROM PUBLIC;

-- One row per kind of message: how much waits, how much is parked, how old,
-- and when one was last delivered.  The join takes delivered rows too (they
-- are kept until billing.outbox_purge): the counts and ages filter by status,
-- last_delivered_at reads the delivered ones.
CREATE VIEW billing.outbox_status AS
SELECT k.kind,
       count(o.id) FILTER (WHERE o.status = 'pending')   AS pending,
       count(o.id) FILTER (WHERE o.status = 'in_flight') AS in_flight,
       count(o.id) FILTER (WHERE o.status = 'dead')      AS dead,
       now() - min(o.created_at) FILTER (WHERE o.status IN ('pending', 'in_flight')) AS oldest_pending_age,
       now() - min(o.created_at) FILTER (WHERE o.status = 'dead') AS oldest_dead_age,
       max(o.delivered_at) FILTER (WHERE o.status = 'done') AS last_delivered_at
  FROM unnest(ARRAY['create_role', 'update_role', 'grant_role', 'revoke_role',
                    'fetch_email', 'notify']) AS k(kind)
  LEFT JOIN billing.outbox o ON o.kind = k.kind
 GROUP BY k.kind;
COMMENT ON VIEW billing.outbox_status IS
$$Outbox backlog per kind of message (one row for each of the six kinds, zeros included), for monitoring: a growing pending count or oldest_pending_age means a service is down or a dead message holds others back.  Readable by billing_admin.$$;

COMMENT ON COLUMN billing.outbox_status.kind IS 'The kind of message (billing.outbox_kind).';
COMMENT ON COLUMN billing.outbox_status.pending IS 'Messages waiting for delivery or for their retry.';
COMMENT ON COLUMN billing.outbox_status.in_flight IS 'Messages claimed by the worker, a call under way.';
COMMENT ON COLUMN billing.outbox_status.dead IS 'Messages parked as dead (billing.outbox_dead).';
COMMENT ON COLUMN billing.outbox_status.oldest_pending_age IS 'Age of the oldest undelivered (pending or in-flight) message; null when none.';
COMMENT ON COLUMN billing.outbox_status.oldest_dead_age IS 'Age of the oldest dead message; null when none.';
COMMENT ON COLUMN billing.outbox_status.last_delivered_at IS 'The last delivery among the delivered rows still kept (billing.outbox_purge deletes old ones); null when none.';

-- The dead messages, newest first, with why they died.
CREATE VIEW billing.outbox_dead AS
SELECT id, kind, payload, idempotency_key, ordering_key, attempts, last_error, created_at
  FROM billing.outbox
 WHERE status = 'dead';
COMMENT ON VIEW billing.outbox_dead IS
$$Messages parked as dead after a permanent gRPC error, a malformed payload or billing.outbox_max_attempts transient failures.  Each holds back the later messages of its ordering key until billing.outbox_retry_dead requeues or billing.outbox_discard_dead deletes it.  Readable by billing_admin.  Columns as in billing.outbox.$$;

REVOKE ALL ON billing.outbox_status, billing.outbox_dead FROM PUBLIC;
GRANT SELECT ON billing.outbox_status, billing.outbox_dead TO billing_admin;

-- Requeue dead messages (all of them, or the given ids) for a fresh round of
-- attempts, once whatever killed them is fixed.  Audited.  Returns how many.
CREATE FUNCTION billing.outbox_retry_dead(ids bigint[] DEFAULT NULL) RETURNS bigint
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_outbox_retry_dead';
COMMENT ON FUNCTION billing.outbox_retry_dead(bigint[]) IS
$$Requeues dead outbox messages, all of them or those `ids`, with their attempts reset, wakes the worker, and returns how many.  Use it once whatever killed them is fixed; until then they hold back the later messages of their ordering keys.  Audited (action outbox_retry_dead, the ids) when anything was requeued.$$;
REVOKE ALL ON FUNCTION billing.outbox_retry_dead(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.outbox_retry_dead(bigint[]) TO billing_admin;

-- Delete dead messages that must never be sent (audited with their content),
-- which releases the messages queued behind them.  Returns how many.
CREATE FUNCTION billing.outbox_discard_dead(ids bigint[]) RETURNS bigint
    VOLATILE LANGUAGE C SECURITY DEFINER SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'billing_outbox_discard_dead';
COMMENT ON FUNCTION billing.outbox_discard_dead(bigint[]) IS
$$Deletes those dead outbox messages (a payload that can never be sent, a message made moot), releasing the messages of the same ordering key queued behind them; returns how many.  Audited (action outbox_discard_dead) with their content in before.

Errors: NULL 22004.$$;
REVOKE ALL ON FUNCTION billing.outbox_discard_dead(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.outbox_discard_dead(bigint[]) TO billing_admin;

-- Delivered messages are kept a while for inspection, then deleted (pg_cron).
CREATE FUNCTION billing.outbox_purge(older_than interval DEFAULT '7 days') RETURNS bigint
    VOLATILE LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM billing.require_primary('billing.outbox_purge');
    IF older_than IS NULL OR older_than < interval '0' THEN
        RAISE EXCEPTION 'older_than must be a non-negative interval'
            USING ERRCODE = '22023';
    END IF;
    DELETE FROM billing.outbox WHERE status = 'done' AND delivered_at < now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION billing.outbox_purge(interval) IS
$$Deletes delivered (done) outbox messages delivered longer than `older_than` ago (default 7 days) and returns how many.  pg_cron job billing-outbox-purge, schedule billing.outbox_purge_schedule.

Errors: a negative or NULL interval 22023.$$;
REVOKE ALL ON FUNCTION billing.outbox_purge(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION billing.outbox_purge(interval) TO billing_admin;

-- Daily by default (billing.outbox_purge_schedule).
INSERT INTO billing.cron_jobs (name, schedule_setting, command)
VALUES ('billing-outbox-purge', 'billing.outbox_purge_schedule', 'SELECT billing.outbox_purge()');
SELECT billing.schedule_jobs();
