"""The fault tests' Redis does what they rely on: a persistent one keeps what it acknowledged
across a SIGKILL, a fresh restart loses everything, a paused one answers nothing until it
is resumed, and killing pub/sub clients drops exactly the subscribers."""

from __future__ import annotations

import pytest
import redis

from support.redis import RedisFactory

pytestmark = pytest.mark.timeout(30)


def test_restarts_keep_or_lose_data_as_asked(private_redis: RedisFactory) -> None:
    server = private_redis()
    port = server.port
    with server.client() as client:
        assert client.set("kept", "yes")
    server.restart()  # SIGKILL, then the same directory: the append-only file replays
    assert server.port == port
    with server.client() as client:
        assert client.get("kept") == b"yes"
    server.restart(fresh=True)
    assert server.port == port
    with server.client() as client:
        assert client.get("kept") is None


def test_pause_and_resume(private_redis: RedisFactory) -> None:
    server = private_redis(persistent=False)
    with server.client(socket_timeout=0.3) as client:
        assert client.ping()
        server.pause()
        with pytest.raises(redis.TimeoutError):
            client.ping()
        server.resume()
    with server.client() as client:
        assert client.ping()


def test_killing_pub_sub_clients_drops_subscribers_only(private_redis: RedisFactory) -> None:
    server = private_redis(persistent=False)
    with server.client() as subscriber_side, server.client() as plain:
        pubsub = subscriber_side.pubsub()
        pubsub.subscribe("channel")
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"  # confirmed
        assert plain.ping()
        assert len(plain.client_list(_type="pubsub")) == 1
        assert server.kill_pubsub_clients() == 1
        assert plain.client_list(_type="pubsub") == []
        assert plain.ping()  # the plain connection lives on
        pubsub.close()
