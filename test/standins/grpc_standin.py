#!/usr/bin/python3
"""Stand-ins for the cinema's auth service (rolescontrol.RolesControl) and
notification service (messagesender.MessageSender): real gRPC servers on
127.0.0.1 built on Debian's python3-grpcio, with state, and a small JSON
control API on another port so tests can look inside and inject faults.

    /usr/bin/python3 test/standins/grpc_standin.py \
        --auth-port 50051 --notify-port 50052 --control-port 50053 \
        [--tls-cert cert.pem --tls-key key.pem] [--workers 8]
        [--max-connection-age-ms N]     (the server ends each connection after N ms)

Either service port may be 0 (not served).  Control API (JSON bodies):
    GET  /state            roles, grants, emails, messages, every call received,
                           and the calls a delay holds now (with their deadline)
    GET  /stats            counts only (cheap, for the benchmark)
    POST /reset            forget all state and faults
    POST /fault            {"service": "auth"|"notify", "method": name or absent,
                            "code": "UNAVAILABLE"... or absent, "successful": false,
                            "delay_ms": n, "count": n (absent: until /clear)}
    POST /clear            remove all faults and end the delays under way
    POST /down             {"service": ...}  stop serving (connections refused)
    POST /up               {"service": ...}  serve again on the same port
    POST /email            {"user_id": u, "email": e}

A delay also ends when its caller goes away (deadline, cancel, exit); the
call is then recorded as "abandoned".

Every call is recorded with its idempotency key (the proto field, or the
`idempotency-key` metadata for GetUserInfo).  A call whose key already
succeeded is answered as before and recorded with "duplicate": true, as a
real receiver that drops duplicates would."""

import argparse
import json
import os
import sys
import threading
import time
import uuid
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grpc_stubs import ms_grpc, ms_pb2, rc_grpc, rc_pb2  # noqa: E402


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.roles = {}             # role_id -> name
        self.role_by_key = {}       # idempotency key -> role_id
        self.grants = set()         # (user_id, role_id)
        self.emails = {}            # user_id -> email (configured)
        self.messages = []          # delivered BillingMessages (first delivery per key)
        self.calls = []             # every call: service, method, key, outcome, fields
        self.done_keys = {}         # key -> response of the first success
        self.faults = []
        self.held = {}              # id(record) -> record of a call a delay holds
        self.end_delays()

    def end_delays(self):
        """Injected delays wait on faults_cleared; /clear and /reset end them,
        so a test can hold a call far longer than it will ever wait for it."""
        if hasattr(self, "faults_cleared"):
            self.faults_cleared.set()
        self.faults_cleared = threading.Event()
        self.ncalls = 0
        self.nok = 0


STATE = State()


def _fault_for(service, method):
    """The first matching fault rule, consumed once when it has a count."""
    with STATE.lock:
        for rule in STATE.faults:
            if rule.get("service") != service:
                continue
            if rule.get("method") and rule["method"] != method:
                continue
            if rule.get("count") is not None:
                if rule["count"] <= 0:
                    continue
                rule["count"] -= 1
            return dict(rule)
    return None


def _valid_uuid(text):
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def _hold(record, seconds, cleared, context):
    """An injected delay, visible in /state while it lasts."""
    end = time.monotonic() + seconds
    remaining = context.time_remaining()
    with STATE.lock:
        STATE.held[id(record)] = dict(record, deadline_s=remaining)
    try:
        while context.is_active() and not cleared.wait(min(0.05, max(0.0, end - time.monotonic()))):
            if time.monotonic() >= end:
                break
    finally:
        with STATE.lock:
            STATE.held.pop(id(record), None)


