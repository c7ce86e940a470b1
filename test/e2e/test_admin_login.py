"""End-to-end tests of personal admin accounts over HTTP: POST /rpc/login with
the real PostgREST verifying the token the extension signed, the lock after
repeated failures, a disabled account shut out on its next request, tokens of
the auth service refused by default, and the admin's name in the audit."""

import json
import os
import unittest
import uuid

import harness
from test_http import JWT_SECRET, PostgREST, make_token, user_token

PASSWORD = "e2e admin password"


class AdminLoginTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = harness.Cluster("admin-login", conf=[
            "billing.admin_jwt_secret = '%s'" % JWT_SECRET,
        ])
        cls.api = PostgREST(cls.db, "admin-login")
        cls.db.query("SELECT billing.create_admin_account('ann@example.com', 'Ann Smith', %s)", (PASSWORD,))
        cls.db.query("SELECT billing.create_admin_account('bob@example.com', 'Bob Jones', %s)", (PASSWORD,))

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.db.destroy()

    def login(self, email, password):
        return self.api.call("POST", "/rpc/login", {"email": email, "password": password})

    def test_login_gives_a_token_postgrest_accepts(self):
        resp = self.login("Ann@Example.com", PASSWORD)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(sorted(resp.json), ["expires_at", "token"])
        token = resp.json["token"]
        resp = self.api.call("POST", "/rpc/admin_whoami", token=token)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual((resp.json["name"], resp.json["email"]), ("Ann Smith", "ann@example.com"))
        self.assertEqual(self.api.call("GET", "/admin_tariffs", token=token).status, 200)
        # A token signed with another secret is PostgREST's 401.
        forged = token[:token.rindex(".") + 1] + "AAAA" + token[token.rindex(".") + 5:]
        self.assertEqual(self.api.call("GET", "/admin_tariffs", token=forged).status, 401)

    def test_unknown_email_and_wrong_password_look_the_same(self):
        a = self.login("nobody-%s@example.com" % uuid.uuid4(), PASSWORD)
        b = self.login("bob@example.com", "not the password")
        self.assertEqual((a.status, b.status), (401, 401))
        self.assertEqual(a.json, b.json)
        self.assertEqual(a.json["code"], "28P01")
        self.assertNotIn("token", a.raw)
        self.db.query("DELETE FROM billing.admin_login_throttle")

    def test_unknown_email_costs_a_bcrypt_round_like_a_wrong_password(self):
        # Without the dummy hash an unknown e-mail would answer hundreds of
        # times faster than a wrong password (no bcrypt round): the bounds are
        # wide so that load on the machine cannot break them.
        import time
        conn = self.db.connect()
        conn.cursor().execute("SET billing.admin_jwt_secret = %s", (JWT_SECRET,))

        def took(email, password):
            start = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute("SELECT billing.admin_login(%s, %s)", (email, password))
            return time.perf_counter() - start
        try:
            wrong = min(took("bob@example.com", "wrong password %d" % i) for i in range(3))
            unknown = min(took("ghost-%d-%s@example.com" % (i, uuid.uuid4().hex[:6]), "x") for i in range(3))
        finally:
            conn.close()
            self.db.query("DELETE FROM billing.admin_login_throttle")
        self.assertGreater(unknown, wrong / 4, (unknown, wrong))
        self.assertLess(unknown, wrong * 4, (unknown, wrong))

    def test_sixth_attempt_meets_the_lock_and_is_audited(self):
        email = "locked-%s@example.com" % uuid.uuid4().hex[:8]
        self.db.query("SELECT billing.create_admin_account(%s, 'Lock Test', %s)", (email, PASSWORD))
        statuses = [self.login(email, "wrong password %d" % i).status for i in range(5)]
        self.assertEqual(statuses, [401] * 5)
        resp = self.login(email, PASSWORD)        # right password, but locked
        self.assertEqual(resp.status, 429, resp)
        self.assertTrue(resp.json["message"])
        self.assertTrue(resp.json["hint"])
        self.assertGreater(int(resp.headers["Retry-After"]), 800)
        rows = self.db.query("SELECT action, after ->> 'email' FROM billing.admin_audit "
                             "WHERE target = %s ORDER BY id", ("login:" + email,))
        self.assertEqual([r[0] for r in rows], ["admin_login_failed"] * 5 + ["admin_login_locked"])
        self.assertEqual({r[1] for r in rows}, {email})
        # A DBA's new password lifts the lock.
        self.db.query("SELECT billing.set_admin_password(%s, %s)", (email, PASSWORD + "!"))
        self.assertEqual(self.login(email, PASSWORD + "!").status, 200)

    def test_disabled_account_is_refused_at_its_next_request(self):
        email = "carol-%s@example.com" % uuid.uuid4().hex[:8]
        self.db.query("SELECT billing.create_admin_account(%s, 'Carol', %s)", (email, PASSWORD))
        token = self.login(email, PASSWORD).json["token"]
        self.assertEqual(self.api.call("GET", "/admin_payments", token=token).status, 200)
        self.db.query("SELECT billing.disable_admin_account(%s)", (email,))
        resp = self.api.call("GET", "/admin_payments", token=token)
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual(resp.json["message"], "this admin account is disabled")
        self.assertEqual(self.login(email, PASSWORD).status, 401)
        self.db.query("SELECT billing.enable_admin_account(%s)", (email,))
        self.assertEqual(self.api.call("GET", "/admin_payments", token=token).status, 200)

    def test_auth_service_admin_tokens_are_refused_by_default(self):
        outside = make_token({"role": "billing_admin", "user": str(uuid.uuid4())})
        resp = self.api.call("GET", "/admin_tariffs", token=outside)
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual(resp.json["message"], "the token names no admin account")
        no_user = make_token({"role": "billing_admin"})
        self.assertEqual(self.api.call("GET", "/admin_tariffs", token=no_user).status, 401)
        try:
            self.db.query("ALTER SYSTEM SET billing.admin_trust_external_tokens = on")
            self.db.query("SELECT pg_reload_conf()")
            harness.wait_for(lambda: self.api.call("GET", "/admin_tariffs", token=outside).status == 200,
                             10, what="the setting to reach PostgREST's sessions")
        finally:
            self.db.query("ALTER SYSTEM RESET billing.admin_trust_external_tokens")
            self.db.query("SELECT pg_reload_conf()")
        harness.wait_for(lambda: self.api.call("GET", "/admin_tariffs", token=outside).status == 401,
                         10, what="the default again")

    def test_user_token_opens_no_admin_endpoint(self):
        tok = user_token(uuid.uuid4())
        for method, path, body in (("GET", "/admin_payments", None), ("GET", "/admin_audit", None),
                                   ("POST", "/rpc/admin_whoami", {}),
                                   ("POST", "/rpc/set_months_discount", {"months": 2, "percent": 50})):
            with self.subTest(path):
                self.assertEqual(self.api.call(method, path, body, token=tok).status, 403)
        self.assertEqual(self.db.scalar("SELECT count(*) FROM marketing.months_discounts WHERE months = 2"), 0)

    def test_audit_shows_the_admins_name(self):
        token = self.login("bob@example.com", PASSWORD).json["token"]
        resp = self.api.call("POST", "/rpc/set_months_discount", {"months": 7, "percent": 7}, token=token)
        self.assertEqual(resp.status, 200, resp)
        resp = self.api.call("GET", "/admin_audit?action=eq.set_months_discount&target=eq.months:7"
                             "&select=actor_name,actor", token=token)
        self.assertEqual(resp.json, [{"actor_name": "Bob Jones", "actor": "billing_admin"}])


if __name__ == "__main__":
    unittest.main()
