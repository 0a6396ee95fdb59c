"""`python -m hubbub.loadgen ...`: the same command as `hubbub bench ...`."""

import argparse
import sys

from hubbub.loadgen.command import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hubbub.loadgen", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
