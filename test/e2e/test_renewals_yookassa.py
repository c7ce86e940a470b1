"""End-to-end: auto-renewal of rouble subscriptions through the YooKassa
stand-in on a real cluster (billing.providers = 'RUB:yookassa,*:stripe').

A buyer opts in at checkout (the payment asks YooKassa to save the method,
save_payment_method and merchant_customer_id), billing.run_renewals charges
the saved method without the buyer (a payment with payment_method_id), the
stand-in's test cards decline it, a revoked permission stops the retries,
and the lost answers settle exactly once: by the poller, which finds the
charge in YooKassa's list of payments, or by YooKassa's notification.
Notifications go from the stand-in to a receiver in this process that hands
them to billing.yookassa_webhook, as PostgREST does; time moves with
billing.test_clock and the stand-in's clock together."""

import datetime
import json
import os
import unittest
import urllib.parse
import urllib.request

import psycopg2

from renewal_helpers import UTC, RenewalHelpers
from harness import Cluster, PYTHON, SRC, free_port, new_user, serve_hooks, spawn, wait_for, wait_port

SHOP_ID = "505050"
SECRET_KEY = "test_yk_renew_7d2a"

GOOD = "5555555555554444"
THREE_DS = "5555555555554477"        # asks for 3-D Secure on the page, never again
INSUFFICIENT = "5555555555554600"
EXPIRED = "5555555555554543"
THREE_DS_FAILED = "5555555555554592"


