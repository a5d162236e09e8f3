"""`python -m streaming.simulator`: serve until SIGINT or SIGTERM, then exit 0.

Prints one line, `simulator listening on <base url>`, once the port is bound (with --port 0,
the port the OS chose), so a parent process can wait for it.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys

from .server import Simulator


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until told to stop."""
    parser = argparse.ArgumentParser(
        prog="python -m streaming.simulator",
        description="A deterministic OpenAI-compatible Chat Completions server for development.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second; 0 = no delay")
    parser.add_argument("--tokens", type=int, default=60, help="answer length in tokens")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    parser.add_argument("--model", default="simulated", help="model name when none is sent")
    parser.add_argument(
        "--models",
        default=os.environ.get("SIMULATOR_MODELS", ""),
        help="comma-separated model IDs GET /v1/models lists (default: $SIMULATOR_MODELS, "
        "else --model)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    simulator = Simulator(
        host=args.host,
        port=args.port,
        rate=args.rate,
        tokens=args.tokens,
        api_key=args.api_key,
        model=args.model,
        models=[name.strip() for name in args.models.split(",") if name.strip()],
    )
    asyncio.run(_serve(simulator))
    return 0


async def _serve(simulator: Simulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with simulator:
        print(f"simulator listening on {simulator.base_url}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    sys.exit(main())
