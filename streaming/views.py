"""The chat pages: history is rendered on the server, new answers stream over the socket."""

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from streaming import frames, runtime
from streaming.exceptions import ChatError, ErrorCode, Invalid, LimitError
from streaming.forms import NewConversationForm
from streaming.models import Conversation
from streaming.services import (
    conversations,
    deletion,
    drafts,
    listing,
    providers,
    shares,
    snapshots,
    usage,
    user_settings,
)

# The same words for a conversation deleted, never made, or someone else's: which it is
# stays unsaid.
NOT_FOUND = "This conversation does not exist: it was deleted, or the link is not right."
TOO_LATE = "Too late to undo: that conversation is deleted for good."
SIGNED_OUT = "You are signed out. Sign in again, then send your message."


def _listing(
    request: HttpRequest, page: listing.Page, current: Conversation | None = None
) -> dict[str, Any]:
    """What _conversation_items.html needs for one page of the user's conversations."""
    today, now = timezone.localdate(), timezone.now()
    for conversation in page.conversations:
        conversation.group = listing.group_label(conversation.updated_at, today)  # type: ignore[attr-defined]
        conversation.ago = listing.ago(conversation.updated_at, now)  # type: ignore[attr-defined]
    next_url = next_fragment = None
    if page.next_cursor:
        before = urlencode({"before": page.next_cursor})
        next_url = f"{reverse('streaming:conversation_list')}?{before}"
        next_fragment = f"{reverse('streaming:conversation_page')}?{before}"
    return {
        "conversations": page.conversations,
        "current": current,
        "next_url": next_url,
        "next_fragment": next_fragment,
    }


