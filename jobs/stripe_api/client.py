"""The Stripe calls the jobs make (payments, licenses), through the official ``stripe`` library.

One ``StripeApi`` per run: a ``StripeClient`` on an async httpx transport (never blocking the event
loop), the API base from settings, no library-level retries (a failed call fails the batch and the
runtime retries the job with backoff). Stripe's errors become the fleet's:

- rate limit, connection error, 5xx: ``Transient``;
- a refused API key (401): ``Permanent``, so ops see it;
- ``resource_missing``: ``Missing``; any other refusal about one object: ``Refused``.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe

from jobfleet.settings import Settings
from jobs.errors import Permanent, Transient, retry_after_s

T = TypeVar("T")
R = TypeVar("R")


class Missing(Exception):
    """Stripe has no such object (``resource_missing``)."""


class Refused(Exception):
    """Stripe refused a request about one object (permission, invalid state, bad id)."""

    def __init__(self, message: str, *, request_id: str | None, code: str | None) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.code = code


@dataclass(frozen=True, slots=True)
class Checkout:
    id: str
    status: str | None  # open | complete | expired
    payment_status: str | None  # paid | unpaid | no_payment_required
    payment_intent_id: str | None
    amount_total: int | None
    currency: str | None  # upper case, as PinTeach stores it

    @classmethod
    def from_stripe(cls, obj: Any) -> "Checkout":
        data = obj.to_dict()
        intent = data.get("payment_intent")
        currency = data.get("currency")
        return cls(
            id=data["id"],
            status=data.get("status"),
            payment_status=data.get("payment_status"),
            payment_intent_id=intent.get("id") if isinstance(intent, dict) else intent,
            amount_total=data.get("amount_total"),
            currency=currency.upper() if currency else None,
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    status: str
    period_start: datetime | None  # naive UTC, as Pickatale's DATETIME columns hold it
    period_end: datetime | None

    @classmethod
    def from_stripe(cls, obj: Any) -> "Subscription":
        data = obj.to_dict()
        # Since API version 2025-03-31 the current period lives on the subscription items; older
        # versions keep it on the subscription. The item ending last carries the licence's period.
        items = (data.get("items") or {}).get("data") or []
        periods = [
            (i.get("current_period_start"), i.get("current_period_end"))
            for i in items
            if i.get("current_period_end")
        ] or [(data.get("current_period_start"), data.get("current_period_end"))]
        start, end = max(periods, key=lambda p: p[1] or 0)
        return cls(id=data["id"], status=data["status"], period_start=_utc(start), period_end=_utc(end))


def _utc(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None) if ts is not None else None


def translate(e: stripe.StripeError) -> Exception:
    """The fleet's view of a Stripe error. Messages carry ids and Stripe's request id, never keys."""
    request_id = e.request_id
    if isinstance(e, stripe.RateLimitError):
        return Transient(
            f"Stripe rate limit (request {request_id})",
            retry_after_s=retry_after_s((e.headers or {}).get("retry-after")),
        )
    if isinstance(e, stripe.APIConnectionError):
        return Transient("cannot reach Stripe (connection error or timeout)")
    if isinstance(e, stripe.AuthenticationError):
        return Permanent(
            f"Stripe refused the API key (HTTP {e.http_status}, request {request_id}): "
            "check JOBFLEET_STRIPE_API_KEY"
        )
    if isinstance(e, stripe.InvalidRequestError) and e.code == "resource_missing":
        return Missing(f"Stripe has no such object (request {request_id})")
    if e.http_status is None or e.http_status >= 500:
        return Transient(f"Stripe server error (HTTP {e.http_status}, request {request_id})")
    return Refused(
        f"Stripe refused the request (HTTP {e.http_status}, {type(e).__name__}, request {request_id})",
        request_id=request_id,
        code=e.code,
    )


class StripeApi:
    def __init__(self, client: stripe.StripeClient, *, concurrency: int) -> None:
        self._client = client
        self._slots = asyncio.Semaphore(concurrency)

    async def checkout(self, checkout_id: str, *, account: str | None) -> Checkout:
        return Checkout.from_stripe(
            await self._call(self._client.v1.checkout.sessions.retrieve_async, checkout_id, account=account)
        )

    async def expire_checkout(self, checkout_id: str, *, account: str | None) -> Checkout:
        return Checkout.from_stripe(
            await self._call(
                self._client.v1.checkout.sessions.expire_async,
                checkout_id,
                account=account,
                idempotency_key=f"jobfleet-expire-{checkout_id}",
            )
        )

    async def subscription(self, subscription_id: str) -> Subscription:
        return Subscription.from_stripe(
            await self._call(self._client.v1.subscriptions.retrieve_async, subscription_id, account=None)
        )

    async def each(self, items: Sequence[T], call: Callable[[T], Awaitable[R]]) -> list[R | BaseException]:
        """``call`` for every item, at most ``concurrency`` at once; results (or errors) in order."""
        return await asyncio.gather(*(call(item) for item in items), return_exceptions=True)

    async def _call(
        self,
        method: Callable[..., Awaitable[Any]],
        object_id: str,
        *,
        account: str | None,
        idempotency_key: str | None = None,
    ) -> Any:
        options: dict[str, str] = {}
        if account:
            options["stripe_account"] = account
        if idempotency_key:
            options["idempotency_key"] = idempotency_key
        async with self._slots:
            try:
                return await method(object_id, options=options)  # type: ignore[arg-type]
            except stripe.StripeError as e:
                raise translate(e) from e


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[StripeApi | None]:
    """A client for this run, or None when no API key is configured."""
    if settings.stripe_api_key is None:
        yield None
        return
    http = stripe.HTTPXClient(timeout=settings.stripe_timeout_s)
    client = stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base},
        http_client=http,
        max_network_retries=0,
    )
    try:
        yield StripeApi(client, concurrency=settings.stripe_concurrency)
    finally:
        await http.close_async()
