"""The front door's producer waits out a broker that refuses it before its ACLs are in force.

The broker may answer before the front door's principal has its ACLs (Strimzi's user
operator, or the local stack granting them just after the broker starts): the idempotent
producer's start is refused as ClusterAuthorizationFailed. That used to stop the front door
(tests/e2e/test_health.py failed now and then); it is now waited out like an absent broker,
with a fresh producer for each attempt (a failed start leaves aiokafka's half started).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import ClusterAuthorizationFailedError

from services.frontdoor import app as frontdoor
from shared.platform.retry import until_reachable


class Producer:
    def __init__(self, refusals: list[int]) -> None:
        self.refusals, self.started, self.stopped = refusals, False, False

    async def start(self) -> None:
        if self.refusals and self.refusals.pop():
            raise ClusterAuthorizationFailedError()
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


def test_a_refused_start_is_retried_with_a_fresh_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    refusals = [0, 1, 1]  # refused twice (popped from the end), then started
    made: list[Producer] = []

    def make_producer(*args: Any, **kwargs: Any) -> Producer:
        made.append(Producer(refusals))
        return made[-1]

    monkeypatch.setattr(frontdoor, "make_producer", make_producer)
    monkeypatch.setattr("shared.platform.retry.backoff_s", lambda failures: 0.0)
    door = SimpleNamespace(producer=Producer(refusals), settings=SimpleNamespace(kafka_bootstrap_servers="x"))
    first = door.producer
    asyncio.run(until_reachable("broker", lambda: frontdoor.FrontDoor._start_producer(door)))  # type: ignore[arg-type]
    assert first.stopped  # the refused one was closed, not reused
    assert not first.started
    assert len(made) == 2
    assert (made[0].stopped, made[0].started) == (True, False)
    assert door.producer is made[1]
    assert made[1].started


def test_a_batch_senders_refused_start_is_retried_with_a_fresh_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for ingest's and the verifier's RecordSender: a start hook that raised
    exited the service (chaos seed 2 saw a service exit 1 during an outage at its start)."""
    from shared.platform import broker

    refusals = [0, 1, 1]
    made: list[Producer] = []

    def make_producer(*args: Any, **kwargs: Any) -> Producer:
        made.append(Producer(refusals))
        return made[-1]

    monkeypatch.setattr(broker, "make_producer", make_producer)
    monkeypatch.setattr("shared.platform.retry.backoff_s", lambda failures: 0.0)
    settings = SimpleNamespace(kafka_bootstrap_servers="x")
    sender = broker.RecordSender(settings, client_id="stafet-test", principal="ingest")  # type: ignore[arg-type]
    asyncio.run(sender.start())
    assert [(p.started, p.stopped) for p in made] == [(False, True), (False, True), (True, False)]
    assert sender._producer is made[2]
