"""Long conversations written straight to the database, as an import or years of use would."""

import uuid
from datetime import timedelta

from django.contrib.auth.models import User
from django.db.models import Max
from django.utils import timezone

from streaming.models import Conversation, Message


def write_chain(
    conversation: Conversation,
    count: int,
    chars: int = 500,
    *,
    after: Message | None = None,
    shown: bool = True,
) -> list[Message]:
    """``count`` messages, each following the one before (user, answer, user…), a second
    apart, each ``chars`` characters long and starting "message <n> ".

    ``after``: the message the first follows (a new version of what follows it, newer than
    anything written before); ``shown``: the last one ends the branch shown.
    """
    # Written long enough ago not to count among the answers of the last minute (a limit).
    start = timezone.now() - timedelta(seconds=count + 120)
    if after is not None:
        written = Message.objects.filter(conversation=conversation).aggregate(Max("created_at"))
        start = written["created_at__max"] + timedelta(seconds=1)
    messages = []
    parent_id = after.pk if after else None
    # An answer follows a user message; a user message follows an answer, or nothing.
    offset = 1 if after is not None and after.role == Message.Role.USER else 0
    for index in range(count):
        message = Message(
            id=uuid.uuid4(),
            conversation=conversation,
            role=Message.Role.USER if (index + offset) % 2 == 0 else Message.Role.ASSISTANT,
            content=(f"message {index} " + "lorem ipsum " * (chars // 12 + 1))[:chars],
            status=Message.Status.COMPLETE,
            parent_id=parent_id,
            created_at=start + timedelta(seconds=index),
        )
        messages.append(message)
        parent_id = message.id
    Message.objects.bulk_create(messages, batch_size=2000)
    if shown:
        Conversation.objects.filter(pk=conversation.pk).update(leaf_id=parent_id)
    return messages


def branches(
    conversation: Conversation, stranger: User, count: int, fork_at: int
) -> tuple[list[Message], list[Message], list[Message]]:
    """Messages of three kinds: a chain of ``count`` in ``conversation`` (the branch shown),
    3 following its message ``fork_at`` (another branch, not shown), and 3 of a conversation
    of ``stranger``'s."""
    main = write_chain(conversation, count, 50)
    fork = write_chain(conversation, 3, 50, after=main[fork_at], shown=False)
    theirs = write_chain(Conversation.objects.create(owner=stranger), 3, 50)
    return main, fork, theirs
