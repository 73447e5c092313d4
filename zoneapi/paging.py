"""Query-string helpers: page sizes and cursors, refusing nonsense with 400."""

from __future__ import annotations

from aiohttp import web

from zoneapi.endpoints import QueryParam
from zoneapi.errors import BadRequest

DEFAULT_LIMIT = 100


def ascii_digits(text: str) -> bool:
    """Only 0-9: str.isdigit() also takes '³', which int() then refuses."""
    return text.isascii() and text.isdigit()


def limit_param() -> QueryParam:
    return QueryParam("limit", {"type": "integer", "minimum": 1}, "page size")


def page_limit(request: web.Request, max_limit: int) -> int:
    text = request.query.get("limit")
    if text is None:
        return min(DEFAULT_LIMIT, max_limit)
    if not ascii_digits(text) or len(text) > 9 or int(text) < 1:
        raise BadRequest("invalid_query", "limit must be a positive integer")
    return min(int(text), max_limit)


def query_text(request: web.Request, name: str, max_chars: int = 255) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_chars:
        raise BadRequest("invalid_query", f"{name} is longer than {max_chars} characters")
    return value


def query_bool(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise BadRequest("invalid_query", f"{name} must be true or false")
