"""A conversation's messages as a tree on its admin page, bounded however long it is.

A conversation of up to ``TREE_MESSAGES`` messages is drawn whole: every message in
reading order, the versions of a turn indented under the turn before them with the branch
below each, and the branch shown in bold (what each tab shows and what the model is sent).
A longer one is drawn as a tab opens it: the end of the branch shown (services/window.py)
with the other versions of each of its messages, not what follows those, and a link to all
of its messages in the messages' list.
"""

import uuid
from urllib.parse import urlencode

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from streaming.models import Conversation, Message
from streaming.services import branch, window
from streaming.services.tree import Tree

#: The most messages drawn, and the most a conversation has to be drawn whole.
TREE_MESSAGES = 200

# One row: the message, how far it is indented, whether it is one of several versions.
Row = tuple[Message, int, bool]


def message_tree(conversation: Conversation) -> str:
    """The tree's HTML (module docstring)."""
    count = conversation.messages.count()
    if count <= TREE_MESSAGES:
        tree = Tree(conversation.messages.all())
        shown = {m.pk for m in tree.branch(conversation.leaf_id)}
        return _draw(tree, _rows(tree, tree.children[None]), shown) or "(no messages)"
    end = window.window(conversation, branch.leaf(conversation.pk, conversation.leaf_id))
    tree = Tree([*end.messages, *end.versions])
    top = tree.children[end.messages[0].parent_id] if end.messages else []
    shown = {m.pk for m in end.messages}
    everything = (
        reverse("admin:streaming_message_changelist")
        + "?"
        + urlencode({"conversation__id__exact": conversation.pk})
    )
    note = format_html(
        "<p>{} messages: the last {} of the branch shown, as a tab opens it, and the other"
        ' versions of each, without what follows them. <a href="{}">All {} messages</a></p>',
        f"{count:,}",
        len(end.messages),
        everything,
        f"{count:,}",
    )
    return format_html("{}{}", note, _draw(tree, _rows(tree, top), shown))


def _rows(tree: Tree, top: list[Message]) -> list[Row]:
    """Depth first from ``top``, at most ``TREE_MESSAGES`` rows. Without recursion: a branch
    can be thousands of messages long. Only a turn with several versions indents; a plain
    conversation reads as a list."""
    rows: list[Row] = []
    stack = [(m, 0, len(top) > 1) for m in reversed(top)]
    while stack and len(rows) < TREE_MESSAGES:
        message, depth, forked = stack.pop()
        rows.append((message, depth, forked))
        children = tree.children.get(message.pk, [])
        fork = len(children) > 1
        stack.extend((child, depth + fork, fork) for child in reversed(children))
    return rows


def _draw(tree: Tree, rows: list[Row], shown: set[uuid.UUID]) -> SafeString:
    """The rows of ``tree`` as links to each message, the branch shown in bold."""
    # Versions off the branch of a long conversation come without their text: read the
    # text of those drawn, at once.
    unread = [m.pk for m, _, _ in rows if "content" in m.get_deferred_fields()]
    texts = dict(Message.objects.filter(pk__in=unread).values_list("pk", "content"))
    drawn = []
    for message, depth, forked in rows:
        versions = tree.versions(message)
        where = f"version {versions.index(message) + 1} of {len(versions)} · " if forked else ""
        text = texts.get(message.pk, message.content)
        label = format_html(
            "{}{} · {}{}: {}",
            "\u2003\u2003" * depth + ("↳ " if forked else ""),
            message.get_role_display(),
            where,
            message.get_status_display(),
            Truncator(text).chars(120) or "(empty)",
        )
        if message.pk in shown:
            label = format_html("<strong>{}</strong>", label)
        link = reverse("admin:streaming_message_change", args=[message.pk])
        drawn.append(format_html('<a href="{}">{}</a>', link, label))
    return format_html_join(mark_safe("<br>"), "{}", ((row,) for row in drawn))
