"""Files attached to messages: uploaded, checked, owned, sent to the model, and deleted.

A file is uploaded on its own (``do_upload``): ``intake`` decides by its content what it is
and what is kept (an image re-encoded without its metadata, a document's text), its bytes
go to the attachments storage under a random name, and its row counts against its owner's
storage quota (a byte as a character). A message then names the files it carries by id
(``for_message``): only its owner's, uploaded into its conversation or for a conversation
not saved yet. Each message keeps how frames show its files (``Message.attached``) and what
sending them costs (``Message.attachment_tokens``), so windows and budgets read no more
rows. The bytes are deleted when the row is, once its transaction commits
(``connect_signals``); ``orphans`` finds what nothing points to.
"""

import base64
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.signals import post_delete
from django.utils import timezone

from streaming import intake
from streaming.exceptions import ErrorCode, Invalid
from streaming.models import Attachment, Conversation, Message, ProviderModel
from streaming.services import storage
from streaming.services.quotas import lock_owner, standing
from streaming.text import estimate_tokens
from streaming.uploads import FOLDER, attachment_storage

#: How long an uploaded file may wait for its message before ``orphans`` may remove it.
UNSENT_GRACE = timedelta(days=1)
#: The image bytes one request to the model carries at most: the newest images first; older
#: ones are named in words instead.
IMAGE_BYTES_PER_REQUEST = 20 * 1024 * 1024
#: What an image part may cost at most, in estimated tokens (for a request's estimate).
IMAGE_TOKENS_AT_MOST = intake.image_tokens(768, 2048)
_NAME_MAX = 255


def clean_name(name: str) -> str:
    """The client's file name as it is shown: its last part, without control characters,
    at most 255 characters ("attachment" when nothing is left)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if len(name) > _NAME_MAX:
        _, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 16 else ""
        name = name[: _NAME_MAX - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return name or "attachment"


def do_upload(
    owner_id: int, conversation: Conversation | None, name: str, data: bytes
) -> Attachment:
    """Keep ``data``, a file named ``name`` by its owner, for a message of ``conversation``
    (None: a conversation not saved yet). Raises AttachmentRefused for what is not accepted
    and StorageFull past the owner's quota, having kept nothing."""
    name = clean_name(name)
    found = intake.read(data, name)
    storage.counted(owner_id)
    storage.check_room(owner_id, len(found.data))
    # The bytes first, under a random name; the row after. Should the row not be written,
    # the bytes go again: nothing is kept that no row points to.
    attachment = kept_file(owner_id, conversation, name, found)
    try:
        with transaction.atomic():
            lock_owner(owner_id)  # two uploads at once cannot both take the last room
            storage.check_room(owner_id, attachment.size, standing(owner_id))
            attachment.save()
            storage.add(owner_id, attachment.size)
    except BaseException:
        if attachment.file.name:
            attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment


def kept_file(
    owner_id: int, conversation: Conversation | None, name: str, found: intake.Intake
) -> Attachment:
    """The row, not saved yet, of ``found`` (a file ``intake`` read) named ``name`` by its
    owner, with its bytes written to the attachments storage under a random name: the
    caller saves the row, or deletes the bytes (``attachment.file.name``) if it cannot."""
    attachment = Attachment(
        owner_id=owner_id,
        conversation=conversation,
        kind=found.kind,
        content_type=found.content_type,
        name=name,
        size=len(found.data),
        sha256=found.sha256,
        text=found.text,
        width=found.width,
        height=found.height,
        tokens=_tokens(found, name),
    )
    attachment.file.save(f"upload{found.extension}", ContentFile(found.data), save=False)
    return attachment


def _tokens(found: intake.Intake, name: str) -> int:
    """What sending the file costs: an image by its tiles, a document by its text block."""
    if found.kind == "image" and found.width and found.height:
        return intake.image_tokens(found.width, found.height)
    return estimate_tokens(_document_block(found.text, name))


