"""Reading an export file (``exports``, docs/export-format.md) back in, all or nothing.

Every conversation and message becomes a new row with a new id, owned by the importing
user: the ids in the file only link its messages to each other, and never name a row in
the database, whoever's it is. A file is checked whole before anything is written, and
written in one transaction; what is wrong is said once per problem, with where it is.
"""

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from streaming.exceptions import ChatError, ImportRefused
from streaming.models import Conversation, Message
from streaming.services.answers import INTERRUPTED_MESSAGE
from streaming.services.exports import FORMAT, VERSION
from streaming.services.user_settings import default_model
from streaming.text import check_storable

Status = Message.Status

# Problems listed before the rest are only counted: enough to fix a file by.
_MAX_PROBLEMS = 20
# Conversation.title's and the model fields' max_length; Message.finish_reason's.
_TITLE_MAX_CHARS = 200
_MODEL_MAX_CHARS = 200
_PROVIDER_NAME_MAX_CHARS = Message._meta.get_field("provider_name").max_length or 100
_FINISH_REASON_MAX_CHARS = 32
# The ids in a file are the export's UUIDs, or any short label in a file written by hand.
_ID_MAX_CHARS = 100
# What a PositiveIntegerField holds on every database.
_MAX_TOKENS = 2_147_483_647
# What a message still being written, or waiting, in the file becomes: its stream is long
# gone, so it is an answer that was interrupted, never a live one.
_NOT_LIVE = {Status.STREAMING, Status.PENDING}


# What a form's upload adds to the file: the multipart boundaries and headers, the CSRF token.
_FORM_OVERHEAD_BYTES = 64 * 1024


def check_size(size: int) -> None:
    """Refuse a file larger than IMPORT_MAX_BYTES, before it is parsed."""
    limit = settings.IMPORT_MAX_BYTES
    if size > limit:
        raise ImportRefused(
            [f"The file is {size:,} bytes; the largest that can be imported is {limit:,}."]
        )


def check_upload_size(content_length: str | None) -> None:
    """Refuse an upload whose declared length is beyond any file check_size allows, before
    the form is parsed (and its file written to a temporary one)."""
    try:
        declared = int(content_length or 0)
    except ValueError:
        return  # the parsed file's own size is checked then
    if declared > settings.IMPORT_MAX_BYTES + _FORM_OVERHEAD_BYTES:
        limit = settings.IMPORT_MAX_BYTES
        raise ImportRefused(
            [
                f"The upload is {declared:,} bytes; the largest file that can be imported "
                f"is {limit:,}."
            ]
        )


@dataclass
class _MessageIn:
    key: str
    parent_key: str | None
    fields: dict[str, Any]


@dataclass
class _ConversationIn:
    fields: dict[str, Any]
    leaf_key: str | None
    messages: list[_MessageIn] = field(default_factory=list)


