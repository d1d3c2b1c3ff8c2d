"""pytest fixtures for the Lantern end-to-end tests.

`broker_factory(**kw)` starts a real lantern-broker (see lantern.Broker) in a temp dir;
`broker` is one started with default settings. Every broker a test started is killed at
teardown, and when a test fails the tail of each broker's stderr is attached to the
report.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lantern import Broker  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    brokers = getattr(item, "_lantern_brokers", None)
    if rep.failed and brokers:
        for b in brokers:
            rep.sections.append((f"{b.name} stderr tail ({b.log_path})", b.log_tail(80)))


@pytest.fixture
def broker_factory(request, tmp_path):
    started: list[Broker] = []
    request.node._lantern_brokers = started

    def make(*, start: bool = True, name: str | None = None, **kw) -> Broker:
        b = Broker(tmp_path / (name or f"broker{len(started) + 1}"), name=name or f"broker{len(started) + 1}", **kw)
        started.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory(props={"num.partitions": 1, "auto.create.topics.enable": "true"})


@pytest.fixture
def topic_name(request) -> str:
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60].strip("-")
    return f"{base}-{uuid.uuid4().hex[:6]}"
