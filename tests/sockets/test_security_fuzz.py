"""Generated frames against the real consumer: whatever arrives, the socket survives it.

Hypothesis writes the frames: any JSON value, objects with the known `type`s and any other
fields, ids of another user's conversation, text with NUL and lone surrogates (escaped, and
raw as no real client could send them), huge strings, deep nesting, binary. They go through
the real ASGI application (origin check, session, router, consumer) to the real database.
After every frame the socket must still answer a `ping`, a refused frame must have written
no row and called the model for nothing, no reply may say anything of the other user's
conversation, and that conversation's rows must stay exactly as they were.
"""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from streaming.frames import ClientFrame
from streaming.models import Conversation, Message
from streaming.simulator import SimulatorThread
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

KNOWN_TYPES = sorted(get_args(ClientFrame))
FIELDS = [
    "content",
    "client_id",
    "parent_id",
    "message_id",
    "before",
    "after_seq",
    "system_prompt",
    "title",
    "provider_id",
    "model",
]
# Every code docs/protocol.md lists for a refused frame. `server_error` is not among them:
# expected bad input must never reach the safety net.
REFUSAL_CODES = {
    "bad_json",
    "frame_too_long",
    "unknown_type",
    "empty_content",
    "content_too_long",
    "bad_text",
    "bad_client_id",
    "busy",
    "bad_sync",
    "bad_stop",
    "bad_retry",
    "bad_continue",
    "bad_parent",
    "bad_switch",
    "bad_history",
    "system_prompt_too_long",
    "bad_system_prompt",
    "bad_title",
    "title_too_long",
    "bad_model",
    "unknown_model",
    "model_unavailable",
    "provider_key_unreadable",
}
SECRET = "mallory-secret-5be1"


@dataclass(frozen=True)
class World:
    """Our conversation, and another user's that no frame of ours may reach."""

    ours: Conversation
    theirs: Conversation
    ids: list[str]


@pytest.fixture
def world(user: User, other_user: User, settings: Any) -> World:
    # Every example shares this world, and answers pile up in it: the per-user limits,
    # which have tests of their own, would otherwise refuse frames by the run's speed.
    settings.LIMIT_MESSAGES_PER_MINUTE = 1_000_000
    settings.LIMIT_ANSWERS_PER_USER = 1_000_000
    settings.LIMIT_FRAMES_BURST = 1_000_000
    ours = Conversation.objects.create(owner=user)
    asked = Message.objects.create(conversation=ours, role="user", content="hello")
    answered = Message.objects.create(conversation=ours, role="assistant", content="hi")
    theirs = Conversation.objects.create(owner=other_user, title=SECRET, system_prompt=SECRET)
    their_messages = [
        Message.objects.create(conversation=theirs, role="user", content=SECRET),
        Message.objects.create(conversation=theirs, role="assistant", content=SECRET),
    ]
    ids = [str(theirs.id), *(str(m.id) for m in their_messages), str(asked.id), str(answered.id)]
    return World(ours, theirs, ids)


def their_rows(world: World) -> list[Any]:
    return [
        *Conversation.objects.filter(pk=world.theirs.pk).values(),
        *Message.objects.filter(conversation=world.theirs).order_by("created_at").values(),
    ]


# --- what a frame may hold -------------------------------------------------------------

ANY_CHARACTER = st.characters(exclude_categories=())  # lone surrogates included
AWKWARD = st.sampled_from(["\x00", "\ud800", "\udfff", "\U0001f600", "\n", '"', "\\", " "])
TEXT = st.text(ANY_CHARACTER, max_size=30) | st.text(AWKWARD, max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=8,
)


def huge_strings() -> st.SearchStrategy[str]:
    """Strings at and just past the limits, and past the frame limit."""
    sizes = [settings.MAX_MESSAGE_CHARS, settings.MAX_MESSAGE_CHARS + 1, settings.MAX_FRAME_CHARS]
    return st.sampled_from(sizes).map(lambda size: "x" * size)


def ids(world: World) -> st.SearchStrategy[str]:
    """Ids the server knows (ours and theirs, in the ways a UUID may be written) or not."""
    known = st.sampled_from(world.ids) | st.uuids().map(str)
    return known.flatmap(
        lambda value: st.sampled_from(
            [value, value.upper(), "{" + value + "}", value.replace("-", ""), value + "x"]
        )
    )


def field_values(world: World) -> st.SearchStrategy[Any]:
    return JSON_VALUES | ids(world) | huge_strings() | st.integers(-1, 50)


