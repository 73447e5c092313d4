"""Every answer is JSON {"code", "detail"}: aiohttp's own errors, broken
bodies, wrong content types, unknown fields, oversized bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from storage.db import Database
from tests.integration.test_api_harness import ApiServer, api_config, running_api
from zoneapi.endpoints import Auth, Routes, body_of
from zoneapi.jsonio import json_response
from zoneapi.schema import integer, obj, string


@pytest.fixture
async def echo_api(db: Database) -> AsyncIterator[ApiServer]:
    """The API with one extra public endpoint, added through the route registry."""
    routes = Routes("test")

    @routes.post("/echo", summary="echo", auth=Auth.NONE,
                 body=obj({"name": string(20), "n": integer(0, 9)}, required=("name",)))
    async def echo(request: web.Request) -> web.Response:
        return json_response({"got": body_of(request)})

    async with running_api(db, api_config(max_body_bytes=1000), extra=routes) as server:
        yield server


@pytest.fixture
async def api(db: Database) -> AsyncIterator[ApiServer]:
    async with running_api(db) as server:
        yield server


async def test_health_and_openapi(api: ApiServer) -> None:
    reply = await api.client.call("GET", "/api/v1/health")
    assert reply.status == 200 and reply.body == {"status": "ok"}
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    doc = (await api.client.call("GET", "/api/v1/openapi.json")).body
    assert doc["openapi"] == "3.1.0"
    assert "get" in doc["paths"]["/api/v1/health"]


ROUTER_ERRORS = [
    ("GET", "/nothing-here", 404, "not_found"),
    ("GET", "/api/v1/nothing", 404, "not_found"),
    ("DELETE", "/api/v1/health", 405, "method_not_allowed"),
]


async def test_router_errors_are_json(api: ApiServer) -> None:
    for method, path, status, code in ROUTER_ERRORS:
        reply = await api.client.call(method, path)
        assert reply.status == status
        assert reply.code == code and isinstance(reply.body["detail"], str)


BAD_BODIES: list[tuple[str | bytes, str, int, str | None]] = [
    ('{"name": "a"}', "application/json", 200, None),
    ('{"name": "a"', "application/json", 400, "invalid_json"),
    ('{"name": NaN}', "application/json", 400, "invalid_json"),
    (b'{"name": "\xff"}', "application/json", 400, "invalid_json"),
    ('[' * 100_0 + ']' * 100_0, "application/json", 413, "body_too_large"),
    ('{"name": "a", "evil": 1}', "application/json", 400, "invalid_request"),
    ('{"n": 99}', "application/json", 400, "invalid_request"),
    ('name=a', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ('{"name": "a"}', "text/plain", 415, "unsupported_media_type"),
    ('{"name": "' + "x" * 2000 + '"}', "application/json", 413, "body_too_large"),
]


async def test_bad_bodies(echo_api: ApiServer) -> None:
    for data, content_type, status, code in BAD_BODIES:
        reply = await echo_api.client.call("POST", "/api/v1/echo", data=data,
                                           headers={"Content-Type": content_type})
        assert reply.status == status, (data, reply.text)
        assert reply.code == code
        if code == "invalid_request":
            assert reply.body["errors"]


async def test_deep_nesting_is_refused_not_crashing(echo_api: ApiServer) -> None:
    reply = await echo_api.client.call("POST", "/api/v1/echo", data="[" * 400 + "]" * 400,
                                       headers={"Content-Type": "application/json"})
    assert reply.status == 400 and reply.code == "invalid_request"


async def test_anonymous_is_401_json(api: ApiServer) -> None:
    reply = await api.client.call("GET", "/api/v1/zones")
    assert reply.status in (401, 404)
