"""End-to-end: the extension against the YooKassa stand-in (test/standins/
yookassa_server.py) on a real cluster, with the Stripe stand-in beside it for
the provider choice and the poller.  Notifications go from the stand-in to a
tiny receiver in this process that hands the body to billing.yookassa_webhook,
as PostgREST does, and answers 200 only after the call committed.  Time moves
with billing.test_clock and the stand-in's clock together."""

import datetime
import json
import os
import random
import unittest
import urllib.parse
import urllib.request
import uuid

import psycopg2

from harness import Cluster, PYTHON, SRC, free_port, serve_hooks, spawn, wait_for, wait_port, new_user

SHOP_ID = "654321"
SECRET_KEY = "test_yk_secret_e2e_5f1c"
STRIPE_KEY = "sk_test_e2e_yk"
RETURN_URL = "https://cinema.example/back"


class YooKassaE2E(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.results = []
        cls.clock = None
        cls.hook, hook_url = serve_hooks(cls.receive_notification)

        cls.yk_port = free_port()
        cls.yk = spawn([PYTHON, os.path.join(SRC, "test", "standins", "yookassa_server.py"),
                        "--port", str(cls.yk_port), "--notify-retries", "3",
                        "--notify-url", hook_url],
                       "yookassa_standin.log",
                       env={"YOOKASSA_SHOP_ID": SHOP_ID, "YOOKASSA_SECRET_KEY": SECRET_KEY})
        cls.stripe_port = free_port()
        cls.stripe = spawn([PYTHON, os.path.join(SRC, "test", "standins", "stripe_server.py"),
                            "--port", str(cls.stripe_port), "--secret-key", STRIPE_KEY],
                           "stripe_standin_yk.log")
        wait_port(cls.yk_port)
        wait_port(cls.stripe_port)
        cls.base = "http://127.0.0.1:%d" % cls.yk_port
        cls.stripe_base = "http://127.0.0.1:%d" % cls.stripe_port
        cls.cluster = Cluster("yookassa", conf=[
            "billing.providers = 'RUB:yookassa,*:stripe'",
            "billing.yookassa_api_base = '%s'" % cls.base,
            "billing.yookassa_shop_id = '%s'" % SHOP_ID,
            "billing.yookassa_secret_key = '%s'" % SECRET_KEY,
            "billing.yookassa_return_url = '%s'" % RETURN_URL,
            "billing.yookassa_timeout = 1500",
            "billing.yookassa_connect_timeout = 500",
            "billing.stripe_api_base = '%s'" % cls.stripe_base,
            "billing.stripe_secret_key = '%s'" % STRIPE_KEY,
            "billing.stripe_success_url = 'https://cinema.example/paid'",
            "billing.stripe_timeout = 1500",
            "billing.stripe_poll_schedule = ''",
            "billing.invoice_expiry_schedule = ''",
        ])
        cls.cluster.query("SELECT billing.create_tariff('prime', 'Prime films', 29950, 'RUB')")
        cls.cluster.query("SELECT billing.create_tariff('euro', 'Euro films', 999, 'EUR')")

    @classmethod
    def tearDownClass(cls):
        cls.hook.shutdown()

    @classmethod
    def receive_notification(cls, body, headers):
        """The notification endpoint: the body to the SQL function; 200 once committed."""
        try:
            conn = cls.connect()
            with conn.cursor() as cur:
                cur.execute("SELECT billing.yookassa_webhook(%s::json)", (body.decode(),))
                cls.results.append(cur.fetchone()[0])
            conn.close()
        except psycopg2.Error as e:
            cls.results.append({"error": e.pgcode, "message": e.pgerror})
            return 400 if e.pgcode and e.pgcode[:2] in ("22", "42") else 503
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

    def ctl(self, method, path, body=None, base=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request((base or self.base) + "/_control/" + path, data=data, method=method)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def set_clock(self, when):
        type(self).clock = when
        self.ctl("POST", "clock", {"now": when.timestamp()})
        self.ctl("POST", "clock", {"now": when.timestamp()}, base=self.stripe_base)

    def setUp(self):
        self.ctl("POST", "notifications", {"mode": "deliver"})
        self.ctl("POST", "faults", {"clear": True})
        self.ctl("POST", "refund_mode", {"status": "succeeded"})
        self.cluster.set_conf(billing__yookassa_api_base=self.base, billing__yookassa_receipts="off",
                              billing__yookassa_notify_from="")
        type(self).clock = None
        self.set_clock(datetime.datetime.now(datetime.timezone.utc))

    def status(self, pid):
        return self.one("SELECT status FROM billing.payments WHERE id = %s", (pid,))

    def row(self, pid, cols):
        return self.q("SELECT %s FROM billing.payments WHERE id = %%s" % cols, (pid,))[0]

    def invoice(self, user, tariff="prime", months=1, promo=None):
        return self.one("SELECT billing.create_invoice(%s, %s, %s, %s)", (user, tariff, months, promo))

    def checkout(self, user, pid, provider=None):
        return self.one("SELECT billing.checkout(%s, %s, provider => %s)", (user, pid, provider))

    def yoo_id(self, pid):
        return self.one("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))

    def creates(self, pid):
        return [r for r in self.ctl("GET", "requests") if r["path"] == "/v3/payments"
                and r["method"] == "POST" and isinstance(r["body"], dict)
                and r["body"].get("metadata", {}).get("payment_id") == str(pid)]

    def events(self, pid, to_status=None):
        return self.q("SELECT to_status, source FROM billing.payment_events WHERE payment_id = %s "
                      "AND (%s::text IS NULL OR to_status = %s) ORDER BY id", (pid, to_status, to_status))

    def notify(self, body):
        return self.one("SELECT billing.yookassa_webhook(%s::json)", (json.dumps(body),))

    def poll(self):
        return self.one("CALL billing.poll_payments(NULL)")

    def poll_later(self, seconds=61):
        self.set_clock(self.clock + datetime.timedelta(seconds=seconds))
        return self.poll()

    def pay_page(self, pid, action="pay"):
        """What the buyer does on the confirmation page: press a button."""
        url = self.one("SELECT provider_url FROM billing.payments WHERE id = %s", (pid,))
        req = urllib.request.Request(url, data=urllib.parse.urlencode({"action": action}).encode(),
                                     method="POST")

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None
        try:
            urllib.request.build_opener(NoRedirect).open(req)
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 303)
            return e.headers["Location"]

    def paid(self, user, tariff="prime", months=1):
        pid = self.invoice(user, tariff, months)
        self.checkout(user, pid)
        self.ctl("POST", "payments/%s/succeed" % self.yoo_id(pid))
        wait_for(lambda: self.status(pid) == "paid", 10, what="paid by notification")
        return pid

    # ---- choosing the provider -------------------------------------------------
    def test_provider_by_currency_and_only_configured_ones(self):
        user = new_user()
        rub, eur = self.invoice(user), self.invoice(user, tariff="euro")
        self.assertTrue(self.checkout(user, rub).startswith(self.base + "/confirm/"))
        self.assertTrue(self.checkout(user, eur).startswith(self.stripe_base + "/pay/"))
        self.assertEqual(self.row(rub, "provider")[0], "yookassa")
        self.assertEqual(self.row(eur, "provider")[0], "stripe")

        # Explicitly: a known provider that is configured.
        other = self.invoice(user)
        self.assertTrue(self.checkout(user, other, "stripe").startswith(self.stripe_base))
        self.assertEqual(self.row(other, "provider")[0], "stripe")
        # Pending with one provider: it stays there.
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s, provider => 'yookassa')", (user, other))
        self.assertEqual(code, "55000", msg)

        # Unknown, and known but not configured: refused, the payment stays invoiced.
        third = self.invoice(user)
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s, provider => 'paypal')", (user, third))
        self.assertEqual(code, "22023", msg)
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET billing.providers = '*:stripe'")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("SELECT billing.checkout(%s, %s, provider => 'yookassa')", (user, third))
            self.assertEqual(cm.exception.pgcode, "55000")
            self.assertIn("not configured", cm.exception.pgerror)
            cur.execute("SET billing.providers = 'EUR:stripe'")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("SELECT billing.checkout(%s, %s)", (user, third))
            self.assertEqual(cm.exception.pgcode, "55000")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("SET billing.providers = 'RUB:paypal'")
            self.assertEqual(cm.exception.pgcode, "22023")
        conn.close()
        self.assertEqual(self.row(third, "status, provider"), ("invoiced", None))
        self.assertEqual(self.creates(third), [])

    # ---- paying ------------------------------------------------------------------
    def test_pay_on_the_page_with_the_notification(self):
        user = new_user()
        pid = self.invoice(user, months=2)
        url = self.checkout(user, pid)
        self.assertEqual(url, "%s/confirm/%s" % (self.base, self.yoo_id(pid)))
        self.assertEqual(self.status(pid), "pending")
        self.assertEqual(self.checkout(user, pid), url)      # again: the same page
        [create] = self.creates(pid)
        self.assertEqual(create["idempotence_key"], "billing-checkout-%s" % pid)
        self.assertEqual(create["shop_id"], SHOP_ID)
        b = create["body"]
        total = self.one("SELECT total FROM billing.payments WHERE id = %s", (pid,))
        self.assertEqual(b["amount"], {"value": "%d.%02d" % divmod(total, 100), "currency": "RUB"})
        self.assertIsInstance(b["amount"]["value"], str)
        self.assertIs(b["capture"], True)
        self.assertEqual(b["confirmation"], {"type": "redirect", "return_url": RETURN_URL})
        self.assertEqual(b["metadata"], {"payment_id": str(pid), "user_id": str(user)})
        self.assertEqual(b["description"], "Prime films, 2 months")
        self.assertNotIn("receipt", b)

        self.assertEqual(self.pay_page(pid), RETURN_URL)
        wait_for(lambda: self.status(pid) == "paid", 10, what="paid by notification")
        self.assertEqual(self.events(pid, "paid"), [("paid", "webhook")])
        self.assertTrue(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        yoo = self.ctl("GET", "payments/%s" % self.yoo_id(pid))
        # Paid when YooKassa captured it, or when we heard of it if that came
        # first by our clock: nothing is paid in the future (settle_payment).
        paid_at = self.one("SELECT paid_at FROM billing.payments WHERE id = %s", (pid,))
        captured = datetime.datetime.fromisoformat(yoo["captured_at"].replace("Z", "+00:00"))
        self.assertLessEqual(paid_at, captured)
        self.assertLess((captured - paid_at).total_seconds(), 2)

    def test_decline_on_the_page(self):
        user = new_user()
        pid = self.invoice(user)
        self.checkout(user, pid)
        self.pay_page(pid, "decline")
        wait_for(lambda: self.status(pid) == "failed", 10, what="failed by notification")
        self.assertFalse(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))

    def test_notification_lost_poll_and_confirm_settle(self):
        self.ctl("POST", "notifications", {"mode": "drop"})
        user = new_user()
        a, b = self.invoice(user), self.invoice(user)
        for pid in (a, b):
            self.checkout(user, pid)
            self.ctl("POST", "payments/%s/succeed" % self.yoo_id(pid))
        self.assertEqual(self.one("SELECT billing.confirm_payment(%s, %s)", (user, b)), "paid")
        self.assertEqual(self.events(b, "paid"), [("paid", "api")])
        self.poll()                                  # not due yet
        self.assertEqual(self.status(a), "pending")
        result = self.poll_later()
        self.assertGreaterEqual(result["settled"], 1, result)
        self.assertEqual(self.status(a), "paid")
        self.assertEqual(self.events(a, "paid"), [("paid", "poll")])

    def test_duplicate_and_out_of_order_notifications(self):
        user = new_user()
        pid = self.invoice(user)
        self.checkout(user, pid)
        yid = self.yoo_id(pid)
        self.ctl("POST", "notifications", {"mode": "hold"})
        self.ctl("POST", "payments/%s/waiting" % yid)       # payment.waiting_for_capture
        self.ctl("POST", "payments/%s/succeed" % yid)       # payment.succeeded
        n = len(self.results)
        self.ctl("POST", "notifications/release", {"reverse": True})
        self.ctl("POST", "notifications", {"mode": "deliver"})
        wait_for(lambda: len(self.results) >= n + 2, 10, what="held notifications")
        self.assertEqual([r["result"] for r in self.results[n:n + 2]], ["applied", "contradiction"])
        self.assertEqual(self.status(pid), "paid")
        # The same notification again, twice.
        self.ctl("POST", "notifications", {"mode": "duplicate"})
        note = {"type": "notification", "event": "payment.succeeded", "object": {"id": yid}}
        n = len(self.results)
        self.ctl("POST", "notifications/send", note)
        self.ctl("POST", "notifications/send", note)
        wait_for(lambda: len(self.results) >= n + 2, 10, what="duplicates")
        self.assertEqual({r["result"] for r in self.results[n:]}, {"unchanged"})
        self.assertEqual(len(self.events(pid, "paid")), 1)

    def test_forged_notifications_change_nothing(self):
        victim, forger = new_user(), new_user()
        pid = self.invoice(victim)
        self.checkout(victim, pid)
        yid = self.yoo_id(pid)
        before = self.q("SELECT status, updated_at FROM billing.payments WHERE id = %s", (pid,))
        # A valid-looking body claiming success, with the amount and metadata:
        # the API says pending, so it is a contradiction.
        forged = {"type": "notification", "event": "payment.succeeded",
                  "object": {"id": yid, "status": "succeeded", "paid": True,
                             "amount": {"value": "299.50", "currency": "RUB"},
                             "metadata": {"payment_id": str(pid), "user_id": str(forger)}}}
        self.assertEqual(self.notify(forged)["result"], "contradiction")
        # An object YooKassa does not know.
        forged["object"]["id"] = "2d5e4f6a-000f-5000-8000-000000000000"
        self.assertEqual(self.notify(forged)["result"], "unknown_object")
        # A real, succeeded payment of the same shop that is none of ours,
        # whose metadata names the victim's payment: the amount differs.
        req = urllib.request.Request(self.base + "/v3/payments", method="POST", data=json.dumps({
            "amount": {"value": "1.00", "currency": "RUB"}, "capture": True,
            "confirmation": {"type": "redirect", "return_url": "https://evil.example"},
            "metadata": {"payment_id": str(pid)}}).encode(), headers={
            "Content-Type": "application/json", "Idempotence-Key": uuid.uuid4().hex,
            "Authorization": "Basic " + __import__("base64").b64encode(
                ("%s:%s" % (SHOP_ID, SECRET_KEY)).encode()).decode()})
        with urllib.request.urlopen(req) as r:
            other = json.loads(r.read())["id"]
        self.ctl("POST", "notifications", {"mode": "drop"})
        self.ctl("POST", "payments/%s/succeed" % other)
        self.assertEqual(self.notify({"type": "notification", "event": "payment.succeeded",
                                    "object": {"id": other}})["result"], "unknown_payment")
        # A refund notification for a refund that does not exist.
        self.assertEqual(self.notify({"type": "notification", "event": "refund.succeeded",
                                    "object": {"id": yid}})["result"], "unknown_object")
        # Not notifications at all.
        for bad in ({"type": "notification", "event": "payment.succeeded", "object": {"id": "../x"}},
                    {"type": "other", "event": "payment.succeeded", "object": {"id": yid}},
                    {"event": "payment.succeeded"}, [1, 2]):
            code, _ = self.sqlstate("SELECT billing.yookassa_webhook(%s::json)", (json.dumps(bad),))
            self.assertEqual(code, "22023", bad)
        self.assertEqual(self.q("SELECT status, updated_at FROM billing.payments WHERE id = %s", (pid,)),
                         before)
        self.assertIn("contradicts the api", self.cluster.log())

    def test_sender_addresses(self):
        self.cluster.set_conf(billing__yookassa_notify_from="185.71.76.0/27, 77.75.156.11")
        user = new_user()
        pid = self.invoice(user)
        self.checkout(user, pid)
        note = json.dumps({"type": "notification", "event": "payment.succeeded",
                           "object": {"id": self.yoo_id(pid)}})
        for sender, code in (("10.0.0.1", "42501"), (None, "42501"), ("185.71.76.5", None),
                             ("77.75.156.11", None)):
            got, _ = self.sqlstate("SELECT billing.yookassa_webhook(%s::json, %s)", (note, sender))
            self.assertEqual(got, code, sender)

    # ---- cancel and refund -------------------------------------------------------------
    def test_cancel_unpaid_and_money_that_comes_anyway(self):
        self.ctl("POST", "notifications", {"mode": "drop"})
        user = new_user()
        pid = self.invoice(user)
        self.checkout(user, pid)
        yid = self.yoo_id(pid)
        # Pending at YooKassa: cannot be cancelled there; ours is canceled and watched.
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (user, pid)), "canceled")
        self.assertEqual(self.ctl("GET", "payments/%s" % yid)["status"], "pending")
        self.assertTrue(self.row(pid, "provider_watch")[0])
        # The buyer confirms on the still-open page anyway: the poller refunds it.
        self.ctl("POST", "payments/%s/succeed" % yid)
        result = self.poll_later()
        self.assertEqual(self.status(pid), "canceled")
        refunds = [r for r in self.ctl("GET", "requests") if r["path"] == "/v3/refunds"
                   and r["body"]["payment_id"] == yid]
        self.assertEqual(len(refunds), 1, result)
        self.assertEqual(refunds[0]["idempotence_key"], "billing-late-refund-%s" % pid)
        self.assertEqual(refunds[0]["body"]["amount"], {"value": "299.50", "currency": "RUB"})
        self.assertEqual(self.row(pid, "provider_watch")[0], False)
        self.assertFalse(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        # Nothing more to poll.
        self.poll_later(3600)
        self.assertEqual(len([r for r in self.ctl("GET", "requests") if r["path"] == "/v3/refunds"
                              and r["body"]["payment_id"] == yid]), 1)

        # Canceled here, then expired at YooKassa: the watch ends, no refund.
        pid2 = self.invoice(user)
        self.checkout(user, pid2)
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (user, pid2)), "canceled")
        self.ctl("POST", "payments/%s/expire" % self.yoo_id(pid2))
        self.poll_later(120)
        self.assertEqual(self.row(pid2, "status, provider_watch"), ("canceled", False))

        # waiting_for_capture is cancelled through the API.
        pid3 = self.invoice(user)
        self.checkout(user, pid3)
        self.ctl("POST", "payments/%s/waiting" % self.yoo_id(pid3))
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (user, pid3)), "canceled")
        self.assertEqual(self.ctl("GET", "payments/%s" % self.yoo_id(pid3))["status"], "canceled")
        self.assertEqual(self.row(pid3, "provider_watch")[0], False)

    def test_refund_inside_the_hour_refused_after_and_yookassa_down(self):
        users = [new_user(), new_user(), new_user()]
        pids = [self.paid(u) for u in users]
        paid_at = self.one("SELECT paid_at FROM billing.payments WHERE id = %s", (pids[0],))
        self.set_clock(paid_at + datetime.timedelta(minutes=59))
        # YooKassa fails first: the payment stays paid and refundable.
        self.ctl("POST", "faults", {"count": 1, "status": 500, "path": "/v3/refunds"})
        code, msg = self.sqlstate("SELECT billing.cancel_payment(%s, %s)", (users[0], pids[0]))
        self.assertEqual(code, "08006", msg)
        self.assertEqual(self.status(pids[0]), "paid")
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (users[0], pids[0])), "refunded")
        refunds = [r for r in self.ctl("GET", "requests") if r["path"] == "/v3/refunds"
                   and r["body"]["payment_id"] == self.yoo_id(pids[0])]
        self.assertEqual({r["idempotence_key"] for r in refunds}, {"billing-refund-%s" % pids[0]})
        self.assertEqual(refunds[-1]["body"]["amount"], {"value": "299.50", "currency": "RUB"})
        self.assertFalse(self.one("SELECT billing.has_access(%s, 'prime')", (users[0],)))

        # A pending refund, then its notification.
        self.ctl("POST", "refund_mode", {"status": "pending"})
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (users[2], pids[2])),
                         "refund_pending")
        rid = self.row(pids[2], "provider_refund_id")[0]
        self.ctl("POST", "refunds/%s" % rid, {"status": "succeeded"})
        wait_for(lambda: self.status(pids[2]) == "refunded", 10, what="refund notification")

        # 61 minutes: refused, nothing asked of YooKassa.
        paid_at = self.one("SELECT paid_at FROM billing.payments WHERE id = %s", (pids[1],))
        self.set_clock(paid_at + datetime.timedelta(minutes=61))
        code, msg = self.sqlstate("SELECT billing.cancel_payment(%s, %s)", (users[1], pids[1]))
        self.assertEqual(code, "55000", msg)
        self.assertEqual(self.status(pids[1]), "paid")
        self.assertEqual([r for r in self.ctl("GET", "requests") if r["path"] == "/v3/refunds"
                          and r["body"]["payment_id"] == self.yoo_id(pids[1])], [])

    # ---- outages -------------------------------------------------------------------------
    def test_down_or_slow_at_checkout_and_the_retry_gets_the_same_payment(self):
        user = new_user()
        pid = self.invoice(user)
        self.ctl("POST", "faults", {"count": 1, "status": 503, "path": "/v3/payments"})
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "08006", msg)
        self.assertEqual(self.status(pid), "invoiced")
        # Slower than billing.yookassa_timeout: our call gives up, YooKassa made the payment.
        self.ctl("POST", "faults", {"count": 1, "delay": 2.5, "path": "/v3/payments"})
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s)", (user, pid))
        self.assertEqual(code, "08006", msg)
        self.assertEqual(self.status(pid), "invoiced")
        wait_for(lambda: len([r for r in self.creates(pid) if r.get("status") == 200]) == 1, 10,
                 what="the slow create to finish")
        url = self.checkout(user, pid)
        creates = self.creates(pid)
        self.assertEqual({r["idempotence_key"] for r in creates}, {"billing-checkout-%s" % pid})
        made = {r["status"]: r.get("replayed", False) for r in creates if r.get("status") == 200}
        self.assertEqual(made, {200: True})          # the last one replayed the first payment
        self.assertEqual(len(self.ctl("GET", "requests")) > 0, True)
        self.assertTrue(url.endswith(self.yoo_id(pid)))
        # Unreachable.
        pid2 = self.invoice(user)
        self.cluster.set_conf(billing__yookassa_api_base="http://127.0.0.1:1")
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s)", (user, pid2))
        self.assertEqual(code, "08001", msg)
        self.assertEqual(self.status(pid2), "invoiced")

    def test_down_during_poll_holds_up_no_other_provider(self):
        self.ctl("POST", "notifications", {"mode": "drop"})
        user = new_user()
        yk = [self.invoice(user) for _ in range(3)]
        for pid in yk:
            self.checkout(user, pid)
            self.ctl("POST", "payments/%s/succeed" % self.yoo_id(pid))
        st = self.invoice(user, tariff="euro")
        self.checkout(user, st)
        sid = self.one("SELECT provider_session_id FROM billing.payments WHERE id = %s", (st,))
        self.ctl("POST", "sessions/%s/complete" % sid, {}, base=self.stripe_base)
        # YooKassa hangs (slower than billing.yookassa_timeout): after the
        # first timeout its other payments wait for the next run instead of
        # each waiting out a timeout; Stripe's payment is settled anyway.
        ids = {self.yoo_id(p) for p in yk}
        asked = lambda: len([r for r in self.ctl("GET", "requests") if r["method"] == "GET"
                             and r["path"].rsplit("/", 1)[-1] in ids])
        n = asked()
        self.ctl("POST", "faults", {"count": 100, "delay": 2, "path": "/v3/payments"})
        result = self.poll_later()
        self.assertEqual(self.status(st), "paid", result)
        self.assertEqual([self.status(p) for p in yk], ["pending"] * 3)
        self.assertEqual(result["errors"], 3, result)
        self.assertEqual(asked() - n, 1)
        self.assertIn("yookassa is unreachable; its other payments wait for the next poll",
                      self.cluster.log())
        self.ctl("POST", "faults", {"clear": True})
        # Gone altogether (connection refused): the same.
        self.cluster.set_conf(billing__yookassa_api_base="http://127.0.0.1:1")
        result = self.poll_later(240)
        self.assertEqual([self.status(p) for p in yk], ["pending"] * 3)
        self.assertEqual(result["errors"], 3, result)
        # Back: the next due poll settles them.
        self.cluster.set_conf(billing__yookassa_api_base=self.base)
        self.poll_later(480)
        self.assertEqual([self.status(p) for p in yk], ["paid"] * 3)
        self.assertTrue(self.one("SELECT billing.has_access(%s, 'euro')", (user,)))

    def test_invoice_runs_out_while_pending_at_yookassa(self):
        self.ctl("POST", "notifications", {"mode": "drop"})
        user = new_user()
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute("SET billing.invoice_lifetime = 600")
            cur.execute("SELECT billing.create_invoice(%s, 'prime', 1)", (user,))
            pid = cur.fetchone()[0]
        conn.close()
        self.checkout(user, pid)
        self.poll_later(11 * 60)
        self.assertEqual(self.row(pid, "status, provider_watch"), ("expired", True))
        self.ctl("POST", "payments/%s/succeed" % self.yoo_id(pid))
        self.poll_later(3600)
        self.assertEqual(self.row(pid, "status, provider_watch"), ("expired", False))
        self.assertEqual(len([r for r in self.ctl("GET", "requests") if r["path"] == "/v3/refunds"
                              and r["body"]["payment_id"] == self.yoo_id(pid)]), 1)

    # ---- amounts and receipts --------------------------------------------------------------
    def test_kopecks_and_receipts(self):
        now = self.clock
        code = "KOP" + uuid.uuid4().hex[:8].upper()
        self.q("SELECT billing.create_promo_code(%s, 17, %s)", (code, now + datetime.timedelta(days=30)))
        user = new_user()
        pid = self.invoice(user, months=3, promo=code)
        total = self.one("SELECT total FROM billing.payments WHERE id = %s", (pid,))
        self.assertNotEqual(total % 100, 0)          # kopecks
        self.checkout(user, pid)
        [create] = self.creates(pid)
        self.assertEqual(create["body"]["amount"]["value"], "%d.%02d" % divmod(total, 100))

        self.cluster.set_conf(billing__yookassa_receipts="on", billing__yookassa_vat_code="4")
        user2 = new_user()
        pid2 = self.invoice(user2, months=2)
        code, msg = self.sqlstate("SELECT billing.checkout(%s, %s)", (user2, pid2))
        self.assertEqual(code, "55000", msg)          # no e-mail known
        self.assertEqual(self.status(pid2), "invoiced")
        self.q("UPDATE billing.customers SET email = 'buyer@cinema.example' WHERE user_id = %s", (user2,))
        self.checkout(user2, pid2)
        [create] = self.creates(pid2)
        total2 = self.one("SELECT total FROM billing.payments WHERE id = %s", (pid2,))
        amount = {"value": "%d.%02d" % divmod(total2, 100), "currency": "RUB"}
        self.assertEqual(create["body"]["receipt"], {
            "customer": {"email": "buyer@cinema.example"},
            "items": [{"description": "Prime films, 2 months", "quantity": "1.00", "amount": amount,
                       "vat_code": 4, "payment_subject": "service", "payment_mode": "full_payment"}]})
        self.ctl("POST", "payments/%s/succeed" % self.yoo_id(pid2))
        wait_for(lambda: self.status(pid2) == "paid", 10, what="paid")
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (user2, pid2)), "refunded")
        refund = [r for r in self.ctl("GET", "requests") if r["path"] == "/v3/refunds"
                  and r["body"]["payment_id"] == self.yoo_id(pid2)][0]
        self.assertEqual(refund["body"]["receipt"]["items"][0]["amount"], amount)

    # ---- over HTTP ----------------------------------------------------------------------------
    def test_notification_through_postgrest(self):
        from test_http import PostgREST
        api = PostgREST(self.cluster, "yookassa")
        try:
            self.ctl("POST", "notifications", {"mode": "drop"})
            user = new_user()
            pid = self.invoice(user)
            self.checkout(user, pid)
            yid = self.yoo_id(pid)
            self.ctl("POST", "payments/%s/succeed" % yid)
            raw = json.dumps({"type": "notification", "event": "payment.succeeded",
                              "object": {"id": yid, "status": "succeeded"}}).encode()
            # YooKassa unreachable: an error status (YooKassa delivers again), nothing changed.
            self.cluster.set_conf(billing__yookassa_api_base="http://127.0.0.1:1")
            resp = api.call("POST", "/rpc/yookassa_webhook", raw=raw)
            self.assertIn(resp.status, (502, 503), resp)
            self.assertEqual(self.status(pid), "pending")
            self.cluster.set_conf(billing__yookassa_api_base=self.base,
                                  billing__yookassa_notify_from="185.71.76.0/27")
            # The proxy appends the peer's address last: only that one counts.
            resp = api.call("POST", "/rpc/yookassa_webhook", raw=raw,
                            headers={"X-Forwarded-For": "185.71.76.5, 10.9.8.7"})
            self.assertEqual(resp.status, 403, resp)
            self.assertEqual(self.status(pid), "pending")
            resp = api.call("POST", "/rpc/yookassa_webhook", raw=raw,
                            headers={"X-Forwarded-For": "10.9.8.7, 185.71.76.5"})
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json["result"], "applied")
            self.assertEqual(self.status(pid), "paid")
            self.assertEqual(self.events(pid, "paid"), [("paid", "webhook")])
        finally:
            api.stop()

    # ---- secrets ----------------------------------------------------------------------------
    def test_secrets_stay_secret(self):
        conn = self.cluster.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_settings WHERE name LIKE 'billing.yookassa_s%'")
            self.assertEqual(cur.fetchone()[0], 0)
            cur.execute("CREATE ROLE yk_peeker LOGIN")
            cur.execute("SET ROLE yk_peeker")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("SHOW billing.yookassa_secret_key")
            self.assertEqual(cm.exception.pgcode, "42501")
            cur.execute("RESET ROLE")
            cur.execute("DROP ROLE yk_peeker")
        conn.close()
        user = new_user()
        pid = self.invoice(user)
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET billing.yookassa_secret_key = 'wrong_key_9d2e'")
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("SELECT billing.checkout(%s, %s)", (user, pid))
            self.assertEqual(cm.exception.pgcode, "08004")
            self.assertNotIn("wrong_key_9d2e", str(cm.exception))
            with self.assertRaises(psycopg2.Error) as cm:
                cur.execute("SET billing.yookassa_secret_key = 'bad key with spaces'")
            self.assertNotIn("bad key", str(cm.exception))
        conn.close()
        log = self.cluster.log()
        self.assertNotIn(SECRET_KEY, log)
        self.assertNotIn("wrong_key_9d2e", log)

    # ---- fuzz -------------------------------------------------------------------------------
    def test_fuzz_notifications_change_nothing_they_should_not(self):
        """Random and mutated notifications: each one is refused (22023,
        22P02, 54000) or answered with a result; nothing changes that the
        API does not confirm."""
        rng = random.Random(1313)
        user = new_user()
        paid = self.paid(user)
        self.ctl("POST", "notifications", {"mode": "drop"})
        pending = self.invoice(user)
        self.checkout(user, pending)
        ids = [self.yoo_id(pending), self.yoo_id(paid), "2d5e4f6a-000f-5000-8000-ffffffffffff"]
        snapshot = lambda: self.q("SELECT id, status, updated_at, provider_refund_id FROM billing.payments "
                                  "WHERE user_id = %s ORDER BY id", (user,))
        before = snapshot()
        events = ["payment.succeeded", "payment.canceled", "payment.waiting_for_capture",
                  "refund.succeeded", "deal.closed", "", "payment.", "x" * 80]

        def value():
            return rng.choice([None, True, 0, -1, 1e308, "", "ü" * 3, "a" * 300, [], {},
                               rng.choice(ids), str(uuid.uuid4()), "../../v3/refunds", "id\n2"])

        allowed = {"contradiction", "unknown_object", "unknown_payment", "unchanged", "ignored",
                   "waiting", "mismatch"}
        for i in range(300):
            note = {"type": "notification", "event": rng.choice(events),
                    "object": {"id": rng.choice(ids + [value()]), "status": rng.choice(
                        ["succeeded", "canceled", "pending", value()]),
                        "amount": {"value": rng.choice(["299.50", "0.01", value()]), "currency": "RUB"},
                        "metadata": {"payment_id": str(rng.choice([pending, paid]))}}}
            for _ in range(rng.randrange(3)):
                k = rng.choice(["type", "event", "object", "extra"])
                note[k] = value()
            body = json.dumps(note)
            if rng.random() < 0.1:
                body = body[:rng.randrange(len(body))]            # cut short
            try:
                res = self.one("SELECT billing.yookassa_webhook(%s::json)", (body,))
                self.assertIn(res["result"], allowed, (body, res))
            except psycopg2.Error as e:
                self.assertIn(e.pgcode, ("22023", "22P02", "54000"), (body, e.pgerror))
        self.assertEqual(snapshot(), before)


if __name__ == "__main__":
    unittest.main()