class YooKassaRenewalE2E(RenewalHelpers, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.clock = None
        cls.results = []
        cls.hook, hook_url = serve_hooks(cls.receive_notification)
        cls.yk_port = free_port()
        cls.yk = spawn([PYTHON, os.path.join(SRC, "test", "standins", "yookassa_server.py"),
                        "--port", str(cls.yk_port), "--notify-retries", "3",
                        "--notify-url", hook_url],
                       "yookassa_renewal_standin.log",
                       env={"YOOKASSA_SHOP_ID": SHOP_ID, "YOOKASSA_SECRET_KEY": SECRET_KEY})
        wait_port(cls.yk_port)
        cls.base = "http://127.0.0.1:%d" % cls.yk_port
        cls.cluster = Cluster("renewals_yookassa", conf=[
            "billing.providers = 'RUB:yookassa,*:stripe'",
            "billing.yookassa_api_base = '%s'" % cls.base,
            "billing.yookassa_shop_id = '%s'" % SHOP_ID,
            "billing.yookassa_secret_key = '%s'" % SECRET_KEY,
            "billing.yookassa_return_url = 'https://cinema.example/back'",
            "billing.yookassa_timeout = 1500",
            "billing.yookassa_connect_timeout = 500",
            "billing.stripe_poll_schedule = ''",
            "billing.renewal_schedule = ''",
            "billing.expiry_schedule = ''",
            "billing.invoice_expiry_schedule = ''",
        ])
        cls.cluster.query("SELECT billing.create_tariff('prime', 'Prime films', 29950, 'RUB')")

    @classmethod
    def tearDownClass(cls):
        cls.hook.shutdown()

    @classmethod
    def receive_notification(cls, body, headers):
        """The notification endpoint: the body to the SQL function at the test's
        billing time; 200 once committed."""
        try:
            cls.results.append(cls.cluster.query("SELECT billing.yookassa_webhook(%s::json)",
                                                 (body.decode(),), cls.clock)[0][0])
        except psycopg2.Error as e:
            cls.results.append({"error": e.pgcode, "message": e.pgerror})
            return 503
        return 200

    def setUp(self):
        self.ctl("POST", "faults", {"clear": True})
        self.ctl("POST", "notifications", {"mode": "deliver"})
        self.set_clock(datetime.datetime(2027, 1, 31, 10, 0, tzinfo=UTC))

    # ---- helpers -----------------------------------------------------------
    def status(self, pid):
        return self.one("SELECT status FROM billing.payments WHERE id = %s", (pid,))

    def buy(self, user, card=GOOD, auto_renew=True, can_save=True):
        """Invoice, checkout with auto_renew, pay with `card` on the stand-in's
        page; the notification settles it.  Returns the payment."""
        pid = self.one("SELECT billing.create_invoice(%s, 'prime', 1)", (user,))
        self.one("SELECT billing.checkout(%s, %s, auto_renew => %s)", (user, pid, auto_renew))
        yid = self.one("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))
        self.ctl("POST", "payments/%s/pay" % yid, {"card": card, "can_save": can_save})
        wait_for(lambda: self.status(pid) == "paid", 20, what="the notification to settle the checkout")
        return pid

    def creates(self, payment_id):
        """The POST /v3/payments the stand-in received for our payment (replays included)."""
        return [r for r in self.ctl("GET", "requests")
                if r["method"] == "POST" and r["path"] == "/v3/payments" and isinstance(r["body"], dict)
                and r["body"].get("metadata", {}).get("payment_id") == str(payment_id)]

    def made(self, payment_id):
        """The payments the stand-in made for our payment (not replays, not faults)."""
        return [r for r in self.creates(payment_id) if r.get("status") == 200 and not r.get("replayed")]

    def failed_event(self, pid):
        return self.one("SELECT detail FROM billing.payment_events WHERE payment_id = %s "
                        "AND to_status = 'failed'", (pid,))

    def paid_events(self, pid):
        return self.q("SELECT source FROM billing.payment_events WHERE payment_id = %s "
                      "AND to_status = 'paid'", (pid,))

    def method(self, user, **behaviour):
        """The buyer's saved method at the stand-in behaves so from now on."""
        pm = self.sub(user)["renew_method"]
        self.assertTrue(pm)
        self.ctl("POST", "payment_methods/%s" % pm, behaviour)

    # ---- opting in, renewing -------------------------------------------------
    def test_a_opt_in_at_checkout_then_renewals_charged(self):
        user = new_user()
        pid = self.buy(user, card=THREE_DS)
        yid = self.one("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))
        [create] = self.creates(pid)
        self.assertEqual((create["body"]["save_payment_method"], create["body"]["merchant_customer_id"]),
                         (True, str(user)))
        # YooKassa keeps no customers: ours is the user's uuid, and no call made it.
        self.assertEqual(self.q("SELECT provider, customer FROM billing.provider_customers "
                                "WHERE user_id = %s", (user,)), [("yookassa", str(user))])
        self.assertEqual([r["path"] for r in self.ctl("GET", "requests")
                          if r["method"] == "POST" and str(user) in json.dumps(r["body"])],
                         ["/v3/payments"])
        s = self.sub(user)
        self.assertEqual((s["auto_renew"], s["reason"], s["renew_provider"], s["renew_customer"],
                          s["renew_method"], s["card_brand"], s["card_last4"]),
                         (True, "checkout", "yookassa", str(user), yid, "MasterCard", "4477"))
        self.assertEqual(self.q("SELECT provider_method, card_brand, card_last4 FROM billing.payments "
                                "WHERE id = %s", (pid,)), [(yid, "MasterCard", "4477")])
        info = self.one("SELECT billing.payment_info(%s)", (user,))["subscriptions"][0]
        self.assertEqual((info["auto_renew"], info["next_charge_total"], info["currency"], info["card_last4"]),
                         (True, 29950, "RUB", "4477"))

        ends = []
        for month in range(2):
            self.at_next_charge(user)
            self.renew()
            [charge] = self.charges(user)[month:]
            self.assertEqual(charge[2], "paid")
            self.renew()                                    # the same run again: nothing
            self.assertEqual(len(self.charges(user)), month + 1)
            ends.append(self.sub(user)["ends_at"].strftime("%m-%d"))
            # The charge: the saved method, without the buyer, under the job's key.
            [create] = self.creates(charge[0])
            body = create["body"]
            self.assertEqual((body["amount"], body["capture"], body["payment_method_id"], body["description"]),
                             ({"value": "299.50", "currency": "RUB"}, True, yid, "Prime films, 1 month"))
            self.assertEqual(body["metadata"], {"payment_id": str(charge[0]), "user_id": str(user)})
            self.assertNotIn("confirmation", body)
            self.assertNotIn("receipt", body)
            self.assertRegex(create["idempotence_key"], r"^billing-renew-[0-9]+-[0-9]+-1$")
            stored = self.ctl("GET", "payments/%s" % charge[4])
            self.assertEqual((stored["status"], stored["metadata"]["payment_id"]), ("succeeded", str(charge[0])))
            # The notification YooKassa sends for it settles nothing twice.
            wait_for(lambda: any(r.get("payment_id") == str(charge[0]) for r in self.results
                                 if isinstance(r, dict)), 20, what="the charge's notification")
            self.assertEqual(self.paid_events(charge[0]), [("system",)])
        self.assertEqual(ends, ["03-31", "04-30"])
        self.assertEqual(len(self.notes(user, 1)), 3)       # "subscribed": the checkout and two renewals

        # A checkout without auto_renew asks YooKassa to save nothing.
        other = new_user()
        opid = self.buy(other, auto_renew=False)
        [create] = self.creates(opid)
        self.assertNotIn("save_payment_method", create["body"])
        self.assertNotIn("merchant_customer_id", create["body"])
        self.assertEqual(self.sub(other)["auto_renew"], False)

    def test_a2_a_method_yookassa_did_not_save_means_no_auto_renewal(self):
        """Asked to save, YooKassa saved nothing (a method it cannot save, or
        a shop without recurring payments): the purchase is paid and the
        subscription does not renew; the log says why."""
        user = new_user()
        pid = self.buy(user, can_save=False)
        s = self.sub(user)
        self.assertEqual((s["status"], s["auto_renew"], s["renew_method"]), ("active", False, None))
        self.assertEqual(self.q("SELECT provider_customer, provider_method FROM billing.payments "
                                "WHERE id = %s", (pid,)), [(None, None)])
        self.assertIn("yookassa did not save the payment method of payment %s" % pid, self.cluster.log())
        self.set_clock(s["ends_at"] - datetime.timedelta(hours=1))
        self.renew()
        self.assertEqual(self.charges(user), [])

    def test_b_receipts_go_with_the_charge(self):
        user = new_user()
        self.buy(user)
        self.q("UPDATE billing.customers SET email = 'renew@cinema.example' WHERE user_id = %s", (user,))
        self.cluster.set_conf(billing__yookassa_receipts="on")
        self.addCleanup(self.cluster.set_conf, billing__yookassa_receipts="off")
        self.at_next_charge(user)
        self.renew()
        [(pid, _, status, _, _, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        [create] = self.creates(pid)
        self.assertEqual(create["body"]["receipt"], {
            "customer": {"email": "renew@cinema.example"},
            "items": [{"description": "Prime films, 1 month", "quantity": "1.00",
                       "amount": {"value": "299.50", "currency": "RUB"}, "vat_code": 1,
                       "payment_subject": "service", "payment_mode": "full_payment"}]})

    # ---- declines -----------------------------------------------------------------
    def test_c_declined_then_recovered_on_a_retry(self):
        user = new_user()
        self.buy(user)
        end = self.sub(user)["ends_at"]
        self.method(user, card=INSUFFICIENT)
        self.at_next_charge(user)
        self.renew()
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual(status, "failed")
        self.assertTrue(yid)                                # the declined YooKassa payment
        s = self.sub(user)
        self.assertEqual((s["status"], s["auto_renew"], s["failures"]), ("active", True, 1))
        self.assertEqual(s["renew_at"], self.clock + datetime.timedelta(days=1))
        detail = self.failed_event(pid)
        self.assertEqual((detail["failure_code"], detail["party"], detail["attempt"], detail["yookassa_object"]),
                         ("insufficient_funds", "payment_network", 1, yid))
        [failed] = self.notes(user, 7)
        self.assertEqual((failed["amount"], failed["currency"]), (29950, "RUB"))
        self.assertEqual(failed["charge_at"], s["renew_at"].strftime("%Y-%m-%dT%H:%M:%S+00:00"))
        self.renew()                                        # not before the retry
        self.assertEqual(len(self.charges(user)), 1)

        self.method(user, card=EXPIRED)
        self.at_next_charge(user)                           # retry 1: declined again
        self.renew()
        self.assertEqual(self.failed_event(self.charges(user)[-1][0])["failure_code"], "card_expired")
        self.method(user, card=GOOD)                        # the buyer sorted it out
        self.at_next_charge(user)                           # retry 2: paid
        self.renew()
        s = self.sub(user)
        self.assertEqual((s["status"], s["auto_renew"], s["failures"]), ("active", True, 0))
        self.assertEqual((end.strftime("%m-%d"), s["ends_at"].strftime("%m-%d")), ("02-28", "03-31"))
        self.assertEqual([(c[1], c[2]) for c in self.charges(user)],
                         [(1, "failed"), (2, "failed"), (3, "paid")])
        # Each attempt its own key: three payments at YooKassa, one of each.
        keys = [self.creates(c[0])[0]["idempotence_key"] for c in self.charges(user)]
        self.assertEqual([k[-2:] for k in keys], ["-1", "-2", "-3"])

    def test_d_permission_revoked_no_retry_and_auto_renewal_off(self):
        """The buyer revoked the permission at YooKassa (or failed its 3-D
        Secure): retrying the same method cannot help, so no retry is made and
        auto-renewal is switched off; the paid term and its grace go on."""
        for behaviour, reason, party, off in (
                ({"revoked": True}, "permission_revoked", "yoo_money", "method_revoked"),
                ({"card": THREE_DS_FAILED}, "3d_secure_failed", "payment_network", "authentication_failed")):
            user = new_user()
            self.set_clock(datetime.datetime(2027, 1, 31, 10, 0, tzinfo=UTC))
            self.buy(user)
            end = self.sub(user)["ends_at"]
            self.method(user, **behaviour)
            self.at_next_charge(user)
            self.renew()
            [(pid, _, status, _, _, _)] = self.charges(user)
            self.assertEqual(status, "failed")
            self.assertEqual((self.failed_event(pid)["failure_code"], self.failed_event(pid)["party"]),
                             (reason, party))
            s = self.sub(user)
            self.assertEqual((s["status"], s["auto_renew"], s["reason"], s["renew_at"], s["ends_at"]),
                             ("active", False, off, None, end))
            [note] = self.notes(user, 7)
            self.assertNotIn("charge_at", note)             # no retry is coming
            self.set_clock(self.clock + datetime.timedelta(days=1, hours=1))
            self.renew()
            self.poll()
            self.assertEqual(len(self.charges(user)), 1)
            self.assertTrue(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))

    # ---- waiting, asking for the buyer ------------------------------------------------
    def test_e_a_pending_charge_is_asked_about_by_the_poller(self):
        user = new_user()
        self.buy(user)
        self.ctl("POST", "notifications", {"mode": "drop"})
        self.method(user, mode="pending")
        self.at_next_charge(user)
        self.renew()
        [(pid, _, status, _, yid, url)] = self.charges(user)
        self.assertEqual((status, url), ("pending", None))
        self.assertTrue(yid)                                # recorded at once
        self.set_clock(self.clock + datetime.timedelta(minutes=2))
        self.poll()
        self.assertEqual(self.status(pid), "pending")       # still pending at YooKassa
        self.ctl("POST", "payments/%s/succeed" % yid)
        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        self.assertEqual(self.status(pid), "paid")
        self.assertEqual(self.paid_events(pid), [("poll",)])
        self.assertEqual(len(self.made(pid)), 1)

    def test_f_a_charge_that_asks_for_the_buyer_sends_them_its_page(self):
        user = new_user()
        self.buy(user)
        self.method(user, mode="confirmation")
        self.at_next_charge(user)
        self.renew()
        [(pid, _, status, _, yid, url)] = self.charges(user)
        self.assertEqual(status, "pending")
        self.assertEqual(url, self.base + "/confirm/" + yid)
        self.assertIsNone(self.sub(user)["renew_at"])       # no retry while the buyer is asked
        [note] = self.notes(user, 8)
        self.assertEqual((note["action_url"], note["amount"]), (url, 29950))
        # The buyer confirms on the page, as a person would; the notification settles it.
        req = urllib.request.Request(url, data=urllib.parse.urlencode({"action": "pay"}).encode(),
                                     method="POST")
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.URLError:
            pass        # the redirect goes to the cinema's page, not served here
        wait_for(lambda: self.status(pid) == "paid", 20, what="the notification to settle the charge")
        self.assertEqual(self.sub(user)["auto_renew"], True)

    # ---- lost answers -------------------------------------------------------------------
    def test_g_charge_made_but_its_answer_lost_then_the_poller_settles_it_once(self):
        """YooKassa makes the payment but the answer never reaches us (here:
        it comes after our timeout; a crash of the server is the same to the
        database): the charge stays pending with no YooKassa id; the poller
        finds it in YooKassa's list of payments by our payment id and settles
        it once.  No second payment is made."""
        user = new_user()
        self.buy(user)
        self.ctl("POST", "notifications", {"mode": "drop"})
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "delay": 2.5, "path": "/v3/payments", "method": "POST"})
        self.renew()
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual((status, yid), ("pending", None))
        wait_for(lambda: len(self.made(pid)) == 1, what="the stand-in to make the payment anyway")
        self.renew()                                        # the job does not charge again
        self.assertEqual(len(self.charges(user)), 1)

        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        made = self.ctl("GET", "payments/%s" % yid)
        self.assertEqual(made["metadata"]["payment_id"], str(pid))
        self.assertEqual(self.paid_events(pid), [("poll",)])
        lists = [r for r in self.ctl("GET", "requests") if r["method"] == "GET" and r["path"] == "/v3/payments"]
        self.assertTrue(lists)
        query = urllib.parse.parse_qs(lists[-1]["query"])
        self.assertEqual(query["limit"], ["100"])
        self.assertEqual(query["created_at.gte"], [(self.clock - datetime.timedelta(minutes=5, hours=1))
                                                   .strftime("%Y-%m-%dT%H:%M:%S.000Z")])
        self.set_clock(self.clock + datetime.timedelta(minutes=30))
        self.poll()
        self.assertEqual(len(self.made(pid)), 1)

    def test_h_the_lost_answer_settled_by_the_notification(self):
        """The same lost answer, with YooKassa's notification delivered: it
        names a payment of ours we have no YooKassa id for; read back, its
        metadata names our pending charge, which it settles."""
        user = new_user()
        self.buy(user)
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "delay": 2.5, "path": "/v3/payments", "method": "POST"})
        self.renew()
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual((status, yid), ("pending", None))
        wait_for(lambda: self.status(pid) == "paid", 20, what="the notification to settle the charge")
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual(self.ctl("GET", "payments/%s" % yid)["metadata"]["payment_id"], str(pid))
        self.assertEqual(self.paid_events(pid), [("webhook",)])
        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        self.assertEqual(len(self.made(pid)), 1)

    def test_i_no_answer_yet_the_poller_charges_under_the_same_key(self):
        """YooKassa answers 202 (still processing: ask again with the same
        key) and has made nothing: the poller finds no payment in the list
        and charges under the same Idempotence-Key, once."""
        user = new_user()
        self.buy(user)
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "status": 202, "path": "/v3/payments", "method": "POST"})
        self.renew()
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual((status, yid, len(self.made(pid))), ("pending", None, 0))
        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        creates = self.creates(pid)
        self.assertEqual([c["status"] for c in creates], [202, 200])
        self.assertEqual(len({c["idempotence_key"] for c in creates}), 1)
        self.assertEqual(len(self.made(pid)), 1)

    def test_j_an_automatic_charge_refunded_inside_the_window(self):
        """A refund of an automatic charge works like any refund: at YooKassa,
        of the charge's payment, and the renewed month is taken off."""
        user = new_user()
        self.buy(user)
        end = self.sub(user)["ends_at"]
        self.at_next_charge(user)
        self.renew()
        [(pid, _, status, _, yid, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        self.assertGreater(self.sub(user)["ends_at"], end)
        self.set_clock(self.clock + datetime.timedelta(minutes=10))
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (user, pid)), "refunded")
        [refund] = [r for r in self.ctl("GET", "requests") if r["path"] == "/v3/refunds"
                    and r["body"]["payment_id"] == yid]
        self.assertEqual(refund["body"]["amount"], {"value": "299.50", "currency": "RUB"})
        self.assertEqual(self.sub(user)["ends_at"], end)


if __name__ == "__main__":
    unittest.main()
