"""Share links' pages: the owner's page to share a conversation and revoke its links, the
shared page a link opens (read-only: no socket, no composer, no provider or usage), and
"Continue in a new chat" for a signed-in reader."""

from typing import Any
from urllib.parse import urlencode

from csp.decorators import csp_replace
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from streaming.exceptions import ChatError
from streaming.services import conversations, shares
from streaming.sharing import SharedLink
from streaming.views import NOT_FOUND

# The same words for a link never made, revoked, expired, or of a deleted conversation.
LINK_NOT_FOUND = "This link does not open: it was revoked or has expired, or it is not right."


@require_http_methods(["GET", "POST"])
@login_required
def share_conversation(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The owner's page for a conversation's links: make one, see and revoke those open."""
    owner: User = request.user  # type: ignore[assignment]  # logged in
    conversation = conversations.get_conversation_for(owner, conversation_id)
    if conversation is None:
        raise Http404(NOT_FOUND)
    status = 200
    made: SharedLink | None = None
    problem = ""
    if request.method == "POST":
        try:
            made = shares.do_share(
                conversation,
                str(request.POST.get("audience", "")),
                str(request.POST.get("expiry", "")),
            )
        except ChatError as refused:
            problem, status = refused.message, 400
    return render(
        request,
        "streaming/share.html",
        {
            "conversation": conversation,
            "made": made,
            "problem": problem,
            "audiences": shares.audiences(),
            "expiries": shares.EXPIRY_LABELS,
            "links": shares.links_of(owner, conversation),
        },
        status=status,
    )


@require_POST
@login_required
def revoke(request: HttpRequest, link_id: int) -> HttpResponse:
    """Revoke one of the user's links; back to where the form was."""
    owner: User = request.user  # type: ignore[assignment]
    if shares.do_revoke(owner, link_id):
        messages.success(request, "Link revoked: it no longer opens.")
    back = str(request.POST.get("next", ""))
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("streaming:settings")
    return redirect(back)


def _open(request: HttpRequest, token: str) -> SharedLink | HttpResponse:
    link = shares.open_link(token)
    if link is None:
        raise Http404(LINK_NOT_FOUND)
    if not shares.open_to_anyone(link) and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return link


def _private(response: HttpResponse) -> HttpResponse:
    # Never in a search engine, never in a cache that would outlive a revoke, and its
    # address (the token) never sent on to a site its links lead to (same-origin, not
    # no-referrer: with that, a form's Origin is "null", and Django's CSRF check refuses it).
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


# The page opens no connection at all (no socket). form-action stays the site's: the
# header's Log out goes on to the identity provider's end-session endpoint.
@csp_replace({"connect-src": ["'none'"]})  # type: ignore[arg-type]
@require_GET
def shared(request: HttpRequest, token: str) -> HttpResponse:
    """What a link shows, a page at a time."""
    opened = _open(request, token)
    if isinstance(opened, HttpResponse):
        return _private(opened)
    try:
        start = max(0, int(request.GET.get("from", "0")))
    except ValueError:
        start = 0
    shown = shares.page(opened, start)
    context: dict[str, Any] = {
        "link": opened,
        "shown": shown,
        "earlier": _from(token, start - shares.PAGE) if start > 0 else "",
        "later": _from(token, start + shares.PAGE) if start + shares.PAGE < opened.count else "",
        "first": start + 1,
        "last": start + len(shown),
    }
    return _private(render(request, "streaming/shared.html", context))


def _from(token: str, start: int) -> str:
    return f"{reverse('streaming:shared', args=[token])}?{urlencode({'from': max(0, start)})}"


@require_POST
@login_required
def continue_shared(request: HttpRequest, token: str) -> HttpResponse:
    """Copy what the link shows into a new conversation of the reader's, and open it."""
    opened = _open(request, token)
    if isinstance(opened, HttpResponse):
        return _private(opened)
    reader: User = request.user  # type: ignore[assignment]
    try:
        conversation = shares.do_continue(opened, reader)
    except ChatError as refused:
        messages.error(request, refused.message)
        return redirect("streaming:shared", token=token)
    return redirect("streaming:conversation_detail", conversation_id=conversation.pk)
