"""Values go in and come back unchanged: what the client sends is what the emulator's
table holds, and decoding it gives the original value."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest
from conftest import Service

from streamguard import Client, EncodingError, NaiveDatetime, encode_value

UTC = dt.timezone.utc
CET = dt.timezone(dt.timedelta(hours=1))

#: column → (Python value, what the table must hold)
VALUES: dict[str, tuple[Any, Any]] = {
    "int": (42, 42),
    "int64_max": (2**63 - 1, 2**63 - 1),
    "int64_min": (-(2**63), -(2**63)),
    "beyond_int64": (2**70, "1180591620717411303424"),
    "below_int64": (-(2**63) - 1, "-9223372036854775809"),
    "float": (0.1, 0.1),
    "tiny": (5e-324, 5e-324),
    "huge": (1.7976931348623157e308, 1.7976931348623157e308),
    "third": (1 / 3, 1 / 3),
    "decimal": (Decimal("12345678901234567890.123456789"), "12345678901234567890.123456789"),
    "decimal_scale": (Decimal("0.10"), "0.10"),
    "decimal_exp": (Decimal("1E+3"), "1000"),
    "timestamp": (
        dt.datetime(2026, 1, 24, 19, 30, 5, 123456, tzinfo=UTC),
        "2026-01-24T19:30:05.123456+00:00",
    ),
    "timestamp_cet": (dt.datetime(2026, 1, 24, 20, 30, tzinfo=CET), "2026-01-24T20:30:00+01:00"),
    "date": (dt.date(2026, 1, 24), "2026-01-24"),
    "time": (dt.time(19, 30, 0, 250000), "19:30:00.250000"),
    "bytes": (b"\x00\xffbox", "AP9ib3g="),
    "uuid": (
        uuid.UUID("5b0f3c1e-2a7d-4c1b-9f3e-6d2a8b4c0e11"),
        "5b0f3c1e-2a7d-4c1b-9f3e-6d2a8b4c0e11",
    ),
    "text": ('Dončić ⚽ "quoted" \\ \u2028', 'Dončić ⚽ "quoted" \\ \u2028'),
    "bool": (True, True),
    "null": (None, None),
    "record": (
        {"made": Decimal("0.5"), "at": [dt.date(2026, 1, 1)]},
        {"made": "0.5", "at": ["2026-01-01"]},
    ),
}


def decode(column: str, stored: Any) -> Any:
    """The Python value back from what the table holds."""
    original = VALUES[column][0]
    if isinstance(original, bool) or original is None or isinstance(original, (str, float, dict)):
        return stored
    if isinstance(original, int):
        return int(stored)
    if isinstance(original, Decimal):
        return Decimal(stored)
    if isinstance(original, dt.datetime):
        return dt.datetime.fromisoformat(stored)
    if isinstance(original, dt.date):
        return dt.date.fromisoformat(stored)
    if isinstance(original, dt.time):
        return dt.time.fromisoformat(stored)
    if isinstance(original, bytes):
        import base64

        return base64.b64decode(stored)
    return uuid.UUID(stored)


def test_every_value_round_trips_through_the_table(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    row = {"game_id": "g1", **{c: v for c, (v, _) in VALUES.items()}}
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        result = client.replace(table, [row], key_columns=["game_id"], wait=10)
    assert result.units[0].state == "loaded", result

    [stored] = service.table_rows(table)

    for column, (value, held) in VALUES.items():
        assert stored[column] == held, column
        assert type(stored[column]) is type(held), column
        if column != "record":
            assert decode(column, stored[column]) == value, column


def test_naive_datetimes_are_refused_unless_the_client_says_how(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    naive = dt.datetime(2026, 1, 24, 19, 30)
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        with pytest.raises(EncodingError) as refused:
            client.replace(table, [{"game_id": "g1", "at": naive}], "game_id")
        assert refused.value.pointer == "/rows/0/at"
    modes: list[NaiveDatetime] = ["civil", "utc"]
    for mode in modes:
        with Client(
            service.url,
            token=service.tokens["writer"],
            processor_name=processor,
            naive_datetime=mode,
        ) as client:
            client.replace(table, [{"game_id": mode, "at": naive}], "game_id", wait=10)
    assert {r["game_id"]: r["at"] for r in service.table_rows(table)} == {
        "civil": "2026-01-24T19:30:00",
        "utc": "2026-01-24T19:30:00+00:00",
    }


@pytest.mark.parametrize(
    ("value", "pointer"),
    [
        (math.nan, "/rows/1/v"),
        (math.inf, "/rows/1/v"),
        (-math.inf, "/rows/1/v"),
        (Decimal("NaN"), "/rows/1/v"),
        (Decimal("Infinity"), "/rows/1/v"),
        ({"deep": [1, math.nan]}, "/rows/1/v/deep/1"),
        ("nul\x00", "/rows/1/v"),
        (dt.time(1, 2, tzinfo=UTC), "/rows/1/v"),
        (object(), "/rows/1/v"),
        ({1: "not a string key"}, "/rows/1/v"),
    ],
)
def test_values_that_cannot_be_kept_are_refused_before_sending(
    service: Service, names: tuple[str, str], value: Any, pointer: str
) -> None:
    processor, table = names
    rows = [{"game_id": "g0", "v": 1}, {"game_id": "g1", "v": value}]
    client = Client(service.url, token=service.tokens["writer"], processor_name=processor)
    with client, pytest.raises(EncodingError) as refused:
        client.replace(table, rows, "game_id", wait=10)
    assert refused.value.pointer == pointer
    assert service.table_rows(table) == [], "nothing was sent"


def test_pandas_dataframes_are_rows_with_missing_values_as_null(
    service: Service, names: tuple[str, str]
) -> None:
    pd = pytest.importorskip("pandas")
    processor, table = names
    frame = pd.DataFrame(
        {
            "game_id": ["g1", "g1", "g2"],
            "points": [28, 31, 7],
            "minutes": [34.5, float("nan"), 12.25],
            "at": pd.to_datetime(["2026-01-24T19:30:00Z", None, "2026-01-24T21:00:00Z"]),
            "note": ["a", None, "c"],
        }
    )
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        result = client.replace(table, frame, "game_id", wait=10)

    assert [u.rows for u in result.units] == [2, 1]
    stored = sorted(service.table_rows(table), key=lambda r: (r["game_id"], r["points"]))
    assert stored == [
        {
            "game_id": "g1",
            "points": 28,
            "minutes": 34.5,
            "at": "2026-01-24T19:30:00+00:00",
            "note": "a",
        },
        {"game_id": "g1", "points": 31, "minutes": None, "at": None, "note": None},
        {
            "game_id": "g2",
            "points": 7,
            "minutes": 12.25,
            "at": "2026-01-24T21:00:00+00:00",
            "note": "c",
        },
    ]


def test_encode_value_is_usable_on_its_own() -> None:
    assert encode_value({"n": 2**64, "d": Decimal("-0.00")}, "") == {
        "n": "18446744073709551616",
        "d": "-0.00",
    }
