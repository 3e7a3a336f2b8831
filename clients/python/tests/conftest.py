"""The real service for the tests: the debug binary built by cargo, started once per
session on a free port against a database made for the session, stopped at the end.

The binary is ``$CARGO_TARGET_DIR/debug/streamguard`` or the repository's
``target/debug/streamguard``; the database server is the one in ``DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432``), the database a fresh ``sg_pytest_<random>`` that
the service creates and migrates on start.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]

#: Token name → (scopes, secret).
TOKENS = {
    "writer": ("write,read", "writer-secret"),
    "reader": ("read", "reader-secret"),
    "operator": ("read,admin", "operator-secret"),
}
#: The service's row limit in the tests, low so that splitting is cheap to exercise.
MAX_ROWS = 400


@dataclass
class Service:
    """The running service: its URL, tokens, database and log."""

    url: str
    database_url: str
    log: Path
    process: subprocess.Popen[bytes]
    tokens: dict[str, str] = field(default_factory=dict)

    def http(self, token: str = "writer") -> httpx.Client:
        """A plain HTTP client with a token, for arranging and checking."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[token]}"}
        )

    def table_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of an emulator table (the ``data`` objects)."""
        with self.http("reader") as h:
            r = h.get(f"/emulator/tables/{table}/rows")
            r.raise_for_status()
            return [row["data"] for row in r.json()["rows"]]

    def declare(self, table: str, fields: list[dict[str, str]]) -> None:
        """Declares an emulator table's schema (BigQuery's tables.insert body)."""
        project, dataset, table_id = table.split(".")
        body = {
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table_id},
            "schema": {"fields": fields},
        }
        with self.http("writer") as h:
            h.post("/emulator/tables", json=body).raise_for_status()

    def insert_all(self, table: str, rows: list[dict[str, Any]], buffer: str) -> None:
        """Streams rows into the emulator's buffer for ``buffer`` (``"2s"``)."""
        with self.http("writer") as h:
            r = h.post(f"/emulator/tables/{table}/insertAll", json={"rows": rows, "buffer": buffer})
            r.raise_for_status()


def binary() -> Path:
    """The debug binary cargo built."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    path = target / "debug" / "streamguard"
    if not path.exists():
        pytest.exit(f"{path} is missing: run `cargo build` first", returncode=2)
    return path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def session_database_url() -> str:
    """``DATABASE_URL``'s server with a fresh database name."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/sg_pytest_{uuid.uuid4().hex[:10]}"))


def start(
    database_url: str, log: Path, port: int | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    """Starts the binary and waits until ``/readyz`` answers 200 (at most 60 s)."""
    port = port or free_port()
    lines = [
        f"{name} {scopes} {hashlib.sha256(secret.encode()).hexdigest()}"
        for name, (scopes, secret) in TOKENS.items()
    ]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STREAMGUARD_LISTEN": f"127.0.0.1:{port}",
        "STREAMGUARD_TOKENS": "\n".join(lines),
        "STREAMGUARD_RETRY_DELAYS": "300ms",
        "STREAMGUARD_RETRY_MAX_ATTEMPTS": "30",
        "STREAMGUARD_RETRY_JITTER": "0",
        "STREAMGUARD_POLL_INTERVAL": "100ms",
        "STREAMGUARD_EMULATOR_BUFFER": "1s",
        "STREAMGUARD_MAX_ROWS": str(MAX_ROWS),
        "STREAMGUARD_BREAKER_OPEN_FOR": "2s",
        "STREAMGUARD_LOG_FORMAT": "text",
    }
    env.pop("STREAMGUARD_TOKENS_FILE", None)
    out = log.open("ab")
    process = subprocess.Popen([str(binary())], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.exit(f"the service exited with {process.returncode}; see {log}", returncode=2)
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.exit(f"the service was not ready after 60 s; see {log}", returncode=2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service, started once for the session."""
    database_url = session_database_url()
    log = tmp_path_factory.mktemp("service") / "streamguard.log"
    url, process = start(database_url, log)
    svc = Service(url, database_url, log, process, {n: s for n, (_, s) in TOKENS.items()})
    try:
        yield svc
    finally:
        stop(svc.process)
        drop_database(database_url)


def drop_database(database_url: str) -> None:
    """Drops the session's database when ``psql`` is at hand (else it is left behind)."""
    if shutil.which("psql") is None:
        return
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    subprocess.run(
        ["psql", admin, "-q", "-c", f'drop database if exists "{name}" with (force)'],
        check=False,
        capture_output=True,
    )


@pytest.fixture
def names(request: pytest.FixtureRequest) -> tuple[str, str]:
    """A processor name and a table of the test's own, so breakers and tables of other
    tests do not interfere."""
    tag = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    return f"pytest_{tag}", f"pytest-project.tests.t_{tag}"


@pytest.fixture
def anyio_backend() -> str:
    """The async tests run on asyncio."""
    return "asyncio"
