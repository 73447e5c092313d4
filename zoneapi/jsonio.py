"""Request bodies in, JSON out: content type, size limit, strict parsing.

Bodies are read with a hard byte limit before parsing, so an oversized body
costs at most `max_bytes` of memory; the JSON must be an exact match for
the endpoint's schema (unknown fields are refused).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from aiohttp import web

from zoneapi.errors import ApiError, BadRequest
from zoneapi.schema import JsonObject, JsonValue, Schema, validate

JSON_TYPE = "application/json"


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"the request body exceeds {max_bytes} bytes",
                    extra={"max_bytes": max_bytes})


async def read_bytes(request: web.Request, max_bytes: int) -> bytes:
    """The raw body, refusing (413) anything beyond `max_bytes`."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def require_type(request: web.Request, *expected: str) -> None:
    if request.content_type not in expected:
        raise ApiError(415, "unsupported_media_type",
                       f"the body must be {' or '.join(expected)}, not "
                       f"{request.content_type or 'missing'}",
                       extra={"expected": list(expected)})


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> JsonValue:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("invalid_json", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        return cast(JsonValue, json.loads(text, parse_constant=_refuse_constant))
    except json.JSONDecodeError as exc:
        raise BadRequest("invalid_json",
                         f"broken JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest("invalid_json", f"invalid JSON: {str(exc)[:100]}") from None


async def read_json(request: web.Request, schema: Schema, max_bytes: int) -> JsonValue:
    """The JSON body, checked against `schema` (400 "invalid_request" listing every problem)."""
    require_type(request, JSON_TYPE)
    value = parse_json(await read_bytes(request, max_bytes))
    errors = validate(schema, value)
    if errors:
        raise BadRequest("invalid_request", "the request body does not match the schema: "
                         + "; ".join(errors[:5]), errors=errors)
    return value


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def dumps(value: object) -> str:
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"))


def json_response(value: object, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(text=dumps(value), status=status, content_type=JSON_TYPE,
                        headers=headers)


# Typed access to a body that already passed its schema.

def as_object(value: JsonValue) -> JsonObject:
    if not isinstance(value, dict):
        raise BadRequest("invalid_request", "expected a JSON object")
    return value


def get_str(body: JsonObject, key: str, default: str = "") -> str:
    value = body.get(key)
    return value if isinstance(value, str) else default


def opt_str(body: JsonObject, key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def opt_int(body: JsonObject, key: str) -> int | None:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def get_bool(body: JsonObject, key: str, default: bool = False) -> bool:
    value = body.get(key)
    return value if isinstance(value, bool) else default


def str_list(body: JsonObject, key: str) -> list[str] | None:
    value = body.get(key)
    if not isinstance(value, list):
        return None
    return [v for v in value if isinstance(v, str)]


def obj_list(body: JsonObject, key: str) -> list[JsonObject]:
    value = body.get(key)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)]
