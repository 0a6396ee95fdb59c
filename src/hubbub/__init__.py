"""hubbub: a real-time chat and pub/sub server on aiohttp."""

__version__ = "0.1.0"
