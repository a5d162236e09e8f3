"""Log records as JSON lines (LOG_FORMAT=json), and the fields that name an answer.

Every record logged while an answer runs, by the answer itself or by what it calls (the
model API client, the services, the channel layer), carries the answer's ids, its user,
provider and model: ``answer_context`` holds them for the answer's task, and the console
handler's ``AnswerFields`` filter copies them onto each record. So an operator finds every
line of one answer by its ``answer_id``, whatever logger wrote it. In the plain format the
fields do not show; in JSON they are keys.

Records carry ids, names, statuses and timings, never text: no message bodies (the user's,
the answer's, a system prompt), no keys, and no provider error text, which may echo either.
One exception, which holds no conversation: a provider's reply to the admin's "Fetch
models" that was not a list of models is logged (its start, the key taken out), because
staff are never shown it (``model_list.list_models``).
"""

import contextlib
import contextvars
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from streaming.exceptions import ChatError, UpstreamHTTPError

# The fields of the answer whose task is running, if any.
_answer_fields: contextvars.ContextVar[Mapping[str, object] | None] = contextvars.ContextVar(
    "answer_log_fields", default=None
)

# The keys every JSON line starts with, in this order; the record's other fields follow.
_FIRST_KEYS = ("time", "level", "logger", "message")


@contextlib.contextmanager
def answer_context(fields: Mapping[str, object]) -> Iterator[None]:
    """Within this block (and the tasks and threads it starts), records carry ``fields``."""
    token = _answer_fields.set(dict(fields))
    try:
        yield
    finally:
        _answer_fields.reset(token)


class AnswerFields(logging.Filter):
    """Adds the running answer's fields to every record logged in its context."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_answer_fields.get() or {}).items():
            # A field the call gave itself (``extra=``) wins over the context's.
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(BaseJsonFormatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, message, the exception's
    traceback as ``exception`` when there is one, and the fields the record carries."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            timestamp="time",
            # Django's request log passes the request object, whose text would carry the
            # query string (a search, say): the path is in the message already.
            reserved_attrs=[*RESERVED_ATTRS, "request"],
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        first = {key: log_data.pop(key) for key in _FIRST_KEYS if key in log_data}
        return {**first, **log_data}


def error_fields(exc: BaseException) -> dict[str, object]:
    """What a log line may say of a failure: its code and kind (the kind the metrics
    label it with, streaming/exceptions.py) and upstream status, not its text.

    A provider's error message can quote what it was sent (the conversation) and an
    unreadable stream's error quotes what the model said, so neither is logged; the
    answer's row keeps the message, for staff to read in the admin.
    """
    if not isinstance(exc, ChatError):
        return {"error": type(exc).__name__}
    fields: dict[str, object] = {"error": exc.code, "error_kind": exc.kind}
    if isinstance(exc, UpstreamHTTPError):
        fields["upstream_status"] = exc.status_code
    return fields


def describe(exc: BaseException) -> str:
    """``error_fields`` as words, for the message of a plain line: "upstream_http 429"."""
    fields = error_fields(exc)
    return " ".join(str(value) for key, value in fields.items() if key != "error_kind")


@dataclass
class AnswerTimings:
    """How one answer went upstream, for its log lines: attempts, status, timings."""

    #: When the answer started, on the monotonic clock.
    started: float = field(default_factory=time.monotonic)
    #: When the model API was first asked (the time to first token counts from it).
    asked: float | None = None
    #: When its first piece of text came from the model (None: none yet).
    first_token: float | None = None
    #: Requests made to the model API (the first one and every retry).
    attempts: int = 0
    #: The HTTP status the last request failed with (None: it did not, or not with one).
    upstream_status: int | None = None

    def attempt(self) -> None:
        """A request to the model API is about to be made."""
        self.attempts += 1
        self.upstream_status = None

    def ask(self) -> None:
        """The answer is about to ask the model API, for the first time."""
        self.asked = time.monotonic()

    def token(self) -> float:
        """The first piece of text arrived: the time to first token, in seconds, retries
        included (the metric's, and ``ttft_ms`` of the log)."""
        self.first_token = time.monotonic()
        return self.first_token - (self.asked or self.started)

    def fields(self) -> dict[str, object]:
        """The timings so far, as log fields (``ttft_ms`` once a token came)."""
        now = time.monotonic()
        found: dict[str, object] = {
            "attempts": self.attempts,
            "duration_ms": round((now - self.started) * 1000),
        }
        if self.first_token is not None:
            found["ttft_ms"] = round((self.first_token - (self.asked or self.started)) * 1000)
        if self.upstream_status is not None:
            found["upstream_status"] = self.upstream_status
        return found


class JsonAccessLog:
    """daphne's access log as log records (logger ``daphne.access``), so that in JSON mode
    every line the process writes is JSON; daphne itself writes plain lines to stdout.

    The query string is left out of the path: it can hold what someone searched for.
    """

    logger = logging.getLogger("daphne.access")

    def __init__(self, stream: object = None) -> None:
        pass  # daphne hands it the stream it would have written to; records go to logging

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        path = str(details.get("path", "")).split("?", 1)[0]
        if protocol == "http" and action == "complete":
            request = f"{details.get('method', '')} {path}"
            fields = {"status": details.get("status"), "size": details.get("size")}
        elif protocol == "websocket" and action in _WEBSOCKET_ACTIONS:
            request = f"{_WEBSOCKET_ACTIONS[action]} {path}"
            fields = {}
        else:
            return
        self.logger.info(request, extra={"client": details.get("client"), **fields})


# daphne's names for WebSocket events in its access log.
_WEBSOCKET_ACTIONS = {
    "connecting": "WSCONNECTING",
    "rejected": "WSREJECT",
    "connected": "WSCONNECT",
    "disconnected": "WSDISCONNECT",
}


def route_daphne_access_log() -> None:
    """Under daphne's command line, send its access log through logging (JSON mode).

    daphne builds its access log after it has loaded the application, from the name
    ``AccessLogGenerator`` in its command-line module: replacing that name here, while the
    application loads, is the one hook it offers. Elsewhere this does nothing.
    """
    cli = sys.modules.get("daphne.cli")
    if cli is not None:
        cli.AccessLogGenerator = JsonAccessLog  # type: ignore[attr-defined]


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """Django's LOGGING: one console handler in ``log_format`` ("plain" lines for people,
    "json" objects for a collector), naming the answer a line is about; chatsite's own
    loggers at ``level``, everything else at WARNING."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"answer": {"()": "streaming.logs.AnswerFields"}},
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json": {"()": "streaming.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["answer"],
            }
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
        "loggers": {
            "streaming": {"level": level},
            # The process's start: which event loop it runs on (chatsite/daphne.py).
            "chatsite": {"level": level},
            # daphne's access log, which goes through logging in JSON mode (chatsite/asgi.py).
            "daphne.access": {"level": "INFO"},
            # Its warnings about a damaged PDF may quote the file, and a file is never logged;
            # what it cannot read, streaming/intake.py refuses, saying so.
            "pypdf": {"level": "ERROR"},
        },
    }
