#!/usr/bin/python3
"""A loopback stand-in for the parts of Stripe's API the billing extension
uses, with Stripe's shapes, status values, error format, Idempotency-Key
semantics and signed webhooks, plus a control API for tests.

    stripe_server.py --port 12111 [--host 127.0.0.1]
                     [--secret-key sk_test_standin]
                     [--webhook-url http://127.0.0.1:3000/rpc/stripe_webhook]
                     [--webhook-secret whsec_standin]
                     [--webhook-retries 2 --webhook-retry-base 0.2 --webhook-retry-max 3600]
                     [--public-url http://127.0.0.1:12111]

The secret key and the webhook secret may come from the environment instead
(STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET), which `ps` does not show;
scripts/start passes them that way.

Stripe API (form-encoded requests, `Authorization: Bearer <secret key>`):
    POST /v1/checkout/sessions                create (mode=payment, line_items, ...)
    GET  /v1/checkout/sessions/{id}           retrieve (expand[]=payment_intent,
                                              expand[]=payment_intent.latest_charge)
    POST /v1/checkout/sessions/{id}/expire    expire an open session
    POST /v1/refunds                          refund a payment_intent
    GET  /v1/refunds/{id}                     retrieve a refund
    GET  /v1/payment_intents/{id}             retrieve a payment intent

Hosted checkout page, for people clicking through the local stack:
    GET  /pay/{session id}                    a page with "Pay" and "Cancel"

Control API (JSON in and out; tests only):
    POST /_control/sessions/{id}/complete     {"payment_status": "paid"|"unpaid"}
    POST /_control/sessions/{id}/async        {"result": "succeeded"|"failed"}
    POST /_control/sessions/{id}/expire       {}
    POST /_control/refunds/{id}               {"status": "succeeded"|"failed"}
    POST /_control/refund_mode                {"status": "succeeded"|"pending"}
    POST /_control/faults                     {"count": N, "status": 503, "delay": s,
                                               "close": false, "path": "/v1/refunds"}
                                              the next N matching API calls fail
                                              (or are slowed, or the connection
                                              is dropped); never saved under an
                                              Idempotency-Key, like an edge failure
    POST /_control/webhooks                   {"mode": "deliver"|"drop"|"duplicate"|"hold"}
    POST /_control/webhooks/release           {"reverse": true}: send held events
    POST /_control/webhooks/resend/{evt id}   deliver a recorded event again
    POST /_control/clock                      {"now": epoch} or {"advance": seconds}
    POST /_control/reset                      forget everything
    GET  /_control/requests                   the API calls received
    GET  /_control/events                     the events made and their deliveries
    GET  /_control/sessions/{id}              a session as stored
    GET  /_control/stats                      counters (for the benchmark)

Webhooks are signed the way Stripe signs them: the header
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
Sessions expire by themselves at expires_at on the stand-in's clock.
"""

import argparse
import hashlib
import heapq
import hmac
import http.client
import json
import os
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_VERSION = "2024-06-20"

# https://stripe.com/docs/currencies: zero-decimal and three-decimal currencies.
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg",
                "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}
# ISO 4217 codes that are not money; every other three-letter code passes
# (the extension refuses what Stripe cannot take when a tariff is created).
NOT_MONEY = {"xxx", "xts", "xau", "xag", "xpt", "xpd", "xdr"}


class ApiError(Exception):
    """A Stripe error response: {"error": {"type", "message", "code", "param"}}."""

    def __init__(self, status, message, type_="invalid_request_error", code=None,
                 param=None, saved=True):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message}}
        if code:
            self.body["error"]["code"] = code
            self.body["error"]["doc_url"] = "https://stripe.com/docs/error-codes/" + code.replace("_", "-")
        if param:
            self.body["error"]["param"] = param
        # Stripe saves the result under an Idempotency-Key only when the
        # endpoint began executing: validation failures are not saved.
        self.saved = saved


def missing(param):
    return ApiError(400, "Missing required param: %s." % param, code="parameter_missing",
                    param=param, saved=False)


def invalid(param, message):
    return ApiError(400, message, code="parameter_invalid_integer" if "integer" in message
                    else "parameter_invalid", param=param, saved=False)


def new_id(prefix):
    return prefix + "_test_" + secrets.token_hex(12)


