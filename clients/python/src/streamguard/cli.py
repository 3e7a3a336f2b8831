"""``streamguard-cli``: replace rows from JSON Lines files, follow a batch, follow a run.

    streamguard-cli replace --table p.d.t --key game_id --partition game_date \\
        --processor bdl_boxscores_processor --run "backfill 2026-01-24" --follow rows.jsonl
    streamguard-cli wait BATCH_ID
    streamguard-cli run "backfill 2026-01-24" --follow
    streamguard-cli runs

The service and token come from ``--url``/``STREAMGUARD_URL`` (default
``http://127.0.0.1:8080``) and ``--token``/``STREAMGUARD_TOKEN``. Exit status: 0 when every
unit landed, 3 when some failed or gave up, 4 when ``--timeout`` ran out, 1 on an error
answer (its problem printed on stderr), 2 on bad arguments or files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from ._encoding import EncodingError
from .client import Client
from .errors import StreamguardError, WaitTimeout
from .models import Batch, ReplaceResult, RunReport

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GAVE_UP, EXIT_TIMEOUT = 0, 1, 2, 3, 4


def lossless_float(text: str) -> float | Decimal:
    """A JSON number with a fraction or exponent: a float when the float is exactly the
    number written (up to notation), else a ``Decimal`` (sent as a string, never rounded)."""
    value = float(text)
    if value == value and abs(value) != float("inf") and Decimal(repr(value)) == Decimal(text):
        return value
    return Decimal(text)


def _open(path: str, stdin: IO[str]) -> AbstractContextManager[IO[str]]:
    if path == "-":
        return nullcontext(stdin)
    return Path(path).open(encoding="utf-8")


def read_rows(paths: Sequence[str], stdin: IO[str]) -> Iterator[dict[str, Any]]:
    """Rows from JSON Lines files (or a ``.json`` file holding an array); ``-`` is stdin."""
    for path in paths:
        with _open(path, stdin) as handle:
            if path.endswith(".json"):
                rows = json.load(handle, parse_float=lossless_float)
                if not isinstance(rows, list):
                    raise ValueError(f"{path}: a .json file must hold an array of rows")
                yield from rows
                continue
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield json.loads(line, parse_float=lossless_float)
                    except ValueError as e:
                        raise ValueError(f"{path}:{number}: {e}") from None


def describe(units: Counter[str], next_at: dt.datetime | None) -> str:
    """``3 units: 2 loaded, 1 deferred (next attempt 09:19:03Z)``."""
    total = sum(units.values())
    parts = ", ".join(f"{n} {state}" for state, n in sorted(units.items()))
    waiting = f" (next attempt {next_at:%H:%M:%S}Z)" if next_at else ""
    return f"{total} unit(s): {parts}{waiting}"


class Printer:
    """Progress lines on stdout, each with the seconds since the command started."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        self.out.write(f"[{time.monotonic() - self.started:7.1f}s] {text}\n")
        self.out.flush()

    def batches(self, result: ReplaceResult | Batch) -> None:
        units = result.units if isinstance(result, ReplaceResult) else list(result.units)
        waits = [u.next_attempt_at for u in units if u.state == "deferred" and u.next_attempt_at]
        self.line(describe(Counter(u.state for u in units), max(waits) if waits else None))

    def run(self, report: RunReport) -> None:
        u = report.units
        eta = f", done by {report.estimated_done_at:%H:%M:%S}Z" if report.estimated_done_at else ""
        self.line(
            f"{report.run}: {report.settled}/{u.total} settled — {u.loaded} loaded, "
            f"{u.deferred} deferred, {u.pending} pending, {u.unresolved + u.failed} gave up{eta}"
        )


def outcome(units: Sequence[Any]) -> int:
    """The exit status for units that are done."""
    return EXIT_GAVE_UP if any(u.state in ("failed", "unresolved") for u in units) else EXIT_OK


def follow_run(client: Client, name: str, args: argparse.Namespace, printer: Printer) -> int:
    """Follows a run with a tqdm bar when tqdm is installed (extra ``progress``), else with
    a line per change; prints the final report."""
    try:
        from tqdm import tqdm
    except ImportError:
        report = client.follow_run(name, args.timeout, poll=args.poll, on_progress=printer.run)
    else:
        first = client.run(name)
        with tqdm(total=first.units.total, unit="unit", desc=name, file=printer.out) as bar:

            def show(r: RunReport) -> None:
                bar.total = r.units.total
                bar.n = r.settled
                bar.set_postfix(deferred=r.units.deferred, gave_up=r.unresolved + r.failed)

            report = client.follow_run(name, args.timeout, poll=args.poll, on_progress=show)
    printer.out.write(report.table() + "\n")
    return EXIT_GAVE_UP if report.unresolved or report.failed else EXIT_OK


