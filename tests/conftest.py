from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Playwright's sync API leaves an event loop running in the main thread; asyncio tests
    # collected after a browser test would then fail, so browser tests run last.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
