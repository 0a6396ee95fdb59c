"""`hubbub publish URL ROOM TEXT`: push one message through the HTTP API.

Exit status 0 on success (prints the offset and id), 1 with one line on stderr on any
failure, 2 for usage errors (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from hubbub.client.errors import ClientError, HubbubError
from hubbub.client.sync import publish
from hubbub.server.settings import setting


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server's base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("room", help="room to publish to")
    parser.add_argument("text", nargs="?", help="message text (optional with --data)")
    parser.add_argument("--data", metavar="JSON", help="a JSON value to attach as `data`")
    parser.add_argument(
        "--api-key",
        default=os.environ.get(setting("api_key").env),
        help=f"API key (default: ${setting('api_key').env})",
    )
    parser.add_argument(
        "--from", dest="sender_name", metavar="NAME", help="name shown as the sender"
    )
    parser.add_argument("--id", dest="message_id", metavar="ID",
                        help="a message id of your choosing (1-64 of A-Z a-z 0-9 _ -): "
                             "running again with the same id within 5 minutes stores the "
                             "message once")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server")


def run(args: argparse.Namespace) -> int:
    data: Any = None
    if args.data is not None:
        try:
            data = orjson.loads(args.data)
        except orjson.JSONDecodeError as exc:
            return _fail(f"--data is not valid JSON: {exc}")
    if args.text is None and data is None:
        return _fail("give TEXT, --data JSON, or both")
    try:
        ack = publish(
            args.url,
            args.room,
            args.text,
            data,
            sender_name=args.sender_name,
            api_key=args.api_key or None,
            id=args.message_id,
            timeout=args.timeout,
        )
    except HubbubError as exc:
        later = "" if exc.retry_after is None else f"; retry in {exc.retry_after / 1000:g} s"
        return _fail(f"server refused: {exc.reason} ({exc.code}){later}")
    except (ClientError, ValueError) as exc:
        return _fail(str(exc))
    again = "; already published, nothing new stored" if ack.duplicate else ""
    print(f"published to {ack.room} at offset {ack.offset} (id {ack.id}, epoch {ack.epoch})"
          f"{again}")
    return 0


def _fail(message: str) -> int:
    print(f"hubbub publish: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbub publish", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
