"""The pure parts: grouping by key, packing into parts, halving, derived keys."""

from __future__ import annotations

from streamguard import _core


def rows(keys: list[object], per_key: int = 2) -> list[dict[str, object]]:
    return [{"game_id": k, "n": i} for k in keys for i in range(per_key)]


def test_rows_group_by_key_as_the_service_does() -> None:
    groups = _core.group_rows(rows([1, 1.0, "1", 2]), [{"game_id": 3}], ["game_id"], None)
    assert [len(g.rows) for g in groups] == [4, 2, 2, 0], "1 and 1.0 name one key, '1' another"
    assert groups[-1].delete_key == {"game_id": 3}


def test_packing_keeps_keys_whole_within_the_limits() -> None:
    groups = _core.group_rows(rows(list(range(10)), per_key=3), [], ["game_id"], None)
    parts = _core.pack(groups, _core.Limits(max_rows=7, max_body_bytes=10**9))
    assert [len(p.rows) for p in parts] == [6, 6, 6, 6, 6]
    big = _core.pack(groups, _core.Limits(max_rows=2, max_body_bytes=10**9))
    assert [len(p.rows) for p in big] == [3] * 10, "a key over the limit goes alone"
    by_bytes = _core.pack(groups, _core.Limits(max_rows=10**6, max_body_bytes=4096 + 200))
    assert all(len(p.groups) >= 1 for p in by_bytes) and len(by_bytes) > 1


def test_halving_splits_between_keys() -> None:
    part = _core.Part(
        tuple(_core.group_rows(rows(list(range(5)), per_key=4), [], ["game_id"], None))
    )
    first, second = _core.halve(part)
    assert (len(first.rows), len(second.rows)) == (12, 8)
    assert {r["game_id"] for r in first.rows}.isdisjoint({r["game_id"] for r in second.rows})


def test_keys_come_from_content_and_parts_of_a_split_get_their_own() -> None:
    spec = _core.BatchSpec("p", "proj-1.d.t", ("game_id",), None, "run", None, None, True)
    part = _core.Part(tuple(_core.group_rows(rows(["a"]), [], ["game_id"], None)))
    body = _core.part_body(spec, part, whole=True)
    assert body["idempotency_key"] == _core.content_key(body)
    reordered = {k: body[k] for k in reversed(list(body))}
    assert _core.content_key(reordered) == body["idempotency_key"], "member order does not matter"
    other = _core.part_body(
        spec, _core.Part(tuple(_core.group_rows(rows(["b"]), [], ["game_id"], None))), True
    )
    assert other["idempotency_key"] != body["idempotency_key"]
    mine = _core.BatchSpec("p", "proj-1.d.t", ("game_id",), None, None, "day-1", None, True)
    assert _core.part_body(mine, part, whole=True)["idempotency_key"] == "day-1"
    split_key = _core.part_body(mine, part, whole=False)["idempotency_key"]
    assert split_key.startswith("day-1.") and len(split_key) == len("day-1.") + 24


def test_service_times_parse_with_any_fraction() -> None:
    import datetime as dt

    from streamguard.models import _time

    utc = dt.timezone.utc
    assert _time("2026-01-25T09:14:03Z") == dt.datetime(2026, 1, 25, 9, 14, 3, tzinfo=utc)
    assert _time("2026-01-25T09:14:03.5Z") == dt.datetime(2026, 1, 25, 9, 14, 3, 500000, tzinfo=utc)
    assert _time("2026-01-25T09:14:03.123456789Z") == dt.datetime(
        2026, 1, 25, 9, 14, 3, 123456, tzinfo=utc
    )
    assert _time("2026-01-25T09:14:03.123+01:00") == dt.datetime(
        2026, 1, 25, 8, 14, 3, 123000, tzinfo=utc
    )
