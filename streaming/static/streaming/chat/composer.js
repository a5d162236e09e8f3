/*
 * Where a person writes: the message box (Enter sends, Shift+Enter adds a line, it grows with
 * its text), the alert above it, Send and Stop (Esc stops from anywhere), and editing a
 * message in place. What sending means is outbox.js's and requests.js's; this holds the
 * text and the keys, and gives back text the page could not send or keep.
 */
import { sendMessage } from "./outbox.js";
import { canStop, isStopping, newClientId, requestStop } from "./requests.js";
import { holdsEnd, isAnswering, isOpen, shownPath } from "./store.js";
import { requestJump } from "./windowing.js";

const STILL_ANSWERING_TEXT = "The assistant is still answering. Wait for it to finish, or stop it.";
const EDIT_MOVED_TEXT =
  "The conversation moved to another version: your edit is in the message box.";

/**
 * Wire the composer. `els`: the chat's elements; `view`: its view (view.js); `run(fx)`
 * carries out effects and brings the page in line with the state (page.js). Returns what
 * the page asks of it.
 */
export function attach({ state, els, view, run }) {
  // The editor of the message being edited ({close, text, sending}), or null.
  let editor = null;

  function showAlert(text) {
    els.alert.textContent = text;
  }

  function canSend() {
    return !state.closedForGood && els.input.value.trim() !== "" && !isAnswering(state);
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
    if (!canSend()) {
      if (content.trim() !== "" && isAnswering(state)) {
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
    if (sendMessage(state, { content, parentId, clientId: newClientId() }, fx) !== null) {
      els.input.value = "";
      autosize();
    }
    run(fx);
  }

  /**
   * Text the page could not send or keep where it was goes to the composer, after whatever
   * is written there already: nothing a person wrote is dropped.
   */
  function giveBack(text, notice) {
    if (text.trim() === "") {
      return;
    }
    const there = els.input.value;
    els.input.value = there.trim() === "" ? text : `${there}\n\n${text}`;
    autosize();
    if (notice) {
      showAlert(notice);
    }
    // Setting the value fires no "input": Send must know there is text to send again.
    update();
  }

  /**
   * Edit `entry` in place, starting from `text` (its own, or an edit the server refused).
   * False when it cannot be edited now.
   */
  function startEdit(entry, text) {
    if (state.editing !== null || entry.id === null || isAnswering(state) || !isOpen(state)) {
      return false;
    }
    const opened = view.openEditor(
      entry,
      text,
      (edited) => {
        editor.sending = true;
        const fx = [];
        const clientId = newClientId();
        const message = { content: edited, parentId: entry.parentId, clientId, editOf: entry.key };
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
    );
    state.editing = entry;
    editor = { close: opened.close, text: opened.text, sending: false };
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
    const { sending, text } = editor;
    editor.close();
    if (!sending) {
      giveBack(text(), EDIT_MOVED_TEXT);
    }
  }

  /** Send and Stop as the state allows. */
  function update() {
    if (!isAnswering(state) && els.alert.textContent === STILL_ANSWERING_TEXT) {
      showAlert(""); // as soon as the answer has ended, not when the next message is sent
    }
    els.send.disabled = !canSend();
    els.input.disabled = state.closedForGood;
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
