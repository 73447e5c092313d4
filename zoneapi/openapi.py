"""The OpenAPI 3.1 document, generated from the endpoint declarations."""

from __future__ import annotations

import re
from collections.abc import Iterable

from zoneapi.endpoints import API_PREFIX, Auth, Endpoint
from zoneapi.jsonio import JSON_TYPE

ERROR_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["code", "detail"],
    "properties": {"code": {"type": "string"}, "detail": {"type": "string"}},
}
# "{name}" or "{name:regex}", the regex possibly holding "{m,n}" itself.
_PARAM = re.compile(r"\{([^}:]+)(?::(?:[^{}]|\{[^}]*\})*)?\}")


# Every route may answer these, always with an Error body.
COMMON_ERRORS = (400, 401, 403, 404, 409, 412, 413, 415, 422, 429)


def _content(media: str, schema: object) -> dict[str, object]:
    if media == JSON_TYPE:
        return {media: {"schema": schema if schema is not None else {}}}
    return {media: {"schema": {"type": "string"}}}


def _error() -> dict[str, object]:
    return {"description": "error", "content": {JSON_TYPE: {"schema": ERROR_SCHEMA}}}


def _operation(endpoint: Endpoint) -> dict[str, object]:
    params: list[dict[str, object]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(endpoint.path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": q.required, "schema": dict(q.schema),
         **({"description": q.description} if q.description else {})}
        for q in endpoint.query
    ]
    responses: dict[str, object] = {}
    for status, schema in endpoint.responses.items():
        if status >= 400:  # errors are JSON whatever the success's media type
            entry = _error()
            if schema is not None:
                entry["content"] = _content(JSON_TYPE, schema)
        else:
            entry = {"description": "success"}
            if status != 204:
                entry["content"] = {**_content(endpoint.response_media, schema),
                                    **{m: {"schema": {"type": "string"}}
                                       for m in endpoint.other_media}}
        responses[str(status)] = entry
    for status in (*COMMON_ERRORS, *endpoint.errors):
        responses.setdefault(str(status), _error())
    operation: dict[str, object] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "parameters": params,
        "responses": responses,
    }
    if endpoint.auth is Auth.NONE:
        operation["security"] = []
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True, "content": _content(endpoint.body_media, endpoint.body),
        }
    return operation


def document(endpoints: Iterable[Endpoint], version: str = "1.0.0") -> dict[str, object]:
    paths: dict[str, dict[str, object]] = {}
    for endpoint in endpoints:
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", API_PREFIX + endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "zonehost zone API", "version": version},
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "zonehost_session"},
            },
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "security": [{"token": []}, {"session": []}],
        "paths": paths,
    }
