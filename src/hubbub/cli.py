"""The `hubbub` command."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence

from hubbub import __version__
from hubbub.server.settings import ConfigError, add_arguments, load

# Subcommands that live with their feature: each module has add_arguments() and run().
PLUGINS = {
    "chat": ("hubbub.client.chat", "interactive terminal chat"),
    "publish": ("hubbub.client.publish", "publish a message through the HTTP API"),
    "bot": ("hubbub.client.bot_runner", "run a bot file"),
    "bench": ("hubbub.loadgen.command", "fan-out load generator and benchmarks"),
    "bench-acks": ("hubbub.loadgen.acks", "acknowledged-publish benchmark (store on/off)"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to a flag's help from the flag's own default, so that help
    cannot drift from the code; flags with no default, switches, and help that already
    names its default are left alone. (`hubbub serve`'s flags come from the settings table,
    whose help carries default, unit and variable: see `config.option_help`.)"""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text or default is None
                or isinstance(default, bool) or default == [] or default == argparse.SUPPRESS):
            return action.help
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s plugin module is imported, so start-up stays quick."""
    parser = _Parser(prog="hubbub", description="Real-time chat and pub/sub server.")
    parser.add_argument("--version", action="version", version=f"hubbub {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    serve = commands.add_parser("serve", help="run the server", description="Run the server.")
    add_arguments(serve)
    for name, (module_name, summary) in PLUGINS.items():
        sub = commands.add_parser(name, help=summary, description=summary,
                                  formatter_class=DefaultsFormatter)
        sub.set_defaults(plugin=module_name)
        if name == command:
            with _optional_packages(name):
                importlib.import_module(module_name).add_arguments(sub)
    return parser


OPTIONAL_PACKAGES = {"numpy": "bench"}
"""Packages that only an extra installs, imported by a subcommand, and the extra that does.
(The bench checks for the ones it needs only with some flags before it starts.)"""


@contextlib.contextmanager
def _optional_packages(command: str) -> Iterator[None]:
    """A subcommand that needs an extra that is not installed exits with what to install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        extra = OPTIONAL_PACKAGES.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        sys.exit(f"hubbub {command} needs the optional package {exc.name}: "
                 f"pip install 'hubbub[{extra}]'")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((arg for arg in argv if not arg.startswith("-")), None))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "serve":
        try:
            settings = load(args)
        except ConfigError as exc:
            print(f"hubbub: {exc}", file=sys.stderr)
            return 2
        if settings.workers > 1:
            from hubbub.server.workers import supervise

            return supervise(settings)
        from hubbub.server.run import serve

        return serve(settings)
    with _optional_packages(args.command):
        code: int = importlib.import_module(args.plugin).run(args)
    return code
