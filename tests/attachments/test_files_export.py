"""Export and import with files: a conversation whose messages carry files is exported as a
ZIP of its JSON and each file once, streamed; the ZIP is imported back with every file
read again as an upload is, all or nothing, leaving no file behind when it fails; an
archive is bounded before anything in it is read."""

import hashlib
import html
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.test.client import MULTIPART_CONTENT
from PIL import Image

from streaming.exceptions import ImportRefused
from streaming.models import Attachment, Conversation, Message
from streaming.services import attachments, export_zip, exports, imports, storage
from tests.support.files import SECRET, png, upload

pytestmark = pytest.mark.django_db(transaction=True)  # exports stream on database threads

NOTES = b"def answer():\n    return 42\n"


def stored(media: Path) -> set[Path]:
    """Every file kept in the attachments storage."""
    return {p for p in media.rglob("*") if p.is_file()}


def uploaded(client: Client, conversation: Conversation, name: str, data: bytes) -> Attachment:
    status, answer = upload(client, name, data, conversation.pk)
    assert status == 201, answer
    return Attachment.objects.get(pk=answer["attachment"]["id"])


def sent(
    conversation: Conversation,
    files: list[Attachment],
    content: str,
    parent: Message | None = None,
    role: str = "user",
) -> Message:
    """A message carrying ``files``, written as a sent message is (services.attachments)."""
    message = Message.objects.create(
        conversation=conversation,
        parent=parent,
        role=role,
        content=content,
        **attachments.fields_for(files),
    )
    attachments.attach(message, files)
    storage.add_to_owner_of(conversation.pk, len(content))  # as a sent message is counted
    return message


def with_files(client: Client, owner: User, title: str = "Holiday") -> Conversation:
    """A question with an image and a source file, its edit keeping the image only, an
    answer to each, and a follow-up carrying a second upload of the same source file."""
    conversation = Conversation.objects.create(owner=owner, title=title)
    image = uploaded(client, conversation, "photo.png", png())
    notes = uploaded(client, conversation, "notes.py", NOTES)
    again = uploaded(client, conversation, "copy of notes.py", NOTES)
    first = sent(conversation, [image, notes], "What is in these?")
    sent(conversation, [], "A red square and a function.", first, role="assistant")
    edited = sent(conversation, [image], "What is in this?")
    answer = sent(conversation, [], "A red square.", edited, role="assistant")
    sent(conversation, [again], "And this?", answer)
    return conversation


def read(response: Any) -> list[bytes]:
    """A streamed response's pieces, read as daphne reads them."""
    assert response.streaming

    async def pieces() -> list[bytes]:
        return [piece async for piece in response.streaming_content]

    return async_to_sync(pieces)()


def document_of(archive: zipfile.ZipFile) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(archive.read(exports.JSON_MEMBER))
    return document


def import_file(client: Client, data: bytes, name: str = "export.zip") -> Any:
    return client.post(
        "/import/",
        {"file": SimpleUploadedFile(name, data, "application/zip")},
        content_type=MULTIPART_CONTENT,
    )


def page_text(response: Any) -> str:
    return html.unescape(response.content.decode())


def rows() -> tuple[int, int, int, int]:
    """What an import could write: conversations, messages, attachments and their links."""
    return (
        Conversation.objects.count(),
        Message.objects.count(),
        Attachment.objects.count(),
        Attachment.messages.through.objects.count(),
    )


# --- export -----------------------------------------------------------------------------


def test_an_export_with_files_is_a_zip_of_its_json_and_each_file_once(
    logged_in: Client, user: User, media: Path
) -> None:
    conversation = with_files(logged_in, user)
    image, notes, again = conversation.attachments.order_by("created_at")

    response = logged_in.get(f"/c/{conversation.id}/export.json")

    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="holiday.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(read(response))))
    assert archive.testzip() is None
    image_path = f"files/{image.sha256}.png"
    notes_path = f"files/{notes.sha256}.txt"
    assert archive.namelist() == [exports.JSON_MEMBER, image_path, notes_path]
    assert archive.read(image_path) == image.file.open("rb").read()
    assert archive.read(notes_path) == NOTES
    document = document_of(archive)
    assert document["version"] == exports.VERSION == 2
    messages = {m["content"]: m for m in document["conversations"][0]["messages"]}
    assert [a["path"] for a in messages["What is in these?"]["attachments"]] == [
        image_path,
        notes_path,
    ]
    assert messages["What is in this?"]["attachments"] == [
        {
            "id": str(image.pk),
            "kind": "image",
            "name": "photo.png",
            "content_type": "image/png",
            "size": image.size,
            "sha256": image.sha256,
            "width": 64,
            "height": 48,
            "path": image_path,
        }
    ]
    (copy,) = messages["And this?"]["attachments"]
    assert (copy["id"], copy["name"], copy["path"]) == (
        str(again.pk),
        "copy of notes.py",
        notes_path,
    )
    assert "attachments" not in messages["A red square."]
    # What only the owner's page shows of a file stays out: no stored name, no path on disk.
    assert str(image.file.name) not in archive.read(exports.JSON_MEMBER).decode()


