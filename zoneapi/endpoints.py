"""The route registry: each endpoint is declared once, with its schema.

A route module builds a `Routes`, declares handlers with its decorators and
exposes `setup(app)` which calls `routes.install(app)`. The declaration
drives three things, so they cannot disagree: the aiohttp route, the
request checks done before the handler runs (authentication, body parsed
and validated against `body`), and the endpoint's entry in the OpenAPI
document.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from zoneapi.auth import PRINCIPAL, authenticate
from zoneapi.jsonio import JSON_TYPE, read_json
from zoneapi.keys import CONTEXT
from zoneapi.schema import JsonValue, Schema

API_PREFIX = "/api/v1"
DNS_TEXT = "text/dns"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY = web.RequestKey("zoneapi.body", object)


class Auth(enum.Enum):
    NONE = "none"  # public (sign-up, login, the OpenAPI document)
    REQUIRED = "required"  # a session or a token


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # below API_PREFIX, aiohttp syntax: "/zones/{zone}"
    handler: Handler
    summary: str
    tag: str
    auth: Auth = Auth.REQUIRED
    body: Schema | None = None
    body_media: str = JSON_TYPE
    query: tuple[QueryParam, ...] = ()
    responses: Mapping[int, Schema | None] = field(default_factory=dict)
    response_media: str = JSON_TYPE
    # Other media types a success may come in (e.g. "text/csv" with ?format=csv).
    other_media: tuple[str, ...] = ()
    # Error statuses beyond the usual 4xx, e.g. 503 when a service it needs is not
    # configured, or 502 when a provider it calls fails (JSON error bodies).
    errors: tuple[int, ...] = ()

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


ENDPOINTS = web.AppKey("zoneapi.endpoint_list", list[Endpoint])


def body_of(request: web.Request) -> JsonValue:
    """The validated JSON body of an endpoint declared with `body=`."""
    return request[BODY]  # type: ignore[return-value]


class Routes:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self, method: str, path: str, *, summary: str, auth: Auth = Auth.REQUIRED,
        body: Schema | None = None, body_media: str = JSON_TYPE,
        query: tuple[QueryParam, ...] = (), responses: Mapping[int, Schema | None] | None = None,
        response_media: str = JSON_TYPE, other_media: tuple[str, ...] = (),
        errors: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(Endpoint(
                method=method, path=path, handler=handler, summary=summary, tag=self.tag,
                auth=auth, body=body, body_media=body_media, query=query,
                responses=dict(responses or {200: None}), response_media=response_media,
                other_media=other_media, errors=errors,
            ))
            return handler
        return register

    def get(self, path: str, **kw: object) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)  # type: ignore[arg-type]

    def post(self, path: str, **kw: object) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)  # type: ignore[arg-type]

    def put(self, path: str, **kw: object) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)  # type: ignore[arg-type]

    def patch(self, path: str, **kw: object) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)  # type: ignore[arg-type]

    def delete(self, path: str, **kw: object) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)  # type: ignore[arg-type]

    def install(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, API_PREFIX + endpoint.path, _wrap(endpoint),
                                 name=endpoint.operation_id)
            app[ENDPOINTS].append(endpoint)


def _wrap(endpoint: Endpoint) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if endpoint.auth is Auth.REQUIRED:
            request[PRINCIPAL] = await authenticate(request)
        if endpoint.body is not None and endpoint.body_media == JSON_TYPE:
            config = request.app[CONTEXT].config
            request[BODY] = await read_json(request, endpoint.body, config.max_body_bytes)
        return await endpoint.handler(request)

    handle.__name__ = endpoint.operation_id
    return handle
