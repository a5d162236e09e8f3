"""Reading an export file (``exports``, docs/export-format.md) back in, all or nothing.

Every conversation and message becomes a new row with a new id, owned by the importing
user: the ids in the file only link its messages to each other, and never name a row in
the database, whoever's it is. The file is read as a stream of JSON events (ijson) and
written in batches as it is read, in one transaction that a problem anywhere rolls back:
memory holds one message and a batch at a time, and a few bytes per message for the links
between them, whatever the file's size. What is wrong is said once per problem, with where
it is; past the first few (``import_checks``) only counted.
"""

from datetime import timedelta
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import JSONField
from django.utils import timezone
from psycopg.types.json import Jsonb

from streaming import metrics
from streaming.exceptions import ErrorCode, ImportRefused
from streaming.models import Attachment, Conversation, Import, Message
from streaming.services import attachments, import_files, storage
from streaming.services.answers import INTERRUPTED_MESSAGE
from streaming.services.exports import FORMAT, VERSIONS
from streaming.services.import_checks import Checker, Links, short
from streaming.services.import_events import Events, Readable, event_kind
from streaming.services.quotas import lock_owner, start_of_day
from streaming.services.user_settings import default_model

Status = Message.Status

# Conversation.title's and the model fields' max_length; Message.finish_reason's.
_TITLE_MAX_CHARS = 200
_MODEL_MAX_CHARS = 200
_PROVIDER_NAME_MAX_CHARS = Message._meta.get_field("provider_name").max_length or 100
_FINISH_REASON_MAX_CHARS = 32
# What a message still being written, or waiting, in the file becomes: its stream is long
# gone, so it is an answer that was interrupted, never a live one.
_NOT_LIVE = {Status.STREAMING, Status.PENDING}
# Messages written in one statement.
_BATCH = 1000
# What a form's upload adds to the file: the multipart boundaries and headers, the CSRF token.
_FORM_OVERHEAD_BYTES = 64 * 1024
# The key of the PostgreSQL advisory lock an import holds for its user (with their id).
_IMPORT_LOCK = 0x1A7_0A7

# The choices, listed once: Django's enums make a new list each time they are asked.
_ROLES = Message.Role.values
_STATUSES = Status.values
_CONVERSATION_FIELDS = {"id", "title", "system_prompt", "model", "created_at", "updated_at"}
_MESSAGE_FIELDS = {
    "parent_id",
    "status",
    "model",
    "provider",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "created_at",
    "attachments",
}


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


def do_import(owner: User, file: IO[bytes] | bytes) -> list[Conversation]:
    """Import an export file (JSON, or a ZIP of it with the files its messages name) as new
    conversations of ``owner``, all or none.

    Raises ImportRefused, having written nothing of the file (the files it stored removed
    again): for a file with any problem (``bad_import``), one that would take the owner
    past their storage quota (``storage_full``), while another import of theirs runs
    (``import_running``), and past IMPORTS_PER_DAY imports today (``imports_per_day``).
    """
    _count_import(owner)
    storage.counted(owner.pk)
    document, archive = import_files.open_export(file)
    files = import_files.Kept(archive, owner.pk)
    try:
        with transaction.atomic():
            _one_at_a_time(owner)
            writer = _Writer(owner, storage.room(owner.pk), files)
            _read(document, writer)
            storage.add(owner.pk, writer.chars)
    except BaseException:
        files.remove()
        raise
    finally:
        if archive is not None:
            archive.close()
    for size in files.sizes:
        metrics.attachment_stored(size)
    return writer.created


def parse(raw: bytes) -> int:
    """Check an export file held in memory (JSON or ZIP), writing nothing: ImportRefused
    listing every problem, else how many conversations it holds."""
    check_size(len(raw))
    document, archive = import_files.open_export(raw)
    writer = _Writer(None, None, import_files.Kept(archive, None))
    _read(document, writer)
    return writer.conversations


