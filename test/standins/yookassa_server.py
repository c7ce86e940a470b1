#!/usr/bin/python3
"""A loopback stand-in for the parts of YooKassa's API v3 the billing
extension uses, with YooKassa's shapes, status values, error format,
Idempotence-Key semantics and (unsigned) HTTP notifications, plus a control
API for tests.

    yookassa_server.py --port 12112 [--host 127.0.0.1]
                       [--shop-id 123456] [--secret-key test_standin]
                       [--notify-url http://127.0.0.1:3000/rpc/yookassa_webhook]
                       [--public-url http://127.0.0.1:12112]
                       [--confirmation-ttl 3600]

The shop id and the secret key may come from the environment instead
(YOOKASSA_SHOP_ID, YOOKASSA_SECRET_KEY), which `ps` does not show.

YooKassa API (JSON bodies, HTTP Basic auth shopId:secretKey, an
Idempotence-Key on every POST, kept 24 hours on the stand-in's clock):
    POST /v3/payments                 create (amount, capture, confirmation
                                      redirect, description, metadata, receipt,
                                      save_payment_method, merchant_customer_id),
                                      or charge a saved method (payment_method_id:
                                      no confirmation, decided at once)
    GET  /v3/payments                 list, newest first (created_at.gte/gt/lte/lt,
                                      status, limit 1..100, cursor -> next_cursor)
    GET  /v3/payments/{id}            read
    POST /v3/payments/{id}/cancel     cancel a waiting_for_capture payment
    POST /v3/refunds                  refund a succeeded payment
    GET  /v3/refunds/{id}             read a refund

Confirmation page, for people clicking through the local stack:
    GET  /confirm/{payment id}        a page with a test card number, "Pay" and
                                      "Decline"
    GET  /return                      a page to come back to (the local stack's return_url)

Test cards decide what paying does, as YooKassa's own do
(https://yookassa.ru/developers/payment-acceptance/testing-and-going-live/testing):
5555555555554444, 5555555555554477 (3-D Secure), 4111111111111111, 2202474301322987
and the others of TEST_CARDS succeed; 5555555555554600 is canceled with
insufficient_funds, 5555555555554543 card_expired, 5555555555554592
3d_secure_failed, 5555555555554576 payment_method_limit_exceeded, ... (each with
its party).  A payment made with save_payment_method: true saves its method
(payment_method {type: bank_card, id, saved: true, title, card {first6, last4,
expiry_month, expiry_year, card_type, issuer_country}}; its id is the payment's,
as at YooKassa); a payment with that payment_method_id is charged without the
buyer and succeeds or is canceled as the card decides (a method whose
permission the buyer revoked: permission_revoked).

Control API (JSON in and out; tests only):
    POST /_control/payments/{id}/succeed   the buyer paid ({"card": number}: with
                                           that successful test card)
    POST /_control/payments/{id}/pay       {"card": number}: the buyer pays with a
                                           test card: succeeded, or canceled with
                                           the card's reason; "can_save": false: a
                                           method YooKassa does not save
    POST /_control/payments/{id}/decline   {"reason": "insufficient_funds"}
    POST /_control/payments/{id}/waiting   paid, waiting_for_capture
    POST /_control/payments/{id}/expire    expired_on_confirmation
    POST /_control/refunds/{id}            {"status": "succeeded"|"canceled"}
    POST /_control/refund_mode             {"status": "succeeded"|"pending"}
    POST /_control/payment_methods/{id}    a saved method from now on:
                                           {"card": number} behaves as that test
                                           card; {"revoked": true} the buyer revoked
                                           it; {"mode": "pending"} its charges wait
                                           (until .../succeed or .../decline);
                                           {"mode": "confirmation"} they ask for the
                                           buyer (pending with a confirmation_url);
                                           {"mode": null} as the card decides
    GET  /_control/payment_methods/{id}    a saved method as stored
    POST /_control/faults                  {"count": N, "status": 500, "delay": s,
                                            "close": false, "path": "/v3/refunds",
                                            "method": "POST"}
                                           the next N matching API calls fail (or
                                           are slowed, or the connection is
                                           dropped); never saved under an
                                           Idempotence-Key
    POST /_control/notifications           {"mode": "deliver"|"drop"|"duplicate"|"hold"}
    POST /_control/notifications/release   {"reverse": true}: send held ones
    POST /_control/notifications/send      {"event": ..., "object": {...}}: send any
                                           body (a forgery, for tests)
    POST /_control/clock                   {"now": epoch} or {"advance": seconds}
    POST /_control/reset                   forget everything
    GET  /_control/requests                the API calls received
    GET  /_control/notifications           the notifications made and their deliveries
    GET  /_control/payments/{id}           a payment as stored

Notifications go out like YooKassa's: a POST of {"type": "notification",
"event", "object"}, unsigned, retried with backoff until the endpoint
answers 200 (YooKassa keeps trying for 24 hours; here --notify-retries).
Pending payments are canceled (expired_on_confirmation) by themselves after
--confirmation-ttl seconds on the stand-in's clock.
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AMOUNT_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,2})?$")
CURRENCIES = {"RUB", "USD", "EUR", "BYN", "CNY", "KZT", "UAH", "UZS", "TRY", "INR", "MDL", "AZN", "AMD"}
PAYMENT_SUBJECTS = {"commodity", "excise", "job", "service", "gambling_bet", "gambling_prize",
                    "lottery", "lottery_prize", "intellectual_activity", "payment", "agent_commission",
                    "composite", "another"}
PAYMENT_MODES = {"full_prepayment", "partial_prepayment", "advance", "full_payment",
                 "partial_payment", "credit", "credit_payment"}
IDEMPOTENCE_TTL = 24 * 3600     # YooKassa keeps an Idempotence-Key 24 hours

# YooKassa's test cards: number -> (reason it is canceled with, party), or None
# for a card that pays.  The 3-D Secure ones ask for it on the confirmation
# page (this stand-in's page is that step); a saved card never asks again.
SUCCEEDS = None
TEST_CARDS = {
    "5555555555554477": SUCCEEDS, "5555555555554444": SUCCEEDS,      # Mastercard (3-DS, none)
    "4793128161644804": SUCCEEDS, "4111111111111111": SUCCEEDS,      # Visa
    "2200000000000004": SUCCEEDS, "2202474301322987": SUCCEEDS,      # Mir
    "6759649826438453": SUCCEEDS, "4175001000000017": SUCCEEDS,      # Maestro, Visa Electron
    "370000000000002": SUCCEEDS, "3528000700000000": SUCCEEDS, "36700102000000": SUCCEEDS,
}
for reason, party, cards in (
        ("3d_secure_failed", "payment_network", "5555555555554592 4839665499603842 2200000000000012"),
        ("call_issuer", "payment_network", "5555555555554535 4926946416239025 2200000000000020"),
        ("card_expired", "payment_network", "5555555555554543 4141435412630840 2200000000000038"),
        ("fraud_suspected", "payment_network", "5555555555554568 4483274282299972 2200000000000046"),
        ("general_decline", "payment_network", "5555555555554527 4889971706588753 2202202212312379"),
        ("insufficient_funds", "payment_network", "5555555555554600 4562265587712390 2200000000000053"),
        ("invalid_card_number", "payment_network", "5555555555554618 4951017853630544 2201382000000013"),
        ("invalid_csc", "payment_network", "5555555555554626 4194180666146368 2200770212727079"),
        ("issuer_unavailable", "payment_network", "5555555555554501 4654130848359150 2201382000000021"),
        ("payment_method_limit_exceeded", "payment_network",
         "5555555555554576 4565231022577548 2201382000000039"),
        ("payment_method_restricted", "payment_network",
         "5555555555554550 4233961169071671 2201382000000047"),
        ("country_forbidden", "yoo_money", "5555555555554584 4969751510013864 2201382000000054"),
        ("fraud_suspected", "yoo_money", "5555555555554634 4119098878796485 2201696981989955")):
    for number in cards.split():
        TEST_CARDS[number] = (reason, party)
DEFAULT_CARD = "5555555555554444"


def card_type(number):
    """YooKassa's card_type: MasterCard (Maestro too), Visa, Mir, ..."""
    for prefix, kind in (("22", "Mir"), ("37", "AmericanExpress"), ("35", "JCB"),
                         ("36", "DinersClub"), ("67", "MasterCard"), ("5", "MasterCard"),
                         ("4", "Visa")):
        if number.startswith(prefix):
            return kind
    return "Unknown"


