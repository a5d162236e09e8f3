"""Forms of the chat pages."""

from typing import Any

from django import forms
from django.conf import settings

from streaming.exceptions import ChatError
from streaming.models import UserSettings
from streaming.services import providers
from streaming.text import check_storable


class SystemPromptField(forms.CharField):
    """A system prompt: optional, kept as typed, at most MAX_SYSTEM_PROMPT_CHARS, storable.

    The prompt goes with every request to the model, so its length costs on every message.
    The limit is read when a form is made and when it validates, so a changed setting (and
    override_settings) takes effect.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        kwargs.setdefault(
            "widget",
            forms.Textarea(
                attrs={
                    "rows": 4,
                    "placeholder": "For example: You are a concise assistant. Answer in English.",
                }
            ),
        )
        super().__init__(**kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> "SystemPromptField":
        # Each form gets its own copy of the field: the browser's limit is the current one.
        field: SystemPromptField = super().__deepcopy__(memo)
        field.widget.attrs["maxlength"] = str(settings.MAX_SYSTEM_PROMPT_CHARS)
        return field

    def to_python(self, value: Any) -> str:
        # A browser submits a text area's line breaks as CRLF, but counts them (maxlength)
        # and the chat page sends them as LF: one prompt, one form, whichever way it came.
        return str(super().to_python(value)).replace("\r\n", "\n")

    def run_validators(self, value: Any) -> None:
        super().run_validators(value)  # Django's own first: its words for a NUL
        limit = settings.MAX_SYSTEM_PROMPT_CHARS
        if len(value) > limit:
            raise forms.ValidationError(
                f"The system prompt can be at most {limit:,} characters long "
                f"(it has {len(value)}).",
                code="max_length",
            )
        try:
            check_storable(value, what="The system prompt")
        except ChatError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None


class NewConversationForm(forms.Form):
    """A new conversation, with an optional system prompt of a bounded length (empty: the
    user's default, from the settings page)."""

    system_prompt = SystemPromptField()


class UserSettingsForm(forms.ModelForm[UserSettings]):
    """The settings page: what new conversations start with."""

    default_system_prompt = SystemPromptField(label="Default system prompt")
    # "" for the site's default, else "<provider id>:<model ID>" (model IDs may hold ":";
    # provider ids never do). Offered: what the chat page's picker offers.
    default_model_choice = forms.ChoiceField(label="Default model", required=False)

    class Meta:
        model = UserSettings
        fields = ("default_system_prompt",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices: list[Any] = []
        for group in providers.picker():
            if group["provider_id"] is None:
                (only,) = group["models"]
                choices.append(("", f"{only['label']} · {group['name']} (the site's default)"))
                continue
            key = group["provider_id"]
            choices.append(
                (group["name"], [(f"{key}:{m['model']}", m["label"]) for m in group["models"]])
            )
        field: forms.ChoiceField = self.fields["default_model_choice"]  # type: ignore[assignment]
        current = self.instance
        if current.default_provider_id is not None:
            value = f"{current.default_provider_id}:{current.default_model}"
            offered = providers.choice_of(current.default_provider_id, current.default_model)
            if not offered["available"]:
                # Shown as it is, so the page does not quietly change it to another.
                choices.append((value, f"{current.default_model} (no longer offered)"))
            field.initial = value
        field.choices = choices

    def save(self, commit: bool = True) -> UserSettings:
        chosen = self.cleaned_data.get("default_model_choice") or ""
        provider_id, _, model = chosen.partition(":")
        self.instance.default_provider_id = int(provider_id) if provider_id else None
        self.instance.default_model = model
        return super().save(commit)


class ImportForm(forms.Form):
    """An export file to import (its size is checked before it is read)."""

    file = forms.FileField(
        label="Export file (JSON)",
        widget=forms.ClearableFileInput(attrs={"accept": "application/json,.json"}),
    )