def _count_import(owner: User) -> None:
    """Record an import of ``owner``'s, in a transaction of its own so that a refused one
    counts too; refused past IMPORTS_PER_DAY since midnight UTC."""
    limit = settings.IMPORTS_PER_DAY
    with transaction.atomic():
        # One count at a time per user, so two uploads at once cannot both take the last.
        lock_owner(owner.pk)
        today = Import.objects.filter(owner=owner, started_at__gte=start_of_day(timezone.now()))
        if limit and today.count() >= limit:
            raise ImportRefused(
                [f"You have imported {limit} files today, the most a day; try again tomorrow."],
                code=ErrorCode.IMPORTS_PER_DAY,
            )
        Import.objects.create(owner=owner)


def _one_at_a_time(owner: User) -> None:
    """Refuse at once while another import of ``owner``'s runs, on any process: the first
    holds a PostgreSQL advisory lock until its transaction ends (SQLite runs one writing
    transaction at a time anyway)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_IMPORT_LOCK, owner.pk])
        (taken,) = cursor.fetchone()
    if not taken:
        raise ImportRefused(
            ["Another import of yours is running: wait for it to end, then try again."],
            code=ErrorCode.IMPORT_RUNNING,
        )


# Every column of a message, and what an imported one holds where the file says nothing.
_COLUMNS = [(f.attname, str(f.column)) for f in Message._meta.concrete_fields]
_JSON = {f.attname for f in Message._meta.concrete_fields if isinstance(f, JSONField)}
_DEFAULTS = {
    f.attname: f.get_default()
    for f in Message._meta.concrete_fields
    if f.attname not in ("id", "created_at", "updated_at")
} | {"imported": True}


class _Writer:
    """Writes what is read while the file has no problem, a batch of messages at a time;
    after the first problem only checks. ``owner`` None: checks only.

    On PostgreSQL a batch is one COPY of plain rows, with no model instance made for any:
    the ORM's bulk_create (model instances, SQL compiled per batch) was over half of the
    import's time (docs/performance.md). The foreign keys are checked at the commit (Django makes
    them deferred), so a message may name a parent that comes later in the file.
    """

    def __init__(self, owner: User | None, room: int | None, files: import_files.Kept) -> None:
        self.owner = owner
        self.room = room
        self.files = files
        self.checker = Checker()
        self.created: list[Conversation] = []
        self.conversations = 0
        self.chars = 0
        self._batch: list[dict[str, Any]] = []

    @property
    def writing(self) -> bool:
        return self.owner is not None and self.checker.count == 0

    def conversation(self) -> Conversation | None:
        """A new conversation's row, given its fields when its end is read."""
        if not self.writing:
            return None
        assert self.owner is not None
        # The file's model is not taken: it would let a file choose any model of the site's
        # provider, which the picker does not offer. It goes on with the importer's default.
        provider_id, model = default_model(self.owner.pk)
        conversation = Conversation.objects.create(
            owner=self.owner, provider_id=provider_id, model=model
        )
        self.created.append(conversation)
        return conversation

    def message(self, row: dict[str, Any], files: list[Attachment]) -> None:
        """Write a message's row (every field but the defaults'), in the next batch, and its
        links to ``files`` (kept by ``self.files``)."""
        self.count(len(row["content"]))
        if self.writing:
            self._batch.append(row | attachments.fields_for(files) if files else row)
            self.files.link(row["id"], files)
            if len(self._batch) >= _BATCH:
                self.flush()

    def count(self, chars: int) -> None:
        """Count ``chars`` more of message text or file bytes against the owner's room."""
        self.chars += chars
        if self.room is not None and self.chars > self.room:
            raise ImportRefused(
                [
                    f"The file holds more message text and attached files than your storage "
                    f"has room for ({self.room:,} more characters; a byte of a file counts as "
                    "one). Delete conversations you no longer need to make room."
                ],
                code=ErrorCode.STORAGE_FULL,
            )

    def flush(self) -> None:
        if self.writing and self._batch:
            if connection.vendor == "postgresql":
                _copy(self._batch)
            else:
                Message.objects.bulk_create(Message(**(_DEFAULTS | row)) for row in self._batch)
            self.files.flush()
        self._batch = []


