"""What the sync and async clients share: request bodies, the deterministic idempotency
key, splitting rows by key, and the retry policy. No I/O here."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._encoding import NaiveDatetime, encode_rows, encode_value
from .errors import PayloadTooLarge, StreamguardError, ValidationError

logger = logging.getLogger("streamguard")

#: Statuses retried with backoff: rate limited, and a proxy or the service unavailable.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: The service's default limits (``STREAMGUARD_MAX_ROWS``, ``STREAMGUARD_MAX_BODY_BYTES``).
DEFAULT_MAX_ROWS = 50_000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
#: Bytes of a body besides its rows (names, key columns, run...), for the size estimate.
_BODY_OVERHEAD = 4096


def dumps(value: Any) -> bytes:
    """Compact JSON, UTF-8, NaN refused (values are encoded before this)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of connection errors and of 429/502/503/504 answers.

    ``retries`` more tries after the first; before retry ``n`` (0-based) the client sleeps a
    random time between half and all of ``min(cap, base * 2**n)`` seconds (jitter spreads
    clients apart), and never less than a ``Retry-After`` the service sent.
    """

    retries: int = 5
    base: float = 0.5
    cap: float = 20.0

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``retry`` (0-based)."""
        ceiling = min(self.cap, self.base * (2**retry))
        jittered = random.uniform(ceiling / 2, ceiling)
        return max(jittered, retry_after or 0.0)


def log_retry(
    method: str, path: str, cause: str, attempt: int, policy: RetryPolicy, delay: float
) -> None:
    """Logs a retry on the ``streamguard`` logger (WARNING): what failed and when it is tried
    again."""
    logger.warning(
        "%s %s: %s; retry %d of %d in %.2f s (same request, same idempotency key)",
        method,
        path,
        cause,
        attempt + 1,
        policy.retries,
        delay,
    )


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header's seconds (the date form is ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Limits:
    """Client-side limits for splitting (the service's defaults unless told otherwise)."""

    max_rows: int = DEFAULT_MAX_ROWS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True)
class Group:
    """The rows of one key (or one delete key), which always travel together."""

    rows: tuple[dict[str, Any], ...]
    delete_key: dict[str, Any] | None
    size: int


@dataclass(frozen=True)
class Part:
    """A batch to post: whole key groups."""

    groups: tuple[Group, ...]

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The part's rows."""
        return [r for g in self.groups for r in g.rows]

    @property
    def delete_keys(self) -> list[dict[str, Any]]:
        """The part's pure deletes."""
        return [g.delete_key for g in self.groups if g.delete_key is not None]


def _identity(value: Any) -> Any:
    # As the service: an integral float a double holds exactly names the same key as the int.
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def group_rows(
    rows: Sequence[dict[str, Any]],
    delete_keys: Sequence[dict[str, Any]],
    key_columns: Sequence[str],
    partition_column: str | None,
) -> list[Group]:
    """The rows grouped by key (and partition), in order of first appearance; each delete
    key its own group."""
    columns = [*key_columns, *([partition_column] if partition_column else [])]
    order: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        ident = json.dumps([_identity(row.get(c)) for c in columns], sort_keys=True, default=str)
        order.setdefault(ident, []).append(row)
    groups = [Group(tuple(rs), None, sum(len(dumps(r)) + 1 for r in rs)) for rs in order.values()]
    groups += [Group((), k, len(dumps(k)) + 1) for k in delete_keys]
    return groups


def pack(groups: Iterable[Group], limits: Limits) -> list[Part]:
    """Whole groups into parts of at most ``max_rows`` rows and about ``max_body_bytes``
    bytes; a group over a limit on its own is a part of its own (the service judges it)."""
    parts: list[Part] = []
    current: list[Group] = []
    rows = size = 0
    budget = limits.max_body_bytes - _BODY_OVERHEAD
    for g in groups:
        if current and (rows + len(g.rows) > limits.max_rows or size + g.size > budget):
            parts.append(Part(tuple(current)))
            current, rows, size = [], 0, 0
        current.append(g)
        rows += len(g.rows)
        size += g.size
    if current:
        parts.append(Part(tuple(current)))
    return parts


def halve(part: Part) -> list[Part]:
    """A part of two or more groups as two parts of about half the rows each."""
    total = sum(len(g.rows) or 1 for g in part.groups)
    acc, cut = 0, 1
    for i, g in enumerate(part.groups):
        acc += len(g.rows) or 1
        if acc * 2 >= total:
            cut = max(1, min(i + 1, len(part.groups) - 1))
            break
    return [Part(part.groups[:cut]), Part(part.groups[cut:])]


def over_limit(error: StreamguardError) -> bool:
    """Whether the service refused a batch for its size (rows or body bytes), so that
    splitting it by key may help."""
    if isinstance(error, PayloadTooLarge):
        return True
    return isinstance(error, ValidationError) and any(
        e.limit in ("STREAMGUARD_MAX_ROWS", "STREAMGUARD_MAX_BODY_BYTES") for e in error.errors
    )


