"""Long conversations written straight to the database, as an import or years of use would."""

import uuid
from datetime import timedelta

from django.utils import timezone

from streaming.models import Conversation, Message


def write_chain(conversation: Conversation, count: int, chars: int = 500) -> list[Message]:
    """``count`` messages, each following the one before (user, answer, user…), a second
    apart, each ``chars`` characters long and starting "message <n> "; the last one ends
    the branch shown."""
    start = timezone.now() - timedelta(seconds=count + 10)
    messages = []
    parent_id = None
    for index in range(count):
        message = Message(
            id=uuid.uuid4(),
            conversation=conversation,
            role=Message.Role.USER if index % 2 == 0 else Message.Role.ASSISTANT,
            content=(f"message {index} " + "lorem ipsum " * (chars // 12 + 1))[:chars],
            status=Message.Status.COMPLETE,
            parent_id=parent_id,
            created_at=start + timedelta(seconds=index),
        )
        messages.append(message)
        parent_id = message.id
    Message.objects.bulk_create(messages, batch_size=2000)
    Conversation.objects.filter(pk=conversation.pk).update(leaf_id=parent_id)
    return messages
