"""``streamguard-cli``: replace from JSON Lines, wait, run, runs — against the real service."""

from __future__ import annotations

import io
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Service
from helpers import game_rows

from streamguard.cli import EXIT_ERROR, EXIT_OK, EXIT_TIMEOUT, lossless_float, main


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_numbers_from_files_are_read_without_rounding() -> None:
    assert lossless_float("28.5") == 28.5 and isinstance(lossless_float("1e3"), float)
    assert lossless_float("0.30000000000000000001") == Decimal("0.30000000000000000001")


def test_replace_with_a_run_follows_it_and_prints_the_report(
    service: Service, names: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor, table = names
    # `exact` is BIGNUMERIC: its 20 decimal places must land as sent.
    service.declare(
        table,
        [
            {"name": "game_id", "type": "STRING"},
            {"name": "game_date", "type": "DATE"},
            {"name": "player_lookup", "type": "STRING"},
            {"name": "points", "type": "INT64"},
            {"name": "source", "type": "STRING"},
            {"name": "exact", "type": "BIGNUMERIC"},
        ],
    )
    service.insert_all(table, game_rows("g1", "2026-01-24", source="orchestration"), "1s")
    rows = game_rows("g1", "2026-01-24") + game_rows("g2", "2026-01-25")
    rows[0]["exact"] = 0.1
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in rows).replace(
            '"exact": 0.1', '"exact": 0.30000000000000000001'
        ),
        encoding="utf-8",
    )
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain progress lines
    out = io.StringIO()
    run = f"{processor} cli run"

    status = main(
        [
            "--url",
            service.url,
            "--token",
            service.tokens["writer"],
            "--poll",
            "0.1",
            "--timeout",
            "30",
            "replace",
            "--table",
            table,
            "--key",
            "game_id",
            "--partition",
            "game_date",
            "--processor",
            processor,
            "--run",
            run,
            "--follow",
            str(path),
        ],
        out,
    )

    text = out.getvalue()
    assert status == EXIT_OK, text
    assert "6 row(s) posted as batch(es)" in text
    assert f"{run}: 2/2 settled" in text, "a progress line per change"
    assert "loaded on first attempt" in text and "resolved by retry" in text
    exact = [r["exact"] for r in service.table_rows(table) if "exact" in r]
    assert exact == ["0.30000000000000000001"]


def test_wait_run_and_runs(service: Service, names: tuple[str, str], tmp_path: Path) -> None:
    processor, table = names
    path = write_jsonl(tmp_path / "rows.jsonl", game_rows("g1", "2026-01-24"))
    common = ["--url", service.url, "--token", service.tokens["writer"], "--poll", "0.1"]
    posted = io.StringIO()
    assert (
        main(
            [
                *common,
                "replace",
                "--table",
                table,
                "--key",
                "game_id",
                "--processor",
                processor,
                "--run",
                "cli list",
                path,
            ],
            posted,
        )
        == EXIT_OK
    )
    batch_id = posted.getvalue().split("batch(es) ")[1].split()[0]

    waited, followed, listed = io.StringIO(), io.StringIO(), io.StringIO()
    assert main([*common, "--timeout", "30", "wait", batch_id], waited) == EXIT_OK
    assert main([*common, "--timeout", "30", "run", "cli list", "--follow"], followed) == EXIT_OK
    assert main([*common, "runs", "--limit", "100"], listed) == EXIT_OK

    assert "1 unit(s): 1 loaded" in waited.getvalue()
    assert "run 'cli list'" in followed.getvalue()
    assert "cli list: 100%" in followed.getvalue() and "1/1" in followed.getvalue(), "tqdm's bar"
    assert "'cli list': 1 batch(es), 1/1 loaded, done" in listed.getvalue()


def test_errors_and_timeouts_set_the_exit_status(
    service: Service, names: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    processor, table = names
    path = write_jsonl(tmp_path / "rows.jsonl", game_rows("g1", "2026-01-24"))
    refused = main(
        [
            "--url",
            service.url,
            "--token",
            service.tokens["reader"],
            "replace",
            "--table",
            table,
            "--key",
            "game_id",
            "--processor",
            processor,
            path,
        ],
        io.StringIO(),
    )
    assert refused == EXIT_ERROR and "403" in capsys.readouterr().err

    service.insert_all(table, game_rows("g2", "2026-01-24", source="orchestration"), "30s")
    late = write_jsonl(tmp_path / "late.jsonl", game_rows("g2", "2026-01-24"))
    timed_out = main(
        [
            "--url",
            service.url,
            "--token",
            service.tokens["writer"],
            "--timeout",
            "0.5",
            "--poll",
            "0.1",
            "replace",
            "--table",
            table,
            "--key",
            "game_id",
            "--wait",
            "5",
            "--processor",
            processor,
            "--follow",
            late,
        ],
        io.StringIO(),
    )
    assert timed_out == EXIT_TIMEOUT
