"""Acting on a long conversation reads a bounded part of it: posting, regenerating and
switching read as many rows after 4,000 messages as after 40 (and send the model what the
rule sends for the whole branch), the page's and the pong's fallbacks read a window, the
admin draws a bounded tree; and what is refused writes nothing."""

import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client

from streaming import admin_tree
from streaming.exceptions import ErrorCode, Invalid
from streaming.models import Conversation, Message, Storage
from streaming.services import context, conversations, snapshots, storage, window
from streaming.services.tree import Tree
from tests.support.long import write_chain
from tests.support.queries import RowsRead
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db

SHORT, LONG = 40, 4_000
# Messages of 100 characters cost 30 estimated tokens: the room holds 20 of them.
ROOM = 600


@pytest.fixture(autouse=True)
def small_room(settings: Any) -> None:
    settings.OPENAI_CONTEXT_TOKENS = ROOM


def long_conversation(count: int) -> tuple[Conversation, list[Message]]:
    """A user of its own with a conversation of ``count`` messages of 100 characters, each
    following the one before, written yesterday (no rate limit counts them), their storage
    counted (a user's first count sums everything they have, once)."""
    owner = User.objects.create_user(f"owner-{uuid.uuid4().hex}", password=PASSWORD)
    conversation = Conversation.objects.create(owner=owner)
    messages = write_chain(conversation, count, chars=100)
    conversation.messages.update(created_at=F("created_at") - timedelta(days=1))
    conversation.refresh_from_db()
    storage.counted(owner.pk)
    return conversation, messages


def sent_whole(conversation: Conversation, tip_id: Any) -> list[dict[str, str]]:
    """What the rule sends for the whole branch ending at ``tip_id``, read whole."""
    tree = Tree(conversation.messages.all())
    return context.request_messages(conversation, tree.path(tree.by_id[tip_id]))


def statements(read: RowsRead) -> list[str]:
    """The queries' SQL, savepoints unnamed."""
    return [re.sub(r'SAVEPOINT "\w+"', "SAVEPOINT", query.sql) for query in read.queries]


def bounded(reads: dict[int, RowsRead]) -> None:
    """The long conversation read exactly as much as the short one, with the same
    queries, and no query read more than the room's turns."""
    assert reads[LONG].rows == reads[SHORT].rows
    assert statements(reads[LONG]) == statements(reads[SHORT])
    assert reads[LONG].most.rows <= ROOM // 30 + 1


def test_posting_reads_as_much_of_4000_messages_as_of_40() -> None:
    reads = {}
    for count in (SHORT, LONG):
        conversation, messages = long_conversation(count)
        with RowsRead() as reads[count]:
            posted = conversations.do_post_user_message(conversation, "One more?", uuid.uuid4())

        assert isinstance(posted, conversations.Started)
        question = posted.answer.parent_id
        assert question is not None
        assert Message.objects.get(pk=question).parent_id == messages[-1].pk
        assert posted.history == sent_whole(conversation, question)
        assert len(posted.history) == ROOM // 30 - 1  # the room, less an answer first
    bounded(reads)


def test_an_edit_and_a_first_turn_read_as_much_of_4000_messages_as_of_40() -> None:
    for parent in (lambda messages: messages[-3].pk, lambda messages: None):
        reads = {}
        for count in (SHORT, LONG):
            conversation, messages = long_conversation(count)
            with RowsRead() as reads[count]:
                posted = conversations.do_post_user_message(
                    conversation, "Edited", uuid.uuid4(), parent(messages)
                )
            assert isinstance(posted, conversations.Started)
            assert posted.history == sent_whole(conversation, posted.answer.parent_id)
        bounded(reads)


def test_regenerating_reads_as_much_of_4000_messages_as_of_40() -> None:
    reads = {}
    for count in (SHORT, LONG):
        conversation, messages = long_conversation(count)
        with RowsRead() as reads[count]:
            started = conversations.do_regenerate(conversation, messages[-1].pk)

        assert started.answer.parent_id == messages[-2].pk
        assert started.history == sent_whole(conversation, messages[-2].pk)
        assert Conversation.objects.get(pk=conversation.pk).leaf_id == started.answer.pk
    bounded(reads)


def test_switching_reads_one_row_of_the_branch_below() -> None:
    reads = {}
    for count in (SHORT, LONG):
        conversation, messages = long_conversation(count)
        with RowsRead() as reads[count]:
            leaf = conversations.do_switch_branch(conversation, messages[1].pk)

        assert leaf == messages[-1].pk
        assert Conversation.objects.get(pk=conversation.pk).leaf_id == leaf
    bounded(reads)


def test_a_page_and_a_pong_without_a_remembered_leaf_read_a_window() -> None:
    conversation, messages = long_conversation(LONG)
    Conversation.objects.filter(pk=conversation.pk).update(leaf=None)

    with RowsRead() as page:
        held = snapshots.shown(conversation)
    with RowsRead() as pong:
        digest = window.digest(conversation.pk)

    assert held.leaf_id == messages[-1].pk
    assert [m.pk for m in held.window.messages] == [m.pk for m in messages[-100:]]
    assert page.rows <= 2 * window.WINDOW_MESSAGES + 10
    assert digest["last_id"] == str(messages[-1].pk)
    assert (digest["count"], pong.rows) == (LONG, len(pong.queries))  # a row each


