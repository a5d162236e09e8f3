"""Attachments over HTTP: a file uploaded for a message, and a file sent to its owner only.

The upload answers in JSON, as the socket's frames do (``frames.error_frame`` for a
refusal), so the composer shows each file's fate beside it. A file is sent to its owner and
nobody else (404, the same as for a file that does not exist), never to be read as anything
but what chatsite found it to be: ``nosniff``, a sandbox for a document opened directly, and
a download for everything but the images chatsite re-encoded itself. Behind nginx
(``ATTACH_ACCEL_REDIRECT``) the view checks and nginx sends the bytes.
"""

import uuid
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from streaming import frames, intake, metrics
from streaming.exceptions import AttachmentRefused, ChatError, ErrorCode, Invalid, StorageFull
from streaming.models import Attachment, Conversation
from streaming.services import attachments, conversations
from streaming.services.database import to_async
from streaming.views import NOT_FOUND, SIGNED_OUT

#: What a multipart request may add to the file's own bytes (boundaries, the other fields).
_MULTIPART_SLACK = 64 * 1024
#: Sent with every file: nothing in it runs, loads or is guessed at.
FILE_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
NOT_THERE = "This file does not exist: it was deleted, or the link is not right."


@require_POST
async def upload(request: HttpRequest) -> JsonResponse:
    """Keep one file (field ``file``) for a message of the conversation ``conversation``
    (absent: a new conversation's first message): 201 with it as frames show it, or the
    refusal, with nothing kept."""
    user = await request.auser()
    if not user.is_authenticated:
        return _refusal(ChatError(SIGNED_OUT, code=ErrorCode.SESSION_ENDED), 401)
    # Decoding and writing an image anew takes a while: on the database threads, as every
    # service the sockets call, not on the one thread that runs the process's pages.
    return await to_async(_upload)(request, user.pk)


def _upload(request: HttpRequest, owner_id: int) -> JsonResponse:
    try:
        _check_length(request.META.get("CONTENT_LENGTH"))
        conversation = _conversation(request)
        sent = request.FILES.get("file")
        if sent is None:
            raise Invalid("Choose a file to attach.", code=ErrorCode.BAD_ATTACHMENT)
        name = sent.name or ""
        if sent.size is not None and sent.size > settings.ATTACH_MAX_BYTES:
            raise AttachmentRefused(intake.too_big(name, sent.size), reason="size")
        attachment = attachments.do_upload(owner_id, conversation, name, sent.read())
    except AttachmentRefused as exc:
        metrics.attachment_refused(exc.reason)
        return _refusal(exc, 413 if exc.reason == "size" else 415)
    except StorageFull as exc:
        metrics.attachment_refused("quota")
        return _refusal(exc, 413)
    except Http404:
        return _refusal(Invalid(NOT_FOUND, code=ErrorCode.DELETED), 404)
    except ChatError as exc:
        return _refusal(exc, 400)
    metrics.attachment_stored(attachment.size)
    return JsonResponse({"attachment": with_url(attachments.shown(attachment))}, status=201)


def _check_length(length: str | None) -> None:
    try:
        size = int(length or 0)
    except ValueError:
        return
    if size > settings.ATTACH_MAX_BYTES + _MULTIPART_SLACK:
        raise AttachmentRefused(intake.too_big("The file", size), reason="size")


def _conversation(request: HttpRequest) -> Conversation | None:
    wanted = request.POST.get("conversation", "")
    if not wanted:
        return None
    conversation = conversations.get_conversation_for(request.user, wanted)
    if conversation is None:
        raise Http404(NOT_FOUND)
    return conversation


def _refusal(error: ChatError, status: int) -> JsonResponse:
    return JsonResponse(frames.error_frame(error), status=status)


def with_url(shown: dict[str, Any]) -> dict[str, Any]:
    return {**shown, "url": reverse("streaming:attachment", args=[shown["id"]])}


@require_GET
def attachment_file(request: HttpRequest, attachment_id: uuid.UUID) -> HttpResponse | FileResponse:
    """The file, to its owner only (404 for anyone else, signed in or not)."""
    if not request.user.is_authenticated:
        raise Http404(NOT_THERE)
    attachment = (
        Attachment.objects.filter(pk=attachment_id, owner_id=request.user.pk)
        .exclude(conversation__deleted_at__isnull=False)
        .first()
    )
    if attachment is None:
        raise Http404(NOT_THERE)
    response: HttpResponse | FileResponse
    if settings.ATTACH_ACCEL_REDIRECT:
        response = HttpResponse(content_type=attachment.content_type)
        response["X-Accel-Redirect"] = settings.ATTACH_ACCEL_REDIRECT + str(attachment.file.name)
    else:
        response = FileResponse(attachment.file.open("rb"), content_type=attachment.content_type)
        response["Content-Length"] = str(attachment.size)
    inline = attachment.kind == Attachment.Kind.IMAGE
    response["Content-Disposition"] = (
        f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(attachment.name)}"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    response["Cache-Control"] = "private, max-age=3600"
    return response