def for_message(conversation: Conversation, ids: Any) -> list[Attachment]:
    """The attachments a message of ``conversation`` names by ``ids`` (a list of ids, as a
    frame carries it), in that order, locked for the caller's transaction; Invalid for
    anything else: not a list, too many, or one that is not its owner's to attach here
    (never says which of those)."""
    if ids is None:
        return []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise Invalid("Attachments are a list of their ids.", code=ErrorCode.BAD_ATTACHMENT)
    if len(ids) > settings.ATTACH_MAX_FILES:
        raise Invalid(
            f"A message may carry {settings.ATTACH_MAX_FILES} files at most; this one has "
            f"{len(ids)}. Remove some, or send them in another message.",
            code=ErrorCode.TOO_MANY_ATTACHMENTS,
        )
    keys = [_uuid(i) for i in ids]
    if len(set(keys)) != len(keys):
        raise Invalid("A file is attached twice.", code=ErrorCode.BAD_ATTACHMENT)
    # Locked: a file uploaded for a new chat goes to the first conversation that takes it.
    mine = Attachment.objects.select_for_update().filter(
        Q(conversation=None) | Q(conversation=conversation),
        pk__in=keys,
        owner_id=conversation.owner_id,
    )
    found = {a.pk: a for a in mine}
    if len(found) != len(keys):
        raise Invalid(
            "An attached file is no longer there. Remove it and attach it again.",
            code=ErrorCode.BAD_ATTACHMENT,
        )
    return [found[key] for key in keys]


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid(
            "An attached file is no longer there. Remove it and attach it again.",
            code=ErrorCode.BAD_ATTACHMENT,
        ) from None


def shown(attachment: Attachment) -> dict[str, Any]:
    """An attachment as frames and the page show it (no bytes, no path): ``Message.attached``."""
    return {
        "id": str(attachment.pk),
        "kind": attachment.kind,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
    }


def fields_for(attachments: list[Attachment]) -> dict[str, Any]:
    """What a new message carrying ``attachments`` is created with."""
    return {
        "attached": [shown(a) for a in attachments],
        "attachment_tokens": sum(a.tokens for a in attachments),
    }


def attach(message: Message, attachments: list[Attachment]) -> None:
    """Link ``attachments`` to ``message`` (just written, in the caller's transaction); those
    uploaded for a conversation not saved yet belong to its conversation from now on."""
    if not attachments:
        return
    message.attachments.add(*attachments)
    keys = [a.pk for a in attachments]
    Attachment.objects.filter(pk__in=keys, conversation=None).update(
        conversation=message.conversation_id
    )


def has_images(message_id: Any) -> bool:
    """Whether the message carries an image."""
    return Attachment.objects.filter(messages=message_id, kind=Attachment.Kind.IMAGE).exists()


def seeing_models() -> list[str]:
    """The models that see images, as people pick them: "model (provider)"."""
    seeing = ProviderModel.objects.filter(vision=True, enabled=True, provider__enabled=True)
    names = [f"{m.label} ({m.provider.name})" for m in seeing.select_related("provider")]
    if settings.OPENAI_VISION:
        names.insert(0, f"{settings.OPENAI_MODEL} ({settings.OPENAI_PROVIDER_NAME})")
    return names


def refuse_unseen(model: str) -> Invalid:
    """The refusal for images sent to ``model``, which does not see them."""
    seeing = seeing_models()
    where = (
        f"Models that do: {', '.join(seeing)}. Pick one at the top of the conversation, or "
        "remove the images."
        if seeing
        else "No model offered here does; remove the images, or ask staff to add one."
    )
    return Invalid(f"The model {model} does not see images. {where}", code=ErrorCode.NO_VISION)


# --- what the model is sent ----------------------------------------------------------------


@dataclass
class Turn:
    """A user message's files as the model is sent them."""

    documents: list[Attachment]
    images: list[Attachment]


def turns_of(message_ids: Iterable[Any]) -> dict[Any, Turn]:
    """The files each of ``message_ids`` carries (those with none are left out), read in one
    query; documents with their text, images without their bytes."""
    turns: dict[Any, Turn] = {}
    through = Attachment.messages.through.objects.filter(message_id__in=list(message_ids))
    rows = through.select_related("attachment").order_by("attachment__created_at")
    for row in rows:
        turn = turns.setdefault(row.message_id, Turn([], []))
        attachment = row.attachment
        (turn.images if attachment.kind == Attachment.Kind.IMAGE else turn.documents).append(
            attachment
        )
    return turns


