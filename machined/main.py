"""machined entry point (for now: version only; PID-1 duties and the API come later)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

VERSION = "0.1.0"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="machined", description="kos machined: PID 1 of a kos node")
    parser.add_argument("--version", action="version", version=f"machined {VERSION}")
    parser.parse_args(argv)
    print(f"machined {VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
