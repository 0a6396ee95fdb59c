"""Nodes of one deployment: real `hubbub serve --redis` processes sharing a Redis.

`nodes(3)` starts three nodes against the session's Redis under the test's own prefix;
`nodes(2, redis=private_redis())` against a Redis of the test's own, for fault tests.
Nodes are started side by side and killed (by PID) when the test ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.helpers import NodesFactory
from support.redis import RedisProcess
from support.server import ServerProcess, redis_nodes, start_all

NODE_FLAGS = ("--rate-per-second", "0")
"""The tests publish in bursts: no per-connection rate limit in the way."""


@pytest.fixture
def nodes(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[NodesFactory]:
    """Factory: `nodes(count, *flags, redis=None)` -> started nodes sharing the session's
    Redis (or `redis`, a `RedisProcess`) under this test's prefix."""
    started: list[ServerProcess] = []

    def factory(count: int, *flags: str, redis: RedisProcess | None = None,
                env: dict[str, str] | None = None) -> list[ServerProcess]:
        url = redis.url if redis is not None else redis_url
        batch = redis_nodes(tmp_path / f"batch-{len(started)}", count, url, redis_prefix,
                            *NODE_FLAGS, *flags, env=env)
        started.extend(batch)
        return start_all(batch)

    yield factory
    for server in started:
        server.kill()
