"""What one server process tells Prometheus about its answers: the metrics, and one small
function for each place that moves them.

Each daphne process keeps its own registry and is scraped on its own port (`GET /metrics`,
streaming/probes.py); Prometheus sums the processes. No multi-process mode: it would need a
shared directory of files, and gauges such as the sockets open make sense per process.
The registry is ours, not the library's global one, so nothing a dependency registers
there is served; the process collectors (CPU, memory, open files, GC) are added to it.
"""

import contextlib
import time
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from streaming.exceptions import (
    UpstreamError,
    UpstreamHTTPError,
)
from streaming.logs import AnswerTimings
from streaming.models import Message
from streaming.text import estimate_tokens

# No `_created` series beside each counter and histogram: they double what is scraped, and
# Prometheus's text format does not use them. (The library keeps this switch global.)
disable_created_metrics()  # type: ignore[no-untyped-call]

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# Waits people feel: from a fraction of a second to the longest retry wait and beyond.
_FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
# Whole answers: seconds to many minutes.
_ANSWER_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
# One batched UPDATE of every running answer: milliseconds when healthy.
_CHECKPOINT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

WEBSOCKET_CONNECTIONS = Gauge(
    "chatsite_websocket_connections",
    "Chat WebSockets this process has open now (accepted and not yet closed).",
    registry=REGISTRY,
)
ANSWERS_STREAMING = Gauge(
    "chatsite_answers_streaming",
    "Answers this process is streaming now.",
    registry=REGISTRY,
)
ANSWERS_FINISHED = Counter(
    "chatsite_answers_finished",
    "Answers this process ended and saved, by the status saved (complete, cancelled, error, "
    "interrupted). Answers the orphan sweep ended are in chatsite_sweep_interrupted_total.",
    ["status"],
    registry=REGISTRY,
)
FIRST_TOKEN_SECONDS = Histogram(
    "chatsite_upstream_time_to_first_token_seconds",
    "Seconds from asking the model API for an answer to its first text, retries included.",
    buckets=_FIRST_TOKEN_BUCKETS,
    registry=REGISTRY,
)
ANSWER_SECONDS = Histogram(
    "chatsite_answer_duration_seconds",
    "Seconds from an answer's start in this process to its ending saved, whatever the ending.",
    buckets=_ANSWER_BUCKETS,
    registry=REGISTRY,
)
TOKENS_RELAYED = Counter(
    "chatsite_tokens_relayed",
    "Answer tokens of the answers this process ended: the completion tokens the provider "
    "reported (for thinking models this includes reasoning tokens, which are not shown), or, "
    "when it reported none (a stop, a failure, a provider without usage), an estimate from "
    "the text relayed (characters / 4, as the daily budget estimates).",
    registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "chatsite_upstream_errors",
    "Failed requests to the model API, retried or not, by kind (http, connect, timeout, busy, "
    "protocol, stream) and HTTP status (none when the failure was not an HTTP reply).",
    ["kind", "status"],
    registry=REGISTRY,
)
UPSTREAM_RETRIES = Counter(
    "chatsite_upstream_retries",
    "Requests to the model API asked again before an answer's first token, by reason (the "
    "HTTP status, connect, or token_field when the API wanted the other max-tokens field).",
    ["reason"],
    registry=REGISTRY,
)
LAYER_SEND_FAILURES = Counter(
    "chatsite_channel_layer_send_failures",
    "Sends to the channel layer (answers' pieces, control requests, list updates) that failed "
    "or timed out; the sockets heal what they missed, but many mean Redis is in trouble.",
    registry=REGISTRY,
)
PIECES_SENT = Counter(
    "chatsite_answer_pieces",
    "Pieces of answers (deltas) this process sent: way=here went straight to its own "
    "sockets (no other process listened: STREAM_LOCAL_DELIVERY), way=redis through Redis.",
    ["way"],
    registry=REGISTRY,
)
CHECKPOINT_SECONDS = Histogram(
    "chatsite_checkpoint_write_seconds",
    "Seconds each batched checkpoint write (every running answer's new text) took.",
    buckets=_CHECKPOINT_BUCKETS,
    registry=REGISTRY,
)
SWEEP_INTERRUPTED = Counter(
    "chatsite_sweep_interrupted",
    "Answers this process's orphan sweep marked interrupted (their process stopped beating).",
    registry=REGISTRY,
)
ATTACHMENT_BYTES = Counter(
    "chatsite_attachment_bytes_stored",
    "Bytes of attached files this process stored (images as re-encoded).",
    registry=REGISTRY,
)
ATTACHMENTS_STORED = Counter(
    "chatsite_attachments_stored", "Files this process stored for messages.", registry=REGISTRY
)
ATTACHMENTS_REFUSED = Counter(
    "chatsite_attachments_refused",
    "Uploads refused, by reason: size, type, bomb, encoding, empty, unreadable, no_text, quota.",
    ["reason"],
    registry=REGISTRY,
)
ATTACHMENT_REASONS = ("size", "type", "bomb", "encoding", "empty", "unreadable", "no_text", "quota")
for _reason in ATTACHMENT_REASONS:
    ATTACHMENTS_REFUSED.labels(_reason)

