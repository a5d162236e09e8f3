"""Providers and their models: what the picker offers, what a conversation chose, and where
its answers are asked for.

The environment's OPENAI_* settings are the default provider (``provider_id`` None), which
offers OPENAI_MODEL; staff add others in the admin (``Provider``, ``ProviderModel``). A
conversation's choice is its ``provider`` and ``model``; ``resolve`` is the one place that
turns it into a connection, for every answer.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from streaming import control, layer, model_list
from streaming.exceptions import (
    ChatError,
    ConversationGone,
    ErrorCode,
    Invalid,
    ModelUnavailable,
)
from streaming.models import Conversation, Provider, ProviderModel
from streaming.services import events, model_access
from streaming.text import check_storable

# The most a model ID may be: ProviderModel.model_id's and Conversation.model's max_length.
_MODEL_ID_CHARS = 200
# Provider ids are BigAutoFields; a bigger number names none (and must not reach the SQL).
_MAX_ID = 2**63 - 1
# Listing a provider's models is done while a staff member waits for the admin page.
FETCH_TIMEOUT_SECONDS = 10.0

UNKNOWN_MODEL = "That model is not offered: pick one from the list."
NOT_ALLOWED = (
    "Your groups do not allow the model {model!r} (any more). Pick another one in the list at "
    "the top of the conversation, then send again."
)


@dataclass(frozen=True)
class ProviderConfig:
    """Where one answer is asked for, and of which model."""

    #: The Provider row; None: the environment's default provider (OPENAI_*).
    provider_id: int | None
    #: The provider's name as the answer records it.
    name: str
    base_url: str
    #: The key in clear ("" sends none); never in a repr, which tracebacks and logs print.
    api_key: str = field(repr=False)
    #: Extra headers staff set for the provider (a gateway's key among them, perhaps).
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    #: The model ID the API is asked for.
    model: str = ""
    #: The model sees images: attached ones are sent it (OPENAI_VISION, ProviderModel.vision).
    vision: bool = False


def default_config(model: str = "") -> ProviderConfig:
    """The environment's provider, asked for ``model`` (empty: OPENAI_MODEL)."""
    return ProviderConfig(
        provider_id=None,
        name=settings.OPENAI_PROVIDER_NAME,
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=model or settings.OPENAI_MODEL,
        vision=settings.OPENAI_VISION,
    )


def _offered(provider_id: int, model: str, *, lock: bool = False) -> ProviderModel | None:
    offered = ProviderModel.objects.filter(
        provider_id=provider_id, provider__enabled=True, model_id=model, enabled=True
    ).select_related("provider")
    return (offered.select_for_update() if lock else offered).first()


def resolve(conversation: Conversation) -> ProviderConfig:
    """Where the conversation's next answer is asked for; ModelUnavailable when its chosen
    model (or that model's provider) was disabled or removed since it was chosen, or the
    owner's groups no longer allow it (services/model_access.py)."""
    access = model_access.access_of(conversation.owner_id)
    if conversation.provider_id is None:
        config = default_config(conversation.model)
        if not access.allows(None):
            raise ModelUnavailable(NOT_ALLOWED.format(model=config.model))
        # Any model staff typed for the conversation in the admin is honoured here.
        return config
    offered = _offered(conversation.provider_id, conversation.model)
    if offered is None:
        raise ModelUnavailable(
            f"The model {conversation.model!r} is no longer offered. Pick another one in the "
            "list at the top of the conversation, then send again."
        )
    if not access.allows(offered.provider_id, offered.pk):
        raise ModelUnavailable(NOT_ALLOWED.format(model=offered.label))
    provider = offered.provider
    # KeyUnreadable, before anything is written: the provider is never asked without its key.
    api_key = provider.api_key()
    return ProviderConfig(
        provider_id=provider.pk,
        name=provider.name,
        base_url=provider.base_url,
        api_key=api_key,
        headers=dict(provider.extra_headers),
        model=offered.model_id,
        vision=offered.vision,
    )


def choice_of(
    provider_id: int | None, model: str, owner_id: int, access: model_access.Access | None = None
) -> control.ModelChoice:
    """A conversation's ``provider`` and ``model``, as frames carry them; available while
    it is offered and ``owner_id`` may use it (``access``, when the caller read it)."""
    access = access or model_access.access_of(owner_id)
    if provider_id is None:
        return {
            "provider_id": None,
            "model": model or settings.OPENAI_MODEL,
            "available": access.allows(None),
        }
    offered = _offered(provider_id, model)
    available = offered is not None and access.allows(provider_id, offered.pk)
    return {"provider_id": provider_id, "model": model, "available": available}


class PickerModel(TypedDict):
    model: str
    label: str
    #: The one the conversation chose (``model_picker_for``).
    selected: bool


class PickerGroup(TypedDict):
    """One provider of the picker, with the models it offers (an <optgroup>)."""

    provider_id: int | None
    name: str
    models: list[PickerModel]


def picker(owner_id: int, access: model_access.Access | None = None) -> list[PickerGroup]:
    """Every model ``owner_id`` may pick, grouped by provider: the default provider first."""
    access = access or model_access.access_of(owner_id)
    groups: list[PickerGroup] = []
    if access.allows(None):
        model = settings.OPENAI_MODEL
        groups.append(
            {
                "provider_id": None,
                "name": settings.OPENAI_PROVIDER_NAME,
                "models": [{"model": model, "label": model, "selected": False}],
            }
        )
    offered = ProviderModel.objects.filter(enabled=True, provider__enabled=True).select_related(
        "provider"
    )
    by_provider: dict[int, PickerGroup] = {}
    for row in offered.order_by("provider__name", "provider_id", "position", "model_id"):
        if not access.allows(row.provider_id, row.pk):
            continue
        group = by_provider.get(row.provider_id)
        if group is None:
            group = by_provider[row.provider_id] = {
                "provider_id": row.provider_id,
                "name": row.provider.name,
                "models": [],
            }
            groups.append(group)
        group["models"].append({"model": row.model_id, "label": row.label, "selected": False})
    return groups


