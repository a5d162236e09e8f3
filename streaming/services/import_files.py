"""The files of a ZIP export, for ``imports``: the archive bounded before anything in it is
read, and every file a message names read again as an upload is, trusting nothing the
archive says of it.

Before a byte is decompressed, the archive's directory is checked: at most MAX_MEMBERS
members, each ``conversations.json`` or a file right under ``files/`` (no other path: a
name is never used as a path here, files are kept under random names, but one that could
climb out of a folder is no export's), stored or deflated, not encrypted, and each within
its bound by the size its header declares: the JSON as a plain export file
(IMPORT_MAX_BYTES), a file as an upload (ATTACH_MAX_BYTES), all of them together
UNZIPPED_MULTIPLE times IMPORT_MAX_BYTES. zipfile never reads more of a member than its
declared size, so a header that lies costs nothing more (a zip bomb stops there, and fails
its CRC). A file a message names must be in the archive with the size and SHA-256 the
message gives it; ``intake`` then decides what it is by its bytes, as for an upload, and
what is kept (an image written anew) is stored under a random name and counted.
"""

import hashlib
import io
import re
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

from django.conf import settings

from streaming import intake
from streaming.exceptions import AttachmentRefused, ImportRefused
from streaming.models import Attachment, Conversation
from streaming.services import attachments
from streaming.services.exports import FILES_FOLDER, JSON_MEMBER
from streaming.services.import_checks import Checker, short
from streaming.services.import_events import Bytes, Readable
from streaming.uploads import attachment_storage

#: How a ZIP starts (its first member's local header).
ZIP_SIGNATURE = b"PK\x03\x04"
#: The most members an archive may have: far more files than messages carry.
MAX_MEMBERS = 10_000
#: What all members may add up to once decompressed, in IMPORT_MAX_BYTES.
UNZIPPED_MULTIPLE = 4
# A file's place in the archive, as an export names it (files/<sha256><ext>), or near it.
_FILE_MEMBER = re.compile(re.escape(FILES_FOLDER) + r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}\Z")
# What zipfile and zlib raise for a member they cannot read whole.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError)
_ENTRY_REQUIRED = {"path", "name", "size", "sha256"}
_ENTRY_OPTIONAL = {"id", "kind", "content_type", "width", "height"}
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_NAME_MAX_CHARS = Attachment._meta.get_field("name").max_length or 255


def open_export(file: IO[bytes] | bytes) -> "tuple[Readable, Archive | None]":
    """The export's JSON document to read, and the archive it came in (None: plain JSON)."""
    if isinstance(file, bytes):
        if not file.startswith(ZIP_SIGNATURE):
            return Bytes(file), None
        file = io.BytesIO(file)
    else:
        head = file.read(len(ZIP_SIGNATURE))
        file.seek(0)
        if head != ZIP_SIGNATURE:
            return file, None
    archive = Archive(file)
    return archive.document(), archive


class Archive:
    """A ZIP export whose directory passed the bounds (module docstring); ImportRefused
    listing what is wrong with it, before anything in it is read."""

    def __init__(self, file: IO[bytes]) -> None:
        try:
            self.zip = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, ValueError, OSError):
            raise ImportRefused(["The file starts as a ZIP, but cannot be read as one."]) from None
        checker = Checker()
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS + 2:  # the JSON, and a folder entry for files/
            raise ImportRefused(
                [f"The ZIP holds {len(infos):,} files; an export holds at most {MAX_MEMBERS:,}."]
            )
        self.files: dict[str, zipfile.ZipInfo] = {}
        names: set[str] = set()
        total = 0
        for info in infos:
            name = info.filename
            if name in names:
                checker.problem(short(name), "is in the ZIP twice.")
            names.add(name)
            if info.is_dir() and name == FILES_FOLDER:
                continue
            limit = _limit(name)
            if limit is None:
                checker.problem(
                    short(name),
                    f"is no part of an export: it holds {JSON_MEMBER} and files under "
                    f"{FILES_FOLDER} only.",
                )
                continue
            if info.flag_bits & 0x1:
                checker.problem(short(name), "is encrypted.")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                checker.problem(short(name), "is compressed otherwise than an export is.")
            if info.file_size > limit:
                checker.problem(
                    short(name), f"is {info.file_size:,} bytes; the limit is {limit:,}."
                )
            total += info.file_size
            if name != JSON_MEMBER:
                self.files[name] = info
        most = UNZIPPED_MULTIPLE * settings.IMPORT_MAX_BYTES
        if total > most:
            checker.problem("", f"The ZIP holds {total:,} bytes unpacked; the limit is {most:,}.")
        if JSON_MEMBER not in names:
            checker.problem("", f"The ZIP holds no {JSON_MEMBER}: is it an export of this site?")
        if checker.count:
            raise ImportRefused(checker.listed())

    def document(self) -> "_Member":
        """``conversations.json``, to be read as a stream."""
        return _Member(self.zip.open(JSON_MEMBER))

    def read(self, checker: Checker, entry: dict[str, Any], where: str) -> intake.Intake | None:
        """The file ``entry`` (checked fields of a message's attachment) names, as ``intake``
        finds it; None, having said why, if the archive does not bear the entry out."""
        path, size, name = entry["path"], entry["size"], entry["name"]
        info = self.files[path]
        if info.file_size != size:
            checker.problem(where, f"{path} is {info.file_size:,} bytes, not {size:,}.")
            return None
        try:
            with self.zip.open(info) as member:
                data = member.read(settings.ATTACH_MAX_BYTES + 1)
        except _DAMAGED:
            checker.problem(where, f"{path} is damaged: it cannot be read whole.")
            return None
        if len(data) != size or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            checker.problem(where, f"{path} is not the file its size and sha256 say.")
            return None
        try:
            found = intake.read(data, name)
        except AttachmentRefused as exc:
            checker.problem(where, exc.message)
            return None
        if entry.get("kind") not in (None, found.kind):
            checker.problem(where, f"{path} is a file of kind {found.kind}, not {entry['kind']}.")
            return None
        return found

    def close(self) -> None:
        self.zip.close()


