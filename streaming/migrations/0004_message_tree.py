"""Messages form a tree: each has a parent, and a conversation remembers the branch shown.

The history before this was a list, in which a retried answer stayed in place and its
retry came right after it. Here each message gets as parent the one before it, except that
an answer directly after another answer (a retry) becomes that answer's sibling: a version
of the same turn. The newest message becomes the branch shown, so every conversation shows
and sends the model what it did before. No message is changed otherwise or removed.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

# Conversations read and written at a time, so a large history needs no large memory.
_BATCH = 500


def build_tree(apps: Any, schema_editor: Any) -> None:
    Conversation = apps.get_model("streaming", "Conversation")
    Message = apps.get_model("streaming", "Message")
    ids = list(Conversation.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), _BATCH):
        batch = ids[start : start + _BATCH]
        changed, leaves = [], {}
        rows = Message.objects.filter(conversation_id__in=batch).order_by(
            "conversation_id", "created_at", "pk"
        )
        previous = None
        for message in rows.only("pk", "conversation_id", "role", "parent_id"):
            if previous is not None and previous.conversation_id != message.conversation_id:
                previous = None
            if previous is None:
                message.parent_id = None
            elif message.role == "assistant" and previous.role == "assistant":
                message.parent_id = previous.parent_id  # a retry: another version
            else:
                message.parent_id = previous.pk
            changed.append(message)
            leaves[message.conversation_id] = message.pk
            previous = message
        Message.objects.bulk_update(changed, ["parent"], batch_size=_BATCH)
        for conversation_id, leaf_id in leaves.items():
            Conversation.objects.filter(pk=conversation_id).update(leaf_id=leaf_id)


class Migration(migrations.Migration):
    dependencies = [
        ("streaming", "0003_quota"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="leaf",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="streaming.message",
            ),
        ),
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="streaming.message",
            ),
        ),
        # Back to a list needs nothing: removing the fields leaves the messages in order.
        migrations.RunPython(build_tree, migrations.RunPython.noop, elidable=True),
    ]
