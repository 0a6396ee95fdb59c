"""The Redis broker: many processes and machines share rooms through one Redis.

Redis is then the source of truth for offsets, history and presence. Per room (its keys all
carry the room's hash tag, so that a Redis Cluster could hold them together):

- `meta`, a hash: the room's `epoch` and `top` (latest offset);
- `log`, a Stream whose entry ids are `0-<offset>`: the history;
- `id:<message id>`, for publisher-chosen ids: the original's place, for the dedupe window;
- `members` (a sorted set of member ids by expiry) and `info` (a hash of member id -> JSON):
  presence;
- a pub/sub channel that carries every message and presence change of the room.

`broker.RedisBroker` is the node's side; `scripts` the Lua that keeps each step atomic;
`listener` the supervised pub/sub connection; `presence` who is where.
"""

from hubbub.brokers.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
