-- The outbox's admin surface: the status and dead views, requeueing dead
-- messages (audited, billing_admin only), purging delivered ones.  The
-- regression cluster configures no gRPC target, so the worker leaves every
-- row here alone.
SELECT test_reset();

INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) VALUES
  ('create_role', '{"tariff_id": 1, "name": "Gold"}', 'tariff:1:create_role', 'tariff:1'),
  ('notify', '{"template": 1, "user_id": "00000000-0000-0000-0000-000000000001"}', 'k1', 'u1:1'),
  ('notify', '{"template": 2, "user_id": "00000000-0000-0000-0000-000000000001"}', 'k2', 'u1:1'),
  ('fetch_email', '{"user_id": "00000000-0000-0000-0000-000000000001"}', 'k3', NULL);

-- The same idempotency key twice is one message.
INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', '{}', 'k1')
  ON CONFLICT (idempotency_key) DO NOTHING;

-- Two parked after errors, one delivered long ago.
UPDATE billing.outbox SET status = 'dead', attempts = 20, last_error = 'UNAVAILABLE: connection refused (gave up after 20 attempts)'
 WHERE idempotency_key = 'k2';
UPDATE billing.outbox SET status = 'dead', attempts = 1, last_error = 'PERMISSION_DENIED: no'
 WHERE idempotency_key = 'k3';
UPDATE billing.outbox SET status = 'done', delivered_at = now() - interval '30 days'
 WHERE idempotency_key = 'tariff:1:create_role';

SELECT kind, pending, in_flight, dead, oldest_pending_age IS NOT NULL AS has_pending_age,
       oldest_dead_age IS NOT NULL AS has_dead_age
  FROM billing.outbox_status ORDER BY kind;
-- The last delivery is the delivered row's time (done rows are counted nowhere else).
SELECT kind, last_delivered_at = (SELECT delivered_at FROM billing.outbox
                                  WHERE idempotency_key = 'tariff:1:create_role') AS is_that_row
  FROM billing.outbox_status WHERE last_delivered_at IS NOT NULL;
SELECT kind, idempotency_key, attempts, last_error FROM billing.outbox_dead ORDER BY id;

-- Who may do what.
CREATE ROLE outbox_plain;
CREATE ROLE outbox_admin IN ROLE billing_admin;
SET ROLE outbox_plain;
SELECT * FROM billing.outbox_status;                    -- 42501
SELECT billing.outbox_retry_dead();                     -- 42501
SELECT billing.outbox_purge();                          -- 42501
SELECT billing.outbox_wake();                           -- 42501
SELECT billing.outbox_discard_dead(ARRAY[1]::bigint[]); -- 42501
RESET ROLE;

SET ROLE outbox_admin;
SELECT count(*) FROM billing.outbox_dead;
-- ids that are not dead change nothing and audit nothing
SELECT billing.outbox_retry_dead(ARRAY[1, 2, 999]::bigint[]);
SELECT billing.outbox_retry_dead(ARRAY[(SELECT id FROM billing.outbox_dead WHERE idempotency_key = 'k3')]);
SELECT billing.outbox_retry_dead();
SELECT billing.outbox_retry_dead();
-- admins cannot edit outbox rows directly, only through the functions
UPDATE billing.outbox SET status = 'dead' WHERE idempotency_key = 'k2';  -- 42501
RESET ROLE;
UPDATE billing.outbox SET status = 'dead', last_error = 'INVALID_ARGUMENT: bad' WHERE idempotency_key = 'k2';
-- discarding needs the ids, and only dead ones go (audited with their content)
SET ROLE outbox_admin;
SELECT billing.outbox_discard_dead(NULL);                -- 22004
SELECT billing.outbox_discard_dead(ARRAY[1, 999]::bigint[]);
SELECT billing.outbox_discard_dead(ARRAY[(SELECT id FROM billing.outbox WHERE idempotency_key = 'k2')]);
RESET ROLE;

SELECT idempotency_key, status, attempts, last_error IS NOT NULL AS kept_last_error,
       next_attempt_at <= now() AS due
  FROM billing.outbox ORDER BY id;
SELECT actor, action, target, before, after FROM billing.admin_audit ORDER BY id;

-- Purging keeps anything undelivered and anything delivered recently.
SELECT billing.outbox_purge(interval '-1 day');         -- 22023
SELECT billing.outbox_purge(NULL);                      -- 22023
SELECT billing.outbox_purge(interval '60 days');
SELECT billing.outbox_purge();
SELECT idempotency_key, status FROM billing.outbox ORDER BY id;

-- The worker has no target here: nothing was claimed or attempted.
SELECT count(*) AS touched FROM billing.outbox WHERE status = 'in_flight' OR claimed_by IS NOT NULL;

DROP ROLE outbox_plain, outbox_admin;
