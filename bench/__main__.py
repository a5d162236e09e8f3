"""Run every benchmark and print a Markdown table (paste it into docs/performance.md)."""

import platform
import sys

from bench import relay, sse


def main() -> None:
    print(f"Python {platform.python_version()}, {platform.machine()}, {sys.platform}\n")
    print("| benchmark | result |")
    print("|---|---|")
    for what, figure in [*sse.run(), *relay.run()]:
        print(f"| {what} | {figure} |", flush=True)


if __name__ == "__main__":
    main()
