"""Conversations written out as files: JSON that ``imports`` reads back, and Markdown to read.

The JSON format is documented, with its versions, in docs/export-format.md. One conversation
and all of a user's are the same document: an envelope with a list of conversations. Where
their messages carry attached files, the document names each (``Files``) and goes into a
ZIP with them (``export_zip``); without files it is the plain JSON file it always was.
"""

import json
import os
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from streaming.intake import size_words
from streaming.models import Attachment, Conversation, Message
from streaming.services import branch
from streaming.services.database import to_async

FORMAT = "chatsite-export"
#: Raised whenever a field's meaning changes or one is added. Version 2 added the messages'
#: ``attachments``, which only a ZIP holds the files of.
VERSION = 2
#: Version 1: the same file without attachments. An export without files is still written as
#: it, so that a site that reads version 1 only reads it too.
PLAIN_VERSION = 1
#: The versions ``imports`` reads.
VERSIONS = (PLAIN_VERSION, VERSION)
#: In a ZIP export: the JSON document, and the folder of the files its messages name.
JSON_MEMBER = "conversations.json"
FILES_FOLDER = "files/"
# Messages read from the database at a time.
_MESSAGES = 1000

Piece = TypeVar("Piece", str, bytes)


def envelope(exported_at: datetime | None = None, version: int = PLAIN_VERSION) -> dict[str, Any]:
    """The fields of an export file around its conversations."""
    return {
        "format": FORMAT,
        "version": version,
        "exported_at": (exported_at or timezone.now()).isoformat(),
    }


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    """One conversation's fields in the file; its messages follow (``_conversation_pieces``)."""
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "model": conversation.model,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "leaf_id": str(conversation.leaf_id) if conversation.leaf_id else None,
    }


# A message's columns an export reads: plain rows, not models (a model instance costs
# more than writing the message out).
_FIELDS = (
    "id",
    "parent_id",
    "role",
    "content",
    "status",
    "model",
    "provider_name",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "created_at",
    "attached",
)


