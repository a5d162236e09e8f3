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
    # What the chat page's picker offers, as its options' values: "<provider id>:<model ID>"
    # (":<model>" for the site's default provider; model IDs may hold ":", provider ids
    # never do). "" too, the site's default, as the page before sent it.
    default_model_choice = forms.ChoiceField(label="Default model", required=False)

    class Meta:
        model = UserSettings
        fields = ("default_system_prompt",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._groups = providers.picker(self.instance.user_id)
        choices: list[tuple[str, str]] = [("", "The site's default")]
        for group in self._groups:
            key = "" if group["provider_id"] is None else group["provider_id"]
            choices.extend((f"{key}:{m['model']}", m["label"]) for m in group["models"])
        current = self.instance
        field: forms.ChoiceField = self.fields["default_model_choice"]  # type: ignore[assignment]
        #: A default no longer offered, shown as it is so the page does not quietly change it
        #: to another: {value, label}; None when the default is offered.
        self.stale_choice: dict[str, str] | None = None
        if current.default_provider_id is None:
            field.initial = f":{settings.OPENAI_MODEL}"
        else:
            value = f"{current.default_provider_id}:{current.default_model}"
            field.initial = value
            if not providers.choice_of(
                current.default_provider_id, current.default_model, current.user_id
            )["available"]:
                self.stale_choice = {
                    "value": value,
                    "label": f"{current.default_model} (no longer offered)",
                }
                choices.append((value, self.stale_choice["label"]))
        field.choices = choices

    def picker_groups(self) -> list[providers.PickerGroup]:
        """The picker's groups, with the choice shown now (as posted, or as saved) selected."""
        shown = self["default_model_choice"].value() or f":{settings.OPENAI_MODEL}"
        for group in self._groups:
            key = "" if group["provider_id"] is None else group["provider_id"]
            for entry in group["models"]:
                entry["selected"] = f"{key}:{entry['model']}" == shown
        return self._groups

    def save(self, commit: bool = True) -> UserSettings:
        chosen = self.cleaned_data.get("default_model_choice") or ""
        provider_id, _, model = chosen.partition(":")
        self.instance.default_provider_id = int(provider_id) if provider_id else None
        # The default provider's one model is stored as "": whatever OPENAI_MODEL names next.
        self.instance.default_model = model if provider_id else ""
        return super().save(commit)


class ImportForm(forms.Form):
    """An export file to import (its size is checked before it is read)."""

    file = forms.FileField(
        label="Export file (JSON, or ZIP with attached files)",
        widget=forms.ClearableFileInput(
            attrs={"accept": "application/json,.json,application/zip,.zip"}
        ),
    )
