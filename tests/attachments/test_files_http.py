"""Attachments over HTTP: uploaded and checked, kept under random names, sent to their owner
only, refused with words and nothing kept, counted in the quota, and deleted with what
holds them (their conversation, a purge, `purge_attachments`)."""

import hashlib
import html
import io
import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image

from streaming import metrics
from streaming.models import Attachment, Conversation, Storage
from streaming.services import deletion, storage
from tests.support.files import SECRET, pdf, png, png_declaring, upload, words

# Transactional: an upload is handled on the database threads, each with its connection.
pytestmark = pytest.mark.django_db(transaction=True)


def stored(media: Path) -> list[Path]:
    """Every file kept in the attachments storage."""
    return sorted(p for p in media.rglob("*") if p.is_file())


def test_an_image_is_kept_reencoded_without_its_metadata_under_a_random_name(
    logged_in: Client, conversation: Conversation, media: Path
) -> None:
    status, answer = upload(logged_in, "holiday-photo.png", png(), conversation.pk)

    assert status == 201
    shown = answer["attachment"]
    saved = Attachment.objects.get(pk=shown["id"])
    (path,) = stored(media)
    data = path.read_bytes()
    assert "holiday" not in path.name
    assert path.suffix == ".png"
    assert SECRET.encode() not in data
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    assert (saved.size, saved.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert shown == {
        "id": str(saved.pk),
        "kind": "image",
        "name": "holiday-photo.png",
        "size": len(data),
        "content_type": "image/png",
        "width": 64,
        "height": 48,
        "url": f"/attachments/{saved.pk}/",
    }
    assert saved.conversation == conversation
    assert not saved.messages.exists()
    assert storage.used(conversation.owner_id) == len(data)


def test_a_file_goes_to_its_owner_only(
    logged_in: Client, conversation: Conversation, other_user: User
) -> None:
    _, image = upload(logged_in, "a.png", png(), conversation.pk)
    _, notes = upload(logged_in, "notes.py", b"print('hello')\n", conversation.pk)
    image_url, notes_url = image["attachment"]["url"], notes["attachment"]["url"]

    shown = logged_in.get(image_url)
    downloaded = logged_in.get(notes_url)
    assert shown.status_code == downloaded.status_code == 200
    assert shown["Content-Type"] == "image/png"
    assert shown["Content-Disposition"] == "inline; filename*=UTF-8''a.png"
    assert downloaded["Content-Disposition"] == "attachment; filename*=UTF-8''notes.py"
    assert b"".join(downloaded.streaming_content) == b"print('hello')\n"  # type: ignore[attr-defined]
    for response in (shown, downloaded):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"].startswith("sandbox;")

    stranger = Client()
    stranger.force_login(other_user)
    anonymous = Client()
    for client in (stranger, anonymous):
        for url in (image_url, notes_url):
            assert client.get(url).status_code == 404
    # A conversation deleted (while it may still be restored) shows none of its files.
    deletion.do_delete_conversation(conversation)
    assert logged_in.get(image_url).status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        (
            "drawing.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            415,
            "SVG",
        ),
        ("cat.png", b"<html><script>alert(1)</script></html>", 415, "PNG, JPEG, WebP or GIF"),
        ("bomb.png", png_declaring(40_000, 40_000), 415, "pixels"),
        ("latin1.txt", "café".encode("latin-1"), 415, "UTF-8"),
        ("scan.pdf", pdf(b""), 415, "no text"),
        ("archive.zip", b"PK\x03\x04" + bytes(200), 415, "PDF"),
        ("empty.txt", b"", 415, "empty"),
    ],
    ids=["svg", "html-named-png", "pixel-bomb", "latin-1", "pdf-without-text", "zip", "empty"],
)
def test_what_is_not_accepted_is_refused_with_words_and_nothing_kept(
    logged_in: Client,
    conversation: Conversation,
    media: Path,
    name: str,
    data: bytes,
    status: int,
    words: str,
) -> None:
    got, answer = upload(logged_in, name, data, conversation.pk)

    assert got == status
    assert answer["code"] == "bad_attachment"
    assert words.lower() in answer["message"].lower()
    assert not Attachment.objects.exists()
    assert stored(media) == []
    assert storage.used(conversation.owner_id) == 0


def test_a_file_over_the_limit_is_refused_before_it_is_read(
    logged_in: Client, conversation: Conversation, media: Path, settings: Any
) -> None:
    big = b"a" * (30 * 1024 * 1024)
    got, answer = upload(logged_in, "huge.log", big, conversation.pk)

    assert got == 413
    assert answer["code"] == "bad_attachment"
    assert "MB" in answer["message"]
    assert "up to" in answer["message"]
    assert not Attachment.objects.exists()
    assert stored(media) == []


