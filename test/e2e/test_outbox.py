"""End-to-end: the outbox worker delivering to real gRPC servers (the
stand-ins in test/standins/grpc_standin.py), driven through the real SQL
functions (create_tariff, update_tariff, create_invoice, settle_payment,
run_expiry), then through faults: a service down, a slow server, permanent
errors, a bad row, SIGTERM mid-call, kill -9 and an immediate-mode stop
mid-batch.  Every wait polls; billing time moves with billing.test_clock."""

import datetime
import json
import os
import signal
import subprocess
import time
import unittest
import urllib.request
import uuid

from harness import (PGBIN, PYTHON, SRC, WORK, Cluster, exited, free_port, new_user, spawn,
                     stop, wait_for, wait_port)

STANDIN = os.path.join(SRC, "test", "standins", "grpc_standin.py")
UTC = datetime.timezone.utc


class Standin:
    """One grpc_standin.py process: auth and notify ports plus its control port."""

    def __init__(self, name, tls=None, extra=()):
        self.auth_port, self.notify_port, self.control_port = free_port(), free_port(), free_port()
        extra = list(extra)
        # "--auth-port 0" / "--notify-port 0" in extra: that service is not served
        if "--auth-port" in extra:
            self.auth_port = int(extra[extra.index("--auth-port") + 1])
        if "--notify-port" in extra:
            self.notify_port = int(extra[extra.index("--notify-port") + 1])
        args = [PYTHON, STANDIN, "--auth-port", str(self.auth_port),
                "--notify-port", str(self.notify_port), "--control-port", str(self.control_port)]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        args += [x for i, x in enumerate(extra)
                 if x not in ("--auth-port", "--notify-port")
                 and (i == 0 or extra[i - 1] not in ("--auth-port", "--notify-port"))]
        self.proc = spawn(args, name + ".log")
        for port in (self.auth_port, self.notify_port, self.control_port):
            if port:
                wait_port(port)
        scheme = "https" if tls else "http"
        self.auth = "%s://127.0.0.1:%d" % (scheme, self.auth_port)
        self.notify = "%s://127.0.0.1:%d" % (scheme, self.notify_port)

    def ctl(self, path, body=None):
        data = None if path in ("state", "stats") else json.dumps(body if body is not None else {}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/%s" % (self.control_port, path),
                                     data=data, method="GET" if data is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def state(self):
        return self.ctl("state")

    def calls(self, **match):
        return [c for c in self.state()["calls"]
                if all(c.get(k) == v for k, v in match.items())]


class OutboxDelivery(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.grpc = Standin("grpc_standin")
        cls.cluster = Cluster("outbox", conf=[
            "billing.auth_target = '%s'" % cls.grpc.auth,
            "billing.notify_target = '%s'" % cls.grpc.notify,
            "billing.grpc_deadline = 1000",
            "billing.grpc_connect_timeout = 500",
            "billing.outbox_backoff_base = 50",
            "billing.outbox_backoff_max = 400",
            "billing.outbox_max_attempts = 100",
            "billing.outbox_poll_interval = 200",
            "billing.expiry_schedule = ''",
            "billing.invoice_expiry_schedule = ''",
            "billing.stripe_poll_schedule = ''",
            "billing.outbox_purge_schedule = ''",
        ])
        cls.clock = None

    def setUp(self):
        self.grpc.ctl("clear")
        self.grpc.ctl("up", {"service": "auth"})
        self.grpc.ctl("up", {"service": "notify"})
        type(self).clock = None
        self.worker_pid()

    # ---- helpers -----------------------------------------------------------
    def q(self, sql, args=None):
        return self.cluster.query(sql, args, self.clock)

    def one(self, sql, args=None):
        return self.cluster.scalar(sql, args, self.clock)

    def worker_pid(self, timeout=30):
        return wait_for(lambda: self.one(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'billing outbox worker'"),
            timeout, what="the outbox worker")

    def wait_delivered(self, where="true", args=None, timeout=30):
        wait_for(lambda: self.one(
            "SELECT count(*) = 0 FROM billing.outbox WHERE status <> 'done' AND (%s)" % where, args),
            timeout, what="outbox rows delivered (%s)" % where)

    def new_tariff(self, title="Prime films"):
        code = "t" + uuid.uuid4().hex[:10]
        self.q("SELECT billing.create_tariff(%s, %s, 29900)", (code, title))
        tariff_id = self.one("SELECT id FROM marketing.tariffs WHERE code = %s", (code,))
        role = wait_for(lambda: self.one(
            "SELECT auth_role_id FROM marketing.tariffs WHERE id = %s", (tariff_id,)),
            what="the tariff's auth role id")
        return code, tariff_id, role

    def hold_a_call(self, key):
        """Queue a notify message and have the stand-in hold its call: ten
        minutes of delay under a ten-minute deadline, far longer than any
        wait of these tests, so what ends the call early is never the clock.
        Returns once a call with over a minute left is held.  Calls made
        before the worker reloaded the deadline time out and are retried."""
        self.cluster.set_conf(billing__grpc_deadline=600000)
        self.addCleanup(self.cluster.set_conf, billing__grpc_deadline=1000)
        self.grpc.ctl("fault", {"service": "notify", "delay_ms": 600000})
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
               "SELECT billing.outbox_wake()", (json.dumps({"template": 5, "user_id": key}), key))
        wait_for(lambda: any(h["key"] == key and (h["deadline_s"] or 0) > 60
                             for h in self.grpc.state()["held"]), what="the stand-in holding the call")

    def held(self, key):
        return any(h["key"] == key for h in self.grpc.state()["held"])

    def pay(self, user, code, months=1):
        pid = self.one("SELECT billing.create_invoice(%s, %s, %s)", (user, code, months))
        self.assertEqual(self.one("SELECT billing.settle_payment(%s, 'paid')", (pid,)), "paid")
        return pid

    def messages(self, user):
        return [m for m in self.grpc.state()["messages"] if m["user_id"] == str(user)]

    def templates(self, user):
        return [m["template_num"] for m in self.messages(user)]

    def sequence(self, user):
        """What reached the services for this user, first deliveries only,
        in arrival order: grant, revoke, or notify:<template>."""
        names = {"ProvideRoleUser": "grant", "RevokeRoleUser": "revoke"}
        seq = []
        for c in self.grpc.calls(user_id=str(user), outcome="ok", duplicate=False):
            if c["method"] == "SendBillingMessage":
                if c["template_num"] != 5:      # reminders depend on the sweep's timing
                    seq.append("notify:%d" % c["template_num"])
            elif c["method"] in names:
                seq.append(names[c["method"]])
        return seq

    # ---- the happy paths, through the real SQL functions -------------------
    def test_0_a_commit_wakes_the_worker(self):
        # no safety-net polling for an hour: within new_tariff's half-minute
        # wait, only the commit's wake-up can deliver
        self.cluster.set_conf(billing__outbox_poll_interval="1h")
        try:
            time.sleep(0.5)     # the worker reloads, then sleeps up to the hour
            self.new_tariff("Woken films")
        finally:
            self.cluster.set_conf(billing__outbox_poll_interval="200ms")

    def test_a_tariff_creates_and_renames_its_role(self):
        code, tariff_id, role = self.new_tariff("Gold films")
        state = self.grpc.state()
        self.assertEqual(state["roles"][role], "Gold films")
        creates = [c for c in state["calls"] if c["method"] == "CreateRole"
                   and c["key"] == "tariff:%d:create_role" % tariff_id]
        self.assertEqual([c["outcome"] for c in creates], ["ok"])

        self.q("SELECT billing.update_tariff(%s, title => 'Gold films HD')", (code,))
        wait_for(lambda: self.grpc.state()["roles"][role] == "Gold films HD", what="UpdateRole")
        self.wait_delivered("kind = 'update_role'")
        # the role keeps its id: nothing orphaned
        self.assertEqual(self.one("SELECT auth_role_id FROM marketing.tariffs WHERE id = %s",
                                  (tariff_id,)), role)
        # the status view shows the worker's last delivery of each kind
        for kind in ("create_role", "update_role"):
            last, newest = self.q(
                "SELECT s.last_delivered_at, (SELECT max(delivered_at) FROM billing.outbox o"
                "  WHERE o.kind = s.kind AND o.status = 'done')"
                " FROM billing.outbox_status s WHERE s.kind = %s", (kind,))[0]
            self.assertIsNotNone(last, kind)
            self.assertEqual(last, newest, kind)

    def test_b_payment_grants_notifies_once_and_fetches_email(self):
        code, tariff_id, role = self.new_tariff("Silver films")
        user = new_user()
        self.grpc.ctl("email", {"user_id": str(user), "email": "viewer@cinema.example"})
        pid = self.pay(user, code)
        # settling again is idempotent: no second grant, no second message
        self.assertEqual(self.one("SELECT billing.settle_payment(%s, 'paid')", (pid,)), "paid")
        self.wait_delivered("ordering_key = %s OR idempotency_key = %s",
                            ("%s:%d" % (user, tariff_id), "customer:%s:email" % user))
        state = self.grpc.state()
        self.assertIn([str(user), role], state["grants"])
        subscribed = [m for m in self.messages(user) if m["template_num"] == 1]
        self.assertEqual(len(subscribed), 1)
        self.assertEqual(subscribed[0]["role_description"], "Silver films")
        end = datetime.datetime.fromisoformat(subscribed[0]["end_payment"])
        self.assertIsNotNone(end.utcoffset())
        self.assertEqual(self.one("SELECT email FROM billing.customers WHERE user_id = %s", (user,)),
                         "viewer@cinema.example")
        # the grant went out before the message about it
        self.assertEqual(self.sequence(user), ["grant", "notify:1"])

    def test_c_expiry_sends_ended_then_blocks_once(self):
        code, tariff_id, role = self.new_tariff("Bronze films")
        user = new_user()
        self.pay(user, code)
        self.wait_delivered("ordering_key = %s", ("%s:%d" % (user, tariff_id),))
        ends_at, grace_ends_at = self.q(
            "SELECT ends_at, grace_ends_at FROM billing.subscriptions WHERE user_id = %s", (user,))[0]

        type(self).clock = ends_at + datetime.timedelta(minutes=1)
        for _ in range(3):      # a reminder may come first; repeats change nothing
            self.q("SELECT billing.run_expiry()")
        wait_for(lambda: 3 in self.templates(user), what="the ended message")
        self.wait_delivered("ordering_key = %s", ("%s:%d" % (user, tariff_id),))
        self.assertEqual(self.templates(user).count(3), 1)
        self.assertIn([str(user), role], self.grpc.state()["grants"])   # grace keeps access

        type(self).clock = grace_ends_at + datetime.timedelta(minutes=1)
        for _ in range(2):
            self.q("SELECT billing.run_expiry()")
        wait_for(lambda: 2 in self.templates(user), what="the blocked message")
        self.wait_delivered("ordering_key = %s", ("%s:%d" % (user, tariff_id),))
        self.assertEqual(self.templates(user).count(2), 1)
        self.assertEqual(self.templates(user).count(3), 1)
        self.assertNotIn([str(user), role], self.grpc.state()["grants"])
        self.assertEqual(self.sequence(user), ["grant", "notify:1", "notify:3", "revoke", "notify:2"])

    def test_d_refund_revokes_and_notifies(self):
        code, tariff_id, role = self.new_tariff("Refundable films")
        user = new_user()
        pid = self.pay(user, code)
        self.assertEqual(self.one("SELECT billing.settle_payment(%s, 'refunded')", (pid,)), "refunded")
        wait_for(lambda: 4 in self.templates(user), what="the refunded message")
        self.wait_delivered("ordering_key = %s", ("%s:%d" % (user, tariff_id),))
        self.assertNotIn([str(user), role], self.grpc.state()["grants"])
        self.assertEqual(self.templates(user), [1, 4])
        self.assertEqual(self.sequence(user), ["grant", "notify:1", "revoke", "notify:4"])

    def test_e_tls_target(self):
        cert, key = os.path.join(WORK, "grpc-tls.crt"), os.path.join(WORK, "grpc-tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o644)
        tls = Standin("grpc_standin_tls", tls=(cert, key))
        try:
            self.cluster.set_conf(billing__notify_target=tls.notify, billing__grpc_ca_file=cert)
            user = new_user()
            self.q("SELECT billing.outbox_wake()")
            for n in range(3):
                self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES "
                       "('notify', %s, %s)",
                       (json.dumps({"template": 5, "user_id": str(user), "role_description": "TLS",
                                    "end_payment": "2030-01-01T00:00:00+00:00"}),
                        "tls:%s:%d" % (user, n)))
            wait_for(lambda: len([m for m in tls.state()["messages"] if m["user_id"] == str(user)]) == 3,
                     what="messages over TLS")
            # a CA that does not match: the connection is refused, the message waits
            self.cluster.set_conf(billing__grpc_ca_file="/etc/ssl/certs/ca-certificates.crt")
            self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s)",
                   (json.dumps({"template": 5, "user_id": str(user)}), "tls:%s:bad-ca" % user))
            wait_for(lambda: (self.one("SELECT last_error FROM billing.outbox WHERE idempotency_key = %s",
                                       ("tls:%s:bad-ca" % user,)) or "").startswith("UNAVAILABLE"),
                     what="a TLS verification failure")
            self.cluster.set_conf(billing__grpc_ca_file=cert)
            self.wait_delivered("idempotency_key = %s", ("tls:%s:bad-ca" % user,))
        finally:
            self.cluster.set_conf(billing__notify_target=self.grpc.notify)
            stop(tls.proc)

    def test_e_server_ending_connections_often(self):
        """GOAWAY every 50 ms: followers find the shared h2c connection gone
        and run again as leads, or the message is retried; all arrive."""
        churn = Standin("grpc_standin_churn", extra=["--max-connection-age-ms", "50"])
        try:
            self.cluster.set_conf(billing__notify_target=churn.notify, billing__outbox_concurrency=4)
            run = uuid.uuid4().hex[:8]
            self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) "
                   "SELECT 'notify', jsonb_build_object('template', 5, 'user_id', gen_random_uuid()), "
                   "       %s || g FROM generate_series(1, 300) g; SELECT billing.outbox_wake()",
                   ("churn:%s:" % run,))
            self.wait_delivered("idempotency_key LIKE %s", ("churn:%s:%%" % run,))
            calls = [c for c in churn.state()["calls"] if c["key"].startswith("churn:%s:" % run)]
            self.assertEqual(len(set(c["key"] for c in calls if c["outcome"] == "ok")), 300)
            self.assertEqual(self.one("SELECT count(*) FROM billing.outbox WHERE idempotency_key LIKE %s "
                                      "AND status = 'done'", ("churn:%s:%%" % run,)), 300)
        finally:
            self.cluster.set_conf(billing__notify_target=self.grpc.notify, billing__outbox_concurrency=64)
            stop(churn.proc)

    # ---- faults --------------------------------------------------------------
    def test_f_auth_down_messages_wait_then_arrive_in_order(self):
        code, tariff_id, role = self.new_tariff("Outage films")
        self.grpc.ctl("down", {"service": "auth"})
        users = [new_user() for _ in range(4)]
        pids = [self.pay(u, code) for u in users]
        self.one("SELECT billing.settle_payment(%s, 'refunded')", (pids[0],))
        keys = ["%s:%d" % (u, tariff_id) for u in users]
        # they are retried while the service is down, and the notifications
        # (their service is up) wait behind the grants of their user and tariff
        wait_for(lambda: self.one(
            "SELECT min(attempts) >= 2 FROM billing.outbox WHERE kind = 'grant_role' AND ordering_key = ANY(%s)",
            (keys,)), what="retries while auth is down")
        self.assertEqual(self.one(
            "SELECT count(*) FROM billing.outbox WHERE ordering_key = ANY(%s) AND status = 'done'", (keys,)), 0)
        # still being retried: waiting for its next attempt, or in it (never dead)
        self.assertIn(self.one("SELECT status FROM billing.outbox WHERE ordering_key = %s "
                               "AND kind = 'grant_role'", (keys[0],)), ("pending", "in_flight"))
        self.grpc.ctl("up", {"service": "auth"})
        self.wait_delivered("ordering_key = ANY(%s)", (keys,))
        for user in users:
            expected = ["grant", "notify:1"]
            if user == users[0]:
                expected += ["revoke", "notify:4"]
            self.assertEqual(self.sequence(user), expected, "order for %s" % user)

    def test_g_slow_server_past_the_deadline_is_retried(self):
        user = new_user()
        # held until the worker's 1 s deadline gives up on it
        self.grpc.ctl("fault", {"service": "notify", "delay_ms": 600000, "count": 1})
        key = "slow:%s" % user
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
               "SELECT billing.outbox_wake()",
               (json.dumps({"template": 5, "user_id": str(user)}), key))
        self.wait_delivered("idempotency_key = %s", (key,))
        self.assertGreaterEqual(self.one("SELECT attempts FROM billing.outbox WHERE idempotency_key = %s",
                                         (key,)), 2)
        self.assertEqual(len([m for m in self.messages(user)]), 1)
        self.assertTrue(all(c["key"] == key for c in self.grpc.calls(user_id=str(user))))

    def test_g_unsuccessful_answers_and_transient_codes_are_retried(self):
        user = new_user()
        self.grpc.ctl("fault", {"service": "notify", "successful": False, "count": 1})
        self.grpc.ctl("fault", {"service": "notify", "code": "RESOURCE_EXHAUSTED", "count": 1})
        self.grpc.ctl("fault", {"service": "notify", "code": "INTERNAL", "count": 1})
        key = "unsuccessful:%s" % user
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
               "SELECT billing.outbox_wake()",
               (json.dumps({"template": 5, "user_id": str(user)}), key))
        self.wait_delivered("idempotency_key = %s", (key,))
        self.assertEqual(self.one("SELECT attempts FROM billing.outbox WHERE idempotency_key = %s", (key,)), 4)
        self.assertEqual([c["outcome"] for c in self.grpc.calls(key=key)],
                         ["unsuccessful", "RESOURCE_EXHAUSTED", "INTERNAL", "ok"])
        self.assertEqual(len(self.messages(user)), 1)

    def test_g_a_server_that_is_not_grpc_is_a_transient_failure(self):
        # the stand-in's control port speaks HTTP/1.1 only
        self.cluster.set_conf(billing__notify_target="http://127.0.0.1:%d" % self.grpc.control_port)
        user = new_user()
        key = "not-grpc:%s" % user
        try:
            time.sleep(0.3)
            self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
                   "SELECT billing.outbox_wake()", (json.dumps({"template": 5, "user_id": str(user)}), key))
            error = wait_for(lambda: self.one("SELECT last_error FROM billing.outbox WHERE idempotency_key = %s "
                                              "AND attempts >= 2", (key,)), what="failed attempts")
            self.assertTrue(error.split(":")[0] in ("UNAVAILABLE", "UNKNOWN", "INTERNAL"), error)
            self.assertEqual(self.one("SELECT status FROM billing.outbox WHERE idempotency_key = %s", (key,)),
                             "pending")
        finally:
            self.cluster.set_conf(billing__notify_target=self.grpc.notify)
        self.wait_delivered("idempotency_key = %s", (key,))

    def test_h_permanent_error_is_dead_visible_and_retried_after_the_fix(self):
        user = new_user()
        self.grpc.ctl("fault", {"service": "notify", "code": "PERMISSION_DENIED", "count": 1})
        key, later = "denied:%s" % user, "after-denied:%s" % user
        order = "%s:1" % user
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) "
               "VALUES ('notify', %s, %s, %s); SELECT billing.outbox_wake()",
               (json.dumps({"template": 1, "user_id": str(user)}), key, order))
        wait_for(lambda: self.one("SELECT status FROM billing.outbox WHERE idempotency_key = %s",
                                  (key,)) == "dead", what="a dead message")
        self.assertEqual(self.one("SELECT attempts FROM billing.outbox WHERE idempotency_key = %s", (key,)), 1)
        self.assertIn("PERMISSION_DENIED", self.one(
            "SELECT last_error FROM billing.outbox_dead WHERE idempotency_key = %s", (key,)))
        self.assertGreaterEqual(self.one("SELECT dead FROM billing.outbox_status WHERE kind = 'notify'"), 1)
        # a later message of the same user and tariff waits behind the dead one
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) "
               "VALUES ('notify', %s, %s, %s); SELECT billing.outbox_wake()",
               (json.dumps({"template": 4, "user_id": str(user)}), later, order))
        time.sleep(0.5)     # several poll intervals: it would have gone by now
        self.assertEqual(self.q("SELECT status, attempts FROM billing.outbox WHERE idempotency_key = %s",
                                (later,)), [("pending", 0)])
        dead_id = self.one("SELECT id FROM billing.outbox WHERE idempotency_key = %s", (key,))
        self.assertEqual(self.one("SELECT billing.outbox_retry_dead(ARRAY[%s]::bigint[])", (dead_id,)), 1)
        self.wait_delivered("ordering_key = %s", (order,))
        self.assertEqual(self.templates(user), [1, 4])         # in order, once each
        self.assertEqual(self.one("SELECT count(*) FROM billing.admin_audit WHERE action = 'outbox_retry_dead'"
                                  " AND after->'ids' @> %s::jsonb", (json.dumps([dead_id]),)), 1)

    def test_h_auto_renewal_templates_carry_the_charge(self):
        """Templates 6-8 reach the notification service with the charge's
        amount, currency, time and the page that completes it."""
        user = new_user()
        payload = {"template": 8, "user_id": str(user), "role_description": "Prime films",
                   "end_payment": "2026-03-31T10:00:00+00:00", "amount": 25650, "currency": "RUB",
                   "charge_at": "2026-03-30T10:00:00+00:00",
                   "action_url": "https://pay.example/authenticate/pi_1"}
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
               "SELECT billing.outbox_wake()", (json.dumps(payload), "renewal:%s" % user))
        wait_for(lambda: self.messages(user), what="the renewal message")
        m = self.messages(user)[0]
        self.assertEqual((m["template_num"], m["amount"], m["currency"], m["charge_at"], m["action_url"]),
                         (8, 25650, "RUB", "2026-03-30T10:00:00+00:00",
                          "https://pay.example/authenticate/pi_1"))
        # An amount that is not whole minor units is parked, not sent as 0.
        key = "renewal:%s:bad" % user
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
               "SELECT billing.outbox_wake()", (json.dumps(dict(payload, amount="12.5")), key))
        wait_for(lambda: self.one("SELECT status FROM billing.outbox WHERE idempotency_key = %s",
                                  (key,)) == "dead", what="the bad message parked")

    def test_i_bad_rows_are_parked_and_the_rest_goes_on(self):
        user = new_user()
        bad = [("notify", {"template": "x", "user_id": str(user)}),
               ("notify", {"template": 1, "user_id": "not-a-uuid"}),
               ("grant_role", {"user_id": str(user), "tariff_id": "abc"}),
               ("grant_role", {"user_id": str(user), "tariff_id": 987654321}),
               ("create_role", [1, 2]),
               ("fetch_email", {})]
        # and a key that would break the metadata header
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s)",
               (json.dumps({"template": 5, "user_id": str(user)}), "bad:%s:crlf\r\nx-evil: 1" % user))
        for n, (kind, payload) in enumerate(bad):
            self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES (%s, %s, %s)",
                   (kind, json.dumps(payload), "bad:%s:%d" % (user, n)))
        good = "good:%s" % user
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
               "SELECT billing.outbox_wake()",
               (json.dumps({"template": 5, "user_id": str(user)}), good))
        self.wait_delivered("idempotency_key = %s", (good,))
        wait_for(lambda: self.one("SELECT count(*) FROM billing.outbox WHERE idempotency_key LIKE %s "
                                  "AND status = 'dead'", ("bad:%s:%%" % user,)) == len(bad) + 1,
                 what="every bad row parked")
        errors = [r[0] for r in self.q("SELECT last_error FROM billing.outbox WHERE idempotency_key LIKE %s "
                                       "ORDER BY id", ("bad:%s:%%" % user,))]
        self.assertTrue(errors[0].startswith("malformed idempotency key"), errors)
        self.assertTrue(all(e.startswith("malformed payload") for e in errors[1:4] + errors[5:]), errors)
        self.assertEqual(errors[4], "tariff 987654321 does not exist")

    def test_j_no_target_leaves_rows_alone(self):
        self.cluster.set_conf(billing__auth_target="", billing__notify_target="")
        try:
            user = new_user()
            key = "untargeted:%s" % user
            # a row inserted after the reload is visibly processed or not
            time.sleep(0.3)
            self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
                   "SELECT billing.outbox_wake()", (json.dumps({"template": 5, "user_id": str(user)}), key))
            time.sleep(1.0)      # several poll intervals of the worker
            self.assertEqual(self.q("SELECT status, attempts FROM billing.outbox WHERE idempotency_key = %s",
                                    (key,)), [("pending", 0)])
        finally:
            self.cluster.set_conf(billing__auth_target=self.grpc.auth,
                                  billing__notify_target=self.grpc.notify)
        self.wait_delivered("idempotency_key = %s", (key,))

    def test_k_drop_database_elsewhere_does_not_wait_for_a_call(self):
        self.q("DROP DATABASE IF EXISTS scratch")
        self.q("CREATE DATABASE scratch")
        conn = self.cluster.connect()
        conn.close()
        key = str(new_user())
        self.hold_a_call(key)
        # DROP DATABASE waits until every process has closed its files; the
        # worker answers between polls, so the drop ends while the call is held
        conn = self.cluster.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET statement_timeout = '60s'")
                cur.execute("DROP DATABASE scratch")
        finally:
            conn.close()
        self.assertTrue(self.held(key))
        # and the worker carries on
        self.grpc.ctl("clear")
        self.wait_delivered("idempotency_key = %s", (key,))

    def test_l_sigterm_during_a_slow_call_exits_promptly(self):
        key = str(new_user())
        pid = self.worker_pid()
        self.hold_a_call(key)
        attempts = self.one("SELECT attempts FROM billing.outbox WHERE idempotency_key = %s", (key,))
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: exited(pid), timeout=30, interval=0.01, what="the worker to exit mid-call")
        self.grpc.ctl("clear")
        self.assertNotEqual(self.worker_pid(), pid)
        self.wait_delivered("idempotency_key = %s", (key,))
        # the interrupted call went back to the queue uncounted: the one
        # attempt added since is the next worker's, which delivered it
        self.assertEqual(self.one("SELECT attempts FROM billing.outbox WHERE idempotency_key = %s",
                                  (key,)), attempts)
        self.assertEqual([c["outcome"] for c in self.grpc.calls(key=key)].count("ok"), 1)

    def _crash_mid_batch(self, crash):
        run = uuid.uuid4().hex[:8]
        self.grpc.ctl("fault", {"service": "notify", "delay_ms": 50})
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) "
               "SELECT 'notify', jsonb_build_object('template', 5, 'user_id', gen_random_uuid()), "
               "       %s || g, %s || (g %% 50) FROM generate_series(1, 400) g; SELECT billing.outbox_wake()",
               ("crash:%s:" % run, "crash:%s:" % run))
        wait_for(lambda: self.one("SELECT count(*) FILTER (WHERE status = 'done') > 20 "
                                  "AND count(*) FILTER (WHERE status = 'in_flight') > 0 "
                                  "FROM billing.outbox WHERE idempotency_key LIKE %s", ("crash:%s:%%" % run,)),
                 what="a batch in flight")
        crash()
        self.grpc.ctl("clear")
        self.wait_delivered("idempotency_key LIKE %s", ("crash:%s:%%" % run,), timeout=60)
        wanted = set(r[0] for r in self.q("SELECT idempotency_key FROM billing.outbox "
                                          "WHERE idempotency_key LIKE %s", ("crash:%s:%%" % run,)))
        self.assertEqual(len(wanted), 400)
        calls = [c for c in self.grpc.calls(method="SendBillingMessage") if c["key"].startswith("crash:%s:" % run)]
        delivered = set(c["key"] for c in calls if c["outcome"] == "ok")
        self.assertEqual(delivered, wanted)                        # none lost
        self.assertLessEqual(set(c["key"] for c in calls), wanted)  # repeats only under the same keys
        firsts = [c["key"] for c in calls if c["outcome"] == "ok" and not c["duplicate"]]
        # and per ordering key, first deliveries in id (= key number) order
        by_order = {}
        for k in firsts:
            n = int(k.rsplit(":", 1)[1])
            by_order.setdefault(n % 50, []).append(n)
        for seq in by_order.values():
            self.assertEqual(seq, sorted(seq))

    def test_m_kill_9_of_the_worker_mid_batch(self):
        def crash():
            os.kill(self.worker_pid(), signal.SIGKILL)
            time.sleep(0.5)
            wait_for(lambda: self._ready(), timeout=60, what="the cluster back after the crash")
        self._crash_mid_batch(crash)

    def test_n_immediate_stop_of_the_cluster_mid_batch(self):
        def crash():
            self.cluster.crash()
            self.cluster.start()
        self._crash_mid_batch(crash)

    def test_y_postmaster_death_ends_the_worker(self):
        key = str(new_user())
        worker = self.worker_pid()
        self.hold_a_call(key)
        with open(os.path.join(self.cluster.dir, "data", "postmaster.pid")) as f:
            postmaster = int(f.readline())
        os.kill(postmaster, signal.SIGKILL)
        # mid-call, the worker notices, not at the call's end
        wait_for(lambda: exited(worker), timeout=30, interval=0.01,
                 what="the worker to exit after the postmaster died")
        self.grpc.ctl("clear")

        def restarted():
            # the orphaned children leave on their own; until then the old
            # shared memory is in use and the start fails
            try:
                self.cluster.start()
                return True
            except subprocess.CalledProcessError:
                time.sleep(0.3)
                return False
        wait_for(restarted, timeout=30, what="a restart after the postmaster died")
        self.worker_pid()
        self.wait_delivered("idempotency_key = %s", (key,))

    def test_y_an_invalid_database_is_waited_for_like_a_missing_one(self):
        # An interrupted DROP DATABASE leaves the database invalid
        # (datconnlimit -2): no connection is possible, so the launcher must
        # wait as for a missing one rather than start a worker that dies each
        # second.  Marked so by hand here, from the postgres database.
        import psycopg2
        admin = psycopg2.connect(self.cluster.dsn.replace("dbname=billing", "dbname=postgres"))
        admin.autocommit = True
        waits = 'billing outbox worker waits for database "billing" to exist'
        try:
            with admin.cursor() as cur:
                start = len(self.cluster.log())
                cur.execute("UPDATE pg_database SET datconnlimit = -2 WHERE datname = 'billing'")
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE backend_type = 'billing outbox worker'")
                # (Before, the launcher took it for present and restarted a
                # worker that died at once, each second, never saying this.)
                wait_for(lambda: waits in self.cluster.log()[start:],
                         what="the launcher waiting for the invalid database")
                self.assertNotIn("billing outbox worker started", self.cluster.log()[start:])
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'billing outbox worker'")
                self.assertEqual(cur.fetchone()[0], 0)
        finally:
            with admin.cursor() as cur:
                cur.execute("UPDATE pg_database SET datconnlimit = -1 WHERE datname = 'billing'")
            admin.close()
        self.worker_pid(timeout=20)

    def test_z_drop_and_recreate_the_workers_own_database(self):
        import psycopg2
        # The cluster began without the database and without the shared
        # relcache init file (the launcher runs before the first connection
        # writes it): the launcher never died of reading pg_database.
        log = self.cluster.log()
        self.assertNotIn("cannot read pg_class without having selected a database", log)
        self.assertNotRegex(log, r'"billing outbox launcher" \(PID \d+\) exited with exit code 1')
        admin = psycopg2.connect(self.cluster.dsn.replace("dbname=billing", "dbname=postgres"))
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                # pg_cron's launcher is connected too; FORCE ends both sessions
                waits = 'billing outbox worker waits for database "billing" to exist'
                before = self.cluster.log().count(waits)
                cur.execute("DROP DATABASE billing WITH (FORCE)")
                # the launcher notices within a second or so, and waits
                wait_for(lambda: self.cluster.log().count(waits) > before,
                         what="the launcher waiting for the database")
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'billing outbox worker'")
                self.assertEqual(cur.fetchone()[0], 0)
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'billing outbox launcher'")
                self.assertEqual(cur.fetchone()[0], 1)
                cur.execute("CREATE DATABASE billing")
        finally:
            admin.close()
        self.q("CREATE EXTENSION billing CASCADE")
        self.worker_pid(timeout=20)
        user = new_user()
        key = "recreated:%s" % user
        self.q("INSERT INTO billing.outbox (kind, payload, idempotency_key) VALUES ('notify', %s, %s); "
               "SELECT billing.outbox_wake()", (json.dumps({"template": 5, "user_id": str(user)}), key))
        self.wait_delivered("idempotency_key = %s", (key,))

    def _ready(self):
        try:
            return self.one("SELECT 1") == 1
        except Exception:
            return False