# Every ending shows from the start, at 0, so rates work before the first of each kind.
for _status in Message.Status:
    if _status not in {Message.Status.PENDING, Message.Status.STREAMING}:
        ANSWERS_FINISHED.labels(_status.value)


def upstream_error(exc: UpstreamError) -> None:
    """Count one failed request to the model API."""
    status = str(exc.status_code) if isinstance(exc, UpstreamHTTPError) else "none"
    UPSTREAM_ERRORS.labels(exc.kind, status).inc()


def upstream_retry(exc: UpstreamError | None) -> None:
    """Count one request asked again; None: again with the other max-tokens field."""
    if exc is None:
        reason = "token_field"
    elif isinstance(exc, UpstreamHTTPError):
        reason = str(exc.status_code)
    else:
        reason = exc.kind
    UPSTREAM_RETRIES.labels(reason).inc()


def first_token(seconds: float) -> None:
    """An answer's first text arrived, ``seconds`` after the model API was first asked."""
    FIRST_TOKEN_SECONDS.observe(seconds)


class Running(Protocol):
    """What ``streaming`` reads of an answer (streaming.answer.Answer) once it ends."""

    message: Message
    #: The provider's (prompt tokens, completion tokens), or None if it sent none.
    usage: tuple[int, int] | None
    #: When it started, and how it went upstream (the log's figures too).
    timings: AnswerTimings


@contextlib.contextmanager
def streaming(answer: Running) -> Iterator[None]:
    """Around an answer's run: count it streaming, and once it ends, its ending.

    Only an ending this process saved counts: ``do_finish`` sets the saved status on the
    answer's message, which stays `streaming` when the answer was abandoned (swept,
    deleted) or its end could not be saved.
    """
    ANSWERS_STREAMING.inc()
    try:
        yield
    finally:
        ANSWERS_STREAMING.dec()
        message = answer.message
        if message.status != Message.Status.STREAMING:
            ANSWERS_FINISHED.labels(message.status).inc()
            ANSWER_SECONDS.observe(time.monotonic() - answer.timings.started)
            TOKENS_RELAYED.inc(relayed_tokens(message.content, answer.usage))


def relayed_tokens(content: str, usage: tuple[int, int] | None) -> int:
    """An ended answer's tokens: the provider's count, else the estimate of its text."""
    if usage is not None:
        return usage[1]
    return estimate_tokens(content) if content else 0


def socket_opened() -> None:
    """A chat socket was accepted."""
    WEBSOCKET_CONNECTIONS.inc()


def socket_closed() -> None:
    """A chat socket that was accepted closed."""
    WEBSOCKET_CONNECTIONS.dec()


def channel_layer_send_failed() -> None:
    """Count one send to the channel layer that failed or timed out."""
    LAYER_SEND_FAILURES.inc()


def piece_sent(here: bool) -> None:
    """Count one piece of an answer sent, straight to this process's sockets or not."""
    PIECES_SENT.labels(way="here" if here else "redis").inc()


@contextlib.contextmanager
def checkpoint_write() -> Iterator[None]:
    """Around one batched checkpoint write: its time goes into the histogram."""
    with CHECKPOINT_SECONDS.time():
        yield


def swept(count: int) -> None:
    """Count the answers one orphan sweep marked interrupted."""
    if count:
        SWEEP_INTERRUPTED.inc(count)


def attachment_stored(size: int) -> None:
    """Count one file stored, of ``size`` bytes."""
    ATTACHMENTS_STORED.inc()
    ATTACHMENT_BYTES.inc(size)


def attachment_refused(reason: str) -> None:
    """Count one upload refused, for ``reason`` (ATTACHMENT_REASONS)."""
    ATTACHMENTS_REFUSED.labels(reason).inc()
