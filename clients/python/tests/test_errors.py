"""problem+json answers become exceptions with the service's pointers and details."""

from __future__ import annotations

import pytest
from conftest import Service
from helpers import game_rows

from streamguard import (
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    StreamguardError,
    Unauthorized,
    ValidationError,
)


def test_no_token_is_unauthorized(service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    with (
        Client(service.url, processor_name=processor) as client,
        pytest.raises(Unauthorized) as raised,
    ):
        client.replace(table, game_rows("g1", "2026-01-24"), "game_id")
    assert raised.value.status == 401 and raised.value.type == "/problems/unauthorized"


def test_a_read_token_cannot_write(service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    with Client(service.url, token=service.tokens["reader"], processor_name=processor) as client:
        with pytest.raises(Forbidden) as raised:
            client.replace(table, game_rows("g1", "2026-01-24"), "game_id")
        assert client.runs() is not None, "reading is allowed"
    assert raised.value.required_scope == "write"


def test_validation_errors_carry_each_pointer_and_detail(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    rows = [{"game_id": "g1", "game_date": "2026-01-24"}]
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        with pytest.raises(ValidationError) as raised:
            client.replace(table, rows, "game_id", "game_date", run="bad\nrun")
    error = raised.value
    assert error.status == 422
    assert error.pointers == ["/run", "/rows/1/game_id", "/rows/2/game_id"] or set(
        error.pointers
    ) >= {"/run"}
    assert all(e.detail for e in error.errors)
    assert "/run" in str(error)


def test_each_row_problem_is_reported(service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    rows = [{"game_id": "g1"}, {"points": 3}, {"game_id": None}]
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        with pytest.raises(ValidationError) as raised:
            client.replace(table, rows, "game_id")
    assert raised.value.pointers == ["/rows/1/game_id", "/rows/2/game_id"]
    assert "null" in raised.value.errors[1].detail


def test_another_key_shape_while_units_wait_is_a_conflict(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    service.insert_all(table, game_rows("g1", "2026-01-24", source="orchestration"), "20s")
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        waiting = client.replace(
            table, game_rows("g1", "2026-01-24"), "game_id", "game_date", wait=10
        )
        assert waiting.units[0].state == "deferred"
        with pytest.raises(Conflict) as raised:
            client.replace(
                table, game_rows("g1", "2026-01-24"), ["game_id", "player_lookup"], "game_date"
            )
    assert raised.value.status == 409 and "not landed yet" in raised.value.detail


def test_a_body_over_the_limit_is_payload_too_large(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    rows = [{"game_id": f"g{i}", "blob": "x" * 200_000} for i in range(200)]  # about 40 MB
    with Client(service.url, token=service.tokens["writer"], processor_name=processor) as client:
        with pytest.raises(PayloadTooLarge) as raised:
            client.replace(table, rows, "game_id")
    assert raised.value.status == 413 and "STREAMGUARD_MAX_BODY_BYTES" in raised.value.detail


def test_unknown_runs_and_bad_limits(service: Service) -> None:
    with Client(service.url, token=service.tokens["reader"]) as client:
        with pytest.raises(NotFound):
            client.run("no such run")
        with pytest.raises(BadRequest) as raised:
            client.runs(limit=0)
    assert isinstance(raised.value, StreamguardError) and "limit" in raised.value.detail


def test_a_replace_needs_a_processor_name(service: Service) -> None:
    with Client(service.url) as client, pytest.raises(ValueError, match="processor_name"):
        client.replace("p-roject.d.t", [], "game_id")
