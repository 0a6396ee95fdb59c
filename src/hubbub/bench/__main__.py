"""`python -m hubbub.bench ...`: the same command as `hubbub bench ...`."""

import argparse
import sys

from hubbub.bench.command import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hubbub.bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
