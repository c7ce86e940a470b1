"""End-to-end: auto-renewal against the Stripe stand-in on a real cluster.

A buyer opts in at checkout (the stand-in saves the card under a Customer),
billing.run_renewals charges the saved card off-session (PaymentIntents with
Stripe's test cards deciding the outcome), declines are retried and then
given up, the bank's authentication goes through the hosted page, and the
races and crashes around the charge settle it exactly once.  Webhooks go from
the stand-in to a receiver in this process that hands them to
billing.stripe_webhook, as PostgREST does; time moves with billing.test_clock
and the stand-in's clock together."""

import datetime
import os
import threading
import unittest
import urllib.error
import urllib.parse
import urllib.request

import psycopg2

from renewal_helpers import UTC, RenewalHelpers
from harness import Cluster, PYTHON, SRC, free_port, new_user, serve_hooks, spawn, wait_for, wait_port

SECRET_KEY = "sk_test_renew"
WEBHOOK_SECRET = "whsec_renew"

GOOD = "4242424242424242"
INSUFFICIENT = "4000000000009995"
ALWAYS_DECLINES = "4000000000000341"
AUTHENTICATE = "4000002760003184"


class RenewalE2E(RenewalHelpers, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.clock = None
        cls.hooks = []
        cls.hook, hook_url = serve_hooks(cls.receive_webhook)
        cls.stripe_port = free_port()
        cls.stripe = spawn([PYTHON, os.path.join(SRC, "test", "standins", "stripe_server.py"),
                            "--port", str(cls.stripe_port), "--secret-key", SECRET_KEY,
                            "--webhook-secret", WEBHOOK_SECRET, "--webhook-retries", "3",
                            "--webhook-url", hook_url],
                           "renewal_standin.log")
        wait_port(cls.stripe_port)
        cls.base = "http://127.0.0.1:%d" % cls.stripe_port
        cls.cluster = Cluster("renewals", conf=[
            "billing.stripe_api_base = '%s'" % cls.base,
            "billing.stripe_secret_key = '%s'" % SECRET_KEY,
            "billing.stripe_webhook_secrets = '%s'" % WEBHOOK_SECRET,
            "billing.stripe_success_url = 'https://cinema.example/paid'",
            "billing.stripe_timeout = 1500",
            "billing.stripe_connect_timeout = 500",
            "billing.stripe_poll_schedule = ''",
            "billing.renewal_schedule = ''",
            "billing.expiry_schedule = ''",
            "billing.invoice_expiry_schedule = ''",
        ])
        cls.cluster.query("SELECT billing.create_tariff('prime', 'Prime films', 29900, 'RUB')")

    @classmethod
    def tearDownClass(cls):
        cls.hook.shutdown()

    @classmethod
    def receive_webhook(cls, body, headers):
        """Stripe's webhook endpoint: raw body + header to the SQL function, at
        the test's billing time (the signature's tolerance counts from it)."""
        try:
            cls.cluster.query("SELECT billing.stripe_webhook(%s::json, %s)",
                              (body.decode(), headers.get("Stripe-Signature")), cls.clock)
            cls.hooks.append("ok")
        except psycopg2.Error as e:
            cls.hooks.append(e.pgerror)
            return 400
        return 200

    def setUp(self):
        self.ctl("POST", "faults", {"clear": True})
        self.set_clock(datetime.datetime(2027, 1, 31, 10, 0, tzinfo=UTC))

    # ---- helpers -----------------------------------------------------------
    def buy(self, user, months=1, card=GOOD):
        """Invoice, checkout with auto_renew, pay with `card` on the stand-in,
        come back (confirm_payment), as a buyer does.  Returns the payment."""
        pid = self.one("SELECT billing.create_invoice(%s, 'prime', %s)", (user, months))
        self.one("SELECT billing.checkout(%s, %s, auto_renew => true)", (user, pid))
        session = self.one("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))
        self.ctl("POST", "sessions/%s/complete" % session, {"payment_status": "paid", "card": card})
        self.assertEqual(self.one("SELECT billing.confirm_payment(%s, %s)", (user, pid)), "paid")
        return pid

    def intents(self, payment_id):
        """The PaymentIntents the stand-in made for our payment."""
        return [r for r in self.ctl("GET", "requests")
                if r.get("method") == "POST" and r.get("path") == "/v1/payment_intents"
                and (r.get("params") or {}).get("metadata", {}).get("payment_id") == str(payment_id)
                and r.get("status") in (200, 402) and not r.get("replayed")]

    def card(self, user, number):
        """The buyer's saved card now behaves as another test card."""
        pm = self.sub(user)["renew_method"]
        self.assertTrue(pm)
        self.ctl("POST", "payment_methods/%s/card" % pm, {"number": number})

    # ---- the buyer's side --------------------------------------------------
    def test_a_opt_in_and_a_year_of_monthly_renewals(self):
        """Opted in at checkout on Jan 31; the job charges the saved card
        twelve times, each term going on from the last one's end and back
        to the 31st whenever the month has one; one charge per month."""
        user = new_user()
        self.buy(user)
        s = self.sub(user)
        self.assertEqual((s["auto_renew"], s["reason"], s["card_brand"], s["card_last4"]),
                         (True, "checkout", "visa", "4242"))
        self.assertTrue(s["renew_method"].startswith("pm_"))
        info = self.one("SELECT billing.payment_info(%s)", (user,))["subscriptions"][0]
        self.assertEqual((info["auto_renew"], info["next_charge_total"], info["currency"],
                          info["card_last4"]), (True, 29900, "RUB", "4242"))
        self.assertEqual(info["next_charge_at"], "2027-02-27T10:00:00+00:00")

        ends = []
        for month in range(12):
            self.at_next_charge(user)
            self.renew()
            self.assertEqual(self.charges(user)[-1][2], "paid")
            self.renew()                                    # the same run again: nothing
            self.assertEqual(len(self.charges(user)), month + 1)
            ends.append(self.sub(user)["ends_at"].strftime("%m-%d"))
        self.assertEqual(ends, ["03-31", "04-30", "05-31", "06-30", "07-31", "08-31",
                                "09-30", "10-31", "11-30", "12-31", "01-31", "02-29"])
        charges = self.charges(user)
        self.assertEqual([(c[1], c[2], c[3]) for c in charges], [(1, "paid", 29900)] * 12)
        for c in charges:
            self.assertEqual(len(self.intents(c[0])), 1)
        # Each renewal is a receipt ("subscribed") to the buyer.
        self.assertEqual(len(self.notes(user, 1)), 13)

    def test_b_declined_then_recovered_on_the_second_retry(self):
        user = new_user()
        self.buy(user)
        end = self.sub(user)["ends_at"]
        self.card(user, INSUFFICIENT)
        self.at_next_charge(user)
        self.renew()
        self.assertEqual(self.charges(user)[-1][2], "failed")
        s = self.sub(user)
        self.assertEqual((s["status"], s["auto_renew"], s["failures"]), ("active", True, 1))
        self.assertEqual(s["renew_at"], self.clock + datetime.timedelta(days=1))
        detail = self.one("SELECT detail FROM billing.payment_events e JOIN billing.payments p "
                          "ON p.id = e.payment_id WHERE p.user_id = %s AND e.to_status = 'failed'", (user,))
        self.assertEqual((detail["failure_code"], detail["decline_code"]), ("card_declined", "insufficient_funds"))
        failed = self.notes(user, 7)
        self.assertEqual(len(failed), 1)
        self.assertEqual((failed[0]["amount"], failed[0]["currency"]), (29900, "RUB"))
        self.assertEqual(failed[0]["charge_at"], s["renew_at"].strftime("%Y-%m-%dT%H:%M:%S+00:00"))
        self.renew()                                        # not before the retry
        self.assertEqual(len(self.charges(user)), 1)

        self.at_next_charge(user)                           # retry 1: declined again
        self.renew()
        self.assertEqual(self.charges(user)[-1][2], "failed")
        self.card(user, GOOD)                               # the buyer topped up
        self.at_next_charge(user)                           # retry 2: paid
        self.renew()
        s = self.sub(user)
        self.assertEqual((s["status"], s["auto_renew"], s["failures"]), ("active", True, 0))
        self.assertEqual((end.strftime("%m-%d"), s["ends_at"].strftime("%m-%d")), ("02-28", "03-31"))
        self.assertEqual([(c[1], c[2]) for c in self.charges(user)],
                         [(1, "failed"), (2, "failed"), (3, "paid")])
        # What the admin panel shows of them: the attempts of that end of term
        # with the bank's reasons, and the end of term counted as recovered.
        self.assertEqual(self.q("SELECT renewal_attempt, status, failure_code, decline_code "
                                "FROM billing.admin_renewal_charges WHERE user_id = %s AND renewal_of = %s "
                                "ORDER BY renewal_attempt", (user, end)),
                         [(1, "failed", "card_declined", "insufficient_funds"),
                          (2, "failed", "card_declined", "insufficient_funds"),
                          (3, "paid", None, None)])

    def test_c_declined_on_every_retry_then_grace_and_block(self):
        user = new_user()
        self.buy(user, card=ALWAYS_DECLINES)
        for attempt in range(3):
            self.at_next_charge(user)
            self.renew()
            self.assertEqual([c[2] for c in self.charges(user)], ["failed"] * (attempt + 1))
        s = self.sub(user)
        self.assertEqual((s["auto_renew"], s["reason"], s["renew_at"], s["failures"]),
                         (False, "charge_failed", None, 3))
        self.assertNotIn("charge_at", self.notes(user, 7)[-1])    # no retry is left
        self.assertTrue(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        self.set_clock(self.one("SELECT grace_ends_at FROM billing.subscriptions WHERE user_id = %s",
                                (user,)))
        self.one("SELECT billing.run_expiry()")
        self.assertEqual(self.sub(user)["status"], "blocked")
        self.assertFalse(self.one("SELECT billing.has_access(%s, 'prime')", (user,)))
        self.renew()
        self.assertEqual(len(self.charges(user)), 3)

    def test_d_authentication_required_then_completed_through_the_link(self):
        """The bank asks for the buyer: no retry; the buyer is sent the
        stand-in's hosted page, completes it there, and the webhook settles
        this very payment."""
        user = new_user()
        self.buy(user, card=AUTHENTICATE)
        end = self.sub(user)["ends_at"]
        self.at_next_charge(user)
        self.renew()
        [(pid, attempt, status, total, intent, url)] = self.charges(user)
        self.assertEqual(status, "pending")
        self.assertTrue(url.startswith(self.base + "/authenticate/"), url)
        self.assertIsNone(self.sub(user)["renew_at"])       # no retry while the buyer is asked
        [note] = self.notes(user, 8)
        self.assertEqual((note["action_url"], note["amount"]), (url, 29900))
        info = self.one("SELECT billing.payment_info(%s)", (user,))
        self.assertEqual([p["action_url"] for p in info["payments"] if p["renewal"]], [url])
        self.set_clock(self.clock + datetime.timedelta(hours=6))
        self.renew()
        self.assertEqual(len(self.charges(user)), 1)
        self.poll()                                         # the poller does not ask twice
        self.assertEqual(len(self.notes(user, 8)), 1)

        # The buyer opens the link and completes the payment, as a person would.
        with urllib.request.urlopen(url, timeout=10) as r:
            self.assertIn(b"Complete", r.read())
        form = urllib.parse.urlencode({"action": "complete"}).encode()
        req = urllib.request.Request(url, data=form, method="POST")
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.URLError:
            pass        # the redirect goes to the cinema's page, not served here
        wait_for(lambda: self.one("SELECT status FROM billing.payments WHERE id = %s", (pid,)) == "paid",
                 20, what="the webhook to settle the authenticated charge")
        s = self.sub(user)
        self.assertEqual((s["status"], s["auto_renew"]), ("active", True))
        self.assertGreater(s["ends_at"], end)
        self.assertEqual(len(self.intents(pid)), 1)

    def test_e_opt_out_then_nothing_is_charged(self):
        user = new_user()
        self.buy(user)
        end = self.sub(user)["ends_at"]
        state = self.one("SELECT billing.set_auto_renew(%s, 'prime', false)", (user,))
        self.assertEqual((state["auto_renew"], state["next_charge_at"]), (False, None))
        self.set_clock(end - datetime.timedelta(hours=1))
        self.renew()
        self.assertEqual(self.charges(user), [])
        self.assertEqual(self.sub(user)["ends_at"], end)    # the paid term is kept
        # On again inside the lead time: charged at the next run.
        self.one("SELECT billing.set_auto_renew(%s, 'prime', true)", (user,))
        self.renew()
        self.assertEqual([c[2] for c in self.charges(user)], ["paid"])

    # ---- races and crashes --------------------------------------------------
    def test_f_switch_off_while_a_charge_is_in_flight(self):
        """The buyer switches off while Stripe is still answering the charge:
        the switch waits for the charge (it holds the subscription) and then
        stops the next one; one charge, settled once."""
        user = new_user()
        self.buy(user)
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "delay": 1.0, "path": "/v1/payment_intents"})
        job = {}
        t = threading.Thread(target=lambda: job.update(r=self.renew()))
        t.start()
        wait_for(lambda: self.one("SELECT count(*) FROM billing.payments WHERE user_id = %s "
                                  "AND renewal_of IS NOT NULL", (user,)) == 1, what="the invoice")
        end = self.sub(user)["ends_at"]
        state = self.one("SELECT billing.set_auto_renew(%s, 'prime', false)", (user,))
        t.join(30)
        self.assertIn("r", job)
        self.assertFalse(state["auto_renew"])
        # It waited for the charge: what it answered already has the new end.
        self.assertGreater(datetime.datetime.fromisoformat(state["ends_at"]), end)
        [(pid, _, status, _, _, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        self.assertEqual(len(self.intents(pid)), 1)
        self.set_clock(self.sub(user)["ends_at"] - datetime.timedelta(hours=1))
        self.renew()
        self.assertEqual(len(self.charges(user)), 1)

    def test_g_charge_made_but_its_answer_lost_then_the_poller_settles_it_once(self):
        """Stripe takes the money but the answer never reaches us (here: it
        comes after our timeout; a crash of the server is the same to the
        database): the payment stays pending with no intent recorded; the
        poller finds the intent by listing the customer's, and settles it
        once.  No second charge is made."""
        user = new_user()
        self.buy(user)
        self.ctl("POST", "webhooks", {"mode": "drop"})
        self.addCleanup(self.ctl, "POST", "webhooks", {"mode": "deliver"})
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "delay": 2.5, "path": "/v1/payment_intents"})
        self.renew()
        [(pid, _, status, _, intent, _)] = self.charges(user)
        self.assertEqual((status, intent), ("pending", None))
        wait_for(lambda: len(self.intents(pid)) == 1, what="the stand-in to make the charge anyway")
        self.renew()                                        # the job does not charge again
        self.assertEqual(len(self.charges(user)), 1)

        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        [(pid, _, status, _, intent, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        self.assertTrue(intent.startswith("pi_"))
        self.assertEqual(self.one("SELECT count(*) FROM billing.payment_events WHERE payment_id = %s "
                                  "AND to_status = 'paid'", (pid,)), 1)
        self.set_clock(self.clock + datetime.timedelta(minutes=30))
        self.poll()
        self.assertEqual(len(self.intents(pid)), 1)

    def test_g_server_crash_while_stripe_takes_the_money(self):
        """The server is killed (immediate stop) while Stripe is still
        answering the charge, which it then makes: after the restart the
        committed invoice is pending with no intent; the poller finds the
        intent and settles it once, and nothing is charged twice."""
        user = new_user()
        self.buy(user)
        self.ctl("POST", "webhooks", {"mode": "drop"})
        self.addCleanup(self.ctl, "POST", "webhooks", {"mode": "deliver"})
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "delay": 2.0, "path": "/v1/payment_intents"})
        job = threading.Thread(target=lambda: self._renew_ignoring_errors())
        job.start()
        wait_for(lambda: any(r.get("path") == "/v1/payment_intents" and r.get("fault") and
                             (r.get("params") or {}).get("metadata", {}).get("user_id") == str(user)
                             for r in self.ctl("GET", "requests")), what="the charge to reach Stripe")
        self.cluster.crash()
        job.join(30)
        self.cluster.start()
        [(pid, _, status, _, intent, _)] = self.charges(user)
        self.assertEqual((status, intent), ("pending", None))
        wait_for(lambda: len(self.intents(pid)) == 1, what="Stripe to finish the charge")
        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        [(pid, _, status, _, intent, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        self.renew()
        self.poll()
        self.assertEqual(len(self.charges(user)), 1)
        self.assertEqual(len(self.intents(pid)), 1)

    def _renew_ignoring_errors(self):
        try:
            self.renew()
        except psycopg2.Error:
            pass            # the server went away under it

    def test_h_crash_before_the_charge_was_sent_the_poller_makes_it(self):
        """The server dies after the invoice committed and before the charge
        reached Stripe: the poller finds no intent at Stripe and charges
        under the same key, once."""
        user = new_user()
        self.buy(user)
        self.at_next_charge(user)
        # Stripe unreachable at the charge: the invoice is committed, the
        # charge is not made (the same state a crash before the call leaves).
        self.ctl("POST", "faults", {"count": 1, "close": True, "path": "/v1/payment_intents"})
        self.renew()
        [(pid, _, status, _, intent, _)] = self.charges(user)
        self.assertEqual((status, intent, len(self.intents(pid))), ("pending", None, 0))
        self.cluster.crash()
        self.cluster.start()
        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        [(pid, _, status, _, _, _)] = self.charges(user)
        self.assertEqual(status, "paid")
        self.assertEqual(len(self.intents(pid)), 1)

    def test_i_switched_off_after_a_crash_before_the_charge_nothing_is_charged(self):
        user = new_user()
        self.buy(user)
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "close": True, "path": "/v1/payment_intents"})
        self.renew()
        self.assertEqual([c[2] for c in self.charges(user)], ["pending"])
        self.one("SELECT billing.set_auto_renew(%s, 'prime', false)", (user,))
        self.set_clock(self.clock + datetime.timedelta(minutes=5))
        self.poll()
        [(pid, _, status, _, _, _)] = self.charges(user)
        self.assertEqual(status, "canceled")
        self.assertEqual(len(self.intents(pid)), 0)

    def test_j_the_buyer_cancels_a_charge_waiting_for_authentication(self):
        """Canceling it cancels the PaymentIntent at Stripe (its page can no
        longer take the money) and ends auto-renewal (not_completed)."""
        user = new_user()
        self.buy(user, card=AUTHENTICATE)
        self.at_next_charge(user)
        self.renew()
        [(pid, _, status, _, intent, url)] = self.charges(user)
        self.assertEqual(status, "pending")
        self.assertEqual(self.one("SELECT billing.cancel_payment(%s, %s)", (user, pid)), "canceled")
        self.assertEqual(self.ctl("GET", "payment_intents/%s" % intent)["status"], "canceled")
        s = self.sub(user)
        self.assertEqual((s["auto_renew"], s["reason"]), (False, "not_completed"))

    def test_k_a_decline_whose_answer_was_lost_is_settled_by_the_webhook(self):
        """The charge is declined but its answer never reaches the job; the
        signed payment_intent.payment_failed event finds the payment by the
        ids we gave Stripe, settles it failed and schedules the retry."""
        user = new_user()
        self.buy(user)
        self.card(user, INSUFFICIENT)
        self.at_next_charge(user)
        self.ctl("POST", "faults", {"count": 1, "delay": 2.5, "path": "/v1/payment_intents"})
        self.renew()
        [(pid, _, status, _, intent, _)] = self.charges(user)
        self.assertEqual((status, intent), ("pending", None))
        wait_for(lambda: self.one("SELECT status FROM billing.payments WHERE id = %s", (pid,)) == "failed",
                 20, what="the payment_failed webhook")
        self.assertTrue(self.one("SELECT provider_session_id FROM billing.payments WHERE id = %s",
                                 (pid,)).startswith("pi_"))
        self.assertEqual(self.one("SELECT source FROM billing.payment_events WHERE payment_id = %s "
                                  "AND to_status = 'failed'", (pid,)), "webhook")
        s = self.sub(user)
        self.assertEqual((s["auto_renew"], s["failures"]), (True, 1))
        self.assertEqual(s["renew_at"], self.clock + datetime.timedelta(days=1))


if __name__ == "__main__":
    unittest.main()