# --- refusals write nothing ----------------------------------------------------------------


def unchanged(conversation: Conversation) -> tuple[Any, ...]:
    """What a refusal must leave as it was: the messages, the branch shown, the time of
    the last activity, the characters counted."""
    row = Conversation.objects.values_list("leaf_id", "updated_at").get(pk=conversation.pk)
    chars = Storage.objects.filter(user_id=conversation.owner_id).values_list("chars").first()
    return conversation.messages.count(), *row, chars


def test_refused_parents_retries_and_switches_write_nothing(other_user: User) -> None:
    conversation, messages = long_conversation(LONG)
    theirs = Conversation.objects.create(owner=other_user)
    their_question = Message.objects.create(conversation=theirs, role="user", content="q")
    their_answer = Message.objects.create(
        conversation=theirs, role="assistant", content="a", parent=their_question
    )
    # An answer of this conversation made by hand to follow a message of another.
    stray = Message.objects.create(
        conversation=conversation, role="assistant", content="s", parent=their_question
    )
    before, theirs_before = unchanged(conversation), unchanged(theirs)
    asked = messages[-2].pk  # a user message, answered: another cannot follow it

    for parent_id in (uuid.uuid4(), their_answer.pk, asked):
        with pytest.raises(Invalid) as refused:
            conversations.do_post_user_message(conversation, "Stray", uuid.uuid4(), parent_id)
        assert refused.value.code == ErrorCode.BAD_PARENT, parent_id
    for message_id in (uuid.uuid4(), their_answer.pk, asked, stray.pk, "x", None):
        with pytest.raises(Invalid) as refused:
            conversations.do_regenerate(conversation, message_id)
        assert refused.value.code == ErrorCode.BAD_RETRY, message_id
    for message_id in (uuid.uuid4(), their_answer.pk, "x", None):
        with pytest.raises(Invalid) as refused:
            conversations.do_switch_branch(conversation, message_id)
        assert refused.value.code == ErrorCode.BAD_SWITCH, message_id

    assert unchanged(conversation) == before
    assert unchanged(theirs) == theirs_before
    assert not Message.objects.filter(content="Stray").exists()
    assert not Message.objects.filter(status=Message.Status.STREAMING).exists()


# --- the admin ------------------------------------------------------------------------------


class FormFields(HTMLParser):
    """What a browser posts back from a page's form: its fields and their values."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        name = attributes.get("name")
        if tag == "input" and name and attributes.get("type") not in ("checkbox", "submit"):
            self.fields[name] = attributes.get("value", "")
        elif tag == "input" and name and "checked" in attributes:
            self.fields[name] = "on"
        elif tag in ("textarea", "select") and name:
            self.fields[name] = ""
            self._open = (tag, name)
        elif tag == "option" and self._open and "selected" in attributes:
            self.fields[self._open[1]] = attributes.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._open and self._open[0] == "textarea":
            self.fields[self._open[1]] += data

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            self._open = None


def test_the_admin_draws_the_end_of_a_long_branch_and_links_to_every_message(
    staff: Client,
) -> None:
    conversation, messages = long_conversation(LONG)
    page = f"/admin/streaming/conversation/{conversation.pk}/change/"

    with RowsRead() as read:
        html = staff.get(page).content.decode()

    # The window a tab opens with, in bold, and a link to the messages' list for the rest.
    assert "4,000 messages: the last 100 of the branch shown" in html
    drawn = re.findall(r'<a href="/admin/streaming/message/([0-9a-f-]+)/change/"><strong>', html)
    assert drawn == [str(m.pk) for m in messages[-100:]]
    assert f"?conversation__id__exact={conversation.pk}" in html
    inline = re.search(r'name="messages-TOTAL_FORMS" value="(\d+)"', html)
    assert inline is not None
    assert int(inline[1]) == admin_tree.TREE_MESSAGES
    assert read.most.rows <= admin_tree.TREE_MESSAGES
    assert read.rows <= 4 * admin_tree.TREE_MESSAGES
    every = staff.get(f"/admin/streaming/message/?conversation__id__exact={conversation.pk}")
    assert every.status_code == 200
    assert every.context["cl"].result_count == LONG

    # Its form still saves, with the newest messages as its inline rows.
    parser = FormFields()
    parser.feed(html)
    saved = staff.post(page, {**parser.fields, "title": "Renamed", "_save": "Save"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Conversation.objects.get(pk=conversation.pk).title == "Renamed"
    assert conversation.messages.count() == LONG


def test_the_admin_draws_a_conversation_of_up_to_the_limit_whole(staff: Client) -> None:
    conversation, messages = long_conversation(admin_tree.TREE_MESSAGES)

    html = staff.get(f"/admin/streaming/conversation/{conversation.pk}/change/").content.decode()

    drawn = re.findall(r'<a href="/admin/streaming/message/([0-9a-f-]+)/change/"><strong>', html)
    assert drawn == [str(m.pk) for m in messages]
    assert "of the branch shown, as a tab opens it" not in html