def typed_frames(world: World) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with a known `type`, some of the known fields and perhaps others."""
    return st.fixed_dictionaries(
        {"type": st.sampled_from(KNOWN_TYPES)},
        optional={
            **dict.fromkeys(FIELDS, field_values(world)),
            "other": JSON_VALUES,
        },
    )


def raw_frames(world: World) -> st.SearchStrategy[str | bytes]:
    """Whatever a socket can carry, from well-formed frames to noise."""
    typed = typed_frames(world)
    deep = st.integers(1, 3000)
    return st.one_of(
        typed.map(json.dumps),
        typed.map(lambda frame: json.dumps(frame, ensure_ascii=False)),  # raw surrogates
        st.dictionaries(TEXT, JSON_VALUES, max_size=4).map(json.dumps),
        st.builds(lambda t, f: json.dumps({"type": t, **f}), JSON_VALUES, typed),
        JSON_VALUES.map(json.dumps),
        st.text(ANY_CHARACTER, max_size=50),
        deep.map(lambda n: "[" * n + "]" * n),
        deep.map(lambda n: '{"type":' * n),
        st.builds(
            lambda t, f, n: f'{{"type": "{t}", "{f}": {"[" * n + "]" * n}}}',
            st.sampled_from(KNOWN_TYPES),
            st.sampled_from(FIELDS),
            deep,
        ),
        huge_strings(),
        st.binary(max_size=20),
    )


# --- the property ----------------------------------------------------------------------


def is_ping(raw: str | bytes) -> bool:
    """Whether the server takes ``raw`` for a `ping` (which it answers with a pong too)."""
    if isinstance(raw, bytes) or len(raw) > settings.MAX_FRAME_CHARS:
        return False
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(frame, dict) and frame.get("type") == "ping"


async def replies_until_pong(
    communicator: WebsocketCommunicator, pongs: int
) -> list[dict[str, Any]]:
    """Every frame the server sends up to its ``pongs``-th `pong`; fails on a close instead."""
    frames = []
    while pongs:
        output = await communicator.receive_output(timeout=10)
        assert output["type"] == "websocket.send", f"the socket was closed: {output}"
        frame = json.loads(output["text"])
        frames.append(frame)
        pongs -= frame["type"] == "pong"
    return frames


async def row_count() -> int:
    return await Conversation.objects.acount() + await Message.objects.acount()


def upstream_mark(simulator: SimulatorThread) -> tuple[int, int]:
    """Changes whenever the model is called (the simulator keeps the last 1000 requests)."""
    requests = simulator.requests
    return len(requests), id(requests[-1]) if requests else 0


@hypothesis_settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # the same frames on every run: CI is deterministic
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one world for all examples, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(data=st.data())
async def test_generated_frames_never_break_the_socket_or_reach_another_users_rows(
    data: st.DataObject,
    world: World,
    user: User,
    connect: Callable[..., Any],
    simulator: SimulatorThread,
) -> None:
    frames = data.draw(st.lists(raw_frames(world), min_size=1, max_size=4), label="frames")
    theirs_before = await their_rows_async(world)
    communicator = await connect(world.ours.id, user)
    try:
        for raw in frames:
            rows, upstream = await row_count(), upstream_mark(simulator)
            # As the server hands a frame to the application (send_to refuses empty ones).
            key = "bytes" if isinstance(raw, bytes) else "text"
            await communicator.send_input({"type": "websocket.receive", key: raw})
            # Frames are handled in order: the pong to this ping follows every reply to raw.
            await communicator.send_json_to({"type": "ping"})
            replies = await replies_until_pong(communicator, 2 if is_ping(raw) else 1)

            errors = [frame for frame in replies if frame["type"] == "error"]
            for error in errors:
                assert error["code"] in REFUSAL_CODES, error
                assert 0 < len(error["message"]) < 500, error
            assert SECRET not in json.dumps(replies)
            if errors:
                assert await row_count() == rows, (raw[:200], replies)
                assert upstream_mark(simulator) == upstream
            else:
                # An answer may have started: let it end, so the next frame starts afresh.
                await until(answers_ended, what="the answer ended")
    finally:
        await communicator.disconnect()
    assert await their_rows_async(world) == theirs_before


async def answers_ended() -> bool:
    return not await Message.objects.filter(status=Message.Status.STREAMING).aexists()


async def their_rows_async(world: World) -> list[Any]:
    return await sync_to_async(their_rows)(world)


def test_generated_frames_cover_every_known_type_and_field() -> None:
    """The strategy reaches what it claims to (a check of the test, not of the server)."""
    world = World(Conversation(), Conversation(), [str(uuid.uuid4())])
    seen: set[str] = set()

    @hypothesis_settings(max_examples=300, derandomize=True, database=None)
    @given(frame=typed_frames(world))
    def collect(frame: dict[str, Any]) -> None:
        seen.add(frame["type"])
        seen.update(frame)

    collect()
    assert set(KNOWN_TYPES) | set(FIELDS) <= seen