def test_a_large_file_is_exported_a_chunk_at_a_time(
    logged_in: Client, user: User, settings: Any
) -> None:
    conversation = Conversation.objects.create(owner=user, title="big")
    text = ("".join(f"{n:x} " for n in range(600_000)) + "\n").encode()  # 4.6 MB
    log = uploaded(logged_in, conversation, "server.log", text)
    sent(conversation, [log], "What went wrong?")

    pieces = read(logged_in.get(f"/c/{conversation.id}/export.json"))

    assert len(pieces) > 10
    assert max(len(piece) for piece in pieces) <= 2 * export_zip.CHUNK
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert archive.read(f"files/{log.sha256}.txt") == text


def test_the_account_export_is_a_zip_when_a_conversation_carries_files(
    logged_in: Client, user: User
) -> None:
    with_files(logged_in, user, "with files")
    plain = Conversation.objects.create(owner=user, title="plain")
    sent(plain, [], "No files here.")
    deleted = Conversation.objects.create(owner=user, title="deleted")
    secret = uploaded(logged_in, deleted, "secret.txt", b"only in the deleted one")
    sent(deleted, [secret], "Forget this.")
    Conversation.objects.filter(pk=deleted.pk).update(deleted_at=deleted.created_at)

    response = logged_in.get("/export/")

    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].endswith('.zip"')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(read(response))))
    titles = [c["title"] for c in document_of(archive)["conversations"]]
    assert sorted(titles) == ["plain", "with files"]
    assert len(archive.namelist()) == 3  # the JSON, the image and the source file
    assert not any(secret.sha256 in name for name in archive.namelist())


def test_the_markdown_export_lists_each_messages_files_by_name(
    logged_in: Client, user: User
) -> None:
    conversation = with_files(logged_in, user)
    Conversation.objects.filter(pk=conversation.pk).update(leaf=None)
    odd = uploaded(logged_in, conversation, "a `tick` *and* [link].txt", b"odd name")
    last = conversation.messages.order_by("created_at").last()
    sent(conversation, [odd], "One more.", last)

    text = b"".join(read(logged_in.get(f"/c/{conversation.id}/export.md"))).decode()

    assert f"Attached:\n- `copy of notes.py` (text, {len(NOTES)} bytes)\n" in text
    assert "- ``a `tick` *and* [link].txt`` (text, 8 bytes)" in text
    assert "photo.png" in text  # the edit, on the branch shown


def test_the_admin_exports_conversations_with_files_as_the_same_zip(
    staff: Client, user: User
) -> None:
    owner = Client()
    owner.force_login(user)
    conversation = with_files(owner, user)

    response = staff.post(
        "/admin/streaming/conversation/",
        {"action": "export_selected", "_selected_action": [conversation.pk]},
    )

    assert response["Content-Disposition"] == 'attachment; filename="conversations.zip"'
    data = b"".join(read(response))
    assert imports.parse(data) == 1
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 3


# --- import -----------------------------------------------------------------------------


def exported(client: Client, conversation: Conversation) -> bytes:
    return b"".join(read(client.get(f"/c/{conversation.id}/export.json")))


def test_a_zip_export_is_imported_with_its_files_read_again_and_stored_anew(
    logged_in: Client, user: User, media: Path
) -> None:
    original = with_files(logged_in, user)
    data = exported(logged_in, original)
    before_files = stored(media)
    used_before = storage.used(user.pk)

    response = import_file(logged_in, data)

    assert response.status_code == 302
    imported = Conversation.objects.exclude(pk=original.pk).get(owner=user)
    files = list(imported.attachments.order_by("created_at"))
    assert len(files) == 3  # the image the edit shares is one row, as it was
    old_ids = set(original.attachments.values_list("pk", flat=True))
    assert not {f.pk for f in files} & old_ids
    image, notes, again = files
    assert (image.kind, image.name, image.owner) == ("image", "photo.png", user)
    assert notes.file.open("rb").read() == again.file.open("rb").read() == NOTES
    assert notes.file.name != again.file.name  # each row its own stored file
    picture = Image.open(image.file.open("rb"))
    assert picture.size == (64, 48)
    assert SECRET.encode() not in image.file.open("rb").read()
    new_files = stored(media) - before_files
    names = [str(f.file.name) for f in files]
    assert {media / name for name in names} == new_files
    assert all(name.startswith("attachments/") and "notes" not in name for name in names)
    by_content = {m.content: m for m in imported.messages.all()}
    question, edit = by_content["What is in these?"], by_content["What is in this?"]
    assert list(question.attachments.order_by("created_at")) == [image, notes]
    assert list(edit.attachments.all()) == [image]
    assert edit.attached == [attachments.shown(image)]
    assert edit.attachment_tokens == image.tokens
    assert by_content["A red square."].attached == []  # as JSON, not an empty object
    text = sum(len(m.content) for m in imported.messages.all())
    assert storage.used(user.pk) == used_before + text + sum(f.size for f in files)
    assert storage.used(user.pk) == storage.recount(user.pk)
    assert logged_in.get(f"/attachments/{notes.pk}/").status_code == 200
    # Exported again: the same document, but for the ids.
    again_document = document_of(zipfile.ZipFile(io.BytesIO(exported(logged_in, imported))))
    first_document = document_of(zipfile.ZipFile(io.BytesIO(data)))
    assert _without_ids(again_document) == _without_ids(first_document)


