"""The sans-I/O core: protocol messages, validation, rooms, outbox accounting.

Nothing in this package imports aiohttp, opens a socket or touches the event loop, so all
of it is tested with plain function calls.
"""
