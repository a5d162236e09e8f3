/*
 * The conversation's own settings on the chat page, each changed at any time by a frame
 * and shown as the server tells every tab (docs/protocol.md):
 *
 * - its system prompt, in a folded panel under the header (`set_system_prompt`, told back
 *   by a `system_prompt` frame and every snapshot);
 * - its title, renamed in place in the header (`rename`, told back by a `title` frame; a
 *   snapshot, a `message` and a `pong` carry it too).
 *
 * Text is only ever set with textContent.
 */
import { ClientFrame } from "./protocol.js";

const SAVED_TEXT = "Saved. The model gets it from your next message.";
export const OFFLINE_TEXT = "Not connected: try again once the page has reconnected.";

/**
 * Wire the system prompt's panel. `send(frame)` sends a frame and says whether it could.
 * Returns {show(prompt), refused(frame)}: the page calls them for the stored prompt and for
 * an error frame about it.
 */
export function attachPrompt(send) {
  const doc = document;
  const panel = doc.getElementById("system-prompt");
  const summary = doc.getElementById("system-prompt-summary");
  const text = doc.getElementById("system-prompt-text");
  const edit = doc.getElementById("system-prompt-edit");
  const form = doc.getElementById("system-prompt-form");
  const input = doc.getElementById("system-prompt-input");
  const cancel = doc.getElementById("system-prompt-cancel");
  const status = doc.getElementById("system-prompt-status");
  let stored = text.textContent;
  let saving = null; // the text sent, until the server says it is stored (or refuses it)

  function show(prompt) {
    stored = prompt;
    text.textContent = prompt;
    text.hidden = prompt === "";
    summary.textContent = prompt === "" ? "None" : prompt.split("\n")[0];
    if (saving !== null && saving === prompt) {
      saving = null;
      close();
      status.textContent = SAVED_TEXT;
    }
  }

  function open() {
    input.value = stored;
    form.hidden = false;
    edit.hidden = true;
    status.textContent = "";
    panel.open = true;
    input.focus();
  }

  function close() {
    form.hidden = true;
    edit.hidden = false;
    edit.focus();
  }

  edit.addEventListener("click", open);
  cancel.addEventListener("click", () => {
    saving = null;
    status.textContent = "";
    close();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) {
      event.stopPropagation(); // cancels the edit, does not stop an answer
      cancel.click();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (send({ type: ClientFrame.SET_SYSTEM_PROMPT, system_prompt: input.value })) {
      saving = input.value;
      status.textContent = "Saving…";
    } else {
      status.textContent = OFFLINE_TEXT;
    }
  });

  // The server refused it: say why; the text stays in the editor to be put right.
  function refused(frame) {
    saving = null;
    status.textContent = frame.message || "The system prompt could not be saved.";
  }

  show(stored);
  return { show, refused };
}

/**
 * Wire renaming in place: the title's Rename button opens a text field (Enter saves, Esc
 * cancels). Returns {shown(title), refused(frame)}: the page calls `shown` whenever it
 * shows the stored title, and `refused` for an error frame about a rename.
 */
export function attachTitle(send) {
  const doc = document;
  const heading = doc.getElementById("chat-title");
  const button = doc.getElementById("chat-rename");
  const form = doc.getElementById("chat-rename-form");
  const input = doc.getElementById("chat-rename-input");
  const status = doc.getElementById("connection-status");
  let saving = null;

  function open() {
    input.value = heading.textContent;
    heading.hidden = true;
    button.hidden = true;
    form.hidden = false;
    input.focus();
    input.select();
  }

  function close() {
    form.hidden = true;
    heading.hidden = false;
    button.hidden = false;
    button.focus();
  }

  button.addEventListener("click", open);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing) {
      event.stopPropagation();
      saving = null;
      close();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = input.value.trim();
    if (title === heading.textContent) {
      close();
    } else if (send({ type: ClientFrame.RENAME, title })) {
      saving = title;
    } else {
      status.textContent = OFFLINE_TEXT;
    }
  });

  function shown(title) {
    if (saving !== null && saving === title) {
      saving = null;
      close();
    }
  }

  function refused(frame) {
    saving = null;
    input.setCustomValidity(frame.message || "That title cannot be used.");
    input.reportValidity();
    input.addEventListener("input", () => input.setCustomValidity(""), { once: true });
  }

  return { shown, refused };
}
