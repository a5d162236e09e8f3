"""Making an account without staff: with an invitation (streaming/invitations.py), or, for
an address at one of SIGNUP_DOMAINS, by oneself. Nobody else may; nobody may at all while
the password form is for superusers only (LOCAL_LOGIN): people come through the identity
provider then.

An address must be proven (a link mailed to it, ``confirmation``) when the right to make the
account rests on it: a domain's sign-up, an invitation tied to a domain. Until then the
account exists but is inactive, so it can neither log in nor take its name back from
someone who proves theirs. An invitation is used up when its account is made, whoever
wins a race for it: the row is locked and read again first.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import transaction
from django.utils import timezone

from streaming.exceptions import Invalid
from streaming.invitations import Invitation

#: How long a confirmation link works.
CONFIRM_DAYS = 2
NOT_OPEN = "This invitation does not open: it was used or has expired, or the link is not right."


class _Confirmation(PasswordResetTokenGenerator):
    """A link's token that holds while the account is waiting: made of its state, so it
    stops working once the account was confirmed and used (a login changes last_login)."""

    key_salt = "chatsite.signups.confirmation"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        return f"{user.pk}{user.is_active}{user.last_login}{user.email}{timestamp}"


confirmation = _Confirmation()


def open_invitation(token: str) -> Invitation | None:
    """The invitation ``token`` names while it may still be used."""
    if not isinstance(token, str) or len(token) > 64:
        return None
    return Invitation.objects.filter(
        token=token, used_at__isnull=True, expires_at__gt=timezone.now()
    ).first()


def may_sign_up() -> bool:
    """Whether the sign-up page is open to anyone with an address at SIGNUP_DOMAINS."""
    return bool(settings.SIGNUP_DOMAINS) and local_accounts()


def local_accounts() -> bool:
    """Whether accounts made here could log in (LOCAL_LOGIN lets everyone in)."""
    return settings.LOCAL_LOGIN == "everyone" or not settings.OIDC_SERVER_URL


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def check_address(email: str, invitation: Invitation | None) -> None:
    """Invalid unless ``email`` may make this account: at the invitation's domain if it
    names one; without an invitation, at one of SIGNUP_DOMAINS."""
    domain = domain_of(email)
    if invitation is not None:
        wanted = invitation.email_domain.lower().lstrip("@")
        if wanted and domain != wanted:
            raise Invalid(f"This invitation is for an address at {wanted}.")
    elif domain not in settings.SIGNUP_DOMAINS:
        listed = ", ".join(settings.SIGNUP_DOMAINS)
        raise Invalid(f"Accounts here are for addresses at {listed}; ask for an invitation.")


def needs_confirming(invitation: Invitation | None) -> bool:
    """Whether the account waits for its address to be proven."""
    return invitation is None or bool(invitation.email_domain)


@dataclass(frozen=True)
class SignedUp:
    user: User
    #: It waits for the link mailed to its address.
    waiting: bool


def do_sign_up(username: str, email: str, password: str, invitation_token: str | None) -> SignedUp:
    """Make the account (the form checked the name and the password). Invalid, having made
    nothing, when the invitation no longer opens or the address may not sign up."""
    with transaction.atomic():
        invitation = None
        if invitation_token is not None:
            invitation = (
                Invitation.objects.select_for_update()
                .filter(token=invitation_token, used_at__isnull=True, expires_at__gt=timezone.now())
                .first()
            )
            if invitation is None:
                raise Invalid(NOT_OPEN)
        elif not may_sign_up():
            raise Invalid("Nobody may make an account here without an invitation.")
        check_address(email, invitation)
        waiting = needs_confirming(invitation)
        user = User.objects.create_user(username, email, password, is_active=not waiting)
        if invitation is not None:
            user.groups.add(*invitation.groups.all())
            invitation.used_at, invitation.used_by = timezone.now(), user
            invitation.save(update_fields=["used_at", "used_by"])
    return SignedUp(user=user, waiting=waiting)


def do_confirm(user_id: str, token: str) -> User | None:
    """Activate the waiting account the link names; None if the link is not (or no longer)
    good."""
    # A number the id column could not hold names nobody (and must not reach the SQL).
    user = (
        User.objects.filter(pk=int(user_id)).first()
        if user_id.isdigit() and len(user_id) < 10
        else None
    )
    if user is None or user.is_active or user.last_login is not None:
        return None
    if not confirmation.check_token(user, token):
        return None
    created_recently = user.date_joined > timezone.now() - timedelta(days=CONFIRM_DAYS)
    if not created_recently:
        return None
    user.is_active = True
    user.save(update_fields=["is_active"])
    return user
