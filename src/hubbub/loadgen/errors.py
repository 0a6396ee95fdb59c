"""Failures the user can act on: shown as one line, without a traceback."""


class BenchError(Exception):
    """The run cannot go on (a server died, connections failed); exit code 1."""


class Unreachable(BenchError):
    """The server did not accept the publisher's connection; exit code 2 for `--url`."""
