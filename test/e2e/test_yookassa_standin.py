"""The YooKassa stand-in (test/standins/yookassa_server.py) on its own, over
HTTP: saving a payment method at checkout (save_payment_method,
merchant_customer_id), payments with a saved method (payment_method_id) and
what YooKassa's test cards make them do, a revoked permission, the list of
payments with its filters and cursor, and Idempotence-Key replays (a
canceled result too, and forgotten after 24 hours).  The extension is not
involved: these tests hold the stand-in to YooKassa's documented behaviour,
so that the extension's tests against it mean something."""

import base64
import datetime
import json
import os
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

from harness import PYTHON, SRC, free_port, spawn, wait_port

SHOP_ID = "700700"
SECRET_KEY = "test_standin_alone_3e1f"
RETURN_URL = "https://cinema.example/back"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class YooKassaStandIn(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.proc = spawn([PYTHON, os.path.join(SRC, "test", "standins", "yookassa_server.py"),
                          "--port", str(cls.port)],
                         "yookassa_standin_alone.log",
                         env={"YOOKASSA_SHOP_ID": SHOP_ID, "YOOKASSA_SECRET_KEY": SECRET_KEY})
        wait_port(cls.port)
        cls.base = "http://127.0.0.1:%d" % cls.port
        cls.opener = urllib.request.build_opener(NoRedirect)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)

    # ---- helpers -----------------------------------------------------------
    def http(self, method, path, data=None, headers=None):
        """(status, body bytes) of one request; no redirects followed."""
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api(self, method, path, body=None, key=None, query=None, expect=None, auth=True):
        """A YooKassa API call: JSON body, Basic auth, an Idempotence-Key for
        a POST (a fresh one unless given).  Returns (status, JSON body)."""
        headers = {}
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % (SHOP_ID, SECRET_KEY)).encode()).decode()
        data = None
        if method == "POST":
            headers["Idempotence-Key"] = key or str(uuid.uuid4())
            headers["Content-Type"] = "application/json"
            data = json.dumps(body if body is not None else {}).encode()
        if query:
            path += "?" + urllib.parse.urlencode(query)
        status, out = self.http(method, path, data, headers)
        obj = json.loads(out)
        if expect is not None:
            self.assertEqual(status, expect, obj)
        return status, obj

    def ctl(self, method, path, body=None, expect=200):
        data = json.dumps(body).encode() if body is not None else None
        status, out = self.http(method, "/_control/" + path, data)
        self.assertEqual(status, expect, out)
        return json.loads(out)

    def setUp(self):
        self.ctl("POST", "reset", {})

    def checkout(self, save=True, customer="user-1", value="299.00", **extra):
        body = {"amount": {"value": value, "currency": "RUB"}, "capture": True,
                "confirmation": {"type": "redirect", "return_url": RETURN_URL},
                "description": "Prime films, 1 month", "metadata": {"payment_id": str(uuid.uuid4())}}
        if save:
            body["save_payment_method"] = True
        if customer:
            body["merchant_customer_id"] = customer
        body.update(extra)
        return self.api("POST", "/v3/payments", body, expect=200)[1]

    def saved_method(self, card="5555555555554444"):
        """The id of the method a paid checkout with `card` saved."""
        p = self.checkout()
        p = self.ctl("POST", "payments/%s/pay" % p["id"], {"card": card})
        self.assertEqual(p["status"], "succeeded", p)
        self.assertTrue(p["payment_method"]["saved"])
        return p["payment_method"]["id"]

    def charge(self, method_id, key=None, value="299.00", payment_id=None, expect=200):
        body = {"amount": {"value": value, "currency": "RUB"}, "capture": True,
                "payment_method_id": method_id, "description": "Prime films, 1 month",
                "metadata": {"payment_id": payment_id or str(uuid.uuid4())}}
        return self.api("POST", "/v3/payments", body, key=key, expect=expect)[1]

    def notes(self, payment_id):
        return [n["event"] for n in self.ctl("GET", "notifications")
                if n["object"].get("id") == payment_id]

    # ---- saving at checkout -------------------------------------------------
    def test_a_checkout_saves_the_method_it_was_paid_with(self):
        p = self.checkout()
        self.assertEqual((p["status"], p["merchant_customer_id"]), ("pending", "user-1"))
        self.assertNotIn("payment_method", p)           # chosen on the page
        self.assertNotIn("save_payment_method", p)
        p = self.ctl("POST", "payments/%s/pay" % p["id"], {"card": "5555555555554477"})
        pm = p["payment_method"]
        self.assertEqual((p["status"], pm["type"], pm["id"], pm["saved"], pm["title"]),
                         ("succeeded", "bank_card", p["id"], True, "Bank card *4477"))
        self.assertEqual({k: pm["card"][k] for k in ("first6", "last4", "card_type")},
                         {"first6": "555555", "last4": "4477", "card_type": "MasterCard"})
        self.assertTrue(pm["card"]["expiry_month"] and pm["card"]["expiry_year"])
        read = self.api("GET", "/v3/payments/" + p["id"], expect=200)[1]
        self.assertEqual(read["payment_method"], pm)
        self.assertEqual(self.ctl("GET", "payment_methods/" + pm["id"])["card"], "5555555555554477")
        # A Mir card is a Mir.
        p = self.ctl("POST", "payments/%s/pay" % self.checkout()["id"], {"card": "2202474301322987"})
        self.assertEqual(p["payment_method"]["card"]["card_type"], "Mir")

    def test_b_a_method_not_asked_to_be_saved_or_declined_is_not_saved(self):
        p = self.checkout(save=False, customer=None)
        p = self.ctl("POST", "payments/%s/pay" % p["id"], {"card": "4111111111111111"})
        self.assertEqual((p["status"], p["payment_method"]["saved"]), ("succeeded", False))
        self.assertNotIn("merchant_customer_id", p)
        status, err = self.api("POST", "/v3/payments", {
            "amount": {"value": "1.00", "currency": "RUB"}, "payment_method_id": p["id"]})
        self.assertEqual((status, err["code"], err["parameter"]),
                         (400, "invalid_request", "payment_method_id"))
        # A declined card at checkout: canceled with its reason, nothing saved.
        p = self.ctl("POST", "payments/%s/pay" % self.checkout()["id"], {"card": "5555555555554600"})
        self.assertEqual((p["status"], p["cancellation_details"], p["payment_method"]["saved"]),
                         ("canceled", {"party": "payment_network", "reason": "insufficient_funds"}, False))
        self.assertEqual(self.ctl("GET", "payment_methods/" + p["id"], expect=404),
                         {"error": "not found: '%s'" % p["id"]})
        # A method YooKassa cannot save: paid, not saved although asked.
        p = self.ctl("POST", "payments/%s/pay" % self.checkout()["id"],
                     {"card": "5555555555554444", "can_save": False})
        self.assertEqual((p["status"], p["payment_method"]["saved"]), ("succeeded", False))

    def test_c_the_confirmation_page_takes_a_test_card(self):
        p = self.checkout()
        url = p["confirmation"]["confirmation_url"]
        path = urllib.parse.urlsplit(url).path
        status, page = self.http("GET", path)
        self.assertIn(b'name=card value=5555555555554444', page)
        form = urllib.parse.urlencode({"action": "pay", "card": "5555 5555 5555 4543"}).encode()
        self.assertEqual(self.http("POST", path, form)[0], 303)
        p = self.api("GET", "/v3/payments/" + p["id"], expect=200)[1]
        self.assertEqual((p["status"], p["cancellation_details"]["reason"]), ("canceled", "card_expired"))

    def test_d_bad_save_parameters_are_refused(self):
        for extra, parameter in (({"save_payment_method": "yes"}, "save_payment_method"),
                                 ({"merchant_customer_id": ""}, "merchant_customer_id"),
                                 ({"merchant_customer_id": "x" * 201}, "merchant_customer_id")):
            body = {"amount": {"value": "1.00", "currency": "RUB"},
                    "confirmation": {"type": "redirect", "return_url": RETURN_URL}}
            body.update(extra)
            status, err = self.api("POST", "/v3/payments", body)
            self.assertEqual((status, err["parameter"]), (400, parameter))
        # payment_method_id needs no confirmation; save_payment_method with it is refused.
        m = self.saved_method()
        status, err = self.api("POST", "/v3/payments", {
            "amount": {"value": "1.00", "currency": "RUB"}, "payment_method_id": m,
            "save_payment_method": True})
        self.assertEqual((status, err["parameter"]), (400, "save_payment_method"))

    # ---- payments with the saved method ------------------------------------
    def test_e_a_saved_method_is_charged_without_the_buyer(self):
        m = self.saved_method("5555555555554477")       # a 3-D Secure card: never asked again
        p = self.charge(m)
        self.assertEqual((p["status"], p["paid"], p["payment_method"]["id"], p["payment_method"]["saved"]),
                         ("succeeded", True, m, True))
        self.assertNotIn("confirmation", p)
        self.assertEqual(p["payment_method"]["card"]["last4"], "4477")
        self.assertTrue(p["captured_at"])
        self.assertEqual(self.notes(p["id"]), ["payment.succeeded"])
        # Refundable like any other.
        r = self.api("POST", "/v3/refunds", {"payment_id": p["id"],
                                             "amount": {"value": "299.00", "currency": "RUB"}}, expect=200)[1]
        self.assertEqual(r["status"], "succeeded")

    def test_f_each_decline_card_cancels_with_its_reason_and_party(self):
        m = self.saved_method()
        for card, reason, party in (
                ("5555555555554600", "insufficient_funds", "payment_network"),
                ("5555555555554543", "card_expired", "payment_network"),
                ("5555555555554576", "payment_method_limit_exceeded", "payment_network"),
                ("5555555555554592", "3d_secure_failed", "payment_network"),
                ("4562265587712390", "insufficient_funds", "payment_network"),
                ("2200000000000053", "insufficient_funds", "payment_network"),
                ("5555555555554527", "general_decline", "payment_network"),
                ("5555555555554584", "country_forbidden", "yoo_money"),
                ("5555555555554634", "fraud_suspected", "yoo_money")):
            self.ctl("POST", "payment_methods/" + m, {"card": card})
            p = self.charge(m)
            self.assertEqual((p["status"], p["paid"], p["cancellation_details"]),
                             ("canceled", False, {"party": party, "reason": reason}), card)
            self.assertEqual(self.notes(p["id"]), ["payment.canceled"])
        self.ctl("POST", "payment_methods/" + m, {"card": "4111111111111111"})   # topped up
        self.assertEqual(self.charge(m)["status"], "succeeded")
        self.ctl("POST", "payment_methods/" + m, {"card": "1234"}, expect=400)

    def test_g_a_revoked_permission_cancels_every_charge(self):
        m = self.saved_method()
        self.ctl("POST", "payment_methods/" + m, {"revoked": True})
        for _ in range(2):
            p = self.charge(m)
            self.assertEqual((p["status"], p["cancellation_details"]),
                             ("canceled", {"party": "yoo_money", "reason": "permission_revoked"}))

    def test_h_charges_that_wait_or_ask_for_the_buyer(self):
        m = self.saved_method()
        self.ctl("POST", "payment_methods/" + m, {"mode": "pending"})
        p = self.charge(m)
        self.assertEqual(p["status"], "pending")
        self.assertNotIn("confirmation", p)
        self.assertEqual(self.ctl("POST", "payments/%s/succeed" % p["id"])["status"], "succeeded")
        self.ctl("POST", "payment_methods/" + m, {"mode": "confirmation"})
        p = self.charge(m)
        url = p["confirmation"]["confirmation_url"]
        self.assertEqual((p["status"], p["confirmation"]["type"]), ("pending", "redirect"))
        path = urllib.parse.urlsplit(url).path
        self.assertIn(b"Saved card", self.http("GET", path)[1])
        self.assertEqual(self.http("POST", path, b"action=pay")[0], 303)
        self.assertEqual(self.api("GET", "/v3/payments/" + p["id"], expect=200)[1]["status"], "succeeded")
        self.ctl("POST", "payment_methods/" + m, {"mode": None})
        self.assertEqual(self.charge(m)["status"], "succeeded")

    # ---- Idempotence-Key ------------------------------------------------------
    def test_i_idempotence_key_replays_a_success_and_a_decline_for_24_hours(self):
        m = self.saved_method()
        pid = str(uuid.uuid4())
        first = self.charge(m, key="renew-1", payment_id=pid)
        again = self.charge(m, key="renew-1", payment_id=pid)
        self.assertEqual((again["id"], again["status"]), (first["id"], "succeeded"))
        # A decline is replayed as the same canceled payment, even after the card recovers.
        self.ctl("POST", "payment_methods/" + m, {"card": "5555555555554600"})
        declined = self.charge(m, key="renew-2", payment_id=pid)
        self.ctl("POST", "payment_methods/" + m, {"card": "5555555555554444"})
        replay = self.charge(m, key="renew-2", payment_id=pid)
        self.assertEqual((replay["id"], replay["status"], replay["cancellation_details"]["reason"]),
                         (declined["id"], "canceled", "insufficient_funds"))
        replayed = [r for r in self.ctl("GET", "requests") if r.get("idempotence_key") == "renew-2"]
        self.assertEqual([r.get("replayed", False) for r in replayed], [False, True])
        # The same key with another body: refused.
        status, err = self.api("POST", "/v3/payments", {"amount": {"value": "1.00", "currency": "RUB"},
                                                        "payment_method_id": m}, key="renew-2")
        self.assertEqual((status, err["code"]), (400, "invalid_request"))
        # YooKassa keeps a key 24 hours: after that the same request makes a new payment.
        self.ctl("POST", "clock", {"advance": 24 * 3600 + 1})
        later = self.charge(m, key="renew-2", payment_id=pid)
        self.assertNotEqual(later["id"], declined["id"])
        self.assertEqual(later["status"], "succeeded")

    def test_j_a_fault_is_never_saved_under_the_key(self):
        m = self.saved_method()
        self.ctl("POST", "faults", {"count": 1, "status": 500, "path": "/v3/payments", "method": "POST"})
        status, _ = self.api("POST", "/v3/payments", {"amount": {"value": "299.00", "currency": "RUB"},
                                                     "payment_method_id": m}, key="k-fault")
        self.assertEqual(status, 500)
        self.assertEqual(self.api("GET", "/v3/payments", query={"limit": 10}, expect=200)[1]["items"][0]["id"], m)
        p = self.charge(m, key="k-fault")
        self.assertEqual(p["status"], "succeeded")

    # ---- the list of payments ---------------------------------------------------
    def test_k_list_newest_first_with_created_at_filters_and_a_cursor(self):
        t0 = datetime.datetime(2027, 3, 1, 12, 0, tzinfo=datetime.timezone.utc).timestamp()
        self.ctl("POST", "clock", {"now": t0})
        m = self.saved_method()
        ids = []
        for i in range(7):
            self.ctl("POST", "clock", {"advance": 60})
            ids.append(self.charge(m, payment_id="p%d" % i)["id"])
        since = "2027-03-01T12:01:30.000Z"                # after the checkout and the first charge
        seen, cursor, pages = [], None, 0
        while True:
            query = {"created_at.gte": since, "limit": 2}
            if cursor:
                query["cursor"] = cursor
            page = self.api("GET", "/v3/payments", query=query, expect=200)[1]
            self.assertEqual(page["type"], "list")
            self.assertLessEqual(len(page["items"]), 2)
            seen += [p["id"] for p in page["items"]]
            pages += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
        self.assertEqual(seen, list(reversed(ids[1:])))
        self.assertEqual(pages, 3)
        # A payment made meanwhile does not shift the pages already given.
        page = self.api("GET", "/v3/payments", query={"created_at.gte": since, "limit": 3}, expect=200)[1]
        self.ctl("POST", "clock", {"advance": 60})
        newest = self.charge(m)["id"]
        rest = self.api("GET", "/v3/payments", query={"created_at.gte": since, "limit": 100,
                                                      "cursor": page["next_cursor"]}, expect=200)[1]
        self.assertEqual([p["id"] for p in rest["items"]], list(reversed(ids[1:4])))
        self.assertNotIn("next_cursor", rest)
        self.assertEqual(self.api("GET", "/v3/payments", query={"limit": 1}, expect=200)[1]["items"][0]["id"],
                         newest)
        # The other bounds, and status.
        between = self.api("GET", "/v3/payments", query={"created_at.gt": "2027-03-01T12:02:30.000Z",
                                                         "created_at.lt": "2027-03-01T12:04:30.000Z"},
                           expect=200)[1]
        self.assertEqual([p["id"] for p in between["items"]], [ids[3], ids[2]])
        self.assertEqual(len(self.api("GET", "/v3/payments", query={"status": "canceled"}, expect=200)[1]["items"]), 0)
        # Refusals.
        for query, parameter in (({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                                 ({"created_at.gte": "yesterday"}, "created_at.gte"),
                                 ({"created_at.gte": "2027-03-01T12:00:00"}, "created_at.gte"),
                                 ({"cursor": "!!"}, "cursor"), ({"metadata": "x"}, "metadata")):
            status, err = self.api("GET", "/v3/payments", query=query)
            self.assertEqual((status, err["code"], err["parameter"]), (400, "invalid_request", parameter))
        status, err = self.api("GET", "/v3/payments", auth=False)
        self.assertEqual((status, err["code"]), (401, "invalid_credentials"))


if __name__ == "__main__":
    unittest.main()
