"""Typed results: what the service answers, as frozen dataclasses.

Times are timezone-aware ``datetime`` objects (UTC); keys and partitions keep their JSON
values (strings for dates, as the rows gave them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: Unit states from which the service will attempt the unit again.
WAITING_STATES = frozenset({"pending", "deferred"})


_FRACTION = re.compile(r"\.(\d+)")


def _time(value: Any) -> dt.datetime | None:
    """An RFC 3339 time as the service writes it (``Z``, 0 to 9 fractional digits), which
    ``fromisoformat`` of Python 3.10 does not all take: the fraction is cut to microseconds."""
    if value is None:
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), str(value), count=1)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _required_time(value: Any) -> dt.datetime:
    parsed = _time(value)
    if parsed is None:
        raise ValueError("a required time is missing from the answer")
    return parsed


@dataclass(frozen=True)
class Unit:
    """One write unit: the rows of one key, and where it stands.

    ``state`` is ``pending``, ``loaded``, ``deferred``, ``failed``, ``superseded``,
    ``unresolved`` or ``cancelled``; ``next_attempt_at`` is set while it waits for a retry;
    ``conflict_id`` once BigQuery refused it (``client.conflicts``).
    """

    unit_id: str
    key: dict[str, Any]
    partition: Any
    state: str
    rows: int
    attempts: int
    conflict_id: str | None
    next_attempt_at: dt.datetime | None
    error: str | None

    @property
    def waiting(self) -> bool:
        """Whether the service will still attempt it (pending or deferred)."""
        return self.state in WAITING_STATES

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> Unit:
        """From the service's JSON."""
        return cls(
            unit_id=j["unit_id"],
            key=dict(j["key"]),
            partition=j.get("partition"),
            state=j["state"],
            rows=int(j["rows"]),
            attempts=int(j["attempts"]),
            conflict_id=j.get("conflict_id"),
            next_attempt_at=_time(j.get("next_attempt_at")),
            error=j.get("error"),
        )


@dataclass(frozen=True)
class Batch:
    """A batch as ``GET /v1/batches/{id}`` shows it. ``replayed`` is true when the POST
    matched an earlier batch by idempotency key (nothing new was written)."""

    batch_id: str
    processor_name: str
    table: str
    created_at: dt.datetime
    run: str | None
    units: tuple[Unit, ...]
    replayed: bool = False

    @property
    def done(self) -> bool:
        """Whether no unit waits any more (each landed or gave up)."""
        return not any(u.waiting for u in self.units)

    def count(self, state: str) -> int:
        """Units in ``state``."""
        return sum(1 for u in self.units if u.state == state)

    @classmethod
    def from_json(cls, j: dict[str, Any], replayed: bool = False) -> Batch:
        """From the service's JSON."""
        return cls(
            batch_id=j["batch_id"],
            processor_name=j["processor_name"],
            table=j["table"],
            created_at=_required_time(j["created_at"]),
            run=j.get("run"),
            units=tuple(Unit.from_json(u) for u in j["units"]),
            replayed=replayed,
        )


@dataclass(frozen=True)
class ReplaceResult:
    """What ``replace`` did: one batch, or several when it split the rows by key."""

    batches: tuple[Batch, ...]

    @property
    def batch_ids(self) -> list[str]:
        """The batches' ids, in posting order."""
        return [b.batch_id for b in self.batches]

    @property
    def units(self) -> list[Unit]:
        """Every unit of every batch."""
        return [u for b in self.batches for u in b.units]

    @property
    def done(self) -> bool:
        """Whether no unit waits any more."""
        return all(b.done for b in self.batches)

    @property
    def replayed(self) -> bool:
        """Whether every batch was a replay of an earlier POST (same idempotency key)."""
        return all(b.replayed for b in self.batches)

    def count(self, state: str) -> int:
        """Units in ``state`` across the batches."""
        return sum(b.count(state) for b in self.batches)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)


@dataclass(frozen=True)
class RunUnits:
    """A run's units by state."""

    total: int
    pending: int
    deferred: int
    loaded: int
    failed: int
    unresolved: int
    superseded: int
    cancelled: int


