"""Share links (streaming/sharing.py): made by a conversation's owner from its shown branch
as it is now, read by anyone the link is open to, revoked by the owner or staff, and copied
into a reader's own conversations ("Continue in a new chat").

What a link shows is a copy made when it was shared: what the conversation says later never
reaches it, and deleting the conversation deletes its links. Every read asks the database
whether the link is still open, so a revoke holds at once on every server process. Copies
are written and read a part at a time: a long conversation costs no more memory to share,
and a page of it no more to read, than a short one.
"""

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce, Length
from django.utils import timezone

from streaming.exceptions import Invalid
from streaming.models import Conversation, Message
from streaming.services import branch, events, listing, storage
from streaming.services.conversations import check_idle
from streaming.services.quotas import lock_owner, standing
from streaming.services.user_settings import default_model, default_system_prompt
from streaming.sharing import SharedLink, SharedMessage, SharingSwitch

#: How long a link stays open, as the owner picks it: None, until revoked.
EXPIRIES: dict[str, timedelta | None] = {
    "never": None,
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
EXPIRY_LABELS = {"never": "Never", "1d": "In a day", "7d": "In a week", "30d": "In 30 days"}
#: Messages a shared page shows at once; the rest come page by page.
PAGE = 100
#: Open links one user may have, and one conversation: each holds a copy of its branch,
#: which is not counted against its owner's storage, so their number is bounded instead.
MAX_OPEN_LINKS = 100
MAX_OPEN_LINKS_PER_CONVERSATION = 10
# Messages copied (and read) at a time.
_BATCH = 500

Audience = SharedLink.Audience


def enabled() -> bool:
    """Whether owners may share, and links open: SHARE_LINKS is not off, and staff did not
    turn sharing off in the admin (read at every call: every process agrees at once)."""
    return settings.SHARE_LINKS != "off" and not SharingSwitch.objects.filter(on=False).exists()


def open_to_anyone(link: SharedLink) -> bool:
    """Whether ``link`` opens without signing in: its owner chose so, and the site still
    allows it (SHARE_LINKS=public; changed since, its links want signed-in readers)."""
    return link.audience == Audience.ANYONE and settings.SHARE_LINKS == "public"


def audiences() -> list[Audience]:
    """Whom an owner may open a new link to, as the site allows (SHARE_LINKS)."""
    if settings.SHARE_LINKS == "public":
        return [Audience.SIGNED_IN, Audience.ANYONE]
    return [Audience.SIGNED_IN] if enabled() else []


def do_share(conversation: Conversation, audience: str, expiry: str) -> SharedLink:
    """A new link to ``conversation``'s shown branch as it is now. Invalid when sharing is
    off, or the audience or expiry is none the owner may pick; BusyError while an answer is
    being written (its text is not final); ConversationGone if it was deleted."""
    if audience not in audiences():
        raise Invalid(
            "Sharing is turned off on this site."
            if not enabled()
            else "Links on this site can be opened only by people signed in to it."
        )
    if expiry not in EXPIRIES:
        raise Invalid("Pick when the link stops working from the list.")
    with transaction.atomic():
        # Under the owner's lock, which an answer's start takes too: none starts meanwhile.
        lock_owner(conversation.owner_id)
        check_idle(conversation)
        # Links that no longer open go now, with their copies.
        SharedLink.objects.filter(
            Q(revoked_at__isnull=False) | Q(expires_at__lte=timezone.now()),
            owner_id=conversation.owner_id,
        ).delete()
        open_links = SharedLink.objects.filter(owner_id=conversation.owner_id)
        if open_links.count() >= MAX_OPEN_LINKS:
            raise Invalid(
                f"You have {MAX_OPEN_LINKS} open links: revoke some in Settings to make another."
            )
        if open_links.filter(conversation=conversation).count() >= MAX_OPEN_LINKS_PER_CONVERSATION:
            raise Invalid(
                f"This conversation has {MAX_OPEN_LINKS_PER_CONVERSATION} open links: revoke one "
                "to make another."
            )
        conversation.refresh_from_db(fields=["title", "leaf_id"])
        lifetime = EXPIRIES[expiry]
        link = SharedLink.objects.create(
            conversation=conversation,
            owner_id=conversation.owner_id,
            title=conversation.title,
            audience=audience,
            expires_at=timezone.now() + lifetime if lifetime else None,
        )
        shown = branch.shown(conversation)
        for start in range(0, len(shown), _BATCH):
            ids = [key for key, _, _ in shown.part(start, _BATCH)]
            rows = Message.objects.filter(pk__in=ids).values_list(
                "pk", "role", "content", "attached"
            )
            by_id = {row[0]: row[1:] for row in rows}
            SharedMessage.objects.bulk_create(
                SharedMessage(
                    link=link,
                    position=start + offset,
                    role=by_id[key][0],
                    content=by_id[key][1],
                    files=[str(file.get("name", "")) for file in by_id[key][2] or []],
                )
                for offset, key in enumerate(ids)
                if key in by_id
            )
        link.count = SharedMessage.objects.filter(link=link).count()
        link.save(update_fields=["count"])
    return link


def open_link(token: str, now: datetime | None = None) -> SharedLink | None:
    """The link ``token`` names while it is open: not revoked or expired, its conversation
    not deleted, sharing not off; else None, whatever the reason (a reader learns nothing
    of a link that does not open)."""
    if not enabled() or not isinstance(token, str) or len(token) > 64:
        return None
    moment = now or timezone.now()
    return (
        SharedLink.objects.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=moment),
            token=token,
            revoked_at__isnull=True,
            conversation__deleted_at__isnull=True,
        )
        .select_related("owner")
        .first()
    )


