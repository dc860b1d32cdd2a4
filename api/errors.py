"""The API's errors: each carries its HTTP status; one middleware renders them as problem+json.

:class:`ApiError` is the root of every error the ``api`` package raises on purpose. Errors of
other packages that carry a status (the projections' ``QueryError``) are rendered the same way
by :mod:`api.middleware`.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer other than success: an HTTP status, a short title and a detail for people.

    ``param`` names the query or path parameter at fault (400s); ``extra`` adds members to the
    problem body (e.g. ``first_seen``/``last_seen`` of a 404); ``headers`` are sent with it
    (``Retry-After`` of a 503).
    """

    status = 500
    title = "Internal Server Error"

    def __init__(
        self,
        detail: str,
        *,
        param: str | None = None,
        status: int | None = None,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.param = param
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.extra = extra or {}
        self.headers = headers or {}


class BadParameterError(ApiError):
    """A malformed parameter (400); ``param`` names it."""

    status = 400
    title = "Bad Request"

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f"{param}: {detail}", param=param)


class UnauthorizedError(ApiError):
    """No bearer token, or one that matches no configured token (401)."""

    status = 401
    title = "Unauthorized"


class ForbiddenError(ApiError):
    """A valid token whose role may not do this (403)."""

    status = 403
    title = "Forbidden"


class NotFoundError(ApiError):
    """No such route, resource or resync (404)."""

    status = 404
    title = "Not Found"


class UnprocessableError(ApiError):
    """Well-formed but impossible (422)."""

    status = 422
    title = "Unprocessable Content"


class ServiceUnavailableError(ApiError):
    """The database (or another part we depend on) does not answer (503)."""

    status = 503
    title = "Service Unavailable"
