"""A continued answer on the socket: resumed exactly after a reload, stopped keeping its
text, and seen live by every tab, like any answer.

A reload runs against a real daphne process on the test database; the rest against the
in-process application on the in-memory layer and channels-redis with a real Redis.
"""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from streaming.models import Continuation, Conversation, Message
from tests.support.assembler import Assembler
from tests.support.frames import receive_until, user_message
from tests.support.live import LiveClient
from tests.support.servers import DaphneServer
from tests.support.users import session_cookie
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

Connect = Callable[..., Any]


async def test_a_reload_mid_continuation_resumes_it_exactly(
    live_servers: Callable[..., list[DaphneServer]], conversation: Conversation, user: User
) -> None:
    (server,) = live_servers(1, OPENAI_MAX_TOKENS="30", STREAM_CHECKPOINT_SECONDS="0.2")
    cookie = await sync_to_async(session_cookie)(user)
    marker = uuid.uuid4().hex
    async with LiveClient(server, conversation.id, cookie) as tab:
        await tab.send(user_message(f"reload {marker} sim:tokens=90 sim:rate=20"))
        cut = await tab.receive_until("done")
        await tab.send({"type": "continue_answer", "message_id": cut["message_id"]})
        start = await tab.receive_until("start")
        await tab.receive_until("delta")
    # Reloaded once a checkpoint holds some of the continuation: the snapshot resumes there.
    await until(
        lambda: Message.objects.filter(pk=cut["message_id"], seq__gt=start["seq"] + 1).aexists(),
        what="a checkpoint of the continuation",
    )
    async with LiveClient(server, conversation.id, cookie) as reloaded:
        active = reloaded.snapshot["active"]
        done = await reloaded.receive_until("done")

    saved = await Message.objects.aget(pk=cut["message_id"])
    assert active["message_id"] == cut["message_id"]
    assert active["seq"] > start["seq"]
    assert active["text"].startswith(cut["message"]["content"])
    assert (done["message_id"], done["status"]) == (cut["message_id"], "complete")
    assert reloaded.text_of(cut["message_id"]) == saved.content == done["message"]["content"]
    assert saved.content.startswith(cut["message"]["content"])
    assert len(saved.content) > len(active["text"])
    assert reloaded.assembler.mismatches == reloaded.assembler.unknown == 0
    assert await conversation.messages.acount() == 2


@pytest.mark.usefixtures("both_layers")
async def test_a_stop_mid_continuation_keeps_all_its_text_and_it_may_go_on_again(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.OPENAI_MAX_TOKENS = 20
    tab = await connect(conversation.id, user)
    other_tab = await connect(conversation.id, user)
    watcher = Assembler()
    watcher.feed(other_tab.snapshot)
    await tab.send_json_to(user_message("stop it sim:tokens=500 sim:rate=50"))
    cut = (await receive_until(tab, "done"))[-1]
    await receive_until(other_tab, "done")
    base = await Message.objects.aget(pk=cut["message_id"])

    await tab.send_json_to({"type": "continue_answer", "message_id": cut["message_id"]})
    frames = await receive_until(tab, "delta")
    await other_tab.send_json_to({"type": "stop"})
    frames += await receive_until(tab, "done")
    watched: list[dict[str, Any]] = []
    while not watched or watched[-1]["type"] != "done":
        watched.append(await other_tab.receive_json_from(timeout=10))
        request = watcher.feed(watched[-1])
        if request is not None:
            await other_tab.send_json_to(request)
    await tab.disconnect()
    await other_tab.disconnect()

    done = frames[-1]
    added = "".join(f["text"] for f in frames if f["type"] == "delta")
    saved = await Message.objects.aget(pk=cut["message_id"])
    assert (done["status"], saved.status) == ("cancelled", "cancelled")
    assert saved.content == cut["message"]["content"] + added == done["message"]["content"]
    assert watcher.text[cut["message_id"]] == saved.content
    # Still cut off where the model's limit left it: Continue goes on from here.
    assert (saved.finish_reason, done["message"]["continuable"]) == ("length", True)
    # Its usage is the first part's: the stopped one reported none, and is estimated apart.
    assert (saved.prompt_tokens, saved.completion_tokens) == (
        base.prompt_tokens,
        base.completion_tokens,
    )
    part = await Continuation.objects.aget(message=saved)
    assert (part.chars, part.completion_tokens) == (len(added), None)
    assert added


async def test_a_continuation_stopped_before_its_first_piece_sends_none_and_keeps_the_text(
    connect: Connect, conversation: Conversation, user: User, settings: Any
) -> None:
    settings.OPENAI_MAX_TOKENS = 3
    settings.OPENAI_READ_TIMEOUT = 30
    tab = await connect(conversation.id, user)
    # Every request to the model waits a while before its first piece: the first answer's
    # (cut at 3 of its 5 tokens) and the continuation's, which the stop reaches while it waits.
    waits = "sim:tokens=5 sim:fault=stall sim:after=0 sim:stall=4"
    await tab.send_json_to(user_message(f"wait for it {waits}"))
    cut = (await receive_until(tab, "done"))[-1]
    assert cut["message"]["continuable"]

    await tab.send_json_to({"type": "continue_answer", "message_id": cut["message_id"]})
    frames = await receive_until(tab, "start")
    await tab.send_json_to({"type": "stop"})
    frames += await receive_until(tab, "done")
    await tab.disconnect()

    done = frames[-1]
    saved = await Message.objects.aget(pk=cut["message_id"])
    assert [f["type"] for f in frames if f["type"] == "delta"] == []
    assert (done["status"], done["seq"]) == ("cancelled", cut["seq"])
    assert saved.content == cut["message"]["content"] == done["message"]["content"]
    assert (saved.status, saved.seq) == ("cancelled", cut["seq"])