class _Reader:
    """Checks a parsed file, collecting every problem with where it is."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.now = timezone.now()

    def problem(self, where: str, text: str) -> None:
        self.problems.append(f"{where}: {text}" if where else text)

    def fields(
        self, value: Any, where: str, required: set[str], optional: set[str]
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(where, f"must be an object, not {_kind(value)}.")
            return None
        missing = sorted(required - value.keys())
        for name in missing:
            self.problem(where, f'the field "{name}" is missing.')
        for name in sorted(value.keys() - required - optional):
            self.problem(where, f'unknown field "{name}".')
        return None if missing else value

    def text(
        self, value: Any, where: str, limit: int, *, blank: bool = True, default: str = ""
    ) -> str:
        if value is None and blank:
            return default
        if not isinstance(value, str):
            self.problem(where, f"must be text, not {_kind(value)}.")
            return default
        if not blank and not value.strip():
            self.problem(where, "must not be empty.")
        if len(value) > limit:
            self.problem(where, f"is {len(value):,} characters long; the limit is {limit:,}.")
        try:
            check_storable(value, what="The text")
        except ChatError as exc:
            self.problem(where, exc.message)
        return value

    def tokens(self, value: Any, where: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"must be a whole number or null, not {_kind(value)}.")
            return None
        if not 0 <= value <= _MAX_TOKENS:
            self.problem(where, f"must be between 0 and {_MAX_TOKENS:,}.")
            return None
        return value

    def moment(self, value: Any, where: str) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if moment.tzinfo is not None:
                    # Never later than now: a message "from the future" would count in
                    # every time window (the rate limit's) and top the list for ever.
                    return min(moment, self.now)
        self.problem(where, "must be a date and time with its offset (ISO 8601).")
        return None

    def choice(self, value: Any, where: str, choices: list[str], default: str) -> str:
        if value is None:
            return default
        if value not in choices:
            self.problem(where, f"must be one of {', '.join(choices)}, not {_short(value)}.")
            return default
        return str(value)

    def key(self, value: Any, where: str, *, nullable: bool) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value or len(value) > _ID_MAX_CHARS:
            self.problem(where, f"must be an id (text of 1 to {_ID_MAX_CHARS} characters).")
            return None
        return value


def parse(raw: bytes) -> list[_ConversationIn]:
    """The conversations of an export file, checked; ImportRefused listing every problem."""
    check_size(len(raw))
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise ImportRefused(["The file is not UTF-8 text: is it an export of this site?"]) from None
    except json.JSONDecodeError as exc:
        raise ImportRefused(
            [f"The file is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}."]
        ) from None
    except (ValueError, RecursionError):  # NaN or Infinity; nesting deeper than Python's stack
        raise ImportRefused(["The file is not valid JSON."]) from None
    reader = _Reader()
    top = reader.fields(document, "", {"format", "version", "conversations"}, {"exported_at"})
    if top is None or reader.problems:
        raise ImportRefused(reader.problems)
    if top["format"] != FORMAT:
        raise ImportRefused([f'"format" must be "{FORMAT}": this is not an export of this site.'])
    version = top["version"]
    if version != VERSION or isinstance(version, bool):
        raise ImportRefused(
            [f"The file is format version {_short(version)}; this site reads version {VERSION}."]
        )
    if not isinstance(top["conversations"], list):
        raise ImportRefused([f'"conversations" must be a list, not {_kind(top["conversations"])}.'])
    conversations = [
        _conversation(reader, value, f"conversation {n + 1}")
        for n, value in enumerate(top["conversations"])
    ]
    if reader.problems:
        problems = reader.problems[:_MAX_PROBLEMS]
        if len(reader.problems) > _MAX_PROBLEMS:
            problems.append(f"… and {len(reader.problems) - _MAX_PROBLEMS} more.")
        raise ImportRefused(problems)
    return [c for c in conversations if c is not None]


def _conversation(reader: _Reader, value: Any, where: str) -> _ConversationIn | None:
    data = reader.fields(
        value,
        where,
        {"messages"},
        {"id", "title", "system_prompt", "model", "created_at", "updated_at", "leaf_id"},
    )
    if data is None:
        return None
    reader.key(data.get("id"), f"{where}, id", nullable=True)
    conversation = _ConversationIn(
        fields={
            "title": reader.text(data.get("title"), f"{where}, title", _TITLE_MAX_CHARS),
            "system_prompt": reader.text(
                data.get("system_prompt"),
                f"{where}, system_prompt",
                settings.MAX_SYSTEM_PROMPT_CHARS,
            ),
            "model": reader.text(data.get("model"), f"{where}, model", _MODEL_MAX_CHARS),
            "created_at": reader.moment(data.get("created_at"), f"{where}, created_at"),
            "updated_at": reader.moment(data.get("updated_at"), f"{where}, updated_at"),
        },
        leaf_key=reader.key(data.get("leaf_id"), f"{where}, leaf_id", nullable=True),
    )
    if not isinstance(data["messages"], list):
        reader.problem(f"{where}, messages", f"must be a list, not {_kind(data['messages'])}.")
        return conversation
    for n, item in enumerate(data["messages"]):
        message = _message(reader, item, f"{where}, message {n + 1}")
        if message is not None:
            conversation.messages.append(message)
    _check_tree(reader, conversation, where)
    return conversation


def _message(reader: _Reader, value: Any, where: str) -> _MessageIn | None:
    data = reader.fields(
        value,
        where,
        {"id", "role", "content"},
        {
            "parent_id",
            "status",
            "model",
            "provider",
            "finish_reason",
            "prompt_tokens",
            "completion_tokens",
            "error",
            "created_at",
        },
    )
    if data is None:
        return None
    role = reader.choice(data["role"], f"{where}, role", Message.Role.values, "")
    # The limits of live messages: what a user may send, what an answer may grow to.
    limits = {
        Message.Role.USER: settings.MAX_MESSAGE_CHARS,
        Message.Role.ASSISTANT: settings.STREAM_MAX_ANSWER_CHARS,
        Message.Role.SYSTEM: settings.MAX_SYSTEM_PROMPT_CHARS,
    }
    content = reader.text(
        data["content"],
        f"{where}, content",
        limits.get(role, settings.MAX_MESSAGE_CHARS),  # type: ignore[call-overload]
        blank=role != Message.Role.USER,
    )
    status = reader.choice(data.get("status"), f"{where}, status", Status.values, Status.COMPLETE)
    error = reader.text(data.get("error"), f"{where}, error", settings.MAX_MESSAGE_CHARS)
    if status in _NOT_LIVE:
        status, error = Status.INTERRUPTED, error or INTERRUPTED_MESSAGE
    key = reader.key(data["id"], f"{where}, id", nullable=False)
    parent_key = reader.key(data.get("parent_id"), f"{where}, parent_id", nullable=True)
    created_at = reader.moment(data.get("created_at"), f"{where}, created_at")
    fields: dict[str, Any] = {
        "role": role,
        "content": content,
        "status": status,
        "model": reader.text(data.get("model"), f"{where}, model", _MODEL_MAX_CHARS),
        "provider_name": reader.text(
            data.get("provider"), f"{where}, provider", _PROVIDER_NAME_MAX_CHARS
        ),
        "finish_reason": reader.text(
            data.get("finish_reason"), f"{where}, finish_reason", _FINISH_REASON_MAX_CHARS
        ),
        "prompt_tokens": reader.tokens(data.get("prompt_tokens"), f"{where}, prompt_tokens"),
        "completion_tokens": reader.tokens(
            data.get("completion_tokens"), f"{where}, completion_tokens"
        ),
        "error": error,
    }
    if created_at is not None:
        fields["created_at"] = created_at
    return _MessageIn(key=key or "", parent_key=parent_key, fields=fields)


def _check_tree(reader: _Reader, conversation: _ConversationIn, where: str) -> None:
    """Parents and the leaf name messages of this conversation, once each, with no loop."""
    by_key: dict[str, _MessageIn] = {}
    for message in conversation.messages:
        if message.key in by_key:
            reader.problem(where, f'two messages have the id "{message.key}".')
        by_key[message.key] = message
    for n, message in enumerate(conversation.messages):
        if message.parent_key is not None and message.parent_key not in by_key:
            reader.problem(
                f"{where}, message {n + 1}, parent_id",
                f'"{message.parent_key}" is no message of this conversation.',
            )
    if conversation.leaf_key is not None and conversation.leaf_key not in by_key:
        reader.problem(
            f"{where}, leaf_id", f'"{conversation.leaf_key}" is no message of this conversation.'
        )
    done: set[str] = set()
    for start in conversation.messages:
        path: set[str] = set()
        node: _MessageIn | None = start
        while node is not None and node.key not in done:
            if node.key in path:
                reader.problem(
                    where, f'the message "{node.key}" follows itself, through its parents.'
                )
                break
            path.add(node.key)
            node = by_key.get(node.parent_key) if node.parent_key else None
        done.update(path)


def do_import(owner: User, raw: bytes) -> list[Conversation]:
    """Import an export file as new conversations of ``owner``, all or none.

    Raises ImportRefused, having written nothing, for a file with any problem.
    """
    parsed = parse(raw)
    created = []
    with transaction.atomic():
        for conversation_in in parsed:
            created.append(_create(owner, conversation_in))
    return created


def _create(owner: User, conversation_in: _ConversationIn) -> Conversation:
    fields = conversation_in.fields
    # The file's model is not taken: it would let a file choose any model of the site's
    # provider, which the picker does not offer. It goes on with the importer's default.
    provider_id, model = default_model(owner.pk)
    conversation = Conversation.objects.create(
        owner=owner,
        title=fields["title"].strip(),
        system_prompt=fields["system_prompt"],
        provider_id=provider_id,
        model=model,
    )
    # New ids for every message; the file's only link its messages to each other.
    new_ids = {m.key: uuid.uuid4() for m in conversation_in.messages}
    # A message without a time (a file written by hand) is "now", a microsecond after the
    # one before it in the file: versions keep the file's order (tree.py orders by time).
    now = timezone.now()
    untimed = {
        m.key: now + timedelta(microseconds=n) for n, m in enumerate(conversation_in.messages)
    }
    Message.objects.bulk_create(
        Message(
            id=new_ids[m.key],
            conversation=conversation,
            parent_id=new_ids[m.parent_key] if m.parent_key else None,
            imported=True,
            **{"created_at": untimed[m.key], **m.fields},
        )
        for m in _parents_first(conversation_in.messages)
    )
    # Its times as the file says (auto_now would make them now), and the branch it showed.
    times = {
        name: fields[name] for name in ("created_at", "updated_at") if fields[name] is not None
    }
    leaf = new_ids[conversation_in.leaf_key] if conversation_in.leaf_key else None
    Conversation.objects.filter(pk=conversation.pk).update(leaf_id=leaf, **times)
    conversation.refresh_from_db()
    return conversation


def _parents_first(messages: list[_MessageIn]) -> list[_MessageIn]:
    """The messages ordered so that each comes after its parent (the tree has no loop)."""
    children: dict[str | None, list[_MessageIn]] = {}
    for message in messages:
        children.setdefault(message.parent_key, []).append(message)
    ordered = list(children.get(None, []))
    for message in ordered:  # grows as it goes: breadth first, without recursion
        ordered.extend(children.get(message.key, []))
    return ordered


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true or false"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"