def command_replace(client: Client, args: argparse.Namespace, printer: Printer) -> int:
    rows = list(read_rows(args.files, sys.stdin))
    result = client.replace(
        args.table,
        rows,
        key_columns=args.key,
        partition_column=args.partition,
        processor_name=args.processor,
        idempotency_key=args.idempotency_key,
        wait=args.wait,
        run=args.run,
        split=args.split,
    )
    replayed = " (replayed: the same content was posted before)" if result.replayed else ""
    printer.line(f"{len(rows)} row(s) posted as batch(es) {', '.join(result.batch_ids)}{replayed}")
    printer.batches(result)
    if not args.follow:
        return EXIT_OK
    if args.run:
        return follow_run(client, args.run, args, printer)
    final = client.wait(result, args.timeout, poll=args.poll, on_progress=printer.batches)
    return outcome(final.units)


def command_wait(client: Client, args: argparse.Namespace, printer: Printer) -> int:
    final = client.wait(args.batch_id, args.timeout, poll=args.poll, on_progress=printer.batches)
    for unit in final.units:
        if unit.state != "loaded":
            printer.line(f"{json.dumps(unit.key)} {unit.state}: {unit.error or ''}".rstrip(": "))
    return outcome(final.units)


def command_run(client: Client, args: argparse.Namespace, printer: Printer) -> int:
    if args.follow:
        return follow_run(client, args.run, args, printer)
    report = client.run(args.run)
    printer.out.write(report.table() + "\n")
    return EXIT_OK


def command_runs(client: Client, args: argparse.Namespace, printer: Printer) -> int:
    for r in client.runs(args.limit):
        state = "done" if r.done else f"{r.units.pending + r.units.deferred} waiting"
        printer.out.write(
            f"{r.last_change_at:%Y-%m-%d %H:%M:%S}Z  {r.run!r}: {r.batches} batch(es), "
            f"{r.units.loaded}/{r.units.total} loaded, {state}\n"
        )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="streamguard-cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", default=os.environ.get("STREAMGUARD_URL", "http://127.0.0.1:8080"))
    p.add_argument("--token", default=os.environ.get("STREAMGUARD_TOKEN"), help="bearer token")
    p.add_argument("--timeout", type=float, default=None, help="give up following after S seconds")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between reads when following")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replace", help="replace each key's rows with the rows of JSON Lines files")
    r.add_argument("files", nargs="+", help=".jsonl files (or .json arrays); - for stdin")
    r.add_argument("--table", required=True, help="project.dataset.table")
    r.add_argument("--key", action="append", required=True, help="a key column (repeatable)")
    r.add_argument("--partition", help="the partition column")
    r.add_argument(
        "--processor", default=os.environ.get("STREAMGUARD_PROCESSOR"), help="processor name"
    )
    r.add_argument("--run", help="the backfill run the batch belongs to")
    r.add_argument("--idempotency-key")
    r.add_argument("--wait", type=float, help="seconds the service may wait for first attempts")
    r.add_argument("--split", action="store_true", help="split by key when over the limits")
    r.add_argument(
        "--follow", action="store_true", help="follow until every unit landed or gave up"
    )
    r.set_defaults(handler=command_replace)

    w = sub.add_parser("wait", help="follow a batch until every unit landed or gave up")
    w.add_argument("batch_id")
    w.set_defaults(handler=command_wait)

    n = sub.add_parser("run", help="a run's report; --follow until it is done")
    n.add_argument("run")
    n.add_argument("--follow", action="store_true")
    n.set_defaults(handler=command_run)

    ls = sub.add_parser("runs", help="recent runs, most recent first")
    ls.add_argument("--limit", type=int, default=20)
    ls.set_defaults(handler=command_runs)
    return p


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = parser().parse_args(argv)
    printer = Printer(out or sys.stdout)
    try:
        with Client(args.url, token=args.token) as client:
            status: int = args.handler(client, args, printer)
            return status
    except StreamguardError as e:
        print(e, file=sys.stderr)
        return EXIT_ERROR
    except WaitTimeout as e:
        print(f"timed out: {e}", file=sys.stderr)
        return EXIT_TIMEOUT
    except (EncodingError, ValueError, OSError) as e:
        print(e, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