def _without_ids(document: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            (m["content"], [(a["name"], a["kind"], a["size"]) for a in m.get("attachments", [])])
            for m in conversation["messages"]
        ]
        for conversation in document["conversations"]
    ]


def zipped(members: dict[str, bytes], **options: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", **options) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def export_document(*messages: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "format": "chatsite-export",
            "version": 2,
            "conversations": [{"title": "made by hand", "messages": list(messages)}],
        }
    ).encode()


def entry(path: str, data: bytes, name: str, **fields: Any) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    return {"path": path, "name": name, "size": len(data), "sha256": sha, **fields}


def hand_made(*bad: tuple[str, bytes, dict[str, Any]]) -> bytes:
    """A ZIP of two messages: the first with a good file (stored before the second is
    read), the second with the files ``bad`` (path, bytes, entry fields)."""
    good = entry("files/good.txt", NOTES, "good.py")
    members = {"files/good.txt": NOTES} | {path: data for path, data, _ in bad}
    document = export_document(
        {"id": "a", "role": "user", "content": "first", "attachments": [good]},
        {
            "id": "b",
            "parent_id": "a",
            "role": "user",
            "content": "second",
            "attachments": [
                entry(path, data, "bad" + Path(path).suffix) | fields for path, data, fields in bad
            ],
        },
    )
    return zipped({exports.JSON_MEMBER: document} | members)


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (("files/x.png", b"<html><script>alert(1)</script></html>", {}), "not a PNG"),
        (("files/x.txt", b"plain text", {"sha256": "0" * 64}), "not the file its size"),
        (("files/x.txt", b"plain text", {"size": 3}), "is 10 bytes, not 3"),
        (("files/x.txt", b"plain text", {"kind": "image"}), "of kind text, not image"),
        (("files/x.txt", b"plain text", {"path": "files/missing.txt"}), "no file of the ZIP"),
        (("files/x.png", b"", {}), "bad.png is empty"),
    ],
    ids=["html-named-png", "sha256", "size", "kind", "missing", "empty"],
)
def test_a_file_the_archive_does_not_bear_out_fails_the_import_leaving_no_file(
    logged_in: Client, user: User, media: Path, bad: tuple[str, bytes, dict[str, Any]], said: str
) -> None:
    before, used = rows(), storage.used(user.pk)

    response = import_file(logged_in, hand_made(bad))

    assert response.status_code == 400
    assert said in page_text(response)
    assert rows() == before
    assert stored(media) == set()  # the good file, stored first, removed again
    assert storage.used(user.pk) == used


def test_a_problem_after_the_files_were_stored_leaves_no_file(
    logged_in: Client, user: User, media: Path
) -> None:
    good = entry("files/good.txt", NOTES, "good.py")
    document = export_document(
        {"id": "a", "role": "user", "content": "first", "attachments": [good]},
        {"id": "b", "parent_id": "nowhere", "role": "assistant", "content": "lost"},
    )

    response = import_file(
        logged_in, zipped({exports.JSON_MEMBER: document, "files/good.txt": NOTES})
    )

    assert response.status_code == 400
    assert "is no message of this conversation" in page_text(response)
    assert rows() == (0, 0, 0, 0)
    assert stored(media) == set()


def test_files_past_the_storage_quota_fail_the_import_leaving_no_file(
    logged_in: Client, user: User, media: Path, settings: Any
) -> None:
    settings.STORAGE_QUOTA_CHARS = 40  # the good file (28 bytes) fits, the second not
    data = hand_made(("files/more.txt", b"x" * 20, {}))

    response = import_file(logged_in, data)

    assert response.status_code == 400
    assert "room for (40 more characters" in page_text(response)
    assert rows() == (0, 0, 0, 0)
    assert stored(media) == set()
    assert storage.used(user.pk) == 0


