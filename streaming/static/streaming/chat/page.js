/*
 * The chat page drawn from its state: it carries out the effects the pure modules push
 * (effects.js) on the DOM and the socket, and after each change brings the page in line with
 * the state: the branch shown with each message's actions, Send and Stop, and the checks on
 * what the page waits for (sync.js). Frames from the socket come in here (to dispatch.js),
 * and so do the reader's clicks on message actions.
 */
import { closed } from "./connection.js";
import { dispatch } from "./dispatch.js";
import { Effect } from "./effects.js";
import { copyText } from "./markdown.js";
import { Role, Status } from "./protocol.js";
import { ping, requestContinue, requestRetry, switchVersion } from "./requests.js";
import {
  applyStored,
  expectations,
  isAnswering,
  isOpen,
  isUnderway,
  newEntry,
  savedCount,
  sendResync,
  shownPath,
  treeOf,
  upsertStub,
} from "./store.js";
import { IdleCheck, Watchdog } from "./sync.js";

// Endings an answer can be asked again from: failed, stopped, or cut off by the server.
const RETRYABLE = new Set([Status.ERROR, Status.CANCELLED, Status.INTERRUPTED]);

/**
 * The page of `root`, drawn with `parts`: {els, view, comfort, prompt, renaming, picker,
 * usage, sidebar (or null), composer, older, newer, socket, draft, loginUrl}, each as main.js
 * wires them. Returns {apply(fx), run(fx), refresh(textOnly), receive(data),
 * socketClosed(code), stopChecks(), adoptInitialMessages(), setStatus(…)}.
 */