def _copy(rows: list[dict[str, Any]]) -> None:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for _, column in _COLUMNS)
    statement = f"COPY {quote(str(Message._meta.db_table))} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for row in rows:
            full = _DEFAULTS | row
            # A list would be written as a PostgreSQL array ([] as "{}", an empty object
            # to jsonb): JSON columns are written as JSON.
            copy.write_row([Jsonb(full[n]) if n in _JSON else full[n] for n, _ in _COLUMNS])


def _read(file: Readable, writer: _Writer) -> None:
    """Read the file, writing it through ``writer``; ImportRefused at its end if it had any
    problem (the caller's transaction rolls back what was written), or at once for one
    that makes the rest meaningless."""
    events = Events(file)
    checker = writer.checker
    first = events.next()
    if first[0] != "start_map":
        raise ImportRefused([f"The file must be an object, not {event_kind(first)}."])
    seen: set[str] = set()
    while (event := events.next())[0] != "end_map":
        name = event[1]
        seen.add(name)
        if name == "conversations":
            _conversations(events, writer)
        elif name in ("format", "version", "exported_at"):
            _envelope_field(name, events.value(events.next()))
        else:
            checker.problem("", f'unknown field "{name}".')
            events.skip(events.next())
    events.end()
    for name in sorted({"format", "version", "conversations"} - seen):
        checker.problem("", f'the field "{name}" is missing.')
    writer.flush()
    if checker.count:
        raise ImportRefused(checker.listed())


def _envelope_field(name: str, value: Any) -> None:
    if name == "format" and value != FORMAT:
        raise ImportRefused([f'"format" must be "{FORMAT}": this is not an export of this site.'])
    if name == "version" and (value not in VERSIONS or isinstance(value, bool)):
        raise ImportRefused(
            [
                f"The file is format version {short(value)}; this site reads versions "
                f"{' and '.join(map(str, VERSIONS))}."
            ]
        )


def _conversations(events: Events, writer: _Writer) -> None:
    first = events.next()
    if first[0] != "start_array":
        raise ImportRefused([f'"conversations" must be a list, not {event_kind(first)}.'])
    number = 0
    while (item := events.next())[0] != "end_array":
        number += 1
        where = f"conversation {number}"
        if item[0] != "start_map":
            writer.checker.problem(where, f"must be an object, not {event_kind(item)}.")
            events.skip(item)
            continue
        writer.conversations += 1
        _conversation(events, writer, where)


def _conversation(events: Events, writer: _Writer, where: str) -> None:
    """One conversation, from after its opening brace to its closing one."""
    checker = writer.checker
    row = writer.conversation()
    tree = Links(where)
    fields: dict[str, Any] = {}
    has_messages = False
    while (event := events.next())[0] != "end_map":
        name = event[1]
        if name == "messages":
            has_messages = True
            _messages(events, writer, tree, row)
        elif name in _CONVERSATION_FIELDS or name == "leaf_id":
            fields[name] = events.value(events.next())
        else:
            checker.problem(where, f'unknown field "{name}".')
            events.skip(events.next())
    if not has_messages:
        checker.problem(where, 'the field "messages" is missing.')
    checker.key(fields.get("id"), f"{where}, id", nullable=True)
    leaf_key = checker.key(fields.get("leaf_id"), f"{where}, leaf_id", nullable=True)
    values: dict[str, Any] = {
        "title": checker.text(fields.get("title"), f"{where}, title", _TITLE_MAX_CHARS).strip(),
        "system_prompt": checker.text(
            fields.get("system_prompt"), f"{where}, system_prompt", settings.MAX_SYSTEM_PROMPT_CHARS
        ),
    }
    checker.text(fields.get("model"), f"{where}, model", _MODEL_MAX_CHARS)
    for name in ("created_at", "updated_at"):
        moment = checker.moment(fields.get(name), f"{where}, {name}")
        if moment is not None:
            values[name] = moment
    tree.check(checker, leaf_key)
    writer.flush()
    if row is not None and writer.writing:
        # Its times as the file says (auto_now would make them now), and the branch it showed.
        Conversation.objects.filter(pk=row.pk).update(leaf_id=tree.leaf(leaf_key), **values)
        row.refresh_from_db()


