"""The server's tree of versions (streaming/services/tree.py) against the cases the page's
own copy of the rules, chat/tree.js, is tested with in Node (tests/js/tree-cases.json):
one set of cases for both, so a tab never shows another branch than the server confirms.
The database's walk down a branch (services/branch.py `descend`, for a conversation too
long to read whole) is held to the same cases."""

import json
import uuid
from datetime import datetime
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from streaming.models import Conversation, Message
from streaming.services import branch
from streaming.services.tree import Tree

CASES: list[dict[str, Any]] = json.loads(
    (settings.BASE_DIR / "tests" / "js" / "tree-cases.json").read_text(encoding="utf-8")
)["cases"]


def as_uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value is not None else None


def ids(messages: list[Message]) -> list[str]:
    return [str(m.pk) for m in messages]


@pytest.fixture(params=CASES, ids=[case["name"] for case in CASES])
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Tree]:
    """A case, and its messages as a Tree of unsaved Message objects."""
    messages = [
        Message(
            id=uuid.UUID(m["id"]),
            parent_id=as_uuid(m["parent_id"]),
            role=m["role"],
            created_at=datetime.fromisoformat(m["created_at"]),
        )
        for m in request.param["messages"]
    ]
    return request.param, Tree(messages)


def test_tree_cases_leaf_and_branch(case: tuple[dict[str, Any], Tree]) -> None:
    expected, tree = case
    for leaves in expected["leaves"]:
        leaf = tree.leaf(as_uuid(leaves["leaf_id"]))
        assert (str(leaf.pk) if leaf else None) == leaves["leaf"], leaves
        assert ids(tree.branch(as_uuid(leaves["leaf_id"]))) == leaves["branch"], leaves


def test_tree_cases_descend(case: tuple[dict[str, Any], Tree]) -> None:
    expected, tree = case
    for start, end in expected["descend"].items():
        assert str(tree.descend(tree.by_id[uuid.UUID(start)]).pk) == end, start


def test_tree_cases_versions(case: tuple[dict[str, Any], Tree]) -> None:
    expected, tree = case
    for of, versions in expected["versions"].items():
        assert ids(tree.versions(tree.by_id[uuid.UUID(of)])) == versions, of


@pytest.mark.django_db
@pytest.mark.parametrize("written", CASES, ids=[case["name"] for case in CASES])
def test_tree_cases_descend_in_the_database(user: User, written: dict[str, Any]) -> None:
    conversation = Conversation.objects.create(owner=user)
    # The cases' ids are the messages' own; the parents are set once all exist (a case may
    # hold a loop made by hand).
    for m in written["messages"]:
        Message.objects.create(
            id=uuid.UUID(m["id"]),
            conversation=conversation,
            role=m["role"],
            created_at=datetime.fromisoformat(m["created_at"]),
        )
    for m in written["messages"]:
        if m["parent_id"]:
            Message.objects.filter(pk=m["id"]).update(parent_id=uuid.UUID(m["parent_id"]))
    tree = Tree(conversation.messages.all())

    for start, end in written["descend"].items():
        assert str(branch.descend(conversation.pk, uuid.UUID(start))) == end, start
    newest = tree.leaf(None)
    assert branch.leaf(conversation.pk, None) == (newest.pk if newest else None)
    assert branch.descend(conversation.pk, uuid.uuid4()) is None
