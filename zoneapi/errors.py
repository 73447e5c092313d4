"""Errors that become JSON answers: {"code": ..., "detail": ..., ...extra}.

`code` is stable and machine-readable; `detail` is for humans. Handlers
raise ApiError (or a subclass); the error middleware renders it, and turns
every other failure (aiohttp's own 404/405/413, an unexpected exception)
into the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping


class ZoneApiError(Exception):
    """The zone API refused a request."""


class ApiError(ZoneApiError):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        extra: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"code": self.code, "detail": self.detail, **self.extra}


class BadRequest(ApiError):
    """The request is malformed (400)."""

    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(400, code, detail, extra=extra)


class Unauthenticated(ApiError):
    """No valid credential (401)."""

    def __init__(self, code: str = "unauthenticated", detail: str = "authentication required",
                 **extra: object) -> None:
        super().__init__(401, code, detail, extra=extra,
                         headers={"WWW-Authenticate": 'Bearer realm="zonehost"'})


class Forbidden(ApiError):
    """Authenticated, but not allowed (403)."""

    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(403, code, detail, extra=extra)


class NotFound(ApiError):
    """No such object, or not one the caller may see (404)."""

    def __init__(self, detail: str = "not found", code: str = "not_found") -> None:
        super().__init__(404, code, detail)


class Conflict(ApiError):
    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(409, code, detail, extra=extra)


class Unprocessable(ApiError):
    """Well-formed, but the data is refused (422)."""

    def __init__(self, code: str, detail: str, **extra: object) -> None:
        super().__init__(422, code, detail, extra=extra)


class TooManyRequests(ApiError):
    def __init__(self, retry_after_s: int, code: str = "rate_limited",
                 detail: str = "too many requests") -> None:
        retry = max(1, int(retry_after_s))
        super().__init__(429, code, detail, extra={"retry_after_s": retry},
                         headers={"Retry-After": str(retry)})
