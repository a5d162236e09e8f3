"""A conversation opened at a message (docs/protocol.md, "Opening at a message"): the window
around it (services/window.py `around`), the newer messages below one on the branch shown
(`newer`), and the branch through it shown first when it is another (services/snapshots.py
`opened_at`)."""

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from streaming.exceptions import Invalid
from streaming.models import Conversation, Message
from streaming.services import snapshots, window
from tests.support.long import branches, write_chain

pytestmark = pytest.mark.django_db(transaction=True)


def ids(messages: list[Any]) -> list[str]:
    return [str(m.id) if isinstance(m, Message) else m["id"] for m in messages]


def text_bytes(messages: list[Message]) -> int:
    return sum(len(m.content.encode()) for m in messages)


def leaf(conversation: Conversation) -> Any:
    conversation.refresh_from_db(fields=["leaf"])
    return conversation.leaf_id


def test_a_window_around_a_message_holds_it_with_messages_above_and_below(
    conversation: Conversation,
) -> None:
    messages = write_chain(conversation, 1000, 500)
    count = len(messages)

    found = window.around(conversation, messages[500].pk, leaf(conversation), count)

    assert found is not None
    held = ids(found.messages)
    at = held.index(str(messages[500].id))
    # One piece of the branch, in order, the message inside it with some on either side.
    assert held == ids(messages[500 - at : 500 - at + len(held)])
    below = len(held) - at - 1
    assert 10 <= below <= window.WINDOW_MESSAGES // 2
    assert at >= 10
    assert len(held) <= window.WINDOW_MESSAGES
    assert text_bytes(found.messages) <= window.window_bytes() + 500
    assert text_bytes(found.messages[at + 1 :]) <= window.window_bytes() // 2 + 500
    assert not found.reaches_end
    assert not found.complete
    assert found.end_id == found.messages[-1].pk


def test_a_window_around_a_message_near_an_end_reaches_it(conversation: Conversation) -> None:
    messages = write_chain(conversation, 300, 500)
    tip = leaf(conversation)

    near_end = window.around(conversation, messages[-3].pk, tip, 300)
    near_start = window.around(conversation, messages[2].pk, tip, 300)
    last = window.around(conversation, messages[-1].pk, tip, 300)

    assert near_end is not None
    assert near_start is not None
    assert last is not None
    assert ids(near_end.messages)[-3:] == ids(messages[-3:])
    assert near_end.reaches_end
    assert near_end.end_id is None
    assert ids(near_start.messages)[0] == str(messages[0].id)
    assert near_start.complete
    assert not near_start.reaches_end
    assert ids(last.messages)[-1] == str(messages[-1].id)
    assert last.reaches_end


def test_a_window_around_reads_only_its_own_messages_text(conversation: Conversation) -> None:
    messages = write_chain(conversation, 2000, 500)
    tip = leaf(conversation)

    with CaptureQueriesContext(connection) as queries:
        found = window.around(conversation, messages[40].pk, tip, 2000)

    assert found is not None
    # Walks of ids, lengths of the few it might take, then its own rows: a handful of
    # queries, none per message.
    assert len(queries.captured_queries) <= 6
    content_reads = [q["sql"] for q in queries.captured_queries if '"content"' in q["sql"]]
    assert all("IN (" in sql for sql in content_reads), content_reads


def test_no_window_around_a_message_off_the_branch(
    conversation: Conversation, other_user: User
) -> None:
    _, fork, theirs = branches(conversation, other_user, 20, 9)
    tip = leaf(conversation)

    assert window.around(conversation, fork[1].pk, tip, 23) is None
    assert window.around(conversation, theirs[1].pk, tip, 23) is None
    assert window.around(conversation, uuid.uuid4(), tip, 23) is None


def test_newer_walks_down_the_branch_shown_to_its_end_once_each(
    conversation: Conversation, settings: Any
) -> None:
    settings.FRAME_BUDGET_BYTES = 2048  # windows of 1,024 bytes: about ten messages
    messages = write_chain(conversation, 60, 100)
    write_chain(conversation, 3, 100, after=messages[20], shown=False)  # another branch

    collected: list[dict[str, Any]] = []
    after = str(messages[0].id)
    requests = 0
    while True:
        frame = window.newer(conversation, uuid.UUID(after))
        requests += 1
        assert frame["after"] == after
        assert frame["messages"], "a request short of the end always brings messages"
        assert "active" not in frame
        collected += frame["messages"]
        if frame["complete"]:
            break
        after = frame["messages"][-1]["id"]

    assert ids(collected) == ids(messages[1:])  # all below, once each, in order
    assert 5 <= requests <= 12
    end = window.newer(conversation, messages[-1].pk)
    assert end["messages"] == []
    assert end["complete"]