@dataclass(frozen=True)
class RunReport:
    """A backfill run's progress and, once ``done``, its final report
    (``GET /v1/runs/{run}``)."""

    run: str
    processors: list[str]
    tables: list[str]
    batches: int
    units: RunUnits
    loaded_first_attempt: int
    deferred: int
    resolved_by_retry: int
    unresolved: int
    failed: int
    statements: int
    attempts: int
    started_at: dt.datetime
    last_change_at: dt.datetime
    done: bool
    estimated_done_at: dt.datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def settled(self) -> int:
        """Units that will not be attempted again."""
        return self.units.total - self.units.pending - self.units.deferred

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> RunReport:
        """From the service's JSON."""
        u = j["units"]
        return cls(
            run=j["run"],
            processors=list(j["processors"]),
            tables=list(j["tables"]),
            batches=int(j["batches"]),
            units=RunUnits(**{k: int(u[k]) for k in RunUnits.__dataclass_fields__}),
            loaded_first_attempt=int(j["loaded_first_attempt"]),
            deferred=int(j["deferred"]),
            resolved_by_retry=int(j["resolved_by_retry"]),
            unresolved=int(j["unresolved"]),
            failed=int(j["failed"]),
            statements=int(j["statements"]),
            attempts=int(j["attempts"]),
            started_at=_required_time(j["started_at"]),
            last_change_at=_required_time(j["last_change_at"]),
            done=bool(j["done"]),
            estimated_done_at=_time(j.get("estimated_done_at")),
            raw=j,
        )

    def table(self) -> str:
        """The report as a small text table, for people."""
        rows = [
            ("batches", self.batches),
            ("units", self.units.total),
            ("loaded on first attempt", self.loaded_first_attempt),
            ("deferred (refused at least once)", self.deferred),
            ("resolved by retry", self.resolved_by_retry),
            ("unresolved (gave up)", self.unresolved),
            ("failed", self.failed),
            ("still waiting", self.units.pending + self.units.deferred),
            ("statements", self.statements),
            ("attempts", self.attempts),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"run {self.run!r}" + ("" if self.done else " (not done)")]
        lines += [f"  {name:<{width}}  {value:>8}" for name, value in rows]
        elapsed = (self.last_change_at - self.started_at).total_seconds()
        lines.append(f"  {'elapsed':<{width}}  {elapsed:>7.1f}s")
        return "\n".join(lines)


@dataclass(frozen=True)
class UnresolvedConflict:
    """A conflict not resolved yet (``GET /v1/conflicts/unresolved``)."""

    conflict_id: str
    timestamp: dt.datetime
    processor_name: str
    table: str
    key: dict[str, Any]
    conflict_type: str
    retry_attempt: int
    max_retries: int
    game_id: str | None
    game_date: str | None
    error_message: str | None
    resolution_method: str | None
    unit_state: str | None
    next_attempt_at: dt.datetime | None

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> UnresolvedConflict:
        """From the service's JSON."""
        return cls(
            conflict_id=j["conflict_id"],
            timestamp=_required_time(j["timestamp"]),
            processor_name=j["processor_name"],
            table=j["table"],
            key=dict(j["key"]),
            conflict_type=j["conflict_type"],
            retry_attempt=int(j["retry_attempt"]),
            max_retries=int(j["max_retries"]),
            game_id=j.get("game_id"),
            game_date=j.get("game_date"),
            error_message=j.get("error_message"),
            resolution_method=j.get("resolution_method"),
            unit_state=j.get("unit_state"),
            next_attempt_at=_time(j.get("next_attempt_at")),
        )


@dataclass(frozen=True)
class ConflictSummary:
    """One day, processor and table of the conflict log (``GET /v1/conflicts/summary``)."""

    date: dt.date
    processor_name: str
    table: str
    total_conflicts: int
    resolved: int
    unresolved: int
    avg_retries: float
    sample_games: list[str]
    sample_keys: list[Any]

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> ConflictSummary:
        """From the service's JSON."""
        return cls(
            date=dt.date.fromisoformat(j["date"]),
            processor_name=j["processor_name"],
            table=j["table"],
            total_conflicts=int(j["total_conflicts"]),
            resolved=int(j["resolved"]),
            unresolved=int(j["unresolved"]),
            avg_retries=float(j["avg_retries"]),
            sample_games=list(j.get("sample_games") or []),
            sample_keys=list(j.get("sample_keys") or []),
        )


@dataclass(frozen=True)
class Breaker:
    """A circuit breaker (``GET /v1/breakers/{scope}``). A processor writing on its own
    checks ``allows_writes`` first."""

    scope: str
    state: str
    allows_writes: bool
    conflict_rate: float
    opened_at: dt.datetime | None
    reopens_at: dt.datetime | None
    trips: int
    last_reason: str | None
    transitions: list[dict[str, Any]]

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> Breaker:
        """From the service's JSON."""
        return cls(
            scope=j["scope"],
            state=j["state"],
            allows_writes=bool(j["allows_writes"]),
            conflict_rate=float(j["conflict_rate"]),
            opened_at=_time(j.get("opened_at")),
            reopens_at=_time(j.get("reopens_at")),
            trips=int(j.get("trips", 0)),
            last_reason=j.get("last_reason"),
            transitions=list(j.get("transitions") or []),
        )


@dataclass(frozen=True)
class ConflictReport:
    """The answer to ``report_conflict``: the conflict, and whether the service took the
    write over (``rows`` given) and when it attempts it."""

    conflict_id: str
    unit_id: str | None
    taken_over: bool
    next_attempt_at: dt.datetime | None
    retry_attempt: int
    breaker_state: str

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> ConflictReport:
        """From the service's JSON."""
        return cls(
            conflict_id=j["conflict_id"],
            unit_id=j.get("unit_id"),
            taken_over=bool(j["taken_over"]),
            next_attempt_at=_time(j.get("next_attempt_at")),
            retry_attempt=int(j["retry_attempt"]),
            breaker_state=j["breaker_state"],
        )
