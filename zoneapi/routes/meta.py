"""The API about itself: health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from zoneapi.endpoints import ENDPOINTS, Auth, Routes
from zoneapi.jsonio import json_response
from zoneapi.openapi import document
from zoneapi.schema import open_object

routes = Routes("meta")


@routes.get("/health", summary="Liveness of the API", auth=Auth.NONE,
            responses={200: open_object()})
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/openapi.json", summary="This API's OpenAPI 3.1 document", auth=Auth.NONE,
            responses={200: open_object()})
async def openapi(request: web.Request) -> web.Response:
    endpoints = request.app[ENDPOINTS]
    return json_response(document(endpoints))


def setup(app: web.Application) -> None:
    routes.install(app)
