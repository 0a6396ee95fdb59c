"""`hubbub bot FILE URL`: load a Python file that defines a module-level `bot` and run it."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
from pathlib import Path

from hubbub.client.bot import Bot


class BotFileError(Exception):
    """FILE cannot be loaded as a bot; the message is one line for the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="Python file defining a module-level `bot`")
    parser.add_argument("url", help="server URL, e.g. ws://127.0.0.1:8080/ws")


def load_bot(path: Path) -> Bot:
    """Execute `path` as a module named after it and return its `bot`.

    Errors in the user's own code keep their traceback (printed to stderr) because that is
    what they need to fix it; everything else is one line.
    """
    if not path.is_file():
        raise BotFileError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"hubbub_bot_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise BotFileError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        traceback.print_exc()
        raise BotFileError(f"{path} failed to load: {exc!r}") from exc
    bot = getattr(module, "bot", None)
    if not isinstance(bot, Bot):
        found = "nothing" if bot is None else type(bot).__name__
        raise BotFileError(
            f"{path} must define a module-level `bot = Bot(...)` (found {found})"
        )
    return bot


def run(args: argparse.Namespace) -> int:
    try:
        bot = load_bot(args.file)
    except BotFileError as exc:
        print(f"hubbub bot: error: {exc}", file=sys.stderr)
        return 1
    return bot.run(args.url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hubbub bot", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
