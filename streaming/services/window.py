"""The part of a long conversation a page holds: a window of a branch.

A conversation of any length is read a window at a time: the messages of one branch, from
a message up towards the first turn (or down towards the branch's end, or both ways around
a message a search found), as many as fit a budget of bytes of text (and no more than a
number of messages), with the shape of the tree around them: the other versions of each,
without their text (docs/protocol.md, "Older messages" and "Opening at a message"). One
recursive query of ids walks the branch, however long it is; nothing reads the
conversation whole.
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
    #: The last message ends the branch: nothing newer is left to ask for.
    reaches_end: bool = True

    @property
    def complete(self) -> bool:
        """The window reaches the first turn: nothing older is left to ask for."""
        return not self.messages or self.messages[0].parent_id is None

    @property
    def end_id(self) -> uuid.UUID | None:
        """The window's last message when newer ones are stored below it, else None."""
        return None if self.reaches_end or not self.messages else self.messages[-1].pk


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
    return _window_of(conversation, ids[::-1])


def _window_of(conversation: Conversation, ids: list[Any], reaches_end: bool = True) -> Window:
    """The messages ``ids`` (in that order) read whole, and the other versions of each."""
    by_id = {m.pk: m for m in Message.objects.filter(conversation=conversation, pk__in=ids)}
    messages = [by_id[i] for i in ids if i in by_id]
    return Window(messages, _other_versions(conversation, messages), reaches_end)


def _branch_ids(conversation_id: Any, tip_id: uuid.UUID, budget: int, limit: int) -> list[Any]:
    """The ids from the tip up, newest first: each message adds its length in bytes to a
    running total, and the walk stops after the message that reaches ``budget``, or at
    ``limit``."""
    table = _table()
    size = _size_of()
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
    with connection.cursor() as cursor:
        cursor.execute(sql, [_db_id(tip_id), _db_id(conversation_id), limit, budget])
        return [_id(row[0]) for row in cursor.fetchall()]


def _table() -> str:
    return connection.ops.quote_name(Message._meta.db_table)


def _size_of() -> str:
    """The SQL of a text's length in bytes of UTF-8, as each database says it."""
    return "OCTET_LENGTH({})" if connection.vendor == "postgresql" else "LENGTH(CAST({} AS BLOB))"


def _db_id(key: Any) -> Any:
    """A UUID as the database's column holds it (PostgreSQL's uuid, SQLite's hex text)."""
    return Message._meta.get_field("id").get_db_prep_value(key, connection)


def _id(value: Any) -> Any:
    return Message._meta.get_field("id").to_python(value)


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


# --- below a message -----------------------------------------------------------------------

# The ids from the end of a branch up to one of its messages, nearest that message first:
# the messages below it, walked up from the end (a message has one parent but may have many
# children), ids only. `depth` is how far each is from the end. A walk longer than the
# messages there are is going round a loop made by hand: the caller bounds it by their number.
_BELOW = """
    WITH RECURSIVE up(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM {table} WHERE id = %s AND conversation_id = %s
        UNION ALL
        SELECT m.id, m.parent_id, up.depth + 1 FROM {table} m JOIN up ON m.id = up.parent_id
        WHERE up.id <> %s AND up.depth < %s
    )
    SELECT id, depth FROM up ORDER BY depth DESC LIMIT %s
"""


def leaf_of(conversation: Conversation) -> uuid.UUID | None:
    """The last message of the branch shown: the one the conversation remembers, else (one
    written before versions) the end of the newest branch; None without messages."""
    leaf_id: uuid.UUID | None = (
        Conversation.objects.filter(pk=conversation.pk).values_list("leaf_id", flat=True).first()
    )
    return leaf_id if leaf_id is not None else branch.leaf(conversation.pk, None)


