"""Who may receive mail here: `check_rcpt(address) -> Accept | Reject`.

Everything else (the alias rules, the zone and mail-service states) comes
from storage.aliases, the same rules the zone API and the CLI apply. SRS
addresses of our own domain are bounces coming back: they are accepted when
their hash and timestamp check out and go to the address they encode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.exc import DBAPIError, OperationalError

from mx_forwarder.aliascache import AliasCache
from mx_forwarder.errors import SrsError
from mx_forwarder.srs import Srs
from storage.aliases import InvalidAddress, RcptOutcome, parse_address
from storage.models.mail import MessageKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accept:
    recipient: str  # the alias (normalised) or the SRS address as given
    targets: tuple[str, ...]
    kind: MessageKind


@dataclass(frozen=True, slots=True)
class Reject:
    code: int
    text: str  # with its enhanced status code
    reason: str  # metrics label

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


RELAY_DENIED = Reject(550, "5.7.1 Relay access denied", "relay_denied")
UNKNOWN = Reject(550, "5.1.1 Recipient address rejected: no such alias", "unknown_alias")
UNCONFIRMED = Reject(450, "4.2.1 Recipient not confirmed yet, try again later", "unconfirmed")
BAD_SYNTAX = Reject(553, "5.1.3 Bad recipient address syntax", "bad_address")
BAD_SRS = Reject(550, "5.1.1 Invalid or expired bounce address", "srs_invalid")
LOOKUP_FAILED = Reject(451, "4.3.0 Temporary lookup failure, try again later", "lookup_failed")


class RcptPolicy(Protocol):
    async def check_rcpt(self, address: str) -> Accept | Reject: ...


def _relay_trick(address: str) -> bool:
    local, _, domain = address.rpartition("@")
    return (
        "%" in local or "!" in local or '"' in address or ":" in address
        or domain.startswith("[") or "@" in local or not domain
    )


class StorePolicy:
    def __init__(self, cache: AliasCache, srs: Srs) -> None:
        self._cache = cache
        self._srs = srs

    async def check_rcpt(self, address: str) -> Accept | Reject:
        if self._srs.is_ours(address):
            try:
                original = self._srs.reverse(address)
                parse_address(original)  # a bounce goes to a plain address only
            except (SrsError, InvalidAddress):
                return BAD_SRS
            return Accept(address, (original,), MessageKind.BOUNCE)
        if _relay_trick(address):
            return RELAY_DENIED
        try:
            parsed = parse_address(address)
        except InvalidAddress:
            return BAD_SYNTAX
        try:
            found = await self._cache.lookup(parsed)
        except (OSError, DBAPIError, OperationalError) as exc:
            log.error("alias lookup failed: %s", exc)
            return LOOKUP_FAILED
        match found.outcome:
            case RcptOutcome.ACCEPT:
                return Accept(str(found.alias), found.targets, MessageKind.FORWARD)
            case RcptOutcome.UNKNOWN_ALIAS:
                return UNKNOWN
            case RcptOutcome.UNCONFIRMED:
                return UNCONFIRMED
            case _:
                return RELAY_DENIED
