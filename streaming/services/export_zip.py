"""An export with attached files: a ZIP of the JSON document and the files it names, written
as it is sent.

``conversations.json`` comes first, written a batch of messages at a time as the plain
export is (``exports.json_pieces``, version 2), and collecting the files its messages name
(``exports.Files``); then each of those files once, under ``files/<sha256><ext>``, read
from the attachments storage a chunk at a time. zipfile writes to a sink that cannot seek
(a ZIP's members then carry their sizes after their bytes), and what it wrote is handed on
whenever a chunk's worth has piled up: memory holds a chunk, a batch of messages, and a
few hundred bytes a file for the ZIP's closing directory, whatever the export's size.
"""

import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from streaming.services.exports import JSON_MEMBER, Files
from streaming.uploads import attachment_storage

#: Bytes handed on at a time (and read from a stored file at a time).
CHUNK = 64 * 1024


class _Sink:
    """Where zipfile writes: what it wrote, kept until it is taken. It has no ``seek`` nor
    ``tell``, so zipfile writes each member once, in order (its sizes after its bytes)."""

    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes, /) -> int:
        self.written += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data


def zip_pieces(document: Callable[[Files], Iterator[str]]) -> Iterator[bytes]:
    """The ZIP of the export file ``document`` writes (given the ``Files`` to collect what
    its messages name) and of those files, in pieces of about ``CHUNK`` bytes."""
    sink = _Sink()
    files = Files()
    now = datetime.now(UTC).timetuple()[:6]
    with zipfile.ZipFile(sink, "w") as archive:
        json_info = zipfile.ZipInfo(JSON_MEMBER, date_time=now)
        json_info.compress_type = zipfile.ZIP_DEFLATED
        # Its size is not known before it is written: ZIP64 fields, in case it passes 4 GiB.
        with archive.open(json_info, "w", force_zip64=True) as member:
            for piece in document(files):
                member.write(piece.encode())
                if len(sink.written) >= CHUNK:
                    yield sink.take()
        kept = attachment_storage()
        for path, file in files.members.items():
            info = zipfile.ZipInfo(path, date_time=now)
            info.compress_type = _compression(file.kind)
            info.file_size = file.size  # whether it needs ZIP64 fields, decided before
            with kept.open(file.stored, "rb") as source, archive.open(info, "w") as member:
                while chunk := source.read(CHUNK):
                    member.write(chunk)
                    if len(sink.written) >= CHUNK:
                        yield sink.take()
    yield sink.take()


def _compression(kind: str) -> int:
    """Images are compressed already (PNG, JPEG, WebP): stored as they are; text deflated."""
    return zipfile.ZIP_STORED if kind == "image" else zipfile.ZIP_DEFLATED
