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
    POST /v1/customers                        create (email, name, metadata[...])
    GET  /v1/customers/{id}                   retrieve a customer
    POST /v1/checkout/sessions                create (mode=payment, line_items, customer,
                                              payment_intent_data[setup_future_usage], ...)
    GET  /v1/checkout/sessions/{id}           retrieve (expand[]=payment_intent,
                                              expand[]=payment_intent.latest_charge,
                                              expand[]=payment_intent.payment_method)
    POST /v1/checkout/sessions/{id}/expire    expire an open session
    GET  /v1/payment_methods/{id}             retrieve a saved card
    GET  /v1/payment_methods?customer=&type=card  a customer's cards, newest first
    GET  /v1/customers/{id}/payment_methods   the same
    POST /v1/payment_intents                  create (amount, currency, customer,
                                              payment_method, off_session, confirm,
                                              return_url, description, metadata, expand[])
    GET  /v1/payment_intents/{id}             retrieve (expand[]=latest_charge, payment_method)
    POST /v1/payment_intents/{id}/confirm     confirm (payment_method, return_url, off_session)
    POST /v1/payment_intents/{id}/cancel      cancel (cancellation_reason)
    GET  /v1/payment_intents                  list (customer, created[gte], limit,
                                              expand[]=data.latest_charge), newest first
    POST /v1/refunds                          refund a payment_intent
    GET  /v1/refunds/{id}                     retrieve a refund

