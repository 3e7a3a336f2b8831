"""Every method of the sync client against the real service."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Service
from helpers import eventually, game_rows

from streamguard import Batch, Client, ReplaceResult, WaitTimeout


@pytest.fixture
def client(service: Service, names: tuple[str, str]) -> Any:
    with Client(service.url, token=service.tokens["writer"], processor_name=names[0]) as c:
        yield c


def test_replace_answers_the_batch_and_its_units(client: Client, names: tuple[str, str]) -> None:
    _, table = names
    rows = game_rows("20260124_LAL_BOS", "2026-01-24") + game_rows("20260124_MIA_NYK", "2026-01-24")

    result = client.replace(
        table, rows, key_columns=["game_id"], partition_column="game_date", wait=10
    )

    assert isinstance(result, ReplaceResult)
    assert len(result.batches) == 1
    batch = result.batches[0]
    assert (batch.table, batch.processor_name, batch.run) == (table, names[0], None)
    assert [u.key for u in batch.units] == [
        {"game_id": "20260124_LAL_BOS"},
        {"game_id": "20260124_MIA_NYK"},
    ]
    assert [(u.state, u.rows, u.attempts, u.partition) for u in batch.units] == [
        ("loaded", 3, 1, "2026-01-24"),
        ("loaded", 3, 1, "2026-01-24"),
    ]
    assert result.done and result.count("loaded") == 2 and not result.replayed


def test_a_revert_to_earlier_rows_is_written_again_not_replayed(
    client: Client, service: Service, names: tuple[str, str]
) -> None:
    # X, then Y, then X again: the table must end with X. (A call's own retries replay its
    # batch: `test_retry.py`.)
    _, table = names
    x = game_rows("20260124_LAL_BOS", "2026-01-24", source="x")
    y = game_rows("20260124_LAL_BOS", "2026-01-24", source="y")
    first = client.replace(table, x, "game_id", "game_date", wait=10)
    client.replace(table, y, "game_id", "game_date", wait=10)
    again = client.replace(table, x, "game_id", "game_date", wait=10)

    assert again.batch_ids != first.batch_ids
    assert not again.replayed
    assert {r["source"] for r in service.table_rows(table)} == {"x"}
    mine = client.replace(table, x, "game_id", "game_date", idempotency_key="mine-1")
    same = client.replace(table, x, "game_id", "game_date", idempotency_key="mine-1")
    assert same.batch_ids == mine.batch_ids and same.replayed, "the caller's key replays"


def test_delete_keys_remove_a_key(client: Client, service: Service, names: tuple[str, str]) -> None:
    _, table = names
    client.replace(
        table,
        game_rows("g1", "2026-01-24") + game_rows("g2", "2026-01-24"),
        "game_id",
        "game_date",
        wait=10,
    )

    result = client.replace(
        table,
        [],
        "game_id",
        "game_date",
        delete_keys=[{"game_id": "g1", "game_date": "2026-01-24"}],
        wait=10,
    )

    assert [u.state for u in result.units] == ["loaded"]
    assert {r["game_id"] for r in service.table_rows(table)} == {"g2"}


def test_wait_follows_a_batch_until_it_lands(
    client: Client, service: Service, names: tuple[str, str]
) -> None:
    _, table = names
    service.insert_all(table, game_rows("g1", "2026-01-24", source="orchestration"), "1s")
    result = client.replace(table, game_rows("g1", "2026-01-24"), "game_id", "game_date")
    seen: list[ReplaceResult] = []

    final = client.wait(result, timeout=30, poll=0.1, on_progress=seen.append)

    assert final.done and final.count("loaded") == 1
    assert final.units[0].attempts >= 2, "the first attempt met the streaming buffer"
    assert final.units[0].conflict_id is not None
    assert len(seen) >= 2 and seen[-1] == final
    by_id = client.wait(result.batch_ids[0], timeout=5)
    assert isinstance(by_id, Batch) and by_id.done
    assert {r["source"] for r in service.table_rows(table)} == {"backfill"}


def test_wait_gives_up_after_its_timeout(
    client: Client, service: Service, names: tuple[str, str]
) -> None:
    _, table = names
    service.insert_all(table, game_rows("g1", "2026-01-24", source="orchestration"), "30s")
    result = client.replace(table, game_rows("g1", "2026-01-24"), "game_id", "game_date", wait=10)
    assert result.units[0].state == "deferred"
    assert result.units[0].next_attempt_at is not None

    with pytest.raises(WaitTimeout) as raised:
        client.wait(result, timeout=0.3, poll=0.1)

    assert isinstance(raised.value.last, ReplaceResult)
    assert raised.value.last.units[0].state == "deferred"


def test_conflicts_and_breaker(client: Client, service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    service.insert_all(
        table, game_rows("20260124_LAL_BOS", "2026-01-24", source="orchestration"), "30s"
    )
    result = client.replace(
        table, game_rows("20260124_LAL_BOS", "2026-01-24"), "game_id", "game_date", wait=10
    )
    conflict_id = result.units[0].conflict_id
    assert conflict_id is not None

    unresolved = {c.conflict_id: c for c in client.conflicts.unresolved(hours=1)}
    summary = [s for s in client.conflicts.summary(days=1) if s.processor_name == processor]
    breaker = client.breaker(processor)

    mine = unresolved[conflict_id]
    assert (mine.table, mine.conflict_type, mine.game_id) == (
        table,
        "streaming_buffer",
        "20260124_LAL_BOS",
    )
    assert mine.unit_state == "deferred" and mine.next_attempt_at is not None
    assert len(summary) == 1 and summary[0].total_conflicts == 1 and summary[0].unresolved == 1
    assert summary[0].sample_games == ["20260124_LAL_BOS"]
    assert breaker.scope == processor and breaker.state in ("closed", "open")
    assert isinstance(breaker.allows_writes, bool)
    assert client.breaker("never-seen scope/x").state == "closed"


def test_report_conflict_logs_it_and_can_hand_the_write_over(
    client: Client, service: Service, names: tuple[str, str]
) -> None:
    _, table = names
    logged = client.report_conflict(
        table,
        {"game_id": "20260124_LAL_BOS"},
        "UPDATE or DELETE statement over table would affect rows in the streaming buffer",
        partition={"game_date": "2026-01-24"},
        retry_attempt=1,
        delay_seconds=300,
        max_retries=3,
    )
    assert not logged.taken_over and logged.unit_id is None
    assert logged.conflict_id in {c.conflict_id for c in client.conflicts.unresolved()}

    rows = game_rows("20260124_MIA_NYK", "2026-01-24")
    handed = client.report_conflict(
        table,
        {"game_id": "20260124_MIA_NYK"},
        "would affect rows in the streaming buffer",
        partition={"game_date": "2026-01-24"},
        delay_seconds=1,
        rows=rows,
    )

    assert handed.taken_over and handed.unit_id is not None and handed.next_attempt_at is not None
    landed = eventually(lambda: service.table_rows(table) or None, "the handed-over rows to land")
    assert sorted(r["player_lookup"] for r in landed) == [r["player_lookup"] for r in rows]


def test_runs_are_reported_and_followed(
    client: Client, service: Service, names: tuple[str, str]
) -> None:
    _, table = names
    run = f"{names[0]} backfill 2026-01-24/25"
    service.insert_all(table, game_rows("g1", "2026-01-24", source="orchestration"), "1s")
    for game, date in [("g1", "2026-01-24"), ("g2", "2026-01-25"), ("g3", "2026-01-25")]:
        client.replace(table, game_rows(game, date), "game_id", "game_date", run=run)
    progress: list[int] = []

    report = client.follow_run(
        run, timeout=30, poll=0.1, on_progress=lambda r: progress.append(r.settled)
    )

    assert report.done and report.estimated_done_at is None
    assert (report.batches, report.units.total, report.units.loaded) == (3, 3, 3)
    assert (report.loaded_first_attempt, report.deferred, report.resolved_by_retry) == (2, 1, 1)
    assert (report.unresolved, report.failed) == (0, 0)
    assert report.attempts >= 4 and report.processors == [names[0]] and report.tables == [table]
    assert progress[-1] == 3 and progress == sorted(progress)
    assert client.run(run) == report
    assert run in [r.run for r in client.runs(limit=100)]
    assert "loaded on first attempt" in report.table()
    assert (
        client.batch(
            client.replace(
                table,
                game_rows("g4", "2026-01-25"),
                "game_id",
                run=run,
                partition_column="game_date",
            ).batch_ids[0]
        ).run
        == run
    )
