"""JSON encoding of rows that never loses a value.

The service refuses any JSON number it could not keep exactly (see its
``src/domain/raw_json.rs``): an integer literal must fit BigQuery's INT64, and any other
number must be the shortest decimal form of the 64-bit float it parses to. So:

==========================  ==========================================================
Python value                sent as
==========================  ==========================================================
``None``, ``bool``, ``str`` themselves (a ``str`` holding NUL is refused: Postgres and
                            BigQuery cannot keep it)
``int`` within INT64        a JSON integer
``int`` beyond INT64        a string of its digits (for NUMERIC / BIGNUMERIC columns)
``float``                   a JSON number in Python's shortest round-trip form; NaN and
                            ±inf are refused before anything is sent
``Decimal``                 a string in plain notation (``Decimal("0.10")`` → ``"0.10"``);
                            NaN and ±inf are refused
aware ``datetime``          ISO 8601 with its offset, ``2026-01-24T19:30:00+00:00``
naive ``datetime``          refused unless the client was made with
                            ``naive_datetime="civil"`` (sent as BigQuery DATETIME,
                            ``2026-01-24T19:30:00``) or ``"utc"`` (taken as UTC)
``date``                    ``2026-01-24``
``time`` (naive)            ``19:30:00.250000``; an aware ``time`` is refused
``bytes``                   base64, as BigQuery's JSON takes BYTES
``UUID``                    its string
``dict`` / ``list``         encoded member by member (``dict`` keys must be ``str``)
numpy scalars               their Python value (``.item()``), then as above
==========================  ==========================================================

Anything else raises :class:`EncodingError`, naming the value's JSON pointer
(``/rows/3/points``) as the service would.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

#: How a naive ``datetime`` is handled: refused, sent as civil time (BigQuery DATETIME),
#: or taken as UTC.
NaiveDatetime = Literal["refuse", "civil", "utc"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class EncodingError(ValueError):
    """A value cannot be sent without losing it; nothing was sent.

    ``pointer`` is the JSON pointer of the value in the request body, e.g. ``/rows/3/points``.
    """

    def __init__(self, pointer: str, message: str) -> None:
        super().__init__(f"{pointer or '/'}: {message}")
        self.pointer = pointer
        self.message = message


def pointer_token(name: str) -> str:
    """Escapes an object member name for a JSON pointer (RFC 6901)."""
    return name.replace("~", "~0").replace("/", "~1")


def encode_value(value: Any, pointer: str, naive_datetime: NaiveDatetime = "refuse") -> Any:
    """The JSON value for ``value`` (see the module's table).

    Raises :class:`EncodingError` for NaN, infinities, naive datetimes (when refused), NUL
    in strings, non-string ``dict`` keys and unsupported types.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise EncodingError(pointer, "the string holds a NUL character (\\u0000)")
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodingError(pointer, f"{value!r} has no JSON form; send null or a number")
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise EncodingError(pointer, f"Decimal {value} has no JSON form")
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return _datetime(value, pointer, naive_datetime)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        if value.tzinfo is not None:
            raise EncodingError(pointer, "a time with a time zone has no BigQuery type; drop it")
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise EncodingError(pointer, f"member name {k!r} is not a string")
            if "\x00" in k:
                raise EncodingError(pointer, "a member name holds a NUL character")
            out[k] = encode_value(v, f"{pointer}/{pointer_token(k)}", naive_datetime)
        return out
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [encode_value(v, f"{pointer}/{i}", naive_datetime) for i, v in enumerate(value)]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return encode_value(value.item(), pointer, naive_datetime)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return encode_value(value.tolist(), pointer, naive_datetime)
    raise EncodingError(pointer, f"cannot encode a {type(value).__name__} as JSON")


def _datetime(value: dt.datetime, pointer: str, naive: NaiveDatetime) -> str:
    nanos = getattr(value, "nanosecond", 0)  # pandas.Timestamp
    if nanos:
        raise EncodingError(pointer, "BigQuery keeps microseconds; this time has nanoseconds")
    if value.tzinfo is None or value.utcoffset() is None:
        if naive == "civil":
            return value.isoformat()
        if naive == "utc":
            return value.replace(tzinfo=dt.timezone.utc).isoformat()
        raise EncodingError(
            pointer,
            "naive datetime: attach a tzinfo, or make the client with "
            "naive_datetime='civil' (DATETIME columns) or 'utc'",
        )
    return value.isoformat()


def encode_rows(
    rows: Any, naive_datetime: NaiveDatetime = "refuse", pointer: str = "/rows"
) -> list[dict[str, Any]]:
    """Rows (an iterable of mappings, or a pandas DataFrame) as JSON objects.

    In a DataFrame, missing values (NaN, NaT, ``pd.NA``) mean null and are sent as null;
    in mapping rows a NaN is refused, since it may be a bug.
    """
    if _is_dataframe(rows):
        rows = _dataframe_records(rows)
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise EncodingError(
                f"{pointer}/{i}", f"a row must be a mapping, not {type(row).__name__}"
            )
        out.append(encode_value(row, f"{pointer}/{i}", naive_datetime))
    return out


def _is_dataframe(rows: Any) -> bool:
    return hasattr(rows, "to_dict") and hasattr(rows, "columns") and hasattr(rows, "notna")


def _dataframe_records(frame: Any) -> list[dict[str, Any]]:
    cleaned = frame.astype(object).where(frame.notna(), None)
    records: list[dict[str, Any]] = cleaned.to_dict(orient="records")
    return records
