"""Attached files in the admin: a read-only list and page of what each file is (never its
name, bytes or a document's text), and each message's files on the message's page."""

import html
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from streaming.models import Attachment, Conversation, Message
from streaming.services import attachments
from tests.support.files import pdf, png, upload, words

# Transactional: an upload is handled on the database threads, each with its connection.
pytestmark = pytest.mark.django_db(transaction=True)

SECRET_WORDS = "quarterly figures for the board"


@pytest.fixture
def carried(user: User) -> tuple[Message, Attachment, Attachment]:
    """A message of ``user``'s carrying an image and a PDF with words in it."""
    owner = Client()
    owner.force_login(user)
    conversation = Conversation.objects.create(owner=user, title="Planning")
    ids = []
    document = pdf(words(SECRET_WORDS))
    for name, data in (("holiday-photo.png", png()), ("board-report.pdf", document)):
        status, answer = upload(owner, name, data, conversation.pk)
        assert status == 201, answer
        ids.append(answer["attachment"]["id"])
    with transaction.atomic():  # as a message is posted: the files locked while it takes them
        files = attachments.for_message(conversation, ids)
        message = Message.objects.create(
            conversation=conversation, role="user", content="Look", **attachments.fields_for(files)
        )
        attachments.attach(message, files)
    image, report = files
    return message, image, report


def page(response: Any) -> str:
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_list_shows_what_each_file_is_never_its_name(
    staff: Client, carried: tuple[Message, Attachment, Attachment]
) -> None:
    _, image, report = carried

    response = staff.get("/admin/streaming/attachment/")
    listed = page(response)

    rows = [
        (a.owner.username, str(a.conversation), a.kind, a.content_type, a.size)
        for a in response.context["cl"].result_list
    ]
    assert sorted(rows) == [
        ("alice", "Planning", "image", "image/png", image.size),
        ("alice", "Planning", "pdf", "application/pdf", report.size),
    ]
    for column in ("Owner", "Conversation", "Kind", "Content type", "Size", "Created at"):
        assert column in listed
    for hidden in ("holiday-photo", "board-report", SECRET_WORDS):
        assert hidden not in listed
    assert "/admin/streaming/attachment/add/" not in listed
    # Filtered by kind, without a search by name.
    only_pdfs = staff.get("/admin/streaming/attachment/", {"kind__exact": "pdf"})
    assert [a.pk for a in only_pdfs.context["cl"].result_list] == [report.pk]


def test_a_files_page_is_read_only_with_its_texts_length_not_its_text(
    staff: Client, carried: tuple[Message, Attachment, Attachment]
) -> None:
    message, _, report = carried
    url = f"/admin/streaming/attachment/{report.pk}/change/"

    shown = page(staff.get(url))

    assert report.sha256 in shown
    assert SECRET_WORDS in report.text
    assert SECRET_WORDS not in shown
    assert "board-report" not in shown
    assert "Text (characters)" in shown
    assert f">{len(report.text)}<" in shown.replace("\n", "").replace(" ", "")
    assert f"/admin/streaming/message/{message.pk}/change/" in shown
    assert 'name="_save"' not in shown
    # Nothing can be changed, added or deleted here.
    before = list(Attachment.objects.order_by("pk").values())
    assert staff.post(url, {"kind": "text", "size": "1"}).status_code == 403
    assert staff.post("/admin/streaming/attachment/add/", {}).status_code == 403
    deleting = f"/admin/streaming/attachment/{report.pk}/delete/"
    assert staff.post(deleting, {"post": "yes"}).status_code == 403
    assert list(Attachment.objects.order_by("pk").values()) == before


def test_a_messages_page_lists_its_files_by_type_and_size(
    staff: Client, carried: tuple[Message, Attachment, Attachment]
) -> None:
    message, image, report = carried

    shown = page(staff.get(f"/admin/streaming/message/{message.pk}/change/"))

    assert f"image</a> · image/png · {image.size:,} bytes · 64 by 48 pixels" in shown
    assert f"pdf</a> · application/pdf · {report.size:,} bytes" in shown
    for attachment in (image, report):
        assert f"/admin/streaming/attachment/{attachment.pk}/change/" in shown
    assert "holiday-photo" not in shown
    assert "board-report" not in shown
