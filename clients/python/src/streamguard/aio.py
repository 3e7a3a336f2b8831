"""The asynchronous client, on ``httpx.AsyncClient``: the methods of
:class:`streamguard.Client`, awaitable, with the same retries, splitting and errors."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, overload

import httpx

from . import _core
from ._encoding import NaiveDatetime
from ._version import USER_AGENT
from .client import _changed, _done, _path, _run_done
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


class AsyncConflicts:
    """The conflict log: ``await client.conflicts.unresolved()`` and ``.summary()``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def unresolved(self, hours: int = 24) -> list[UnresolvedConflict]:
        """Conflicts not resolved yet from the last ``hours`` hours, newest first."""
        j = await self._client._get_json("/v1/conflicts/unresolved", {"hours": hours})
        return [UnresolvedConflict.from_json(c) for c in j["conflicts"]]

    async def summary(self, days: int = 7) -> list[ConflictSummary]:
        """Per day, processor and table over the last ``days`` days."""
        j = await self._client._get_json("/v1/conflicts/summary", {"days": days})
        return [ConflictSummary.from_json(s) for s in j["summary"]]


class AsyncClient:
    """The async twin of :class:`streamguard.Client`; the same arguments and methods."""

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.timeout = timeout
        self.processor_name = processor_name
        self.retry = retry or _core.RetryPolicy()
        self.naive_datetime: NaiveDatetime = naive_datetime
        self.limits = _core.Limits(max_rows, max_body_bytes)
        self.conflicts = AsyncConflicts(self)
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> httpx.Response:
        """As :meth:`streamguard.Client._send`."""
        content = _core.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            try:
                response = await self._http.request(
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
                await self._sleep(delay)
                attempt += 1
                continue
            status = response.status_code
            retryable = status in _core.RETRY_STATUSES and (idempotent or status in (429, 503))
            if retryable and attempt < self.retry.retries:
                delay = self.retry.delay(
                    attempt, _core.retry_after(response.headers.get("retry-after"))
                )
                _core.log_retry(method, path, str(status), attempt, self.retry, delay)
                await self._sleep(delay)
                attempt += 1
                continue
            if status >= 400:
                raise error_for(status, response.content, method, str(response.url))
            return response

    async def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return (await self._send("GET", path, params=params)).json()

    async def replace(
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
        """As :meth:`streamguard.Client.replace`."""
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
            batches += await self._post_part(spec, part, whole=len(parts) == 1)
        return ReplaceResult(tuple(batches))

    async def _post_part(self, spec: _core.BatchSpec, part: _core.Part, whole: bool) -> list[Batch]:
        body = _core.part_body(spec, part, whole)
        params = {"wait": spec.wait} if spec.wait is not None else None
        try:
            response = await self._send(
                "POST",
                "/v1/batches",
                params=params,
                body=body,
                timeout=_core.request_timeout(self.timeout, spec.wait),
            )
        except StreamguardError as e:
            if spec.split and len(part.groups) > 1 and _core.over_limit(e):
                out: list[Batch] = []
                for half in _core.halve(part):
                    out += await self._post_part(spec, half, False)
                return out
            raise
        replayed = response.headers.get("idempotent-replayed") == "true"
        return [Batch.from_json(response.json(), replayed)]

    async def batch(self, batch_id: str) -> Batch:
        """The batch and its units' current state."""
        return Batch.from_json(await self._get_json(f"/v1/batches/{batch_id}"))

    @overload
    async def wait(
        self,
        batch: ReplaceResult,
        timeout: float | None = None,
        *,
        poll: float = 1.0,
        on_progress: Callable[[ReplaceResult], None] | None = None,
    ) -> ReplaceResult: ...

    @overload
    async def wait(
        self,
        batch: Batch | str,
        timeout: float | None = None,
        *,
        poll: float = 1.0,
        on_progress: Callable[[Batch], None] | None = None,
    ) -> Batch: ...

    async def wait(
        self,
        batch: ReplaceResult | Batch | str,
        timeout: float | None = None,
        *,
        poll: float = 1.0,
        on_progress: Callable[[Any], None] | None = None,
    ) -> ReplaceResult | Batch:
        """As :meth:`streamguard.Client.wait`."""
        if isinstance(batch, ReplaceResult):
            ids = batch.batch_ids
        else:
            ids = [batch if isinstance(batch, str) else batch.batch_id]

        async def read() -> ReplaceResult | Batch:
            found = tuple([await self.batch(i) for i in ids])
            if isinstance(batch, ReplaceResult):
                # Keep what the POST said: whether each batch was a replay.
                marks = {b.batch_id: b.replayed for b in batch.batches}
                return ReplaceResult(
                    tuple(dataclasses.replace(b, replayed=marks[b.batch_id]) for b in found)
                )
            return found[0]

        return await self._follow(read, _done, timeout, poll, on_progress, "batch")

    async def _follow(
        self,
        read: Callable[[], Awaitable[T]],
        done: Callable[[T], bool],
        timeout: float | None,
        poll: float,
        on_progress: Callable[[T], None] | None,
        what: str,
    ) -> T:
        deadline = None if timeout is None else time.monotonic() + timeout
        last: T | None = None
        while True:
            current = await read()
            if on_progress is not None and current != last:
                on_progress(current)
            last = current
            if done(current):
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"the {what} was not done after {timeout} s", current)
            pause = poll if deadline is None else min(poll, max(0.0, deadline - time.monotonic()))
            await self._sleep(pause)

    async def run(self, run: str) -> RunReport:
        """As :meth:`streamguard.Client.run`."""
        return RunReport.from_json(await self._get_json(f"/v1/runs/{_path(run)}"))

    async def runs(self, limit: int = 20) -> list[RunReport]:
        """As :meth:`streamguard.Client.runs`."""
        j = await self._get_json("/v1/runs", {"limit": limit})
        return [RunReport.from_json(r) for r in j["runs"]]

    async def follow_run(
        self,
        run: str,
        timeout: float | None = None,
        *,
        poll: float = 2.0,
        on_progress: Callable[[RunReport], None] | None = None,
    ) -> RunReport:
        """As :meth:`streamguard.Client.follow_run`."""
        return await self._follow(
            lambda: self.run(run), _run_done, timeout, poll, _changed(on_progress), "run"
        )

    async def breaker(self, scope: str) -> Breaker:
        """As :meth:`streamguard.Client.breaker`."""
        return Breaker.from_json(await self._get_json(f"/v1/breakers/{_path(scope)}"))

    async def report_conflict(
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
        """As :meth:`streamguard.Client.report_conflict`."""
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
        response = await self._send(
            "POST", "/v1/conflicts", body=body, idempotent="idempotency_key" in body
        )
        return ConflictReport.from_json(response.json())
