"""Where a daphne's CPU goes while it relays answers: a budget per component.

The load run's setup (bench/load.py: one daphne, the Pub/Sub layer, PostgreSQL, N sockets
of one answer each, 150 stamped tokens at 50 tokens/s), with py-spy sampling the daphne
process from outside while the answers stream: every sample is the stack of the thread
that held the GIL at that moment (``--gil``), so the samples count the Python work of all
its threads, the event loop's and the database threads'. Each sample goes to the first
component (COMPONENTS, in order) that a frame of its stack names: starting an answer,
ending it (saving it, the storage count, the list update), checkpoints, the layer's send,
the user's list updates, the sockets' reads and writes (daphne, autobahn, twisted), the
layer's receive and channels' dispatch, reading the model's stream, the answer's own
code; what names none is the database's other work, the event loop itself or "other". A
component's samples over the sampling rate, divided by the tokens delivered (or the
answers, for starting and ending them), is its cost per token (per answer).

Sampling does not stop the process (``--nonblocking``), so it perturbs what it measures
little; the figures are a budget, not a stopwatch: compare components within one run.
"""

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import load

ROOT = Path(__file__).resolve().parent.parent
RATE = 250
"""Samples a second."""

# (component, what a frame's "function (file:line)" text contains), in order of priority:
# a sample is the first component any frame of its stack names (an answer's start that
# writes to a socket is the start's; a delta's handler writing is the socket's). GENERIC
# only when none does: ORM work under a checkpoint is the checkpoint's.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    (
        "answer start",
        (
            "user_message (streaming/consumers.py",
            "runtime.py:begin",
            "_start_answer",
            "do_post_user_message",
            "streaming/services/context.py",
            "streaming/services/quotas.py",
            "Runtime.start_answer",
            "room (",
        ),
    ),
    ("answer end", ("do_finish", "streaming/ending.py", "Answer._end")),
    ("checkpoints", ("checkpoint", "_sweep", "streaming/services/answers.py")),
    (
        "layer send",
        (
            "RedisPubSubLoopLayer.group_send",
            "RedisPubSubLoopLayer.send",
            "RedisChannelLayer.group_send",
            "RedisChannelLayer.send ",
            "streaming/layer.py",
        ),
    ),
    ("list updates", ("chat_conversation_changed", "chat_conversation_removed")),
    ("sockets (daphne, autobahn)", ("daphne/", "autobahn/", "txaio/", "twisted/")),
    (
        "layer receive, dispatch",
        (
            "channels_redis/",
            "channels/consumer.py",
            "channels/utils.py",
            "channels/generic/",
            "streaming/consumers.py",
            "redis/",
            "msgpack",
        ),
    ),
    (
        "reading the model",
        (
            "httpcore/",
            "h11/",
            "httpx/",
            "anyio/",
            "sniffio/",
            "streaming/openai.py",
            "streaming/sse.py",
            "Answer._stream",
            "Answer._apply",
            "Answer._read",
        ),
    ),
    ("the answer's own", ("streaming/answer.py", "streaming/control.py")),
]
GENERIC: list[tuple[str, tuple[str, ...]]] = [
    ("database, other", ("django/", "psycopg", "asgiref/", "concurrent/futures")),
    ("event loop", ("asyncio/", "selectors.py", "uvloop")),
]
PER_ANSWER = {"answer start", "answer end"}
# The frames that run the loop: asyncio's step, or (uvloop's being compiled, not seen)
# the twisted reactor's run and the loop's run_forever under it.
LOOP_FRAMES = ("BaseEventLoop._run_once", "AsyncioSelectorReactor.run", "BaseEventLoop.run_forever")


@dataclass
class Budget:
    """The samples of one profiled run, by component."""

    n: int
    tokens: int
    samples: Counter[str]
    daphne_cores: float
    p99_ms: float

    def rows(self) -> list[tuple[str, str]]:
        total = sum(self.samples.values()) or 1
        rows = []
        for name in [*(c for c, _ in COMPONENTS + GENERIC), "other"]:
            cpu = self.samples[name] / RATE
            per = (
                f"{cpu / self.n * 1e3:.1f} ms per answer"
                if name in PER_ANSWER
                else (f"{cpu / max(self.tokens, 1) * 1e6:.0f} µs per token")
            )
            rows.append((f"N={self.n}: {name}", f"{per} ({self.samples[name] / total:.0%})"))
        cpu_all = total / RATE / max(self.tokens, 1) * 1e6
        rows.append(
            (
                f"N={self.n}: all sampled",
                f"{cpu_all:.0f} µs per token; daphne {self.daphne_cores:.2f} cores, "
                f"p99 added {self.p99_ms:.0f} ms",
            )
        )
        return rows


def classify(stack: list[str]) -> str:
    """The component of one sampled stack (outermost frame first)."""
    # The frames around the loop's step (daphne's start, twisted's reactor, the loop's run)
    # are under every stack of the main thread: only what the step ran tells the work.
    steps = [i for i, frame in enumerate(stack) if frame.startswith(LOOP_FRAMES)]
    inner = stack[steps[-1] + 1 :] if steps else stack
    if steps and not inner:
        return "event loop"  # its own work: uvloop's, compiled, shows no frame of its own
    for rules in (COMPONENTS, GENERIC):
        for name, marks in rules:
            if any(mark in frame for frame in inner for mark in marks):
                return name
    return "other"


def read_raw(path: Path) -> Counter[str]:
    """py-spy's raw output (``frame;frame;… count`` lines) counted by component."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            counts[classify(stack.split(";"))] += int(count)
    return counts


@contextmanager
def sampling(pid: int, output: Path) -> Iterator[None]:
    """py-spy records ``pid`` until the block ends."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is missing: pip install -r requirements-bench.txt")
    process = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(RATE),
            "--format",
            "raw",
            "--gil",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
        if process.returncode not in (0, -signal.SIGINT) and not output.exists():
            raise SystemExit(f"py-spy failed: {errors.decode(errors='replace')}")


def run(counts: tuple[int, ...]) -> list[tuple[str, str]]:
    """Profile one daphne at each N; the budget's rows."""
    rows: list[tuple[str, str]] = []
    out = ROOT / "var"
    for n in counts:
        raw = out / f"bench-profile-{n}.txt"
        raw.unlink(missing_ok=True)

        @contextmanager
        def observe(pids: list[int], raw: Path = raw) -> Iterator[None]:
            with sampling(pids[0], raw):
                yield

        results = load.run([load.Config(1, "pubsub")], (n,), observe=observe)
        row = next(iter(results.values()))[0]
        budget = Budget(
            n=n,
            tokens=n * load.TOKENS - row.lost,
            samples=read_raw(raw),
            daphne_cores=row.cores["daphne"],
            p99_ms=row.added_p99_ms,
        )
        rows += budget.rows()
        print(f"raw samples: {raw.relative_to(ROOT)}", file=sys.stderr, flush=True)
    return rows
