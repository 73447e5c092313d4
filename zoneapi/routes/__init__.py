"""Every route module of the API. To add endpoints, write a module with
`setup(app)` (see zoneapi/README.md) and append it to ROUTE_MODULES."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from zoneapi.routes import (
    account,
    auth,
    billing_api,
    history,
    mail_aliases,
    me,
    meta,
    tokens,
    zones,
)


class RouteModule(Protocol):
    def setup(self, app: web.Application) -> None: ...


ROUTE_MODULES: list[RouteModule] = [
    meta,
    auth,
    me,
    tokens,
    account,
    zones,
    history,
    billing_api,
    mail_aliases,
]


def setup_routes(app: web.Application) -> None:
    for module in ROUTE_MODULES:
        module.setup(app)
