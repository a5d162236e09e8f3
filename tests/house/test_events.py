"""The one door for events (streaming/services/events.py): what a service queues on its
transaction is sent after the commit, in order, never after a rollback, and no database
thread waits for the event loop to send it."""

import asyncio
import contextlib
import threading
import uuid
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.db import transaction
from django.test import AsyncClient

from streaming import control, layer
from streaming.models import Conversation
from streaming.services import events
from streaming.services.database import to_async

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "events-test"


def numbered(n: int) -> layer.Outgoing:
    """A message of the test group that says which it is."""
    return layer.Outgoing(GROUP, control.title_event(f"#{n}"))  # any ChatEvent would do


async def listen() -> tuple[Any, str]:
    """The layer, and a channel of the test's in the test group."""
    bus = get_channel_layer()
    channel = await bus.new_channel()
    await bus.group_add(GROUP, channel)
    return bus, channel


async def heard(bus: Any, channel: str, marker: str = "end") -> list[str]:
    """Every title the channel got, up to ``marker`` (sent now, after whatever came before)."""
    await bus.group_send(GROUP, control.title_event(marker))
    titles = []
    while (title := (await asyncio.wait_for(bus.receive(channel), 5))["title"]) != marker:
        titles.append(title)
    return titles


class RolledBack(Exception):
    """Raised in a transaction to roll it back."""


def three_transactions() -> None:
    """#1 and #2 committed together, #3 rolled back, #4 committed alone, #5 in a savepoint
    rolled back inside a transaction that commits #6."""
    with transaction.atomic():
        events.on_commit(numbered(1))
        events.on_commit(numbered(2))
    with contextlib.suppress(RolledBack), transaction.atomic():
        events.on_commit(numbered(3))
        raise RolledBack
    with transaction.atomic():
        events.on_commit(numbered(4))
    with transaction.atomic():
        with contextlib.suppress(RolledBack), transaction.atomic():
            events.on_commit(numbered(5))
            raise RolledBack
        events.on_commit(numbered(6))


async def test_events_go_in_order_after_their_commits_and_never_after_a_rollback(
    both_layers: str,
) -> None:
    bus, channel = await listen()

    await to_async(three_transactions)()

    assert await heard(bus, channel) == ["#1", "#2", "#4", "#6"]


def test_without_an_event_loop_they_go_at_the_commit_in_order(both_layers: str) -> None:
    """A management command's changes: no loop runs in its process."""

    async def check() -> list[str]:
        bus, channel = await listen()
        await asyncio.to_thread(three_transactions)
        return await heard(bus, channel)

    assert asyncio.run(check()) == ["#1", "#2", "#4", "#6"]


async def test_the_caller_goes_on_only_once_the_events_are_sent() -> None:
    """What follows a service's call (an answer's `start` after its user message) cannot
    overtake the events the service queued."""
    bus, channel = await listen()

    def queue_two() -> None:
        with transaction.atomic():
            events.on_commit(numbered(1), numbered(2))

    await to_async(queue_two)()
    await bus.group_send(GROUP, control.title_event("after the call"))

    assert await heard(bus, channel) == ["#1", "#2", "after the call"]


@pytest.fixture
def sends_held(monkeypatch: Any) -> asyncio.Event:
    """Every send to the layer waits until the event this gives is set."""
    release = asyncio.Event()
    real_send = layer.send

    async def held_send(outgoing: layer.Outgoing) -> bool:
        await release.wait()
        return await real_send(outgoing)

    monkeypatch.setattr(layer, "send", held_send)
    return release


async def test_no_database_thread_waits_for_the_loop_to_send(sends_held: asyncio.Event) -> None:
    """The service's thread is free once it has committed, while its events still wait."""
    bus, channel = await listen()
    returned = threading.Event()

    def service() -> None:
        with transaction.atomic():
            events.on_commit(numbered(1))
        returned.set()

    call = asyncio.create_task(to_async(service)())
    # The thread is done with it (a thread waiting for the loop never would be)...
    assert await asyncio.to_thread(returned.wait, 5)
    assert not call.done()  # ...while its caller still waits for the send
    sends_held.set()
    await asyncio.wait_for(call, 5)

    assert await heard(bus, channel) == ["#1"]


