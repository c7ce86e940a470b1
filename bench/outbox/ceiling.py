#!/usr/bin/python3
"""The stand-in's own ceiling: SendBillingMessage calls per second from a
plain gRPC client (grpcio, one channel, many calls in flight), to put the
outbox worker's delivery rate in context.

    /usr/bin/python3 bench/outbox/ceiling.py --target 127.0.0.1:PORT [--calls N] [--inflight N]"""

import argparse
import os
import sys
import threading
import time
import uuid

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "test", "standins"))
from grpc_stubs import ms_grpc, ms_pb2  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--inflight", type=int, default=64)
    a = p.parse_args()

    channel = grpc.insecure_channel(a.target)
    stub = ms_grpc.MessageSenderStub(channel)
    grpc.channel_ready_future(channel).result(timeout=10)
    sem = threading.Semaphore(a.inflight)
    done = threading.Event()
    lock = threading.Lock()
    state = {"left": a.calls, "ok": 0, "failed": 0}
    run = uuid.uuid4().hex[:8]

    def finished(fut):
        sem.release()
        with lock:
            if fut.code() == grpc.StatusCode.OK and fut.result().successful:
                state["ok"] += 1
            else:
                state["failed"] += 1
            state["left"] -= 1
            if state["left"] == 0:
                done.set()

    user = str(uuid.uuid4())
    t0 = time.monotonic()
    for i in range(a.calls):
        sem.acquire()
        msg = ms_pb2.BillingMessage(template_num=1, user_id=user, role_description="Gold",
                                    end_payment="2026-12-26T00:00:00+00:00",
                                    idempotency_key="ceiling:%s:%d" % (run, i))
        stub.SendBillingMessage.future(msg, timeout=10).add_done_callback(finished)
    done.wait()
    elapsed = time.monotonic() - t0
    print("ceiling: %d calls in %.2f s = %.0f calls/s (%d failed)"
          % (a.calls, elapsed, a.calls / elapsed, state["failed"]))


if __name__ == "__main__":
    main()
