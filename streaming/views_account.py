"""A user's own pages: their settings, what they spent, and their conversations as files."""

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from streaming.exceptions import ErrorCode, ImportRefused
from streaming.forms import ImportForm, UserSettingsForm
from streaming.models import Conversation
from streaming.services import (
    conversations,
    export_zip,
    exports,
    imports,
    shares,
    storage,
    usage,
    user_settings,
)
from streaming.views import NOT_FOUND

Response = TypeVar("Response", HttpResponse, StreamingHttpResponse)

# An import refused for a limit of the user's rather than for its file.
_IMPORT_STATUS = {ErrorCode.IMPORT_RUNNING: 409, ErrorCode.IMPORTS_PER_DAY: 429}


@require_http_methods(["GET", "POST"])
@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    """The user's settings, and their conversations exported and imported."""
    user: User = request.user  # type: ignore[assignment]
    form = UserSettingsForm(request.POST or None, instance=user_settings.settings_for(user))
    if request.method == "POST":
        if form.is_valid():
            user_settings.do_save_settings(form.save(commit=False))
            messages.success(request, "Settings saved.")
            return redirect("streaming:settings")
        # Shown again as typed, with what is wrong; nothing saved.
        return _settings_page(request, form, ImportForm(), status=400)
    return _settings_page(request, form, ImportForm())


def _settings_page(
    request: HttpRequest,
    form: UserSettingsForm,
    import_form: ImportForm,
    *,
    problems: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "streaming/settings.html",
        {
            "form": form,
            "import_form": import_form,
            "import_problems": problems or [],
            "import_max_bytes": settings.IMPORT_MAX_BYTES,
            "sharing": shares.enabled(),
            "links": shares.links_of(request.user),  # type: ignore[arg-type]
        },
        status=status,
    )


@require_GET
@login_required
def usage_page(request: HttpRequest) -> HttpResponse:
    """Tokens the user's answers cost in the last 30 days, by day and model, with totals;
    and what their conversations store (attached files' share of it too), against their
    storage quota."""
    owner_id: int = request.user.pk  # type: ignore[assignment]  # logged in
    recent = usage.recent_days(owner_id, timezone.now())
    return render(
        request,
        "streaming/usage.html",
        {
            "rows": _newest_day_first(usage.summarize(recent, by=("day", "provider", "model"))),
            "totals": usage.totals(recent),
            "days": usage.PAGE_DAYS,
            "storage_used": storage.used(owner_id),
            "storage_files": storage.attached_bytes(owner_id),
            "storage_quota": storage.quota(owner_id),
        },
    )


@require_GET
@login_required
def export_markdown(request: HttpRequest, conversation_id: str) -> StreamingHttpResponse:
    """One conversation, the branch it shows, as a Markdown file, streamed."""
    conversation = get_own_conversation(request, conversation_id)
    response = StreamingHttpResponse(
        exports.streamed(exports.markdown_pieces(conversation)),
        content_type="text/markdown; charset=utf-8",
    )
    return _attachment(response, f"{_file_stem(conversation)}.md")


@require_GET
@login_required
def export_json(request: HttpRequest, conversation_id: str) -> StreamingHttpResponse:
    """One conversation, every message of its tree, as an export file, streamed: a ZIP with
    its files when its messages carry any."""
    conversation = get_own_conversation(request, conversation_id)
    stem = _file_stem(conversation)
    if exports.with_files(Conversation.objects.filter(pk=conversation.pk)):
        return zip_download(lambda files: exports.json_pieces([conversation], files), f"{stem}.zip")
    response = StreamingHttpResponse(
        exports.streamed(exports.json_pieces([conversation])),
        content_type="application/json; charset=utf-8",
    )
    return _attachment(response, f"{stem}.json")


@require_GET
@login_required
def export_all(request: HttpRequest) -> StreamingHttpResponse:
    """Every conversation of the user as one export file, streamed: a ZIP with their files
    when their messages carry any."""
    user: User = request.user  # type: ignore[assignment]
    stem = f"chatsite-conversations-{timezone.now().strftime('%Y-%m-%d')}"
    if exports.with_files(exports.account_conversations(user)):
        return zip_download(lambda files: exports.account_pieces(user, files), f"{stem}.zip")
    response = StreamingHttpResponse(
        exports.streamed(exports.account_pieces(user)),
        content_type="application/json; charset=utf-8",
    )
    return _attachment(response, f"{stem}.json")


def zip_download(
    document: Callable[[exports.Files], Iterator[str]], filename: str
) -> StreamingHttpResponse:
    """The ZIP export of ``document`` and the files it names, streamed (``export_zip``)."""
    response = StreamingHttpResponse(
        exports.streamed(export_zip.zip_pieces(document)), content_type="application/zip"
    )
    return _attachment(response, filename)


@require_POST
@login_required
def import_conversations(request: HttpRequest) -> HttpResponse:
    """Import an export file as new conversations of the user, all or none."""
    user: User = request.user  # type: ignore[assignment]
    settings_form = UserSettingsForm(instance=user_settings.settings_for(user))
    try:
        # Before request.POST: reading it parses the whole upload.
        imports.check_upload_size(request.META.get("CONTENT_LENGTH"))
    except ImportRefused as exc:
        return _settings_page(
            request, settings_form, ImportForm(), problems=[exc.message, *exc.problems], status=413
        )
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _settings_page(request, settings_form, form, status=400)
    upload = form.cleaned_data["file"]
    try:
        imports.check_size(upload.size)  # before reading it
        created = imports.do_import(user, upload)
    except ImportRefused as exc:
        return _settings_page(
            request,
            settings_form,
            form,
            problems=[exc.message, *exc.problems],
            status=_IMPORT_STATUS.get(exc.code, 400),
        )
    count = len(created)
    messages.success(request, f"Imported {count} conversation{'s' if count != 1 else ''}.")
    return redirect("streaming:conversation_list")


def _newest_day_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Sorted by day then model: the days turned round, each day's models kept in order.
    return sorted(rows, key=lambda row: row["day"], reverse=True)


def get_own_conversation(request: HttpRequest, conversation_id: object) -> Conversation:
    """The user's conversation, or a 404 with the words of every page (views.NOT_FOUND)."""
    conversation = conversations.get_conversation_for(request.user, conversation_id)
    if conversation is None:
        raise Http404(NOT_FOUND)
    return conversation


def _attachment(response: Response, filename: str) -> Response:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _file_stem(conversation: Conversation) -> str:
    return slugify(str(conversation))[:60] or "conversation"
