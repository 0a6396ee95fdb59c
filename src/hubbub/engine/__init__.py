"""The engine: the hub (connections, rooms, publishing, the join boundary), the fan-out
that writes to many sockets, and the background tasks they start.

It runs on asyncio and knows no web framework: the adapters (`hubbub.server` for aiohttp,
`hubbub.asgi`) hand it sockets and frames, and it drives the sans-I/O core (`hubbub.core`)
and a store (`hubbub.stores`).
"""