def _message_data(row: dict[str, Any], attachments: list[dict[str, Any]] | None) -> dict[str, Any]:
    # Not control.serialize_message: the file's format is versioned on its own, and must
    # not change when the live frames do.
    data = {
        "id": str(row["id"]),
        "parent_id": str(row["parent_id"]) if row["parent_id"] else None,
        "role": row["role"],
        "content": row["content"],
        "status": row["status"],
        "model": row["model"],
        "provider": row["provider_name"],
        "finish_reason": row["finish_reason"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "error": row["error"],
        "created_at": row["created_at"].isoformat(),
    }
    if attachments:
        data["attachments"] = attachments
    return data


class Member(NamedTuple):
    """A file of a ZIP export: where the attachments storage keeps it, what it is."""

    stored: str
    kind: str
    size: int


class Files:
    """The files an export's messages name, each once (by its SHA-256): where the ZIP holds
    it (``files/<sha256><ext>``) and what it is. A few hundred bytes a file, as the ZIP's
    own directory of its members takes."""

    def __init__(self) -> None:
        #: By their path in the ZIP, in the order the export first named them.
        self.members: dict[str, Member] = {}

    def entries(self, rows: list[dict[str, Any]]) -> dict[Any, list[dict[str, Any]]]:
        """The attachments of the messages ``rows`` (a batch), by message id, in the order
        each message names them; one query, for the batch's messages that carry any."""
        carrying = [row["id"] for row in rows if row["attached"]]
        if not carrying:
            return {}
        through = Attachment.messages.through.objects.filter(message_id__in=carrying)
        found: dict[Any, dict[str, Attachment]] = {}
        for link in through.select_related("attachment").defer("attachment__text"):
            found.setdefault(link.message_id, {})[str(link.attachment_id)] = link.attachment
        entries = {}
        for row in rows:
            carried = found.get(row["id"], {})
            entries[row["id"]] = [
                self._entry(carried[shown["id"]])
                for shown in row["attached"]
                if shown["id"] in carried
            ]
        return entries

    def _entry(self, attachment: Attachment) -> dict[str, Any]:
        stored = str(attachment.file.name)
        path = f"{FILES_FOLDER}{attachment.sha256}{os.path.splitext(stored)[1]}"
        self.members.setdefault(path, Member(stored, attachment.kind, attachment.size))
        return {
            "id": str(attachment.pk),
            "kind": attachment.kind,
            "name": attachment.name,
            "content_type": attachment.content_type,
            "size": attachment.size,
            "sha256": attachment.sha256,
            "width": attachment.width,
            "height": attachment.height,
            "path": path,
        }


def with_files(conversations: QuerySet[Conversation]) -> bool:
    """Whether a message of ``conversations`` carries a file: their export is then a ZIP."""
    links = Attachment.messages.through.objects.filter(message__conversation__in=conversations)
    return links.exists()


def export_json(conversations: Iterable[Conversation]) -> str:
    """An export file of ``conversations``, whole (the admin's few chosen ones; a page
    streams ``json_pieces``)."""
    return "".join(json_pieces(conversations))


def json_pieces(conversations: Iterable[Conversation], files: Files | None = None) -> Iterator[str]:
    """An export file of ``conversations``, a batch of messages at a time: each piece is
    read from the database when the one before has been taken, so no conversation is ever
    held whole, however long it is. With ``files``, the messages name their attachments
    (version 2), which ``files`` collects for the ZIP; without, they do not (version 1)."""
    version = PLAIN_VERSION if files is None else VERSION
    yield json.dumps(envelope(version=version))[:-1] + ', "conversations": [\n'
    first = True
    for conversation in conversations:
        if not first:
            yield ",\n"
        first = False
        yield from _conversation_pieces(conversation, files)
    yield "\n]}\n"


def _conversation_pieces(conversation: Conversation, files: Files | None) -> Iterator[str]:
    data = conversation_data(conversation)
    yield json.dumps(data, ensure_ascii=False)[:-1] + ', "messages": ['
    separator = ""
    for batch in messages_in_order(conversation.pk):
        carried = files.entries(batch) if files is not None else {}
        yield separator + ",".join(
            json.dumps(_message_data(m, carried.get(m["id"])), ensure_ascii=False) for m in batch
        )
        separator = ","
    yield "]}"


def messages_in_order(
    conversation_id: Any, size: int = _MESSAGES
) -> Iterator[list[dict[str, Any]]]:
    """The conversation's messages in the order they were written (``Tree``'s), ``size``
    at a time: each batch one query that starts after the last one read (the index on
    conversation and time), so nothing is held between batches."""
    messages = (
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("created_at", "id")
        .values(*_FIELDS)
    )
    batch = list(messages[:size])
    while batch:
        yield batch
        last = batch[-1]
        # From the last one read on, in one range of the index (an OR of the two conditions
        # would be read from the conversation's start at every batch).
        after = messages.filter(created_at__gte=last["created_at"]).exclude(
            created_at=last["created_at"], id__lte=last["id"]
        )
        batch = list(after[:size])


def account_conversations(owner: User) -> QuerySet[Conversation]:
    """The conversations an account's export holds: the owner's, but those deleted."""
    return Conversation.objects.filter(owner_id=owner.pk, deleted_at=None)


def account_pieces(owner: User, files: Files | None = None) -> Iterator[str]:
    """Every conversation of ``owner`` as one export file (``json_pieces``), newest first;
    one deleted since the list was read is left out."""
    ids = list(
        account_conversations(owner).order_by("-updated_at", "id").values_list("pk", flat=True)
    )
    yield from json_pieces(
        (
            conversation
            for pk in ids
            if (conversation := Conversation.objects.filter(pk=pk, deleted_at=None).first())
        ),
        files,
    )


async def streamed(pieces: Iterator[Piece]) -> AsyncIterator[Piece]:
    """``pieces`` for a StreamingHttpResponse: each read on a database thread as daphne
    asks for it, and sent as it comes (a synchronous iterator would be read whole first)."""
    step = to_async(lambda: next(pieces, None))
    while (piece := await step()) is not None:
        yield piece


_STATUS_NOTES = {
    Message.Status.CANCELLED: "stopped",
    Message.Status.INTERRUPTED: "interrupted",
    Message.Status.ERROR: "failed",
    Message.Status.STREAMING: "still being written",
    Message.Status.PENDING: "waiting",
}
_ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}