def card_outcome(number):
    """(reason, party) a payment with this card is canceled with, or None: it pays.
    A number that is no test card is refused as YooKassa's test shop does."""
    if number not in TEST_CARDS:
        return ("invalid_card_number", "payment_network")
    return TEST_CARDS[number]


def parse_time(value, parameter):
    """YooKassa's ISO 8601 time ("2026-12-02T01:02:03.456Z") as epoch seconds."""
    try:
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise bad(parameter, "Invalid date-time: %r" % (value,))
    if t.tzinfo is None:
        raise bad(parameter, "The time needs a zone (Z or +hh:mm)")
    return t.timestamp()


class ApiError(Exception):
    """YooKassa's error body: {"type": "error", "id", "code", "description", "parameter"}."""

    def __init__(self, status, code, description, parameter=None, saved=True):
        super().__init__(description)
        self.status = status
        self.body = {"type": "error", "id": str(uuid.uuid4()), "code": code,
                     "description": description}
        if parameter:
            self.body["parameter"] = parameter
        # Validation failures are not kept under the Idempotence-Key.
        self.saved = saved


def bad(parameter, description):
    return ApiError(400, "invalid_request", description, parameter, saved=False)


def new_id(kind):
    """YooKassa's ids look like uuids with a fixed middle: 2d5e4f6a-000f-5000-8000-1b2c3d4e5f60."""
    h = uuid.uuid4().hex
    return "%s-000f-5000-%s-%s" % (h[:8], "8000" if kind == "payment" else "9000", h[20:32])


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cents(value):
    whole, _, frac = value.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def check_amount(a, parameter):
    if not isinstance(a, dict):
        raise bad(parameter, "Amount is missing or not an object")
    value, currency = a.get("value"), a.get("currency")
    # YooKassa takes a string or a number; the extension must send a string.
    if not isinstance(value, str) or not AMOUNT_RE.match(value):
        raise bad(parameter + ".value", "Invalid amount value: %r" % (value,))
    if currency not in CURRENCIES:
        raise bad(parameter + ".currency", "Unsupported currency: %r" % (currency,))
    if cents(value) <= 0:
        raise bad(parameter + ".value", "Amount must be positive")
    return {"value": "%d.%02d" % divmod(cents(value), 100), "currency": currency}


