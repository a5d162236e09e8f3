"""The protocol's words are defined once, on the server, and the page's copy is generated."""

import inspect
from typing import get_args

import pytest
from django.core.management import CommandError, call_command

from streaming import frames
from streaming.consumers import CLIENT_FRAMES, ChatConsumer
from streaming.exceptions import ChatError, ErrorCode
from streaming.management.commands import protocol_js


def test_the_committed_page_module_is_what_the_definitions_make() -> None:
    assert protocol_js.TARGET.read_text(encoding="utf-8") == protocol_js.render()


def test_a_stale_page_module_fails_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    stale = tmp_path / "protocol.js"
    stale.write_text(protocol_js.render().replace('"busy"', '"bsuy"'), encoding="utf-8")
    monkeypatch.setattr(protocol_js, "TARGET", stale)

    with pytest.raises(CommandError, match="is stale"):
        call_command("protocol_js", "--check")

    assert '"bsuy"' in stale.read_text(encoding="utf-8")  # the check writes nothing
    call_command("protocol_js")
    assert stale.read_text(encoding="utf-8") == protocol_js.render()


def test_every_client_frame_has_a_handler_of_its_name() -> None:
    assert set(get_args(frames.ClientFrame)) == CLIENT_FRAMES
    for frame_type in CLIENT_FRAMES:
        assert inspect.iscoroutinefunction(getattr(ChatConsumer, frame_type)), frame_type


def test_every_relayed_event_has_a_relaying_method() -> None:
    """The consumer relays group event ``chat.x`` by its method ``chat_x`` (channels routes
    a group message by its type so)."""
    for event in get_args(frames.PageEvent):
        (event_type,) = get_args(event.__annotations__["type"])
        assert inspect.iscoroutinefunction(getattr(ChatConsumer, event_type.replace(".", "_")))


def test_every_error_class_code_is_a_declared_code() -> None:
    classes = [ChatError]
    while classes:
        error = classes.pop()
        assert isinstance(error.code, ErrorCode), error
        classes += error.__subclasses__()


def test_close_codes_are_in_the_application_range() -> None:
    # RFC 6455 leaves 4000-4999 to applications; daphne's library sends nothing else.
    assert all(4000 <= close.value <= 4999 for close in frames.Close)
    assert len({close.value for close in frames.Close}) == len(frames.Close)
