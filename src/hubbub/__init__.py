"""hubbub: a real-time chat and pub/sub server on aiohttp, and a library that mounts into
aiohttp (`hubbub.setup`) and ASGI (`hubbub.asgi.create_app`) applications.

The names below load aiohttp and the server only when first used, so that `import hubbub`
stays cheap for the Python client and the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hubbub.core.grants import Grants, Identity, parse_grants
    from hubbub.engine.hub import Hub
    from hubbub.server.mount import HUB, HUBS, setup
    from hubbub.server.settings import ConfigError, Settings
    from hubbub.server.settings import from_code as settings

_EXPORTS = {
    "setup": ("hubbub.server.mount", "setup"),
    "HUB": ("hubbub.server.mount", "HUB"),
    "HUBS": ("hubbub.server.mount", "HUBS"),
    "Hub": ("hubbub.engine.hub", "Hub"),
    "Settings": ("hubbub.server.settings", "Settings"),
    "ConfigError": ("hubbub.server.settings", "ConfigError"),
    "settings": ("hubbub.server.settings", "from_code"),
    "Identity": ("hubbub.core.grants", "Identity"),
    "Grants": ("hubbub.core.grants", "Grants"),
    "parse_grants": ("hubbub.core.grants", "parse_grants"),
}

__all__ = ["HUB", "HUBS", "ConfigError", "Grants", "Hub", "Identity", "Settings",
           "__version__", "parse_grants", "settings", "setup"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hubbub' has no attribute {name!r}")
    import importlib

    module, attribute = _EXPORTS[name]
    return getattr(importlib.import_module(module), attribute)
