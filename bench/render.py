"""The chat page drawing long Markdown answers as they stream: how busy its main thread is.

One real daphne (SQLite and the in-memory layer, as `make run` has it), the simulator
answering with its Markdown sample repeated to 15,000 and 100,000 characters
(`sim:markdown=1 sim:tokens=N`) at 300 pieces a second, and Debian's Chromium, headless,
on the real chat page. From sending the message until the answer is shown complete:

- busy: the main thread's time in tasks (Chrome's `TaskDuration`, read over the DevTools
  protocol's Performance domain every second) over the wall time: the mean, the means of
  the first and the last fifth of the seconds (a cost that grows with the answer shows as
  a last fifth busier than the first), and the worst one-second window;
- the long tasks the page itself saw (`PerformanceObserver('longtask')`, tasks of 50 ms or
  more): how many, and the longest.
"""

import itertools
import os
import statistics
import time
from typing import Any

from bench.relay import ROOT, rss_mib, setup_django
from streaming.simulator.text import repeated_markdown_tokens

RATE = 300
LENGTHS = (15_000, 100_000)
# What the page itself records of its long tasks, from before the message is sent.
WATCH_LONG_TASKS = """() => {
    window.benchLongTasks = [];
    new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) window.benchLongTasks.push(entry.duration);
    }).observe({ type: "longtask" });
}"""
ANSWER_DONE = """() => {
    const bubbles = document.querySelectorAll('.message--assistant');
    const last = bubbles[bubbles.length - 1];
    return last !== undefined && last.dataset.status === 'complete';
}"""


def tokens_for(characters: int) -> int:
    """How many of the simulator's Markdown tokens make an answer of `characters` or more."""
    length = 0
    for count, token in enumerate(repeated_markdown_tokens(), start=1):
        length += len(token)
        if length >= characters:
            return count
    raise AssertionError("unreachable: the tokens never end")


def run() -> list[tuple[str, str]]:
    """One row per answer length, and the daphne process's memory at the end."""
    env = setup_django()
    from django.contrib.auth.models import User
    from django.test import Client

    from streaming.models import Conversation
    from streaming.simulator import SimulatorThread
    from tests.support.browser import chromium, desktop_context, wait_until_connected
    from tests.support.servers import DaphneServer

    user, _ = User.objects.get_or_create(username="bench")
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    conversations = [Conversation.objects.create(owner=user) for _ in LENGTHS]
    rows = []
    with SimulatorThread(rate=RATE) as simulator:
        server = DaphneServer(
            # No limit on an answer's tokens: the longer answer is some 15,400 of them.
            {
                **os.environ,
                **env,
                "OPENAI_BASE_URL": simulator.base_url,
                "OPENAI_API_KEY": "",
                "OPENAI_MAX_TOKENS": "0",
            },
            ROOT / "var" / "bench-render-daphne.log",
        )
        try:
            with chromium() as browser:
                for characters, conversation in zip(LENGTHS, conversations, strict=True):
                    context = desktop_context(browser, server)
                    context.add_cookies([{"name": "sessionid", "value": cookie, "url": server.url}])
                    page = context.new_page()
                    page.goto(f"/c/{conversation.id}/")
                    wait_until_connected(page)
                    figures = stream_answer(page, context, tokens_for(characters))
                    context.close()
                    rows.append((f"{characters:,} characters at {RATE} pieces/s", figures))
            rows.append(("daphne RSS after both", f"{rss_mib(server.process.pid):.0f} MiB"))
        finally:
            server.stop()
    return rows


def stream_answer(page: Any, context: Any, tokens: int) -> str:
    """Send for an answer of `tokens` Markdown tokens and measure the page until it is shown."""
    devtools = context.new_cdp_session(page)
    devtools.send("Performance.enable")
    page.evaluate(WATCH_LONG_TASKS)
    composer = page.locator("#composer-input")
    composer.fill(f"Markdown sim:markdown=1 sim:tokens={tokens} sim:rate={RATE}")
    samples = [(time.perf_counter(), task_seconds(devtools))]
    composer.press("Enter")
    while not page.evaluate(ANSWER_DONE):
        page.wait_for_timeout(1000)  # one sample a second, however long the answer takes
        samples.append((time.perf_counter(), task_seconds(devtools)))
    samples.append((time.perf_counter(), task_seconds(devtools)))
    long_tasks = page.evaluate("window.benchLongTasks")
    shown = page.evaluate(
        "() => document.querySelector('.message--assistant .message-content').textContent.length"
    )
    seconds = [
        (busy - busy_before) / (now - before)
        for (before, busy_before), (now, busy) in itertools.pairwise(samples)
    ]
    fifth = max(1, len(seconds) // 5)
    (start, busy_start), (end, busy_end) = samples[0], samples[-1]
    return (
        f"busy {100 * (busy_end - busy_start) / (end - start):.0f}% "
        f"(first fifth {100 * statistics.mean(seconds[:fifth]):.0f}%, "
        f"last fifth {100 * statistics.mean(seconds[-fifth:]):.0f}%, "
        f"worst second {100 * max(seconds):.0f}%), "
        f"{len(long_tasks)} long tasks, longest {max(long_tasks, default=0):.0f} ms; "
        f"{end - start:.1f} s until shown complete, {shown:,} characters of text shown"
    )


def task_seconds(devtools: Any) -> float:
    """The main thread's time in tasks so far (Chrome's TaskDuration metric), in seconds."""
    metrics = devtools.send("Performance.getMetrics")["metrics"]
    return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))