def _limit(name: str) -> int | None:
    """The most bytes the member ``name`` may hold unpacked; None: no export has it."""
    if name == JSON_MEMBER:
        return int(settings.IMPORT_MAX_BYTES)
    if _FILE_MEMBER.match(name):
        return int(settings.ATTACH_MAX_BYTES)
    return None


class _Member:
    """A member read as a stream; damage found on the way is a refusal, not a crash."""

    def __init__(self, member: IO[bytes]) -> None:
        self._member = member

    def read(self, size: int = -1) -> bytes:
        try:
            return self._member.read(size)
        except _DAMAGED:
            raise ImportRefused([f"{JSON_MEMBER} is damaged: it cannot be read whole."]) from None


class Kept:
    """The files an import keeps: for each message the attachments it names, checked against
    the archive, and (while the import writes) stored with their rows and links, a batch at
    a time. The bytes written are removed again if the import fails (``remove``)."""

    def __init__(self, archive: Archive | None, owner_id: int | None) -> None:
        self.archive = archive
        self.owner_id = owner_id
        #: The bytes of each file stored, for the metrics once the import is written.
        self.sizes: list[int] = []
        self._written: list[str] = []  # stored names, a few dozen bytes each
        self._rows: list[Attachment] = []
        self._links: list[Any] = []

    def of_message(
        self,
        checker: Checker,
        value: Any,
        where: str,
        *,
        role: str,
        seen: dict[str, Attachment | None],
        conversation: Conversation | None,
        count: Callable[[int], None],
    ) -> list[Attachment]:
        """The attachments a message names in ``value`` (its ``attachments``): checked, and
        kept in ``conversation`` while nothing is wrong (None: checked only); ``seen`` holds
        those of the messages before it in the conversation (versions share theirs),
        ``count`` takes each new file's bytes against the owner's storage. Problems go to
        ``checker``."""
        if value is None or value == []:
            return []
        where = f"{where}, attachments"
        if not isinstance(value, list):
            checker.problem(where, f"must be a list, not {short(value)}.")
            return []
        if self.archive is None:
            checker.problem(where, "name files, which only a ZIP export holds: import the ZIP.")
            return []
        if role != "user":
            checker.problem(where, "only a user's message carries files.")
            return []
        if len(value) > settings.ATTACH_MAX_FILES:
            checker.problem(where, f"a message carries {settings.ATTACH_MAX_FILES} at most.")
            return []
        kept = []
        for number, item in enumerate(value, start=1):
            entry = _entry(checker, item, f"{where} {number}", self.archive)
            if entry is None:
                continue
            key = entry.get("id") or entry["path"]
            if key not in seen:
                found = self.archive.read(checker, entry, f"{where} {number}")
                seen[key] = None
                if found is not None and conversation is not None and checker.count == 0:
                    count(len(found.data))
                    seen[key] = self._keep(conversation, entry["name"], found)
            if (row := seen[key]) is not None:
                kept.append(row)
        return kept

    def _keep(self, conversation: Conversation, name: str, found: intake.Intake) -> Attachment:
        assert self.owner_id is not None
        row = attachments.kept_file(self.owner_id, conversation, name, found)
        self._written.append(str(row.file.name))
        self._rows.append(row)
        self.sizes.append(row.size)
        return row

    def link(self, message_id: Any, rows: list[Attachment]) -> None:
        """Link ``rows`` to the message ``message_id`` (written in the same batch)."""
        through = Attachment.messages.through
        self._links += [through(message_id=message_id, attachment_id=row.pk) for row in rows]

    def flush(self) -> None:
        """Write the rows and links kept since the last flush (after their messages)."""
        if self._rows:
            Attachment.objects.bulk_create(self._rows)
        if self._links:
            Attachment.messages.through.objects.bulk_create(self._links)
        self._rows, self._links = [], []

    def remove(self) -> None:
        """Delete every file this import stored: it wrote nothing after all."""
        kept = attachment_storage()
        for name in self._written:
            kept.delete(name)
        self._written = []


def _entry(checker: Checker, value: Any, where: str, archive: Archive) -> dict[str, Any] | None:
    """A message's attachment, its fields checked; None (said why) if it cannot be read."""
    data = checker.fields(value, where, _ENTRY_REQUIRED, _ENTRY_OPTIONAL)
    if data is None:
        return None
    problems = checker.count
    name = checker.text(data["name"], f"{where}, name", _NAME_MAX_CHARS, blank=False)
    size, sha256, path = data["size"], data["sha256"], data["path"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        checker.problem(f"{where}, size", "must be a whole number of bytes.")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        checker.problem(f"{where}, sha256", "must be 64 hexadecimal digits (lower case).")
    if not isinstance(path, str) or path not in archive.files:
        checker.problem(f"{where}, path", f"{short(path)} is no file of the ZIP.")
    kind = checker.choice(data.get("kind"), f"{where}, kind", Attachment.Kind.values, "")
    key = checker.key(data.get("id"), f"{where}, id", nullable=True)
    if checker.count > problems:
        return None
    return {
        "id": key,
        "path": path,
        "name": attachments.clean_name(name),
        "size": size,
        "sha256": sha256,
        "kind": kind or None,
    }
