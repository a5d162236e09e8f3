"""Single sign-on with OpenID Connect, through django-allauth's provider for it: the
adapters that say how a sign-in makes and keeps an account, the two views allauth's flow
runs in, and where logout sends the browser next.

Only the provider's login and callback are routed (no allauth account pages): the local
form stays Django's, behind django-axes. A sign-in ends in Django's own ``login()``, so
sessions, and the sockets that hold them, end as any other's (streaming/sessions.py).
"""

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.signals import user_logged_in
from allauth.account.utils import get_next_redirect_url
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialApp, SocialLogin
from allauth.socialaccount.providers.base import AuthProcess
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from allauth.utils import generate_unique_username
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AbstractBaseUser, User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from requests import RequestException

from streaming.services import memberships

logger = logging.getLogger(__name__)

# Django's own backend, not axes's: a session remembers the backend that loads its user.
BACKEND = "django.contrib.auth.backends.ModelBackend"
# What logout needs of the sign-in: the raw ID token (the provider's end-session endpoint
# takes it as the hint of whom to sign out) and that endpoint. Kept in the session only.
_LOGOUT_KEY = "sso_logout"
_FIELD_LENGTH = 150  # User.first_name's and last_name's


def enabled() -> bool:
    """Whether a provider is configured."""
    return bool(settings.OIDC_SERVER_URL)


def local_form_for_everyone() -> bool:
    """Whether the login page offers its password form to everyone, not only superusers."""
    return settings.LOCAL_LOGIN == "everyone" or not enabled()


def _refused(request: HttpRequest, message: str, status: int) -> ImmediateHttpResponse:
    return ImmediateHttpResponse(
        render(request, "registration/sso_refused.html", {"message": message}, status=status)
    )


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    """allauth's account side, cut down to what a sign-in uses: no sign-up of its own,
    no messages, Django's backend."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def add_message(self, *args: Any, **kwargs: Any) -> None:
        """The pages say what happened; allauth's messages would repeat it."""

    def login(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        user.backend = BACKEND
        super().login(request, user)

    def respond_user_inactive(self, request: HttpRequest, user: AbstractBaseUser) -> HttpResponse:
        raise _refused(
            request, "This account is deactivated. Ask a staff member if that is a mistake.", 403
        )


class SocialAccountAdapter(DefaultSocialAccountAdapter):  # type: ignore[misc]
    """A first sign-in makes the account from the claims, named as the configured claim
    says (with a number added if a local account has that name)."""

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return enabled()

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Only a sign-in gets this far: no other of allauth's processes (connecting a
        second identity to the signed-in account) is started here (``start``), nor
        accepted; and the userinfo must be of the person the ID token names."""
        found = (sociallogin.account.extra_data or {}).copy()
        named = [
            str(part["sub"]) for part in found.values() if isinstance(part, dict) and "sub" in part
        ]
        if sociallogin.state.get("process") != AuthProcess.LOGIN or len(set(named)) > 1:
            self.on_authentication_error(request, None)

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: Any) -> Any:
        found = claims_of(sociallogin)
        claimed = str(found.get(settings.OIDC_USERNAME_CLAIM) or "")
        data = {
            **data,
            # The claimed name, made valid, with a number added when an account has it.
            "username": generate_unique_username([claimed, "user"]),
            "email": str(found.get(settings.OIDC_EMAIL_CLAIM) or ""),
        }
        return super().populate_user(request, sociallogin, data)

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        # Whatever went wrong (a cancel at the provider, a provider out of reach, a code
        # refused), the person is told so and may try again; nothing was written.
        raise _refused(
            request,
            f"Signing in with {settings.OIDC_NAME} did not complete. Please try again; if it "
            "keeps failing, ask a staff member.",
            400,
        )


def claims_of(sociallogin: SocialLogin) -> dict[str, Any]:
    """The sign-in's claims: the ID token's, overlaid by the userinfo endpoint's."""
    data = sociallogin.account.extra_data or {}
    return {**(data.get("id_token") or {}), **(data.get("userinfo") or {})}


def _claims(found: dict[str, Any]) -> memberships.Claims:
    groups: frozenset[str] | None = None
    if settings.OIDC_GROUPS_CLAIM:
        named = found.get(settings.OIDC_GROUPS_CLAIM) or []
        # Keycloak may give full paths ("/staff/ml"): matched whole, without the leading
        # slash ("staff/ml"), never by their last part, which two paths may share.
        names = named if isinstance(named, list) else [named]
        groups = frozenset(str(name).strip("/") for name in names)
    email = str(found.get(settings.OIDC_EMAIL_CLAIM) or "")
    return memberships.Claims(
        email=email if len(email) <= 254 else "",
        first_name=str(found.get("given_name") or "")[:_FIELD_LENGTH],
        last_name=str(found.get("family_name") or "")[:_FIELD_LENGTH],
        groups=groups,
    )


