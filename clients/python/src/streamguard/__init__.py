"""streamguard: the Python client of the streamguard service, which makes BigQuery
backfills land exactly once.

    from streamguard import Client
    with Client(URL, token=TOKEN, processor_name="bdl_boxscores_processor") as sg:
        result = sg.replace("proj.dataset.table", rows, key_columns=["game_id"],
                            partition_column="game_date", run="backfill 2026-01-24")
        print(sg.follow_run("backfill 2026-01-24").table())

:class:`Client` (sync) and :class:`AsyncClient` (async) share their methods; errors are
the exceptions of :mod:`streamguard.errors`; results the dataclasses of
:mod:`streamguard.models`.
"""

from ._core import RetryPolicy
from ._encoding import EncodingError, NaiveDatetime, encode_rows, encode_value
from ._version import __version__
from .aio import AsyncClient
from .client import Client
from .errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServerError,
    StreamguardError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
    WaitTimeout,
)
from .models import (
    Batch,
    Breaker,
    ConflictReport,
    ConflictSummary,
    ReplaceResult,
    RunReport,
    RunUnits,
    Unit,
    UnresolvedConflict,
)

__all__ = [
    "AsyncClient",
    "BadRequest",
    "Batch",
    "Breaker",
    "Client",
    "Conflict",
    "ConflictReport",
    "ConflictSummary",
    "EncodingError",
    "FieldError",
    "Forbidden",
    "NaiveDatetime",
    "NotFound",
    "PayloadTooLarge",
    "ReplaceResult",
    "RetryPolicy",
    "RunReport",
    "RunUnits",
    "ServerError",
    "StreamguardError",
    "Unauthorized",
    "Unit",
    "UnresolvedConflict",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
    "__version__",
    "encode_rows",
    "encode_value",
]
