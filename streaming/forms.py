"""Forms of the chat pages."""

from typing import Any

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator

from streaming.exceptions import ChatError
from streaming.services import check_storable


class NewConversationForm(forms.Form):
    """A new conversation, with an optional system prompt of a bounded length.

    The prompt goes with every request to the model, so its length costs on every message.
    """

    system_prompt = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "placeholder": "For example: You are a concise assistant. Answer in English.",
            }
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read at call time, so a changed setting (and override_settings) takes effect.
        limit = settings.MAX_SYSTEM_PROMPT_CHARS
        field = self.fields["system_prompt"]
        field.validators.append(
            MaxLengthValidator(
                limit,
                message=f"The system prompt can be at most {limit:,} characters long "
                "(it has %(show_value)s).",
            )
        )
        field.widget.attrs["maxlength"] = str(limit)

    def clean_system_prompt(self) -> str:
        prompt: str = self.cleaned_data["system_prompt"]
        try:
            check_storable(prompt, what="system prompt")
        except ChatError as exc:
            raise forms.ValidationError(exc.message) from None
        return prompt
