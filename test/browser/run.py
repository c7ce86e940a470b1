"""The admin panel in a real browser: sets up the stack the panel runs on (a
throwaway cluster, PostgREST, the Stripe stand-in, the built panel behind
nginx on one origin), then runs test/browser/panel.mjs (playwright-core with
Debian's Chromium) against it.  Prints "ok - ..." / "not ok - ..." per test;
scripts/test counts them.

Screenshots of failing pages go to $BILLING_WORK/browser/shots; with
BILLING_DOCS_SCREENSHOTS=1 one screenshot of each main page is written to
docs/admin/ for the README."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness                                                   # noqa: E402
from test_http import JWT_SECRET, PostgREST                      # noqa: E402

STRIPE_KEY = "sk_test_browser"
WEBHOOK_SECRET = "whsec_browser"
ADMIN = ("ann@example.com", "Ann Operator", "ann's long password")
DISABLED = ("dora@example.com", "Dora Tester", "dora's long password")
LOCKED = ("lock@example.com", "Lock Tester", "lock's long password")


def main():
    work = os.path.join(harness.WORK, "browser")
    os.makedirs(work, exist_ok=True)
    http_port = harness.free_port()
    stripe_port = harness.free_port()
    panel_port = harness.free_port()
    stripe = harness.spawn(
        [harness.PYTHON, os.path.join(harness.SRC, "test", "standins", "stripe_server.py"),
         "--port", str(stripe_port), "--secret-key", STRIPE_KEY, "--webhook-secret", WEBHOOK_SECRET,
         "--webhook-url", "http://127.0.0.1:%d/rpc/stripe_webhook" % http_port],
        "browser-stripe.log")
    harness.wait_port(stripe_port)
    db = harness.Cluster("browser", conf=[
        "billing.stripe_api_base = 'http://127.0.0.1:%d'" % stripe_port,
        "billing.stripe_secret_key = '%s'" % STRIPE_KEY,
        "billing.stripe_webhook_secrets = '%s'" % WEBHOOK_SECRET,
        "billing.stripe_poll_schedule = ''",
        "billing.stripe_success_url = 'http://127.0.0.1:%d/pay/{CHECKOUT_SESSION_ID}'" % stripe_port,
        "billing.stripe_cancel_url = 'http://127.0.0.1:%d/pay/{CHECKOUT_SESSION_ID}'" % stripe_port,
        "billing.admin_jwt_secret = '%s'" % JWT_SECRET,
    ])
    api = PostgREST(db, "browser", port=http_port)
    for email, name, password in (ADMIN, DISABLED, LOCKED):
        db.query("SELECT billing.create_admin_account(%s, %s, %s)", (email, name, password))
    db.query("SELECT billing.create_tariff('prime', 'Prime films', 29900)")

    build = subprocess.run(["bash", "-c", '. "$BILLING_SRC/scripts/lib.sh" && build_admin_panel'],
                           env=dict(os.environ, BILLING_SRC=harness.SRC),
                           stdout=subprocess.PIPE, check=True, text=True)
    dist = build.stdout.strip().splitlines()[-1]
    nginx_dir = os.path.join(work, "nginx")
    os.makedirs(nginx_dir, exist_ok=True)
    subprocess.run(["bash", "-c", '. "$BILLING_SRC/scripts/lib.sh" && render_nginx_conf "$@"', "-",
                    nginx_dir, os.path.join(harness.WORK, "logs"), str(panel_port), str(http_port), dist],
                   env=dict(os.environ, BILLING_SRC=harness.SRC), check=True)
    nginx = harness.spawn(["nginx", "-p", nginx_dir, "-c", os.path.join(nginx_dir, "nginx.conf")],
                          "browser-nginx.log")
    harness.wait_port(panel_port)

    env = dict(os.environ,
               PANEL_URL="http://127.0.0.1:%d" % panel_port,
               JWT_SECRET=JWT_SECRET,
               PSQL=os.path.join(harness.PGBIN, "psql"),
               PGHOST=db.dir, PGPORT=str(db.port), PGUSER="postgres", PGDATABASE="billing",
               ADMIN_EMAIL=ADMIN[0], ADMIN_NAME=ADMIN[1], ADMIN_PASSWORD=ADMIN[2],
               DISABLED_EMAIL=DISABLED[0], DISABLED_PASSWORD=DISABLED[2],
               LOCKED_EMAIL=LOCKED[0], LOCKED_PASSWORD=LOCKED[2],
               SHOT_DIR=os.path.join(work, "shots"),
               DOCS_DIR=os.path.join(harness.SRC, "docs", "admin"),
               NODE_PATH=os.path.join(harness.SRC, "admin", "node_modules"))
    try:
        try:
            rc = subprocess.run(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "panel.mjs")],
                                env=env, cwd=os.path.join(harness.SRC, "admin"), timeout=900).returncode
        except subprocess.TimeoutExpired:
            print("not ok - the browser tests ended within 15 minutes")
            rc = 1
    finally:
        harness.stop(nginx)
        api.stop()
        harness.stop(stripe)
        db.destroy()
    return rc


if __name__ == "__main__":
    sys.exit(main())
