"""Shared pieces of the end-to-end tests: a throwaway cluster with billing
preloaded, free ports, child processes that are always cleaned up, and polling
helpers that wait on a condition instead of sleeping for luck.

scripts/test exports BILLING_SRC, BILLING_WORK and BILLING_PGBIN; running a test
file by hand needs the same (run `scripts/test e2e` once to get them)."""

import atexit
import hashlib
import hmac
import http.server
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import psycopg2
import psycopg2.extras

SRC = os.environ.get("BILLING_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
WORK = os.environ.get("BILLING_WORK", "/tmp/billing-e2e")
PGBIN = os.environ.get("BILLING_PGBIN", "/usr/lib/postgresql/15/bin")
PYTHON = "/usr/bin/python3"     # Debian's, with grpcio and psycopg2

psycopg2.extras.register_uuid()
_children = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Poll predicate() until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def exited(pid):
    """True once pid has ended, reaped or not: a process orphaned by a killed
    parent stays a zombie until whatever adopts it reaps it, and some
    container inits never do."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            # the state follows the parenthesised command name
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        # gone before the open, or between the open and the read (ESRCH)
        return True


def wait_port(port, timeout=30.0):
    def is_open():
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(is_open, timeout, what="port %d" % port)


def spawn(args, log_name, env=None, cwd=None):
    """Start a child process whose output goes to WORK/logs/log_name; it is
    killed when the test process exits."""
    os.makedirs(os.path.join(WORK, "logs"), exist_ok=True)
    # The child keeps its own copy of the descriptor; ours closes here.
    with open(os.path.join(WORK, "logs", log_name), "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, **(env or {})), cwd=cwd,
                                start_new_session=True)
    _children.append(proc)
    return proc


def stripe_signature(body, secret, t=None):
    """Stripe-Signature header for `body` (bytes) signed with `secret` at unix
    time t (default now): t=<t>,v1=<hex HMAC-SHA256 of "<t>." + body>."""
    t = int(time.time() if t is None else t)
    mac = hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


def stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@atexit.register
def _cleanup():
    for proc in _children:
        stop(proc, signal.SIGKILL)


def serve_hooks(handle):
    """A webhook endpoint on a free port of 127.0.0.1, for a stand-in to post
    to: each POST's raw body and headers go to handle(body, headers), which
    returns the HTTP status to answer.  Returns (server, url); end it with
    server.shutdown()."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(handle(body, self.headers))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d/hook" % server.server_address[1]


class Cluster:
    """A PostgreSQL cluster of its own (scripts/cluster), database `billing`
    with the extension created.  conf: extra postgresql.conf lines."""

    def __init__(self, name, conf=()):
        self.dir = os.path.join(WORK, "e2e-" + name)
        self.port = free_port()
        self._run("init", str(self.port), *conf)
        atexit.register(self.destroy)

    def _run(self, *args):
        subprocess.run([os.path.join(SRC, "scripts", "cluster"), args[0], self.dir, *args[1:]],
                       check=True, env=dict(os.environ, BILLING_PGBIN=PGBIN))

    def start(self):
        self._run("start")

    def stop(self):
        self._run("stop")

    def crash(self):
        """Immediate-mode stop: no checkpoint, like a power cut for the server."""
        self._run("kill")

    def destroy(self):
        if os.path.isdir(self.dir):
            self._run("destroy")

    @property
    def dsn(self):
        return "host=%s port=%d user=postgres dbname=billing" % (self.dir, self.port)

    @property
    def url(self):
        return "postgresql://postgres@127.0.0.1:%d/billing" % self.port

    def connect(self, autocommit=True, clock=None):
        """A new session; with clock (a datetime) its billing.test_clock is set."""
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        if clock is not None:
            with conn.cursor() as cur:
                cur.execute("SET billing.test_clock = %s", (clock.isoformat(),))
        conn.autocommit = autocommit
        return conn

    def query(self, sql, args=None, clock=None):
        """Run one statement in its own transaction; return all rows (or [])."""
        conn = self.connect(clock=clock)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def scalar(self, sql, args=None, clock=None):
        rows = self.query(sql, args, clock)
        return rows[0][0] if rows else None

    def set_conf(self, **settings):
        """ALTER SYSTEM name = value for each setting, reload, and return once
        every backend will see them at its next statement.

        pg_reload_conf() only signals the postmaster, which re-reads the files
        and signals its children later; an idle backend (PostgREST's pool) that
        is sent a statement before that runs it with the old values.  A new
        session inherits the postmaster's load time, so once a new session's
        pg_conf_load_time() has moved, the postmaster has re-read the files and
        signalled every child, and each applies them before its next statement.
        """
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute("SELECT pg_conf_load_time()")
            loaded = cur.fetchone()[0]
            for key, value in settings.items():
                cur.execute("ALTER SYSTEM SET %s = %%s" % key.replace("__", "."), (str(value),))
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
        deadline = time.time() + 30
        while not self.scalar("SELECT pg_conf_load_time() > %s", (loaded,)):
            if time.time() > deadline:
                raise AssertionError("the server did not reload its configuration in 30 s")
            time.sleep(0.02)

    def log(self):
        with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
            return f.read()


def new_user():
    return uuid.uuid4()
