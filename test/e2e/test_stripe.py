"""End-to-end: the extension against the Stripe stand-in (test/standins/
stripe_server.py) on a real cluster.  Webhooks go from the stand-in to a tiny
receiver in this process that hands the exact bytes and the Stripe-Signature
header to billing.stripe_webhook, as PostgREST does.  Time moves with
billing.test_clock and the stand-in's clock together."""

import datetime
import json
import os
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

import psycopg2

from harness import (Cluster, PGBIN, PYTHON, SRC, free_port, serve_hooks, spawn, stripe_signature, wait_for,
                     wait_port, new_user)

SECRET_KEY = "sk_test_e2e"
WEBHOOK_SECRET = "whsec_e2e"
OLD_WEBHOOK_SECRET = "whsec_old"        # still configured: rotation


class StripeE2E(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.received, cls.results = [], []
        cls.clock = None            # None: real time
        cls.hook, hook_url = serve_hooks(cls.receive_webhook)

        cls.stripe_port = free_port()
        cls.stripe = spawn([PYTHON, os.path.join(SRC, "test", "standins", "stripe_server.py"),
                            "--port", str(cls.stripe_port), "--secret-key", SECRET_KEY,
                            "--webhook-secret", WEBHOOK_SECRET, "--webhook-retries", "0",
                            "--webhook-url", hook_url],
                           "stripe_standin.log")
        wait_port(cls.stripe_port)
        cls.base = "http://127.0.0.1:%d" % cls.stripe_port
        cls.cluster = Cluster("stripe", conf=[
            "billing.stripe_api_base = '%s'" % cls.base,
            "billing.stripe_secret_key = '%s'" % SECRET_KEY,
            "billing.stripe_webhook_secrets = '%s, %s'" % (OLD_WEBHOOK_SECRET, WEBHOOK_SECRET),
            "billing.stripe_success_url = 'https://cinema.example/paid?session={CHECKOUT_SESSION_ID}'",
            "billing.stripe_timeout = 1500",
            "billing.stripe_connect_timeout = 500",
            "billing.stripe_poll_schedule = ''",
            "billing.invoice_expiry_schedule = ''",
        ])
        cls.cluster.query("SELECT billing.create_tariff('prime', 'Prime films', 29900, 'RUB')")
        cls.cluster.query("SELECT billing.create_tariff('tokyo', 'Tokyo nights', 500, 'JPY')")

    @classmethod
    def tearDownClass(cls):
        cls.hook.shutdown()

    @classmethod
    def receive_webhook(cls, body, headers):
        """Stripe's webhook endpoint: raw body + header to the SQL function."""
        sig = headers.get("Stripe-Signature")
        cls.received.append((body, sig))
        try:
            conn = cls.connect()
            with conn.cursor() as cur:
                cur.execute("SELECT billing.stripe_webhook(%s::json, %s)", (body.decode(), sig))
                cls.results.append(cur.fetchone()[0])
            conn.close()
        except psycopg2.Error as e:
            cls.results.append({"error": e.pgcode, "message": e.pgerror})
            return 400
        return 200

    # ---- helpers -----------------------------------------------------------
    @classmethod
    def connect(cls):
        return cls.cluster.connect(clock=cls.clock)

    def q(self, sql, args=None):
        return self.cluster.query(sql, args, self.clock)

    def one(self, sql, args=None):
        return self.cluster.scalar(sql, args, self.clock)

    def sqlstate(self, sql, args=None):
        try:
            self.q(sql, args)
        except psycopg2.Error as e:
            return e.pgcode, e.pgerror
        return None, None

    def ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/_control/" + path, data=data, method=method)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def set_clock(self, when):
        """Move billing.now() and the stand-in's clock to `when` (aware datetime)."""
        type(self).clock = when
        self.ctl("POST", "clock", {"now": when.timestamp()})

    def setUp(self):
        self.ctl("POST", "webhooks", {"mode": "deliver"})
        self.ctl("POST", "faults", {"clear": True})
        self.ctl("POST", "refund_mode", {"status": "succeeded"})
        type(self).clock = None
        self.ctl("POST", "clock", {"now": time.time()})

    def status(self, pid):
        return self.one("SELECT status FROM billing.payments WHERE id = %s", (pid,))

    def invoice(self, user, tariff="prime", months=1, promo=None):
        return self.one("SELECT billing.create_invoice(%s, %s, %s, %s)", (user, tariff, months, promo))

    def checkout(self, user, pid):
        return self.one("SELECT billing.checkout(%s, %s)", (user, pid))

    def session_of(self, pid):
        return self.one("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))

    def sign(self, body, secret=WEBHOOK_SECRET, t=None):
        return stripe_signature(body, secret, t)

    def webhook(self, body, sig):
        return self.one("SELECT billing.stripe_webhook(%s::json, %s)", (body.decode(), sig))

    def events(self, pid, to_status=None):
        return self.q("SELECT to_status, source FROM billing.payment_events WHERE payment_id = %s "
                      "AND (%s::text IS NULL OR to_status = %s) ORDER BY id", (pid, to_status, to_status))

    # ---- tests ---------------------------------------------------------------
    def test_checkout_webhook_paid_subscription(self):
        user = new_user()
        pid = self.invoice(user, months=2)
        url = self.checkout(user, pid)
        self.assertTrue(url.startswith(self.base + "/pay/cs_test_"), url)
        self.assertEqual(self.status(pid), "pending")
        # Again: the same URL, no second session at Stripe.
        self.assertEqual(self.checkout(user, pid), url)
        creates = [r for r in self.ctl("GET", "requests")
                   if r["path"] == "/v1/checkout/sessions" and r["params"].get("client_reference_id") == str(pid)]
        self.assertEqual(len(creates), 1)
        p = creates[0]["params"]
        self.assertEqual(creates[0]["idempotency_key"], "billing-checkout-%s" % pid)
        self.assertEqual(p["mode"], "payment")
        self.assertEqual(p["metadata"], {"payment_id": str(pid), "user_id": str(user)})
        item = p["line_items"][0]
        self.assertEqual(item["price_data"]["currency"], "rub")
        self.assertEqual(item["price_data"]["unit_amount"], str(self.one(
            "SELECT total FROM billing.payments WHERE id = %s", (pid,))))
        self.assertIn("Prime films", item["price_data"]["product_data"]["name"])

        # Someone else cannot open it.
        code, _ = self.sqlstate("SELECT billing.checkout(%s, %s)", (new_user(), pid))
        self.assertEqual(code, "P0002")

        self.ctl("POST", "sessions/%s/complete" % self.session_of(pid), {"payment_status": "paid"})
        wait_for(lambda: self.status(pid) == "paid", 10, what="paid by webhook")
        self.assertEqual(self.events(pid, "paid"), [("paid", "webhook")])
        self.assertTrue(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        kinds = {k for (k,) in self.q("SELECT kind FROM billing.outbox WHERE payload->>'user_id' = %s",
                                      (str(user),))}
        self.assertTrue({"grant_role", "notify"} <= kinds, kinds)
        self.assertEqual(self.one("SELECT provider_payment_intent FROM billing.payments WHERE id = %s",
                                  (pid,))[:3], "pi_")
        # The other events of the payment were acknowledged and ignored.
        wait_for(lambda: self.one("SELECT count(*) FROM billing.stripe_events WHERE payment_id = %s "
                                  "AND result = 'applied'", (pid,)) == 1, 5, what="event recorded")
        self.assertGreaterEqual(self.one("SELECT count(*) FROM billing.stripe_events WHERE result = 'ignored'"), 2)
        # Paid: checkout refuses.
        code, _ = self.sqlstate("SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "55000")

    def test_zero_decimal_currency(self):
        user = new_user()
        pid = self.invoice(user, tariff="tokyo", months=3)
        self.checkout(user, pid)
        create = [r for r in self.ctl("GET", "requests")
                  if r["path"] == "/v1/checkout/sessions" and r["params"].get("client_reference_id") == str(pid)][0]
        self.assertEqual(create["params"]["line_items"][0]["price_data"]["currency"], "jpy")
        self.assertEqual(create["params"]["line_items"][0]["price_data"]["unit_amount"], "1500")

    def test_webhooks_lost_poll_and_confirm_settle(self):
        self.ctl("POST", "webhooks", {"mode": "drop"})
        user = new_user()
        a, b = self.invoice(user), self.invoice(user, tariff="tokyo")
        self.checkout(user, a)
        self.checkout(user, b)
        for pid in (a, b):
            self.ctl("POST", "sessions/%s/complete" % self.session_of(pid), {"payment_status": "paid"})
        # Back from checkout: confirm settles b at once.
        self.assertEqual(self.one("SELECT billing.confirm_payment(%s, %s)", (user, b)), "paid")
        self.assertEqual(self.events(b, "paid"), [("paid", "api")])
        # The poller leaves a alone until it is due ...
        result = self.one("CALL billing.stripe_poll(NULL)")
        self.assertEqual(self.status(a), "pending")
        # ... and settles it when it is.
        self.set_clock(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=61))
        result = self.one("CALL billing.stripe_poll(NULL)")
        self.assertGreaterEqual(result["settled"], 1, result)
        self.assertEqual(self.status(a), "paid")
        self.assertEqual(self.events(a, "paid"), [("paid", "poll")])
        self.assertTrue(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))

    def test_delayed_payment_methods(self):
        user = new_user()
        ok, bad = self.invoice(user), self.invoice(user, tariff="tokyo")
        for pid in (ok, bad):
            self.checkout(user, pid)
            # Completed, but the money is still on its way: stays pending.
            self.ctl("POST", "sessions/%s/complete" % self.session_of(pid), {"payment_status": "unpaid"})
        wait_for(lambda: self.one("SELECT count(*) FROM billing.stripe_events WHERE payment_id IN (%s, %s) "
                                  "AND result = 'waiting'", (ok, bad)) == 2, 10, what="completed events")
        self.assertEqual((self.status(ok), self.status(bad)), ("pending", "pending"))
        self.assertEqual(self.one("SELECT billing.confirm_payment(%s, %s)", (user, ok)), "pending")
        self.ctl("POST", "sessions/%s/async" % self.session_of(ok), {"result": "succeeded"})
        self.ctl("POST", "sessions/%s/async" % self.session_of(bad), {"result": "failed"})
        wait_for(lambda: (self.status(ok), self.status(bad)) == ("paid", "failed"), 10, what="async results")
        self.assertTrue(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        self.assertFalse(self.one("SELECT billing.has_access(%s, 'tokyo')", (user,)))

    def test_duplicate_and_out_of_order_webhooks(self):
        self.ctl("POST", "webhooks", {"mode": "duplicate"})
        dups = lambda: len([r for r in self.results if r.get("result") == "duplicate"])
        n0 = dups()
        user = new_user()
        pid = self.invoice(user)
        self.checkout(user, pid)
        self.ctl("POST", "sessions/%s/complete" % self.session_of(pid), {})
        wait_for(lambda: dups() >= n0 + 3, 10, what="duplicates delivered")
        self.assertEqual(self.status(pid), "paid")
        self.assertEqual(len(self.events(pid, "paid")), 1)

        # Refund with the refund's events arriving in reverse order.
        self.ctl("POST", "refund_mode", {"status": "pending"})
        self.ctl("POST", "webhooks", {"mode": "hold"})
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (user, pid)), "refund_pending")
        # The buyer keeps access until Stripe confirms the refund.
        self.assertTrue(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        rid = self.one("SELECT provider_refund_id FROM billing.payments WHERE id = %s", (pid,))
        self.assertTrue(rid.startswith("re_"))
        self.ctl("POST", "refunds/%s" % rid, {"status": "succeeded"})
        n = len(self.results)
        released = self.ctl("POST", "webhooks/release", {"reverse": True})["released"]
        self.ctl("POST", "webhooks", {"mode": "deliver"})
        wait_for(lambda: len(self.results) >= n + len(released), 10, what="held events delivered")
        self.assertEqual(self.status(pid), "refunded")
        self.assertEqual(len(self.events(pid, "refunded")), 1)
        self.assertFalse(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        # A late replay of the payment's completion changes nothing.
        evt = [e for e in self.ctl("GET", "events") if e["type"] == "checkout.session.completed"
               and e["data"]["object"]["id"] == self.session_of(pid)][0]
        n = len(self.results)
        self.ctl("POST", "webhooks/resend/%s" % evt["id"])
        wait_for(lambda: len(self.results) > n, 10, what="resent event")
        self.assertEqual(self.results[-1]["result"], "duplicate")
        self.assertEqual(self.status(pid), "refunded")

    def test_bad_signatures_change_nothing(self):
        user = new_user()
        pid = self.invoice(user)
        self.ctl("POST", "webhooks", {"mode": "drop"})
        self.checkout(user, pid)
        self.ctl("POST", "sessions/%s/complete" % self.session_of(pid), {})
        evt = [e for e in self.ctl("GET", "events") if e["type"] == "checkout.session.completed"
               and e["data"]["object"]["id"] == self.session_of(pid)][0]
        for k in ("_deliveries", "_dropped"):
            evt.pop(k)
        body = json.dumps(evt, indent=2).encode()
        before = self.one("SELECT count(*) FROM billing.stripe_events")
        tampered = body.replace(b'"amount_total": 29900', b'"amount_total": 100')
        self.assertNotEqual(tampered, body)
        cases = [
            (body, self.sign(body, secret="whsec_forged"), "42501"),
            (tampered, self.sign(body), "42501"),
            (body, self.sign(body, t=time.time() - 360), "42501"),
            (body, self.sign(body, t=time.time() + 360), "42501"),
            (body, "t=%d" % time.time(), "22023"),
            (body, "v1=" + "0" * 64, "22023"),
            (body, "garbage", "22023"),
            (body, "", "22023"),
        ]
        for b, sig, want in cases:
            code, msg = self.sqlstate("SELECT billing.stripe_webhook(%s::json, %s)", (b.decode(), sig))
            self.assertEqual(code, want, (sig, msg))
            self.assertNotIn(WEBHOOK_SECRET, msg)
        code, _ = self.sqlstate("SELECT billing.stripe_webhook(%s::json, NULL)", (body.decode(),))
        self.assertEqual(code, "42501")
        self.assertEqual(self.one("SELECT count(*) FROM billing.stripe_events"), before)
        self.assertEqual(self.status(pid), "pending")
        # The genuine one, signed with the old secret of a rotation, is accepted once.
        r = self.webhook(body, self.sign(body, secret=OLD_WEBHOOK_SECRET))
        self.assertEqual((r["result"], r["status"]), ("applied", "paid"))
        self.assertEqual(self.webhook(body, self.sign(body))["result"], "duplicate")

    def test_event_claiming_another_users_payment(self):
        self.ctl("POST", "webhooks", {"mode": "drop"})
        alice, bob = new_user(), new_user()
        pa, pb = self.invoice(alice), self.invoice(bob)
        self.checkout(alice, pa)
        self.checkout(bob, pb)
        sa = self.session_of(pa)
        self.ctl("POST", "sessions/%s/complete" % sa, {})
        session = self.ctl("GET", "sessions/%s" % sa)
        # Alice's paid session, whose body claims Bob's payment and user.
        session["client_reference_id"] = str(pb)
        session["metadata"] = {"payment_id": str(pb), "user_id": str(bob)}
        evt = {"id": "evt_claim_" + uuid.uuid4().hex, "object": "event", "type": "checkout.session.completed",
               "created": int(time.time()), "data": {"object": session}, "livemode": False}
        body = json.dumps(evt).encode()
        r = self.webhook(body, self.sign(body))
        self.assertEqual(r["payment_id"], str(pa))
        self.assertEqual((self.status(pa), self.status(pb)), ("paid", "pending"))
        # An unknown session that names Bob's payment is recorded, not applied.
        session["id"] = "cs_test_unknown" + uuid.uuid4().hex
        evt = dict(evt, id="evt_claim_" + uuid.uuid4().hex, data={"object": session})
        body = json.dumps(evt).encode()
        r = self.webhook(body, self.sign(body))
        self.assertEqual(r["result"], "unknown_payment")
        self.assertEqual(self.status(pb), "pending")
        self.assertEqual(self.one("SELECT result FROM billing.stripe_events WHERE id = %s", (evt["id"],)),
                         "unknown_payment")

    def test_stripe_down_or_slow_at_checkout(self):
        user = new_user()
        pid = self.invoice(user)
        self.ctl("POST", "faults", {"count": 1, "status": 503, "path": "/v1/checkout"})
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "08006", msg)
        self.assertNotIn(SECRET_KEY, msg)
        self.assertEqual(self.status(pid), "invoiced")
        # Slow: a clear error at the timeout (1.5 s), payment untouched; an
        # answer, which comes after 5 s, would have been a success ...
        self.ctl("POST", "faults", {"count": 1, "delay": 5, "path": "/v1/checkout"})
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "08006", msg)
        self.assertIn("timed out", msg)
        self.assertEqual(self.status(pid), "invoiced")
        # ... while Stripe did make the session after all.
        mine = lambda: [r for r in self.ctl("GET", "requests") if r["path"] == "/v1/checkout/sessions"
                        and r["params"].get("client_reference_id") == str(pid)]
        wait_for(lambda: any(r.get("status") == 200 for r in mine()), 30, what="the slow call's session")
        # The connection dropped without an answer.
        self.ctl("POST", "faults", {"count": 1, "close": True, "path": "/v1/checkout"})
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "08006", msg)
        self.assertEqual(self.status(pid), "invoiced")
        # Gone: connection refused.
        code, msg = self.sqlstate("SET billing.stripe_api_base = 'http://127.0.0.1:1'; "
                                  "SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "08001", msg)
        # Bad key: Stripe's 401, without the key in the message.
        code, msg = self.sqlstate("SET billing.stripe_secret_key = 'sk_test_wrong_key_1234'; "
                                  "SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "08004", msg)
        self.assertNotIn("sk_test_wrong", msg)
        # Still payable: the retry gets the very session the slow call made.
        url = self.checkout(user, pid)
        self.assertEqual(self.status(pid), "pending")
        self.assertTrue(url.startswith(self.base))
        calls = mine()
        self.assertTrue(calls[-1].get("replayed"), calls[-1])
        self.assertEqual(len({r["idempotency_key"] for r in calls}), 1)

    def test_secrets_stay_out_of_the_server_log(self):
        # PostgreSQL logs a reloaded setting's new value, the text of a
        # statement under its error or by log_statement, its bound values, and
        # an error may quote a value: for a secret, the module's log hook
        # keeps the name and drops the value.
        log_path = os.path.join(self.cluster.dir, "server.log")
        before = os.path.getsize(log_path)
        marker = "leak" + uuid.uuid4().hex
        secrets = {"billing.stripe_secret_key": "sk_test_" + marker,
                   "billing.stripe_webhook_secrets": "whsec_" + marker,
                   "billing.yookassa_secret_key": "test_" + marker,
                   "billing.admin_jwt_secret": marker + "-" * 32}
        try:
            self.cluster.set_conf(**{k.replace(".", "__"): v for k, v in secrets.items()})
            # A mistyped secret fails; its statement would be echoed under the error.
            code, _ = self.sqlstate("ALTER SYSTEM SET \"BILLING.STRIPE_SECRET_KEY\" = 'sk bad %s'" % marker)
            self.assertEqual(code, "22023")
            # log_statement writes every statement; set_config names the secret.
            conn = self.cluster.connect()
            with conn.cursor() as cur:
                cur.execute("SET log_statement = 'all'")
                cur.execute("SELECT set_config('billing.stripe_secret_key', %s, false)", ("sk_test_" + marker,))
                cur.execute("""SET "Billing" . "STRIPE_SECRET_KEY" TO %s""", ("sk_test_" + marker,))
                cur.execute("SELECT set_config('billing.' || 'stripe_secret_key', %s, false)", ("sk_test_" + marker,))
                # An EXECUTE's text holds the value; its prepared text names the secret.
                cur.execute("PREPARE set_key(text) AS SELECT set_config('billing.stripe_secret_key', $1, false)")
                cur.execute("EXECUTE set_key(%s)", ("sk_test_" + marker,))
                cur.execute("SELECT %s AS not_a_secret", (marker + "-public",))
                # Statements that name no secret are echoed as they are, even
                # when they call billing functions.
                cur.execute("PREPARE public_query AS SELECT count(*) FROM billing.currencies()")
                cur.execute("EXECUTE public_query")
            conn.close()
            # Without log_statement: a function that sets the secret and then
            # fails (its STATEMENT line holds the value), and an error that
            # quotes the value.  What is set is redacted wherever it shows.
            conn = self.cluster.connect()
            with conn.cursor() as cur:
                cur.execute("CREATE FUNCTION pg_temp.set_key(k text) RETURNS void LANGUAGE plpgsql AS "
                            "$$BEGIN PERFORM set_config('billing.stripe_secret_key', k, false); "
                            "RAISE EXCEPTION 'failed after setting it'; END$$")
                for sql in ("SELECT pg_temp.set_key('sk_test_%s')" % marker,
                            "SELECT set_config('billing.stripe_secret_key', 'sk_test_%s', false), "
                            "current_setting('billing.stripe_secret_key')::int" % marker):
                    with self.assertRaises(psycopg2.Error) as caught:
                        cur.execute(sql)
                    self.assertNotIn(marker, str(caught.exception))
            conn.close()
            # A short admin secret is refused without being quoted.
            short = "jwt" + marker[4:20]
            code, msg = self.sqlstate("SET billing.admin_jwt_secret = '%s'" % short)
            self.assertEqual(code, "22023", msg)
            self.assertNotIn(short, msg)
            # The extended protocol: the value is a bound parameter, logged in
            # the detail.  "named": the name bound too, and an error after the
            # setting (a bound divisor: a constant one would fail at planning,
            # before it), the values in the error's context.  "bound": the
            # name bound and cut short by log_parameter_max_length.
            scripts = {"script": "SELECT set_config('billing.stripe_secret_key', :v, false);",
                       "named": "SELECT set_config(:n, :v, false), 1 / (:z)::int;",
                       "bound": "SELECT set_config(:n, :v, false);",
                       "public": "SELECT (:v)::text AS address;"}
            for name, text in scripts.items():
                with open(os.path.join(self.cluster.dir, name + ".sql"), "w") as f:
                    f.write(text + "\n")
            script, named, bound, public = (os.path.join(self.cluster.dir, n + ".sql") for n in scripts)
            for path, value, ok, options in (
                    (script, "sk_test_" + marker, True, ""), (script, "sk bad " + marker, False, ""),
                    (named, "sk_test_" + marker, False, ""),
                    (bound, "sk_test_" + marker, True, " -c log_parameter_max_length=24"),
                    (public, "ops-%s@billing.example.com" % marker[4:12], True, "")):
                run = subprocess.run([os.path.join(PGBIN, "pgbench"), "-n", "-t", "1", "-M", "extended",
                                      "-D", "n=billing.stripe_secret_key", "-D", "v=" + value, "-D", "z=0",
                                      "-f", path, self.cluster.url],
                                     env=dict(os.environ, PGOPTIONS="-c log_statement=all "
                                              "-c log_parameter_max_length_on_error=-1" + options),
                                     capture_output=True, text=True, timeout=60)
                self.assertEqual(run.returncode == 0, ok, run.stderr)
        finally:
            conn = self.cluster.connect()
            with conn.cursor() as cur:
                for name in secrets:
                    cur.execute("ALTER SYSTEM RESET %s" % name)
            conn.close()
            self.cluster.set_conf()

        def logged():
            with open(log_path, errors="replace") as f:
                f.seek(before)
                text = f.read()
            # Set, then reset: the two secrets postgresql.conf has change back,
            # the others are "removed from configuration file".
            return text if text.count("(a secret: its value is not logged)") >= 6 else None
        text = wait_for(logged, 10, what="the reloads in the server log")
        for name in secrets:
            self.assertIn('parameter "%s" changed (a secret: its value is not logged)' % name, text)
        # set_config twice, SET, EXECUTE (and its PREPARE), pgbench's two executes.
        self.assertGreaterEqual(text.count(
            "statement not logged: it names the secret setting billing.stripe_secret_key"), 7, text)
        self.assertIn("statement not logged: it names the secret setting billing.*", text)
        self.assertIn("invalid value for billing.stripe_secret_key", text)
        # Only the statement that names no secret is there as it was sent.
        self.assertEqual(text.count(marker), 1, text)
        self.assertNotIn(short, text)
        self.assertNotIn("sk_test_" + marker[:8], text)     # a value cut short too
        self.assertIn("failed after setting it", text)
        self.assertIn("division by zero", text)
        self.assertIn("statement: EXECUTE public_query", text)
        self.assertIn("parameters: $1 = 'ops-%s@billing.example.com'" % marker[4:12], text)
        self.assertIn(marker + "-public", text)
        # And the payments still use the configured key.
        user = new_user()
        self.assertTrue(self.checkout(user, self.invoice(user)).startswith(self.base))

    def test_session_of_a_rolled_back_checkout_is_still_matched(self):
        self.ctl("POST", "webhooks", {"mode": "deliver"})
        user = new_user()
        pid = self.invoice(user)
        conn = self.connect()
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SELECT billing.checkout(%s, %s)", (user, pid))
            url = cur.fetchone()[0]
        conn.rollback()         # the caller's transaction fails after Stripe answered
        conn.close()
        self.assertEqual(self.status(pid), "invoiced")
        # The buyer had the URL and pays: the webhook still finds the payment.
        sid = url.rsplit("/", 1)[1]
        self.ctl("POST", "sessions/%s/complete" % sid, {})
        wait_for(lambda: self.status(pid) == "paid", 10, what="paid through the orphan session")
        self.assertEqual(self.session_of(pid), sid)
        # And a retried checkout would have got the same session.
        self.assertEqual(self.one("SELECT count(*) FROM billing.payment_events WHERE payment_id = %s "
                                  "AND to_status = 'paid'", (pid,)), 1)

    def test_statement_timeout_interrupts_a_slow_call(self):
        user = new_user()
        pid = self.invoice(user)
        # Stripe would answer after a minute; the 300 ms statement_timeout
        # ends the call long before (30 s allows for any machine's load)
        self.ctl("POST", "faults", {"count": 1, "delay": 60, "path": "/v1/checkout"})
        conn = self.connect()
        t0 = time.monotonic()
        with self.assertRaises(psycopg2.Error) as cm:
            with conn.cursor() as cur:
                cur.execute("SET billing.stripe_timeout = 30000")
                cur.execute("SET statement_timeout = 300")
                cur.execute("SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(cm.exception.pgcode, "57014")     # query_canceled
        self.assertLess(time.monotonic() - t0, 30)
        conn.close()
        self.assertEqual(self.status(pid), "invoiced")

    def test_poller_holds_nothing_while_stripe_answers(self):
        self.ctl("POST", "webhooks", {"mode": "drop"})
        user = new_user()
        pid = self.invoice(user)
        self.checkout(user, pid)
        sid = self.session_of(pid)
        self.ctl("POST", "sessions/%s/complete" % sid, {})
        self.set_clock(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=61))
        self.ctl("POST", "faults", {"count": 1, "delay": 3.0, "path": "/v1/checkout/sessions/" + sid})
        done = []

        def poll():
            conn = self.connect()
            with conn.cursor() as cur:
                # Separate statements: a multi-statement string is one implicit
                # transaction, where CALL cannot commit (it would hold the lock).
                cur.execute("SET billing.stripe_timeout = 10000")
                cur.execute("CALL billing.stripe_poll(NULL)")
                done.append(cur.fetchone()[0])
            conn.close()
        poller = threading.Thread(target=poll)
        poller.start()
        wait_for(lambda: any(r["path"] == "/v1/checkout/sessions/" + sid and r.get("fault")
                             for r in self.ctl("GET", "requests")), 10, what="the poller's call")
        # While Stripe is thinking: the claim is committed and the row is not locked.
        self.assertEqual(self.one("SELECT poll_attempts FROM billing.payments WHERE id = %s FOR UPDATE NOWAIT",
                                  (pid,)), 1)
        self.assertEqual(self.one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL billing.stripe_poll%%' "
                                  "AND backend_xid IS NOT NULL"), 0)
        poller.join(15)
        self.assertGreaterEqual(done[0]["settled"], 1, done)
        self.assertEqual(self.status(pid), "paid")
        self.assertEqual(self.events(pid, "paid"), [("paid", "poll")])

    def test_stripe_down_during_poll(self):
        self.ctl("POST", "webhooks", {"mode": "drop"})
        user = new_user()
        pid = self.invoice(user)
        self.checkout(user, pid)
        self.ctl("POST", "sessions/%s/complete" % self.session_of(pid), {})
        now = datetime.datetime.now(datetime.timezone.utc)
        self.set_clock(now + datetime.timedelta(seconds=61))
        self.ctl("POST", "faults", {"count": 100, "status": 500, "path": "/v1/checkout"})
        result = self.one("CALL billing.stripe_poll(NULL)")
        self.assertGreaterEqual(result["errors"], 1, result)
        self.assertEqual(self.status(pid), "pending")
        attempts, next_poll = self.q("SELECT poll_attempts, next_poll_at FROM billing.payments WHERE id = %s",
                                     (pid,))[0]
        self.assertEqual(attempts, 1)
        self.assertGreater(next_poll, now + datetime.timedelta(seconds=61))
        self.ctl("POST", "faults", {"clear": True})
        self.set_clock(now + datetime.timedelta(seconds=61 + 121))
        self.one("CALL billing.stripe_poll(NULL)")
        self.assertEqual(self.status(pid), "paid")

    def test_refund_window_and_stripe_down_during_refund(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        users = [new_user(), new_user()]
        pids = []
        for user in users:
            pid = self.invoice(user)
            self.checkout(user, pid)
            self.ctl("POST", "sessions/%s/complete" % self.session_of(pid), {})
            wait_for(lambda: self.status(pid) == "paid", 10, what="paid")
            pids.append(pid)
        paid_at = self.one("SELECT paid_at FROM billing.payments WHERE id = %s", (pids[0],))
        self.assertLess(abs((paid_at - now).total_seconds()), 30)
        # 59 minutes after Stripe's success: Stripe fails first, the payment stays refundable.
        self.set_clock(paid_at + datetime.timedelta(minutes=59))
        self.ctl("POST", "faults", {"count": 1, "status": 502, "path": "/v1/refunds"})
        code, msg = self.sqlstate("SELECT billing.cancel_payment(%s, %s)", (users[0], pids[0]))
        self.assertEqual(code, "08006", msg)
        self.assertEqual(self.status(pids[0]), "paid")
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (users[0], pids[0])), "refunded")
        refunds = [r for r in self.ctl("GET", "requests") if r["path"] == "/v1/refunds"
                   and r["params"].get("metadata", {}).get("payment_id") == str(pids[0])]
        self.assertEqual({r["idempotency_key"] for r in refunds}, {"billing-refund-%s" % pids[0]})
        self.assertFalse(self.one("SELECT billing.has_access(%s, 'prime')", (users[0],)))
        # 61 minutes: refused, nothing asked of Stripe.
        paid_at = self.one("SELECT paid_at FROM billing.payments WHERE id = %s", (pids[1],))
        self.set_clock(paid_at + datetime.timedelta(minutes=61))
        n = len(self.ctl("GET", "requests"))
        code, msg = self.sqlstate("SELECT billing.cancel_payment(%s, %s)", (users[1], pids[1]))
        self.assertEqual(code, "55000", msg)
        self.assertEqual(self.status(pids[1]), "paid")
        self.assertEqual(len(self.ctl("GET", "requests")), n)

    def test_abandoned_sessions_expire_and_release_promo(self):
        self.ctl("POST", "webhooks", {"mode": "drop"})
        now = datetime.datetime.now(datetime.timezone.utc)
        code = "ABANDON" + uuid.uuid4().hex[:8].upper()
        self.q("SELECT billing.create_promo_code(%s, 10, %s, 1)", (code, now + datetime.timedelta(days=30)))
        user = new_user()
        pid = self.invoice(user, promo=code)
        self.checkout(user, pid)
        self.assertEqual(self.one("SELECT redemptions FROM marketing.promo_codes WHERE code = %s", (code,)), 1)
        # A day later Stripe has expired the session; the poller learns it.
        self.set_clock(now + datetime.timedelta(hours=24, minutes=1))
        self.one("CALL billing.stripe_poll(NULL)")
        self.assertEqual(self.status(pid), "expired")
        self.assertEqual(self.one("SELECT redemptions FROM marketing.promo_codes WHERE code = %s", (code,)), 0)

        # An invoice that runs out before its session (Stripe's minimum is 30
        # minutes): the poller expires the session at Stripe itself.
        self.set_clock(now)
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute("SET billing.invoice_lifetime = 600")
            cur.execute("SELECT billing.create_invoice(%s, 'prime', 1)", (user,))
            short = cur.fetchone()[0]
        conn.close()
        self.checkout(user, short)
        self.set_clock(now + datetime.timedelta(minutes=11))
        self.one("CALL billing.stripe_poll(NULL)")
        self.assertEqual(self.status(short), "expired")
        self.assertEqual(self.ctl("GET", "sessions/%s" % self.session_of(short))["status"], "expired")


if __name__ == "__main__":
    unittest.main()
