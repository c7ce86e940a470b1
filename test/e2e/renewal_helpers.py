"""What the auto-renewal tests share, whichever provider they run against
(test_renewals.py: Stripe; test_renewals_yookassa.py: YooKassa): the
session helpers at the test's billing time, the provider stand-in's control
API and clock, and reading a buyer's subscription, automatic charges and
notifications.  A test class mixes it in and sets cluster, base and clock."""

import datetime
import json
import urllib.request

UTC = datetime.timezone.utc


class RenewalHelpers:
    cluster = None
    base = None         # the stand-in's URL
    clock = None        # None: real time

    def q(self, sql, args=None):
        return self.cluster.query(sql, args, self.clock)

    def one(self, sql, args=None):
        return self.cluster.scalar(sql, args, self.clock)

    def ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/_control/" + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def set_clock(self, when):
        """Move billing.now() and the stand-in's clock to `when` (aware datetime)."""
        type(self).clock = when
        self.ctl("POST", "clock", {"now": when.timestamp()})

    def renew(self):
        return self.one("CALL billing.run_renewals(NULL)")

    def poll(self):
        return self.one("CALL billing.poll_payments(NULL)")

    def sub(self, user):
        """The buyer's subscription, its times in UTC."""
        cols = ("status", "ends_at", "auto_renew", "reason", "renew_at", "failures",
                "renew_provider", "renew_customer", "renew_method", "card_brand", "card_last4")
        row = self.q("SELECT status, ends_at, auto_renew, auto_renew_reason, renew_at, renew_failures, "
                     "renew_provider, renew_customer, renew_method, card_brand, card_last4 "
                     "FROM billing.subscriptions WHERE user_id = %s", (user,))[0]
        s = dict(zip(cols, row))
        for k in ("ends_at", "renew_at"):
            if s[k] is not None:
                s[k] = s[k].astimezone(UTC)
        return s

    def charges(self, user):
        """(id, attempt, status, total, provider object, page) of each automatic charge."""
        return self.q("SELECT id, renewal_attempt, status, total, provider_session_id, provider_url "
                      "FROM billing.payments WHERE user_id = %s AND renewal_of IS NOT NULL "
                      "ORDER BY created_at, renewal_attempt", (user,))

    def notes(self, user, template):
        """The notify payloads of one template queued for the buyer, in order."""
        return [json.loads(p) if isinstance(p, str) else p for (p,) in self.q(
            "SELECT payload FROM billing.outbox WHERE kind = 'notify' "
            "AND payload->>'user_id' = %s AND payload->>'template' = %s ORDER BY id",
            (str(user), str(template)))]

    def at_next_charge(self, user):
        self.set_clock(self.sub(user)["renew_at"])
