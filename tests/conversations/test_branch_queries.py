"""The tree's rules found by the database (services/branch.py, services/context.py) against
the same rules in memory (services/tree.py): on the cases the page's copy of them is tested
with (tests/js/tree-cases.json), and, for what the model is sent, with the room falling at
every place along a branch, in scripts of one to four bytes a character."""

import json
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings

from streaming.models import Conversation, Message
from streaming.services import branch, context
from streaming.services.tree import Tree
from tests.support.queries import RowsRead

pytestmark = pytest.mark.django_db

CASES: list[dict[str, Any]] = json.loads(
    (django_settings.BASE_DIR / "tests" / "js" / "tree-cases.json").read_text(encoding="utf-8")
)["cases"]
START = datetime.fromisoformat("2025-03-14T10:00:00+00:00")
USER, ASSISTANT = str(Message.Role.USER), str(Message.Role.ASSISTANT)
# Characters of one to four bytes in UTF-8; the last is two characters (e and an accent).
SCRIPTS = {"latin": "a", "greek": "λ", "cjk": "長", "emoji": "😀", "combining": "e\u0301"}


def as_uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


@pytest.fixture(params=CASES, ids=[case["name"] for case in CASES])
def case(request: pytest.FixtureRequest, conversation: Conversation) -> dict[str, Any]:
    """A case's messages saved in ``conversation``, each with its id as its text."""
    messages = request.param["messages"]
    Message.objects.bulk_create(
        Message(
            id=uuid.UUID(m["id"]),
            conversation=conversation,
            role=m["role"],
            content=m["id"],
            created_at=datetime.fromisoformat(m["created_at"]),
        )
        for m in messages
    )
    # Parents after every row is there: a loop made by hand has no first row to write.
    for m in messages:
        Message.objects.filter(pk=m["id"]).update(parent_id=as_uuid(m["parent_id"]))
    return request.param  # type: ignore[no-any-return]


def test_the_database_finds_the_leaf_of_every_case(
    case: dict[str, Any], conversation: Conversation
) -> None:
    for leaves in case["leaves"]:
        found = branch.leaf(conversation.pk, as_uuid(leaves["leaf_id"]))
        assert (str(found) if found else None) == leaves["leaf"], leaves


def test_the_database_descends_as_every_case_says(
    case: dict[str, Any], conversation: Conversation
) -> None:
    for start, end in case["descend"].items():
        assert str(branch.descend(conversation.pk, uuid.UUID(start))) == end, start
    assert branch.descend(conversation.pk, uuid.uuid4()) is None


def test_the_model_is_sent_each_case_s_branch_as_the_rule_in_memory_sends_it(
    case: dict[str, Any], conversation: Conversation, settings: Any
) -> None:
    tree = Tree(conversation.messages.all())
    for leaves in case["leaves"]:
        if leaves["leaf"] is None:
            continue
        tip = uuid.UUID(leaves["leaf"])
        for tokens in (1, 12, 10**4):
            settings.OPENAI_CONTEXT_TOKENS = tokens
            expected = context.request_messages(conversation, tree.path(tree.by_id[tip]))
            assert context.history(conversation, tip) == expected, (leaves, tokens)
        # With room for everything, the text of each message of the branch, in its order.
        sent = [m["content"] for m in context.history(conversation, tip)]
        assert sent == leaves["branch"][len(leaves["branch"]) - len(sent) :], leaves


# --- what the model is sent, cut by its room ----------------------------------------------


def chain(conversation: Conversation, turns: list[tuple[str, str]]) -> list[Message]:
    """Messages each following the one before, a second apart: (role, text) each; an
    answer without text failed."""
    messages, parent = [], None
    for index, (role, text) in enumerate(turns):
        failed = role == ASSISTANT and not text
        parent = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role=role,
            content=text,
            status=Message.Status.ERROR if failed else Message.Status.COMPLETE,
            created_at=START + timedelta(seconds=index),
        )
        messages.append(parent)
    return messages


def sent_whole(conversation: Conversation, tip: Message) -> list[dict[str, str]]:
    """What the rule sends for the whole branch ending at ``tip``, read whole."""
    tree = Tree(conversation.messages.all())
    return context.request_messages(conversation, tree.path(tree.by_id[tip.pk]))


def cost(text: str) -> int:
    return context.estimate([{"role": USER, "content": text}])


def alternating(count: int, text: str) -> list[tuple[str, str]]:
    return [(USER if n % 2 == 0 else ASSISTANT, text) for n in range(count)]


