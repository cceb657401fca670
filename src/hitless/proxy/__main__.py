"""`python -m hitless.proxy ARGS`: the same as `hitless proxy ARGS`, without the other commands."""

from __future__ import annotations

import argparse
import sys

from hitless.cli import proxy
from hitless.errors import ExitStatus, HitlessError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hitless")
    proxy.register(parser.add_subparsers(dest="command", required=True))
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
