"""The part of a long conversation a page holds: a window of a branch.

A conversation of any length is read a window at a time: the messages of one branch, from
a message up towards the first turn, as many as fit a budget of bytes of text (and no more
than a number of messages), with the shape of the tree around them: the other versions of
each, without their text (docs/protocol.md, "Older messages"). One recursive query walks
the branch, however long it is; nothing reads the conversation whole.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q

from streaming import control, frames
from streaming.exceptions import ConversationGone, ErrorCode, Invalid
from streaming.models import Conversation, Message
from streaming.services import branch, providers

#: The most messages one window holds, whatever their length: the page draws each.
WINDOW_MESSAGES = 100


def window_bytes() -> int:
    """The bytes of text (UTF-8) a window aims at: half a frame's budget, so that a window of
    plain text goes in one frame (one of text JSON escapes, or one long message, in parts)."""
    return int(settings.FRAME_BUDGET_BYTES) // 2


@dataclass(frozen=True)
class Window:
    """Messages of one branch, oldest first, and the other versions of each."""

    messages: list[Message]
    versions: list[Message]

    @property
    def complete(self) -> bool:
        """The window reaches the first turn: nothing older is left to ask for."""
        return not self.messages or self.messages[0].parent_id is None


def stub_of(message: Message) -> frames.VersionStub:
    return {
        "id": str(message.id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
    }


def window(
    conversation: Conversation,
    tip_id: uuid.UUID | None,
    *,
    budget: int | None = None,
    limit: int = WINDOW_MESSAGES,
) -> Window:
    """``tip_id`` and the messages above it on its branch, oldest first: the newest of them
    whose text fits ``budget`` bytes of UTF-8 (the default: `window_bytes()`), at least the
    tip, at most ``limit``; and the other versions of each. Empty when the tip is not the
    conversation's."""
    if tip_id is None:
        return Window([], [])
    ids = _branch_ids(conversation.pk, tip_id, window_bytes() if budget is None else budget, limit)
    by_id = {m.pk: m for m in Message.objects.filter(conversation=conversation, pk__in=ids)}
    messages = [by_id[i] for i in reversed(ids) if i in by_id]
    return Window(messages, _other_versions(conversation, messages))


def _branch_ids(conversation_id: Any, tip_id: uuid.UUID, budget: int, limit: int) -> list[Any]:
    """The ids from the tip up, newest first: each message adds its length in bytes to a
    running total, and the walk stops after the message that reaches ``budget``, or at
    ``limit``."""
    table = connection.ops.quote_name(Message._meta.db_table)
    pk = Message._meta.pk
    assert pk is not None
    conversation_field = Message._meta.get_field("conversation")
    # The text's length in bytes of UTF-8, as each database says it.
    size = "OCTET_LENGTH({})" if connection.vendor == "postgresql" else "LENGTH(CAST({} AS BLOB))"
    sql = f"""
        WITH RECURSIVE up(id, parent_id, depth, total) AS (
            SELECT id, parent_id, 1, {size.format("content")} FROM {table}
            WHERE id = %s AND conversation_id = %s
            UNION ALL
            SELECT m.id, m.parent_id, up.depth + 1, up.total + {size.format("m.content")}
            FROM {table} m JOIN up ON m.id = up.parent_id
            WHERE up.depth < %s AND up.total < %s
        )
        SELECT id FROM up ORDER BY depth
    """
    params = [
        pk.get_db_prep_value(tip_id, connection),
        conversation_field.get_db_prep_value(conversation_id, connection),
        limit,
        budget,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [pk.to_python(row[0]) for row in cursor.fetchall()]


def _other_versions(conversation: Conversation, messages: list[Message]) -> list[Message]:
    """The versions of ``messages`` that are not among them, oldest first: the messages with
    the same parent and role (services/tree.py), text left unread."""
    if not messages:
        return []
    held = {m.pk for m in messages}
    parents = {m.parent_id for m in messages if m.parent_id is not None}
    same_parent = Q(parent_id__in=parents)
    if messages[0].parent_id is None:
        same_parent |= Q(parent__isnull=True)
    found = (
        Message.objects.filter(same_parent, conversation=conversation)
        .exclude(pk__in=held)
        .defer("content", "error")
        .order_by("created_at", "id")
    )
    roles = {(m.parent_id, m.role) for m in messages}
    return [m for m in found if (m.parent_id, m.role) in roles]


def history(conversation: Conversation, before_id: Any) -> frames.HistoryFrame:
    """The `history` frame for a page that holds ``before_id`` and asks what is above it.

    Raises Invalid (``bad_history``) when ``before_id`` is no message of the conversation.
    """
    try:
        found = conversation.messages.filter(pk=before_id).values_list("parent_id").first()
    except (ValueError, ValidationError):
        found = None
    if found is None:
        raise Invalid("No such message in this conversation.", code=ErrorCode.BAD_HISTORY)
    older = window(conversation, found[0])
    return {
        "type": "history",
        "before": str(before_id),
        "messages": [control.serialize_message(m) for m in older.messages],
        "versions": [stub_of(m) for m in older.versions],
        "complete": older.complete,
    }


def digest(conversation_id: Any) -> control.PongEvent:
    """The `pong`: enough of the stored conversation for a page to spot a frame it missed
    (the title, the model chosen, how many messages, every version, held in its window or
    not, and the last message of the branch shown).

    Raises ConversationGone if the conversation was deleted.
    """
    row = (
        Conversation.objects.filter(pk=conversation_id, deleted_at=None)
        .values("title", "leaf_id", "provider_id", "model")
        .first()
    )
    if row is None:
        raise ConversationGone("This conversation was deleted.")
    messages = Message.objects.filter(conversation_id=conversation_id)
    # None remembered (a conversation written before versions): the end of the newest branch.
    leaf_id = row["leaf_id"] or branch.newest_end(conversation_id)
    last = messages.filter(pk=leaf_id).values("id", "status").first() if leaf_id else None
    return {
        "type": "chat.pong",
        "title": row["title"],
        "model_choice": providers.choice_of(row["provider_id"], row["model"]),
        "count": messages.count(),
        "last_id": str(last["id"]) if last else None,
        "last_status": last["status"] if last else None,
    }
