/*
 * The conversation's system prompt at the top of the chat page: shown, and editable at any
 * time. A change is sent as a `set_system_prompt` frame; the server tells every tab with a
 * `system_prompt` frame (and every snapshot carries it), which is what this shows. The
 * prompt is only ever set with textContent.
 */
(function (global) {
  "use strict";

  const SAVED_TEXT = "Saved. The model gets it from your next message.";
  const OFFLINE_TEXT = "Not connected: try again once the page has reconnected.";

  /**
   * Wire the panel. `send(frame)` sends a frame and says whether it could. Returns
   * {show(prompt), refused(frame)}: chat.js calls them for the stored prompt and for an
   * error frame about it.
   */
  function attach(send) {
    const doc = global.document;
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
      if (send({ type: "set_system_prompt", system_prompt: input.value })) {
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

  global.ChatPrompt = { attach };
})(window);