@pytest.mark.parametrize("system", ["", "Answer briefly. " * 6], ids=["no-system", "system"])
@pytest.mark.parametrize("script", SCRIPTS.values(), ids=SCRIPTS.keys())
def test_what_the_model_is_sent_is_the_rule_over_the_whole_branch_wherever_the_room_falls(
    conversation: Conversation, settings: Any, script: str, system: str
) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(system_prompt=system)
    conversation.refresh_from_db()
    draw = random.Random(f"{script}{system}")
    turns: list[tuple[str, str]] = []
    for n in range(41):
        if n % 2 == 1 and draw.random() < 0.25:
            turns.append((ASSISTANT, ""))  # a failed answer, without text
        else:
            turns.append((USER if n % 2 == 0 else ASSISTANT, script * draw.randint(1, 60)))
    messages = chain(conversation, turns)
    # Every place a cut can fall: each running total of the turns from the newest, and one
    # token either side of it, with the system prompt's cost on top.
    totals, running = {0}, 0
    for role, text in reversed(turns):
        if role == USER or text:
            running += cost(text)
            totals |= {running - 1, running, running + 1}
    overhead = cost(system) if system else 0
    for room in sorted(totals):
        settings.OPENAI_CONTEXT_TOKENS = overhead + room
        expected = sent_whole(conversation, messages[-1])
        assert context.history(conversation, messages[-1].pk) == expected, room
    for tip in messages[:-1]:  # and from any message up, with a small room
        settings.OPENAI_CONTEXT_TOKENS = overhead + 60
        assert context.history(conversation, tip.pk) == sent_whole(conversation, tip), tip


def test_a_cut_just_at_the_room_keeps_the_turn_that_fills_it_and_reads_one_more(
    conversation: Conversation, settings: Any
) -> None:
    messages = chain(conversation, alternating(7, "x" * 20))  # each costs 10
    settings.OPENAI_CONTEXT_TOKENS = 30

    with RowsRead() as read:
        sent = context.history(conversation, messages[-1].pk)

    assert sent == sent_whole(conversation, messages[-1])
    assert [m["content"] for m in sent] == ["x" * 20] * 3
    # The walk, then the text: the three kept and the fourth, which cannot be.
    assert [query.rows for query in read.queries] == [4, 4]
    settings.OPENAI_CONTEXT_TOKENS = 29
    assert context.history(conversation, messages[-1].pk) == sent_whole(conversation, messages[-1])
    assert len(context.history(conversation, messages[-1].pk)) == 1  # two, less an answer first


def test_a_message_bigger_than_the_room_is_sent_alone(
    conversation: Conversation, settings: Any
) -> None:
    messages = chain(conversation, [*alternating(6, "short"), (USER, "long " * 200)])
    settings.OPENAI_CONTEXT_TOKENS = 50

    with RowsRead() as read:
        sent = context.history(conversation, messages[-1].pk)

    assert sent == sent_whole(conversation, messages[-1])
    assert sent == [{"role": USER, "content": "long " * 200}]
    assert [query.rows for query in read.queries] == [1, 1]


def test_failed_answers_without_text_cost_nothing_and_are_not_sent(
    conversation: Conversation, settings: Any
) -> None:
    turns = [(USER, "q" * 20), (ASSISTANT, ""), (USER, "r" * 20), (ASSISTANT, ""), (USER, "s" * 20)]
    messages = chain(conversation, [(USER, "p" * 20), (ASSISTANT, "a" * 20), *turns])
    settings.OPENAI_CONTEXT_TOKENS = 30  # three turns of 10

    sent = context.history(conversation, messages[-1].pk)

    assert sent == sent_whole(conversation, messages[-1])
    assert [m["content"] for m in sent] == ["q" * 20, "r" * 20, "s" * 20]
    # No room at all: the newest turn still goes, alone.
    settings.OPENAI_CONTEXT_TOKENS = 0
    assert context.history(conversation, messages[-1].pk) == [{"role": USER, "content": "s" * 20}]


def test_a_system_prompt_takes_its_room_first(conversation: Conversation, settings: Any) -> None:
    system = "b" * 80  # costs 25
    Conversation.objects.filter(pk=conversation.pk).update(system_prompt=system)
    conversation.refresh_from_db()
    messages = chain(conversation, alternating(7, "x" * 20))
    settings.OPENAI_CONTEXT_TOKENS = 25 + 30

    sent = context.history(conversation, messages[-1].pk)

    assert sent == sent_whole(conversation, messages[-1])
    assert [m["role"] for m in sent] == ["system", USER, ASSISTANT, USER]
    settings.OPENAI_CONTEXT_TOKENS = 10  # less than the prompt: the newest turn still goes
    assert context.history(conversation, messages[-1].pk) == [
        {"role": "system", "content": system},
        {"role": USER, "content": "x" * 20},
    ]


def test_characters_not_bytes_are_counted(conversation: Conversation, settings: Any) -> None:
    # 40 emoji: 160 bytes of UTF-8, but 40 characters, so 15 tokens, not 45.
    messages = chain(conversation, alternating(7, "😀" * 40))
    settings.OPENAI_CONTEXT_TOKENS = 45

    sent = context.history(conversation, messages[-1].pk)

    assert sent == sent_whole(conversation, messages[-1])
    assert len(sent) == 3
