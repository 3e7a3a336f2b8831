"""The async client: the same methods, awaited, against the real service."""

from __future__ import annotations

import json

import proxy as proxies
import pytest
from conftest import MAX_ROWS, Service
from helpers import game_rows

from streamguard import AsyncClient, Batch, Forbidden, NotFound, RetryPolicy, ValidationError

pytestmark = pytest.mark.anyio


async def test_replace_wait_and_read_back(service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    service.insert_all(table, game_rows("g1", "2026-01-24", source="orchestration"), "1s")
    async with AsyncClient(
        service.url, token=service.tokens["writer"], processor_name=processor
    ) as client:
        result = await client.replace(
            table,
            game_rows("g1", "2026-01-24") + game_rows("g2", "2026-01-25"),
            ["game_id"],
            "game_date",
        )
        final = await client.wait(result, timeout=30, poll=0.1)
        one = await client.wait(result.batches[0], timeout=5)
        fetched = await client.batch(result.batch_ids[0])

    assert final.done and final.count("loaded") == 2
    assert isinstance(one, Batch) and one == fetched
    assert {r["source"] for r in service.table_rows(table)} == {"backfill"}


async def test_runs_conflicts_breaker_and_reports(service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    run = f"{processor} async run"
    service.insert_all(table, game_rows("g1", "2026-01-24", source="orchestration"), "1s")
    async with AsyncClient(
        service.url, token=service.tokens["writer"], processor_name=processor
    ) as client:
        first = await client.replace(
            table, game_rows("g1", "2026-01-24"), "game_id", "game_date", run=run, wait=10
        )
        await client.replace(table, game_rows("g2", "2026-01-25"), "game_id", "game_date", run=run)
        conflict_id = first.units[0].conflict_id
        unresolved = await client.conflicts.unresolved()
        report = await client.follow_run(run, timeout=30, poll=0.1)
        listed = await client.runs(limit=100)
        summary = await client.conflicts.summary(days=1)
        breaker = await client.breaker(processor)
        logged = await client.report_conflict(
            table, {"game_id": "g9"}, "streaming buffer", retry_attempt=2
        )

    assert conflict_id in {c.conflict_id for c in unresolved}
    assert report.done and (report.loaded_first_attempt, report.resolved_by_retry) == (1, 1)
    assert run in [r.run for r in listed]
    assert [s.total_conflicts for s in summary if s.processor_name == processor] == [1]
    assert breaker.scope == processor
    assert not logged.taken_over and logged.retry_attempt == 2


async def test_errors_retries_and_splitting(service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    async with AsyncClient(
        service.url, token=service.tokens["reader"], processor_name=processor
    ) as reader:
        with pytest.raises(Forbidden):
            await reader.replace(table, game_rows("g1", "2026-01-24"), "game_id")
        with pytest.raises(NotFound):
            await reader.run("no such run")
    with proxies.running(service.url) as proxy:
        async with AsyncClient(
            proxy.url,
            token=service.tokens["writer"],
            processor_name=processor,
            retry=RetryPolicy(retries=2, base=0.01, cap=0.02),
        ) as client:
            rows = [r for g in range(50) for r in game_rows(f"g{g:02}", "2026-01-24", 10)]
            with pytest.raises(ValidationError):
                await client.replace(table, rows, "game_id", "game_date")
            # The split's whole POST passes (and is refused), its first half's answer is lost.
            proxy.faults += [("POST", "/v1/batches", "pass"), ("POST", "/v1/batches", "drop")]
            result = await client.replace(table, rows, "game_id", "game_date", split=True, wait=20)

    posts = [s for s in proxy.seen if s.method == "POST"]
    # Refused whole (500 rows > MAX_ROWS), then by the split: the first half's answer was
    # dropped and re-posted with the same key, then the second half.
    assert [json.loads(p.body)["rows"].__len__() for p in posts] == [500, 500, 250, 250, 250]
    assert posts[2].body == posts[3].body
    assert (
        len(result.batches) == 2 and result.batches[0].replayed and not result.batches[1].replayed
    )
    assert all(sum(u.rows for u in b.units) <= MAX_ROWS for b in result.batches)
    assert len(service.table_rows(table)) == 500
