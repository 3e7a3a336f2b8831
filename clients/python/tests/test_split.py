"""Splitting by key: rows over the limits go as several batches, never a key across two."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import MAX_ROWS, Service
from helpers import game_rows

from streamguard import Client, ValidationError


def rows_of(games: int, players: int) -> list[dict[str, object]]:
    return [r for g in range(games) for r in game_rows(f"g{g:03}", "2026-01-24", players)]


def test_over_the_services_row_limit_is_refused_without_split(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        with pytest.raises(ValidationError) as raised:
            client.replace(table, rows_of(50, 10), "game_id", "game_date")
    assert raised.value.errors[0].limit == "STREAMGUARD_MAX_ROWS"


def test_a_refusal_for_size_is_split_in_halves_by_key(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    rows = rows_of(50, 10)  # 500 rows; the service takes 400 (MAX_ROWS)
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        result = client.replace(table, rows, "game_id", "game_date", split=True, wait=20)

    assert len(result.batches) == 2
    assert all(sum(u.rows for u in b.units) <= MAX_ROWS for b in result.batches)
    keys = Counter(u.key["game_id"] for u in result.units)
    assert len(keys) == 50 and set(keys.values()) == {1}, "each key in exactly one batch"
    assert result.count("loaded") == 50
    assert len(service.table_rows(table)) == 500


def test_client_limits_split_before_sending_and_each_part_is_idempotent(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    rows = rows_of(12, 7)
    with Client(
        service.url, token=service.tokens["writer"], processor_name=processor, max_rows=20
    ) as client:
        result = client.replace(
            table, rows, "game_id", "game_date", split=True, idempotency_key="day-1"
        )
        again = client.replace(
            table, rows, "game_id", "game_date", split=True, idempotency_key="day-1"
        )

    assert [len(b.units) for b in result.batches] == [2, 2, 2, 2, 2, 2], (
        "14 rows a part: 2 games of 7"
    )
    assert again.batch_ids == result.batch_ids and again.replayed
    keys = [u.key["game_id"] for u in result.units]
    assert keys == sorted(set(keys))


def test_a_single_key_over_the_limit_cannot_be_split(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    rows = game_rows("g1", "2026-01-24", MAX_ROWS + 1)
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        with pytest.raises(ValidationError):
            client.replace(table, rows, "game_id", "game_date", split=True)
