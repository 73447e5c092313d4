"""The OpenAPI document matches the routes really served, and requests are
counted in Prometheus metrics by route and status."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from storage.db import Database
from tests.integration.test_api_harness import ApiServer, running_api, seed_account, seed_token
from zoneapi.schema import validate

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
PARAM = re.compile(r"\{([^}:]+)(?::(?:[^{}]|\{[^}]*\})*)?\}")  # "{id:[0-9]{1,18}}" -> "{id}"


@pytest.fixture
async def api(db: Database) -> AsyncIterator[ApiServer]:
    async with running_api(db) as server:
        yield server


async def test_document_lists_exactly_the_served_routes(api: ApiServer) -> None:
    doc = (await api.client.call("GET", "/api/v1/openapi.json")).body
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in api.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        if route.method in METHODS and path.startswith("/api/v1"):
            served.add((route.method, PARAM.sub(r"{\1}", path)))
    assert documented == served
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert params == set(re.findall(r"\{([^}]+)\}", path)), (method, path)
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                # A request schema must refuse a body with an unknown field.
                schema = body["schema"]
                if schema.get("type") == "object" and "properties" in schema:
                    assert validate(schema, {"__unknown__": 1}), (method, path)


async def test_documented_response_schemas_hold(api: ApiServer) -> None:
    leader = await seed_account(api, "doc")
    token = await seed_token(api, leader)
    doc = (await api.client.call("GET", "/api/v1/openapi.json")).body
    for path in ("/api/v1/tokens", "/api/v1/me", "/api/v1/zones", "/api/v1/health"):
        reply = await api.client.call("GET", path, token=token)
        schema = doc["paths"][path]["get"]["responses"]["200"]["content"][
            "application/json"]["schema"]
        assert reply.status == 200 and validate(schema, reply.body) == [], path
    error = await api.client.call("GET", "/api/v1/zones/nowhere.example", token=token)
    error_schema = doc["components"]["schemas"]["Error"]
    assert error.status == 404 and validate(error_schema, error.body) == []


async def test_requests_are_counted_by_route_and_status(api: ApiServer) -> None:
    def count(route: str, status: str) -> float:
        value = REGISTRY.get_sample_value("zoneapi_requests_total",
                                          {"route": route, "method": "GET", "status": status})
        return value or 0.0

    before_ok = count("/api/v1/health", "200")
    before_401 = count("/api/v1/me", "401")
    before_unmatched = count("unmatched", "404")
    await api.client.call("GET", "/api/v1/health")
    await api.client.call("GET", "/api/v1/me")
    await api.client.call("GET", "/nowhere")
    assert count("/api/v1/health", "200") == before_ok + 1
    assert count("/api/v1/me", "401") == before_401 + 1
    assert count("unmatched", "404") >= before_unmatched + 1


async def test_configured_services_and_csv_are_documented(api: ApiServer) -> None:
    """A route that needs a configured service documents its 503, one offering CSV its
    text/csv; every error of every route is the JSON Error, PDF and DNS routes too."""
    doc = (await api.client.call("GET", "/api/v1/openapi.json")).body
    paths = doc["paths"]
    for path, method in (("/api/v1/billing/orders/{number}/checkout", "post"),
                         ("/api/v1/billing/payments/webhook", "post"),
                         ("/api/v1/zones/{zone}/mail/setup-mx", "post")):
        assert "503" in paths[path][method]["responses"], path
    for path in ("/api/v1/billing/domains", "/api/v1/billing/domains/{domain}/stats"):
        assert set(paths[path]["get"]["responses"]["200"]["content"]) == {
            "application/json", "text/csv"}, path
    for path, ops in paths.items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if int(status) >= 400:
                    assert answer["content"] == {"application/json": {
                        "schema": doc["components"]["schemas"]["Error"]}}, (method, path, status)
    # Without the provider, checkout answers that 503 as the Error, after the rights:
    # an order the caller cannot see is a 404 first.
    leader = await seed_account(api, "svc")
    token = await seed_token(api, leader)
    missing = await api.client.call("POST", "/api/v1/billing/orders/ZH99999999/checkout",
                                    token=token, json_body={})
    assert (missing.status, missing.code) == (404, "order_not_found")
    webhook = await api.client.call("POST", "/api/v1/billing/payments/webhook", data=b"{}")
    assert (webhook.status, webhook.code) == (503, "card_unavailable")
    assert validate(doc["components"]["schemas"]["Error"], webhook.body) == []