def test_uploads_past_the_storage_quota_are_refused_and_nothing_kept(
    logged_in: Client, conversation: Conversation, media: Path, settings: Any
) -> None:
    settings.STORAGE_QUOTA_CHARS = 1000
    got, answer = upload(logged_in, "notes.txt", b"x" * 600, conversation.pk)
    assert got == 201
    got, answer = upload(logged_in, "more.txt", b"y" * 600, conversation.pk)

    assert got == 413
    assert answer["code"] == "storage_full"
    assert Attachment.objects.count() == 1
    assert len(stored(media)) == 1
    assert Storage.objects.get(user=conversation.owner).chars == 600


def test_uploads_into_someone_elses_conversation_are_refused(
    client: Client, conversation: Conversation, other_user: User, media: Path
) -> None:
    client.force_login(other_user)
    got, answer = upload(client, "a.txt", b"hello", conversation.pk)

    assert got == 404
    assert not Attachment.objects.exists()
    assert stored(media) == []
    anonymous = Client()
    got, answer = upload(anonymous, "a.txt", b"hello", conversation.pk)
    assert (got, answer["code"]) == (401, "session_ended")


def test_purging_a_conversation_deletes_its_files_and_frees_the_quota(
    logged_in: Client, conversation: Conversation, media: Path, settings: Any
) -> None:
    upload(logged_in, "a.png", png(), conversation.pk)
    upload(logged_in, "b.pdf", pdf(words("quarterly figures")), conversation.pk)
    assert len(stored(media)) == 2

    settings.DELETE_UNDO_SECONDS = 0
    deletion.do_delete_conversation(conversation)
    assert deletion.do_purge_deleted() == 1

    assert not Attachment.objects.exists()
    assert stored(media) == []
    assert storage.used(conversation.owner_id) == 0


def test_purge_attachments_removes_old_unsent_uploads_and_files_no_row_names(
    logged_in: Client, conversation: Conversation, media: Path
) -> None:
    _, old = upload(logged_in, "old.txt", b"old", conversation.pk)
    _, fresh = upload(logged_in, "fresh.txt", b"fresh", conversation.pk)
    Attachment.objects.filter(pk=old["attachment"]["id"]).update(
        created_at=Attachment.objects.get(pk=old["attachment"]["id"]).created_at - timedelta(days=2)
    )
    stray = media / "attachments" / "left-by-a-killed-process.png"
    stray.write_bytes(b"stray")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stray, (two_days_ago, two_days_ago))
    out = io.StringIO()

    call_command("purge_attachments", "--dry-run", stdout=out)
    assert "Would remove 1 upload(s) never sent, and 1 stored file(s)" in out.getvalue()
    assert len(stored(media)) == 3
    call_command("purge_attachments", stdout=out)

    assert list(Attachment.objects.values_list("pk", flat=True)) == [
        Attachment.objects.get(pk=fresh["attachment"]["id"]).pk
    ]
    assert len(stored(media)) == 1
    assert not stray.exists()
    assert storage.used(conversation.owner_id) == len(b"fresh")


def test_metrics_count_what_is_stored_and_refused_and_logs_never_name_a_file(
    logged_in: Client, conversation: Conversation, caplog: Any
) -> None:
    def sample(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    stored_before = sample("chatsite_attachment_bytes_stored_total")
    refused_before = sample("chatsite_attachments_refused_total", reason="type")
    caplog.set_level(logging.DEBUG)
    status, _answer = upload(logged_in, "private-diagnosis.txt", b"secret words", conversation.pk)
    assert status == 201
    upload(logged_in, "private-drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")

    assert sample("chatsite_attachment_bytes_stored_total") - stored_before == len(b"secret words")
    assert sample("chatsite_attachments_refused_total", reason="type") - refused_before == 1
    assert "private-" not in caplog.text
    assert "secret words" not in caplog.text


def test_the_usage_page_says_how_much_of_the_storage_is_attached_files(
    logged_in: Client, conversation: Conversation, settings: Any
) -> None:
    settings.STORAGE_QUOTA_CHARS = 1_000_000
    upload(logged_in, "notes.txt", b"n" * 5000, conversation.pk)
    storage.add(conversation.owner_id, 1234)  # as a message of 1,234 characters is counted

    with CaptureQueriesContext(connection) as queries:
        page = html.unescape(logged_in.get("/usage/").content.decode())

    assert "6,234 characters of message text and attached files" in page
    assert "of the 1,000,000 you may store" in page
    assert "Attached files take 5,000 of them" in page
    # One more query for it: the sum of the user's files.
    (files_sum,) = [q["sql"] for q in queries if "streaming_attachment" in q["sql"]]
    assert "SUM" in files_sum.upper()


def test_an_upload_whose_row_cannot_be_written_keeps_no_bytes(
    logged_in: Client, conversation: Conversation, media: Path, monkeypatch: Any
) -> None:
    def unreachable(owner_id: int, chars: int) -> None:
        raise OperationalError("connection refused")

    # The database goes away between the bytes written and the row's transaction committed.
    monkeypatch.setattr(storage, "add", unreachable)
    with pytest.raises(OperationalError):
        upload(logged_in, "a.png", png(), conversation.pk)

    assert not Attachment.objects.exists()
    assert stored(media) == []
