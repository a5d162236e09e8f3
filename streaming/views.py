"""The chat pages: history is rendered on the server, new answers stream over the socket."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from streaming import control, services
from streaming.forms import NewConversationForm
from streaming.models import Conversation
from streaming.services import usage

# The same words for a conversation deleted, never made, or someone else's: which it is
# stays unsaid.
NOT_FOUND = "This conversation does not exist: it was deleted, or the link is not right."


def _recent_conversations(request: HttpRequest) -> list[Conversation]:
    return list(
        Conversation.objects.filter(owner_id=request.user.pk).only("id", "title", "updated_at")[
            :100
        ]
    )


@require_GET
@login_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest activity first, and a way to start one."""
    return _list_page(request, NewConversationForm())


def _list_page(request: HttpRequest, form: NewConversationForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "streaming/conversation_list.html",
        {"conversations": _recent_conversations(request), "form": form},
        status=status,
    )


@require_POST
@login_required
def conversation_create(request: HttpRequest) -> HttpResponse:
    """Start a conversation, optionally with a system prompt, and open it."""
    form = NewConversationForm(request.POST)
    if not form.is_valid():
        # Shown again with the prompt as typed and what is wrong with it; nothing saved.
        return _list_page(request, form, status=400)
    conversation = services.do_create_conversation(
        request.user,  # type: ignore[arg-type]
        system_prompt=form.cleaned_data["system_prompt"],
    )
    return redirect("streaming:conversation_detail", conversation_id=conversation.id)


@require_GET
@login_required
def conversation_detail(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The chat page: stored history, and the socket for what comes next."""
    conversation = services.get_conversation_for(request.user, conversation_id)
    if conversation is None:
        raise Http404(NOT_FOUND)
    tree = services.Tree.of(conversation)
    leaf = tree.leaf(conversation.leaf_id)
    picker, choice, listed = services.model_picker_for(conversation)
    return render(
        request,
        "streaming/conversation_detail.html",
        {
            "conversation": conversation,
            "conversations": _recent_conversations(request),
            # The branch shown is in the HTML; every version is in the page's data.
            "chat_messages": tree.path(leaf),
            "initial_messages": {
                "messages": [control.serialize_message(m) for m in tree.messages],
                "leaf_id": str(leaf.pk) if leaf else None,
            },
            "max_message_chars": settings.MAX_MESSAGE_CHARS,
            "max_system_prompt_chars": settings.MAX_SYSTEM_PROMPT_CHARS,
            "usage": usage.conversation_totals(conversation),
            "model_picker": picker,
            "model_choice": choice,
            "model_choice_listed": listed,
        },
    )


@require_POST
@login_required
def conversation_delete(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """Delete a conversation and its messages; its answer stops and its open tabs are told."""
    conversation = services.get_conversation_for(request.user, conversation_id)
    if conversation is None:
        raise Http404(NOT_FOUND)
    services.do_delete_conversation(conversation)
    return redirect("streaming:conversation_list")
