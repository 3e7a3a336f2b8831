"""Exceptions carrying the service's problem+json answers (RFC 9457).

Every error answer of streamguard is ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail`` and, where a field is at fault, ``errors``: each with the
JSON ``pointer`` into the request body (``/rows/3/game_id``), a ``detail`` and, for a
limit, the ``limit`` setting that holds it (``STREAMGUARD_MAX_ROWS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._encoding import EncodingError

__all__ = [
    "BadRequest",
    "Conflict",
    "EncodingError",
    "FieldError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "ServerError",
    "StreamguardError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
]


@dataclass(frozen=True)
class FieldError:
    """One offending field: where (JSON pointer), what, and the limit setting if any."""

    pointer: str
    detail: str
    limit: str | None = None


class StreamguardError(Exception):
    """An error answer from the service.

    ``status`` is the HTTP status; ``problem`` the whole problem+json body (empty when the
    answer was not problem+json); ``errors`` each offending field.
    """

    def __init__(self, status: int, problem: dict[str, Any], method: str, url: str) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type", ""))
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        self.errors: list[FieldError] = [
            FieldError(str(e.get("pointer", "")), str(e.get("detail", "")), e.get("limit"))
            for e in problem.get("errors", []) or []
            if isinstance(e, dict)
        ]
        self.method = method
        self.url = url
        lines = [f"{method} {url}: {status} {self.title or 'error'}: {self.detail}".rstrip(": ")]
        lines += [f"  {e.pointer or '/'}: {e.detail}" for e in self.errors]
        super().__init__("\n".join(lines))

    @property
    def pointers(self) -> list[str]:
        """The JSON pointers of the offending fields."""
        return [e.pointer for e in self.errors]


class BadRequest(StreamguardError):
    """400: the body is not JSON, or a query parameter is out of range."""


class Unauthorized(StreamguardError):
    """401: no token, or an unknown one."""


class Forbidden(StreamguardError):
    """403: the token lacks the scope; ``required_scope`` names it."""

    @property
    def required_scope(self) -> str | None:
        """The scope the request needs (``write``, ``read`` or ``admin``)."""
        scope = self.problem.get("required_scope")
        return str(scope) if scope is not None else None


class NotFound(StreamguardError):
    """404: no such batch, run, conflict or route."""


class Conflict(StreamguardError):
    """409: refused in the current state, e.g. the table has units not landed yet keyed by
    other columns."""


class PayloadTooLarge(StreamguardError):
    """413: the body exceeds ``STREAMGUARD_MAX_BODY_BYTES``; split the batch."""


class UnsupportedMediaType(StreamguardError):
    """415: the body was not sent as JSON."""


class ValidationError(StreamguardError):
    """422: the request breaks a rule or a limit; ``errors`` names each field. Nothing of
    the batch was accepted."""


class ServerError(StreamguardError):
    """5xx (after retries, for 502/503/504), or any other unexpected status."""


class WaitTimeout(TimeoutError):
    """``wait``/``follow_run`` gave up before the end; ``last`` is the last state seen."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


_BY_STATUS: dict[int, type[StreamguardError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
}


def error_for(status: int, body: bytes, method: str, url: str) -> StreamguardError:
    """The exception for an error answer: its class by status, its problem from the body."""
    import json

    try:
        problem = json.loads(body) if body else {}
    except ValueError:
        problem = {"detail": body[:500].decode("utf-8", "replace")}
    if not isinstance(problem, dict):
        problem = {"detail": str(problem)}
    return _BY_STATUS.get(status, ServerError)(status, problem, method, url)
