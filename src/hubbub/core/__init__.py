"""The sans-I/O core: requests and their validation (`protocol`), the events the server
sends (`events`) and the wire formats that encode them (`codec`), names, limits, grants,
rooms and their join buffers (`rooms`), outbox accounting, and the message store interface
(`store`; its implementations live in `hubbub.stores`).

Nothing in this package imports aiohttp or opens a socket, and apart from
`MessageStore.append` (a future over `submit`) nothing touches the event loop, so all of it
is tested with plain function calls.
"""
