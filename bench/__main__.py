"""Run the benchmarks and print Markdown for docs/performance.md.

    python -m bench              # `make bench`: the decoder rows, the chat page drawing long
                                 # answers (render, below), then the relay load run on
                                 # 1 and 2 daphne processes with the Pub/Sub layer (the
                                 # default) and 1 with the list-based layer, side by side;
                                 # plot in docs/relay-load.png
    python -m bench sse          # the decoder rows alone
    python -m bench layers       # the two channels-redis layers, CPU per frame delivered
    python -m bench upstream [--transports httpx,aiohttp,exact] [--runs 7]
                                 # reading the model's streams, CPU per token; with several
                                 # transports, alternating runs and medians
    python -m bench sizes        # long conversations opened over a real socket: snapshot
                                 # size, its parts, time and daphne's memory
    python -m bench search       # search over one user's 50 MB, without and with the index
    python -m bench render       # the chat page in Chromium drawing 15,000- and 100,000-
                                 # character Markdown answers at 300 pieces/s
    python -m bench transfer     # imports and exports of large conversations: time and
                                 # extra peak memory (PostgreSQL, BENCH_DATABASE_URL)
    python -m bench post         # posting one message into a conversation of 10,000 and
                                 # of 240,000 messages: time, queries, extra peak memory
    python -m bench uploads      # attaching files: a 12-megapixel photo and a 200-page PDF
                                 # uploaded, and a page's time while photos upload
    python -m bench relay        # the fixed-N relay run (SQLite and the in-memory layer
                                 # unless BENCH_DATABASE_URL / BENCH_REDIS_URL say otherwise)
    python -m bench profile [--n 20,100]
                                 # where one daphne's CPU goes while N answers stream:
                                 # µs per token (per answer) by component, sampled by py-spy
    python -m bench load [--daphnes 1,2] [--layer core,pubsub] [--loop uvloop,asyncio]
                         [--local on,off] [--http aiohttp,httpcore] [--people]
                         [--n 1,20,50] [--max-n 500] [--ramp SECONDS]
                         [--plot PATH]

The search run, the load run, the transfer and the post rows need PostgreSQL (BENCH_DATABASE_URL,
default the `chatsite_bench` database on 127.0.0.1); the load run Redis too
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/7).
"""

import argparse
import dataclasses
import json
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.load import Config