def handle(service, method, key, fields, context, work):
    """Common path of every RPC: faults, duplicate detection, recording.
    work() does the real thing under STATE.lock and returns the response;
    it may abort the call (bad argument, unknown role).  Returns None when
    the caller must answer successful=false."""
    cleared = STATE.faults_cleared      # taken first: a /clear after this ends our delay
    rule = _fault_for(service, method) if STATE.faults else None
    record = {"service": service, "method": method, "key": key, "at": time.time()}
    record.update(fields)
    if rule and rule.get("delay_ms"):
        _hold(record, rule["delay_ms"] / 1000.0, cleared, context)
        if not context.is_active():
            record["outcome"] = "abandoned"
            with STATE.lock:
                STATE.calls.append(record)
                STATE.ncalls += 1
            return None
    if rule and (rule.get("code") or rule.get("successful") is False):
        record["outcome"] = rule.get("code") or "unsuccessful"
        with STATE.lock:
            STATE.calls.append(record)
            STATE.ncalls += 1
        if rule.get("code"):
            context.abort(getattr(grpc.StatusCode, rule["code"]), "injected fault")
        return None
    with STATE.lock:
        STATE.ncalls += 1
        STATE.calls.append(record)
        if key and key in STATE.done_keys:
            record["outcome"] = "ok"
            record["duplicate"] = True
            STATE.nok += 1
            return STATE.done_keys[key]
        record["outcome"] = "error"     # until work() returns
        response = work()
        record["outcome"] = "ok"
        record["duplicate"] = False
        STATE.nok += 1
        if key:
            STATE.done_keys[key] = response
    return response


class RolesControl(rc_grpc.RolesControlServicer):
    def GetUserInfo(self, request, context):
        key = dict(context.invocation_metadata()).get("idempotency-key", "")

        def work():
            if not _valid_uuid(request.id):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user id is not a uuid")
            email = STATE.emails.get(request.id, "user-%s@example.test" % request.id[:8])
            return rc_pb2.UserInfo(email=email)
        r = handle("auth", "GetUserInfo", key, {"user_id": request.id}, context, work)
        return r if r is not None else rc_pb2.UserInfo()

    def CreateRole(self, request, context):
        def work():
            if not request.name:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "role name is empty")
            role_id = str(uuid.uuid4())
            STATE.roles[role_id] = request.name
            return rc_pb2.Uuid(id=role_id)
        r = handle("auth", "CreateRole", request.idempotency_key, {"name": request.name},
                   context, work)
        return r if r is not None else rc_pb2.Uuid()

    def UpdateRole(self, request, context):
        def work():
            if request.role_id not in STATE.roles:
                context.abort(grpc.StatusCode.NOT_FOUND, "no such role")
            STATE.roles[request.role_id] = request.name
            return rc_pb2.OperationResult(successful=True)
        r = handle("auth", "UpdateRole", request.idempotency_key,
                   {"role_id": request.role_id, "name": request.name}, context, work)
        return r if r is not None else rc_pb2.OperationResult(successful=False)

    def _grant(self, method, request, context, add):
        def work():
            if not _valid_uuid(request.user_id):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "user id is not a uuid")
            if request.role_id not in STATE.roles:
                context.abort(grpc.StatusCode.NOT_FOUND, "no such role")
            if add:
                STATE.grants.add((request.user_id, request.role_id))
            else:
                STATE.grants.discard((request.user_id, request.role_id))
            return rc_pb2.OperationResult(successful=True)
        r = handle("auth", method, request.idempotency_key,
                   {"user_id": request.user_id, "role_id": request.role_id}, context, work)
        return r if r is not None else rc_pb2.OperationResult(successful=False)

    def ProvideRoleUser(self, request, context):
        return self._grant("ProvideRoleUser", request, context, True)

    def RevokeRoleUser(self, request, context):
        return self._grant("RevokeRoleUser", request, context, False)


class MessageSender(ms_grpc.MessageSenderServicer):
    def SendBillingMessage(self, request, context):
        fields = {"template_num": request.template_num, "user_id": request.user_id,
                  "role_description": request.role_description,
                  "end_payment": request.end_payment,
                  # auto-renewal's templates (6, 7, 8)
                  "amount": request.amount, "currency": request.currency,
                  "charge_at": request.charge_at, "action_url": request.action_url}

        def work():
            if request.template_num not in (1, 2, 3, 4, 5, 6, 7, 8):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown template")
            STATE.messages.append(dict(fields, key=request.idempotency_key))
            return ms_pb2.OperationResult(successful=True)
        r = handle("notify", "SendBillingMessage", request.idempotency_key, fields, context, work)
        return r if r is not None else ms_pb2.OperationResult(successful=False)