def test_newer_carries_the_streaming_answers_text_up_to_its_seq(
    conversation: Conversation,
) -> None:
    messages = write_chain(conversation, 10, 50)
    answer = Message.objects.create(
        conversation=conversation,
        parent=messages[-1],
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        content="So far",
        seq=7,
    )
    Conversation.objects.filter(pk=conversation.pk).update(leaf=answer)

    frame = window.newer(conversation, messages[5].pk)

    assert ids(frame["messages"])[-1] == str(answer.id)
    assert frame["complete"]
    assert frame["active"] == {"message_id": str(answer.id), "seq": 7, "text": "So far"}


def test_newer_below_no_message_of_the_branch_shown_is_refused(
    conversation: Conversation, other_user: User
) -> None:
    _, fork, theirs = branches(conversation, other_user, 12, 5)
    tip = leaf(conversation)

    for asked in (fork[0].pk, theirs[1].pk, uuid.uuid4()):
        with pytest.raises(Invalid) as refused:
            window.newer(conversation, asked)
        assert refused.value.code == "bad_history"
        assert refused.value.message == "No such message on the branch shown."
    assert leaf(conversation) == tip  # nothing moved


def test_opening_at_a_message_of_another_branch_shows_that_branch(
    conversation: Conversation,
) -> None:
    main = write_chain(conversation, 200, 200)
    fork = write_chain(conversation, 150, 200, after=main[40], shown=False)
    newer_fork = write_chain(conversation, 2, 200, after=fork[100], shown=False)
    assert leaf(conversation) == main[-1].pk

    held = snapshots.opened_at(conversation, str(fork[30].id))

    # The newest branch below it, as the switcher's rule goes: through the newer fork.
    assert leaf(conversation) == newer_fork[-1].pk
    assert held.leaf_id == newer_fork[-1].pk
    assert held.focus == fork[30].pk
    assert str(fork[30].id) in ids(held.window.messages)
    assert str(main[41].id) not in ids(held.window.messages)
    assert str(main[41].id) in [stub["id"] for stub in held.versions()]
    initial = held.initial()
    assert initial["focus"] == str(fork[30].id)
    assert initial["window_end"] == ids(held.window.messages)[-1]
    assert initial["leaf_id"] == str(newer_fork[-1].id)


@pytest.mark.parametrize("asked", ["not-a-uuid", "", "0e1d5a7c-4a8b-4c57-9d43-2f6e8a1b9c30"])
def test_opening_at_what_is_no_message_of_the_conversation_opens_at_the_end(
    conversation: Conversation, other_user: User, asked: str
) -> None:
    messages = write_chain(conversation, 300, 500)
    theirs = write_chain(Conversation.objects.create(owner=other_user), 3, 50)
    plain = snapshots.shown(conversation).initial()

    for message in (asked, str(theirs[1].id)):
        held = snapshots.opened_at(conversation, message)
        assert held.focus is None
        assert held.initial() == plain
        assert plain["window_end"] is None
        assert plain["focus"] is None
    assert leaf(conversation) == messages[-1].pk  # no branch was switched


def test_a_snapshot_around_a_message_keeps_that_window(conversation: Conversation) -> None:
    messages = write_chain(conversation, 400, 500)
    fork = write_chain(conversation, 3, 50, after=messages[100], shown=False)

    around = snapshots.snapshot(conversation, str(messages[150].id))
    off_branch = snapshots.snapshot(conversation, str(fork[1].id))
    nonsense = snapshots.snapshot(conversation, {"no": "uuid"})
    end = snapshots.snapshot(conversation)

    assert str(messages[150].id) in ids(around["messages"])
    assert around["window_end"] == around["messages"][-1]["id"]
    assert around["leaf_id"] == str(messages[-1].id)
    assert around["count"] == 403
    for at_end in (off_branch, nonsense):
        assert at_end["window_end"] is None
        assert ids(at_end["messages"]) == ids(end["messages"])
    assert ids(end["messages"])[-1] == str(messages[-1].id)