def parse_form(body):
    """Stripe's bracket notation into nested dicts/lists:
    line_items[0][price_data][currency]=usd -> {"line_items": [{"price_data": ...}]}"""
    result = {}
    for key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        parts = []
        head, _, rest = key.partition("[")
        parts.append(head)
        while rest:
            inner, _, rest = rest.partition("]")
            parts.append(inner)
            rest = rest[1:] if rest.startswith("[") else rest
        node = result
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":        # a[]=x: append
                node.setdefault("__list__", []).append(value)
                break
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _lists(result)


def _lists(node):
    if isinstance(node, dict):
        if "__list__" in node and len(node) == 1:
            return node["__list__"]
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def as_int(params, name, required=True):
    value = params.get(name)
    if value is None:
        if required:
            raise missing(name)
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(name, "Invalid integer: %s" % value)


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.reset()

    def reset(self):
        with self.lock:
            self.clock_offset = 0.0
            self.sessions = {}
            self.expiry_heap = []       # (expires_at, session id)
            self.intents = {}
            self.charges = {}
            self.refunds = {}
            self.events = []            # every event made, in order
            self.outgoing = []          # events waiting to be delivered
            self.held = []              # events held by mode "hold"
            self.idempotency = {}       # key -> (method, path, params, status, body)
            self.idem_locks = {}
            self.requests = []
            self.faults = []
            self.webhook_mode = "deliver"
            self.refund_mode = "succeeded"
            self.stats = {"api_requests": 0, "webhooks_sent": 0, "webhooks_failed": 0}

    def now(self):
        return time.time() + self.clock_offset

    # ---- events -------------------------------------------------------
    def emit(self, type_, obj, request_id=None, idem_key=None, previous=None):
        event = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(self.now()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": request_id, "idempotency_key": idem_key},
            "type": type_,
        }
        if previous:
            event["data"]["previous_attributes"] = previous
        record = {"event": event, "deliveries": []}
        self.events.append(record)
        if self.args.webhook_url:
            if self.webhook_mode == "drop":
                record["dropped"] = True
            elif self.webhook_mode == "hold":
                self.held.append(record)
            else:
                self.outgoing.append(record)
                if self.webhook_mode == "duplicate":
                    self.outgoing.append(record)
                self.cond.notify_all()
        return event

    # ---- objects ------------------------------------------------------
    def expire_due(self):
        """Open sessions past expires_at expire, like Stripe's own sweep
        (a heap by expiry time: no scan of every session per request)."""
        now = self.now()
        while self.expiry_heap and self.expiry_heap[0][0] <= now:
            _, sid = heapq.heappop(self.expiry_heap)
            s = self.sessions.get(sid)
            if s and s["status"] == "open":
                self._expire(s)

    def _expire(self, s):
        s["status"] = "expired"
        s["url"] = None
        self.emit("checkout.session.expired", s)

    def _pay(self, s, succeeded):
        """Make the payment intent (and its charge when it succeeded)."""
        pi_id = s["payment_intent"] or new_id("pi")
        pi = self.intents.get(pi_id) or {
            "id": pi_id, "object": "payment_intent", "amount": s["amount_total"],
            "amount_received": 0, "currency": s["currency"], "created": int(self.now()),
            "latest_charge": None, "livemode": False, "metadata": dict(s["metadata"]),
            "status": "processing"}
        self.intents[pi_id] = pi
        s["payment_intent"] = pi_id
        if succeeded:
            ch = {"id": new_id("ch"), "object": "charge", "amount": pi["amount"],
                  "amount_captured": pi["amount"], "amount_refunded": 0,
                  "captured": True, "created": int(self.now()), "currency": pi["currency"],
                  "livemode": False, "metadata": dict(pi["metadata"]), "paid": True,
                  "payment_intent": pi_id, "refunded": False, "status": "succeeded"}
            self.charges[ch["id"]] = ch
            pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=ch["id"])
            self.emit("charge.succeeded", ch)
            self.emit("payment_intent.succeeded", pi)
        return pi

    def complete(self, s, payment_status):
        if s["status"] != "open":
            raise ApiError(400, "Session %s is %s, not open." % (s["id"], s["status"]))
        s["status"] = "complete"
        s["url"] = None
        self._pay(s, payment_status == "paid")
        s["payment_status"] = "paid" if payment_status == "paid" else "unpaid"
        self.emit("checkout.session.completed", s)

    def async_result(self, s, result):
        if s["status"] != "complete" or s["payment_status"] != "unpaid":
            raise ApiError(400, "Session %s has no payment in progress." % s["id"])
        if result == "succeeded":
            self._pay(s, True)
            s["payment_status"] = "paid"
            self.emit("checkout.session.async_payment_succeeded", s)
        else:
            self.intents[s["payment_intent"]]["status"] = "requires_payment_method"
            self.emit("checkout.session.async_payment_failed", s)

    def set_refund_status(self, r, status):
        if r["status"] not in ("pending", "requires_action"):
            raise ApiError(400, "Refund %s is already %s." % (r["id"], r["status"]))
        previous = {"status": r["status"]}
        r["status"] = status
        ch = self.charges[r["charge"]]
        if status == "failed":
            r["failure_reason"] = "unknown"
            ch["amount_refunded"] -= r["amount"]
            ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
            self.emit("refund.failed", r)
        self.emit("refund.updated", r, previous=previous)
        self.emit("charge.refund.updated", r, previous=previous)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-standin/1.0"
    state = None   # set in main

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and the
        # client's delayed ACK add 40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    # ---- plumbing -----------------------------------------------------
    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode("utf-8", "replace") if n else ""

    def _send(self, status, obj, headers=None, content_type="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Stripe-Version", API_VERSION)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        body = self._body()
        try:
            if path.startswith("/_control/"):
                return self._control(method, path, body)
            if path.startswith("/pay/"):
                return self._page(method, path, body)
            if path.startswith("/v1/"):
                return self._api(method, path, url.query, body)
            self._send(404, {"error": {"type": "invalid_request_error",
                                       "message": "Unrecognized request URL (%s: %s)." % (method, path)}})
        except BrokenPipeError:
            pass
        except Exception as e:     # a bug here must not take the server down
            traceback.print_exc()
            self._send(500, {"error": {"type": "api_error", "message": "stand-in failure: %s" % e}})

    # ---- the Stripe API -------------------------------------------------
    def _api(self, method, path, query, body):
        st = self.state
        params = parse_form(body if method == "POST" else query)
        request_id = "req_" + secrets.token_hex(7)
        idem_key = self.headers.get("Idempotency-Key")
        with st.lock:
            st.stats["api_requests"] += 1
            record = {"method": method, "path": path, "params": params,
                      "idempotency_key": idem_key,
                      "stripe_version": self.headers.get("Stripe-Version"),
                      "content_type": self.headers.get("Content-Type"),
                      "at": st.now()}
            st.requests.append(record)
            fault = None
            for f in st.faults:
                if f["count"] > 0 and path.startswith(f.get("path") or "/"):
                    f["count"] -= 1
                    fault = dict(f)
                    break
            st.faults = [f for f in st.faults if f["count"] > 0]
        if fault:
            record["fault"] = fault
            if fault.get("delay"):
                time.sleep(float(fault["delay"]))
            if fault.get("close"):
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault.get("status"):
                record["status"] = int(fault["status"])
                return self._send(int(fault["status"]), {"error": {
                    "type": "api_error",
                    "message": "An unknown error occurred (injected by the stand-in)."}},
                    {"Request-Id": request_id})

        auth = self.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else None
        if not key:
            record["status"] = 401
            return self._send(401, {"error": {"type": "invalid_request_error", "message":
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."}})
        if key != st.args.secret_key:
            record["status"] = 401
            return self._send(401, {"error": {"type": "invalid_request_error",
                                              "message": "Invalid API Key provided: %s****%s" % (key[:8], key[-4:])}})

        headers = {"Request-Id": request_id}
        if method == "POST" and idem_key:
            headers["Idempotency-Key"] = idem_key
            with st.lock:
                lock = st.idem_locks.setdefault(idem_key, threading.Lock())
            with lock:   # a second request with the key waits for the first
                with st.lock:
                    saved = st.idempotency.get(idem_key)
                if saved:
                    if saved[0] != method or saved[1] != path or saved[2] != params:
                        record["status"] = 400
                        return self._send(400, {"error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with the same "
                                       "parameters they were first used with. Try using a key other "
                                       "than '%s' if you meant to execute a different request." % idem_key}},
                            headers)
                    headers["Idempotent-Replayed"] = "true"
                    record["status"] = saved[3]
                    record["replayed"] = True
                    return self._send(saved[3], saved[4], headers)
                status, obj, save = self._api_call(method, path, params, request_id, idem_key)
                data = json.dumps(obj, indent=2).encode()
                if save:
                    with st.lock:
                        st.idempotency[idem_key] = (method, path, params, status, data)
        else:
            status, obj, _ = self._api_call(method, path, params, request_id, idem_key)
            data = json.dumps(obj, indent=2).encode()
        record["status"] = status
        self._send(status, data, headers)

    def _api_call(self, method, path, params, request_id, idem_key):
        try:
            with self.state.lock:
                self.state.expire_due()
                return 200, self._route(method, path, params, request_id, idem_key), True
        except ApiError as e:
            return e.status, e.body, e.saved

    def _route(self, method, path, params, request_id, idem_key):
        st = self.state
        parts = path.strip("/").split("/")[1:]     # without "v1"
        if parts == ["checkout", "sessions"] and method == "POST":
            return self._create_session(params, request_id, idem_key)
        if len(parts) == 3 and parts[:2] == ["checkout", "sessions"] and method == "GET":
            s = self._session(parts[2])
            return self._expand(s, params.get("expand") or [])
        if len(parts) == 4 and parts[:2] == ["checkout", "sessions"] and parts[3] == "expire" \
                and method == "POST":
            s = self._session(parts[2])
            if s["status"] != "open":
                raise ApiError(400, 'Only Checkout Sessions with a status in ["open"] can be expired. '
                               'This Checkout Session has a status of "%s".' % s["status"])
            st._expire(s)
            return s
        if parts == ["refunds"] and method == "POST":
            return self._create_refund(params, request_id, idem_key)
        if len(parts) == 2 and parts[0] == "refunds" and method == "GET":
            r = st.refunds.get(parts[1])
            if not r:
                raise ApiError(404, "No such refund: '%s'" % parts[1], code="resource_missing", param="id")
            return r
        if len(parts) == 2 and parts[0] == "payment_intents" and method == "GET":
            pi = st.intents.get(parts[1])
            if not pi:
                raise ApiError(404, "No such payment_intent: '%s'" % parts[1],
                               code="resource_missing", param="intent")
            return self._expand_pi(pi, [e[len("latest_charge"):] for e in params.get("expand") or []
                                        if e == "latest_charge"])
        raise ApiError(404, "Unrecognized request URL (%s: %s)." % (method, path))

    def _session(self, sid):
        s = self.state.sessions.get(sid)
        if not s:
            raise ApiError(404, "No such checkout.session: '%s'" % sid,
                           code="resource_missing", param="session")
        return s

    def _expand_pi(self, pi, expand):
        pi = dict(pi)
        if "" in expand and pi.get("latest_charge"):
            pi["latest_charge"] = dict(self.state.charges[pi["latest_charge"]])
        return pi

    def _expand(self, s, expand):
        s = dict(s)
        if s.get("payment_intent") and ("payment_intent" in expand or
                                        "payment_intent.latest_charge" in expand):
            pi = self.state.intents[s["payment_intent"]]
            s["payment_intent"] = self._expand_pi(
                pi, [""] if "payment_intent.latest_charge" in expand else [])
        return s

    def _create_session(self, p, request_id, idem_key):
        st = self.state
        if "mode" not in p:
            raise missing("mode")
        if p["mode"] != "payment":
            raise invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
        if not p.get("success_url"):
            raise missing("success_url")
        for name in ("success_url", "cancel_url"):
            if p.get(name) and not p[name].startswith(("http://", "https://")):
                raise invalid(name, "Not a valid URL")
        items = p.get("line_items")
        if not isinstance(items, list) or not items:
            raise missing("line_items")
        currency = None
        total = 0
        for i, item in enumerate(items):
            pd = item.get("price_data") if isinstance(item, dict) else None
            if not isinstance(pd, dict):
                raise missing("line_items[%d][price_data]" % i)
            cur = pd.get("currency")
            if not cur:
                raise missing("line_items[%d][price_data][currency]" % i)
            if len(cur) != 3 or not cur.isalpha() or cur != cur.lower() or cur in NOT_MONEY:
                raise invalid("line_items[%d][price_data][currency]" % i,
                              "Invalid currency: %s. Stripe currently supports these currencies: "
                              "usd, eur, rub, jpy, ..." % cur)
            if currency and cur != currency:
                raise invalid("line_items", "All line items must use the same currency.")
            currency = cur
            amount = as_int(pd, "unit_amount")
            qty = as_int(item, "quantity")
            if amount < 0 or qty < 1:
                raise invalid("line_items[%d][price_data][unit_amount]" % i,
                              "This value must be greater than or equal to 0.")
            if currency in THREE_DECIMAL and amount % 10:
                raise ApiError(400, "Invalid amount. Currency %s is three-decimal and amounts "
                               "must be divisible by 10." % currency.upper(),
                               code="invalid_charge_amount", saved=False)
            if currency == "isk" and amount % 100:
                raise ApiError(400, "Invalid amount. Currency ISK has become effectively zero-decimal "
                               "and charged amounts must be evenly divisible by 100.",
                               code="invalid_charge_amount_no_decimal_compatible", saved=False)
            if not (pd.get("product_data") or {}).get("name"):
                raise missing("line_items[%d][price_data][product_data][name]" % i)
            total += amount * qty
        if total > 99999999:
            raise ApiError(400, "Amount must be no more than 999,999.99", code="amount_too_large",
                           saved=False)
        now = int(st.now())
        expires_at = as_int(p, "expires_at", required=False) or now + 24 * 3600
        if expires_at < now + 30 * 60 - 5:
            raise invalid("expires_at", "The `expires_at` timestamp must be at least 30 minutes "
                          "from Checkout Session creation.")
        if expires_at > now + 24 * 3600 + 5:
            raise invalid("expires_at", "The `expires_at` timestamp must be less than 24 hours "
                          "from Checkout Session creation.")
        sid = "cs_test_" + secrets.token_hex(24)
        s = {
            "id": sid, "object": "checkout.session",
            "amount_subtotal": total, "amount_total": total,
            "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"),
            "created": now, "currency": currency, "customer": None,
            "customer_email": p.get("customer_email"),
            "expires_at": expires_at, "livemode": False,
            "metadata": p.get("metadata") or {}, "mode": "payment",
            "payment_intent": None, "payment_status": "unpaid",
            "status": "open", "success_url": p["success_url"],
            "url": "%s/pay/%s" % (st.args.public_url, sid),
        }
        st.sessions[sid] = s
        heapq.heappush(st.expiry_heap, (expires_at, sid))
        return s

    def _create_refund(self, p, request_id, idem_key):
        st = self.state
        pi_id = p.get("payment_intent")
        if not pi_id and not p.get("charge"):
            raise ApiError(400, "One of the following params should be provided for this request: "
                           "payment_intent or charge.", saved=False)
        if pi_id:
            pi = st.intents.get(pi_id)
            if not pi:
                raise ApiError(404, "No such payment_intent: '%s'" % pi_id,
                               code="resource_missing", param="payment_intent")
            ch = st.charges.get(pi["latest_charge"]) if pi.get("latest_charge") else None
            if not ch:
                raise ApiError(400, "This PaymentIntent (%s) does not have a successful charge to "
                               "refund." % pi_id, code="charge_not_refundable")
        else:
            ch = st.charges.get(p["charge"])
            if not ch:
                raise ApiError(404, "No such charge: '%s'" % p["charge"], code="resource_missing",
                               param="charge")
        remaining = ch["amount"] - ch["amount_refunded"]
        amount = as_int(p, "amount", required=False)
        if amount is None:
            amount = remaining
        if remaining <= 0:
            raise ApiError(400, "Charge %s has already been refunded." % ch["id"],
                           code="charge_already_refunded")
        if amount <= 0 or amount > remaining:
            raise ApiError(400, "Refund amount (%d) is greater than unrefunded amount on charge (%d)"
                           % (amount, remaining), code="amount_too_large", param="amount")
        r = {"id": new_id("re"), "object": "refund", "amount": amount, "charge": ch["id"],
             "created": int(st.now()), "currency": ch["currency"],
             "metadata": p.get("metadata") or {}, "payment_intent": ch["payment_intent"],
             "reason": p.get("reason"), "status": st.refund_mode}
        st.refunds[r["id"]] = r
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
        st.emit("refund.created", r, request_id, idem_key)
        st.emit("charge.refunded", ch, request_id, idem_key)
        return r

    # ---- the hosted page ------------------------------------------------
    def _page(self, method, path, body):
        st = self.state
        sid = path[len("/pay/"):]
        with st.lock:
            st.expire_due()
            s = st.sessions.get(sid)
            if not s:
                return self._send(404, b"<h1>No such checkout session</h1>", content_type="text/html")
            if method == "POST":
                action = urllib.parse.parse_qs(body).get("action", [""])[0]
                if s["status"] == "open" and action == "pay":
                    st.complete(s, "paid")
                    target = s["success_url"]
                else:
                    target = s.get("cancel_url") or s["success_url"]
                target = target.replace("{CHECKOUT_SESSION_ID}", sid)
                return self._send(303, b"", {"Location": target}, content_type="text/html")
            amount = s["amount_total"]
            cur = s["currency"]
            exp = 0 if cur in ZERO_DECIMAL else 3 if cur in THREE_DECIMAL else 2
            shown = "%.*f %s" % (exp, amount / 10 ** exp, cur.upper())
            html = ("<!doctype html><title>Stripe stand-in checkout</title>"
                    "<h1>Checkout (stand-in)</h1><p>Session <code>%s</code>: <b>%s</b>, status %s.</p>"
                    "<form method=post><button name=action value=pay>Pay</button> "
                    "<button name=action value=cancel>Cancel</button></form>" % (sid, shown, s["status"]))
            self._send(200, html.encode(), content_type="text/html; charset=utf-8")

    # ---- control API ----------------------------------------------------
    def _control(self, method, path, body):
        st = self.state
        try:
            args = json.loads(body) if body.strip() else {}
        except ValueError:
            return self._send(400, {"error": "body must be JSON"})
        parts = path.strip("/").split("/")[1:]
        try:
            with st.lock:
                st.expire_due()
                result = self._control_route(method, parts, args)
        except ApiError as e:
            return self._send(e.status, e.body)
        except KeyError as e:
            return self._send(404, {"error": "not found: %s" % e})
        self._send(200, result)

    def _control_route(self, method, parts, a):
        st = self.state
        if method == "GET":
            if parts == ["requests"]:
                return st.requests
            if parts == ["events"]:
                return [dict(r["event"], _deliveries=r["deliveries"], _dropped=r.get("dropped", False))
                        for r in st.events]
            if parts == ["stats"]:
                return dict(st.stats, events=len(st.events), sessions=len(st.sessions))
            if len(parts) == 2 and parts[0] == "sessions":
                return st.sessions[parts[1]]
            if len(parts) == 2 and parts[0] == "refunds":
                return st.refunds[parts[1]]
        elif method == "POST":
            if len(parts) == 3 and parts[0] == "sessions":
                s = st.sessions[parts[1]]
                if parts[2] == "complete":
                    st.complete(s, a.get("payment_status", "paid"))
                elif parts[2] == "async":
                    st.async_result(s, a.get("result", "succeeded"))
                elif parts[2] == "expire":
                    if s["status"] != "open":
                        raise ApiError(400, "Session %s is %s, not open." % (s["id"], s["status"]))
                    st._expire(s)
                else:
                    raise KeyError(parts[2])
                return s
            if len(parts) == 2 and parts[0] == "refunds":
                r = st.refunds[parts[1]]
                st.set_refund_status(r, a.get("status", "succeeded"))
                return r
            if parts == ["refund_mode"]:
                st.refund_mode = a.get("status", "succeeded")
                return {"refund_mode": st.refund_mode}
            if parts == ["faults"]:
                fault = {"count": int(a.get("count", 1)), "status": a.get("status"),
                         "delay": a.get("delay"), "close": bool(a.get("close")),
                         "path": a.get("path")}
                if a.get("clear"):
                    st.faults = []
                else:
                    st.faults.append(fault)
                return {"faults": st.faults}
            if parts == ["webhooks"]:
                st.webhook_mode = a.get("mode", "deliver")
                return {"mode": st.webhook_mode}
            if parts == ["webhooks", "release"]:
                held = list(reversed(st.held)) if a.get("reverse") else list(st.held)
                st.held = []
                st.outgoing.extend(held)
                st.cond.notify_all()
                return {"released": [r["event"]["id"] for r in held]}
            if len(parts) == 3 and parts[:2] == ["webhooks", "resend"]:
                rec = next(r for r in st.events if r["event"]["id"] == parts[2])
                st.outgoing.append(rec)
                st.cond.notify_all()
                return {"resent": parts[2]}
            if parts == ["clock"]:
                if "now" in a:
                    st.clock_offset = float(a["now"]) - time.time()
                if "advance" in a:
                    st.clock_offset += float(a["advance"])
                st.expire_due()
                return {"now": st.now()}
            if parts == ["reset"]:
                st.reset()
                return {"reset": True}
        raise KeyError("/".join(parts))


def sign(secret, timestamp, payload):
    mac = hmac.new(secret.encode(), b"%d." % timestamp + payload, hashlib.sha256)
    return "t=%d,v1=%s" % (timestamp, mac.hexdigest())


def deliver_loop(state):
    """Sends webhooks like one Stripe endpoint: new events in order, one at a
    time.  As Stripe does, a delivery that fails (no connection, or any answer
    but 2xx) does not hold up the events behind it: it is tried again later
    with exponential backoff (--webhook-retry-base doubling up to
    --webhook-retry-max; Stripe's own schedule runs for three days), each
    attempt signed anew with the time of that attempt, until
    --webhook-retries retries are spent."""
    args = state.args
    url = urllib.parse.urlsplit(args.webhook_url)
    retries = []                # heap of (due, seq, record, attempt)
    seq = 0
    while True:
        with state.cond:
            while not state.outgoing and not (retries and retries[0][0] <= time.monotonic()):
                wait = 0.5 if not retries else min(0.5, max(0.0, retries[0][0] - time.monotonic()))
                state.cond.wait(wait)
                state.expire_due()
            if state.outgoing:
                record, attempt = state.outgoing.pop(0), 0
            else:
                _, _, record, attempt = heapq.heappop(retries)
            now = int(state.now())
        payload = json.dumps(record["event"], indent=2).encode()
        header = sign(args.webhook_secret, now, payload)
        try:
            conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
            conn.request("POST", url.path or "/", body=payload, headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": header, "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
            resp = conn.getresponse()
            resp.read()
            status = resp.status
            conn.close()
        except OSError as e:
            status = "error: %s" % e
        with state.lock:
            record["deliveries"].append({"at": time.time(), "status": status})
            ok = isinstance(status, int) and 200 <= status < 300
            state.stats["webhooks_sent" if ok else "webhooks_failed"] += 1
        if not ok and attempt < args.webhook_retries:
            delay = min(args.webhook_retry_base * (2 ** attempt), args.webhook_retry_max)
            seq += 1
            heapq.heappush(retries, (time.monotonic() + delay, seq, record, attempt + 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=12111)
    ap.add_argument("--secret-key", default=os.environ.get("STRIPE_SECRET_KEY", "sk_test_standin"))
    ap.add_argument("--webhook-url", default=None)
    ap.add_argument("--webhook-secret", default=os.environ.get("STRIPE_WEBHOOK_SECRET", "whsec_standin"))
    ap.add_argument("--webhook-retries", type=int, default=2,
                    help="retries of a failed webhook delivery (Stripe: about three days' worth)")
    ap.add_argument("--webhook-retry-base", type=float, default=0.2,
                    help="seconds before the first retry; doubles with each retry")
    ap.add_argument("--webhook-retry-max", type=float, default=3600.0,
                    help="longest wait between two retries, in seconds")
    ap.add_argument("--public-url", default=None,
                    help="base of the hosted checkout URLs (default http://HOST:PORT)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    args.public_url = (args.public_url or "http://%s:%d" % (args.host, args.port)).rstrip("/")

    Handler.state = State(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.verbose = args.verbose
    if args.webhook_url:
        threading.Thread(target=deliver_loop, args=(Handler.state,), daemon=True).start()
    print("stripe stand-in on http://%s:%d (webhooks to %s)" % (args.host, args.port,
                                                             args.webhook_url or "nowhere"), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
