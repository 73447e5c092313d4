"""The card payment provider: a hosted payment page and signed webhooks.

The adapter opens a checkout at the provider (`POST {base}/v1/checkouts`,
bearer API key, Idempotency-Key) and sends the customer to the page it
returns; card data never reaches zonehost. The provider then calls our
webhook with a JSON event and the header

    Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

`verify()` refuses a bad or missing signature and a timestamp outside the
tolerance window; payments.py refuses an event id seen before (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from billing.config import ProviderConfig
from billing.errors import ProviderError, WebhookRejected

SIGNATURE_HEADER = "Payment-Signature"
MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    order_number: str
    amount_cents: int
    currency: str
    description: str
    idempotency_key: str
    success_url: str
    cancel_url: str


@dataclass(frozen=True, slots=True)
class Checkout:
    id: str
    url: str


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    id: str
    type: str  # "checkout.succeeded" or "checkout.failed"
    checkout_id: str
    amount_cents: int
    currency: str
    order_number: str


class PaymentProvider(Protocol):
    async def create_checkout(self, request: CheckoutRequest) -> Checkout: ...

    def verify(self, body: bytes, signature: str | None, now: datetime) -> ProviderEvent: ...


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, body: bytes, signature: str | None, now: datetime, tolerance_s: int
) -> ProviderEvent:
    """The event, if the signature is good and fresh; WebhookRejected otherwise."""
    if len(body) > MAX_EVENT_BYTES:
        raise WebhookRejected("payment notification too large")
    if not signature:
        raise WebhookRejected("payment notification without signature")
    fields: dict[str, list[str]] = {}
    for part in signature.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        raise WebhookRejected("malformed payment signature") from None
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in fields.get("v1", [])):
        raise WebhookRejected("bad payment signature")
    if abs(now.timestamp() - timestamp) > tolerance_s:
        raise WebhookRejected("payment notification outside the time window (replay?)")
    return parse_event(body)


def parse_event(body: bytes) -> ProviderEvent:
    try:
        data: Any = json.loads(body)
        event = ProviderEvent(
            id=str(data["id"]), type=str(data["type"]), checkout_id=str(data["checkout_id"]),
            amount_cents=int(data["amount_cents"]), currency=str(data["currency"]),
            order_number=str(data.get("order", "")),
        )
    except (ValueError, KeyError, TypeError):
        raise WebhookRejected("malformed payment notification") from None
    if not event.id or len(event.id) > 128:
        raise WebhookRejected("malformed payment notification id")
    return event


class HostedPageProvider:
    """The HTTP adapter for a provider speaking the protocol above."""

    def __init__(self, config: ProviderConfig, *, timeout_s: float = 15.0) -> None:
        self.config = config
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def create_checkout(self, request: CheckoutRequest) -> Checkout:
        body = {
            "reference": request.order_number, "amount_cents": request.amount_cents,
            "currency": request.currency, "description": request.description,
            "success_url": request.success_url, "cancel_url": request.cancel_url,
        }
        headers = {"Authorization": f"Bearer {self.config.api_key}",
                   "Idempotency-Key": request.idempotency_key}
        try:
            async with aiohttp.ClientSession(timeout=self.timeout) as http, http.post(
                f"{self.config.base_url}/v1/checkouts", json=body, headers=headers
            ) as response:
                if response.status >= 300:
                    raise ProviderError(
                        f"the payment provider answered {response.status} to a checkout"
                    )
                data: Any = await response.json()
                return Checkout(id=str(data["id"]), url=str(data["url"]))
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            raise ProviderError(f"the payment provider cannot be reached: {exc}") from exc

    def verify(self, body: bytes, signature: str | None, now: datetime) -> ProviderEvent:
        return verify(self.config.webhook_secret, body, signature, now, self.config.tolerance_s)
