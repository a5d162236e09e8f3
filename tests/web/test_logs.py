"""Logs: LOG_FORMAT=json gives one JSON object a line, answers' lines carry their ids and
timings, and no line ever holds message text or a key.

The end-to-end test runs a real daphne process on the test database with a real WebSocket
client; the others check the setting, the formatter and the answer's fields in-process.
"""

import functools
import importlib
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from streaming import exceptions, metrics
from streaming.exceptions import (
    ChatError,
    UpstreamBusy,
    UpstreamConnectError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamProtocolError,
    UpstreamStreamError,
    UpstreamTimeout,
)
from streaming.logs import (
    AnswerFields,
    JsonAccessLog,
    JsonFormatter,
    answer_context,
    describe,
    error_fields,
)
from streaming.models import Conversation, Message
from streaming.services.database import to_async
from streaming.simulator import SimulatorThread
from tests.support.frames import user_message
from tests.support.live import LiveClient
from tests.support.providers import KEY, make_provider
from tests.support.servers import DaphneServer
from tests.support.users import session_cookie
from tests.support.waiting import until

# What must never reach a log: what people wrote, what the model said, and the keys.
MARKER = "Quillwort-7731 zephyr"
SYSTEM_MARKER = "Obsidian-4420 instructions"
ENV_KEY = "sk-env-default-key-9d1e77"


@pytest.fixture
def keyed() -> Iterator[SimulatorThread]:
    """A model API that wants the provider's key, as a real one does."""
    with SimulatorThread(rate=0, tokens=12, api_key=KEY, models=["sim-large"]) as simulator:
        yield simulator


def json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of a process's output, each parsed as one JSON object (or the test fails)."""
    records = []
    for number, line in enumerate(log.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} of the log is not JSON: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


def answer_records(log: str, answer_id: Any) -> list[dict[str, Any]]:
    """The records of one answer, found by its id as an operator would."""
    return [r for r in json_lines(log) if r.get("answer_id") == str(answer_id)]


def has_ended(server: DaphneServer, answer_id: Any) -> bool:
    """Whether the process logged the end of the answer yet."""
    return any(" ended " in r["message"] for r in answer_records(server.log(), answer_id))


def ended(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The one "ended" record among an answer's records."""
    (end,) = [r for r in records if " ended " in r["message"]]
    return end


@pytest.mark.django_db(transaction=True)
async def test_json_logs_name_every_answer_and_never_hold_text_or_keys(
    live_servers: Callable[..., list[DaphneServer]], keyed: SimulatorThread, user: User
) -> None:
    provider = await sync_to_async(make_provider)(keyed)
    default = await Conversation.objects.acreate(owner=user, system_prompt=SYSTEM_MARKER)
    failing = await Conversation.objects.acreate(
        owner=user, provider=provider, model="sim-large", system_prompt=SYSTEM_MARKER
    )
    (server,) = live_servers(
        1, LOG_FORMAT="json", LOG_LEVEL="INFO", OPENAI_API_KEY=ENV_KEY, OPENAI_MAX_RETRIES="0"
    )
    cookie = await sync_to_async(session_cookie)(user)

    async with LiveClient(server, default.id, cookie) as client:
        await client.send(user_message(f"{MARKER} tell me about rivers"))
        done = await client.receive_until("done")
    async with LiveClient(server, failing.id, cookie) as client:
        # The provider names the model as the key it was sent, in its error message too.
        await client.send(user_message(f"{MARKER} again sim:status=404 sim:echokey=1"))
        failed = await client.receive_until("done")

    complete = await Message.objects.aget(pk=done["message_id"])
    error = await Message.objects.aget(pk=failed["message_id"])
    assert (complete.status, error.status) == ("complete", "error")
    assert MARKER in complete.content  # the simulator quotes the question: text to look for
    for answer in (complete, error):
        await until(
            functools.partial(has_ended, server, answer.pk),
            what=f"the end of answer {answer.pk} in the log",
        )

    log = server.log()
    records = json_lines(log)
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0)
    assert any(r["logger"] == "daphne.access" and "WSCONNECT" in r["message"] for r in records)
    loop = [r["message"] for r in records if r["logger"] == "chatsite.daphne"]
    assert loop == ["Event loop: uvloop.Loop"]  # said once, at start, as a record too

    end = ended(answer_records(log, complete.pk))
    assert end["level"] == "INFO"
    assert end["conversation_id"] == str(default.pk)
    assert end["user_id"] == user.pk
    assert (end["provider"], end["model"]) == ("Default", "simulated")
    assert (end["status"], end["finish_reason"], end["attempts"]) == ("complete", "stop", 1)
    assert end["completion_tokens"] == complete.completion_tokens
    assert 0 <= end["ttft_ms"] <= end["duration_ms"]
    assert "upstream_status" not in end

    failure = answer_records(log, error.pk)
    end = ended(failure)
    assert end["conversation_id"] == str(failing.pk)
    assert end["user_id"] == user.pk
    assert (end["provider"], end["model"]) == ("Second", "sim-large")
    assert (end["status"], end["upstream_status"], end["error"]) == ("error", 404, "upstream_http")
    assert end["error_kind"] == "http"
    assert "ttft_ms" not in end  # no token came
    (warning,) = [r for r in failure if r["level"] == "WARNING"]
    assert "failed upstream" in warning["message"]
    assert warning["upstream_status"] == 404

    assert "[redacted]" in error.error  # the provider did echo the key (kept out of the row)
    for secret in (MARKER, SYSTEM_MARKER, complete.content, KEY, ENV_KEY):
        assert secret not in log


