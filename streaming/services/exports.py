"""Conversations written out as files: JSON that ``imports`` reads back, and Markdown to read.

The JSON format is documented, with its version, in docs/export-format.md. One conversation
and all of a user's are the same document: an envelope with a list of conversations.
"""

import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from streaming.models import Conversation, Message
from streaming.services.database import to_async
from streaming.services.tree import Tree

FORMAT = "chatsite-export"
#: Raised whenever a field's meaning changes or one is added; ``imports`` reads this one only.
VERSION = 1
# Conversations read from the database at a time while streaming a whole account.
_BATCH = 50


def envelope(exported_at: datetime | None = None) -> dict[str, Any]:
    """The fields of an export file around its conversations."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": (exported_at or timezone.now()).isoformat(),
    }


def conversation_data(conversation: Conversation, tree: Tree | None = None) -> dict[str, Any]:
    """One conversation and every message of its tree (all versions), oldest first."""
    tree = tree or Tree.of(conversation)
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "model": conversation.model,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "leaf_id": str(conversation.leaf_id) if conversation.leaf_id else None,
        "messages": [_message_data(m) for m in tree.messages],
    }


def _message_data(message: Message) -> dict[str, Any]:
    # Not control.serialize_message: the file's format is versioned on its own, and must
    # not change when the live frames do.
    return {
        "id": str(message.id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "model": message.model,
        "provider": message.provider_name,
        "finish_reason": message.finish_reason,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "error": message.error,
        "created_at": message.created_at.isoformat(),
    }


def export_json(conversations: Iterable[Conversation]) -> str:
    """An export file of ``conversations`` (each read with its messages)."""
    document = envelope()
    document["conversations"] = [conversation_data(c) for c in conversations]
    return json.dumps(document, ensure_ascii=False, indent=1)


def _batch(ids: list[Any]) -> list[str]:
    by_id = {c.pk: c for c in Conversation.objects.filter(pk__in=ids, deleted_at=None)}
    messages: dict[Any, list[Message]] = {pk: [] for pk in by_id}
    for message in Message.objects.filter(conversation_id__in=by_id):
        messages[message.conversation_id].append(message)
    # Deleted since the list was read: left out.
    return [
        json.dumps(conversation_data(by_id[pk], Tree(messages[pk])), ensure_ascii=False)
        for pk in ids
        if pk in by_id
    ]


async def stream_account(owner: User) -> AsyncIterator[str]:
    """Every conversation of ``owner`` as one export file, a batch of conversations at a
    time, so a large account is never held in memory whole. Async: daphne sends each piece
    as it comes (a synchronous iterator would be read whole first)."""
    head = json.dumps(envelope())[:-1]
    yield head + ', "conversations": [\n'
    ids: list[Any] = await to_async(
        lambda: list(
            Conversation.objects.filter(owner_id=owner.pk, deleted_at=None)
            .order_by("-updated_at", "id")
            .values_list("pk", flat=True)
        )
    )()
    first = True
    for start in range(0, len(ids), _BATCH):
        for piece in await to_async(_batch)(ids[start : start + _BATCH]):
            yield piece if first else ",\n" + piece
            first = False
    yield "\n]}\n"


_STATUS_NOTES = {
    Message.Status.CANCELLED: "stopped",
    Message.Status.INTERRUPTED: "interrupted",
    Message.Status.ERROR: "failed",
    Message.Status.STREAMING: "still being written",
    Message.Status.PENDING: "waiting",
}
_ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


def export_markdown(conversation: Conversation) -> str:
    """The conversation to read: its title, system prompt and the branch it shows, each
    message with its role and time, the versions that exist beside it noted."""
    tree = Tree.of(conversation)
    lines = [f"# {_one_line(str(conversation))}", ""]
    lines.append(f"- Created: {_when(conversation.created_at)}")
    lines.append(f"- Last activity: {_when(conversation.updated_at)}")
    if conversation.model:
        lines.append(f"- Model: {conversation.model}")
    lines.append("")
    if conversation.system_prompt:
        lines += ["## System prompt", "", *_quoted(conversation.system_prompt), ""]
    shown = tree.branch(conversation.leaf_id)
    if not shown:
        lines += ["*No messages.*", ""]
    for message in shown:
        heading = [_ROLE_NAMES.get(message.role, message.role), _when(message.created_at)]
        if message.role == Message.Role.ASSISTANT and message.model:
            heading.append(message.model)
            if message.provider_name:
                heading.append(message.provider_name)
        if message.status in _STATUS_NOTES:
            heading.append(_STATUS_NOTES[Message.Status(message.status)])
        lines += ["---", "", f"### {' · '.join(heading)}", ""]
        versions = tree.versions(message)
        if len(versions) > 1:
            lines += [f"*Version {versions.index(message) + 1} of {len(versions)}.*", ""]
        lines += [message.content or "*(empty)*", ""]
        if message.error:
            lines += [f"> {_one_line(message.error)}", ""]
        if message.usage:
            usage = message.usage
            lines += [
                f"*{usage['prompt_tokens']} tokens in · {usage['completion_tokens']} out*",
                "",
            ]
    return "\n".join(lines)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.splitlines()]
