"""Retries: a lost answer or a refusal by a proxy is retried with the same idempotency key,
so the service makes one batch."""

from __future__ import annotations

import json

import proxy as proxies
import pytest
from conftest import Service
from helpers import game_rows

from streamguard import Client, RetryPolicy, ServerError

FAST = RetryPolicy(retries=3, base=0.01, cap=0.05)


def test_a_dropped_answer_is_retried_with_the_same_key_and_replays(
    service: Service, names: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    processor, table = names
    with proxies.running(service.url) as proxy:
        proxy.faults.append(("POST", "/v1/batches", "drop"))
        with Client(
            proxy.url, token=service.tokens["writer"], processor_name=processor, retry=FAST
        ) as client:
            result = client.replace(
                table, game_rows("g1", "2026-01-24"), "game_id", "game_date", wait=10
            )

    posts = [s for s in proxy.seen if s.method == "POST"]
    assert len(posts) == 2, "the first answer was lost, so the client posted again"
    assert posts[0].body == posts[1].body, "byte for byte the same request"
    key = json.loads(posts[0].body)["idempotency_key"]
    assert key.startswith("sg-") and len(key) == 67
    first = json.loads(posts[0].upstream_body)
    assert posts[0].upstream_status == 200 and result.batch_ids == [first["batch_id"]]
    assert result.replayed, "the second POST replayed the batch the first one made"
    assert len(service.table_rows(table)) == 3
    assert "POST /v1/batches: RemoteProtocolError; retry 1 of 3" in caplog.text


def test_unavailable_and_bad_gateway_are_retried(service: Service, names: tuple[str, str]) -> None:
    processor, table = names
    with proxies.running(service.url) as proxy:
        proxy.faults += [
            ("POST", "/v1/batches", 503),
            ("POST", "/v1/batches", 429),
            ("GET", "/v1/batches", 502),
        ]
        with Client(
            proxy.url, token=service.tokens["writer"], processor_name=processor, retry=FAST
        ) as client:
            result = client.replace(table, game_rows("g1", "2026-01-24"), "game_id", "game_date")
            batch = client.wait(result.batch_ids[0], timeout=30, poll=0.05)

    assert [s.upstream_status for s in proxy.seen if s.method == "POST"] == [None, None, 202]
    assert not result.replayed and batch.done


def test_retries_end_with_the_last_error(service: Service, names: tuple[str, str]) -> None:
    _processor, _ = names
    with proxies.running(service.url) as proxy:
        proxy.faults += [("GET", "/v1/runs", 503)] * 4
        with (
            Client(proxy.url, token=service.tokens["reader"], retry=FAST) as client,
            pytest.raises(ServerError) as raised,
        ):
            client.runs()
    assert raised.value.status == 503 and len(proxy.seen) == 4


def test_a_report_without_a_key_is_not_retried_after_it_may_have_been_applied(
    service: Service, names: tuple[str, str]
) -> None:
    processor, table = names
    with proxies.running(service.url) as proxy:
        proxy.faults.append(("POST", "/v1/conflicts", 502))
        with (
            Client(
                proxy.url, token=service.tokens["writer"], processor_name=processor, retry=FAST
            ) as client,
            pytest.raises(ServerError),
        ):
            client.report_conflict(table, {"game_id": "g1"}, "streaming buffer")
    assert len(proxy.seen) == 1


def test_backoff_is_jittered_within_its_bounds() -> None:
    policy = RetryPolicy(retries=5, base=1.0, cap=8.0)
    for n, ceiling in enumerate([1, 2, 4, 8, 8]):
        delays = {policy.delay(n) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1, "jittered"
    assert policy.delay(0, retry_after=30) == 30
