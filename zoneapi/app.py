"""The application factory and the middlewares every request goes through."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from storage.db import Database
from zoneapi import metrics
from zoneapi.auth import source_address
from zoneapi.clock import Clock, SystemClock
from zoneapi.config import ZoneApiConfig
from zoneapi.crypto import SecretBox
from zoneapi.delivery import (
    HttpSmsGateway,
    Mailer,
    Notifier,
    OutboxMailer,
    OutboxSms,
    SmsGateway,
    SmtpMailer,
)
from zoneapi.endpoints import ENDPOINTS, Handler
from zoneapi.errors import ApiError, TooManyRequests
from zoneapi.jsonio import json_response
from zoneapi.keys import CONTEXT, Context
from zoneapi.passwords import Passwords
from zoneapi.ratelimit import Limiter, RateLimiter
from zoneapi.routes import setup_routes

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "timeout",
    413: "body_too_large", 415: "unsupported_media_type", 431: "headers_too_large",
}
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answers JSON {"code", "detail", ...}."""
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body(), exc.status, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        code = _HTTP_CODES.get(exc.status, "http_error")
        return json_response({"code": code, "detail": exc.reason.lower()}, exc.status, headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response({"code": "internal_error", "detail": "internal error"}, 500)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics.REQUESTS.labels(route, request.method, str(status)).inc()
        metrics.LATENCY.labels(route, request.method).observe(time.perf_counter() - started)


@web.middleware
async def address_limit_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    wait_s = ctx.address_limiter.take(f"addr:{source_address(request)}")
    if wait_s > 0:
        raise TooManyRequests(int(wait_s) + 1)
    return await handler(request)


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def create_app(
    config: ZoneApiConfig,
    db: Database,
    *,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
    sms: SmsGateway | None = None,
    address_limiter: Limiter | None = None,
    token_limiter: Limiter | None = None,
) -> web.Application:
    """The API on an open database; the caller owns `db` and closes it.

    The limiters default to buckets of this process; several worker
    processes pass the same `ratelimit.SharedRateLimiter`s to share them."""
    if mailer is None:
        mailer = SmtpMailer(config.smtp, config.mail_from) if config.smtp else OutboxMailer(db)
    if sms is None:
        sms = HttpSmsGateway(config.sms) if config.sms else OutboxSms(db)
    ctx = Context(
        config=config, db=db, clock=clock or SystemClock(),
        passwords=Passwords(config.argon2_time_cost, config.argon2_memory_kib),
        box=SecretBox(config.secret_key), mailer=mailer, notifier=Notifier(mailer), sms=sms,
        address_limiter=(RateLimiter(config.rate_per_address) if address_limiter is None
                         else address_limiter),
        token_limiter=(RateLimiter(config.rate_per_token) if token_limiter is None
                       else token_limiter),
    )
    app = web.Application(
        middlewares=[metrics_middleware, errors_middleware, address_limit_middleware],
        client_max_size=config.max_import_bytes,
    )
    app[CONTEXT] = ctx
    app[ENDPOINTS] = []
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_lifecycle)
    setup_routes(app)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Background work lives as long as the app: drain notifications, close clients."""
    ctx = app[CONTEXT]
    yield
    await ctx.notifier.drain()
    await ctx.sms.close()


async def start_api(
    config: ZoneApiConfig, db: Database, *, clock: Clock | None = None,
    sms: SmsGateway | None = None,
) -> web.AppRunner:
    """Serve the API on `config.listen`; stop it with `await runner.cleanup()`."""
    runner = web.AppRunner(create_app(config, db, clock=clock, sms=sms), access_log=None,
                           handle_signals=False)
    await runner.setup()
    host, port = config.listen
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    log.info("zone API on http://%s:%d/api/v1/", host, port)
    return runner
