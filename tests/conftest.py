from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.redis import (
    REDIS_URL_ENV,
    RedisFactory,
    RedisProcess,
    forget_prefix,
    redis_is_up,
    unique_prefix,
)
from support.server import ServerFactory, ServerProcess


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Factory: `start_server("--store", "memory", env={...})` starts a real server."""
    started: list[ServerProcess] = []

    def factory(*args: str, data_dir: Path | None = None,
                env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", *args, env=env)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.kill()


@pytest.fixture
def server(start_server: ServerFactory) -> ServerProcess:
    """A real hubbub server with default settings (SQLite store in a temp dir)."""
    return start_server()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's Redis: a private `redis-server` (no persistence) started at the first
    test that asks, or the server `HUBBUB_TEST_REDIS_URL` names. Tests share it; each
    keeps to its own `redis_prefix`."""
    shared = os.environ.get(REDIS_URL_ENV)
    if shared:
        redis_is_up(shared)
        yield shared
        return
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.kill()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """This test's own `--redis-prefix`: no other test sees its keys. On a shared Redis
    (`HUBBUB_TEST_REDIS_URL`) they are deleted after the test (and its servers) ended."""
    prefix = unique_prefix()
    yield prefix
    if os.environ.get(REDIS_URL_ENV):
        forget_prefix(redis_url, prefix)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisFactory]:
    """Factory for a Redis of the test's own, to kill, pause and restart (always a private
    `redis-server`, whatever `HUBBUB_TEST_REDIS_URL` says): `private_redis()` is persistent
    (append-only file, fsync always), `private_redis(persistent=False)` is not."""
    started: list[RedisProcess] = []

    def factory(*, persistent: bool = True) -> RedisProcess:
        server = RedisProcess(tmp_path, persistent=persistent)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.kill()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Playwright's sync API leaves an event loop running in the main thread; asyncio tests
    # collected after a browser test would then fail, so browser tests run last.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