@dataclass(frozen=True)
class BatchSpec:
    """Everything of a ``replace`` call but its rows, already checked."""

    processor_name: str
    table: str
    key_columns: tuple[str, ...]
    partition_column: str | None
    run: str | None
    idempotency_key: str | None
    wait: float | None
    split: bool
    #: A nonce of this ``replace`` call (``spec_for`` draws one): it is part of the derived
    #: idempotency key, so the call's own retries replay its batch while a later call with
    #: the same rows — a revert, a re-run — writes them again.
    call: str = ""


def content_key(body: Mapping[str, Any], call: str = "") -> str:
    """An idempotency key derived from a batch's content: ``sg-`` and the SHA-256 of its
    canonical JSON (members sorted) without the key itself, and of the ``call``'s nonce.
    Within one call the same rows always give the same key, so a retried POST replays the
    batch the first one made instead of writing a second."""
    content = {k: v for k, v in body.items() if k != "idempotency_key"}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sg-" + hashlib.sha256((canonical + call).encode()).hexdigest()


def part_body(spec: BatchSpec, part: Part, whole: bool) -> dict[str, Any]:
    """The JSON body of one part. ``whole``: the part is all of the caller's rows, so a
    caller's idempotency key is used as given; a part of a split gets the key plus a digest
    of its own content, so each part is idempotent on its own."""
    body: dict[str, Any] = {
        "processor_name": spec.processor_name,
        "table": spec.table,
        "key_columns": list(spec.key_columns),
        "rows": part.rows,
    }
    if spec.partition_column is not None:
        body["partition_column"] = spec.partition_column
    if part.delete_keys:
        body["delete_keys"] = part.delete_keys
    if spec.run is not None:
        body["run"] = spec.run
    if spec.idempotency_key is None:
        body["idempotency_key"] = content_key(body, spec.call)
    elif whole:
        body["idempotency_key"] = spec.idempotency_key
    else:
        body["idempotency_key"] = f"{spec.idempotency_key[:180]}.{content_key(body)[3:27]}"
    return body


def plan(
    spec: BatchSpec,
    rows: Any,
    delete_keys: Iterable[Mapping[str, Any]],
    limits: Limits,
    naive_datetime: NaiveDatetime,
) -> list[Part]:
    """Encodes the rows (raising :class:`EncodingError` before anything is sent) and, when
    splitting is allowed, packs them by key into parts within ``limits``."""
    encoded = encode_rows(rows, naive_datetime)
    deletes = [
        encode_value(dict(k), f"/delete_keys/{i}", naive_datetime)
        for i, k in enumerate(delete_keys)
    ]
    groups = group_rows(encoded, deletes, spec.key_columns, spec.partition_column)
    if not spec.split:
        return [Part(tuple(groups))]
    return pack(groups, limits)


def spec_for(
    default_processor: str | None,
    processor_name: str | None,
    table: str,
    key_columns: str | Sequence[str],
    partition_column: str | None,
    run: str | None,
    idempotency_key: str | None,
    wait: float | None,
    split: bool,
) -> BatchSpec:
    """Checks the arguments of ``replace`` that the client can check itself."""
    name = processor_name or default_processor
    if not name:
        raise ValueError("processor_name is required (here or when making the client)")
    columns = (key_columns,) if isinstance(key_columns, str) else tuple(key_columns)
    if wait is not None and wait < 0:
        raise ValueError("wait must be a number of seconds >= 0")
    call = uuid.uuid4().hex
    return BatchSpec(
        name, table, columns, partition_column, run, idempotency_key, wait, split, call
    )


def request_timeout(base: float | None, wait: float | None) -> float | None:
    """The HTTP timeout for a request that may wait ``wait`` seconds on the service."""
    if base is None:
        return None
    return base + (wait or 0.0)


def report_body(
    default_processor: str | None,
    processor_name: str | None,
    table: str,
    key: Mapping[str, Any],
    error_message: str,
    conflict_type: str,
    partition: Mapping[str, Any] | None,
    retry_attempt: int | None,
    delay_seconds: int | None,
    max_retries: int | None,
    rows_affected: int | None,
    details: Mapping[str, Any] | None,
    rows: Any,
    idempotency_key: str | None,
    naive_datetime: NaiveDatetime,
) -> dict[str, Any]:
    """The body of ``POST /v1/conflicts`` (the seed's conflict-log columns). With ``rows``
    it always carries an idempotency key (the caller's or one from the content)."""
    name = processor_name or default_processor
    if not name:
        raise ValueError("processor_name is required (here or when making the client)")
    body: dict[str, Any] = {
        "processor_name": name,
        "table": table,
        "key": encode_value(dict(key), "/key", naive_datetime),
        "conflict_type": conflict_type,
        "error_message": error_message,
    }
    optional = {
        "partition": None if partition is None else encode_value(dict(partition), "/partition"),
        "retry_attempt": retry_attempt,
        "delay_seconds": delay_seconds,
        "max_retries": max_retries,
        "rows_affected": rows_affected,
        "details": None if details is None else encode_value(dict(details), "/details"),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if rows is not None:
        body["rows"] = encode_rows(rows, naive_datetime)
        body["idempotency_key"] = idempotency_key or content_key(body)
    elif idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    return body
