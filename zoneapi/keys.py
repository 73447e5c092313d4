"""Typed keys of the application and of requests."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from storage.db import Database
from zoneapi.clock import Clock
from zoneapi.config import ZoneApiConfig
from zoneapi.crypto import SecretBox
from zoneapi.delivery import Mailer, Notifier, SmsGateway
from zoneapi.passwords import Passwords
from zoneapi.ratelimit import Limiter


@dataclass(frozen=True, slots=True)
class Context:
    """Everything a handler needs, built once per application."""

    config: ZoneApiConfig
    db: Database
    clock: Clock
    passwords: Passwords
    box: SecretBox
    mailer: Mailer
    notifier: Notifier
    sms: SmsGateway
    address_limiter: Limiter
    token_limiter: Limiter


CONTEXT = web.AppKey("zoneapi.context", Context)
# Imported lazily where used to keep this module free of cycles.
ENDPOINTS = web.AppKey("zoneapi.endpoints", list)  # list[zoneapi.endpoints.Endpoint]
