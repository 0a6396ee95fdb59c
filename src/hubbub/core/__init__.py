"""The sans-I/O core: requests and their validation (`protocol`), the events the server
sends (`events`) and the wire formats that encode them (`codec`), rooms, outbox accounting.

Nothing in this package imports aiohttp, opens a socket or touches the event loop, so all
of it is tested with plain function calls.
"""
