"""Module-scoped servers: one process per test module where its tests don't interfere.

Starting a server costs about half a second; the end-to-end suite would spend most of its
time on that if every test had its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from support.server import ADAPTERS, ServerProcess, running

ModuleServer = Callable[..., ServerProcess]


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Default settings but the memory store and no rate limit, shared by a module."""
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0") as server:
        yield server


@pytest.fixture(scope="module", params=list(ADAPTERS))
def adapter_server(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """As `module_server`, once per adapter (`hubbub serve` and `hubbub.asgi` under
    uvicorn), for the protocol tests that must hold over both."""
    with running(tmp_path_factory, "--store", "memory", "--rate-per-second", "0",
                 adapter=request.param) as server:
        yield server