export function createPage(state, root, parts) {
  const { els, view, comfort, composer, sidebar } = parts;

  // Where the reader is, as a snapshot asked for keeps it (store.js anchorOf): the message at
  // the top of the view, or nothing at the bottom. Read once a frame while scrolling.
  let readingFrame = null;
  els.scroller.addEventListener(
    "scroll",
    () => {
      readingFrame ??= requestAnimationFrame(() => {
        readingFrame = null;
        state.readingAt = view.isAtBottom() ? null : view.topMessageId();
      });
    },
    { passive: true },
  );

  function run(fx) {
    apply(fx);
    refresh();
  }

  // Overdue confirmations, and a conversation gone quiet, are checked with the server.
  const watchdog = new Watchdog(() => apply(effectsOf(sendResync)));
  const idleCheck = new IdleCheck(() => apply(effectsOf(ping)));

  function effectsOf(request) {
    const fx = [];
    request(state, fx);
    return fx;
  }

  // `connection` goes on the chat element too (open, reconnecting, closed), for styles and
  // tests.
  function setStatus(connection, text, kind) {
    root.dataset.connection = connection;
    els.status.textContent = text;
    els.status.dataset.kind = kind || "";
  }

  // Nothing more can be done here: say why, with a way back to this page if signed out.
  function showClosed({ text, signIn }) {
    setStatus("closed", text, "error");
    if (signIn) {
      const next = location.pathname + location.search;
      const link = document.createElement("a");
      link.className = "connection-login";
      link.href = `${parts.loginUrl}?next=${encodeURIComponent(next)}`;
      link.textContent = "Sign in";
      els.status.append(" ", link);
    }
  }

  // Frames about the list may have been missed, or this conversation is new to the list.
  function refreshList({ missedFrames }) {
    if (sidebar && (missedFrames || !sidebar.showsCurrent())) {
      sidebar.refresh();
    }
  }

  /** The conversation's title in the header, the tab and the list. */
  function showTitle(title) {
    document.getElementById("chat-title").textContent = title;
    document.title = `${title} · chatsite`;
    const current = document.querySelector(
      '.sidebar-list a[aria-current="page"] .conversation-title',
    );
    if (current) {
      current.textContent = title;
    }
    parts.renaming.shown(title);
  }

  function giveBack({ text, attachments, editOf, notice }) {
    refresh(); // the edited message is shown again, and can be edited again
    if (!editOf || !composer.startEdit(editOf, text, attachments)) {
      composer.giveBack(text, notice, attachments);
    }
  }

  const refusedBy = { prompt: parts.prompt, title: parts.renaming, model: parts.picker };

  function carryOut(effect) {
    switch (effect.type) {
      case Effect.SEND:
        return parts.socket.send(effect.frame);
      case Effect.POST:
        return parts.draft.post(effect.clientId);
      case Effect.RENDER:
        return view.render(effect.entry);
      case Effect.TEXT:
        return view.renderContent(effect.entry);
      case Effect.REMOVE:
        return view.remove(effect.entry);
      case Effect.USAGE:
        return parts.usage.show(state.messages.values());
      case Effect.TITLE:
        return showTitle(effect.title);
      case Effect.SYSTEM_PROMPT:
        return parts.prompt.show(effect.prompt);
      case Effect.MODEL:
        return parts.picker.show(effect.choice);
      case Effect.REFUSED:
        return refusedBy[effect.setting].refused(effect.frame);
      case Effect.STATUS:
        return setStatus(effect.connection, effect.text, effect.kind);
      case Effect.CLOSED:
        return showClosed(effect);
      case Effect.RECONNECT:
        return parts.socket.reconnectIn(effect.delay);
      case Effect.ALERT:
        return composer.showAlert(effect.text);
      case Effect.GIVE_BACK:
        return giveBack(effect);
      case Effect.LIST_REFRESH:
        return refreshList(effect);
      case Effect.LIST_CHANGED:
        return sidebar?.changed(effect.conversation);
      case Effect.LIST_REMOVED:
        return sidebar?.removed(effect.id);
      case Effect.LIST_OWN:
        return sidebar?.ownChanged(effect.answering, effect.updatedAt);
      case Effect.RETRYING:
        return comfort.retrying(effect.entry, effect.frame);
      case Effect.ANSWER_ENDED:
        return comfort.answerEnded(effect.entry, effect.frame);
      case Effect.WARN:
        return console.warn(effect.text);
      case Effect.AWAIT_AFRESH:
        return watchdog.stop();
      case Effect.SCROLL_DOWN:
        return view.scrollToBottom();
      case Effect.JUMPED:
        return jumped(effect);
      default:
        throw new Error(`no such effect: ${effect.type}`);
    }
  }

  // At the end the reader asked for: there, and no longer at the message the address named.
  function jumped({ send }) {
    view.scrollToBottom();
    if (location.search) {
      history.replaceState(history.state, "", location.pathname);
    }
    if (send) {
      queueMicrotask(() => composer.submit()); // once this frame's effects are all carried out
    }
  }

  /** Carry out `fx` in order; a reader at the bottom of the list stays there. */
  function apply(fx) {
    view.keepingScroll(() => {
      for (const effect of fx) {
        carryOut(effect);
      }
    });
  }

  /** Put the branch shown on the page, with each message's actions and versions. */
  function showBranch() {
    const tree = treeOf(state);
    const path = shownPath(state, tree);
    composer.followBranch(path);
    for (const entry of path) {
      if (!view.bubble(entry)) {
        view.render(entry);
      }
    }
    view.keepingScroll(() => view.place(path));
    const disabled = !isOpen(state) || isAnswering(state) || state.editing !== null;
    const last = path[path.length - 1];
    for (const entry of path) {
      const versions = tree.versions(entry);
      view.showActions(entry, {
        version: versions.indexOf(entry) + 1,
        versions: versions.length,
        // The conversation's last answer failed or stopped: "Retry" it, in plain view.
        retry:
          entry === last &&
          state.windowEnd === null &&
          entry.role === Role.ASSISTANT &&
          RETRYABLE.has(entry.status),
        // Cut off at its length limit: "Continue" it (nothing follows the last message).
        continuable:
          entry === last && state.windowEnd === null && entry.continuable && !isUnderway(entry),
        disabled,
      });
    }
  }

  /**
   * Bring the controls, and the branch shown with its actions, in line with the state.
   * `textOnly`: only an answer's text changed (a delta or sync reply), which moves no
   * message and changes no action, so the branch is not walked again for it.
   */
  function refresh(textOnly = false) {
    composer.update();
    if (!textOnly) {
      showBranch();
      parts.older.update();
      parts.newer.update();
      comfort.update();
    }
    // What disables the controls is what the page waits for: the watchdog follows it too.
    if (isOpen(state)) {
      watchdog.update(expectations(state));
    } else {
      stopChecks(); // nothing can be asked; the next socket's snapshot settles it all
    }
  }

  /** The text of a socket message: the frame's handler decides, the page follows. */
  function receive(data) {
    const heldEnd = state.windowEnd === null;
    const result = dispatch(state, data); // the state only: the page is drawn below
    if (result) {
      // Older messages go above the reader and newer ones below, and a snapshot's window is
      // around them: they stay at the message they were reading, unless brought to the end
      // or already there (the end comes to them).
      const atEnd = () => heldEnd && view.isAtBottom();
      const keep =
        (result.history || (result.snapshot && !atEnd())) &&
        !result.effects.some((effect) => effect.type === Effect.JUMPED);
      const placing = keep ? view.keepingPlace : (change) => change();
      placing(() => {
        apply(result.effects);
        refresh(result.textOnly);
      });
    }
    if (isOpen(state)) {
      idleCheck.heard(); // any frame at all shows the socket is alive
    }
  }

  /** The socket closed with `code`. */
  function socketClosed(code) {
    const fx = [];
    closed(state, code, fx);
    run(fx);
  }

  function stopChecks() {
    watchdog.stop();
    idleCheck.stop();
  }

  /** The entry of a bubble on the page. */
  function entryOf(bubble) {
    if (bubble.dataset.messageId) {
      return state.messages.get(bubble.dataset.messageId);
    }
    const clientId = bubble.dataset.clientId;
    return clientId ? state.messages.get(`local:${clientId}`) : undefined;
  }

  // Show another version: the switcher moved to the version shown; keep the keyboard on it.
  function switchTo(entry, step) {
    const fx = [];
    const target = switchVersion(state, entry, step, fx);
    run(fx);
    const bubble = target && view.bubble(target);
    if (bubble) {
      const again = bubble.querySelector(`[data-action="${step < 0 ? "previous" : "next"}"]`);
      const other = bubble.querySelector(`[data-action="${step < 0 ? "next" : "previous"}"]`);
      (again && !again.disabled ? again : other).focus();
    }
  }

  // Every message action, present and future: one listener on the list.
  els.list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const bubble = button && button.closest(".message");
    const entry = bubble && entryOf(bubble);
    if (!entry) {
      return;
    }
    const action = button.dataset.action;
    if (action === "copy") {
      copyText(button, entry.content);
    } else if (action === "edit") {
      composer.startEdit(entry, entry.content);
    } else if (action === "regenerate") {
      const fx = [];
      requestRetry(state, entry.id, fx);
      run(fx);
    } else if (action === "continue") {
      const fx = [];
      requestContinue(state, entry.id, fx);
      run(fx);
    } else if (action === "previous" || action === "next") {
      switchTo(entry, action === "previous" ? -1 : 1);
    }
  });

  /**
   * Take the messages the server rendered (a window of the branch shown, its bubbles already
   * on the page, and the streaming answer, in the page's json_script, with stubs of the other
   * versions and the count of every stored message), as the state's first. Returns the
   * message the page opened at (a search hit), or null: the window is around it.
   */
  function adoptInitialMessages() {
    const data = document.getElementById("initial-messages");
    const initial = data ? JSON.parse(data.textContent) : { messages: [], leaf_id: null };
    for (const stub of initial.versions || []) {
      upsertStub(state, stub);
    }
    for (const message of initial.messages) {
      const entry = newEntry({ id: message.id, role: message.role, status: message.status });
      applyStored(entry, message);
      state.messages.set(entry.key, entry);
      // Keep the server's nodes rather than draw them again. Their text is the stored text
      // as written: an answer's Markdown is rendered here, by the renderer the live answer
      // used.
      const bubble = els.list.querySelector(`[data-message-id="${message.id}"]`);
      if (!bubble) {
        view.render(entry); // another version: drawn now, shown when its branch is
      } else {
        view.adopt(entry, bubble);
        if (entry.role === Role.ASSISTANT) {
          view.showContent(entry);
        }
      }
    }
    state.leafId = initial.leaf_id;
    state.windowEnd = initial.window_end || null;
    state.unheld = Math.max(0, (initial.count ?? 0) - savedCount(state));
    const focus = initial.focus ? state.messages.get(initial.focus) : undefined;
    state.readingAt = focus ? focus.id : null; // the first snapshot is a window around it
    return focus || null;
  }

  return {
    apply,
    run,
    refresh,
    receive,
    socketClosed,
    stopChecks,
    adoptInitialMessages,
    setStatus,
  };
}
