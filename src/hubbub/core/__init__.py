"""The sans-I/O core: requests and their validation (`protocol`), the events the server
sends (`events`) and the wire formats that encode them (`codec`), error and close codes
(`codes`), messages (`message`), names, limits, grants, the rate limit (`ratelimit`), rooms
and their join buffers (`rooms`), outbox accounting (`outbox`), text frames encoded once
(`wsframe`), SSE events (`sse`), and the message store interface (`store`; its
implementations live in `hubbub.stores`).

Nothing in this package imports aiohttp or opens a socket, and apart from
`MessageStore.append` (a future over `submit`) nothing touches the event loop, so all of it
is tested with plain function calls.
"""