def _messages(events: Events, writer: _Writer, tree: Links, row: Conversation | None) -> None:
    checker = writer.checker
    first = events.next()
    if first[0] != "start_array":
        checker.problem(f"{tree.where}, messages", f"must be a list, not {event_kind(first)}.")
        events.skip(first)
        return
    # A message without a time (a file written by hand) is "now", a microsecond after the
    # one before it in the file: versions keep the file's order (tree.py orders by time).
    now = timezone.now()
    limits = _limits()
    number = 0
    seen: dict[str, Attachment | None] = {}  # the files named so far, by their id in the file
    while (item := events.next())[0] != "end_array":
        number += 1
        where = f"{tree.where}, message {number}"
        value = events.value(item)
        read = _message(checker, value, where, limits)
        if read is None:
            continue
        key, parent_key, values = read
        files = writer.files.of_message(
            checker,
            value.get("attachments"),
            where,
            role=values["role"],
            seen=seen,
            conversation=row if writer.writing else None,
            count=writer.count,
        )
        at = tree.add(checker, number, key, parent_key)
        parent = tree.parents[at]
        writer.message(
            {
                "id": tree.new_id(at),
                "conversation_id": row.pk if row else None,
                "parent_id": tree.new_id(parent) if parent >= 0 else None,
                "created_at": now + timedelta(microseconds=number),
                "updated_at": now,
                **values,
            },
            files,
        )


def _limits() -> dict[str, int]:
    """The longest text of each role: what a live message may be (a user's, an answer
    grown to its limit, a system prompt); "" (a bad role) and errors as a user's."""
    return {
        Message.Role.USER: settings.MAX_MESSAGE_CHARS,
        Message.Role.ASSISTANT: settings.STREAM_MAX_ANSWER_CHARS,
        Message.Role.SYSTEM: settings.MAX_SYSTEM_PROMPT_CHARS,
        "": settings.MAX_MESSAGE_CHARS,
    }


def _message(
    checker: Checker, value: Any, where: str, limits: dict[str, int]
) -> tuple[str, str | None, dict[str, Any]] | None:
    """A message's id, its parent's id and its fields, checked; None if it is no object."""
    data = checker.fields(value, where, {"id", "role", "content"}, _MESSAGE_FIELDS)
    if data is None:
        return None
    role = checker.choice(data["role"], f"{where}, role", _ROLES, "")
    content = checker.text(
        data["content"], f"{where}, content", limits[role], blank=role != Message.Role.USER
    )
    status = checker.choice(data.get("status"), f"{where}, status", _STATUSES, Status.COMPLETE)
    error = checker.text(data.get("error"), f"{where}, error", limits[""])
    if status in _NOT_LIVE:
        status, error = Status.INTERRUPTED, error or INTERRUPTED_MESSAGE
    key = checker.key(data["id"], f"{where}, id", nullable=False)
    parent_key = checker.key(data.get("parent_id"), f"{where}, parent_id", nullable=True)
    created_at = checker.moment(data.get("created_at"), f"{where}, created_at")
    values: dict[str, Any] = {
        "role": role,
        "content": content,
        "status": status,
        "model": checker.text(data.get("model"), f"{where}, model", _MODEL_MAX_CHARS),
        "provider_name": checker.text(
            data.get("provider"), f"{where}, provider", _PROVIDER_NAME_MAX_CHARS
        ),
        "finish_reason": checker.text(
            data.get("finish_reason"), f"{where}, finish_reason", _FINISH_REASON_MAX_CHARS
        ),
        "prompt_tokens": checker.tokens(data.get("prompt_tokens"), f"{where}, prompt_tokens"),
        "completion_tokens": checker.tokens(
            data.get("completion_tokens"), f"{where}, completion_tokens"
        ),
        "error": error,
    }
    if created_at is not None:
        values["created_at"] = created_at
    return key or "", parent_key, values
