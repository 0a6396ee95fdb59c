from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.server import ServerProcess


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for a module's tests that only add rooms and messages of their own
    (starting a process per test would dominate this directory's run time)."""
    data: Path = tmp_path_factory.mktemp("shared") / "data"
    server = ServerProcess(data).start()
    yield server
    server.kill()