Cards (https://docs.stripe.com/testing).  A payment method is made from a
test card number when a checkout session is paid, or from one of Stripe's
test ids used as `payment_method` (pm_card_visa, pm_card_mastercard,
pm_card_chargeDeclined, pm_card_chargeDeclinedInsufficientFunds,
pm_card_chargeDeclinedExpiredCard, pm_card_chargeCustomerFail,
pm_card_authenticationRequired; one shared object each, made on first use).
The card decides what a PaymentIntent's confirmation does:
    4242424242424242 visa, 5555555555554444 mastercard   succeed
    4000000000000002   402 card_declined / generic_decline
    4000000000009995   402 card_declined / insufficient_funds
    4000000000000069   402 expired_card
    4000000000000341   attaches; every charge 402 card_declined / generic_decline
    4000002760003184   always asks for authentication: off_session=true gives 402
                       authentication_required, on-session gives requires_action
                       with next_action redirect_to_url /authenticate/{pi}
A checkout payment itself succeeds whatever the card (the stand-in's
simplification: at Stripe the declining cards would fail there already).
A declined confirmation answers 402 with the error, the intent (status
requires_payment_method, last_payment_error) and the method; like any answer
of an endpoint that ran, it is saved under its Idempotency-Key and replayed.

Hosted pages, for people clicking through the local stack:
    GET  /pay/{session id}                    "Pay" (with a test card) and "Cancel"
    GET  /authenticate/{payment intent id}    "Complete" or "Fail" an authentication;
                                              then 303 to the intent's return_url with
                                              ?payment_intent=pi_...&redirect_status=...

Control API (JSON in and out; tests only):
    POST /_control/sessions/{id}/complete     {"payment_status": "paid"|"unpaid",
                                               "card": "4000000000009995"}
                                              (card: default 4242424242424242)
    POST /_control/sessions/{id}/async        {"result": "succeeded"|"failed"}
    POST /_control/sessions/{id}/expire       {}
    POST /_control/payment_intents/{id}/authenticate  {"result": "succeeded"|"failed"}:
                                              what the hosted page's buttons do
    POST /_control/payment_methods/{id}/card  {"number": "4000000000000002"}: the saved
                                              method behaves as that test card from now
                                              on (its brand and last4 stay)
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
    GET  /_control/payment_intents/{id}       a payment intent as stored
    GET  /_control/customers/{id}             a customer as stored
    GET  /_control/payment_methods/{id}       a payment method, with _behaves_as (card number)
    GET  /_control/stats                      counters (for the benchmark)

Webhooks are signed the way Stripe signs them: the header
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
Sessions expire by themselves at expires_at on the stand-in's clock.
Besides the checkout, refund and charge events, it sends customer.created,
payment_method.attached, payment_intent.created, payment_intent.succeeded,
payment_intent.payment_failed, payment_intent.requires_action,
payment_intent.canceled and charge.failed, as Stripe does.
"""

import argparse
import hashlib
import heapq
import hmac
import html
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

# https://docs.stripe.com/testing: the test cards and what a charge on each
# does (None: it succeeds; "authenticate": the bank asks for the cardholder).
TEST_CARDS = {
    "4242424242424242": ("visa", None),
    "5555555555554444": ("mastercard", None),
    "4000000000000002": ("visa", "generic_decline"),
    "4000000000009995": ("visa", "insufficient_funds"),
    "4000000000000069": ("visa", "expired_card"),
    "4000000000000341": ("visa", "generic_decline"),    # attaches, then every charge fails
    "4000002760003184": ("visa", "authenticate"),
}
DEFAULT_CARD = "4242424242424242"
# decline -> (error code, decline_code, message), Stripe's texts.
DECLINES = {
    "generic_decline": ("card_declined", "generic_decline", "Your card was declined."),
    "insufficient_funds": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "expired_card": ("expired_card", "expired_card", "Your card has expired."),
    "authentication_required": ("authentication_required", "authentication_required",
                                "Your card was declined. This transaction requires authentication."),
}
# Stripe's test PaymentMethod ids, usable as payment_method in test mode.
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_authenticationRequired": "4000002760003184",
}


class ApiError(Exception):
    """A Stripe error response: {"error": {"type", "message", "code", "param"}}."""

    def __init__(self, status, message, type_="invalid_request_error", code=None,
                 param=None, saved=True, extra=None):
        super().__init__(message)
        self.status = status
        self.body = {"error": error_object(message, type_, code, param, extra)}
        # Stripe saves the result under an Idempotency-Key only when the
        # endpoint began executing: validation failures are not saved.
        self.saved = saved


def error_object(message, type_="invalid_request_error", code=None, param=None, extra=None):
    """Stripe's error object, as in an error response or last_payment_error."""
    err = {"type": type_, "message": message}
    if code:
        err["code"] = code
        err["doc_url"] = "https://stripe.com/docs/error-codes/" + code.replace("_", "-")
    if param:
        err["param"] = param
    err.update(extra or {})
    return err


def copy(obj):
    """A deep copy of a stored object, as it stands now (for an event or an
    error that must not change when the object does later)."""
    return json.loads(json.dumps(obj))


def missing(param):
    return ApiError(400, "Missing required param: %s." % param, code="parameter_missing",
                    param=param, saved=False)


def invalid(param, message):
    return ApiError(400, message, code="parameter_invalid_integer" if "integer" in message
                    else "parameter_invalid", param=param, saved=False)


def html_page(title, body):
    return ("<!doctype html><meta charset=utf-8><title>%s</title>%s" % (title, body)).encode()


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


def as_bool(params, name):
    value = params.get(name)
    if value is None or value == "":
        return False
    if value in ("true", "false"):
        return value == "true"
    raise invalid(name, "Invalid boolean: %s" % value)


def check_currency(cur, param):
    if len(cur) != 3 or not cur.isalpha() or cur != cur.lower() or cur in NOT_MONEY:
        raise invalid(param, "Invalid currency: %s. Stripe currently supports these currencies: "
                      "usd, eur, rub, jpy, ..." % cur)


def check_amount(amount, currency, param):
    if currency in THREE_DECIMAL and amount % 10:
        raise ApiError(400, "Invalid amount. Currency %s is three-decimal and amounts "
                       "must be divisible by 10." % currency.upper(),
                       code="invalid_charge_amount", param=param, saved=False)
    if currency == "isk" and amount % 100:
        raise ApiError(400, "Invalid amount. Currency ISK has become effectively zero-decimal "
                       "and charged amounts must be evenly divisible by 100.",
                       code="invalid_charge_amount_no_decimal_compatible", param=param, saved=False)
    if amount > 99999999:
        raise ApiError(400, "Amount must be no more than 999,999.99", code="amount_too_large",
                       param=param, saved=False)


def shown_amount(amount, cur):
    exp = 0 if cur in ZERO_DECIMAL else 3 if cur in THREE_DECIMAL else 2
    return "%.*f %s" % (exp, amount / 10 ** exp, cur.upper())


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
            self.customers = {}
            self.payment_methods = {}
            self.customer_methods = {}  # customer id -> its payment method ids, oldest first
            self.customer_intents = {}  # customer id -> its payment intent ids, oldest first
            self.behaves_as = {}        # payment method id -> the test card number it charges as
            self.spent_methods = set()  # used once without a customer: not usable again
            self.session_sfu = {}       # session id -> payment_intent_data[setup_future_usage]
            self.return_urls = {}       # payment intent id -> return_url
            self.events = []            # every event made, in order
            self.outgoing = []          # events waiting to be delivered
            self.held = []              # events held by mode "hold"
            self.idempotency = {}       # key -> (method, path, params, status, body)
            self.idem_locks = {}
            self.requests = []
            self.faults = []
            self.webhook_mode = "deliver"
            self.refund_mode = "succeeded"
            self.stats = {"api_requests": 0, "webhooks_sent": 0, "webhooks_failed": 0,
                          "payment_intents": 0, "charges_succeeded": 0, "charges_failed": 0}

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

    def new_intent(self, amount, currency, metadata, customer=None, payment_method=None,
                   setup_future_usage=None, description=None, status="requires_payment_method"):
        pi_id = new_id("pi")
        pi = {
            "id": pi_id, "object": "payment_intent", "amount": amount,
            "amount_capturable": 0, "amount_received": 0, "canceled_at": None,
            "cancellation_reason": None, "capture_method": "automatic",
            "client_secret": "%s_secret_%s" % (pi_id, secrets.token_hex(12)),
            "confirmation_method": "automatic", "created": int(self.now()),
            "currency": currency, "customer": customer, "description": description,
            "last_payment_error": None, "latest_charge": None, "livemode": False,
            "metadata": metadata, "next_action": None, "payment_method": payment_method,
            "payment_method_types": ["card"], "setup_future_usage": setup_future_usage,
            "status": status}
        self.intents[pi_id] = pi
        if customer:
            self.customer_intents.setdefault(customer, []).append(pi_id)
        return pi

    def _charge(self, pi, pm, decline=None):
        """A charge of the intent's whole amount on pm: succeeded, or failed
        with the decline (a key of DECLINES)."""
        ok = decline is None
        ch = {"id": new_id("ch"), "object": "charge", "amount": pi["amount"],
              "amount_captured": pi["amount"] if ok else 0, "amount_refunded": 0,
              "captured": ok, "created": int(self.now()), "currency": pi["currency"],
              "customer": pi.get("customer"), "description": pi.get("description"),
              "failure_code": None, "failure_message": None,
              "livemode": False, "metadata": dict(pi["metadata"]),
              "outcome": {"network_status": "approved_by_network", "reason": None,
                          "risk_level": "normal", "seller_message": "Payment complete.",
                          "type": "authorized"},
              "paid": ok, "payment_intent": pi["id"],
              "payment_method": pm["id"] if pm else None,
              "payment_method_details": None,
              "refunded": False, "status": "succeeded" if ok else "failed"}
        if pm:
            card = pm["card"]
            ch["payment_method_details"] = {"type": "card", "card": {
                "brand": card["brand"], "last4": card["last4"], "exp_month": card["exp_month"],
                "exp_year": card["exp_year"], "funding": card["funding"], "country": card["country"]}}
        if not ok:
            code, decline_code, message = DECLINES[decline]
            ch.update(failure_code=code, failure_message=message, outcome={
                "network_status": "declined_by_network", "reason": decline_code,
                "risk_level": "normal", "type": "issuer_declined",
                "seller_message": "The bank did not return any further details with this decline."})
        self.charges[ch["id"]] = ch
        self.stats["charges_succeeded" if ok else "charges_failed"] += 1
        return ch

    def _pay(self, s, succeeded, pm=None):
        """Make the payment intent (and its charge when it succeeded)."""
        pi = self.intents.get(s["payment_intent"]) if s["payment_intent"] else None
        if pi is None:
            pi = self.new_intent(s["amount_total"], s["currency"], dict(s["metadata"]),
                                 customer=s.get("customer"),
                                 setup_future_usage=self.session_sfu.get(s["id"]),
                                 status="processing")
        if pm:
            pi["payment_method"] = pm["id"]
        s["payment_intent"] = pi["id"]
        if succeeded:
            self._succeed(pi, None)
        return pi

    def _succeed(self, pi, request, pm=None):
        """The intent's charge succeeded: the charge, the intent and their events."""
        pm = pm or (self.payment_methods.get(pi["payment_method"]) if pi["payment_method"] else None)
        ch = self._charge(pi, pm)
        pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=ch["id"],
                  last_payment_error=None, next_action=None)
        if pm:
            pi["payment_method"] = pm["id"]
            self._after_use(pm, pi, request)
        self.emit("charge.succeeded", ch, *(request or ()))
        self.emit("payment_intent.succeeded", pi, *(request or ()))

    def _after_use(self, pm, pi, request):
        """setup_future_usage saves the method to the intent's customer; a
        method used without one cannot be used again (Stripe's rule)."""
        if pm["id"] in TEST_PAYMENT_METHODS or pm["customer"]:
            return
        if pi.get("setup_future_usage") and pi.get("customer"):
            self.attach(pm, pi["customer"], request)
        else:
            self.spent_methods.add(pm["id"])

    def attach(self, pm, customer, request=None):
        pm["customer"] = customer
        self.customer_methods.setdefault(customer, []).append(pm["id"])
        self.emit("payment_method.attached", pm, *(request or ()))

    def _fail(self, pi, pm, decline, request):
        """A declined charge (or one the bank wants authenticated, off
        session): the intent goes back to requires_payment_method with
        last_payment_error, and the answer is Stripe's 402 card_error."""
        code, decline_code, message = DECLINES[decline]
        extra = {"decline_code": decline_code}
        ch = None
        if decline != "authentication_required":
            ch = self._charge(pi, pm, decline)
            extra["charge"] = ch["id"]
            pi["latest_charge"] = ch["id"]
        if code == "expired_card":
            extra["param"] = "exp_month"
        pi.update(status="requires_payment_method", payment_method=None, next_action=None,
                  last_payment_error=error_object(message, "card_error", code, None,
                                                  dict(extra, payment_method=copy(pm))))
        if ch:
            self.emit("charge.failed", ch, *(request or ()))
        self.emit("payment_intent.payment_failed", pi, *(request or ()))
        raise ApiError(402, message, "card_error", code,
                       extra=dict(extra, payment_intent=copy(pi), payment_method=copy(pm)))

    def confirm(self, pi, off_session, request):
        """Confirm the intent with its payment method: the card decides."""
        pm = self.payment_methods[pi["payment_method"]]
        behaviour = TEST_CARDS[self.behaves_as[pm["id"]]][1]
        if behaviour is None:
            self._succeed(pi, request, pm)
        elif behaviour == "authenticate" and off_session:
            self._fail(pi, pm, "authentication_required", request)
        elif behaviour == "authenticate":
            pi.update(status="requires_action", next_action={
                "type": "redirect_to_url", "redirect_to_url": {
                    "url": "%s/authenticate/%s" % (self.args.public_url, pi["id"]),
                    "return_url": self.return_urls.get(pi["id"])}})
            self.emit("payment_intent.requires_action", pi, *(request or ()))
        else:
            self._fail(pi, pm, behaviour, request)

    def authenticate(self, pi, succeeded):
        """The cardholder completed (or failed) the bank's check."""
        if pi["status"] != "requires_action":
            raise ApiError(400, "PaymentIntent %s is %s, not requires_action." % (pi["id"], pi["status"]),
                           code="payment_intent_unexpected_state")
        pm = self.payment_methods[pi["payment_method"]]
        if succeeded:
            self._succeed(pi, None, pm)
            return
        message = ("The provided PaymentMethod has failed authentication. You can provide "
                   "payment_method_data or a new PaymentMethod to attempt to fulfill this "
                   "PaymentIntent again.")
        pi.update(status="requires_payment_method", payment_method=None, next_action=None,
                  last_payment_error=error_object(message, "invalid_request_error",
                                                  "payment_intent_authentication_failure", None,
                                                  {"payment_method": copy(pm)}))
        self.emit("payment_intent.payment_failed", pi)

    # ---- customers and payment methods -----------------------------------
    def new_customer(self, email=None, name=None, description=None, metadata=None, request=None):
        c = {"id": new_id("cus"), "object": "customer", "address": None, "balance": 0,
             "created": int(self.now()), "currency": None, "default_source": None,
             "delinquent": False, "description": description, "email": email,
             "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                  "footer": None, "rendering_options": None},
             "livemode": False, "metadata": metadata or {}, "name": name, "phone": None,
             "preferred_locales": [], "shipping": None}
        self.customers[c["id"]] = c
        self.emit("customer.created", c, *(request or ()))
        return c

    def new_method(self, number, pm_id=None):
        if number not in TEST_CARDS:
            raise ApiError(400, "Your card number is incorrect.", "card_error", "incorrect_number",
                           param="number")
        pm = {"id": pm_id or new_id("pm"), "object": "payment_method",
              "allow_redisplay": "unspecified",
              "billing_details": {"address": None, "email": None, "name": None, "phone": None},
              "card": {"brand": TEST_CARDS[number][0], "checks": {"cvc_check": "pass"},
                       "country": "US", "exp_month": 12, "exp_year": 2034,
                       "fingerprint": hashlib.sha256(number.encode()).hexdigest()[:16],
                       "funding": "credit", "last4": number[-4:]},
              "created": int(self.now()), "customer": None, "livemode": False,
              "metadata": {}, "type": "card"}
        self.payment_methods[pm["id"]] = pm
        self.behaves_as[pm["id"]] = number
        return pm

    def method(self, pm_id):
        """A payment method by id; Stripe's test ids are made on first use."""
        pm = self.payment_methods.get(pm_id)
        if pm is None and pm_id in TEST_PAYMENT_METHODS:
            pm = self.new_method(TEST_PAYMENT_METHODS[pm_id], pm_id)
        return pm

    def complete(self, s, payment_status, card=DEFAULT_CARD):
        if s["status"] != "open":
            raise ApiError(400, "Session %s is %s, not open." % (s["id"], s["status"]))
        pm = self.new_method(card or DEFAULT_CARD)
        sfu = self.session_sfu.get(s["id"])
        if sfu and not s["customer"]:
            # Checkout makes a customer when the method is to be saved.
            s["customer"] = self.new_customer(email=s.get("customer_email"))["id"]
        s["status"] = "complete"
        s["url"] = None
        pi = self._pay(s, False, pm)
        pi["customer"] = s["customer"]
        # The method is saved to the customer (or spent) when the payment succeeds.
        if payment_status == "paid":
            self._succeed(pi, None, pm)
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
            if path.startswith("/authenticate/"):
                return self._auth_page(method, path, body)
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
                status, data, save = self._api_call(method, path, params, request_id, idem_key)
                if save:
                    with st.lock:
                        st.idempotency[idem_key] = (method, path, params, status, data)
        else:
            status, data, _ = self._api_call(method, path, params, request_id, idem_key)
        record["status"] = status
        self._send(status, data, headers)

    def _api_call(self, method, path, params, request_id, idem_key):
        """(status, body bytes, whether an Idempotency-Key saves it).  The
        body is made under the lock: the objects it shows may change as soon
        as the lock is released."""
        with self.state.lock:
            try:
                self.state.expire_due()
                obj = self._route(method, path, params, (request_id, idem_key))
                return 200, json.dumps(obj, indent=2).encode(), True
            except ApiError as e:
                return e.status, json.dumps(e.body, indent=2).encode(), e.saved

    def _route(self, method, path, params, request):
        st = self.state
        parts = path.strip("/").split("/")[1:]     # without "v1"
        expand = params.get("expand") if isinstance(params.get("expand"), list) else []
        if parts == ["checkout", "sessions"] and method == "POST":
            return self._create_session(params, *request)
        if len(parts) == 3 and parts[:2] == ["checkout", "sessions"] and method == "GET":
            return self._expand(self._session(parts[2]), expand)
        if len(parts) == 4 and parts[:2] == ["checkout", "sessions"] and parts[3] == "expire" \
                and method == "POST":
            s = self._session(parts[2])
            if s["status"] != "open":
                raise ApiError(400, 'Only Checkout Sessions with a status in ["open"] can be expired. '
                               'This Checkout Session has a status of "%s".' % s["status"])
            st._expire(s)
            return s
        if parts == ["refunds"] and method == "POST":
            return self._create_refund(params, *request)
        if len(parts) == 2 and parts[0] == "refunds" and method == "GET":
            r = st.refunds.get(parts[1])
            if not r:
                raise ApiError(404, "No such refund: '%s'" % parts[1], code="resource_missing", param="id")
            return r
        if parts == ["customers"] and method == "POST":
            return self._create_customer(params, request)
        if len(parts) == 2 and parts[0] == "customers" and method == "GET":
            return self._expand(self._customer(parts[1]), expand)
        if len(parts) == 3 and parts[0] == "customers" and parts[2] == "payment_methods" \
                and method == "GET":
            return self._list_methods(self._customer(parts[1])["id"], params, path)
        if parts == ["payment_methods"] and method == "GET":
            if not params.get("customer"):
                raise missing("customer")
            return self._list_methods(self._customer(params["customer"], "customer")["id"],
                                      params, path)
        if len(parts) == 2 and parts[0] == "payment_methods" and method == "GET":
            pm = st.method(parts[1])
            if not pm:
                raise ApiError(404, "No such PaymentMethod: '%s'" % parts[1], code="resource_missing",
                               param="payment_method")
            return self._expand(pm, expand)
        if parts == ["payment_intents"] and method == "GET":
            return self._list_intents(params, path, expand)
        if parts == ["payment_intents"] and method == "POST":
            return self._expand(self._create_intent(params, request), expand)
        if len(parts) == 2 and parts[0] == "payment_intents" and method == "GET":
            return self._expand(self._intent(parts[1]), expand)
        if len(parts) == 3 and parts[0] == "payment_intents" and parts[2] == "confirm" \
                and method == "POST":
            return self._expand(self._confirm_intent(self._intent(parts[1]), params, request), expand)
        if len(parts) == 3 and parts[0] == "payment_intents" and parts[2] == "cancel" \
                and method == "POST":
            return self._expand(self._cancel_intent(self._intent(parts[1]), params, request), expand)
        raise ApiError(404, "Unrecognized request URL (%s: %s)." % (method, path))

    def _session(self, sid):
        s = self.state.sessions.get(sid)
        if not s:
            raise ApiError(404, "No such checkout.session: '%s'" % sid,
                           code="resource_missing", param="session")
        return s

    def _intent(self, pi_id):
        pi = self.state.intents.get(pi_id)
        if not pi:
            raise ApiError(404, "No such payment_intent: '%s'" % pi_id,
                           code="resource_missing", param="intent")
        return pi

    def _customer(self, cus_id, param=None):
        """The customer; a path's unknown id is a 404, a parameter's a 400
        (not saved under an Idempotency-Key: the request never ran)."""
        c = self.state.customers.get(cus_id)
        if not c:
            raise ApiError(400 if param else 404, "No such customer: '%s'" % cus_id,
                           code="resource_missing", param=param or "id", saved=not param)
        return c

    # Fields that expand[] may replace by their object, and where they live.
    EXPANDABLE = {"payment_intent": "intents", "latest_charge": "charges", "charge": "charges",
                  "payment_method": "payment_methods", "customer": "customers"}

    def _expand(self, obj, expand):
        """A copy of obj with the fields named in expand (dotted paths, as in
        payment_intent.latest_charge) replaced by their objects."""
        obj = dict(obj)
        nested = {}
        for path in expand:
            head, _, rest = path.partition(".")
            nested.setdefault(head, [])
            if rest:
                nested[head].append(rest)
        for head, rests in nested.items():
            store = getattr(self.state, self.EXPANDABLE.get(head, ""), None)
            ref = obj.get(head)
            if store is not None and isinstance(ref, str) and ref in store:
                obj[head] = self._expand(store[ref], rests)
        return obj

    # ---- customers, payment methods, payment intents ----------------------
    def _create_customer(self, p, request):
        email = p.get("email") or None
        if email is not None and ("@" not in email or len(email) > 512):
            raise invalid("email", "Invalid email address: %s" % email)
        metadata = p.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise invalid("metadata", "Invalid hash")
        return self.state.new_customer(email, p.get("name") or None, p.get("description") or None,
                                       metadata, request)

    def _list_methods(self, cus_id, p, path):
        """Stripe's list object of a customer's methods, newest first, with
        limit and starting_after (per customer: no scan of all methods)."""
        st = self.state
        limit = as_int(p, "limit", required=False) or 10
        if not 1 <= limit <= 100:
            raise invalid("limit", "This value must be less than or equal to 100.")
        if p.get("type") not in (None, "card"):
            ids = []
        else:
            ids = list(reversed(st.customer_methods.get(cus_id, [])))
        if p.get("starting_after"):
            if p["starting_after"] not in ids:
                raise ApiError(400, "No such PaymentMethod: '%s'" % p["starting_after"],
                               code="resource_missing", param="starting_after")
            ids = ids[ids.index(p["starting_after"]) + 1:]
        return {"object": "list", "data": [st.payment_methods[i] for i in ids[:limit]],
                "has_more": len(ids) > limit, "url": path}

    def _list_intents(self, p, path, expand):
        """Stripe's list of payment intents: of one customer (per customer, no
        scan of all intents), newest first, created[gte] and limit; expand
        data.<field> applies to each.  Strongly consistent, like Stripe's."""
        st = self.state
        limit = as_int(p, "limit", required=False) or 10
        if not 1 <= limit <= 100:
            raise invalid("limit", "This value must be less than or equal to 100.")
        created = p.get("created") if isinstance(p.get("created"), dict) else {}
        gte = as_int(created, "gte", required=False)
        if p.get("customer"):
            ids = list(reversed(st.customer_intents.get(p["customer"], [])))
        else:
            ids = list(reversed(list(st.intents)))
        items = [st.intents[i] for i in ids if gte is None or st.intents[i]["created"] >= gte]
        inner = [e[len("data."):] for e in expand if e.startswith("data.")]
        return {"object": "list", "data": [self._expand(pi, inner) for pi in items[:limit]],
                "has_more": len(items) > limit, "url": path}

    def _usable_method(self, pm_id, customer):
        """The payment method a payment intent may charge for customer, or
        Stripe's 400 (not saved under an Idempotency-Key: nothing ran)."""
        st = self.state
        pm = st.method(pm_id)
        if pm is None:
            raise ApiError(400, "No such PaymentMethod: '%s'" % pm_id, code="resource_missing",
                           param="payment_method", saved=False)
        if pm["customer"] and customer is None:
            raise ApiError(400, "The provided PaymentMethod is attached to a Customer. To use it, "
                           "pass the id of that Customer as `customer`.",
                           param="customer", saved=False)
        if pm["customer"] and pm["customer"] != customer:
            raise ApiError(400, "The provided PaymentMethod belongs to a different Customer than "
                           "the one given. Pass the Customer that the PaymentMethod is attached to.",
                           param="payment_method", saved=False)
        if pm_id in st.spent_methods:
            raise ApiError(400, "The provided PaymentMethod was previously used with a PaymentIntent "
                           "without Customer attachment, shared with a connected account without "
                           "Customer attachment, or was detached from a Customer. It may not be used "
                           "again. To use a PaymentMethod multiple times, you must attach it to a "
                           "Customer first.", param="payment_method", saved=False)
        return pm

    @staticmethod
    def _off_session(p):
        value = p.get("off_session")
        if value in (None, "", "false"):
            return False
        if value in ("true", "one_off", "recurring"):
            return True
        raise invalid("off_session", "Invalid off_session: must be a boolean, one_off or recurring")

    @staticmethod
    def _return_url(p):
        url = p.get("return_url") or None
        if url and not url.startswith(("http://", "https://")):
            raise invalid("return_url", "Not a valid URL")
        return url

    def _create_intent(self, p, request):
        st = self.state
        amount = as_int(p, "amount")
        if amount < 1:
            raise invalid("amount", "This value must be greater than or equal to 1.")
        currency = p.get("currency")
        if not currency:
            raise missing("currency")
        check_currency(currency, "currency")
        check_amount(amount, currency, "amount")
        confirm = as_bool(p, "confirm")
        off_session = self._off_session(p)
        if p.get("off_session") not in (None, "") and not confirm:
            raise invalid("off_session", "You can only pass `off_session` when `confirm` is true.")
        return_url = self._return_url(p)
        if return_url and not confirm:
            raise invalid("return_url", "You can only pass `return_url` when `confirm` is true.")
        sfu = p.get("setup_future_usage") or None
        if sfu not in (None, "off_session", "on_session"):
            raise invalid("setup_future_usage",
                          "Invalid setup_future_usage: must be one of on_session or off_session")
        metadata = p.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise invalid("metadata", "Invalid hash")
        customer = self._customer(p["customer"], "customer")["id"] if p.get("customer") else None
        pm = self._usable_method(p["payment_method"], customer) if p.get("payment_method") else None
        if confirm and pm is None:
            raise ApiError(400, "You cannot confirm this PaymentIntent because it's missing a payment "
                           "method. You can either update the PaymentIntent with a payment method "
                           "and then confirm it again, or confirm it again directly with a payment "
                           "method.", code="payment_intent_unexpected_state", saved=False)
        pi = st.new_intent(amount, currency, metadata, customer, pm and pm["id"], sfu,
                           p.get("description") or None,
                           "requires_confirmation" if pm else "requires_payment_method")
        st.stats["payment_intents"] += 1
        if return_url:
            st.return_urls[pi["id"]] = return_url
        st.emit("payment_intent.created", pi, *request)
        if confirm:
            st.confirm(pi, off_session, request)
        return pi

    def _confirm_intent(self, pi, p, request):
        st = self.state
        if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
            raise ApiError(400, "You cannot confirm this PaymentIntent because it has a status of %s. "
                           "Only a PaymentIntent with one of the following statuses may be confirmed: "
                           "requires_confirmation, requires_payment_method, requires_action."
                           % pi["status"], code="payment_intent_unexpected_state",
                           extra={"payment_intent": copy(pi)})
        off_session = self._off_session(p)
        return_url = self._return_url(p)
        sfu = p.get("setup_future_usage")
        if sfu not in (None, "", "off_session", "on_session"):
            raise invalid("setup_future_usage",
                          "Invalid setup_future_usage: must be one of on_session or off_session")
        if p.get("payment_method"):
            pm = self._usable_method(p["payment_method"], pi["customer"])
            pi["payment_method"] = pm["id"]
        if not pi["payment_method"]:
            raise ApiError(400, "You cannot confirm this PaymentIntent because it's missing a payment "
                           "method. You can either update the PaymentIntent with a payment method "
                           "and then confirm it again, or confirm it again directly with a payment "
                           "method.", code="payment_intent_unexpected_state", saved=False)
        if sfu is not None:
            pi["setup_future_usage"] = sfu or None
        if return_url:
            st.return_urls[pi["id"]] = return_url
        st.confirm(pi, off_session, request)
        return pi

    def _cancel_intent(self, pi, p, request):
        st = self.state
        if pi["status"] in ("succeeded", "canceled"):
            raise ApiError(400, "You cannot cancel this PaymentIntent because it has a status of %s. "
                           "Only a PaymentIntent with one of the following statuses may be canceled: "
                           "requires_payment_method, requires_capture, requires_confirmation, "
                           "requires_action, processing." % pi["status"],
                           code="payment_intent_unexpected_state", extra={"payment_intent": copy(pi)})
        reason = p.get("cancellation_reason") or None
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer", "abandoned"):
            raise invalid("cancellation_reason", "Invalid cancellation_reason: must be one of "
                          "duplicate, fraudulent, requested_by_customer, or abandoned")
        pi.update(status="canceled", canceled_at=int(st.now()), cancellation_reason=reason,
                  next_action=None)
        st.emit("payment_intent.canceled", pi, *request)
        return pi

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
        customer = None
        if p.get("customer"):
            if p.get("customer_email"):
                raise ApiError(400, "You may only specify one of these parameters: customer, "
                               "customer_email.", saved=False)
            customer = self._customer(p["customer"], "customer")["id"]
        pid = p.get("payment_intent_data") or {}
        sfu = (pid.get("setup_future_usage") if isinstance(pid, dict) else None) or None
        if sfu not in (None, "off_session", "on_session"):
            raise invalid("payment_intent_data[setup_future_usage]",
                          "Invalid payment_intent_data[setup_future_usage]: must be one of "
                          "on_session or off_session")
        sid = "cs_test_" + secrets.token_hex(24)
        s = {
            "id": sid, "object": "checkout.session",
            "amount_subtotal": total, "amount_total": total,
            "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"),
            "created": now, "currency": currency, "customer": customer,
            "customer_email": p.get("customer_email"),
            "expires_at": expires_at, "livemode": False,
            "metadata": p.get("metadata") or {}, "mode": "payment",
            "payment_intent": None, "payment_status": "unpaid",
            "status": "open", "success_url": p["success_url"],
            "url": "%s/pay/%s" % (st.args.public_url, sid),
        }
        st.sessions[sid] = s
        if sfu:
            st.session_sfu[sid] = sfu
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
            if not ch or ch["status"] != "succeeded":
                raise ApiError(400, "This PaymentIntent (%s) does not have a successful charge to "
                               "refund." % pi_id, code="charge_not_refundable")
        else:
            ch = st.charges.get(p["charge"])
            if not ch:
                raise ApiError(404, "No such charge: '%s'" % p["charge"], code="resource_missing",
                               param="charge")
            if ch["status"] != "succeeded":
                raise ApiError(400, "Charge %s cannot be refunded because it has failed." % ch["id"],
                               code="charge_not_refundable")
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
                form = urllib.parse.parse_qs(body)
                action = form.get("action", [""])[0]
                card = form.get("card", [DEFAULT_CARD])[0].replace(" ", "")
                if s["status"] == "open" and action == "pay":
                    try:
                        st.complete(s, "paid", card)
                    except ApiError as e:
                        return self._send(400, html_page("Checkout (stand-in)", "<p>%s</p>" % html.escape(
                            e.body["error"]["message"])), content_type="text/html; charset=utf-8")
                    target = s["success_url"]
                else:
                    target = s.get("cancel_url") or s["success_url"]
                target = target.replace("{CHECKOUT_SESSION_ID}", sid)
                return self._send(303, b"", {"Location": target}, content_type="text/html")
            options = "".join("<option value=%s%s>%s %s</option>" % (
                number, " selected" if number == DEFAULT_CARD else "",
                " ".join(number[i:i + 4] for i in range(0, 16, 4)), brand)
                for number, (brand, _) in TEST_CARDS.items())
            page = html_page("Stripe stand-in checkout", (
                "<h1>Checkout (stand-in)</h1><p>Session <code>%s</code>: <b>%s</b>, status %s.</p>"
                "<form method=post><label>Card <select name=card>%s</select></label> "
                "<button name=action value=pay>Pay</button> "
                "<button name=action value=cancel>Cancel</button></form>")
                % (sid, shown_amount(s["amount_total"], s["currency"]), s["status"], options))
            self._send(200, page, content_type="text/html; charset=utf-8")

    def _auth_page(self, method, path, body):
        """The bank's check of the cardholder (3D Secure), as Stripe hosts it
        behind next_action.redirect_to_url."""
        st = self.state
        pi_id = path[len("/authenticate/"):]
        with st.lock:
            pi = st.intents.get(pi_id)
            if not pi:
                return self._send(404, html_page("Authentication", "<h1>No such payment</h1>"),
                                  content_type="text/html; charset=utf-8")
            if method == "POST":
                action = urllib.parse.parse_qs(body).get("action", [""])[0]
                if pi["status"] == "requires_action" and action in ("complete", "fail"):
                    st.authenticate(pi, action == "complete")
                target = st.return_urls.get(pi_id)
                if not target:
                    return self._send(200, html_page("Authentication", (
                        "<h1>Authentication done</h1><p>Payment <code>%s</code> is %s.</p>")
                        % (pi_id, pi["status"])), content_type="text/html; charset=utf-8")
                target += ("&" if "?" in target else "?") + urllib.parse.urlencode({
                    "payment_intent": pi_id, "payment_intent_client_secret": pi["client_secret"],
                    "redirect_status": "succeeded" if pi["status"] == "succeeded" else "failed"})
                return self._send(303, b"", {"Location": target}, content_type="text/html")
            page = html_page("Complete authentication", (
                "<h1>Complete authentication</h1><p>Your bank asks you to confirm the payment "
                "<code>%s</code> of <b>%s</b> (status %s).</p>"
                "<form method=post><button name=action value=complete>Complete</button> "
                "<button name=action value=fail>Fail</button></form>")
                % (pi_id, shown_amount(pi["amount"], pi["currency"]), pi["status"]))
            self._send(200, page, content_type="text/html; charset=utf-8")

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
                # made under the lock: the objects may change once it is released
                result = json.dumps(self._control_route(method, parts, args), indent=2).encode()
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
                return dict(st.stats, events=len(st.events), sessions=len(st.sessions),
                            customers=len(st.customers), payment_methods=len(st.payment_methods))
            if len(parts) == 2 and parts[0] == "sessions":
                return st.sessions[parts[1]]
            if len(parts) == 2 and parts[0] == "refunds":
                return st.refunds[parts[1]]
            if len(parts) == 2 and parts[0] == "payment_intents":
                return st.intents[parts[1]]
            if len(parts) == 2 and parts[0] == "customers":
                return st.customers[parts[1]]
            if len(parts) == 2 and parts[0] == "payment_methods":
                return dict(st.payment_methods[parts[1]], _behaves_as=st.behaves_as[parts[1]])
        elif method == "POST":
            if len(parts) == 3 and parts[0] == "payment_intents" and parts[2] == "authenticate":
                pi = st.intents[parts[1]]
                result = a.get("result", "succeeded")
                if result not in ("succeeded", "failed"):
                    raise ApiError(400, "result must be succeeded or failed")
                st.authenticate(pi, result == "succeeded")
                return pi
            if len(parts) == 3 and parts[0] == "payment_methods" and parts[2] == "card":
                pm = st.method(parts[1])
                if pm is None:
                    raise KeyError(parts[1])
                number = str(a.get("number", "")).replace(" ", "")
                if number not in TEST_CARDS:
                    raise ApiError(400, "not a test card this stand-in knows: %r (one of %s)"
                                   % (number, ", ".join(TEST_CARDS)))
                st.behaves_as[pm["id"]] = number
                return dict(pm, _behaves_as=number)
            if len(parts) == 3 and parts[0] == "sessions":
                s = st.sessions[parts[1]]
                if parts[2] == "complete":
                    st.complete(s, a.get("payment_status", "paid"), a.get("card") or DEFAULT_CARD)
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
