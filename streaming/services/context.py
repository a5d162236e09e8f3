"""What the model is sent for an answer: the system prompt, then the newest turns of the
branch that fit OPENAI_CONTEXT_TOKENS, and what that costs in estimated tokens.

``request_messages`` is the rule, over a branch in memory. ``history`` applies it to a
branch in the database, of any length: it reads the branch upward from its last message
only until the turns read certainly fill the room (a recursive query keeps the running
total of their estimated tokens), and what the rule keeps of that part is what it keeps of
the whole branch, since it keeps only newest turns that fit.
"""

import uuid
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import connection

from streaming.models import Conversation, Message
from streaming.services import attachments
from streaming.text import CHARS_PER_TOKEN, estimate_tokens

# What each message costs beyond its text (role, separators), in estimated tokens.
_MESSAGE_OVERHEAD_TOKENS = 4
# Messages read at a time once the branch's ids are known.
_READ = 1000


class Request(list[dict[str, Any]]):
    """What the model is sent for an answer (its messages), and ``notice``: what the reader
    should know of it (a document cut to fit), "" for nothing."""

    notice: str = ""


def request_messages(
    conversation: Conversation, path: list[Message], *, sees: bool = True
) -> Request:
    """What to send the model for an answer that follows ``path`` (a branch: tree.py), the
    system prompt first.

    An answer that failed with no text is left out; a partial answer stays, since the user
    saw it. Only the newest turns that fit ``OPENAI_CONTEXT_TOKENS`` with the system prompt
    are sent (the newest always), starting with a user's turn. A user turn carries its
    attachments (``attachments.content``): images only to a model that ``sees``; when the
    newest turn alone is over the room, its documents are cut to fit, and ``notice`` says so.
    """
    system = _system(conversation)
    turns = [m for m in path if m.role != Message.Role.ASSISTANT or m.content]
    room = _room(system)
    kept = 0
    for turn in reversed(turns):
        room -= _message_cost(turn)
        if room < 0 and kept:
            break
        kept += 1
    sent = turns[len(turns) - kept :]
    while len(sent) > 1 and sent[0].role != Message.Role.USER:
        sent = sent[1:]
    over = _message_cost(sent[-1]) - _room(system) if sent else 0
    files = attachments.turns_of(m.pk for m in sent if m.attachment_tokens)
    image_bytes = [attachments.IMAGE_BYTES_PER_REQUEST]  # the newest turns' images first
    notices: list[str] = []
    contents = []
    for index, message in enumerate(reversed(sent)):
        cut = over * CHARS_PER_TOKEN if index == 0 and over > 0 else 0
        body = attachments.content(
            message.content,
            files.get(message.pk),
            sees=sees,
            image_bytes=image_bytes,
            cut_chars=cut,
            notices=notices,
        )
        contents.append(body)
    contents.reverse()
    request = Request(system)
    request.extend(
        {"role": m.role, "content": body} for m, body in zip(sent, contents, strict=True)
    )
    request.notice = " ".join(notices)
    return request


def history(conversation: Conversation, tip_id: uuid.UUID, *, sees: bool = True) -> Request:
    """``request_messages`` for the branch that ends at ``tip_id`` (a saved message of the
    conversation), reading no more of the branch than it may keep, and one turn more."""
    newest = _newest_part(conversation.pk, tip_id, _room(_system(conversation)))
    return request_messages(conversation, newest, sees=sees)