def _below(
    conversation: Conversation, leaf_id: Any, from_id: uuid.UUID, take: int, count: int
) -> tuple[list[Any], int] | None:
    """The ids of the ``take`` messages right below ``from_id`` on the branch that ends at
    ``leaf_id``, nearest first, and how many are below it in all; None when ``from_id`` is
    not on that branch. ``count``: the conversation's messages, which bound the walk."""
    sql = _BELOW.format(table=_table())
    params = [_db_id(leaf_id), _db_id(conversation.pk), _db_id(from_id), count, take + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [(_id(key), depth) for key, depth in cursor.fetchall()]
    if not rows or rows[0][0] != from_id:
        return None
    return [key for key, _ in rows[1:]], rows[0][1]


def _fitting(ids: list[Any], budget: int) -> tuple[list[Any], int]:
    """The first of ``ids`` whose text fits ``budget`` bytes of UTF-8 (as a window counts
    them: the one that reaches it is in), and their bytes; only their lengths are read."""
    if not ids:
        return [], 0
    marks = ", ".join(["%s"] * len(ids))
    sql = f"SELECT id, {_size_of().format('content')} FROM {_table()} WHERE id IN ({marks})"
    with connection.cursor() as cursor:
        cursor.execute(sql, [_db_id(key) for key in ids])
        sizes = {_id(key): size or 0 for key, size in cursor.fetchall()}
    taken, total = [], 0
    for key in ids:
        if total >= budget:
            break
        taken.append(key)
        total += sizes.get(key, 0)
    return taken, total


def around(
    conversation: Conversation, message_id: uuid.UUID, leaf_id: Any, count: int
) -> Window | None:
    """A window of the branch that ends at ``leaf_id`` around its message ``message_id``:
    the messages below it as far as half a window goes, then it and those above it, as many
    as the rest of the window holds. None when the message is not on that branch.

    The walk from the end to the message reads ids only; the window's own messages are the
    only text read, so the window costs what one at the end does.
    """
    found = _below(conversation, leaf_id, message_id, WINDOW_MESSAGES // 2, count)
    if found is None:
        return None
    below, in_all = found
    below, used = _fitting(below, window_bytes() // 2)
    room = max(1, window_bytes() - used)  # at least the message itself, however long
    above = _branch_ids(conversation.pk, message_id, room, WINDOW_MESSAGES - len(below))
    return _window_of(conversation, [*above[::-1], *below], reaches_end=len(below) == in_all)


def newer(conversation: Conversation, after_id: uuid.UUID) -> frames.HistoryFrame:
    """The `history` frame for a page that holds ``after_id`` and asks what is below it on
    the branch shown: as many messages as a window holds, oldest first, and the streaming
    answer's text up to a seq when it is among them, as a snapshot gives it.

    Raises Invalid (``bad_history``) when ``after_id`` is no message of the branch shown
    (not of this conversation, or of another branch: the page's is out of date).
    """
    leaf_id = leaf_of(conversation)
    count = conversation.messages.count()
    found = _below(conversation, leaf_id, after_id, WINDOW_MESSAGES, count) if leaf_id else None
    if found is None:
        raise Invalid("No such message on the branch shown.", code=ErrorCode.BAD_HISTORY)
    below, in_all = found
    below, _ = _fitting(below, window_bytes())
    held = _window_of(conversation, below, reaches_end=len(below) == in_all)
    frame: frames.HistoryFrame = {
        "type": "history",
        "after": str(after_id),
        "messages": [control.serialize_message(m) for m in held.messages],
        "versions": [stub_of(m) for m in held.versions],
        "complete": held.reaches_end,
    }
    streaming = [m for m in held.messages if m.status == Message.Status.STREAMING]
    if streaming:
        frame["active"] = active_of(streaming[0])
    return frame


def active_of(answer: Message) -> frames.ActiveAnswer:
    """A streaming answer as far as its row holds it: its text up to delta `seq`."""
    return {"message_id": str(answer.id), "seq": answer.seq, "text": answer.content}


def digest(conversation_id: Any) -> control.PongEvent:
    """The `pong`: enough of the stored conversation for a page to spot a frame it missed
    (the title, the model chosen, how many messages, every version, held in its window or
    not, and the last message of the branch shown).

    Raises ConversationGone if the conversation was deleted.
    """
    row = (
        Conversation.objects.filter(pk=conversation_id, deleted_at=None)
        .values("title", "leaf_id", "provider_id", "model", "owner_id")
        .first()
    )
    if row is None:
        raise ConversationGone("This conversation was deleted.")
    messages = Message.objects.filter(conversation_id=conversation_id)
    last = None
    if row["leaf_id"] is not None:
        last = messages.filter(pk=row["leaf_id"]).values("id", "status").first()
    if last is None:  # none remembered: the rule of tree.py, found by the database
        leaf = branch.leaf(conversation_id, None)
        last = messages.filter(pk=leaf).values("id", "status").first() if leaf else None
    return {
        "type": "chat.pong",
        "title": row["title"],
        "model_choice": providers.choice_of(row["provider_id"], row["model"], row["owner_id"]),
        "count": messages.count(),
        "last_id": str(last["id"]) if last else None,
        "last_status": last["status"] if last else None,
    }
