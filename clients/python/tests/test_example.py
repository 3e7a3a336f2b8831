"""The example backfill runs against the service and reports every game landed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import Service

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "backfill_boxscores.py"


def test_the_example_backfill_lands_with_its_report(
    service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("backfill_boxscores", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    sys.modules["backfill_boxscores"] = example
    spec.loader.exec_module(example)

    status = example.main(
        [
            "--url",
            service.url,
            "--token",
            service.tokens["writer"],
            "--games",
            "10",
            "--buffered",
            "3",
            "--buffer",
            "1s",
            "--poll",
            "0.1",
            "--run",
            "example backfill",
        ]
    )

    out = capsys.readouterr()
    assert status == 0, out
    report = {
        line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1]
        for line in out.out.splitlines()
        if line.startswith("  ") and not line.strip().startswith("elapsed")
    }
    assert report["batches"] == "10"
    # The 3 streamed games share their day (a partition) with 5 others: how many of those
    # are blocked with them depends on how fast the buffer (1 s) drains against the posts;
    # every game lands, the streamed ones by a retry.
    first, retried = int(report["loaded on first attempt"]), int(report["resolved by retry"])
    assert first + retried == 10 and retried >= 3, report
    assert report["unresolved (gave up)"] == "0"
    rows = service.table_rows("nba-props-platform.nba_raw.bdl_player_boxscores")
    assert len(rows) == 10 * 10 and all(
        r["plus_minus"] in ("-3.0", "-1.5", "0.0", "1.5", "3.0") for r in rows
    )
