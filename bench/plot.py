"""The load run as a picture: p99 added latency and server CPU against N, per setup."""

import os
from pathlib import Path

from bench.load import RATE, TOKENS, Config, Row

TARGETS = ((100, 150.0), (200, 300.0))
"""(N, p99 added latency in ms) the relay is meant to stay under."""


def plot_load(results: dict[Config, list[Row]], path: Path) -> None:
    """Write a PNG of every setup's rows to `path`."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure, (latency, cpu) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for config, rows in results.items():
        counts = [row.n for row in rows]
        latency.plot(counts, [row.added_p99_ms for row in rows], marker="o", label=config.label)
        (line,) = cpu.plot(
            counts, [row.cores["daphne"] for row in rows], marker="o", label=config.label
        )
        # The whole machine too: a server short of CPU looks different from one that waits.
        cpu.plot(
            counts,
            [row.cores["machine"] for row in rows],
            linestyle=":",
            color=line.get_color(),
        )
    latency.plot(
        [n for n, _ in TARGETS],
        [ms for _, ms in TARGETS],
        linestyle="none",
        marker="*",
        markersize=12,
        color="black",
        label="target",
    )
    latency.set_yscale("log")
    latency.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    latency.yaxis.set_minor_formatter(NullFormatter())
    latency.set_title("p99 latency added per token")
    latency.set_ylabel("ms (log scale)")
    cores = os.cpu_count() or 1
    cpu.axhline(cores, color="grey", linestyle="--", linewidth=1, label="all the machine's cores")
    cpu.set_title("CPU: all daphne processes (dotted: the whole machine)")
    cpu.set_ylabel("cores")
    cpu.set_ylim(0, cores * 1.1)
    for axes in (latency, cpu):
        axes.set_xlabel("concurrent answers (N)")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(
        f"Relay under load: one answer per socket, {TOKENS} tokens at {RATE:g} tokens/s each"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
