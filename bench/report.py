"""The load run as Markdown: the figures, where the cores went, and how to get each again."""

import os

from bench.load import BASE_N, HOLD_P99_MS, MODEL_DELAY, RATE, STEP_N, TOKENS, Config, Row


def load_tables(results: dict[Config, list[Row]], plot_command: str, plot_path: str) -> str:
    """Markdown for docs/performance.md: two tables and the commands behind them."""
    ramp = max(row.ramp_s for rows in results.values() for row in rows)
    sent = f"sent over {ramp:g} s" if ramp else "all sent at once"
    lines = [
        f"Each of N sockets streams one answer of {TOKENS} tokens at {RATE:g} tokens/s, {sent}. "
        "Added latency: when the socket read a token minus when the simulator wrote it. First "
        f"text: from sending to the first text, less the model's own {MODEL_DELAY * 1000:.0f} "
        "ms. Lost: tokens missing from the text the socket assembled. Server CPU: all daphne "
        "processes, in cores. The N clients share one event loop in the benchmark's process; "
        "the simulator has a process of its own.",
        "",
        "| setup | N | added p50 | added p99 | first text p50 | tokens lost | gaps healed "
        "| server CPU | peak RSS | wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config, rows in results.items():
        for row in rows:
            rss = " + ".join(f"{mib:.0f}" for mib in row.peak_rss_mib)
            lines.append(
                f"| {config.label} | {row.n} | {row.added_p50_ms:.0f} ms "
                f"| {row.added_p99_ms:.0f} ms | {row.first_text_p50_ms:.0f} ms "
                f"| {_lost(row)} | {row.gaps} | {row.cores['daphne']:.2f} | {rss} MiB "
                f"| {row.wall_s:.1f} s |"
            )
    cores = os.cpu_count() or 1
    lines += [
        "",
        "Where the cores went (in cores, over the same runs; Redis and PostgreSQL serve "
        "anything else on the machine too), and the first text's wait before the model "
        "answered (saving the message, calling the API):",
        "",
        "| setup | N | daphne | load client | simulator | Redis | PostgreSQL "
        f"| machine (of {cores}) | before upstream p50 | added max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config, rows in results.items():
        for row in rows:
            c = row.cores
            lines.append(
                f"| {config.label} | {row.n} | {c['daphne']:.2f} | {c['client']:.2f} "
                f"| {c['simulator']:.2f} | {c['redis']:.2f} | {c['postgres']:.2f} "
                f"| {c['machine']:.2f} | {row.before_upstream_p50_ms:.0f} ms "
                f"| {row.added_max_ms:.0f} ms |"
            )
    lines += ["", "Commands (add `--n 100` for one N alone):", ""]
    lines += [f"- {config.label}: `{config.command()}`" for config in results]
    lines.append(f"- the plot ({plot_path}): `{plot_command}`")
    lines += [
        "",
        f"Without `--n`, N runs {', '.join(map(str, BASE_N))}, then {STEP_N} more at a time "
        f"while p99 stays under {HOLD_P99_MS:.0f} ms and nothing is lost (`--max-n`).",
    ]
    return "\n".join(lines)


def _lost(row: Row) -> str:
    notes = []
    if row.unfinished:
        notes.append(f"{row.unfinished} answers unfinished")
    if row.mismatched:
        notes.append(f"{row.mismatched} texts differ from the saved ones")
    return f"{row.lost}" + (f" ({', '.join(notes)})" if notes else "")
