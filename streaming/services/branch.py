"""The branch a conversation shows, found by the database: for a conversation too long to
read whole (``tree.Tree`` reads every message), as an export or a switch to a version
needs it.

Two recursive queries (PostgreSQL and SQLite both have them): the end of the newest branch
below a message (``Tree.descend``'s rule: the newest version at every step), which is also
the end of the branch shown when the conversation names none; then the walk from the end
up to the first turn, each message with its place among its versions (``Tree.versions``:
the same parent and role, oldest first). The result is kept compact, 16 bytes and two
numbers a message, and read a part at a time.
"""

import uuid
from array import array
from datetime import datetime
from typing import Any

from django.db import connection

from streaming.models import Conversation, Message

_TABLE = Message._meta.db_table

# From a message, the newest child at every step (``Tree.descend``): the end of the newest
# branch below it. A walk longer than the messages there are is going round a loop made by
# hand, so the caller bounds it by their number.
_DESCEND = f"""
WITH RECURSIVE down(id, depth) AS (
    SELECT id, 0 FROM {_TABLE} WHERE id = %s AND conversation_id = %s
    UNION ALL
    SELECT (
        SELECT c.id FROM {_TABLE} c WHERE c.parent_id = down.id
        ORDER BY c.created_at DESC, c.id DESC LIMIT 1
    ), depth + 1
    FROM down WHERE down.id IS NOT NULL AND depth < %s
)
SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1
"""

_NEWEST_FIRST_TURN = f"""
SELECT id FROM {_TABLE} WHERE conversation_id = %s AND parent_id IS NULL
ORDER BY created_at DESC, id DESC LIMIT 1
"""

_BRANCH = f"""
WITH RECURSIVE up(id, parent_id, created_at, depth) AS (
    SELECT id, parent_id, created_at, 0 FROM {_TABLE} WHERE id = %s AND conversation_id = %s
    UNION ALL
    SELECT m.id, m.parent_id, m.created_at, up.depth + 1
    FROM {_TABLE} m JOIN up ON m.id = up.parent_id
    WHERE up.depth < %s
),
versions AS (
    SELECT id,
        ROW_NUMBER() OVER (PARTITION BY parent_id, role ORDER BY created_at, id) AS version,
        COUNT(*) OVER (PARTITION BY parent_id, role) AS versions
    FROM {_TABLE} WHERE conversation_id = %s
)
SELECT up.id, versions.version, versions.versions, up.created_at
FROM up JOIN versions ON versions.id = up.id
ORDER BY up.depth DESC
"""

# Rows taken from the database cursor at a time.
_FETCH = 2000


class Branch:
    """The messages of a branch, first turn first: ids and their place among versions."""

    def __init__(self) -> None:
        self._ids = bytearray()
        self._versions = array("l")
        self._counts = array("l")
        #: Each message written after the one before it (in the order of the index on
        #: conversation and time, ``Tree``'s): as good as always, unless a hand-written
        #: import gave a message an older time than its parent's.
        self.in_time_order = True
        self._last: tuple[Any, uuid.UUID] | None = None

    def __len__(self) -> int:
        return len(self._versions)

    def add(self, key: uuid.UUID, version: int, versions: int, created_at: Any) -> None:
        at = (created_at, key)
        if self._last is not None and not (isinstance(created_at, datetime) and self._last < at):
            self.in_time_order = False
        self._last = at
        self._ids += key.bytes
        self._versions.append(version)
        self._counts.append(versions)

    def is_at(self, n: int, key: uuid.UUID) -> bool:
        """Whether message ``n`` of the branch is ``key``."""
        return n < len(self) and self._ids[16 * n : 16 * n + 16] == key.bytes

    def place(self, n: int) -> tuple[int, int]:
        """Message ``n``'s version, and how many versions there are."""
        return self._versions[n], self._counts[n]

    def part(self, start: int, size: int) -> list[tuple[uuid.UUID, int, int]]:
        """Messages ``start`` to ``start + size``: (id, version, how many versions)."""
        return [
            (
                uuid.UUID(bytes=bytes(self._ids[16 * n : 16 * n + 16])),
                self._versions[n],
                self._counts[n],
            )
            for n in range(start, min(start + size, len(self)))
        ]


def shown(conversation: Conversation) -> Branch:
    """The branch ``conversation`` shows (``Tree.branch``), read by the database."""
    branch = Branch()
    # A walk longer than the messages there are is going round a loop made by hand.
    count = Message.objects.filter(conversation_id=conversation.pk).count()
    if not count:
        return branch
    conversation_id = _db(conversation.pk)
    leaf = conversation.leaf_id
    if leaf is None or not Message.objects.filter(pk=leaf, conversation=conversation).exists():
        leaf = newest_end(conversation.pk, count)
    if leaf is None:
        return branch
    with connection.cursor() as cursor:
        cursor.execute(_BRANCH, [_db(leaf), conversation_id, count, conversation_id])
        while rows := cursor.fetchmany(_FETCH):
            for key, version, versions, created_at in rows:
                branch.add(_uuid(key), version, versions, created_at)
    return branch


def descend(conversation_id: Any, message_id: Any, count: int | None = None) -> uuid.UUID | None:
    """The end of the newest branch below the message ``message_id`` (``Tree.descend``: the
    newest child at every step; the message itself when nothing follows it), walked by the
    database a step a message, reading no text. None when ``message_id`` is no message of
    the conversation. ``count``: how many messages it has, if the caller knows."""
    if count is None:
        count = Message.objects.filter(conversation_id=conversation_id).count()
    return _one(_DESCEND, [_db(message_id), _db(conversation_id), count])


def newest_end(conversation_id: Any, count: int | None = None) -> uuid.UUID | None:
    """The end of the newest branch (``Tree.leaf(None)``): the branch shown when the
    conversation remembers none. None without messages."""
    first = _one(_NEWEST_FIRST_TURN, [_db(conversation_id)])
    return descend(conversation_id, first, count) if first is not None else None


def _one(sql: str, params: list[Any]) -> uuid.UUID | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _uuid(row[0]) if row and row[0] is not None else None


def _db(key: Any) -> Any:
    """A UUID as the database's column holds it (PostgreSQL's uuid, SQLite's hex text)."""
    return Message._meta.pk.get_db_prep_value(key, connection)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
