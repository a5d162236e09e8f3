"""Continue: an answer cut off at its length limit goes on in the same answer, streamed and
counted like any answer; what cannot be continued is refused, having written nothing.

Over the real ASGI application, the database (PostgreSQL when the run has it) and the
simulator, which continues a trailing assistant message (streaming/simulator/answer.py).
"""

import uuid
from collections.abc import Callable
from datetime import timedelta
from itertools import islice
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.utils import timezone

from streaming.models import Continuation, Conversation, Message
from streaming.services import context, continuation, quotas, storage
from streaming.services.answers import do_sweep_orphans
from streaming.simulator import SimulatorThread
from streaming.simulator.text import answer_tokens
from tests.support.assembler import Assembler
from tests.support.frames import receive_until, user_message

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[..., Any]


def uncut(prompt: str, tokens: int) -> str:
    """The simulator's whole answer to ``prompt`` (its words without `sim:` ones)."""
    return "".join(islice(answer_tokens(prompt), tokens))


def sent_for(simulator: SimulatorThread, marker: str) -> list[list[dict[str, str]]]:
    """The `messages` of every request whose first message holds ``marker``."""
    return [r["messages"] for r in simulator.requests if marker in r["messages"][0]["content"]]


async def follow(communicator: WebsocketCommunicator, assembler: Assembler) -> list[dict[str, Any]]:
    """Every frame up to the next `done`, fed to ``assembler`` (its requests answered)."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != "done":
        frame = await communicator.receive_json_from(timeout=10)
        frames.append(frame)
        request = assembler.feed(frame)
        if request is not None:
            await communicator.send_json_to(request)
    return frames


async def go_on(communicator: WebsocketCommunicator, message_id: str) -> None:
    await communicator.send_json_to({"type": "continue_answer", "message_id": message_id})


async def rows(conversation: Conversation) -> list[tuple[Any, ...]]:
    """Every message of the conversation as it is stored, for a before-and-after."""
    fields = ("id", "status", "content", "seq", "error", "finish_reason", "updated_at")
    return [m async for m in conversation.messages.order_by("created_at").values_list(*fields)]


async def test_continue_goes_on_in_the_same_answer_until_the_model_ends_it(
    connect: Connect,
    conversation: Conversation,
    user: User,
    simulator: SimulatorThread,
    settings: Any,
) -> None:
    settings.OPENAI_MAX_TOKENS = 10
    marker = uuid.uuid4().hex
    communicator = await connect(conversation.id, user)
    assembler = Assembler()
    assembler.feed(communicator.snapshot)
    await communicator.send_json_to(user_message(f"long {marker} sim:tokens=25 sim:rate=0"))
    first = (await follow(communicator, assembler))[-1]

    cut = first["message"]
    assert (first["status"], first["finish_reason"]) == ("complete", "length")
    assert (
        first["error"]
        == "The answer reached the length limit of one reply (10 tokens) and stopped here."
    )
    assert cut["continuable"] is True

    await go_on(communicator, first["message_id"])
    frames = await follow(communicator, assembler)
    start, second = frames[0], frames[-1]
    # The same answer streams on from its stored text; its deltas are numbered on.
    assert (start["type"], start["message_id"]) == ("start", first["message_id"])
    assert (start["seq"], start["text"]) == (first["seq"], cut["content"])
    deltas = [f["seq"] for f in frames if f["type"] == "delta"]
    assert deltas == list(range(first["seq"] + 1, second["seq"] + 1))
    assert second["message_id"] == first["message_id"]
    assert second["message"]["content"].startswith(cut["content"])
    assert (second["finish_reason"], second["message"]["continuable"]) == ("length", True)

    await go_on(communicator, first["message_id"])
    third = (await follow(communicator, assembler))[-1]
    await communicator.disconnect()

    whole = uncut(f"long {marker}", 25)
    assert (third["status"], third["finish_reason"], third["error"]) == ("complete", "stop", "")
    assert third["message"]["continuable"] is False
    assert third["message"]["content"] == whole
    assert assembler.text[first["message_id"]] == whole
    assert assembler.mismatches == assembler.unknown == 0
    # The model was sent the question, then the answer so far as the assistant's message.
    question = {"role": "user", "content": f"long {marker} sim:tokens=25 sim:rate=0"}
    assert sent_for(simulator, marker) == [
        [question],
        [question, {"role": "assistant", "content": cut["content"]}],
        [question, {"role": "assistant", "content": second["message"]["content"]}],
    ]
    # One answer, no version: its usage is its three parts', each part counted apart.
    assert await conversation.messages.acount() == 2
    saved = await Message.objects.aget(pk=first["message_id"])
    assert (saved.content, saved.status, saved.seq) == (whole, "complete", third["seq"])
    parts = [c async for c in Continuation.objects.filter(message=saved).order_by("started_at")]
    assert [c.chars for c in parts] == [
        len(second["message"]["content"]) - len(cut["content"]),
        len(whole) - len(second["message"]["content"]),
    ]
    assert [c.completion_tokens for c in parts] == [10, 5]
    assert saved.completion_tokens == 25
    assert saved.prompt_tokens == cut["usage"]["prompt_tokens"] + sum(
        c.prompt_tokens or 0 for c in parts
    )
    assert third["usage"]["total_tokens"] == cut["usage"]["total_tokens"] + sum(
        (c.prompt_tokens or 0) + (c.completion_tokens or 0) for c in parts
    )
    # The storage count holds the whole answer, once.
    used = await sync_to_async(storage.used)(user.pk)
    assert used == await sync_to_async(storage.recount)(user.pk)


async def test_continue_refuses_what_is_not_a_cut_off_answer_of_the_conversation(
    connect: Connect,
    conversation: Conversation,
    user: User,
    other_user: User,
    simulator: SimulatorThread,
    settings: Any,
) -> None:
    settings.OPENAI_MAX_TOKENS = 5
    marker = uuid.uuid4().hex
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message(f"one {marker} sim:tokens=20 sim:rate=0"))
    followed = (await receive_until(communicator, "done"))[-1]
    await communicator.send_json_to(user_message(f"two {marker} sim:tokens=3 sim:rate=0"))
    finished = (await receive_until(communicator, "done"))[-1]
    assert followed["message"]["continuable"] is True  # cut off, but a message follows it
    assert finished["finish_reason"] == "stop"
    imported = await Message.objects.acreate(
        conversation=conversation,
        parent_id=finished["message_id"],
        role="assistant",
        content="cut off elsewhere",
        finish_reason="length",
        imported=True,
    )
    theirs = await Conversation.objects.acreate(owner=other_user)
    their_answer = await Message.objects.acreate(
        conversation=theirs, role="assistant", content="cut", finish_reason="length"
    )
    before, theirs_before = await rows(conversation), await rows(theirs)
    leaf = (await Conversation.objects.aget(pk=conversation.pk)).leaf_id
    requests = len(simulator.requests)

    targets = {
        "followed": followed["message_id"],
        "finished": finished["message_id"],
        "question": finished["message"]["parent_id"],
        "imported": str(imported.pk),
        "theirs": str(their_answer.pk),
        "unknown": str(uuid.uuid4()),
        "not a uuid": "not-a-uuid",
        "null": None,
        "number": 7,
    }
    for name, message_id in targets.items():
        await go_on(communicator, message_id)
        error = await communicator.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", "bad_continue"), name
    await communicator.disconnect()

    assert await rows(conversation) == before
    assert await rows(theirs) == theirs_before
    assert not await Continuation.objects.aexists()
    assert (await Conversation.objects.aget(pk=conversation.pk)).leaf_id == leaf
    assert len(simulator.requests) == requests


async def test_continue_while_an_answer_streams_is_busy_and_writes_nothing(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.OPENAI_MAX_TOKENS = 10
    communicator = await connect(conversation.id, user)
    # A second a part: the continuation still streams when the next frames come.
    await communicator.send_json_to(user_message("slow sim:tokens=100 sim:rate=10"))
    cut = (await receive_until(communicator, "done"))[-1]

    await go_on(communicator, cut["message_id"])
    await go_on(communicator, cut["message_id"])  # the first one streams now
    busy = await receive_until(communicator, "error")
    stored = await Message.objects.aget(pk=cut["message_id"])
    continued = await Continuation.objects.acount()
    # A regenerated answer is refused the same while the continuation streams.
    await communicator.send_json_to({"type": "retry", "message_id": cut["message_id"]})
    refused = await receive_until(communicator, "error")
    rest = await receive_until(communicator, "done")
    await communicator.disconnect()

    assert (busy[-1]["code"], refused[-1]["code"]) == ("busy", "busy")
    assert [f["type"] for f in busy + refused + rest].count("start") == 1
    assert (stored.status, continued) == ("streaming", 1)
    assert await Continuation.objects.acount() == 1
    assert await conversation.messages.acount() == 2


async def test_an_answer_is_continued_up_to_the_stored_cap_and_no_further(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    # As many tokens a part as stay under 100 characters: the second part passes 120.
    tokens = list(islice(answer_tokens("cap"), 100))
    settings.OPENAI_MAX_TOKENS = max(n for n in range(100) if len("".join(tokens[:n])) < 100)
    settings.STREAM_MAX_ANSWER_CHARS = 120
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("cap sim:tokens=100 sim:rate=0"))
    cut = (await receive_until(communicator, "done"))[-1]
    assert len(cut["message"]["content"]) < 120
    assert cut["message"]["continuable"] is True

    await go_on(communicator, cut["message_id"])
    capped = (await receive_until(communicator, "done"))[-1]
    before = await rows(conversation)
    await go_on(communicator, cut["message_id"])
    refused = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert (capped["status"], capped["finish_reason"]) == ("complete", "length")
    assert len(capped["message"]["content"]) == 120
    assert capped["message"]["content"].startswith(cut["message"]["content"])
    assert capped["error"] == (
        "The answer reached the longest this site keeps (120 characters) and was cut there: "
        "it cannot be continued."
    )
    assert capped["message"]["continuable"] is False
    assert (refused["code"], refused["message"]) == ("bad_continue", capped["error"])
    assert await rows(conversation) == before
    assert await Continuation.objects.acount() == 1


async def test_a_continuation_counts_against_the_answers_a_minute(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.OPENAI_MAX_TOKENS = 5
    settings.LIMIT_MESSAGES_PER_MINUTE = 2
    communicator = await connect(conversation.id, user)
    await communicator.send_json_to(user_message("minute sim:tokens=50 sim:rate=0"))
    cut = (await receive_until(communicator, "done"))[-1]
    await go_on(communicator, cut["message_id"])
    await receive_until(communicator, "done")
    before = await rows(conversation)

    await go_on(communicator, cut["message_id"])
    error = await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()

    assert (error["code"], error["frame"]) == ("rate_limited", "continue_answer")
    assert "limited to 2 a minute" in error["message"]
    assert await rows(conversation) == before
    assert await Continuation.objects.acount() == 1


def test_the_daily_budget_counts_each_continuation_on_its_own_day_once(
    user: User, conversation: Conversation
) -> None:
    now = timezone.now()
    today = quotas.start_of_day(now)
    question = Message.objects.create(conversation=conversation, role="user", content="q")

    def answer(created_at: Any, prompt: int | None, completion: int | None) -> Message:
        return Message.objects.create(
            conversation=conversation,
            parent=question,
            role="assistant",
            content="x" * 40,
            finish_reason="length",
            prompt_tokens=prompt,
            completion_tokens=completion,
            created_at=created_at,
        )

    def continued(message: Message, prompt: int | None, completion: int | None) -> None:
        Continuation.objects.create(
            message=message,
            started_at=now,
            base_chars=0,
            prompt_estimate=7,
            chars=40,
            prompt_tokens=prompt,
            completion_tokens=completion,
        )

    # Written yesterday, continued today: only the continuation's tokens are today's.
    old = answer(today - timedelta(hours=2), 100, 50)
    continued(old, 30, 20)
    assert quotas.tokens_used_since(user.pk, today) == 50
    # Written today: its counts hold its continuation's already, when the provider counted it.
    new = answer(today + timedelta(minutes=1), 60 + 30, 10 + 20)
    continued(new, 30, 20)
    assert quotas.tokens_used_since(user.pk, today) == 50 + 120
    # One the provider did not count (stopped): its estimates, the request's and the text's.
    continued(new, None, None)
    assert quotas.tokens_used_since(user.pk, today) == 50 + 120 + 7 + 40 // 4 + 1


def test_a_long_answer_is_continued_from_its_newest_part(
    user: User, conversation: Conversation, settings: Any
) -> None:
    settings.OPENAI_CONTEXT_TOKENS = 100
    question = Message.objects.create(conversation=conversation, role="user", content="a question")
    long = Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        content="".join(f"{n:04d} " for n in range(400)),
        finish_reason="length",
    )

    sent = context.continuation(conversation, long)

    # Half the room (50 estimated tokens, less a message's own cost) for the answer's end,
    # the rest for what comes before it.
    assert sent == [
        {"role": "user", "content": "a question"},
        {"role": "assistant", "content": long.content[-(50 - 4) * 4 :]},
    ]


def test_a_continuation_swept_with_its_answer_keeps_what_its_checkpoint_held(
    user: User, conversation: Conversation
) -> None:
    stale = timezone.now() - timedelta(hours=1)
    answer = Message.objects.create(
        conversation=conversation,
        role="assistant",
        status="streaming",
        content="before, and after",
        seq=2,
        heartbeat_at=stale,
        finish_reason="length",
    )
    Message.objects.filter(pk=answer.pk).update(updated_at=stale)
    Continuation.objects.create(message=answer, base_chars=len("before"), prompt_estimate=3)

    (swept,) = do_sweep_orphans()

    part = Continuation.objects.get(message=answer)
    assert (swept.pk, swept.status) == (answer.pk, "interrupted")
    assert (part.chars, part.prompt_tokens, part.completion_tokens) == (11, None, None)
    assert swept.continuable  # cut off still: it may be continued again
    assert continuation.deltas_so_far(swept) == ["", "before, and after"]