@pytest.mark.parametrize(
    ("members", "said"),
    [
        ({"../escape.txt": b"x"}, '"../escape.txt": is no part of an export'),
        ({"/etc/passwd": b"x"}, "is no part of an export"),
        ({"files/../../escape.txt": b"x"}, "is no part of an export"),
        ({"files/deeper/x.txt": b"x"}, "is no part of an export"),
        ({"files/.hidden": b"x"}, "is no part of an export"),
        ({"notes.txt": b"x"}, "is no part of an export"),
        # 50 MB of zeros deflate to 50 kB: refused by its declared size, never unpacked.
        ({"files/bomb.txt": bytes(50_000_000)}, "is 50,000,000 bytes; the limit is 20,000,000"),
    ],
    ids=["parent", "absolute", "climbing", "nested", "dot-name", "outside-files", "bomb"],
)
def test_an_archive_past_its_bounds_is_refused_before_anything_is_read(
    logged_in: Client, media: Path, members: dict[str, bytes], said: str
) -> None:
    document = export_document({"id": "a", "role": "user", "content": "hi"})
    data = zipped({exports.JSON_MEMBER: document, **members}, compression=zipfile.ZIP_DEFLATED)

    response = import_file(logged_in, data)

    assert response.status_code == 400
    assert said in page_text(response)
    assert rows() == (0, 0, 0, 0)
    assert stored(media) == set()


def test_too_many_members_and_too_much_unpacked_are_refused(logged_in: Client) -> None:
    document = export_document({"id": "a", "role": "user", "content": "hi"})
    many = {f"files/{n}.txt": b"" for n in range(10_002)}
    with pytest.raises(ImportRefused) as crowded:
        imports.parse(zipped({exports.JSON_MEMBER: document, **many}))
    assert "an export holds at most 10,000" in crowded.value.problems[0]
    files = {f"files/{n}.txt": bytes(90_000) for n in range(5)}
    large_zip = zipped({exports.JSON_MEMBER: document, **files}, compression=zipfile.ZIP_DEFLATED)
    with override_settings(IMPORT_MAX_BYTES=100_000), pytest.raises(ImportRefused) as large:
        imports.parse(large_zip)
    assert "bytes unpacked; the limit is 400,000" in str(large.value.problems)


def test_a_header_that_understates_a_member_reads_no_more_than_it_says(logged_in: Client) -> None:
    text = b"y" * 5_000_000
    document = export_document(
        {
            "id": "a",
            "role": "user",
            "content": "hi",
            "attachments": [entry("files/a.txt", b"y" * 100, "a.txt")],
        }
    )
    data = bytearray(
        zipped(
            {exports.JSON_MEMBER: document, "files/a.txt": text}, compression=zipfile.ZIP_DEFLATED
        )
    )
    # Its size, as both its local header and the directory give it, made 100 bytes.
    size = text.__len__().to_bytes(4, "little")
    assert data.count(size) == 2
    data = bytearray(bytes(data).replace(size, (100).to_bytes(4, "little")))

    with pytest.raises(ImportRefused) as refused:
        imports.parse(bytes(data))

    assert "files/a.txt is damaged" in str(refused.value.problems)


def test_files_named_in_a_plain_json_file_are_refused(logged_in: Client, media: Path) -> None:
    document = export_document(
        {
            "id": "a",
            "role": "user",
            "content": "hi",
            "attachments": [entry("files/a.txt", NOTES, "a.py")],
        }
    )

    response = import_file(logged_in, document, "export.json")

    assert response.status_code == 400
    assert "which only a ZIP export holds" in page_text(response)
    assert rows() == (0, 0, 0, 0)


def test_only_a_users_message_carries_files_and_no_more_than_a_message_may(
    logged_in: Client, settings: Any
) -> None:
    settings.ATTACH_MAX_FILES = 1
    one = entry("files/a.txt", NOTES, "a.py")
    document = export_document(
        {"id": "a", "role": "assistant", "content": "hi", "attachments": [one]},
        {"id": "b", "role": "user", "content": "hi", "attachments": [one, one]},
    )
    with pytest.raises(ImportRefused) as refused:
        imports.parse(zipped({exports.JSON_MEMBER: document, "files/a.txt": NOTES}))
    assert refused.value.problems == [
        "conversation 1, message 1, attachments: only a user's message carries files.",
        "conversation 1, message 2, attachments: a message carries 1 at most.",
    ]


def test_a_zip_that_is_not_one_is_refused(logged_in: Client) -> None:
    response = import_file(logged_in, b"PK\x03\x04 but nothing more")
    assert response.status_code == 400
    assert "cannot be read as one" in page_text(response)
    assert rows() == (0, 0, 0, 0)


def test_a_zip_without_its_json_is_refused(logged_in: Client) -> None:
    response = import_file(logged_in, zipped({"files/a.txt": NOTES}))
    assert response.status_code == 400
    assert "holds no conversations.json" in page_text(response)