ROOT = Path(__file__).resolve().parent.parent
DOCS_PLOT = ROOT / "docs" / "relay-load.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("sse", help="the SSE decoder and chunk parser")
    commands.add_parser("layers", help="CPU per frame of the two channels-redis layers")
    reading = commands.add_parser("upstream", help="CPU per token of reading the model's streams")
    reading.add_argument(
        "--transports",
        type=_words("httpx", "aiohttp", "exact"),
        default=("httpx",),
        help="httpx (httpcore, the runtime's; default), aiohttp (httpx-aiohttp), exact "
        "(streaming/aiohttp_transport.py), or several",
    )
    reading.add_argument("--runs", type=int, default=1, help="runs of each, alternating")
    commands.add_parser("sizes", help="long conversations opened over a real socket")
    commands.add_parser("search", help="search over one user's 50 MB, without and with the index")
    commands.add_parser("render", help="the chat page drawing long Markdown answers (Chromium)")
    commands.add_parser("transfer", help="imports and exports of large conversations")
    commands.add_parser("post", help="posting one message into a long conversation")
    commands.add_parser("uploads", help="attaching files: photo and PDF uploads, pages meanwhile")
    commands.add_parser("relay", help="fixed-N answers through one daphne (200 tokens at 100/s)")
    profiling = commands.add_parser("profile", help="one daphne's CPU by component, per token")
    profiling.add_argument("--n", type=_numbers, default=(20, 100), help="socket counts")
    load = commands.add_parser("load", help="the relay load run: added latency per token")
    load.add_argument("--daphnes", type=_numbers, default=(1, 2), help="e.g. 1,2 (default)")
    for flag, words, about in [
        (
            "--layer",
            ("pubsub", "core"),
            "pubsub (RedisPubSubChannelLayer), core (RedisChannelLayer)",
        ),
        ("--loop", ("uvloop", "asyncio"), "the daphnes' event loop (UVLOOP)"),
        ("--local", ("off", "on"), "local delivery (STREAM_LOCAL_DELIVERY)"),
        ("--http", ("aiohttp", "httpcore"), "what reads the model's streams (OPENAI_HTTP)"),
    ]:
        # The first word is the default; several, comma-separated, are measured side by side.
        load.add_argument(
            flag, type=_words(*words), default=words[:1], help=f"{about}: {', '.join(words)}"
        )
    load.add_argument("--n", type=_numbers, default=None, help="socket counts, e.g. 1,20,100")
    load.add_argument("--max-n", type=int, default=500, help="the highest N to grow to")
    load.add_argument(
        "--people",
        action="store_true",
        help="each answer a user of its own (N people), not all one user's (N tabs)",
    )
    load.add_argument("--ramp", type=float, default=0.0, help="spread the sends over seconds")
    load.add_argument("--plot", type=Path, default=ROOT / "var" / "relay-load.png")
    args = parser.parse_args(argv)

    print(f"Python {platform.python_version()}, {platform.machine()}, {sys.platform}\n")
    if args.command in (None, "sse"):
        _two_columns(sse_rows())
    if args.command in (None, "search"):
        # Before anything else sets Django up: it must be on the benchmark's PostgreSQL.
        from bench import search

        _two_columns(search.run())
    if args.command in (None, "layers"):
        _two_columns(layer_rows())
    if args.command in (None, "upstream"):
        from bench import upstream

        if args.command == "upstream":
            _two_columns(upstream.run(ROOT / "var", args.transports, max(1, args.runs)))
        else:
            _two_columns(upstream.run(ROOT / "var"))
    if args.command in (None, "sizes"):
        from bench import sizes

        _two_columns(sizes.run(ROOT / "var"))
    if args.command is None:
        # In a process of its own: it configures Django on the bench's SQLite database, and
        # the load run below configures it on PostgreSQL.
        sys.stdout.flush()
        subprocess.run([sys.executable, "-m", "bench", "render"], check=True)
    if args.command == "render":
        from bench import render

        _two_columns(render.run())
    if args.command in (None, "transfer"):
        from bench import transfer

        _two_columns(transfer.run())
    if args.command in (None, "post"):
        from bench import posting

        _two_columns(posting.run())
    if args.command in (None, "uploads"):
        from bench import uploads

        _two_columns(uploads.run(ROOT / "var"))
    if args.command == "relay":
        from bench import relay

        _two_columns(relay.run())
    if args.command in (None, "profile"):
        from bench import profile

        _two_columns(profile.run(args.n if args.command else (20, 100)))
    if args.command is None:
        from bench.load import Config

        setups = [Config(1, "pubsub"), Config(2, "pubsub"), Config(1, "core")]
        return load_run(setups, None, 500, 0.0, DOCS_PLOT, "python -m bench")
    if args.command == "load":
        from bench.load import Config

        command = shlex.join(["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)])
        setups = [
            Config(n, layer, loop, args.people, local == "on", http)
            for http in args.http
            for local in args.local
            for loop in args.loop
            for layer in args.layer
            for n in args.daphnes
        ]
        return load_run(setups, args.n, args.max_n, args.ramp, args.plot, command)
    return 0


def layer_rows() -> list[tuple[str, str]]:
    import os

    import django

    from bench import layers
    from bench.stack import REDIS_URL

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret")
    django.setup()
    return layers.run(REDIS_URL)


def sse_rows() -> list[tuple[str, str]]:
    from bench import sse

    return sse.run()


def load_run(
    configs: list["Config"],
    counts: tuple[int, ...] | None,
    max_n: int,
    ramp: float,
    plot_path: Path,
    plot_command: str,
) -> int:
    """Run the load benchmark on every setup asked for; print its tables; draw the plot."""
    from bench import load
    from bench.plot import plot_load
    from bench.report import load_tables

    missing = load.services_missing()
    if missing:
        print(
            f"\n**Relay load run skipped**: {missing}. It needs PostgreSQL and Redis: start "
            "them, or point BENCH_DATABASE_URL and BENCH_REDIS_URL at them.",
            flush=True,
        )
        return 1
    results = load.run(configs, counts, max_n=max_n, ramp=ramp)
    plot_load(results, plot_path)
    shown = plot_path.relative_to(ROOT) if plot_path.is_relative_to(ROOT) else plot_path
    print()
    print(load_tables(results, plot_command, str(shown)))
    raw = ROOT / "var" / "bench-load.json"
    raw.write_text(
        json.dumps([dataclasses.asdict(row) for rows in results.values() for row in rows], indent=1)
    )
    return 0


def _two_columns(rows: list[tuple[str, str]]) -> None:
    print("| benchmark | result |")
    print("|---|---|")
    for what, figure in rows:
        print(f"| {what} | {figure} |", flush=True)


def _numbers(text: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,20,100, not {text!r}") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError("every number must be 1 or more")
    return numbers


def _words(*allowed: str) -> Callable[[str], tuple[Any, ...]]:
    """An argument parser for a comma-separated list of some of ``allowed``."""

    def parse(text: str) -> tuple[Any, ...]:
        chosen = tuple(text.split(","))
        if not set(chosen) <= set(allowed):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}; not {text!r}")
        return chosen

    return parse


if __name__ == "__main__":
    sys.exit(main())