@require_GET
@login_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest activity first, a page at a time; or what a search
    finds; and a way to start one."""
    return _list_page(request, NewConversationForm())


def _list_page(request: HttpRequest, form: NewConversationForm, status: int = 200) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    context: dict[str, Any] = {"form": form, "query": query}
    if query:
        context["hits"] = listing.search(request.user, query)
    else:
        page = listing.page_of(request.user, request.GET.get("before"))
        context |= _listing(request, page)
        context["paged"] = bool(request.GET.get("before"))
    deleted = request.GET.get("deleted")
    if deleted and deletion.restorable(request.user, deleted):
        # As the URL spells a UUID (any spelling the field took would not reverse).
        context["undo"] = {"id": uuid.UUID(deleted), "seconds": settings.DELETE_UNDO_SECONDS}
    return render(request, "streaming/conversation_list.html", context, status=status)


@require_GET
@login_required
def conversation_page(request: HttpRequest) -> HttpResponse:
    """One more page of the user's conversations, as list items (chat/sidebar.js loads it
    as the list or the sidebar scrolls); `?before=` is the cursor the last page gave."""
    page = listing.page_of(request.user, request.GET.get("before"))
    current = conversations.get_conversation_for(request.user, request.GET.get("current"))
    context = _listing(request, page, current) | {"with_times": "times" in request.GET}
    return render(request, "streaming/_conversation_items.html", context)


async def conversation_new(request: HttpRequest) -> HttpResponse:
    """GET: the page of a new chat, saved only when its first message is sent. POST: that
    first message, which makes the conversation (``conversation_start``)."""
    if request.method == "POST":
        return await conversation_start(request)
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET", "POST"])
    return await sync_to_async(_draft_page)(request)


@login_required
def _draft_page(
    request: HttpRequest, *, refusal: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    """A new chat's page; ``refusal``: its first message, posted by the form, was refused
    (the error frame's fields), and is shown again as typed with why."""
    if refusal is not None:
        prompt = request.POST.get("system_prompt", "")
    elif request.GET and not any(request.GET.values()):
        # The list's form sends its prompt field empty: the same page, at its plain address.
        return redirect("streaming:conversation_new")
    else:
        form = NewConversationForm(request.GET or None)
        if request.GET and not form.is_valid():
            # Shown again with the prompt as typed and what is wrong with it; nothing saved.
            return _list_page(request, form, status=400)
        prompt = form.cleaned_data["system_prompt"] if request.GET else ""
    # Shown as the conversation will be made: with the reader's defaults (settings page).
    owner_id: int = request.user.pk  # type: ignore[assignment]  # logged in
    provider_id, model = user_settings.default_model(owner_id)
    draft = Conversation(
        # Its owner too: the picker offers what the owner may use (services/model_access.py).
        owner_id=owner_id,
        system_prompt=prompt or user_settings.default_system_prompt(owner_id),
        provider_id=provider_id,
        model=model,
    )
    return _chat_page(request, draft, draft=True, refusal=refusal, status=status)


async def conversation_start(request: HttpRequest) -> HttpResponse:
    """Save a new conversation with its first message and start the answer: the draft
    page's first send. For the page's script: {conversation_id, url, ws_path}, or an
    error {type, code, message} and nothing saved. For the form itself, sent before the
    script took it over or without one (its ``page`` field says so): the conversation's
    page, or the draft again with the text kept and why it was refused."""
    if request.POST.get("reply") == "page":
        return await _started_page(request)
    return await _start(request)


async def _started_page(request: HttpRequest) -> HttpResponse:
    started = await _start(request)
    if started.status_code in (200, 201):
        return redirect(json.loads(started.content)["url"])
    refusal = json.loads(started.content)
    return await sync_to_async(_draft_page)(request, refusal=refusal, status=started.status_code)


async def _start(request: HttpRequest) -> JsonResponse:
    user = await request.auser()
    if not user.is_authenticated:
        return _refusal(ChatError(SIGNED_OUT, code=ErrorCode.SESSION_ENDED), status=401)
    try:
        client_id = uuid.UUID(request.POST.get("client_id", ""))
    except ValueError:
        return _refusal(Invalid("client_id must be a UUID.", code=ErrorCode.BAD_CLIENT_ID))
    # The model picker's pick, if the page's reader changed it: "" for the default
    # provider, else a provider's number (docs/protocol.md, set_model).
    provider = request.POST.get("provider_id", "")
    if provider and not provider.isdigit():
        return _refusal(
            Invalid("provider_id must be a provider's number.", code=ErrorCode.BAD_MODEL)
        )
    try:
        posted = await runtime.begin(
            drafts.do_start_conversation,
            user,
            request.POST.get("content"),
            client_id,
            # As the page showed it (the owner's default, unless changed there); absent:
            # the owner's default.
            system_prompt=request.POST.get("system_prompt"),
            provider_id=int(provider) if provider else None,
            model=request.POST.get("model"),
            attachment_ids=request.POST.getlist("attachments") or None,
        )
    except LimitError as exc:
        return _refusal(exc, status=429)
    except ChatError as exc:
        return _refusal(exc)
    conversation_id = posted.conversation.pk
    return JsonResponse(
        {
            "conversation_id": str(conversation_id),
            "url": reverse("streaming:conversation_detail", args=[conversation_id]),
            "ws_path": f"/ws/conversations/{conversation_id}/",
        },
        # A resend of the first message finds the conversation it made: nothing new.
        status=201 if isinstance(posted, conversations.Started) else 200,
    )


def _refusal(error: ChatError, status: int = 400) -> JsonResponse:
    return JsonResponse(frames.error_frame(error), status=status)


@require_GET
@login_required
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The chat page: stored history, and the socket for what comes next. `?message=`
    opens it at that message (a search hit), on its branch."""
    conversation = conversations.get_conversation_for(request.user, conversation_id)
    if conversation is None:
        raise Http404(NOT_FOUND)
    return _chat_page(request, conversation, message=request.GET.get("message"))


def _chat_page(
    request: HttpRequest,
    conversation: Conversation,
    *,
    draft: bool = False,
    refusal: dict[str, Any] | None = None,
    status: int = 200,
    message: str | None = None,
) -> HttpResponse:
    held = snapshots.opened_at(conversation, message) if not draft else None
    picker, choice, listed = providers.model_picker_for(conversation)
    sidebar = listing.page_of(request.user)
    return render(
        request,
        "streaming/conversation_detail.html",
        {
            **_listing(request, sidebar, None if draft else conversation),
            "conversation": conversation,
            "draft": draft,
            # A window of the branch shown is in the HTML (at its end, or around the message
            # asked for), and in the page's data with the streaming answer and the other
            # versions' stubs: a snapshot's (docs/protocol.md).
            "chat_messages": held.window.messages if held else [],
            "initial_messages": held.initial() if held else {"messages": [], "leaf_id": None},
            "max_message_chars": settings.MAX_MESSAGE_CHARS,
            "max_system_prompt_chars": settings.MAX_SYSTEM_PROMPT_CHARS,
            "attach_max_files": settings.ATTACH_MAX_FILES,
            "attach_max_bytes": settings.ATTACH_MAX_BYTES,
            "usage": usage.conversation_totals(conversation),
            "model_picker": picker,
            "sharing": shares.enabled(),
            "model_choice": choice,
            "model_choice_listed": listed,
            # A draft's form, sent without the page's script, says who sent it: a resend
            # of the same page finds the conversation its first send made.
            "client_id": uuid.uuid4() if draft else None,
            "refusal": refusal,
            "refused_content": request.POST.get("content", "") if refusal else "",
        },
        status=status,
    )


@require_POST
@login_required
def conversation_delete(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """Delete a conversation (undoable for a few seconds, from the list page it goes to);
    its answer stops and every tab is told."""
    conversation = conversations.get_conversation_for(request.user, conversation_id)
    if conversation is None:
        raise Http404(NOT_FOUND)
    deletion.do_delete_conversation(conversation)
    list_url = reverse("streaming:conversation_list")
    return redirect(f"{list_url}?{urlencode({'deleted': conversation.pk})}")


@require_POST
@login_required
def conversation_restore(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """Undo a delete within DELETE_UNDO_SECONDS, and open the conversation again."""
    if deletion.do_restore_conversation(request.user, conversation_id) is None:
        messages.error(request, TOO_LATE)
        return redirect("streaming:conversation_list")
    return redirect("streaming:conversation_detail", conversation_id=conversation_id)
