"""`python -m hitless.proxy ARGS`: the same as `hitless proxy ARGS`, without the other commands."""

from __future__ import annotations

import argparse
import sys

from hitless.errors import ExitStatus, HitlessError
from hitless.proxy.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hitless")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["proxy", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except HitlessError as exc:
        for line in exc.lines():
            print(f"hitless: {line}", file=sys.stderr)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