def export_markdown(conversation: Conversation) -> str:
    """The conversation to read, whole (``markdown_pieces``)."""
    return "".join(markdown_pieces(conversation))


def markdown_pieces(conversation: Conversation) -> Iterator[str]:
    """The conversation to read: its title, system prompt and the branch it shows, each
    message with its role and time, the versions that exist beside it noted; a batch of
    messages at a time (``branch.shown``: the branch's ids, read once, compact)."""
    lines = [f"# {_one_line(str(conversation))}", ""]
    lines.append(f"- Created: {_when(conversation.created_at)}")
    lines.append(f"- Last activity: {_when(conversation.updated_at)}")
    if conversation.model:
        lines.append(f"- Model: {conversation.model}")
    lines.append("")
    if conversation.system_prompt:
        lines += ["## System prompt", "", *_quoted(conversation.system_prompt), ""]
    shown = branch.shown(conversation)
    if not len(shown):
        lines += ["*No messages.*", ""]
    yield _text(lines)
    if shown.in_time_order:
        yield from _branch_by_time(conversation, shown)
        return
    for start in range(0, len(shown), _MESSAGES):
        part = shown.part(start, _MESSAGES)
        rows = Message.objects.filter(pk__in=[key for key, _, _ in part]).values(*_FIELDS)
        found = {row["id"]: row for row in rows}
        yield _text(
            [
                line
                for key, version, versions in part
                if key in found  # deleted since the branch was read
                for line in _message_lines(found[key], version, versions)
            ]
        )


def _branch_by_time(conversation: Conversation, shown: branch.Branch) -> Iterator[str]:
    """The branch's messages read in the index's order (conversation, time), the other
    versions passed over: one range of the index a batch, where reading them by id costs
    a lookup each."""
    n = 0
    for batch in messages_in_order(conversation.pk):
        lines = []
        for row in batch:
            if shown.is_at(n, row["id"]):
                lines += _message_lines(row, *shown.place(n))
                n += 1
        yield _text(lines)


def _message_lines(row: dict[str, Any], version: int, versions: int) -> list[str]:
    heading = [_ROLE_NAMES.get(row["role"], row["role"]), _when(row["created_at"])]
    if row["role"] == Message.Role.ASSISTANT and row["model"]:
        heading.append(row["model"])
        if row["provider_name"]:
            heading.append(row["provider_name"])
    if row["status"] in _STATUS_NOTES:
        heading.append(_STATUS_NOTES[Message.Status(row["status"])])
    lines = ["---", "", f"### {' · '.join(heading)}", ""]
    if versions > 1:
        lines += [f"*Version {version} of {versions}.*", ""]
    lines += [row["content"] or "*(empty)*", ""]
    if row["attached"]:
        lines += ["Attached:", *(_file_line(shown) for shown in row["attached"]), ""]
    if row["error"]:
        lines += [f"> {_one_line(row['error'])}", ""]
    prompt, completion = row["prompt_tokens"], row["completion_tokens"]
    if prompt is not None or completion is not None:  # as Message.usage
        lines += [f"*{prompt or 0} tokens in · {completion or 0} out*", ""]
    return lines


def _file_line(shown: dict[str, Any]) -> str:
    """A file a message carries, by its name, in a list: "- `notes.py` (text, 1.2 kB)"; the
    name a code span, so nothing in it reads as Markdown."""
    name = _one_line(shown["name"])
    fence = "`" * (max((len(run) for run in re.findall(r"`+", name)), default=0) + 1)
    pad = " " if name.startswith("`") or name.endswith("`") else ""
    return f"- {fence}{pad}{name}{pad}{fence} ({shown['kind']}, {size_words(shown['size'])})"


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.splitlines()]