def page(link: SharedLink, start: int) -> list[SharedMessage]:
    """The link's messages from ``start`` on, at most ``PAGE``."""
    return list(link.messages.filter(position__gte=max(0, start))[:PAGE])


def links_of(owner: User, conversation: Conversation | None = None) -> list[SharedLink]:
    """The owner's links that still open (of one conversation, if given), newest first."""
    found = SharedLink.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()),
        owner=owner,
        revoked_at__isnull=True,
        conversation__deleted_at__isnull=True,
    )
    if conversation is not None:
        found = found.filter(conversation=conversation)
    return list(found.select_related("conversation")[:200])


def do_revoke(owner: User, link_id: int) -> bool:
    """Revoke one of ``owner``'s links, and delete its copy (the row stays, for staff to
    see, until the owner's next share); whether there was one to revoke."""
    with transaction.atomic():
        revoked = SharedLink.objects.filter(
            pk=link_id, owner=owner, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        SharedMessage.objects.filter(link_id=link_id, link__owner=owner).delete()
    return bool(revoked)


def do_continue(link: SharedLink, reader: User) -> Conversation:
    """A new conversation of ``reader``'s holding the link's messages, to go on from: taken
    as imported history (they cost the reader no answer of their limits), counted against
    their storage quota, which refuses it whole (StorageFull) if it does not fit."""
    chars = link.messages.aggregate(chars=Coalesce(Sum(Length("content")), 0))["chars"]
    storage.counted(reader.pk)
    with transaction.atomic():
        lock_owner(reader.pk)
        storage.check_room(reader.pk, chars, standing(reader.pk))
        provider_id, model = default_model(reader.pk)
        conversation = Conversation.objects.create(
            owner=reader,
            title=link.title,
            system_prompt=default_system_prompt(reader.pk),
            provider_id=provider_id,
            model=model,
        )
        parent: uuid.UUID | None = None
        start = timezone.now()
        for rows in _batches(link):
            made = []
            for row in rows:
                key = uuid.uuid4()
                made.append(
                    Message(
                        id=key,
                        conversation=conversation,
                        parent_id=parent,
                        role=row.role,
                        content=row.content,
                        imported=True,
                        # Apart by a microsecond each: the branch's order is their time's.
                        created_at=start + timedelta(microseconds=row.position),
                    )
                )
                parent = key
            Message.objects.bulk_create(made)
        if parent is not None:
            conversation.leaf_id = parent
            conversation.save(update_fields=["leaf_id"])
        storage.add(reader.pk, chars)
        events.on_commit(listing.changed(conversation.id))
    return conversation


def _batches(link: SharedLink) -> Iterator[list[SharedMessage]]:
    last = -1
    while rows := list(link.messages.filter(position__gt=last)[:_BATCH]):
        yield rows
        last = rows[-1].position