def model_picker_for(
    conversation: Conversation,
) -> tuple[list[PickerGroup], control.ModelChoice, bool]:
    """The picker with the conversation's choice selected, the choice, and whether the
    picker lists it (a choice no longer offered is shown apart, as such)."""
    access = model_access.access_of(conversation.owner_id)
    groups = picker(conversation.owner_id, access)
    choice = choice_of(conversation.provider_id, conversation.model, conversation.owner_id, access)
    listed = False
    for group in groups:
        for entry in group["models"]:
            if choice["available"] and (group["provider_id"], entry["model"]) == (
                choice["provider_id"],
                choice["model"],
            ):
                entry["selected"] = listed = True
    return groups, choice, listed


def check_choice(provider_id: Any, model: Any, *, owner_id: int, lock: bool = False) -> str:
    """What to store as a conversation's ``model`` for this pick of the picker ("" for the
    default provider's: whatever OPENAI_MODEL names next). Invalid `bad_model` for a
    malformed choice, `unknown_model` for one not offered, or one ``owner_id`` may not use.
    ``lock``: the offer's row stays locked until the transaction ends, so staff disabling
    it now wait (PostgreSQL).
    """
    if provider_id is not None and (type(provider_id) is not int or not 0 < provider_id <= _MAX_ID):
        raise Invalid("provider_id must be a provider's number, or null.", code=ErrorCode.BAD_MODEL)
    if not isinstance(model, str) or not model or len(model) > _MODEL_ID_CHARS:
        raise Invalid("model must be a model's ID.", code=ErrorCode.BAD_MODEL)
    access = model_access.access_of(owner_id)
    if provider_id is None:
        if model != settings.OPENAI_MODEL or not access.allows(None):
            raise Invalid(UNKNOWN_MODEL, code=ErrorCode.UNKNOWN_MODEL)
        return ""
    offered = _offered(provider_id, model, lock=lock)
    if offered is None or not access.allows(provider_id, offered.pk):
        raise Invalid(UNKNOWN_MODEL, code=ErrorCode.UNKNOWN_MODEL)
    return model


def do_set_model(conversation: Conversation, provider_id: Any, model: Any) -> control.ModelChoice:
    """Make ``model`` of ``provider_id`` (None: the default provider) the conversation's
    model from its next answer on; every tab is told. Only a model the picker offers may be
    chosen (``check_choice``).
    """
    choice: control.ModelChoice = {"provider_id": provider_id, "model": model, "available": True}
    with transaction.atomic():
        # Checked under the row's lock, so staff disabling it now cannot be announced as
        # available to every tab (PostgreSQL; SQLite runs one writer at a time).
        stored = check_choice(provider_id, model, owner_id=conversation.owner_id, lock=True)
        changed = Conversation.objects.filter(pk=conversation.pk, deleted_at=None).update(
            provider_id=provider_id, model=stored
        )
        if not changed:
            raise ConversationGone("This conversation was deleted.")
        conversation.provider_id, conversation.model = provider_id, stored
        events.on_commit(layer.to_conversation(conversation.id, control.model_event(choice)))
    return choice


def do_delete_providers(providers: Iterable[Provider]) -> None:
    """Delete providers; the conversations that chose one of them go back to the default
    provider's model (their answers keep the provider's name)."""
    ids = [provider.pk for provider in providers]
    with transaction.atomic():
        Conversation.objects.filter(provider_id__in=ids).update(provider=None, model="")
        Provider.objects.filter(pk__in=ids).delete()


def _storable(text: str) -> bool:
    # A provider's list is not to be trusted with what the database refuses (NUL…).
    try:
        check_storable(text, what="A model ID")
    except ChatError:
        return False
    return True


@dataclass(frozen=True)
class Fetched:
    """What ``do_fetch_models`` did."""

    added: list[str]
    #: IDs the provider lists that were known already (their names and settings kept).
    known: list[str]
    #: The added ones the list says take images: marked as seeing them.
    seeing: list[str]


def do_fetch_models(provider: Provider) -> Fetched:
    """Ask the provider for its models (GET <base_url>/models) and add the ones not known yet,
    enabled, after the others, marked as seeing images where the list says they take them
    (the ones known keep what staff set). Raises an UpstreamError child, having written
    nothing, if the provider cannot be reached, refuses the key, or answers with something
    else than a list.
    """
    api_key = provider.api_key()
    with httpx.Client(headers={"User-Agent": "chatsite"}) as http:
        listed = model_list.list_models(
            http,
            provider.base_url,
            api_key=api_key,
            headers=dict(provider.extra_headers),
            timeout=FETCH_TIMEOUT_SECONDS,
        )
    with transaction.atomic():
        known = set(provider.models.values_list("model_id", flat=True))
        position = (provider.models.aggregate(last=Max("position"))["last"] or 0) + 1
        new = []
        for model in listed:
            model_id = model.id
            if model_id in known or len(model_id) > _MODEL_ID_CHARS or not _storable(model_id):
                continue
            new.append(
                ProviderModel(
                    provider=provider, model_id=model_id, position=position, vision=model.vision
                )
            )
            known.add(model_id)
            position += 1
        # Two staff fetching at once: the second adds what the first has not.
        created = ProviderModel.objects.bulk_create(new, ignore_conflicts=True)
        added = [row.model_id for row in created]
    return Fetched(
        added=added,
        known=[m.id for m in listed if m.id not in added],
        seeing=[row.model_id for row in created if row.vision],
    )