def continuation(conversation: Conversation, answer: Message, *, sees: bool = True) -> Request:
    """What to send the model to continue ``answer`` (an answer cut off, with text): the rule
    of ``request_messages`` for the branch up to its question, then the answer itself, last,
    as the assistant's message the model goes on from.

    A long answer is sent as its newest part only, at most half of OPENAI_CONTEXT_TOKENS, so
    that the question before it still fits: the model needs the end it continues from.
    """
    room = _room(_system(conversation))
    kept = max(1, room // 2 - _MESSAGE_OVERHEAD_TOKENS) * CHARS_PER_TOKEN
    tail = Message(role=Message.Role.ASSISTANT, content=answer.content[-kept:])
    question = answer.parent_id
    before = [] if question is None else _newest_part(conversation.pk, question, room)
    return request_messages(conversation, [*before, tail], sees=sees)


def estimate(messages: list[dict[str, Any]]) -> int:
    """What ``messages`` cost, in estimated tokens: the size of a request that sends them
    (an image part at most what any image costs)."""
    return sum(_cost(message) for message in messages)


def _system(conversation: Conversation) -> list[dict[str, Any]]:
    if not conversation.system_prompt.strip():
        return []
    return [{"role": "system", "content": conversation.system_prompt}]


def _room(system: list[dict[str, Any]]) -> int:
    """The estimated tokens left for the turns once the system prompt is counted."""
    return int(settings.OPENAI_CONTEXT_TOKENS) - estimate(system)


def _cost(message: dict[str, Any]) -> int:
    body = message["content"]
    if isinstance(body, str):
        return estimate_tokens(body) + _MESSAGE_OVERHEAD_TOKENS
    texts = "".join(part.get("text", "") for part in body)
    images = sum(1 for part in body if part.get("type") == "image_url")
    cost = estimate_tokens(texts) + _MESSAGE_OVERHEAD_TOKENS
    return cost + images * attachments.IMAGE_TOKENS_AT_MOST


def _message_cost(message: Message) -> int:
    """What a turn costs, as ``_cost_sql`` counts it: its text, and its attachments."""
    return estimate_tokens(message.content) + message.attachment_tokens + _MESSAGE_OVERHEAD_TOKENS


def _newest_part(conversation_id: Any, tip_id: uuid.UUID, room: int) -> list[Message]:
    """The branch ending at ``tip_id``, first turn first: the whole of it, or its newest
    part, which holds every turn that ``request_messages`` may keep with ``room``.

    The walk up keeps a running total of what the turns cost (``_message_cost`` in SQL: an answer
    without text costs nothing, as it is left out) and goes on from a message only while
    the total is within the room, or still nothing: so it ends at the first turn that
    cannot be kept, or at the first turn. Its rows carry no text. A loop made by hand (the
    walk coming back to a message) ends the branch there, as ``Tree.path`` ends it; the
    query goes round it until the room is full, or once when nothing on it costs anything
    (UNION keeps no row twice), so it ends too.
    """
    table = connection.ops.quote_name(Message._meta.db_table)
    sql = f"""
        WITH RECURSIVE up(id, parent_id, total) AS (
            SELECT id, parent_id, {_cost_sql(table)} FROM {table}
            WHERE id = %s AND conversation_id = %s
            UNION
            SELECT m.id, m.parent_id, up.total + {_cost_sql("m")}
            FROM {table} m JOIN up ON m.id = up.parent_id
            WHERE m.conversation_id = %s AND (up.total <= %s OR up.total = 0)
        )
        SELECT id, parent_id FROM up
    """
    pk = Message._meta.pk
    assert pk is not None
    conversation = Message._meta.get_field("conversation").get_db_prep_value(
        conversation_id, connection
    )
    role = Message.Role.ASSISTANT.value
    params = [role, pk.get_db_prep_value(tip_id, connection), conversation]
    params += [role, conversation, room]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        parents = {pk.to_python(key): parent for key, parent in cursor.fetchall()}
    ids = list(_upward(parents, tip_id))
    ids.reverse()
    return _read(ids)


def _cost_sql(message: str) -> str:
    """``_message_cost`` in SQL of the row ``message`` (0 for an answer without text, left out),
    with one parameter: the assistant's role. Both databases count characters, as ``len``
    does: PostgreSQL's CHAR_LENGTH, and SQLite's LENGTH of text (up to a NUL, which no
    stored text holds: ``check_storable``)."""
    length = "CHAR_LENGTH" if connection.vendor == "postgresql" else "LENGTH"
    chars = f"{length}({message}.content)"
    # estimate_tokens: chars // CHARS_PER_TOKEN + 1 (integer division in both databases).
    tokens = f"{chars} / {CHARS_PER_TOKEN} + 1"
    return (
        f"CASE WHEN {message}.role = %s AND {chars} = 0 THEN 0"
        f" ELSE {tokens} + {message}.attachment_tokens + {_MESSAGE_OVERHEAD_TOKENS} END"
    )


def _upward(parents: dict[Any, Any], tip_id: uuid.UUID) -> Iterator[uuid.UUID]:
    """From ``tip_id`` up through ``parents`` (id: parent id) while they go, never twice."""
    pk = Message._meta.pk
    assert pk is not None
    seen: set[uuid.UUID] = set()
    key: uuid.UUID | None = tip_id
    while key is not None and key in parents and key not in seen:
        seen.add(key)
        yield key
        parent = parents[key]
        key = pk.to_python(parent) if parent is not None else None


def _read(ids: list[uuid.UUID]) -> list[Message]:
    """The messages ``ids`` in that order, their role and text, a part at a time."""
    found: dict[uuid.UUID, Message] = {}
    for start in range(0, len(ids), _READ):
        part = ids[start : start + _READ]
        rows = Message.objects.filter(pk__in=part).only("role", "content", "attachment_tokens")
        found.update((m.pk, m) for m in rows)
    return [found[key] for key in ids]
