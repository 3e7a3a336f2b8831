"""The seed's box-score backfill, on streamguard.

Before: ``bdl_boxscores_processor.save_data_with_streaming_retry`` loaded the games without
a streaming conflict, slept 5, 10, 20 minutes for the others, re-checked the buffer, logged
each retry and left what was still blocked for a human. In the Jan 25, 2026 backfill 56 of
89 files were skipped that way, and the only report was ``grep retry`` over the logs.

After: each file is one ``replace`` of its game's rows, named as one run. The service
retries what BigQuery refuses, never duplicates a row, and reports the run:

    python examples/backfill_boxscores.py --url http://127.0.0.1:8080 DIR_OF_BOXSCORE_FILES

A box-score file is JSON: ``{"game_id": "20260124_LAL_BOS", "game_date": "2026-01-24",
"players": [{"player": "LeBron James", "team": "LAL", "pts": 28, "reb": 8, "ast": 9,
"min": "35:12"}, ...]}``. Without a directory, ``--games N`` makes N such files and (against
a service with the embedded emulator) streams ``--buffered`` of them through insertAll
first, as the orchestration run did, so their replaces meet the streaming buffer.

Needs ``pip install './clients/python[progress]'`` for the progress bar (tqdm); without it
a line is printed per change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from streamguard import Client, RunReport

PROCESSOR = "bdl_boxscores_processor"
TABLE = "nba-props-platform.nba_raw.bdl_player_boxscores"


def transform(box_score: dict[str, Any]) -> list[dict[str, Any]]:
    """One file's rows, as the processor's ``transform_data`` builds them."""
    processed_at = dt.datetime.now(dt.timezone.utc)
    return [
        {
            "game_id": box_score["game_id"],
            "game_date": dt.date.fromisoformat(box_score["game_date"]),
            "player_lookup": p["player"].lower().replace(" ", ""),
            "team_abbr": p["team"],
            "points": p["pts"],
            "rebounds": p["reb"],
            "assists": p["ast"],
            "minutes": p["min"],
            "plus_minus": Decimal(str(p.get("plus_minus", "0"))),
            "processed_at": processed_at,
        }
        for p in box_score["players"]
    ]


def make_files(directory: Path, games: int) -> list[Path]:
    """``games`` made-up box-score files, 8 games a day from 2026-01-17."""
    teams = ["ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW", "HOU", "IND"]
    paths = []
    for g in range(games):
        day = dt.date(2026, 1, 17) + dt.timedelta(days=g // 8)
        away, home = teams[(2 * g) % 12], teams[(2 * g + 1) % 12]
        game_id = f"{day:%Y%m%d}_{away}_{home}_{g:03}"
        players = [
            {
                "player": f"{team} Player {n}",
                "team": team,
                "pts": (g * 7 + n * 3) % 35,
                "reb": n % 12,
                "ast": (g + n) % 10,
                "min": f"{20 + n}:{n * 7 % 60:02}",
                "plus_minus": f"{(n - 2) * 1.5}",
            }
            for team in (away, home)
            for n in range(5)
        ]
        path = directory / f"{game_id}.json"
        path.write_text(
            json.dumps({"game_id": game_id, "game_date": day.isoformat(), "players": players})
        )
        paths.append(path)
    return paths


def stream_old_rows(url: str, token: str | None, files: list[Path], buffer: str) -> None:
    """The orchestration run's streaming inserts, through the emulator's insertAll (a
    service with the embedded emulator only): their rows sit in the streaming buffer for
    ``buffer``, so replacing these games is refused until it drains."""
    import httpx

    from streamguard import encode_rows

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for path in files:
        rows = encode_rows(transform(json.loads(path.read_text())))
        r = httpx.post(
            f"{url.rstrip('/')}/emulator/tables/{TABLE}/insertAll",
            json={"rows": rows, "buffer": buffer},
            headers=headers,
        )
        r.raise_for_status()


def progress(total: int) -> tuple[Callable[[RunReport], None], Callable[[], None]]:
    """A tqdm bar when tqdm is installed, else a printed line per change."""
    try:
        from tqdm import tqdm
    except ImportError:

        def line(r: RunReport) -> None:
            print(
                f"{r.settled}/{r.units.total} settled: {r.units.loaded} loaded, "
                f"{r.units.deferred} waiting for a retry, {r.unresolved + r.failed} gave up"
            )

        return line, lambda: None
    bar = tqdm(total=total, unit="game", desc="backfill")

    def show(r: RunReport) -> None:
        bar.n = r.settled
        bar.set_postfix(deferred=r.units.deferred, retried=r.resolved_by_retry)

    return show, bar.close


def main(argv: list[str] | None = None) -> int:
    """Runs the backfill; 0 when every game landed."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("files", nargs="?", type=Path, help="a directory of box-score JSON files")
    p.add_argument("--url", default=os.environ.get("STREAMGUARD_URL", "http://127.0.0.1:8080"))
    p.add_argument("--token", default=os.environ.get("STREAMGUARD_TOKEN"))
    p.add_argument("--games", type=int, default=89, help="files to make without a directory")
    p.add_argument("--buffered", type=int, default=56, help="of which streamed first (emulator)")
    p.add_argument("--buffer", default="20s", help="how long the streamed rows stay buffered")
    started = dt.datetime.now(dt.timezone.utc)
    p.add_argument("--run", default=f"bdl_boxscores backfill {started:%Y-%m-%d %H:%M:%S}")
    p.add_argument("--poll", type=float, default=1.0)
    args = p.parse_args(argv)

    with (
        Client(args.url, token=args.token, processor_name=PROCESSOR) as sg,
        tempfile.TemporaryDirectory() as tmp,
    ):
        if args.files:
            files = sorted(args.files.glob("*.json"))
        else:
            files = make_files(Path(tmp), args.games)
            stream_old_rows(args.url, args.token, files[: args.buffered], args.buffer)

        # The whole of save_data_with_streaming_retry: one replace per file, one run.
        for path in files:
            rows = transform(json.loads(path.read_text()))
            sg.replace(
                TABLE, rows, key_columns=["game_id"], partition_column="game_date", run=args.run
            )

        show, close = progress(len(files))
        try:
            report = sg.follow_run(args.run, poll=args.poll, on_progress=show)
        finally:
            close()
        print(report.table())
        for c in sg.conflicts.unresolved():
            if c.processor_name == PROCESSOR and c.unit_state in ("unresolved", "failed"):
                print(f"needs a look: {c.game_id} {c.conflict_type}: {c.error_message}")
    return 0 if report.unresolved == 0 and report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