def check_receipt(r, amount):
    if not isinstance(r, dict):
        raise bad("receipt", "Receipt must be an object")
    cust = r.get("customer") or {}
    if not (cust.get("email") or cust.get("phone")):
        raise bad("receipt.customer", "Receipt needs the customer's email or phone")
    items = r.get("items")
    if not isinstance(items, list) or not items:
        raise bad("receipt.items", "Receipt needs items")
    total = 0
    for i, it in enumerate(items):
        p = "receipt.items[%d]" % i
        if not isinstance(it.get("description"), str) or not 0 < len(it["description"]) <= 128:
            raise bad(p + ".description", "Item description must be 1..128 characters")
        if it.get("vat_code") not in range(1, 13):
            raise bad(p + ".vat_code", "Invalid vat_code")
        if it.get("payment_subject") not in PAYMENT_SUBJECTS:
            raise bad(p + ".payment_subject", "Invalid payment_subject")
        if it.get("payment_mode") not in PAYMENT_MODES:
            raise bad(p + ".payment_mode", "Invalid payment_mode")
        a = check_amount(it.get("amount"), p + ".amount")
        try:
            q = float(it.get("quantity"))
        except (TypeError, ValueError):
            raise bad(p + ".quantity", "Invalid quantity")
        total += round(cents(a["value"]) * q)
    if total != cents(amount["value"]):
        raise bad("receipt", "The sum of the receipt items differs from the amount")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.reset()

    def reset(self):
        with self.lock:
            self.clock_offset = 0.0
            self.payments = {}
            self.methods = {}           # saved payment methods: id -> behaviour
            self.refunds = {}
            self.notifications = []     # every notification made, in order
            self.outgoing = []
            self.held = []
            self.idempotency = {}       # key -> (method, path, body, status, data)
            self.idem_locks = {}
            self.requests = []
            self.faults = []
            self.notify_mode = "deliver"
            self.refund_mode = "succeeded"

    def now(self):
        return time.time() + self.clock_offset

    def notify(self, event, obj):
        record = {"body": {"type": "notification", "event": event,
                           "object": json.loads(json.dumps(obj))},
                  "deliveries": []}
        self._queue(record)
        return record

    def _queue(self, record):
        self.notifications.append(record)
        if not self.args.notify_url:
            return
        if self.notify_mode == "drop":
            record["dropped"] = True
        elif self.notify_mode == "hold":
            self.held.append(record)
        else:
            self.outgoing.append(record)
            if self.notify_mode == "duplicate":
                self.outgoing.append(record)
            self.cond.notify_all()

    # ---- payments ---------------------------------------------------------
    def expire_due(self):
        now = self.now()
        for p in self.payments.values():
            if p["status"] == "pending" and now >= p["_expires"]:
                self.cancel(p, "expired_on_confirmation", "yoo_money")

    def cancel(self, p, reason, party):
        p.update(status="canceled", paid=False,
                 cancellation_details={"party": party, "reason": reason})
        p.pop("confirmation", None)
        self.notify("payment.canceled", self.public(p))

    def attach_card(self, p, number, can_save=True):
        """The method the buyer paid with; saved (its id the payment's, as at
        YooKassa) when the payment asked to save it and it paid, unless it is a
        method YooKassa cannot save (can_save false)."""
        saved = bool(p.get("_save")) and card_outcome(number) is None and can_save
        p["payment_method"] = {
            "type": "bank_card", "id": p["id"], "saved": saved,
            "title": "Bank card *%s" % number[-4:],
            "card": {"first6": number[:6], "last4": number[-4:], "expiry_year": "2030",
                     "expiry_month": "12", "card_type": card_type(number),
                     "issuer_country": "RU"}}
        if saved:
            self.methods[p["id"]] = {"id": p["id"], "card": number, "behaves_as": number,
                                     "revoked": False, "mode": None,
                                     "merchant_customer_id": p.get("merchant_customer_id")}

    def pay(self, p, number, can_save=True):
        """The buyer pays on the confirmation page with a test card."""
        if p["status"] != "pending":
            raise ApiError(400, "invalid_request", "Payment %s is %s" % (p["id"], p["status"]))
        if p.get("_method"):
            # A saved method's payment that asked for the buyer: they confirm it.
            return self.succeed(p)
        self.attach_card(p, number, can_save)
        outcome = card_outcome(number)
        if outcome:
            self.cancel(p, *outcome)
        else:
            self.succeed(p)

    def charge_saved(self, p, method):
        """A payment with payment_method_id: decided at once, without the buyer
        (a recurring payment never asks for 3-D Secure), unless the method was
        told to wait or to ask for the buyer."""
        number = method["card"]
        p["payment_method"] = {
            "type": "bank_card", "id": method["id"], "saved": True,
            "title": "Bank card *%s" % number[-4:],
            "card": {"first6": number[:6], "last4": number[-4:], "expiry_year": "2030",
                     "expiry_month": "12", "card_type": card_type(number),
                     "issuer_country": "RU"}}
        p["_method"] = method["id"]
        if method["revoked"]:
            return self.cancel(p, "permission_revoked", "yoo_money")
        if method["mode"] == "pending":
            return
        if method["mode"] == "confirmation":
            p["confirmation"] = {"type": "redirect", "return_url": p.get("_return_url") or
                                 "%s/return" % self.args.public_url,
                                 "confirmation_url": "%s/confirm/%s" % (self.args.public_url, p["id"])}
            return
        outcome = card_outcome(method["behaves_as"])
        if outcome:
            self.cancel(p, *outcome)
        else:
            self.succeed(p)

    def succeed(self, p):
        if p["status"] not in ("pending", "waiting_for_capture"):
            raise ApiError(400, "invalid_request", "Payment %s is %s" % (p["id"], p["status"]))
        if "payment_method" not in p:
            self.attach_card(p, DEFAULT_CARD)
        if p["capture"] or p["status"] == "waiting_for_capture":
            p.update(status="succeeded", paid=True, captured_at=iso(self.now()), refundable=True,
                     income_amount=dict(p["amount"]))
            p.pop("confirmation", None)
            self.notify("payment.succeeded", self.public(p))
        else:
            self.waiting(p)

    def waiting(self, p):
        if p["status"] != "pending":
            raise ApiError(400, "invalid_request", "Payment %s is %s" % (p["id"], p["status"]))
        p.update(status="waiting_for_capture", paid=True,
                 expires_at=iso(self.now() + 7 * 86400))
        p.pop("confirmation", None)
        self.notify("payment.waiting_for_capture", self.public(p))

    def set_refund_status(self, r, status):
        if r["status"] != "pending":
            raise ApiError(400, "invalid_request", "Refund %s is already %s" % (r["id"], r["status"]))
        r["status"] = status
        p = self.payments[r["payment_id"]]
        if status == "canceled":
            r["cancellation_details"] = {"party": "yoo_money", "reason": "general_decline"}
            p["_refunded"] -= cents(r["amount"]["value"])
            self._refund_totals(p)
            self.notify("refund.canceled", r)
        else:
            self.notify("refund.succeeded", r)

    def _refund_totals(self, p):
        p["refunded_amount"] = {"value": "%d.%02d" % divmod(p["_refunded"], 100),
                                "currency": p["amount"]["currency"]}

    @staticmethod
    def public(p):
        return {k: v for k, v in p.items() if not k.startswith("_")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "yookassa-standin/1.0"
    state = None

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode("utf-8", "replace") if n else ""

    def _send(self, status, obj, headers=None, content_type="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj, indent=2, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        try:
            if url.path.startswith("/_control/"):
                return self._control(method, url.path, body)
            if url.path.startswith("/confirm/"):
                return self._page(method, url.path, body)
            if url.path.startswith("/v3/"):
                return self._api(method, url.path, body, url.query)
            if url.path == "/return":
                return self._send(200, b"<!doctype html><meta charset=utf-8><title>Back at the shop</title>"
                                  b"<h1>Back at the shop (stand-in)</h1><p>The shop now asks "
                                  b"billing.confirm_payment, or waits for the notification.</p>",
                                  content_type="text/html; charset=utf-8")
            self._send(404, ApiError(404, "not_found", "Unknown path %s" % url.path).body)
        except BrokenPipeError:
            pass
        except Exception as e:
            traceback.print_exc()
            self._send(500, ApiError(500, "internal_server_error", "stand-in failure: %s" % e).body)

    # ---- the API ------------------------------------------------------------
    def _api(self, method, path, body, query=""):
        st = self.state
        idem_key = self.headers.get("Idempotence-Key")
        auth = self.headers.get("Authorization", "")
        user = None
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":") \
                if auth.startswith("Basic ") else (None, None, None)
        except (ValueError, UnicodeDecodeError):
            password = None
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = body
        with st.lock:
            record = {"method": method, "path": path, "query": query, "body": parsed,
                      "idempotence_key": idem_key,
                      "shop_id": user, "content_type": self.headers.get("Content-Type"),
                      "at": st.now()}
            st.requests.append(record)
            fault = None
            for f in st.faults:
                if f["count"] > 0 and path.startswith(f.get("path") or "/") and \
                        f.get("method") in (None, method):
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
                return self._send(int(fault["status"]), ApiError(
                    int(fault["status"]), "internal_server_error",
                    "Internal server error (injected by the stand-in)").body)

        if user != st.args.shop_id or password != st.args.secret_key:
            record["status"] = 401
            return self._send(401, ApiError(401, "invalid_credentials",
                                            "Basic auth: shop id or secret key is wrong").body)

        if method == "POST":
            if not idem_key:
                record["status"] = 400
                return self._send(400, bad("Idempotence-Key", "Idempotence-Key header is required").body)
            if len(idem_key) > 64:
                record["status"] = 400
                return self._send(400, bad("Idempotence-Key", "Idempotence-Key is too long").body)
            with st.lock:
                lock = st.idem_locks.setdefault(idem_key, threading.Lock())
            with lock:
                with st.lock:
                    saved = st.idempotency.get(idem_key)
                    if saved and st.now() - saved[5] >= IDEMPOTENCE_TTL:
                        saved = None        # YooKassa forgets a key after 24 hours
                if saved:
                    if saved[0] != method or saved[1] != path or saved[2] != parsed:
                        record["status"] = 400
                        return self._send(400, ApiError(
                            400, "invalid_request",
                            "Idempotence key duplicated: the request differs from the first one").body)
                    record["status"] = saved[3]
                    record["replayed"] = True
                    return self._send(saved[3], saved[4])
                status, obj, save = self._api_call(method, path, parsed, query)
                data = json.dumps(obj, indent=2, ensure_ascii=False).encode()
                if save:
                    with st.lock:
                        st.idempotency[idem_key] = (method, path, parsed, status, data, st.now())
        else:
            status, obj, _ = self._api_call(method, path, parsed, query)
            data = json.dumps(obj, indent=2, ensure_ascii=False).encode()
        record["status"] = status
        self._send(status, data)

    def _api_call(self, method, path, body, query=""):
        try:
            with self.state.lock:
                self.state.expire_due()
                return 200, self._route(method, path, body, query), True
        except ApiError as e:
            return e.status, e.body, e.saved

    def _payment(self, pid):
        p = self.state.payments.get(pid)
        if not p:
            raise ApiError(404, "not_found", "Payment not found", "payment_id")
        return p

    def _route(self, method, path, body, query=""):
        st = self.state
        parts = path.strip("/").split("/")[1:]
        if parts == ["payments"] and method == "POST":
            return self._create_payment(body)
        if parts == ["payments"] and method == "GET":
            return self._list_payments(query)
        if len(parts) == 2 and parts[0] == "payments" and method == "GET":
            return st.public(self._payment(parts[1]))
        if len(parts) == 3 and parts[0] == "payments" and parts[2] == "cancel" and method == "POST":
            p = self._payment(parts[1])
            if p["status"] != "waiting_for_capture":
                raise ApiError(400, "invalid_request",
                               "Payment with status %s can't be canceled" % p["status"])
            st.cancel(p, "canceled_by_merchant", "merchant")
            return st.public(p)
        if parts == ["refunds"] and method == "POST":
            return self._create_refund(body)
        if len(parts) == 2 and parts[0] == "refunds" and method == "GET":
            r = st.refunds.get(parts[1])
            if not r:
                raise ApiError(404, "not_found", "Refund not found", "refund_id")
            return r
        raise ApiError(404, "not_found", "Unknown method %s %s" % (method, path))

    def _create_payment(self, b):
        st = self.state
        if not isinstance(b, dict):
            raise bad("body", "The body must be a JSON object")
        amount = check_amount(b.get("amount"), "amount")
        method_id = b.get("payment_method_id")
        method = None
        if method_id is not None:
            # A saved method: charged without the buyer, no confirmation needed.
            method = st.methods.get(method_id) if isinstance(method_id, str) else None
            if method is None:
                raise bad("payment_method_id", "Payment method %r is unknown or was not saved" % (method_id,))
            if "save_payment_method" in b:
                raise bad("save_payment_method", "A saved payment method is saved already")
        conf = b.get("confirmation")
        if (method is None or conf is not None) and (
                not isinstance(conf, dict) or conf.get("type") != "redirect" or
                not str(conf.get("return_url", "")).startswith(("http://", "https://"))):
            raise bad("confirmation", "confirmation must be {type: redirect, return_url}")
        save = b.get("save_payment_method", False)
        if not isinstance(save, bool):
            raise bad("save_payment_method", "save_payment_method must be true or false")
        customer = b.get("merchant_customer_id")
        if customer is not None and (not isinstance(customer, str) or not 0 < len(customer) <= 200):
            raise bad("merchant_customer_id", "merchant_customer_id must be 1..200 characters")
        desc = b.get("description")
        if desc is not None and (not isinstance(desc, str) or len(desc) > 128):
            raise bad("description", "description must be at most 128 characters")
        md = b.get("metadata") or {}
        if not isinstance(md, dict) or len(md) > 16:
            raise bad("metadata", "metadata must be an object of at most 16 keys")
        if "receipt" in b:
            check_receipt(b["receipt"], amount)
        elif st.args.require_receipt:
            raise bad("receipt", "Receipt is missing or illegal")
        pid = new_id("payment")
        now = st.now()
        p = {"id": pid, "status": "pending", "paid": False, "amount": amount,
             "description": desc, "recipient": {"account_id": st.args.shop_id, "gateway_id": "100500"},
             "created_at": iso(now),
             "test": True, "refundable": False, "metadata": md,
             "capture": bool(b.get("capture", False)),
             "_created": now, "_expires": now + st.args.confirmation_ttl, "_refunded": 0,
             "_save": save}
        if method is None:
            p["confirmation"] = {"type": "redirect", "return_url": conf["return_url"],
                                 "confirmation_url": "%s/confirm/%s" % (st.args.public_url, pid)}
        elif conf is not None:
            p["_return_url"] = conf["return_url"]
        if customer is not None:
            p["merchant_customer_id"] = customer
        if "receipt" in b:
            p["receipt_registration"] = "pending"
            p["_receipt"] = b["receipt"]
        if p["description"] is None:
            del p["description"]
        st.payments[pid] = p
        if method is not None:
            st.charge_saved(p, method)
        return st.public(p)

    def _list_payments(self, query):
        """GET /v3/payments: newest first, filtered, a page of `limit` and a
        next_cursor while more remain (the cursor names the last one given)."""
        st = self.state
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        args = {k: v[-1] for k, v in q.items()}
        known = {"created_at.gte", "created_at.gt", "created_at.lte", "created_at.lt",
                 "status", "limit", "cursor"}
        for k in args:
            if k not in known:
                raise bad(k, "Unknown parameter %s" % k)
        try:
            limit = int(args.get("limit", "10"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise bad("limit", "limit must be 1..100")
        bounds = {op: parse_time(args["created_at." + op], "created_at." + op)
                  for op in ("gte", "gt", "lte", "lt") if "created_at." + op in args}
        rows = [p for p in st.payments.values()
                if ("gte" not in bounds or p["_created"] >= bounds["gte"]) and
                ("gt" not in bounds or p["_created"] > bounds["gt"]) and
                ("lte" not in bounds or p["_created"] <= bounds["lte"]) and
                ("lt" not in bounds or p["_created"] < bounds["lt"]) and
                ("status" not in args or p["status"] == args["status"])]
        rows.sort(key=lambda p: (p["_created"], p["id"]), reverse=True)
        if "cursor" in args:
            try:
                created, _, after = base64.urlsafe_b64decode(args["cursor"].encode()).decode().partition("|")
                key = (float(created), after)
            except (ValueError, UnicodeDecodeError):
                raise bad("cursor", "Invalid cursor")
            rows = [p for p in rows if (p["_created"], p["id"]) < key]
        page = rows[:limit]
        out = {"type": "list", "items": [st.public(p) for p in page]}
        if len(rows) > limit:
            last = page[-1]
            out["next_cursor"] = base64.urlsafe_b64encode(
                ("%r|%s" % (last["_created"], last["id"])).encode()).decode()
        return out

    def _create_refund(self, b):
        st = self.state
        if not isinstance(b, dict):
            raise bad("body", "The body must be a JSON object")
        p = st.payments.get(b.get("payment_id"))
        if not p:
            raise ApiError(404, "not_found", "Payment not found", "payment_id")
        amount = check_amount(b.get("amount"), "amount")
        if amount["currency"] != p["amount"]["currency"]:
            raise bad("amount.currency", "The refund's currency differs from the payment's")
        if p["status"] != "succeeded":
            raise ApiError(400, "invalid_request", "Payment with status %s can't be refunded" % p["status"])
        if "receipt" in b:
            check_receipt(b["receipt"], amount)
        remaining = cents(p["amount"]["value"]) - p["_refunded"]
        if cents(amount["value"]) > remaining:
            raise ApiError(400, "invalid_request", "Refund amount exceeds the payment's remaining amount",
                           "amount.value")
        r = {"id": new_id("refund"), "payment_id": p["id"], "status": st.refund_mode,
             "created_at": iso(st.now()), "amount": amount}
        if b.get("description"):
            r["description"] = b["description"]
        st.refunds[r["id"]] = r
        p["_refunded"] += cents(amount["value"])
        st._refund_totals(p)
        if r["status"] == "succeeded":
            st.notify("refund.succeeded", r)
        return r

    # ---- the confirmation page ----------------------------------------------
    def _page(self, method, path, body):
        st = self.state
        pid = path[len("/confirm/"):]
        with st.lock:
            st.expire_due()
            p = st.payments.get(pid)
            if not p:
                return self._send(404, b"<h1>No such payment</h1>", content_type="text/html")
            if method == "POST":
                form = urllib.parse.parse_qs(body)
                action = form.get("action", [""])[0]
                card = re.sub(r"[^0-9]", "", form.get("card", [DEFAULT_CARD])[0]) or DEFAULT_CARD
                target = p.get("_return_url") or (p.get("confirmation") or {}).get("return_url")
                p["_return_url"] = target
                if p["status"] == "pending":
                    if action == "pay":
                        st.pay(p, card)
                    elif action == "decline":
                        st.cancel(p, "insufficient_funds", "payment_network")
                return self._send(303, b"", {"Location": target or "/"}, content_type="text/html")
            html = ("<!doctype html><meta charset=utf-8><title>YooKassa stand-in</title>"
                    "<h1>Payment confirmation (stand-in)</h1>"
                    "<p>Payment <code>%s</code>: <b>%s %s</b>, %s, status %s.</p>"
                    "<form method=post>%s<button name=action value=pay>Pay</button> "
                    "<button name=action value=decline>Decline</button></form>"
                    % (pid, p["amount"]["value"], p["amount"]["currency"],
                       p.get("description", ""), p["status"],
                       "<p>Saved card, confirm the payment.</p>" if p.get("_method") else
                       "<p><label>Test card <input name=card value=%s size=19></label></p>"
                       % DEFAULT_CARD))
            self._send(200, html.encode(), content_type="text/html; charset=utf-8")

    # ---- control API ----------------------------------------------------------
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
        except (KeyError, StopIteration) as e:
            return self._send(404, {"error": "not found: %s" % e})
        self._send(200, result)

    def _control_route(self, method, parts, a):
        st = self.state
        if method == "GET":
            if parts == ["requests"]:
                return st.requests
            if parts == ["notifications"]:
                return [dict(r["body"], _deliveries=r["deliveries"], _dropped=r.get("dropped", False))
                        for r in st.notifications]
            if len(parts) == 2 and parts[0] == "payments":
                return st.payments[parts[1]]
            if len(parts) == 2 and parts[0] == "refunds":
                return st.refunds[parts[1]]
            if len(parts) == 2 and parts[0] == "payment_methods":
                return st.methods[parts[1]]
        elif method == "POST":
            if len(parts) == 3 and parts[0] == "payments":
                p = st.payments[parts[1]]
                card = a.get("card")
                if card is not None and card not in TEST_CARDS:
                    raise ApiError(400, "invalid_request", "%r is no test card" % (card,))
                if parts[2] == "succeed":
                    if card is not None:
                        if card_outcome(card) is not None:
                            raise ApiError(400, "invalid_request",
                                           "Card %s does not pay; use .../pay" % card)
                        if p["status"] == "pending" and not p.get("_method"):
                            st.attach_card(p, card)
                    st.succeed(p)
                elif parts[2] == "pay":
                    st.pay(p, card or DEFAULT_CARD, a.get("can_save", True))
                elif parts[2] == "waiting":
                    st.waiting(p)
                elif parts[2] in ("decline", "expire"):
                    if p["status"] != "pending":
                        raise ApiError(400, "invalid_request", "Payment %s is %s" % (p["id"], p["status"]))
                    st.cancel(p, a.get("reason", "insufficient_funds") if parts[2] == "decline"
                              else "expired_on_confirmation",
                              "payment_network" if parts[2] == "decline" else "yoo_money")
                else:
                    raise KeyError(parts[2])
                return st.public(p)
            if len(parts) == 2 and parts[0] == "payment_methods":
                m = st.methods[parts[1]]
                if "card" in a:
                    if a["card"] not in TEST_CARDS:
                        raise ApiError(400, "invalid_request", "%r is no test card" % (a["card"],))
                    m["behaves_as"] = a["card"]
                if "revoked" in a:
                    m["revoked"] = bool(a["revoked"])
                if "mode" in a:
                    if a["mode"] not in (None, "pending", "confirmation"):
                        raise ApiError(400, "invalid_request", "mode is pending, confirmation or null")
                    m["mode"] = a["mode"]
                return m
            if len(parts) == 2 and parts[0] == "refunds":
                r = st.refunds[parts[1]]
                st.set_refund_status(r, a.get("status", "succeeded"))
                return r
            if parts == ["refund_mode"]:
                st.refund_mode = a.get("status", "succeeded")
                return {"refund_mode": st.refund_mode}
            if parts == ["faults"]:
                if a.get("clear"):
                    st.faults = []
                else:
                    st.faults.append({"count": int(a.get("count", 1)), "status": a.get("status"),
                                      "delay": a.get("delay"), "close": bool(a.get("close")),
                                      "path": a.get("path"), "method": a.get("method")})
                return {"faults": st.faults}
            if parts == ["notifications"]:
                st.notify_mode = a.get("mode", "deliver")
                return {"mode": st.notify_mode}
            if parts == ["notifications", "release"]:
                held = list(reversed(st.held)) if a.get("reverse") else list(st.held)
                st.held = []
                st.outgoing.extend(held)
                st.cond.notify_all()
                return {"released": len(held)}
            if parts == ["notifications", "send"]:
                record = {"body": a.get("raw") if "raw" in a else
                          {"type": "notification", "event": a.get("event"), "object": a.get("object")},
                          "deliveries": [], "forged": True}
                st.notifications.append(record)
                st.outgoing.append(record)
                st.cond.notify_all()
                return {"queued": True}
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


def deliver_loop(state):
    """Sends notifications one at a time, in order, to the one endpoint; a
    delivery that does not get a 200 is retried with backoff (YooKassa keeps
    trying for 24 hours)."""
    args = state.args
    url = urllib.parse.urlsplit(args.notify_url)
    while True:
        with state.cond:
            while not state.outgoing:
                state.cond.wait(0.5)
                state.expire_due()
            record = state.outgoing.pop(0)
        body = record["body"]
        payload = body.encode() if isinstance(body, str) else json.dumps(body, ensure_ascii=False).encode()
        for attempt in range(1 + args.notify_retries):
            try:
                conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
                conn.request("POST", url.path or "/", body=payload, headers={
                    "Content-Type": "application/json", "User-Agent": "YooKassa.Notifications/1.0"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                conn.close()
            except OSError as e:
                status = "error: %s" % e
            with state.lock:
                record["deliveries"].append({"at": time.time(), "status": status})
            if status == 200:
                break
            time.sleep(min(0.2 * (2 ** attempt), 5))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=12112)
    ap.add_argument("--shop-id", default=os.environ.get("YOOKASSA_SHOP_ID", "123456"))
    ap.add_argument("--secret-key", default=os.environ.get("YOOKASSA_SECRET_KEY", "test_standin"))
    ap.add_argument("--notify-url", default=None)
    ap.add_argument("--notify-retries", type=int, default=5)
    ap.add_argument("--confirmation-ttl", type=float, default=3600)
    ap.add_argument("--require-receipt", action="store_true",
                    help="refuse payments without a receipt, like a shop with 54-FZ receipts on")
    ap.add_argument("--public-url", default=None,
                    help="base of the confirmation URLs (default http://HOST:PORT)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    args.public_url = (args.public_url or "http://%s:%d" % (args.host, args.port)).rstrip("/")

    Handler.state = State(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.verbose = args.verbose
    if args.notify_url:
        threading.Thread(target=deliver_loop, args=(Handler.state,), daemon=True).start()
    print("yookassa stand-in on http://%s:%d (notifications to %s)"
          % (args.host, args.port, args.notify_url or "nowhere"), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