class OutboxWorkerPidReuse(unittest.TestCase):
    """A new outbox worker that the kernel gives its predecessor's pid must
    still put the predecessor's claims back.  The cluster runs in a pid
    namespace of its own, where nothing else forks: setting the namespace's
    ns_last_pid just after the worker is gone makes the next worker get the
    same pid, every time."""

    @classmethod
    def setUpClass(cls):
        if subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True).returncode != 0:
            raise unittest.SkipTest("this machine cannot make a pid namespace (unshare --pid, as root)")
        cls.grpc = Standin("grpc_standin_pidns")
        cls.cluster = Cluster("outbox-pidns", conf=[
            "billing.auth_target = '%s'" % cls.grpc.auth,
            "billing.notify_target = '%s'" % cls.grpc.notify,
            "billing.outbox_poll_interval = 200",
            "billing.expiry_schedule = ''",
            "billing.invoice_expiry_schedule = ''",
            "billing.stripe_poll_schedule = ''",
            "billing.outbox_purge_schedule = ''",
            "autovacuum = off",        # its workers would take pids in the namespace
        ])
        cls.cluster.stop()
        # The postmaster is the namespace's pid 1 (setpriv execs, no fork in
        # between); unshare ignores SIGINT, so stop() below reaches only it.
        cls.server = spawn(["unshare", "--pid", "--fork", "setpriv", "--reuid=postgres",
                            "--regid=postgres", "--init-groups", "--",
                            os.path.join(PGBIN, "postgres"), "-D", os.path.join(cls.cluster.dir, "data")],
                           "outbox-pidns-server.log")
        cls.addClassCleanup(cls._stop_server)
        wait_for(cls._ready, what="the server in its pid namespace")
        cls.postmaster = cls._child_of(cls.server.pid)

    @staticmethod
    def _child_of(parent):
        for entry in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                        return int(entry)
            except (ValueError, OSError, IndexError):
                pass
        raise AssertionError("no child of pid %d" % parent)

    @classmethod
    def _stop_server(cls):
        stop(cls.server, signal.SIGINT, timeout=30)     # fast shutdown
        # postmaster.pid holds the postmaster's pid in the namespace (1): the
        # cluster's destroy (pg_ctl, out here) must never signal that pid
        try:
            os.unlink(os.path.join(cls.cluster.dir, "data", "postmaster.pid"))
        except FileNotFoundError:
            pass

    @classmethod
    def _ready(cls):
        try:
            return cls.cluster.scalar("SELECT 1") == 1
        except Exception:
            return False

    def test_claims_of_a_predecessor_with_the_same_pid_are_requeued(self):
        conn = self.cluster.connect()       # one session throughout: a new one would fork
        self.addCleanup(conn.close)
        cur = conn.cursor()

        def worker():
            cur.execute("SELECT pid, backend_start FROM pg_stat_activity "
                        "WHERE backend_type = 'billing outbox worker'")
            return cur.fetchone()

        def delivered(key_prefix):
            cur.execute("SELECT count(*) FROM billing.outbox WHERE idempotency_key LIKE %s "
                        "AND status = 'done'", (key_prefix + "%",))
            return cur.fetchone()[0]

        # Another process of the namespace (autovacuum, pg_cron) may fork in
        # the second before the launcher starts the next worker and take the
        # pid: then the set-up is tried again with the worker now running.
        for attempt in range(8):
            pid, started = wait_for(worker, what="the outbox worker")
            # Claims this worker made just before it died, as a crash leaves them.
            key = "pidreuse:%s:" % uuid.uuid4().hex[:8]
            cur.execute("INSERT INTO billing.outbox (kind, payload, idempotency_key, status, attempts, "
                        "                            claimed_at, claimed_by, claimed_by_start) "
                        "SELECT 'notify', jsonb_build_object('template', 5, 'user_id', gen_random_uuid()), "
                        "       %s || g, 'in_flight', 1, now(), %s, %s FROM generate_series(1, 3) g",
                        (key, pid, started))
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            # Once the pid is free (reaped), make it the namespace's next one; the
            # launcher starts the next worker about a second later.
            subprocess.run(["nsenter", "--target", str(self.postmaster), "--pid", "--", "sh", "-c",
                            "while kill -0 %d 2>/dev/null; do sleep 0.01; done; "
                            "echo %d >/proc/sys/kernel/ns_last_pid" % (pid, pid - 1)],
                           check=True, timeout=30)
            new_pid, new_started = wait_for(lambda: [w for w in [worker()] if w and w[1] != started],
                                            what="the next outbox worker")[0]
            if new_pid == pid:
                break
        self.assertEqual(new_pid, pid, "set-up: the next worker never got its predecessor's pid")
        # The old claims went back to the queue and were delivered.
        wait_for(lambda: delivered(key) == 3, timeout=20,
                 what="the predecessor's claims requeued and delivered")
        self.assertEqual(len([c for c in self.grpc.calls(method="SendBillingMessage", outcome="ok")
                              if c["key"].startswith(key)]), 3)

if __name__ == "__main__":
    unittest.main()