def test_log_format_is_plain_unless_set_to_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import chatsite.settings

    def formatter() -> Any:
        handlers: Any = chatsite.settings.LOGGING["handlers"]
        return handlers["console"]["formatter"]

    try:
        assert formatter() == "plain"
        monkeypatch.setenv("LOG_FORMAT", " JSON ")
        importlib.reload(chatsite.settings)
        assert chatsite.settings.LOG_FORMAT == "json"
        assert formatter() == "json"
        monkeypatch.setenv("LOG_FORMAT", "xml")
        with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT must be plain or json"):
            importlib.reload(chatsite.settings)
    finally:
        monkeypatch.undo()
        importlib.reload(chatsite.settings)


def formatted(record: logging.LogRecord) -> dict[str, Any]:
    """``record`` as the JSON console handler writes it, answer fields included."""
    AnswerFields().filter(record)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    result: dict[str, Any] = json.loads(line)
    return result


def make_record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "streaming.answer", logging.WARNING, __file__, 1, message, args, None
    )
    record.__dict__.update(extra)
    return record


def test_json_line_has_time_level_logger_message_first() -> None:
    record = formatted(make_record("Answer %s ended", "a1", status="complete"))

    assert list(record)[:4] == ["time", "level", "logger", "message"]
    assert record["level"] == "WARNING"
    assert record["logger"] == "streaming.answer"
    assert record["message"] == "Answer a1 ended"
    assert record["status"] == "complete"
    assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0)
    assert "exception" not in record


def test_json_line_carries_the_traceback_as_one_field() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = make_record("failed")
        record.exc_info = sys.exc_info()

    line = formatted(record)

    assert line["exception"].startswith("Traceback")
    assert "RuntimeError: boom" in line["exception"]


def test_json_line_leaves_out_the_request_object() -> None:
    class Request:
        def __str__(self) -> str:
            return "<ASGIRequest: GET '/conversations/?q=private+words'>"

    record = formatted(
        make_record("Not Found: /conversations/", request=Request(), status_code=404)
    )

    assert record["status_code"] == 404
    assert "request" not in record
    assert "private" not in json.dumps(record)


# A database thread closes its old connection around each call: whether this worker's
# thread has one depends on the tests before, so this test may touch the database.
@pytest.mark.django_db
async def test_records_in_an_answers_context_carry_its_fields() -> None:
    fields = {"answer_id": "a1", "conversation_id": "c1", "user_id": 7, "provider": "P"}

    with answer_context(fields):
        inside = formatted(make_record("inside"))
        given = formatted(make_record("own", provider="given"))
        # The services the answer calls run on database threads: their lines name it too.
        threaded = await to_async(formatted)(make_record("in a database thread"))
    outside = formatted(make_record("outside"))

    assert {key: inside[key] for key in fields} == fields
    assert {key: threaded[key] for key in fields} == fields
    assert given["provider"] == "given"  # a field the call gave itself wins
    assert not fields.keys() & outside.keys()


def test_upstream_errors_are_logged_by_kind_not_by_their_text() -> None:
    error = UpstreamHTTPError(400, f"Invalid content: '{MARKER}'")

    assert error_fields(error) == {
        "error": "upstream_http",
        "error_kind": "http",
        "upstream_status": 400,
    }
    assert describe(error) == "upstream_http 400"
    assert error_fields(ValueError(MARKER)) == {"error": "ValueError"}


def test_the_logs_and_the_metrics_name_an_upstream_failure_alike() -> None:
    failures: list[UpstreamError] = [
        UpstreamHTTPError(503, "Unavailable"),
        UpstreamConnectError("Refused"),
        UpstreamTimeout("Silent"),
        UpstreamBusy("Busy"),
        UpstreamProtocolError("Unreadable"),
        UpstreamStreamError("Failed mid-stream"),
    ]
    for failure in failures:
        status = "503" if isinstance(failure, UpstreamHTTPError) else "none"
        labels = {"kind": failure.kind, "status": status}
        before = metrics.REGISTRY.get_sample_value("chatsite_upstream_errors_total", labels) or 0

        metrics.upstream_error(failure)

        counted = metrics.REGISTRY.get_sample_value("chatsite_upstream_errors_total", labels)
        assert counted == before + 1, failure
        assert error_fields(failure)["error_kind"] == failure.kind
    # The label values the metric's help and the README document.
    assert [failure.kind for failure in failures] == [
        "http",
        "connect",
        "timeout",
        "busy",
        "protocol",
        "stream",
    ]


def test_every_error_class_has_a_kind_of_its_own() -> None:
    classes = [
        value
        for value in vars(exceptions).values()
        if isinstance(value, type) and issubclass(value, ChatError)
    ]
    assert len(classes) == 23
    for cls in classes:
        assert "kind" in vars(cls), cls  # not inherited: a new class must choose one
    assert len({cls.kind for cls in classes}) == len(classes)


def test_access_log_is_records_without_query_strings(caplog: pytest.LogCaptureFixture) -> None:
    access = JsonAccessLog(io.StringIO())
    details = {"method": "GET", "path": "/conversations/?q=private+words", "client": "1.2.3.4:5"}

    with caplog.at_level(logging.INFO, logger="daphne.access"):
        access("http", "complete", {**details, "status": 200, "size": 512})
        access("websocket", "connected", {"path": "/ws/conversations/c1/", "client": "1.2.3.4:5"})
        access("websocket", "unknown-event", {"path": "/x", "client": "1.2.3.4:5"})

    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["GET /conversations/", "WSCONNECT /ws/conversations/c1/"]
    assert (caplog.records[0].status, caplog.records[0].size) == (200, 512)  # type: ignore[attr-defined]
    assert "private" not in caplog.text
