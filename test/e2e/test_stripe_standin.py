"""The Stripe stand-in (test/standins/stripe_server.py) on its own, over HTTP:
customers, saved cards, off-session PaymentIntents and what each of Stripe's
test cards makes them do, the 402 card errors, Idempotency-Key replays, the
hosted authentication page, and the signed webhooks it sends.  The extension
is not involved: these tests hold the stand-in to Stripe's documented
behaviour, so that the extension's tests against it mean something."""

import hashlib
import hmac
import json
import os
import unittest
import urllib.error
import urllib.parse
import urllib.request

from harness import PYTHON, SRC, free_port, serve_hooks, spawn, wait_for, wait_port

SECRET_KEY = "sk_test_standin_e2e"
WEBHOOK_SECRET = "whsec_standin_e2e"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class StripeStandIn(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.received = []       # (body, Stripe-Signature) of each webhook
        cls.hook, hook_url = serve_hooks(
            lambda body, headers: cls.received.append((body, headers.get("Stripe-Signature"))) or 200)
        cls.port = free_port()
        cls.proc = spawn([PYTHON, os.path.join(SRC, "test", "standins", "stripe_server.py"),
                          "--port", str(cls.port), "--webhook-retries", "0",
                          "--webhook-url", hook_url],
                         "stripe_standin_alone.log",
                         env={"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET})
        wait_port(cls.port)
        cls.base = "http://127.0.0.1:%d" % cls.port
        cls.opener = urllib.request.build_opener(NoRedirect)

    @classmethod
    def tearDownClass(cls):
        cls.hook.shutdown()
        cls.proc.terminate()
        cls.proc.wait(10)

    # ---- helpers -----------------------------------------------------------
    def http(self, method, path, data=None, headers=None):
        """(status, headers, body bytes) of one request; no redirects followed."""
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def api(self, method, path, params=(), key=None, expect=None):
        """A Stripe API call with form parameters (a list of pairs); returns
        (status, JSON body, headers).  expect: the status it must have."""
        headers = {"Authorization": "Bearer " + SECRET_KEY}
        if key:
            headers["Idempotency-Key"] = key
        form = urllib.parse.urlencode(list(params))
        if method == "GET":
            status, h, body = self.http("GET", path + ("?" + form if form else ""), None, headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            status, h, body = self.http(method, path, form.encode(), headers)
        obj = json.loads(body)
        if expect is not None:
            self.assertEqual(status, expect, obj)
        return status, obj, h

    def ctl(self, method, path, body=None, expect=200):
        data = json.dumps(body).encode() if body is not None else None
        status, _, out = self.http(method, "/_control/" + path, data)
        self.assertEqual(status, expect, out)
        return json.loads(out)

    def setUp(self):
        self.ctl("POST", "reset", {})

    def customer(self, email="buyer@cinema.example"):
        return self.api("POST", "/v1/customers", [("email", email), ("metadata[user_id]", "u1")],
                        expect=200)[1]["id"]

    def saved_card(self, customer, card, sfu="off_session"):
        """The payment method that a paid checkout with `card` saved."""
        params = [("mode", "payment"), ("success_url", "https://cinema.example/ok"),
                  ("customer", customer),
                  ("line_items[0][price_data][currency]", "usd"),
                  ("line_items[0][price_data][unit_amount]", "1000"),
                  ("line_items[0][price_data][product_data][name]", "Prime"),
                  ("line_items[0][quantity]", "1")]
        if sfu:
            params.append(("payment_intent_data[setup_future_usage]", sfu))
        s = self.api("POST", "/v1/checkout/sessions", params, expect=200)[1]
        self.ctl("POST", "sessions/%s/complete" % s["id"], {"card": card})
        s = self.api("GET", "/v1/checkout/sessions/" + s["id"],
                     [("expand[]", "payment_intent.latest_charge"),
                      ("expand[]", "payment_intent.payment_method")], expect=200)[1]
        return s

    def charge(self, customer, pm, key=None, off_session=True, extra=()):
        params = [("amount", "2990"), ("currency", "usd"), ("customer", customer),
                  ("payment_method", pm), ("confirm", "true"),
                  ("metadata[subscription]", "sub1"), ("description", "Renewal"),
                  ("expand[]", "latest_charge")]
        if off_session:
            params.append(("off_session", "true"))
        return self.api("POST", "/v1/payment_intents", params + list(extra), key=key)

    def events(self, obj_id=None):
        return [e for e in self.ctl("GET", "events")
                if obj_id is None or e["data"]["object"]["id"] == obj_id]

    def types(self, obj_id):
        return [e["type"] for e in self.events(obj_id)]

    # ---- customers and checkout --------------------------------------------
    def test_customer_create_and_retrieve(self):
        cus = self.customer("a@cinema.example")
        self.assertTrue(cus.startswith("cus_"), cus)
        c = self.api("GET", "/v1/customers/" + cus, expect=200)[1]
        self.assertEqual((c["object"], c["email"], c["metadata"]),
                         ("customer", "a@cinema.example", {"user_id": "u1"}))
        self.assertEqual(self.ctl("GET", "customers/" + cus)["id"], cus)
        status, err, _ = self.api("GET", "/v1/customers/cus_nope")
        self.assertEqual((status, err["error"]["code"]), (404, "resource_missing"))
        self.assertEqual(self.types(cus), ["customer.created"])

    def test_checkout_with_a_customer_saves_the_card(self):
        cus = self.customer()
        s = self.saved_card(cus, "4000000000009995")
        self.assertEqual((s["status"], s["payment_status"], s["customer"]), ("complete", "paid", cus))
        pi = s["payment_intent"]
        pm = pi["payment_method"]
        self.assertEqual((pi["status"], pi["customer"], pi["setup_future_usage"]),
                         ("succeeded", cus, "off_session"))
        self.assertEqual((pm["object"], pm["type"], pm["customer"]), ("payment_method", "card", cus))
        self.assertEqual({k: pm["card"][k] for k in ("brand", "last4", "funding")},
                         {"brand": "visa", "last4": "9995", "funding": "credit"})
        self.assertGreater(pm["card"]["exp_year"], 2025)
        ch = pi["latest_charge"]
        self.assertEqual((ch["status"], ch["payment_method"]), ("succeeded", pm["id"]))
        self.assertEqual(ch["payment_method_details"]["type"], "card")
        self.assertEqual((ch["payment_method_details"]["card"]["brand"],
                          ch["payment_method_details"]["card"]["last4"]), ("visa", "9995"))
        got = self.api("GET", "/v1/payment_methods/" + pm["id"], expect=200)[1]
        self.assertEqual(got, pm)
        self.assertIn("payment_method.attached", self.types(pm["id"]))
        # The saved card declines an off-session charge: the card decides later charges.
        status, err, _ = self.charge(cus, pm["id"])
        self.assertEqual((status, err["error"]["decline_code"]), (402, "insufficient_funds"))

    def test_a_delayed_checkout_payment_saves_the_card_once_it_succeeds(self):
        cus = self.customer()
        s = self.api("POST", "/v1/checkout/sessions", [
            ("mode", "payment"), ("success_url", "https://cinema.example/ok"), ("customer", cus),
            ("payment_intent_data[setup_future_usage]", "off_session"),
            ("line_items[0][price_data][currency]", "usd"),
            ("line_items[0][price_data][unit_amount]", "1000"),
            ("line_items[0][price_data][product_data][name]", "Prime"),
            ("line_items[0][quantity]", "1")], expect=200)[1]
        self.ctl("POST", "sessions/%s/complete" % s["id"],
                 {"payment_status": "unpaid", "card": "5555555555554444"})
        methods = lambda: self.api("GET", "/v1/payment_methods", [("customer", cus)],  # noqa: E731
                                   expect=200)[1]["data"]
        self.assertEqual(methods(), [])
        self.ctl("POST", "sessions/%s/async" % s["id"], {"result": "succeeded"})
        self.assertEqual([m["card"]["last4"] for m in methods()], ["4444"])

    def test_checkout_refuses_an_unknown_customer_and_bad_setup_future_usage(self):
        base = [("mode", "payment"), ("success_url", "https://cinema.example/ok"),
                ("line_items[0][price_data][currency]", "usd"),
                ("line_items[0][price_data][unit_amount]", "1000"),
                ("line_items[0][price_data][product_data][name]", "Prime"),
                ("line_items[0][quantity]", "1")]
        status, err, _ = self.api("POST", "/v1/checkout/sessions", base + [("customer", "cus_nope")])
        self.assertEqual((status, err["error"]["type"], err["error"]["code"], err["error"]["param"]),
                         (400, "invalid_request_error", "resource_missing", "customer"))
        status, err, _ = self.api("POST", "/v1/checkout/sessions",
                                  base + [("payment_intent_data[setup_future_usage]", "always")])
        self.assertEqual((status, err["error"]["param"]),
                         (400, "payment_intent_data[setup_future_usage]"))
        # Without a customer, saving the card makes one (Checkout's customer_creation).
        s = self.api("POST", "/v1/checkout/sessions",
                     base + [("payment_intent_data[setup_future_usage]", "off_session"),
                             ("customer_email", "new@cinema.example")], expect=200)[1]
        self.assertIsNone(s["customer"])
        s = self.ctl("POST", "sessions/%s/complete" % s["id"], {})
        self.assertTrue(s["customer"].startswith("cus_"))
        self.assertEqual(self.ctl("GET", "customers/" + s["customer"])["email"], "new@cinema.example")

    def test_card_not_saved_without_setup_future_usage(self):
        cus = self.customer()
        s = self.saved_card(cus, "4242424242424242", sfu=None)
        pm = s["payment_intent"]["payment_method"]
        self.assertIsNone(pm["customer"])
        self.assertIsNone(s["payment_intent"]["setup_future_usage"])
        self.assertEqual(self.api("GET", "/v1/payment_methods", [("customer", cus), ("type", "card")],
                                  expect=200)[1]["data"], [])
        # Stripe refuses to use a method again that was used without a customer.
        status, err, _ = self.charge(cus, pm["id"])
        self.assertEqual((status, err["error"]["param"]), (400, "payment_method"))
        self.assertEqual(self.ctl("GET", "stats")["charges_failed"], 0)

    def test_hosted_checkout_page_offers_the_test_cards(self):
        cus = self.customer()
        s = self.api("POST", "/v1/checkout/sessions", [
            ("mode", "payment"), ("success_url", "https://cinema.example/ok?s={CHECKOUT_SESSION_ID}"),
            ("customer", cus), ("payment_intent_data[setup_future_usage]", "off_session"),
            ("line_items[0][price_data][currency]", "usd"),
            ("line_items[0][price_data][unit_amount]", "1000"),
            ("line_items[0][price_data][product_data][name]", "Prime"),
            ("line_items[0][quantity]", "1")], expect=200)[1]
        status, _, page = self.http("GET", "/pay/" + s["id"])
        self.assertEqual(status, 200)
        self.assertIn(b"<option value=4242424242424242 selected>", page)
        self.assertIn(b"4000 0027 6000 3184", page)
        status, h, _ = self.http("POST", "/pay/" + s["id"], b"action=pay&card=5555555555554444")
        self.assertEqual((status, h["Location"]), (303, "https://cinema.example/ok?s=" + s["id"]))
        methods = self.api("GET", "/v1/payment_methods", [("customer", cus), ("type", "card")],
                           expect=200)[1]["data"]
        self.assertEqual([(m["card"]["brand"], m["card"]["last4"]) for m in methods],
                         [("mastercard", "4444")])

    # ---- the cards -------------------------------------------------------------
    def test_each_test_card_off_session(self):
        # card or test PaymentMethod -> (HTTP status, code, decline_code)
        cases = {
            "4242424242424242": (200, None, None),
            "5555555555554444": (200, None, None),
            "4000000000000002": (402, "card_declined", "generic_decline"),
            "4000000000009995": (402, "card_declined", "insufficient_funds"),
            "4000000000000069": (402, "expired_card", "expired_card"),
            "4000000000000341": (402, "card_declined", "generic_decline"),
            "4000002760003184": (402, "authentication_required", "authentication_required"),
            "pm_card_visa": (200, None, None),
            "pm_card_chargeDeclined": (402, "card_declined", "generic_decline"),
            "pm_card_chargeDeclinedInsufficientFunds": (402, "card_declined", "insufficient_funds"),
            "pm_card_authenticationRequired": (402, "authentication_required", "authentication_required"),
        }
        messages = {"generic_decline": "Your card was declined.",
                    "insufficient_funds": "Your card has insufficient funds.",
                    "expired_card": "Your card has expired.",
                    "authentication_required":
                        "Your card was declined. This transaction requires authentication."}
        for card, (want_status, want_code, want_decline) in cases.items():
            with self.subTest(card=card):
                cus = self.customer()
                if card.startswith("pm_"):
                    pm = card
                else:
                    pm = self.saved_card(cus, card)["payment_intent"]["payment_method"]["id"]
                status, body, _ = self.charge(cus, pm)
                self.assertEqual(status, want_status, body)
                if status == 200:
                    self.assertEqual((body["status"], body["amount_received"], body["customer"],
                                      body["payment_method"]), ("succeeded", 2990, cus, pm))
                    ch = body["latest_charge"]     # expanded
                    self.assertEqual((ch["status"], ch["paid"], ch["payment_method"], ch["amount"]),
                                     ("succeeded", True, pm, 2990))
                    self.assertEqual(self.types(body["id"]),
                                     ["payment_intent.created", "payment_intent.succeeded"])
                    self.assertEqual(self.types(ch["id"]), ["charge.succeeded"])
                    continue
                err = body["error"]
                self.assertEqual((err["type"], err["code"], err["decline_code"], err["message"]),
                                 ("card_error", want_code, want_decline, messages[want_decline]))
                self.assertEqual(err["payment_method"]["id"], pm)
                pi = err["payment_intent"]
                self.assertEqual((pi["status"], pi["customer"], pi["payment_method"]),
                                 ("requires_payment_method", cus, None))
                self.assertEqual((pi["last_payment_error"]["code"],
                                  pi["last_payment_error"]["decline_code"],
                                  pi["last_payment_error"]["payment_method"]["id"]),
                                 (want_code, want_decline, pm))
                # The intent exists at Stripe, as the error showed it.
                got = self.api("GET", "/v1/payment_intents/" + pi["id"],
                               [("expand[]", "latest_charge")], expect=200)[1]
                self.assertEqual(got["status"], "requires_payment_method")
                self.assertEqual(got["last_payment_error"], pi["last_payment_error"])
                if want_code == "authentication_required":
                    self.assertNotIn("charge", err)
                    self.assertIsNone(got["latest_charge"])
                    self.assertEqual(self.types(pi["id"]),
                                     ["payment_intent.created", "payment_intent.payment_failed"])
                else:
                    self.assertEqual(got["latest_charge"]["id"], err["charge"])
                    self.assertEqual((got["latest_charge"]["status"], got["latest_charge"]["paid"],
                                      got["latest_charge"]["failure_code"]),
                                     ("failed", False, want_code))
                    self.assertEqual(self.types(err["charge"]), ["charge.failed"])
                    self.assertEqual(self.types(pi["id"]),
                                     ["payment_intent.created", "payment_intent.payment_failed"])

    def test_a_card_that_starts_to_decline_and_works_again(self):
        cus = self.customer()
        pm = self.saved_card(cus, "4242424242424242")["payment_intent"]["payment_method"]["id"]
        self.assertEqual(self.charge(cus, pm)[0], 200)
        self.assertEqual(self.ctl("POST", "payment_methods/%s/card" % pm,
                                  {"number": "4000000000009995"})["_behaves_as"], "4000000000009995")
        status, first, _ = self.charge(cus, pm, key="renew-1-try-1")
        self.assertEqual((status, first["error"]["decline_code"]), (402, "insufficient_funds"))
        self.assertEqual(self.charge(cus, pm, key="renew-1-try-2")[0], 402)
        self.ctl("POST", "payment_methods/%s/card" % pm, {"number": "4242424242424242"})
        status, pi, _ = self.charge(cus, pm, key="renew-1-try-3")
        self.assertEqual((status, pi["status"]), (200, "succeeded"))
        # The card itself stays what the buyer saved.
        got = self.api("GET", "/v1/payment_methods/" + pm, expect=200)[1]
        self.assertEqual(got["card"]["last4"], "4242")
        self.ctl("POST", "payment_methods/%s/card" % pm, {"number": "1234"}, expect=400)
        self.ctl("POST", "payment_methods/pm_nope/card", {"number": "4242424242424242"}, expect=404)

    # ---- Idempotency-Key -------------------------------------------------------
    def test_a_402_and_a_success_are_replayed_under_their_key(self):
        cus = self.customer()
        before = self.ctl("GET", "stats")
        status, first, h1 = self.charge(cus, "pm_card_chargeDeclined", key="renewal-sub1-term3")
        status2, again, h2 = self.charge(cus, "pm_card_chargeDeclined", key="renewal-sub1-term3")
        self.assertEqual((status, status2), (402, 402))
        self.assertEqual(again, first)
        self.assertIsNone(h1.get("Idempotent-Replayed"))
        self.assertEqual(h2.get("Idempotent-Replayed"), "true")

        status, ok, _ = self.charge(cus, "pm_card_visa", key="renewal-sub1-term4")
        status2, ok2, h = self.charge(cus, "pm_card_visa", key="renewal-sub1-term4")
        self.assertEqual((status, status2, ok2, h.get("Idempotent-Replayed")), (200, 200, ok, "true"))

        after = self.ctl("GET", "stats")
        self.assertEqual(after["payment_intents"] - before["payment_intents"], 2)
        self.assertEqual(after["charges_failed"] - before["charges_failed"], 1)
        self.assertEqual(after["charges_succeeded"] - before["charges_succeeded"], 1)
        self.assertEqual(len([e for e in self.events() if e["type"] == "charge.succeeded"]), 1)

        # The same key with other parameters is refused; nothing new happens.
        status, err, _ = self.charge(cus, "pm_card_visa", key="renewal-sub1-term4",
                                     extra=[("metadata[note]", "other")])
        self.assertEqual((status, err["error"]["type"]), (400, "idempotency_error"))
        self.assertEqual(self.ctl("GET", "stats")["payment_intents"], after["payment_intents"])

    def test_an_injected_fault_is_not_saved_under_the_key(self):
        cus = self.customer()
        self.ctl("POST", "faults", {"count": 1, "status": 503, "path": "/v1/payment_intents"})
        status, _, _ = self.charge(cus, "pm_card_visa", key="renewal-x")
        self.assertEqual(status, 503)
        status, pi, h = self.charge(cus, "pm_card_visa", key="renewal-x")
        self.assertEqual((status, pi["status"], h.get("Idempotent-Replayed")), (200, "succeeded", None))
        self.assertEqual(self.ctl("GET", "stats")["payment_intents"], 1)

    # ---- authentication ---------------------------------------------------------
    def test_on_session_authentication_through_the_hosted_page(self):
        cus = self.customer()
        pm = self.saved_card(cus, "4000002760003184")["payment_intent"]["payment_method"]["id"]
        pi = self.api("POST", "/v1/payment_intents", [
            ("amount", "2990"), ("currency", "usd"), ("customer", cus), ("payment_method", pm)],
            expect=200)[1]
        self.assertEqual(pi["status"], "requires_confirmation")
        pi = self.api("POST", "/v1/payment_intents/%s/confirm" % pi["id"],
                      [("return_url", "https://cinema.example/back?x=1")], expect=200)[1]
        self.assertEqual(pi["status"], "requires_action")
        url = self.base + "/authenticate/" + pi["id"]
        self.assertEqual(pi["next_action"], {"type": "redirect_to_url", "redirect_to_url": {
            "url": url, "return_url": "https://cinema.example/back?x=1"}})
        self.assertEqual(self.types(pi["id"])[-1], "payment_intent.requires_action")

        status, _, page = self.http("GET", "/authenticate/" + pi["id"])
        self.assertEqual(status, 200)
        self.assertIn(b"Complete authentication", page)
        self.assertIn(b"29.90 USD", page)
        status, h, _ = self.http("POST", "/authenticate/" + pi["id"], b"action=complete")
        self.assertEqual(status, 303)
        target = urllib.parse.urlsplit(h["Location"])
        query = urllib.parse.parse_qs(target.query)
        self.assertEqual((target.netloc, target.path, query["x"], query["payment_intent"],
                          query["redirect_status"]),
                         ("cinema.example", "/back", ["1"], [pi["id"]], ["succeeded"]))
        got = self.api("GET", "/v1/payment_intents/" + pi["id"], [("expand[]", "latest_charge")],
                       expect=200)[1]
        self.assertEqual((got["status"], got["next_action"], got["latest_charge"]["status"]),
                         ("succeeded", None, "succeeded"))
        self.assertEqual(self.types(pi["id"]), [
            "payment_intent.created", "payment_intent.requires_action", "payment_intent.succeeded"])
        self.assertEqual(self.types(got["latest_charge"]["id"]), ["charge.succeeded"])
        # Done: confirming again is refused as at Stripe.
        status, err, _ = self.api("POST", "/v1/payment_intents/%s/confirm" % pi["id"])
        self.assertEqual((status, err["error"]["code"]), (400, "payment_intent_unexpected_state"))

    def test_failed_authentication(self):
        cus = self.customer()
        status, pi, _ = self.charge(cus, "pm_card_authenticationRequired", off_session=False,
                                    extra=[("return_url", "https://cinema.example/back")])
        self.assertEqual((status, pi["status"]), (200, "requires_action"))
        pi = self.ctl("POST", "payment_intents/%s/authenticate" % pi["id"], {"result": "failed"})
        self.assertEqual((pi["status"], pi["payment_method"], pi["last_payment_error"]["code"]),
                         ("requires_payment_method", None, "payment_intent_authentication_failure"))
        self.assertEqual(self.types(pi["id"])[-1], "payment_intent.payment_failed")
        self.assertEqual(self.ctl("GET", "payment_intents/" + pi["id"])["status"],
                         "requires_payment_method")
        self.ctl("POST", "payment_intents/%s/authenticate" % pi["id"], {"result": "succeeded"},
                 expect=400)
        # The buyer tries again with another card, on session.
        pi = self.api("POST", "/v1/payment_intents/%s/confirm" % pi["id"],
                      [("payment_method", "pm_card_visa")], expect=200)[1]
        self.assertEqual(pi["status"], "succeeded")

    # ---- other PaymentIntent calls ---------------------------------------------
    def test_cancel(self):
        cus = self.customer()
        pi = self.api("POST", "/v1/payment_intents", [
            ("amount", "500"), ("currency", "eur"), ("customer", cus)], expect=200)[1]
        self.assertEqual(pi["status"], "requires_payment_method")
        pi = self.api("POST", "/v1/payment_intents/%s/cancel" % pi["id"],
                      [("cancellation_reason", "abandoned")], expect=200)[1]
        self.assertEqual((pi["status"], pi["cancellation_reason"]), ("canceled", "abandoned"))
        self.assertIsNotNone(pi["canceled_at"])
        self.assertEqual(self.types(pi["id"]), ["payment_intent.created", "payment_intent.canceled"])
        status, err, _ = self.api("POST", "/v1/payment_intents/%s/cancel" % pi["id"])
        self.assertEqual((status, err["error"]["code"], err["error"]["payment_intent"]["status"]),
                         (400, "payment_intent_unexpected_state", "canceled"))
        ok = self.charge(cus, "pm_card_visa")[1]
        status, err, _ = self.api("POST", "/v1/payment_intents/%s/cancel" % ok["id"])
        self.assertEqual((status, err["error"]["code"]), (400, "payment_intent_unexpected_state"))
        status, err, _ = self.api("POST", "/v1/payment_intents/pi_nope/cancel")
        self.assertEqual((status, err["error"]["code"]), (404, "resource_missing"))

    def test_refund_of_an_off_session_charge(self):
        cus = self.customer()
        pi = self.charge(cus, "pm_card_visa")[1]
        r = self.api("POST", "/v1/refunds", [("payment_intent", pi["id"])], expect=200)[1]
        self.assertEqual((r["amount"], r["status"], r["charge"]), (2990, "succeeded", pi["latest_charge"]["id"]))
        failed = self.charge(cus, "pm_card_chargeDeclined")[1]["error"]["payment_intent"]
        status, err, _ = self.api("POST", "/v1/refunds", [("payment_intent", failed["id"])])
        self.assertEqual((status, err["error"]["code"]), (400, "charge_not_refundable"))

    def test_a_method_must_belong_to_the_customer(self):
        alice, bob = self.customer("alice@cinema.example"), self.customer("bob@cinema.example")
        pm = self.saved_card(alice, "4242424242424242")["payment_intent"]["payment_method"]["id"]
        status, err, _ = self.charge(bob, pm)
        self.assertEqual((status, err["error"]["type"], err["error"]["param"]),
                         (400, "invalid_request_error", "payment_method"))
        status, err, _ = self.api("POST", "/v1/payment_intents", [
            ("amount", "100"), ("currency", "usd"), ("payment_method", pm), ("confirm", "true")])
        self.assertEqual((status, err["error"]["param"]), (400, "customer"))
        status, err, _ = self.charge(alice, "pm_nope")
        self.assertEqual((status, err["error"]["code"], err["error"]["param"]),
                         (400, "resource_missing", "payment_method"))
        status, err, _ = self.charge("cus_nope", "pm_card_visa")
        self.assertEqual((status, err["error"]["code"], err["error"]["param"]),
                         (400, "resource_missing", "customer"))
        self.assertEqual(self.ctl("GET", "stats")["payment_intents"], 0)

    def test_parameter_errors(self):
        cus = self.customer()
        cases = [
            ([("currency", "usd")], "amount"),
            ([("amount", "100")], "currency"),
            ([("amount", "100"), ("currency", "usd"), ("off_session", "true")], "off_session"),
            ([("amount", "100"), ("currency", "usd"), ("confirm", "maybe")], "confirm"),
            ([("amount", "100"), ("currency", "usd"), ("return_url", "https://x.example")], "return_url"),
        ]
        for params, param in cases:
            with self.subTest(param=param):
                status, err, _ = self.api("POST", "/v1/payment_intents", params + [("customer", cus)])
                self.assertEqual((status, err["error"].get("param")), (400, param), err)
        status, err, _ = self.api("POST", "/v1/payment_intents", [
            ("amount", "100"), ("currency", "usd"), ("customer", cus), ("confirm", "true")])
        self.assertEqual((status, err["error"]["code"]), (400, "payment_intent_unexpected_state"))
        self.assertEqual(self.ctl("GET", "stats")["payment_intents"], 0)

    def test_expand_and_list_methods(self):
        cus = self.customer()
        first = self.saved_card(cus, "4242424242424242")["payment_intent"]["payment_method"]["id"]
        second = self.saved_card(cus, "5555555555554444")["payment_intent"]["payment_method"]["id"]
        third = self.saved_card(cus, "4000000000000341")["payment_intent"]["payment_method"]["id"]
        page = self.api("GET", "/v1/payment_methods", [("customer", cus), ("type", "card"),
                                                       ("limit", "2")], expect=200)[1]
        self.assertEqual((page["object"], page["url"], page["has_more"]),
                         ("list", "/v1/payment_methods", True))
        self.assertEqual([m["id"] for m in page["data"]], [third, second])
        rest = self.api("GET", "/v1/payment_methods", [("customer", cus), ("type", "card"),
                                                       ("starting_after", second)], expect=200)[1]
        self.assertEqual(([m["id"] for m in rest["data"]], rest["has_more"]), ([first], False))
        same = self.api("GET", "/v1/customers/%s/payment_methods" % cus, expect=200)[1]
        self.assertEqual([m["id"] for m in same["data"]], [third, second, first])
        status, err, _ = self.api("GET", "/v1/payment_methods", [("customer", "cus_nope")])
        self.assertEqual((status, err["error"]["code"]), (400, "resource_missing"))
        status, err, _ = self.api("GET", "/v1/payment_methods/pm_nope")
        self.assertEqual((status, err["error"]["code"]), (404, "resource_missing"))

        pi = self.charge(cus, second, extra=[("expand[]", "payment_method")])[1]
        self.assertEqual((pi["payment_method"]["id"], pi["latest_charge"]["payment_method"]),
                         (second, second))
        plain = self.api("GET", "/v1/payment_intents/" + pi["id"], expect=200)[1]
        self.assertEqual((plain["payment_method"], plain["latest_charge"], plain["customer"]),
                         (second, pi["latest_charge"]["id"], cus))
        # 4000000000000341 attached fine; its charges fail.
        status, err, _ = self.charge(cus, third)
        self.assertEqual((status, err["error"]["code"]), (402, "card_declined"))

    # ---- webhooks and counters ----------------------------------------------------
    def test_signed_webhooks_for_off_session_payments(self):
        cus = self.customer()
        ok = self.charge(cus, "pm_card_visa")[1]
        bad = self.charge(cus, "pm_card_chargeDeclinedInsufficientFunds")[1]["error"]["payment_intent"]

        def delivered():
            got = {}
            for body, sig in list(self.received):
                event = json.loads(body)
                got[(event["type"], event["data"]["object"]["id"])] = (body, sig)
            return got if {("payment_intent.succeeded", ok["id"]),
                           ("payment_intent.payment_failed", bad["id"])} <= set(got) else None
        got = wait_for(delivered, 10, what="the webhooks")
        for key in (("payment_intent.succeeded", ok["id"]), ("payment_intent.payment_failed", bad["id"])):
            body, sig = got[key]
            fields = dict(part.split("=", 1) for part in sig.split(","))
            mac = hmac.new(WEBHOOK_SECRET.encode(), fields["t"].encode() + b"." + body,
                           hashlib.sha256).hexdigest()
            self.assertEqual(fields["v1"], mac)
        failed = json.loads(got[("payment_intent.payment_failed", bad["id"])][0])["data"]["object"]
        self.assertEqual((failed["status"], failed["last_payment_error"]["decline_code"]),
                         ("requires_payment_method", "insufficient_funds"))
        # /_control/events records them with their deliveries.
        recorded = [e for e in self.events(ok["id"]) if e["type"] == "payment_intent.succeeded"]
        wait_for(lambda: [d for e in self.events(ok["id"]) for d in e["_deliveries"]
                          if e["type"] == "payment_intent.succeeded" and d["status"] == 200],
                 10, what="the delivery recorded")
        self.assertEqual(len(recorded), 1)
        self.assertEqual(recorded[0]["request"]["id"][:4], "req_")


if __name__ == "__main__":
    unittest.main()
