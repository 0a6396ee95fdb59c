"""The aiohttp adapter: sockets and HTTP around the hub."""
