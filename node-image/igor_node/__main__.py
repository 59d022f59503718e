"""`igor-node` / `python -m igor_node`: the node daemon."""

from __future__ import annotations

import asyncio
import logging
import os

from .config import parse_args
from .daemon import run


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("IGOR_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {cfg.name} %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
