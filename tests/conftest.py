"""Session-wide real servers and per-test topic names."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streams.harness import Server, start_influxdb1, start_tansu, start_victoriametrics


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_tansu(tmp_path_factory.mktemp("tansu"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_influxdb1(tmp_path_factory.mktemp("influxdb1"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def victoriametrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_victoriametrics(tmp_path_factory.mktemp("victoriametrics"))
    yield server
    server.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh prefix so each test has its own topics on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}"