class Server:
    """One gRPC service on one port, which can be stopped and started again."""

    def __init__(self, name, port, add, workers, tls, max_age_ms=None):
        self.name, self.port, self.add, self.workers, self.tls = name, port, add, workers, tls
        self.options = [("grpc.so_reuseport", 0)]
        if max_age_ms:
            self.options += [("grpc.max_connection_age_ms", max_age_ms),
                             ("grpc.max_connection_age_grace_ms", max_age_ms)]
        self.server = None

    def up(self):
        if self.server is not None:
            return
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.workers),
                             options=self.options)
        self.add(server)
        address = "127.0.0.1:%d" % self.port
        if self.tls:
            with open(self.tls[0], "rb") as c, open(self.tls[1], "rb") as k:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            bound = server.add_secure_port(address, creds)
        else:
            bound = server.add_insecure_port(address)
        if bound != self.port:
            raise SystemExit("cannot bind %s" % address)
        server.start()
        self.server = server

    def down(self):
        if self.server is not None:
            self.server.stop(0).wait()
            self.server = None


def control_handler(servers):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            with STATE.lock:
                if self.path == "/state":
                    obj = {"roles": STATE.roles,
                           "grants": sorted([list(g) for g in STATE.grants]),
                           "emails": STATE.emails,
                           "messages": STATE.messages,
                           "calls": STATE.calls,
                           "held": list(STATE.held.values())}
                elif self.path == "/stats":
                    obj = {"calls": STATE.ncalls, "ok": STATE.nok,
                           "messages": len(STATE.messages), "keys": len(STATE.done_keys)}
                else:
                    obj = None
                body = json.dumps(obj).encode() if obj is not None else None
            if body is None:
                return self._reply(404, {"error": "no such path"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            try:
                arg = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self._reply(400, {"error": "body is not json"})
            if self.path == "/reset":
                with STATE.lock:
                    STATE.reset()
            elif self.path == "/fault":
                if arg.get("code") and not hasattr(grpc.StatusCode, arg["code"]):
                    return self._reply(400, {"error": "unknown status code"})
                with STATE.lock:
                    STATE.faults.append(arg)
            elif self.path == "/clear":
                with STATE.lock:
                    STATE.faults = []
                    STATE.end_delays()
            elif self.path in ("/down", "/up"):
                server = servers.get(arg.get("service"))
                if server is None:
                    return self._reply(400, {"error": "unknown service"})
                server.down() if self.path == "/down" else server.up()
            elif self.path == "/email":
                with STATE.lock:
                    STATE.emails[arg["user_id"]] = arg["email"]
            else:
                return self._reply(404, {"error": "no such path"})
            self._reply(200, {"ok": True})
    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--auth-port", type=int, required=True)
    p.add_argument("--notify-port", type=int, required=True)
    p.add_argument("--control-port", type=int, required=True)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--max-connection-age-ms", type=int)
    a = p.parse_args()
    tls = (a.tls_cert, a.tls_key) if a.tls_cert else None

    servers = {}
    if a.auth_port:
        servers["auth"] = Server("auth", a.auth_port,
                                 lambda s: rc_grpc.add_RolesControlServicer_to_server(RolesControl(), s),
                                 a.workers, tls, a.max_connection_age_ms)
    if a.notify_port:
        servers["notify"] = Server("notify", a.notify_port,
                                   lambda s: ms_grpc.add_MessageSenderServicer_to_server(MessageSender(), s),
                                   a.workers, tls, a.max_connection_age_ms)
    for server in servers.values():
        server.up()
    control = ThreadingHTTPServer(("127.0.0.1", a.control_port), control_handler(servers))
    control.daemon_threads = True
    print("grpc stand-in: auth %d, notify %d, control %d" % (a.auth_port, a.notify_port, a.control_port),
          flush=True)
    try:
        control.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers.values():
            server.down()


if __name__ == "__main__":
    main()
