"""Making an account: by invitation (``/invite/<token>/``) or, for SIGNUP_DOMAINS'
addresses, by oneself (``/signup/``); and the link mailed to prove an address."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.views.decorators.http import require_GET, require_http_methods

from streaming import sso
from streaming.exceptions import ChatError
from streaming.invitations import Invitation
from streaming.services import signups


class SignUpForm(UserCreationForm[User]):
    """Django's new-account form (the password validators included), with an address."""

    email = forms.EmailField(label="Email address")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


@require_http_methods(["GET", "POST"])
def invite(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation's page: its sign-up form while it is open."""
    invitation = signups.open_invitation(token)
    if invitation is None:
        raise Http404(signups.NOT_OPEN)
    return _sign_up(request, invitation)


@require_http_methods(["GET", "POST"])
def sign_up(request: HttpRequest) -> HttpResponse:
    """The sign-up page for SIGNUP_DOMAINS' addresses."""
    if not signups.may_sign_up():
        raise Http404("Accounts here are made by invitation.")
    return _sign_up(request, None)


def _sign_up(request: HttpRequest, invitation: Invitation | None) -> HttpResponse:
    if not signups.local_accounts():
        # The password form is for superusers only: an account made here could not log in.
        return render(request, "registration/signup_closed.html", status=403)
    form = SignUpForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            try:
                made = signups.do_sign_up(
                    data["username"],
                    data["email"],
                    data["password1"],
                    invitation.token if invitation else None,
                )
            except ChatError as refused:
                form.add_error("email" if "address" in refused.message else None, refused.message)
            else:
                if made.waiting:
                    _mail_confirmation(request, made.user)
                    return render(
                        request, "registration/signup_sent.html", {"email": made.user.email}
                    )
                login(request, made.user, backend=sso.BACKEND)
                return redirect("streaming:conversation_list")
    context: dict[str, Any] = {
        "form": form,
        "invitation": invitation,
        "domains": [] if invitation else settings.SIGNUP_DOMAINS,
    }
    return render(request, "registration/signup.html", context, status=status)


def _mail_confirmation(request: HttpRequest, user: User) -> None:
    uid = urlsafe_base64_encode(str(user.pk).encode())
    path = reverse("signup_confirm", args=[uid, signups.confirmation.make_token(user)])
    send_mail(
        "Confirm your chatsite account",
        f"Open this link within {signups.CONFIRM_DAYS} days to start using your account "
        f"{user.username}:\n\n{request.build_absolute_uri(path)}\n\n"
        "If you did not ask for an account, you can ignore this mail.",
        None,
        [user.email],
    )


@require_GET
def confirm(request: HttpRequest, uid: str, token: str) -> HttpResponse:
    """The mailed link: the account starts working, and is logged in."""
    try:
        user_id = urlsafe_base64_decode(uid).decode()
    except (ValueError, UnicodeDecodeError):
        user_id = ""
    user = signups.do_confirm(user_id, token)
    if user is None:
        raise Http404("This link does not work: it was used or has expired, or it is not right.")
    # Logging in sets last_login, which ends the link for good (signups._Confirmation).
    login(request, user, backend=sso.BACKEND)
    messages.success(request, "Your address is confirmed: welcome.")
    return redirect("streaming:conversation_list")