async def test_a_synchronous_view_hands_its_events_to_the_loop_without_waiting(
    user: User, sends_held: asyncio.Event
) -> None:
    """Django runs a synchronous view on a thread for the loop; its events are the loop's to
    send, and the response does not wait for them."""
    conversation = await Conversation.objects.acreate(owner=user)
    bus = get_channel_layer()
    channel = await bus.new_channel()
    await bus.group_add(conversation.group_name, channel)
    client = AsyncClient()
    await client.aforce_login(user)

    response = await client.post(f"/c/{conversation.id}/delete/")

    assert response.status_code == 302  # answered while the send still waits
    sends_held.set()
    frame = await asyncio.wait_for(bus.receive(channel), 5)
    assert frame["type"] == "chat.deleted"
    await events.drain()


async def test_one_failed_send_does_not_keep_the_rest_from_going(monkeypatch: Any) -> None:
    bus, channel = await listen()
    real_send = layer.send

    async def failing_second(outgoing: layer.Outgoing) -> bool:
        if outgoing.message["title"] == "#2":  # type: ignore[typeddict-item]
            raise ConnectionError("dropped")
        return await real_send(outgoing)

    monkeypatch.setattr(layer, "send", failing_second)

    def queue_three() -> None:
        with transaction.atomic():
            events.on_commit(numbered(1), numbered(2), numbered(3))

    await to_async(queue_three)()

    assert await heard(bus, channel) == ["#1", "#3"]


async def test_events_made_after_the_commit_say_what_is_true_then() -> None:
    """A function queued is called after the commit; one that fails leaves the others."""
    bus, channel = await listen()
    row: dict[str, str] = {}

    def broken() -> list[layer.Outgoing]:
        raise LookupError("gone")

    def service() -> None:
        with transaction.atomic():
            events.on_commit(broken, lambda: [numbered(int(row["n"]))], numbered(9))
            row["n"] = "7"  # changed before the commit: the event says 7

    await to_async(service)()

    assert await heard(bus, channel) == ["#7", "#9"]


async def test_sends_of_many_callers_on_one_loop_keep_their_order() -> None:
    bus, channel = await listen()

    def queue(n: int) -> None:
        with transaction.atomic():
            events.on_commit(numbered(n), numbered(n + 100))

    await asyncio.gather(*(to_async(queue)(n) for n in range(5)))

    titles = await heard(bus, channel)
    assert sorted(titles) == sorted([f"#{n}" for n in range(5)] + [f"#{n + 100}" for n in range(5)])
    for n in range(5):  # each caller's two in the order it queued them
        assert titles.index(f"#{n}") < titles.index(f"#{n + 100}")


async def test_a_group_held_up_holds_up_no_other_group(monkeypatch: Any) -> None:
    """Events wait only for what was queued before them for the same groups: one
    conversation's slow send does not hold another's answer start (each send is a round
    trip, and at 200 answers one line of them all was seconds long)."""
    bus, channel = await listen()
    other = await bus.new_channel()
    await bus.group_add("events-other", other)
    release = asyncio.Event()
    real_send = layer.send
    sent: list[str] = []

    async def slow_for_the_test_group(outgoing: layer.Outgoing) -> bool:
        if outgoing.group == GROUP:
            await release.wait()
        sent.append(str(outgoing.message["title"]))  # type: ignore[typeddict-item]
        return await real_send(outgoing)

    monkeypatch.setattr(layer, "send", slow_for_the_test_group)
    handed = threading.Event()

    def queue(*outgoing: layer.Outgoing) -> None:
        with transaction.atomic():
            events.on_commit(*outgoing)
        handed.set()

    held = asyncio.create_task(to_async(queue)(numbered(1), numbered(2)))
    # The other group's event goes while the test group's wait.
    free = layer.Outgoing("events-other", control.title_event("free"))
    await asyncio.wait_for(to_async(queue)(free), 5)
    assert not held.done()
    # A batch that names both groups waits for the held group's earlier events.
    handed.clear()
    mixed = layer.Outgoing("events-other", control.title_event("mixed"))
    both = asyncio.create_task(to_async(queue)(mixed, numbered(3)))
    assert await asyncio.to_thread(handed.wait, 5)
    release.set()
    await asyncio.wait_for(asyncio.gather(held, both), 5)

    assert sent == ["free", "#1", "#2", "mixed", "#3"]
    assert await heard(bus, channel) == ["#1", "#2", "#3"]
    assert [(await asyncio.wait_for(bus.receive(other), 5))["title"] for _ in "ab"] == [
        "free",
        "mixed",
    ]


def test_a_queued_id_is_sent_as_text() -> None:
    """Group names are made from ids of any kind: a UUID and its text name one group."""
    conversation_id = uuid.uuid4()
    assert layer.to_conversation(conversation_id, control.deleted_event()).group == (
        layer.to_conversation(str(conversation_id), control.deleted_event()).group
    )
