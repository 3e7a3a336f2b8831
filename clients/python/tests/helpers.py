"""Rows and waits shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def game_rows(
    game_id: str, game_date: str, players: int = 3, source: str = "backfill"
) -> list[dict[str, Any]]:
    """Box-score rows of one game."""
    return [
        {
            "game_id": game_id,
            "game_date": game_date,
            "player_lookup": f"player_{p}",
            "points": p,
            "source": source,
        }
        for p in range(players)
    ]


def eventually(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Polls ``check`` every 50 ms until it returns something; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
