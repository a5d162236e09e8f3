"""An account kept in step with what the identity provider says of it at each sign-in:
its name and address, and its place in the groups whose members come from the provider."""

from dataclasses import dataclass

from django.contrib.auth.models import Group, User
from django.db import transaction


@dataclass(frozen=True)
class Claims:
    """What one sign-in's claims say of the account, in chatsite's terms."""

    #: The address the provider gives ("" when it gives none).
    email: str
    first_name: str
    last_name: str
    #: The groups the claim names; None: no groups claim is configured (staff set groups).
    groups: frozenset[str] | None


def do_sync(user: User, claims: Claims) -> None:
    """Write what changed since the last sign-in. Only groups staff marked "members from
    the identity provider" are joined or left; a name the claim gives that no such group
    has is ignored, so a claim never makes a group, nor reaches one kept by hand."""
    with transaction.atomic():
        changed = [
            field
            for field in ("email", "first_name", "last_name")
            if getattr(claims, field) and getattr(user, field) != getattr(claims, field)
        ]
        for field in changed:
            setattr(user, field, getattr(claims, field))
        if changed:
            user.save(update_fields=changed)
        if claims.groups is None:
            return
        synced = Group.objects.filter(access__from_provider=True)
        user.groups.remove(*synced.exclude(name__in=claims.groups))
        user.groups.add(*synced.filter(name__in=claims.groups))
