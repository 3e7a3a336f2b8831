"""The synchronous client, on ``httpx.Client``.

Every method maps to one route of the service (see ``GET /openapi.json``); errors raise
the exceptions of :mod:`streamguard.errors`; connection errors and 429/502/503/504 are
retried with jittered backoff (:class:`RetryPolicy`). A POST of a batch always carries an
idempotency key (the caller's, or one derived from its content), so a retried POST never
makes a second batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

import httpx

from . import _core
from ._encoding import NaiveDatetime
from ._version import USER_AGENT
from .errors import StreamguardError, WaitTimeout, error_for
from .models import (
    Batch,
    Breaker,
    ConflictReport,
    ConflictSummary,
    ReplaceResult,
    RunReport,
    UnresolvedConflict,
)

T = TypeVar("T")


class Conflicts:
    """The conflict log: ``client.conflicts.unresolved()`` and ``.summary()``."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def unresolved(self, hours: int = 24) -> list[UnresolvedConflict]:
        """Conflicts not resolved yet from the last ``hours`` hours (1..8760), newest first."""
        j = self._client._get_json("/v1/conflicts/unresolved", {"hours": hours})
        return [UnresolvedConflict.from_json(c) for c in j["conflicts"]]

    def summary(self, days: int = 7) -> list[ConflictSummary]:
        """Per day, processor and table over the last ``days`` days (1..366): totals,
        resolved, unresolved, average retries, sample games."""
        j = self._client._get_json("/v1/conflicts/summary", {"days": days})
        return [ConflictSummary.from_json(s) for s in j["summary"]]


