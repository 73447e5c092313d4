"""A local HTTP server standing in for the card payment provider.

It speaks the protocol billing/provider.py documents: checkouts opened
with a bearer key and an Idempotency-Key, and, when the test "pays" on the
hosted page (`POST /pay/{checkout}`), a JSON event POSTed to the webhook
URL with a `Payment-Signature: t=...,v1=...` header. The test can make it
sign with another secret, an old timestamp, or report another amount, and
gets back exactly what was sent so it can replay it.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from billing.provider import SIGNATURE_HEADER, sign


@dataclass
class Sent:
    status: int
    response: str
    body: bytes
    signature: str


@dataclass
class StandInProvider:
    secret: str
    api_key: str
    webhook_url: str = ""
    checkouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    _by_key: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    base_url: str = ""

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_post("/v1/checkouts", self._create)
        app.router.add_post("/pay/{checkout}", self._pay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _create(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "unauthorized"}, status=401)
        key = request.headers.get("Idempotency-Key", "")
        if key in self._by_key:
            checkout_id = self._by_key[key]
        else:
            data = await request.json()
            checkout_id = f"cs_{next(self._ids)}"
            self.checkouts[checkout_id] = data
            self._by_key[key] = checkout_id
        return web.json_response({"id": checkout_id, "url": f"{self.base_url}/pay/{checkout_id}"})

    async def _pay(self, request: web.Request) -> web.Response:
        checkout_id = request.match_info["checkout"]
        checkout = self.checkouts.get(checkout_id)
        if checkout is None:
            return web.json_response({"error": "unknown checkout"}, status=404)
        options = await request.json()
        sent = await self.notify(
            checkout_id, outcome=options.get("outcome", "succeeded"),
            amount_cents=options.get("amount_cents", checkout["amount_cents"]),
            secret=options.get("secret", self.secret),
            timestamp=options.get("timestamp", int(time.time())),
        )
        return web.json_response({"status": sent.status, "response": sent.response,
                                  "body": sent.body.decode(), "signature": sent.signature})

    async def notify(
        self, checkout_id: str, *, outcome: str, amount_cents: int, secret: str, timestamp: int
    ) -> Sent:
        checkout = self.checkouts[checkout_id]
        event = {
            "id": f"evt_{next(self._ids)}", "type": f"checkout.{outcome}",
            "checkout_id": checkout_id, "amount_cents": amount_cents,
            "currency": checkout["currency"], "order": checkout["reference"],
        }
        body = json.dumps(event).encode()
        signature = sign(secret, timestamp, body)
        return await post(self.webhook_url, body, signature)


async def post(url: str, body: bytes, signature: str) -> Sent:
    """POST an event as the provider would (also used to replay one)."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.post(
        url, data=body,
        headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
    ) as response:
        return Sent(response.status, await response.text(), body, signature)