def content(
    text: str,
    turn: Turn | None,
    *,
    sees: bool,
    image_bytes: list[int],
    cut_chars: int = 0,
    notices: list[str] | None = None,
) -> Any:
    """A user turn's content for the Chat Completions API: its text with its documents as
    text blocks naming each file; with images (for a model that ``sees``) a list of parts,
    the text first, each image a data: URL, while ``image_bytes`` (the request's remaining
    bytes for images, shared by its turns from the newest) lasts; else words in their place.

    ``cut_chars``: how many characters of its documents' text must go so the turn fits what
    the model is sent, taken from the end of the last ones; each document cut says so where
    it was cut, and in ``notices``, for the reader.
    """
    if turn is None:
        return text
    blocks: list[str] = []
    for document in reversed(turn.documents):
        body, cut_chars = document.text, max(0, cut_chars)
        if cut_chars:
            kept = max(0, len(body) - cut_chars - len(_CUT_MARK))
            cut_chars -= len(body) - kept
            body = body[:kept] + _CUT_MARK.format(
                name=document.name, left=len(document.text) - kept
            )
            if notices is not None:
                notices.append(
                    f"{document.name} is too long for what the model is sent: it read the "
                    f"first {kept:,} of its {len(document.text):,} characters."
                )
        blocks.insert(0, _document_block(body, document.name))
    unsent = []
    parts: list[dict[str, Any]] = []
    for image in turn.images:
        if sees and image.size <= image_bytes[0]:
            image_bytes[0] -= image.size
            parts.append({"type": "image_url", "image_url": {"url": _data_url(image)}})
        else:
            unsent.append(image.name)
    if unsent:
        why = "the model does not see images" if not sees else "too many images in this request"
        blocks.append(f"[Images not sent ({why}): {', '.join(unsent)}]")
    joined = "\n\n".join(piece for piece in [*blocks, text] if piece)
    if not parts:
        return joined
    return ([{"type": "text", "text": joined}] if joined else []) + parts


#: Where a document was cut to fit what the model is sent (``content``).
_CUT_MARK = "\n[… the rest of {name} ({left:,} characters) is left out: it did not fit]"


def _document_block(text: str, name: str) -> str:
    return f'<file name="{name}">\n{text}\n</file>'


def _data_url(image: Attachment) -> str:
    with image.file.open("rb") as handle:
        data = handle.read()
    return f"data:{image.content_type};base64,{base64.b64encode(data).decode('ascii')}"


# --- deletion -------------------------------------------------------------------------------


def connect_signals() -> None:
    """Delete a file's bytes whenever its row is deleted, however (from ``ready()``): with
    its conversation, its owner, a purge, or in the admin."""
    post_delete.connect(_deleted, sender=Attachment, dispatch_uid="streaming.attachments")


def _deleted(sender: Any, instance: Attachment, **kwargs: Any) -> None:
    """The row is deleted: its bytes go once that commits (never while it may roll back)."""
    name, kept = instance.file.name, instance.file.storage
    if name:
        transaction.on_commit(lambda: kept.delete(name))


def uncount(attachments: Any) -> None:
    """No longer count ``attachments`` (a queryset about to be deleted) for their owners."""
    per_owner: dict[int, int] = {}
    for owner_id, size in attachments.values_list("owner_id", "size"):
        per_owner[owner_id] = per_owner.get(owner_id, 0) + size
    for owner_id, size in per_owner.items():
        storage.add(owner_id, -size)


def unsent(older_than: timedelta = UNSENT_GRACE) -> QuerySet[Attachment]:
    """The files uploaded longer ago than ``older_than`` that no message carries."""
    linked = Attachment.messages.through.objects.filter(attachment_id=OuterRef("pk"))
    cutoff = timezone.now() - older_than
    return Attachment.objects.filter(created_at__lt=cutoff).exclude(Exists(linked))


def do_remove_unsent(older_than: timedelta = UNSENT_GRACE) -> int:
    """Delete ``unsent`` files (their rows; their bytes once that commits); how many."""
    with transaction.atomic():
        stale = unsent(older_than).select_for_update()
        uncount(stale)
        removed = stale.count()
        stale.delete()
    return removed


def orphans(older_than: timedelta = UNSENT_GRACE) -> Iterator[str]:
    """The names of stored files in the attachments folder that no row names, written longer
    ago than ``older_than`` (a file is written just before its row: ``do_upload``)."""
    kept = attachment_storage()
    known = set(Attachment.objects.values_list("file", flat=True))
    cutoff = timezone.now() - older_than
    _, files = kept.listdir(FOLDER)
    for name in files:
        path = f"{FOLDER}/{name}"
        if path not in known and kept.get_modified_time(path) < cutoff:
            yield path
