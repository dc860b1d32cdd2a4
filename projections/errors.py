"""The projections' exceptions: one root, with the read side's errors carrying their HTTP status.

The API renders a :class:`QueryError` as problem+json with its ``status``, ``title`` and
``param``; it never needs to know which query raised it.
"""

from __future__ import annotations

from datetime import datetime


class ProjectionError(Exception):
    """Root of every error the projections package raises."""


class ProjectionStoppedError(ProjectionError):
    """A projection met an event it cannot apply and stopped there (it never skips one).

    ``position`` is the event's position; the projection's checkpoint stays just before it.
    """

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


class ProjectionStateError(ProjectionError):
    """The projection tables are not in a state the runner can continue from (not migrated,
    checkpoints apart, another rebuild running); the message says what to do."""


class QueryError(ProjectionError):
    """A read-side question that cannot be answered as asked; rendered with ``status``."""

    status: int = 400
    title: str = "Bad request"

    def __init__(self, detail: str, *, param: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.param = param


class InvalidParameterError(QueryError):
    """A parameter's meaning is invalid: ``at`` with ``position``, a bad cursor, a limit
    outside 1-1000. ``param`` names it."""

    status = 400
    title = "Invalid parameter"


class NotFoundError(QueryError):
    """The resource did not exist then (or ever). When it existed at other times,
    ``first_seen`` and ``last_seen`` say when: the first and the last observation that showed
    it (for one that still exists, its latest observation as far as known)."""

    status = 404
    title = "Not found"

    def __init__(
        self,
        detail: str,
        *,
        first_seen: datetime | None = None,
        last_seen: datetime | None = None,
    ) -> None:
        super().__init__(detail)
        self.first_seen = first_seen
        self.last_seen = last_seen


class UnprocessableError(QueryError):
    """Well-formed but impossible: a time in the future, a position past the head."""

    status = 422
    title = "Unprocessable request"
