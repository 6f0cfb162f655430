"""A local Stripe API for tests: the few endpoints the jobs call, in Stripe's wire format.

It serves ``GET /v1/checkout/sessions/{id}``, ``POST /v1/checkout/sessions/{id}/expire`` and
``GET /v1/subscriptions/{id}`` on 127.0.0.1 (ephemeral port), answers with Stripe's JSON shapes and
error bodies, checks the bearer key, and records every request with its ``Stripe-Account`` and
``Idempotency-Key`` headers. Tests script it: ``checkouts``/``subscriptions`` hold the objects,
``fail(id, kind)`` makes requests about an object fail (``rate_limit``, ``missing``, ``auth``,
``forbidden``, ``server``), ``paid_on_expire`` simulates a payment landing just before an expire.
"""

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "sk_test_jobfleet_fake"
_ids = itertools.count(1)


@dataclass
class Request:
    method: str
    path: str
    account: str | None
    idempotency_key: str | None


ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "rate_limit": (
        429,
        {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "Too many requests hit the API too quickly.",
        },
    ),
    "auth": (
        401,
        {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****fake"},
    ),
    "forbidden": (
        403,
        {
            "type": "invalid_request_error",
            "code": "account_invalid",
            "message": "The provided key does not have access to account 'acct_x'.",
        },
    ),
    "server": (500, {"type": "api_error", "message": "An unknown error occurred"}),
}


@dataclass
class FakeStripe:
    checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    paid_on_expire: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.checkouts.clear()
            self.subscriptions.clear()
            self.failures.clear()
            self.paid_on_expire.clear()
            self.requests.clear()

    def fail(self, object_id: str, kind: str) -> None:
        assert kind in (*ERRORS, "missing"), kind
        self.failures[object_id] = kind

    def checkout(
        self,
        *,
        status: str = "open",
        payment_status: str = "unpaid",
        amount_total: int = 4500,
        currency: str = "eur",
        payment_intent: str | None = None,
    ) -> str:
        checkout_id = f"cs_test_{next(_ids):06d}"
        now = int(time.time())
        self.checkouts[checkout_id] = {
            "id": checkout_id,
            "object": "checkout.session",
            "amount_subtotal": amount_total,
            "amount_total": amount_total,
            "currency": currency,
            "created": now - 3600,
            "expires_at": now + 3600,
            "livemode": False,
            "metadata": {},
            "mode": "payment",
            "payment_intent": payment_intent
            or (f"pi_test_{next(_ids):06d}" if payment_status == "paid" else None),
            "payment_status": payment_status,
            "status": status,
            "url": None if status != "open" else f"https://checkout.stripe.com/c/pay/{checkout_id}",
        }
        return checkout_id

    def subscription(self, *, status: str = "active", period_start: int, period_end: int) -> str:
        sub_id = f"sub_test_{next(_ids):06d}"
        self.subscriptions[sub_id] = {
            "id": sub_id,
            "object": "subscription",
            "status": status,
            "cancel_at_period_end": False,
            "created": period_start,
            "customer": f"cus_test_{next(_ids):06d}",
            "livemode": False,
            "metadata": {},
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_test_{next(_ids):06d}",
                        "object": "subscription_item",
                        "current_period_start": period_start,
                        "current_period_end": period_end,
                        "quantity": 1,
                    }
                ],
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
        }
        return sub_id

    def calls(self, method: str | None = None, pattern: str = "") -> list[Request]:
        return [
            r for r in self.requests if (method is None or r.method == method) and re.search(pattern, r.path)
        ]

    # ---- request handling (runs on the server's threads) ----

    def handle(self, method: str, path: str, headers: Any) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(
                Request(method, path, headers.get("Stripe-Account"), headers.get("Idempotency-Key"))
            )
            if headers.get("Authorization") != f"Bearer {API_KEY}":
                return ERRORS["auth"]
            if (m := re.fullmatch(r"/v1/checkout/sessions/([^/]+)", path)) and method == "GET":
                return self._answer(m[1], self.checkouts, "checkout.session")
            if (m := re.fullmatch(r"/v1/checkout/sessions/([^/]+)/expire", path)) and method == "POST":
                return self._expire(m[1])
            if (m := re.fullmatch(r"/v1/subscriptions/([^/]+)", path)) and method == "GET":
                return self._answer(m[1], self.subscriptions, "subscription")
            return 404, {
                "type": "invalid_request_error",
                "message": f"Unrecognized request URL ({method}: {path}).",
            }

    def _failure(self, object_id: str, objects: dict[str, Any], kind: str) -> tuple[int, dict] | None:
        failure = self.failures.get(object_id)
        if failure == "missing" or object_id not in objects:
            return 404, {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "id",
                "message": f"No such {kind}: '{object_id}'",
            }
        return ERRORS[failure] if failure else None

    def _answer(self, object_id: str, objects: dict[str, Any], kind: str) -> tuple[int, dict[str, Any]]:
        return self._failure(object_id, objects, kind) or (200, objects[object_id])

    def _expire(self, checkout_id: str) -> tuple[int, dict[str, Any]]:
        if failed := self._failure(checkout_id, self.checkouts, "checkout.session"):
            return failed
        checkout = self.checkouts[checkout_id]
        if checkout_id in self.paid_on_expire:
            checkout.update(
                status="complete", payment_status="paid", payment_intent=f"pi_test_{next(_ids):06d}"
            )
        if checkout["status"] != "open":
            return 400, {
                "type": "invalid_request_error",
                "message": 'Only Checkout Sessions with a status in ["open"] can be expired.',
            }
        checkout.update(status="expired", url=None)
        return 200, checkout


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def _respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        status, body = self.server.fake.handle(self.command, path, self.headers)
        payload = json.dumps(body if status == 200 else {"error": body}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Request-Id", f"req_test_{next(_ids):06d}")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _respond

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class StripeServer:
    """Runs a ``FakeStripe`` on a background thread; ``base_url`` goes into JOBFLEET_STRIPE_API_BASE."""

    def __init__(self) -> None:
        self.fake = FakeStripe()
        self._server = _Server(self.fake)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeStripe:
        self._thread.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