class Client:
    """A streamguard client.

    ``url``: the service, e.g. ``http://127.0.0.1:8080``. ``token``: a bearer token (scope
    ``write`` to post, ``read`` to follow). ``timeout``: seconds per request (a request
    that waits on the service gets its ``wait`` added). ``processor_name``: the default for
    ``replace`` and ``report_conflict``. ``naive_datetime``: how a ``datetime`` without a
    time zone is sent (``"refuse"``, ``"civil"``, ``"utc"``; see :mod:`streamguard._encoding`).
    ``max_rows``/``max_body_bytes``: the service's limits, used when ``replace`` may split.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float | None = 30.0,
        *,
        processor_name: str | None = None,
        retry: _core.RetryPolicy | None = None,
        naive_datetime: NaiveDatetime = "refuse",
        max_rows: int = _core.DEFAULT_MAX_ROWS,
        max_body_bytes: int = _core.DEFAULT_MAX_BODY_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.timeout = timeout
        self.processor_name = processor_name
        self.retry = retry or _core.RetryPolicy()
        self.naive_datetime: NaiveDatetime = naive_datetime
        self.limits = _core.Limits(max_rows, max_body_bytes)
        self.conflicts = Conflicts(self)
        self._sleep: Callable[[float], None] = time.sleep

    # -- plumbing -----------------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One request with retries; the answer when 2xx, else the exception.

        ``idempotent`` requests are retried on every connection error and on 429/502/503/504;
        others only when the request cannot have reached the service (connect errors) or was
        refused before any work (429, 503).
        """
        content = _core.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method,
                    path,
                    params=params,
                    content=content,
                    headers=headers,
                    timeout=timeout if timeout is not None else self.timeout,
                )
            except httpx.TransportError as e:
                safe = idempotent or isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout))
                if not safe or attempt >= self.retry.retries:
                    raise
                delay = self.retry.delay(attempt)
                _core.log_retry(method, path, type(e).__name__, attempt, self.retry, delay)
                self._sleep(delay)
                attempt += 1
                continue
            status = response.status_code
            retryable = status in _core.RETRY_STATUSES and (idempotent or status in (429, 503))
            if retryable and attempt < self.retry.retries:
                delay = self.retry.delay(
                    attempt, _core.retry_after(response.headers.get("retry-after"))
                )
                _core.log_retry(method, path, str(status), attempt, self.retry, delay)
                self._sleep(delay)
                attempt += 1
                continue
            if status >= 400:
                raise error_for(status, response.content, method, str(response.url))
            return response

    def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=params).json()

    # -- batches -------------------------------------------------------------------------

    def replace(
        self,
        table: str,
        rows: Any,
        key_columns: str | Sequence[str],
        partition_column: str | None = None,
        processor_name: str | None = None,
        delete_keys: Iterable[Mapping[str, Any]] = (),
        idempotency_key: str | None = None,
        wait: float | None = None,
        run: str | None = None,
        *,
        split: bool = False,
    ) -> ReplaceResult:
        """Replaces, for every key in ``rows``, the table's rows of that key with these.

        ``rows``: mappings (or a pandas DataFrame) carrying every key column and the
        partition column. ``delete_keys``: keys whose rows are deleted without replacement.
        ``wait``: seconds the service may wait for each unit's first attempt (the units come
        back ``loaded``/``deferred``/``failed``); ``None`` answers at once (``pending``).
        ``run``: the backfill run the batch belongs to (``run()``/``follow_run()``).
        ``idempotency_key``: without one, a key is derived from the content, so retries
        (and a re-run of the same content) replay the first batch. ``split``: when the rows
        exceed the limits (or the service refuses them as too many or too big), post them
        as several batches, never splitting a key.

        Raises :class:`EncodingError` before sending a value it cannot send exactly,
        :class:`ValidationError` (each ``pointer`` and ``detail``), :class:`Conflict`,
        :class:`PayloadTooLarge`, :class:`Unauthorized`, :class:`Forbidden`.
        """
        spec = _core.spec_for(
            self.processor_name,
            processor_name,
            table,
            key_columns,
            partition_column,
            run,
            idempotency_key,
            wait,
            split,
        )
        parts = _core.plan(spec, rows, delete_keys, self.limits, self.naive_datetime)
        batches: list[Batch] = []
        for part in parts:
            batches += self._post_part(spec, part, whole=len(parts) == 1)
        return ReplaceResult(tuple(batches))

    def _post_part(self, spec: _core.BatchSpec, part: _core.Part, whole: bool) -> list[Batch]:
        body = _core.part_body(spec, part, whole)
        params = {"wait": spec.wait} if spec.wait is not None else None
        try:
            response = self._send(
                "POST",
                "/v1/batches",
                params=params,
                body=body,
                timeout=_core.request_timeout(self.timeout, spec.wait),
            )
        except StreamguardError as e:
            if spec.split and len(part.groups) > 1 and _core.over_limit(e):
                return [b for half in _core.halve(part) for b in self._post_part(spec, half, False)]
            raise
        replayed = response.headers.get("idempotent-replayed") == "true"
        return [Batch.from_json(response.json(), replayed)]

    def batch(self, batch_id: str) -> Batch:
        """The batch and its units' current state."""
        return Batch.from_json(self._get_json(f"/v1/batches/{batch_id}"))

    @overload
    def wait(
        self,
        batch: ReplaceResult,
        timeout: float | None = None,
        *,
        poll: float = 1.0,
        on_progress: Callable[[ReplaceResult], None] | None = None,
    ) -> ReplaceResult: ...

    @overload
    def wait(
        self,
        batch: Batch | str,
        timeout: float | None = None,
        *,
        poll: float = 1.0,
        on_progress: Callable[[Batch], None] | None = None,
    ) -> Batch: ...

    def wait(
        self,
        batch: ReplaceResult | Batch | str,
        timeout: float | None = None,
        *,
        poll: float = 1.0,
        on_progress: Callable[[Any], None] | None = None,
    ) -> ReplaceResult | Batch:
        """Follows a batch (an id, a :class:`Batch`, or every batch of a
        :class:`ReplaceResult`) until every unit has landed or given up, re-reading it every
        ``poll`` seconds; ``on_progress`` gets each state that differs from the last.

        Raises :class:`WaitTimeout` (with ``last``) after ``timeout`` seconds.
        """
        if isinstance(batch, ReplaceResult):
            ids = batch.batch_ids
        else:
            ids = [batch if isinstance(batch, str) else batch.batch_id]

        def read() -> ReplaceResult | Batch:
            found = tuple(self.batch(i) for i in ids)
            if isinstance(batch, ReplaceResult):
                # Keep what the POST said: whether each batch was a replay.
                marks = {b.batch_id: b.replayed for b in batch.batches}
                return ReplaceResult(
                    tuple(dataclasses.replace(b, replayed=marks[b.batch_id]) for b in found)
                )
            return found[0]

        return self._follow(read, _done, timeout, poll, on_progress, "batch")

    def _follow(
        self,
        read: Callable[[], T],
        done: Callable[[T], bool],
        timeout: float | None,
        poll: float,
        on_progress: Callable[[T], None] | None,
        what: str,
    ) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        last: T | None = None
        while True:
            current = read()
            if on_progress is not None and current != last:
                on_progress(current)
            last = current
            if done(current):
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"the {what} was not done after {timeout} s", current)
            pause = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            self._sleep(pause)

    # -- runs ----------------------------------------------------------------------------

    def run(self, run: str) -> RunReport:
        """A backfill run's progress (its final report once ``done``); :class:`NotFound`
        when no batch names it."""
        return RunReport.from_json(self._get_json(f"/v1/runs/{_path(run)}"))

    def runs(self, limit: int = 20) -> list[RunReport]:
        """The ``limit`` (1..100) runs changed most recently, most recent first."""
        return [
            RunReport.from_json(r) for r in self._get_json("/v1/runs", {"limit": limit})["runs"]
        ]

    def follow_run(
        self,
        run: str,
        timeout: float | None = None,
        *,
        poll: float = 2.0,
        on_progress: Callable[[RunReport], None] | None = None,
    ) -> RunReport:
        """Follows a run until no unit is pending or deferred and returns its final report;
        ``on_progress`` gets each report that changed. :class:`WaitTimeout` after ``timeout``."""
        return self._follow(
            lambda: self.run(run),
            _run_done,
            timeout,
            poll,
            _changed(on_progress),
            "run",
        )

    # -- breakers and conflicts reported by processors -----------------------------------

    def breaker(self, scope: str) -> Breaker:
        """The circuit breaker of ``scope`` (a processor name by default): check
        ``allows_writes`` before writing to BigQuery on your own."""
        return Breaker.from_json(self._get_json(f"/v1/breakers/{_path(scope)}"))

    def report_conflict(
        self,
        table: str,
        key: Mapping[str, Any],
        error_message: str,
        conflict_type: str = "streaming_buffer",
        *,
        processor_name: str | None = None,
        partition: Mapping[str, Any] | None = None,
        retry_attempt: int | None = None,
        delay_seconds: int | None = None,
        max_retries: int | None = None,
        rows_affected: int | None = None,
        details: Mapping[str, Any] | None = None,
        rows: Any = None,
        idempotency_key: str | None = None,
    ) -> ConflictReport:
        """Logs a conflict that a processor writing on its own hit (``POST /v1/conflicts``).
        With ``rows`` the service takes the write over and retries it (then retried POSTs
        carry an idempotency key derived from the content, like ``replace``)."""
        body = _core.report_body(
            self.processor_name,
            processor_name,
            table,
            key,
            error_message,
            conflict_type,
            partition,
            retry_attempt,
            delay_seconds,
            max_retries,
            rows_affected,
            details,
            rows,
            idempotency_key,
            self.naive_datetime,
        )
        response = self._send(
            "POST", "/v1/conflicts", body=body, idempotent="idempotency_key" in body
        )
        return ConflictReport.from_json(response.json())


def _done(r: ReplaceResult | Batch) -> bool:
    return r.done


def _run_done(r: RunReport) -> bool:
    return r.done


def _path(segment: str) -> str:
    """A path segment, percent-encoded (spaces, ``/`` and all)."""
    from urllib.parse import quote

    return quote(segment, safe="")


def _changed(callback: Callable[[RunReport], None] | None) -> Callable[[RunReport], None] | None:
    """``callback``, called only when the figures changed (not for a new ``now``)."""
    if callback is None:
        return None
    seen: list[dict[str, Any]] = []

    def call(report: RunReport) -> None:
        figures = {k: v for k, v in report.raw.items() if k != "estimated_done_at"}
        if not seen or seen[-1] != figures:
            seen[:] = [figures]
            callback(report)

    return call


__all__ = ["Client", "Conflicts"]
