"""A conversation's settings changed in the middle of it (its system prompt, its title):
stored, told to every tab, used from the next answer on; refused, they change nothing."""

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from streaming.models import Conversation
from streaming.simulator import SimulatorThread
from tests.support.frames import receive_until, user_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.usefixtures("both_layers")  # the `system_prompt` frame crosses the layer
async def test_a_new_system_prompt_reaches_every_tab_and_the_next_request(
    connect: Any, conversation: Conversation, user: User, simulator: SimulatorThread
) -> None:
    tab = await connect(conversation.id, user)
    other_tab = await connect(conversation.id, user)
    assert tab.snapshot["system_prompt"] == ""
    marker = uuid.uuid4().hex

    await tab.send_json_to({"type": "set_system_prompt", "system_prompt": "Answer in French."})

    for socket in (tab, other_tab):
        told = await receive_until(socket, "system_prompt")
        assert told[-1] == {"type": "system_prompt", "system_prompt": "Answer in French."}
    await tab.send_json_to(user_message(f"hello {marker} sim:tokens=2"))
    await receive_until(tab, "done")
    # Cleared again: the next request has no system message at all.
    await tab.send_json_to({"type": "set_system_prompt", "system_prompt": ""})
    await receive_until(tab, "system_prompt")
    await tab.send_json_to(user_message(f"again {marker} sim:tokens=2"))
    await receive_until(tab, "done")
    await tab.disconnect()
    await other_tab.disconnect()

    sent = [r["messages"] for r in simulator.requests if marker in r["messages"][-1]["content"]]
    assert sent[0][0] == {"role": "system", "content": "Answer in French."}
    assert [m["role"] for m in sent[1]] == ["user", "assistant", "user"]
    await conversation.arefresh_from_db()
    assert conversation.system_prompt == ""
    later = await connect(conversation.id, user)
    assert later.snapshot["system_prompt"] == ""
    await later.disconnect()


@override_settings(MAX_SYSTEM_PROMPT_CHARS=20)
async def test_a_refused_system_prompt_changes_nothing(
    connect: Any, conversation: Conversation, user: User
) -> None:
    await Conversation.objects.filter(pk=conversation.pk).aupdate(system_prompt="Be brief.")
    tab = await connect(conversation.id, user)
    refused = [
        ("x" * 21, "system_prompt_too_long"),
        ("nul \x00 inside", "bad_system_prompt"),
        ("half \ud800 pair", "bad_system_prompt"),
        (["a list"], "bad_system_prompt"),
        (None, "bad_system_prompt"),
    ]
    for value, code in refused:
        await tab.send_json_to({"type": "set_system_prompt", "system_prompt": value})
        error = await tab.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", code), value
    await conversation.arefresh_from_db()
    assert conversation.system_prompt == "Be brief."
    await tab.send_json_to({"type": "set_system_prompt", "system_prompt": "y" * 20})
    assert (await receive_until(tab, "system_prompt"))[-1]["system_prompt"] == "y" * 20
    await tab.disconnect()
    await conversation.arefresh_from_db()
    assert conversation.system_prompt == "y" * 20


@pytest.mark.usefixtures("both_layers")  # the `title` frame crosses the layer
async def test_a_rename_reaches_every_tab_and_a_refused_one_changes_nothing(
    connect: Any, conversation: Conversation, user: User
) -> None:
    tab = await connect(conversation.id, user)
    other_tab = await connect(conversation.id, user)

    await tab.send_json_to({"type": "rename", "title": "  Trip to Lisbon \n"})

    for socket in (tab, other_tab):
        told = await receive_until(socket, "title")
        assert told[-1] == {"type": "title", "title": "Trip to Lisbon"}
    for value, code in [
        ("", "bad_title"),
        ("   ", "bad_title"),
        (None, "bad_title"),
        (7, "bad_title"),
        ("nul \x00", "bad_title"),
        ("x" * 201, "title_too_long"),
    ]:
        await tab.send_json_to({"type": "rename", "title": value})
        error = await tab.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", code), value
    await tab.send_json_to({"type": "ping"})
    pong = await receive_until(tab, "pong")
    await tab.disconnect()
    await other_tab.disconnect()

    assert pong[-1]["title"] == "Trip to Lisbon"
    await conversation.arefresh_from_db()
    assert conversation.title == "Trip to Lisbon"
