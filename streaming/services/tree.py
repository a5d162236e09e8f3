"""A conversation's messages as a tree: branches, versions, and the branch it shows.

Each message has a parent: an answer follows its user message, a user message follows the
answer before it, and a conversation's first turn has none. Editing a message or
regenerating an answer adds a *version*: a sibling with the same parent. The conversation
remembers the last message of the branch it shows (``Conversation.leaf``); the branch is
the path from the first turn down to it. Every tab shows that branch, and the model is sent
it (``context.request_messages``).

Going to another version shows the newest branch below it: from the version, the newest
child at every step (``Tree.descend``).

``Tree`` holds these rules in memory, over messages already read: it is for a number of
them that is bounded, never for a conversation read whole (which can hold hundreds of
thousands). The admin draws a conversation of up to ``admin_tree.TREE_MESSAGES`` messages
with it, or the window a tab opens with; and the tests hold the database's versions of the
rules to it (``branch.descend``, ``branch.leaf``, ``context.history``), as the page's copy
(chat/tree.js) is held to the same cases.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterable

from streaming.models import Message


class Tree:
    """Messages of a conversation, read once, walked in memory (a bounded number of them)."""

    def __init__(self, messages: Iterable[Message]) -> None:
        #: Every message, in the order they were written.
        self.messages = sorted(messages, key=lambda m: (m.created_at, str(m.pk)))
        self.by_id = {m.pk: m for m in self.messages}
        self.children: dict[uuid.UUID | None, list[Message]] = defaultdict(list)
        for message in self.messages:
            self.children[message.parent_id].append(message)

    def path(self, tip: Message | None) -> list[Message]:
        """The messages from the first turn down to ``tip``, ``tip`` last ([] for None)."""
        path: list[Message] = []
        seen: set[uuid.UUID] = set()
        node = tip
        while node is not None and node.pk not in seen:  # seen: a loop made by hand ends
            path.append(node)
            seen.add(node.pk)
            node = self.by_id.get(node.parent_id) if node.parent_id else None
        path.reverse()
        return path

    def descend(self, message: Message) -> Message:
        """The end of the newest branch below ``message`` (itself when nothing follows it)."""
        seen = {message.pk}
        while children := self.children.get(message.pk):
            message = children[-1]
            if message.pk in seen:
                break
            seen.add(message.pk)
        return message

    def leaf(self, leaf_id: uuid.UUID | None) -> Message | None:
        """The last message of the branch shown: ``leaf_id`` (``Conversation.leaf``) when it
        is one of these, else the end of the newest branch (None without messages)."""
        leaf = self.by_id.get(leaf_id) if leaf_id else None
        if leaf is None and self.children[None]:
            return self.descend(self.children[None][-1])
        return leaf

    def branch(self, leaf_id: uuid.UUID | None) -> list[Message]:
        """The messages a conversation shows, first turn first."""
        return self.path(self.leaf(leaf_id))

    def versions(self, message: Message) -> list[Message]:
        """``message`` and its other versions (the same parent and role), oldest first."""
        return [m for m in self.children[message.parent_id] if m.role == message.role]
