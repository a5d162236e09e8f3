/*
 * Where a person writes: the message box (Enter sends, Shift+Enter adds a line, it grows with
 * its text), the files it carries (attachments.js), the alert above it, Send and Stop (Esc
 * stops from anywhere), and editing a message in place. What sending means is outbox.js's
 * and requests.js's; this holds the text, the files and the keys, and gives back text and
 * files the page could not send or keep.
 */
import { attachUploads, editTray } from "./attachments.js";
import { sendMessage } from "./outbox.js";
import { canStop, isStopping, newClientId, requestStop } from "./requests.js";
import { holdsEnd, isAnswering, isOpen, shownPath } from "./store.js";
import { requestJump } from "./windowing.js";

const STILL_ANSWERING_TEXT = "The assistant is still answering. Wait for it to finish, or stop it.";
const EDIT_MOVED_TEXT =
  "The conversation moved to another version: your edit is in the message box.";

/**
 * Wire the composer. `els`: the chat's elements; `config`: the page's `uploadUrl` and
 * `maxFiles`; `view`: its view (view.js); `run(fx)` carries out effects and brings the page
 * in line with the state (page.js). Returns what the page asks of it.
 */
export function attach({ state, els, config, view, run }) {
  // The editor of the message being edited ({close, text, files, sending}), or null.
  let editor = null;

  function showAlert(text) {
    els.alert.textContent = text;
  }

  const uploads = attachUploads({
    els,
    config,
    canAttach: () => !state.closedForGood,
    onChange: () => update(),
    showAlert,
  });

  function canSend() {
    const hasText = els.input.value.trim() !== "";
    return !state.closedForGood && uploads.tray.canSend(hasText) && !isAnswering(state);
  }

  function autosize() {
    const input = els.input;
    input.style.height = "auto";
    const limit = Math.round(window.innerHeight * 0.4);
    input.style.height = `${Math.min(input.scrollHeight + 2, limit)}px`;
    input.style.overflowY = input.scrollHeight + 2 > limit ? "auto" : "hidden";
  }

  function submit() {
    const content = els.input.value;
    const attachments = uploads.tray.ready;
    if (!canSend()) {
      if ((content.trim() !== "" || attachments.length > 0) && isAnswering(state)) {
        showAlert(STILL_ANSWERING_TEXT);
      }
      return;
    }
    const fx = [];
    if (!holdsEnd(state)) {
      // A message follows the end of the conversation, which this page does not hold (it
      // opened at a message): it goes there first, and sends once there (page.js).
      requestJump(state, fx, { send: true });
      run(fx);
      return;
    }
    const path = shownPath(state);
    const parentId = path.length ? path[path.length - 1].id : null;
    const message = { content, parentId, clientId: newClientId(), attachments };
    if (sendMessage(state, message, fx) !== null) {
      els.input.value = "";
      uploads.clear();
      autosize();
    }
    run(fx);
  }

  /**
   * Text the page could not send or keep where it was goes to the composer, after whatever
   * is written there already, and its files (`attachments`, uploaded) to its tray: nothing
   * a person wrote or attached is dropped.
   */
  function giveBack(text, notice, attachments = []) {
    if (text.trim() === "" && attachments.length === 0) {
      return;
    }
    if (text.trim() !== "") {
      const there = els.input.value;
      els.input.value = there.trim() === "" ? text : `${there}\n\n${text}`;
      autosize();
    }
    uploads.restore(attachments);
    if (notice) {
      showAlert(notice);
    }
    // Setting the value fires no "input": Send must know there is text to send again.
    update();
  }

  /**
   * Edit `entry` in place, starting from `text` and `attachments` (its own, or an edit the
   * server refused): the files stay unless removed. False when it cannot be edited now.
   */
  function startEdit(entry, text, attachments = entry.attachments) {
    if (state.editing !== null || entry.id === null || isAnswering(state) || !isOpen(state)) {
      return false;
    }
    const files = editTray(attachments, {
      onChange: () => {}, // an edit may go with no file left, as with no text
      fallbackFocus: () => view.bubble(entry)?.querySelector("textarea") || els.input,
    });
    const opened = view.openEditor(
      entry,
      text,
      (edited) => {
        editor.sending = true;
        const fx = [];
        const clientId = newClientId();
        const message = {
          content: edited,
          parentId: entry.parentId,
          clientId,
          editOf: entry.key,
          attachments: files.ready(),
        };
        const sent = sendMessage(state, message, fx) !== null;
        if (!sent && editor) {
          editor.sending = false;
        }
        run(fx);
        return sent;
      },
      (sent) => {
        state.editing = null;
        editor = null;
        run([]);
        // Sent, the composer is where to go on; cancelled, back to the button that began it.
        const bubble = view.bubble(entry);
        const edit = bubble && bubble.querySelector('[data-action="edit"]');
        if (sent || !edit || !bubble.isConnected) {
          els.input.focus();
        } else {
          edit.focus();
        }
      },
      files.element,
    );
    state.editing = entry;
    editor = { close: opened.close, text: opened.text, files: files.ready, sending: false };
    run([]);
    return true;
  }

  /**
   * The branch shown is `path` now: if it moved away from the message being edited (another
   * tab, or this edit sent), close the editor, and keep an unsent edit in the composer.
   */
  function followBranch(path) {
    if (editor === null || path.includes(state.editing)) {
      return;
    }
    const { sending, text, files } = editor;
    const attachments = files();
    editor.close();
    if (!sending) {
      giveBack(text(), EDIT_MOVED_TEXT, attachments);
    }
  }

  /** Send and Stop as the state allows. */
  function update() {
    if (!isAnswering(state) && els.alert.textContent === STILL_ANSWERING_TEXT) {
      showAlert(""); // as soon as the answer has ended, not when the next message is sent
    }
    els.send.disabled = !canSend();
    // Say why Send waits: a file is still on its way to the server.
    els.send.textContent = uploads.tray.uploading ? "Uploading…" : "Send";
    els.input.disabled = state.closedForGood;
    els.files.disabled = state.closedForGood;
    // Stop sits beside Send from the moment a message is sent until its answer ends; without
    // a socket (a new chat's first message being posted) the stop waits for the next one.
    const stopHadFocus = document.activeElement === els.stop;
    els.stop.hidden = state.closedForGood || !canStop(state);
    els.stop.disabled = isStopping(state);
    els.stop.textContent = isStopping(state) ? "Stopping…" : "Stop";
    if (stopHadFocus && (els.stop.hidden || els.stop.disabled)) {
      // A hidden or disabled button drops focus to <body>; the composer is where it is useful.
      els.input.focus();
    }
  }

  function stop() {
    const fx = [];
    requestStop(state, fx);
    run(fx);
  }

  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  els.input.addEventListener("keydown", (event) => {
    // An IME composition uses Enter to pick a candidate; that Enter is not "send".
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) {
      return;
    }
    event.preventDefault();
    submit();
  });
  els.input.addEventListener("input", () => {
    autosize();
    run([]);
  });
  els.stop.addEventListener("click", stop);
  // Esc stops the answer from anywhere on the page, but not while an IME uses it to cancel.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing && canStop(state)) {
      stop();
    }
  });
  window.addEventListener("resize", autosize);

  return { showAlert, autosize, giveBack, startEdit, followBranch, update, submit };
}
