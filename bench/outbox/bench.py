#!/usr/bin/python3
"""Outbox delivery benchmark (run it through bench/outbox.sh).

1. ceiling: the gRPC stand-in's own rate, SendBillingMessage from a plain
   grpcio client (one channel, calls multiplexed) — what the worker could
   reach at best on this machine;
2. sustained rate: N messages queued while the worker has no target (half
   grant_role, half notify, one pair per user and tariff, so ordering keys
   make each notify wait for its grant), then the targets are set and the
   clock runs until the last one is delivered;
3. idle latency: one message per transaction (INSERT + billing.outbox_wake()
   = what outbox_enqueue does), the worker idle in between; latency is from
   the client's COMMIT returning to the stand-in handling the call.
Also prints the worker's private memory before and after the sustained run."""

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "e2e"))
from harness import PYTHON, Cluster, wait_for  # noqa: E402
from test_outbox import Standin  # noqa: E402


def rss_anon(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=100000)
    p.add_argument("--latency-samples", type=int, default=200)
    p.add_argument("--ceiling-calls", type=int, default=30000)
    a = p.parse_args()

    # One process per service (as the real services are): each has its own
    # Python interpreter lock, so the two services do not queue on one core.
    auth = Standin("bench_grpc_auth", extra=["--notify-port", "0"])
    grpc = Standin("bench_grpc_notify", extra=["--auth-port", "0"])
    cluster = Cluster("bench-outbox", conf=[
        "shared_buffers = '256MB'",
        "billing.expiry_schedule = ''",
        "billing.invoice_expiry_schedule = ''",
        "billing.stripe_poll_schedule = ''",
        "billing.outbox_purge_schedule = ''",
    ])

    def one(sql, args=None):
        rows = cluster.query(sql, args)
        return rows[0][0] if rows else None

    # -- 1. the stand-in's ceiling ----------------------------------------------
    out = subprocess.run([PYTHON, os.path.join(HERE, "ceiling.py"), "--target",
                          "127.0.0.1:%d" % grpc.notify_port, "--calls", str(a.ceiling_calls)],
                         check=True, capture_output=True, text=True).stdout.strip()
    print(out)
    ceiling = float(out.split("=")[1].split()[0])
    grpc.ctl("reset")       # the worker's run starts from the same empty state

    # -- 2. sustained rate ------------------------------------------------------
    cluster.set_conf(billing__auth_target=auth.auth, billing__notify_target=grpc.notify)
    cluster.query("SELECT billing.create_tariff('bench', 'Bench films', 29900)")
    wait_for(lambda: one("SELECT auth_role_id FROM marketing.tariffs WHERE code = 'bench'"),
             what="the bench tariff's role")
    tariff = one("SELECT id FROM marketing.tariffs WHERE code = 'bench'")
    worker = one("SELECT pid FROM pg_stat_activity WHERE backend_type = 'billing outbox worker'")
    cluster.set_conf(billing__auth_target="", billing__notify_target="")
    pairs = a.messages // 2
    cluster.query(
        "INSERT INTO billing.outbox (kind, payload, idempotency_key, ordering_key) "
        "SELECT k.kind, CASE k.kind WHEN 'grant_role' THEN jsonb_build_object('user_id', u.id, 'tariff_id', %s) "
        "  ELSE jsonb_build_object('template', 1, 'user_id', u.id, 'tariff_id', %s, "
        "       'role_description', 'Bench films', 'end_payment', '2030-01-31T00:00:00+00:00') END, "
        "  'bench:' || u.id || ':' || k.kind, u.id || ':' || %s "
        "FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, %s)) u, "
        "     (VALUES (1, 'grant_role'), (2, 'notify')) k(n, kind) ORDER BY u.id, k.n",
        (tariff, tariff, tariff, pairs))
    cluster.query("VACUUM ANALYZE billing.outbox")
    queued = one("SELECT count(*) FROM billing.outbox WHERE status = 'pending'")
    mem0 = rss_anon(worker)
    cpu0 = (cpu_seconds(worker), cpu_seconds(auth.proc.pid) + cpu_seconds(grpc.proc.pid))
    t0 = time.time()
    cluster.set_conf(billing__auth_target=auth.auth, billing__notify_target=grpc.notify)
    samples = []        # (messages left, worker private memory)

    def drained():
        left = one("SELECT count(*) FROM billing.outbox WHERE status <> 'done'")
        samples.append((left, rss_anon(worker)))
        return left == 0
    wait_for(drained, timeout=600, interval=0.25, what="the queue drained")
    t1 = one("SELECT extract(epoch FROM max(delivered_at)) FROM billing.outbox")
    mem1 = rss_anon(worker)
    cpu1 = (cpu_seconds(worker), cpu_seconds(auth.proc.pid) + cpu_seconds(grpc.proc.pid))
    quarter = [m for left, m in samples if left < queued * 0.75]
    rate = queued / (float(t1) - t0)
    stats = {"calls": auth.ctl("stats")["calls"] + grpc.ctl("stats")["calls"]}
    retried = one("SELECT count(*) FROM billing.outbox WHERE attempts > 1")
    print("sustained: %d messages in %.2f s = %.0f msg/s (%d retried; stand-in saw %d calls)"
          % (queued, float(t1) - t0, rate, retried, stats["calls"]))
    print("CPU per message: worker %.0f us, stand-ins %.0f us"
          % ((cpu1[0] - cpu0[0]) * 1e6 / queued, (cpu1[1] - cpu0[1]) * 1e6 / queued))
    print("worker private memory: %d kB before, %d kB after; over the last three quarters "
          "of the run %d..%d kB" % (mem0, mem1, min(quarter or [0]), max(quarter or [0])))

    # -- 3. idle commit-to-delivery latency ------------------------------------
    grpc.ctl("reset")       # forget the 100k calls: /state stays small
    conn = cluster.connect(autocommit=False)
    cur = conn.cursor()
    sent = {}
    for i in range(a.latency_samples):
        key = "latency:%s" % uuid.uuid4()
        cur.execute("INSERT INTO billing.outbox (kind, payload, idempotency_key) "
                    "VALUES ('notify', jsonb_build_object('template', 5, 'user_id', gen_random_uuid()), %s)",
                    (key,))
        cur.execute("SELECT billing.outbox_wake()")
        conn.commit()
        sent[key] = time.time()
        time.sleep(0.03)
    conn.close()
    wait_for(lambda: one("SELECT count(*) = 0 FROM billing.outbox WHERE status <> 'done'"),
             what="the latency samples delivered")
    got = {c["key"]: c["at"] for c in grpc.state()["calls"] if c["key"] in sent and c["outcome"] == "ok"}
    lat = sorted((got[k] - sent[k]) * 1000 for k in sent)
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print("idle latency: p50 %.1f ms, p99 %.1f ms over %d messages" % (p50, p99, len(lat)))
    print()
    print("| measure | outbox worker | stand-in ceiling (plain gRPC client) |")
    print("| --- | --- | --- |")
    print("| sustained delivery, %d queued | %.0f msg/s | %.0f calls/s |" % (queued, rate, ceiling))
    print("| idle commit-to-delivery latency | p50 %.1f ms, p99 %.1f ms | |" % (p50, p99))


if __name__ == "__main__":
    main()