def _signed_in(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """After every sign-in through the provider: the account in step with its claims, and
    what logout will need."""
    sociallogin: SocialLogin | None = kwargs.get("sociallogin")
    if sociallogin is None:
        return
    memberships.do_sync(user, _claims(claims_of(sociallogin)))
    request.session[_LOGOUT_KEY] = getattr(request, "_sso_logout", None)


def connect_signals() -> None:
    """Keep accounts in step at each sign-in (from ``ready()``)."""
    user_logged_in.connect(_signed_in, dispatch_uid="streaming.sso.signed_in")


class SsoAdapter(OpenIDConnectOAuth2Adapter):  # type: ignore[misc]
    """allauth's adapter, keeping of the token response what logout needs, and checking
    the ID token's signature always (allauth skips it for a token it fetched itself)."""

    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict[str, Any]:
        config = self.openid_config
        decoded: dict[str, Any] = jwtkit.verify_and_decode(
            credential=id_token,
            keys_url=config["jwks_uri"],
            issuer=config["issuer"],
            audience=app.client_id,
            lookup_kid=jwtkit.lookup_kid_jwk,
            verify_signature=True,
        )
        return decoded

    def parse_token(self, data: dict[str, Any]) -> Any:
        endpoint = self.openid_config.get("end_session_endpoint")
        if endpoint and data.get("id_token"):
            self.request._sso_logout = {
                "endpoint": endpoint,
                "id_token": data["id_token"],
            }
        return super().parse_token(data)


def _run(
    step: Callable[[SsoAdapter], HttpResponse], request: HttpRequest, provider_id: str
) -> HttpResponse:
    if not enabled() or provider_id != settings.OIDC_PROVIDER_ID:
        raise Http404
    try:
        response = step(SsoAdapter(request, settings.OIDC_PROVIDER_ID))
    except SocialApp.DoesNotExist:
        raise Http404 from None
    except ImmediateHttpResponse as refused_early:
        early: HttpResponse = refused_early.response
        return early
    except (RequestException, KeyError):
        # Starting a sign-in reads the provider's discovery document, which may not answer,
        # or lack what it must name.
        logger.warning("The identity provider's discovery document could not be read.")
        refused: HttpResponse = _refused(
            request,
            f"{settings.OIDC_NAME} did not answer. Please try again in a moment; if it keeps "
            "failing, ask a staff member.",
            502,
        ).response
        return refused
    return response


@require_POST
def start(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Start a sign-in: the browser goes to the provider (a POST, so no page of another
    site can start one with a link)."""

    def begin(adapter: SsoAdapter) -> HttpResponse:
        # A sign-in and nothing else, with the scopes configured: what allauth's own view
        # would take from the request (its process, scopes, authorization parameters) is
        # not the request's to choose.
        response: HttpResponse = adapter.get_provider().redirect(
            request, AuthProcess.LOGIN, next_url=get_next_redirect_url(request)
        )
        return response

    return _run(begin, request, provider_id)


@require_GET
def callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Where the provider sends the browser back, with a code to exchange."""

    def finish(adapter: SsoAdapter) -> HttpResponse:
        response: HttpResponse = OAuth2CallbackView.adapter_view(adapter)(request)
        return response

    return _run(finish, request, provider_id)


def end_session_url(request: HttpRequest) -> str:
    """Where logout sends the browser after chatsite's session ended: the provider's
    end-session endpoint, when the session came from a sign-in there and the provider has
    one; else ''. Read before the session is flushed."""
    found = request.session.get(_LOGOUT_KEY)
    if not found:
        return ""
    back = request.build_absolute_uri(reverse("login"))
    query = urlencode(
        {
            "id_token_hint": found["id_token"],
            "post_logout_redirect_uri": back,
            "client_id": settings.OIDC_CLIENT_ID,
        }
    )
    endpoint: str = found["endpoint"]
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


class LocalLoginRule(AuthenticationForm):
    """With ``LOCAL_LOGIN=superusers`` only a superuser's password opens a session, and
    anyone else is told what a wrong password is told, so the form says nothing of it:
    the rule of the login page's form and of the admin's."""

    def confirm_login_allowed(self, user: AbstractBaseUser) -> None:
        super().confirm_login_allowed(user)  # type: ignore[arg-type]
        if not local_form_for_everyone() and not getattr(user, "is_superuser", False):
            raise self.get_invalid_login_error()


class LoginForm(LocalLoginRule):
    """The login page's form: Django's, under the rule."""


class LoginView(auth_views.LoginView):
    """The login page: "Sign in with …" when a provider is configured, beside the local
    form (or, for superusers only, below it: registration/login.html)."""

    authentication_form = LoginForm


class LogoutView(auth_views.LogoutView):
    """Django's logout; after a sign-in through the provider, the browser goes on to the
    provider's end-session endpoint, which signs it out there and sends it back."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        at_provider = end_session_url(request)
        response: HttpResponse = super().post(request, *args, **kwargs)
        return redirect(at_provider) if at_provider else response
