/*
 * The conversation's model picker: a <select> with one <optgroup> per provider, rendered by
 * the server with every model offered (docs/protocol.md, `set_model`).
 *
 * Picking a model sends `set_model`; the picker then shows what the server tells every tab
 * (a `model` frame, or the `model_choice` of a snapshot), never only what was picked. A
 * choice that is no longer offered (its model or provider disabled or removed) stays shown,
 * marked as such, with a word under the picker, until another is picked.
 *
 * The simulator's banner (drawn only where the site's default provider is the simulator) is
 * shown while the picker shows that provider's model, and hidden for any other.
 *
 * Wired by main.js; kept apart so any page with the picker's markup can wire it.
 */
import { ClientFrame } from "./protocol.js";
import { OFFLINE_TEXT } from "./settings.js";

const UNAVAILABLE_TEXT = "This model is no longer offered: pick another to send.";

/** An option's value for a choice: its provider ("" for the default), ":", its model. */
function keyOf(providerId, model) {
  return `${providerId === null || providerId === undefined ? "" : providerId}:${model}`;
}

/**
 * Wire the picker. `send(frame)` sends a frame and says whether it could. Returns
 * {show(choice), refused(frame), picked()}; `choice` is a frame's `model_choice`:
 * {provider_id, model, available}.
 */
export function attach(send) {
  const doc = document;
  const select = doc.getElementById("chat-model");
  const status = doc.getElementById("chat-model-status");
  if (!select) {
    return { show() {}, refused() {}, current: () => null, picked: () => null };
  }
  let stored = null; // the choice the server last told, as {provider_id, model, available}
  const banner = doc.getElementById("simulated-banner");

  // The banner says the simulator answers only while the default provider's model is shown.
  function followBanner() {
    const option = select.selectedOptions[0];
    if (banner && option) {
      banner.hidden = option.dataset.providerId !== "";
    }
  }

  // The option the server rendered for `choice`, if the page offers it.
  function listedOption(choice) {
    const wanted = keyOf(choice.provider_id, choice.model);
    return Array.from(select.options).find(
      (option) => !option.hasAttribute("data-extra") && option.value === wanted,
    );
  }

  // A choice this page does not offer (no longer offered, or added since the page was
  // made): one option of its own, at the end, so the picker shows it as it is.
  function extraOption(choice) {
    let option = select.querySelector("option[data-extra]");
    if (!option) {
      option = doc.createElement("option");
      option.dataset.extra = "";
      select.append(option);
    }
    option.dataset.providerId = choice.provider_id === null ? "" : String(choice.provider_id);
    option.dataset.model = choice.model;
    option.value = keyOf(choice.provider_id, choice.model);
    option.textContent = choice.available ? choice.model : `${choice.model} (no longer offered)`;
    option.disabled = !choice.available;
    return option;
  }

  // A model choice from the server (handlers.js passes on nothing else).
  function show(choice) {
    stored = choice;
    const listed = listedOption(choice);
    const option = listed && choice.available ? listed : extraOption(choice);
    for (const extra of select.querySelectorAll("option[data-extra]")) {
      if (extra !== option) {
        extra.remove();
      }
    }
    option.selected = true;
    select.dataset.available = choice.available ? "true" : "false";
    status.textContent = choice.available ? "" : UNAVAILABLE_TEXT;
    followBanner();
  }

  // The pick stays shown: the `model` frame that confirms it selects the same option, and
  // a refusal (or no socket to send it on) puts the stored choice back.
  select.addEventListener("change", () => {
    const option = select.selectedOptions[0];
    if (!option) {
      return;
    }
    followBanner();
    const providerId = option.dataset.providerId ? Number(option.dataset.providerId) : null;
    if (
      send({ type: ClientFrame.SET_MODEL, provider_id: providerId, model: option.dataset.model })
    ) {
      status.textContent = "";
    } else {
      refused({ message: OFFLINE_TEXT });
    }
  });

  function refused(frame) {
    if (stored) {
      show(stored);
    }
    status.textContent = frame.message || "That model cannot be chosen.";
  }

  // What the picker shows now, as {provider_id, model}: a new chat's first message carries
  // it, whether it was picked before or after this script ran. Null for a choice not offered.
  function picked() {
    const option = select.selectedOptions[0];
    if (!option || option.disabled || !option.dataset.model) {
      return null;
    }
    const providerId = option.dataset.providerId ? Number(option.dataset.providerId) : null;
    return { provider_id: providerId, model: option.dataset.model };
  }

  return { show, refused, picked };
}
