/*
 * The chat page: history is already on the page (rendered by Django); this script opens the
 * conversation's WebSocket, sends what the user writes and renders what the server says.
 *
 * A user's text is only ever set with textContent; an answer's Markdown is rendered and
 * sanitized by chat-markdown.js (through chat-view.js).
 * Frames are documented in docs/protocol.md; each frame type has one entry in `handlers`.
 * Loaded after chat-stream.js (how one answer's text is assembled from frames), chat-sync.js
 * (when to ask the server for the truth: the watchdog, the idle check and the pong) and
 * chat-view.js (how a message looks, with chat-markdown.js) and chat-comfort.js (reading
 * comfort: jump to latest, times, the wait before a retry, focus, the live region) and
 * chat-sidebar.js (the list of conversations beside the chat, kept current).
 *
 * A new chat's page (GET /c/new/) is a draft with no socket: its first message is POSTed,
 * which saves the conversation, and the page then becomes the conversation's and connects.
 *
 * Any frame can be lost (group sends are dropped under load), so nothing here waits for one
 * for ever: a gap in an answer asks for a `sync` (chat-stream.js); a frame about a message
 * this page does not know, a confirmation that does not come, or a `pong` that disagrees
 * with the page asks for a `resync`, whose fresh `snapshot` settles everything.
 */
(function () {
  "use strict";

  const root = document.getElementById("chat");
  if (!root) {
    return;
  }
  const { AnswerStream } = window.ChatStream;
  const { Watchdog, IdleCheck, pongDisagreement } = window.ChatSync;
  const { isUnderway } = window.ChatView;

  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 8000;
  const CLOSE_UNAUTHENTICATED = 4401;
  const CLOSE_FORBIDDEN = 4403;
  const CLOSE_DELETED = 4404;
  const CLOSE_TOO_MANY = 4429;
  const CLOSE_UNAVAILABLE = 4503;
  // Error frames that answer a user_message frame: the message was not saved.
  const LIMIT_CODES = new Set(["rate_limited", "quota_exceeded"]);
  const SEND_ERROR_CODES = new Set([
    "busy",
    "empty_content",
    "content_too_long",
    "bad_text",
    "frame_too_long",
    "bad_client_id",
    "bad_parent",
    "model_unavailable",
    "provider_key_unreadable",
  ]);
  // Endings an answer can be asked again from: failed, stopped, or cut off by the server.
  const RETRYABLE = new Set(["error", "cancelled", "interrupted"]);
  const UNAVAILABLE_TEXT = "Live updates are unavailable — retrying…";
  const FORBIDDEN_TEXT = "This conversation does not exist or is not yours.";
  const DELETED_TEXT = "This conversation was deleted.";
  const SIGNED_OUT_TEXT = "You were signed out. Sign in again to continue.";
  const CHECKING_SIGN_IN_TEXT = "Checking that you are still signed in…";
  const STILL_ANSWERING_TEXT =
    "The assistant is still answering. Wait for it to finish, or stop it.";

  const els = {
    scroller: document.getElementById("messages-scroller"),
    list: document.getElementById("messages"),
    empty: document.getElementById("chat-empty"),
    form: document.getElementById("composer"),
    input: document.getElementById("composer-input"),
    send: document.getElementById("composer-send"),
    stop: document.getElementById("composer-stop"),
    alert: document.getElementById("composer-alert"),
    status: document.getElementById("connection-status"),
  };
  const view = window.ChatView.createView(els);
  // Errors about the conversation's settings, answered where they were changed
  // (chat-settings.js).
  const PROMPT_CODES = new Set(["system_prompt_too_long", "bad_system_prompt"]);
  const TITLE_CODES = new Set(["bad_title", "title_too_long"]);
  const MODEL_CODES = new Set(["bad_model", "unknown_model"]);
  const { render, renderContent, keepingScroll, scrollToBottom } = view;
  const comfort = window.ChatComfort.attach(els, view);
  const systemPrompt = window.ChatSettings.attachPrompt((frame) =>
    draft ? keepDraftPrompt(frame) : sendFrame(frame),
  );
  const renaming = window.ChatSettings.attachTitle((frame) => sendFrame(frame));
  const usageTotal = window.ChatUsage.attach();
  // A draft has no socket: its pick stays in the picker until the first message takes it.
  const modelPicker = window.ChatModel.attach((frame) => draft || sendFrame(frame));

  const sidebar = window.ChatSidebar;
  const config = {
    wsPath: root.dataset.wsPath,
    startUrl: root.dataset.startUrl,
    loginUrl: root.dataset.loginUrl,
    maxChars: parseInt(root.dataset.maxMessageChars, 10) || Infinity,
    maxPromptChars: parseInt(root.dataset.maxSystemPromptChars, 10) || Infinity,
  };

  // --- state ------------------------------------------------------------------------------

  // A new chat not saved yet (GET /c/new/): its first message makes the conversation over
  // HTTP (startConversation), then the page becomes the conversation's and connects.
  let draft = root.dataset.draft === "true";
  // The system prompt a draft will be made with (sent with its first message).
  let draftPrompt = document.getElementById("system-prompt-text").textContent;
  // Snapshots this page has had: every one after the first may follow frames it missed.
  let snapshots = 0;

  /*
   * Every message of the conversation, every version, by server id; a message the server has
   * not confirmed yet is under "local:<client_id>". An entry: {key, id, parentId, role,
   * content, status, error, usage, clientId, createdAt (ISO, null until saved), model,
   * providerName (an answer's, as it recorded them), el}. Messages form a tree by `parentId`
   * (docs/protocol.md, "Versions"); the page shows one branch, the one ending at `leafId`.
   */
  const messages = new Map();
  // The key of the last message of the branch shown (null: the newest branch).
  let leafId = null;
  // The user message being edited in place: {entry, close, text, sending}, or null.
  let editing = null;
  // `switch` frames this page sent whose `branch` has not come back: until the last one's
  // has, an earlier one's would show a version the reader already left.
  let switchesOut = 0;
  // The answers streaming right now, by message id: an AnswerStream each (chat-stream.js).
  const streams = new Map();
  // User messages sent but not yet echoed by the server, by client_id: resent on reconnect.
  const outbox = new Map();
  // client_ids sent on the current socket, oldest first, awaiting their echo or error.
  let inFlight = [];

  let socket = null;
  // The current socket has delivered its snapshot: the page and the server agree again.
  let ready = false;
  let retryDelay = RECONNECT_FIRST_MS;
  let retryTimer = null;
  let closedForGood = false; // 4403, 4404: nothing to reconnect to
  let leaving = false; // the page is being hidden or unloaded
  let stopRequested = null; // the answer a `stop` went out for, until its `done`
  let retryRequested = null; // the message id a `retry` went out for, until its `start`
  let limitText = ""; // the last limit the server named, for a 4429 close that follows it
  let resyncRequested = false; // a `resync` went out; its `snapshot` is on its way
  // Why the server said this page's session ended (an `error` frame, code session_ended),
  // until a reconnect shows whether the browser is still signed in.
  let sessionEndedText = null;
  // The stored title as the server last told it (null until the first snapshot); the header
  // shows "New conversation" for an empty one.
  let storedTitle = null;

  // --- ids ----------------------------------------------------------------------------------

  function newClientId() {
    // randomUUID only exists in secure contexts (https, localhost), not on plain-http hosts.
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return [
      hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20),
    ].join("-");
  }

  // --- the message store --------------------------------------------------------------------

  function newEntry(fields) {
    return {
      key: fields.id,
      id: fields.id,
      parentId: null,
      role: fields.role,
      content: "",
      status: fields.status,
      error: "",
      usage: null,
      clientId: null,
      createdAt: null,
      model: "",
      providerName: "",
      el: null,
      ...fields,
    };
  }

  // Copy a stored message into its entry; true if anything the bubble shows changed.
  function applyStored(entry, message) {
    const stored = {
      role: message.role,
      content: message.content || "",
      status: message.status,
      error: message.error || "",
      createdAt: message.created_at || null,
      model: message.model || "",
      providerName: message.provider_name || "",
    };
    let changed = false;
    for (const [name, value] of Object.entries(stored)) {
      if (entry[name] !== value) {
        entry[name] = value;
        changed = true;
      }
    }
    const usage = message.usage || null;
    if (JSON.stringify(usage) !== JSON.stringify(entry.usage)) {
      entry.usage = usage;
      changed = true;
    }
    entry.clientId = message.client_id || entry.clientId;
    entry.parentId = message.parent_id || null;
    return changed;
  }

  function rekey(entry, id) {
    if (leafId === entry.key) {
      leafId = id;
    }
    messages.delete(entry.key);
    entry.key = id;
    entry.id = id;
    messages.set(id, entry);
  }

  // A stored message from the server: the one we sent, an update, or someone else's.
  function upsertStored(message) {
    let entry = messages.get(message.id);
    if (!entry && message.client_id) {
      // Our own optimistic bubble: the echo confirms it and gives it its server id.
      entry = messages.get(`local:${message.client_id}`);
      if (entry) {
        rekey(entry, message.id);
      }
    }
    if (message.client_id) {
      outbox.delete(message.client_id);
      inFlight = inFlight.filter((id) => id !== message.client_id);
    }
    if (!entry) {
      entry = newEntry({ id: message.id, role: message.role, status: message.status });
      messages.set(entry.key, entry);
    }
    const usageBefore = entry.usage;
    const changed = applyStored(entry, message);
    if (entry.usage !== usageBefore) {
      usageTotal.show(messages.values()); // the page's first total is the server's
    }
    if ((changed || !entry.el) && !(editing && editing.entry === entry)) {
      render(entry);
    }
    return entry;
  }

  function forget(entry) {
    messages.delete(entry.key);
    endStream(entry.id);
    view.remove(entry);
    if (leafId === entry.key) {
      leafId = entry.leafBefore === undefined ? null : entry.leafBefore;
    }
  }

  function assistantEntry(id, parentId, createdAt) {
    let entry = messages.get(id);
    if (!entry) {
      entry = newEntry({
        id, role: "assistant", status: "streaming", parentId: parentId || null,
        createdAt: createdAt || null,
      });
      messages.set(id, entry);
      render(entry);
    }
    return entry;
  }

  // --- the tree of versions, and the branch shown -------------------------------------------

  /** Every message's followers by the key of the message they follow, oldest first. */
  function childrenIndex() {
    const children = new Map();
    for (const entry of messages.values()) {
      const parent = entry.parentId;
      if (!children.has(parent)) {
        children.set(parent, []);
      }
      children.get(parent).push(entry);
    }
    // Written first, first; one not saved yet is the newest. (Stable: ties keep arrival order.)
    const written = (entry) => (entry.createdAt ? Date.parse(entry.createdAt) : Infinity);
    for (const list of children.values()) {
      list.sort((a, b) => written(a) - written(b));
    }
    return children;
  }

  /** The end of the newest branch below `entry`, as the server picks it (services/tree.py). */
  function descend(children, entry) {
    let end = entry;
    for (let steps = 0; steps < messages.size; steps += 1) {
      const next = children.get(end.key);
      if (!next || next.length === 0) {
        break;
      }
      end = next[next.length - 1];
    }
    return end;
  }

  /** The messages of the branch shown, first turn first. */
  function branch(children) {
    let tip = leafId === null ? undefined : messages.get(leafId);
    if (!tip) {
      const roots = children.get(null) || [];
      tip = roots.length ? descend(children, roots[roots.length - 1]) : null;
    }
    const path = [];
    const seen = new Set();
    for (let entry = tip; entry && !seen.has(entry.key); entry = messages.get(entry.parentId)) {
      seen.add(entry.key);
      path.push(entry);
    }
    return path.reverse();
  }

  function versionsOf(children, entry) {
    return (children.get(entry.parentId) || []).filter((other) => other.role === entry.role);
  }

  /** Put the branch shown on the page, with each message's actions and versions. */
  function showBranch() {
    const children = childrenIndex();
    const path = branch(children);
    if (editing && !path.includes(editing.entry)) {
      // The branch moved away from it (another tab, or this edit sent): close the editor,
      // and keep an unsent draft in the composer.
      const { sending, text } = editing;
      editing.close();
      if (!sending) {
        giveBack(text(), "The conversation moved to another version: your edit is in the message box.");
      }
    }
    for (const entry of path) {
      if (!entry.el) {
        render(entry);
      }
    }
    keepingScroll(() => view.place(path));
    const disabled = !isOpen() || isAnswering() || editing !== null;
    const last = path[path.length - 1];
    for (const entry of path) {
      const versions = versionsOf(children, entry);
      view.showActions(entry, {
        version: versions.indexOf(entry) + 1,
        versions: versions.length,
        // The conversation's last answer failed or stopped: "Retry" it, in plain view.
        retry: entry === last && entry.role === "assistant" && RETRYABLE.has(entry.status),
        disabled,
      });
    }
    return path;
  }

  /** Show another version of `entry` (`step` -1: the one before, 1: the one after). */
  function switchVersion(entry, step) {
    const children = childrenIndex();
    const versions = versionsOf(children, entry);
    const target = versions[versions.indexOf(entry) + step];
    if (!target || target.id === null || isAnswering() || editing !== null) {
      return;
    }
    if (!sendFrame({ type: "switch", message_id: target.id })) {
      return;
    }
    switchesOut += 1;
    leafId = descend(children, target).key;
    updateControls();
    // The switcher moved to the version shown: keep the keyboard on it.
    const again = target.el.querySelector(`[data-action="${step < 0 ? "previous" : "next"}"]`);
    const other = target.el.querySelector(`[data-action="${step < 0 ? "next" : "previous"}"]`);
    (again && !again.disabled ? again : other).focus();
  }

  /**
   * Edit `entry` in place, starting from `text` (its own, or an edit the server refused).
   * False when it cannot be edited now.
   */
  function startEdit(entry, text) {
    if (editing !== null || entry.id === null || isAnswering() || !isOpen()) {
      return false;
    }
    const editor = view.openEditor(
      entry,
      text,
      (edited) => {
        editing.sending = true;
        const sent = sendMessage(edited, entry.parentId);
        if (sent) {
          sent.editOf = entry.key;
        } else if (editing) {
          editing.sending = false;
        }
        return sent !== null;
      },
      (sent) => {
        editing = null;
        updateControls();
        // Sent, the composer is where to go on; cancelled, back to the button that began it.
        const edit = entry.el && entry.el.querySelector('[data-action="edit"]');
        if (sent || !edit || !entry.el.isConnected) {
          els.input.focus();
        } else {
          edit.focus();
        }
      },
    );
    editing = { entry, close: editor.close, text: editor.text, sending: false };
    updateControls();
    return true;
  }

  /** The entry of a bubble on the page. */
  function entryOf(bubble) {
    if (bubble.dataset.messageId) {
      return messages.get(bubble.dataset.messageId);
    }
    return bubble.dataset.clientId ? messages.get(`local:${bubble.dataset.clientId}`) : undefined;
  }

  function streamingEntry() {
    for (const entry of messages.values()) {
      if (entry.role === "assistant" && isUnderway(entry)) {
        return entry;
      }
    }
    return null;
  }

  function isAnswering() {
    return outbox.size > 0 || retryRequested !== null || streamingEntry() !== null;
  }

  // --- answers being streamed ---------------------------------------------------------------

  function streamFor(id) {
    let stream = streams.get(id);
    if (!stream) {
      stream = new AnswerStream(id, sendSync);
      streams.set(id, stream);
    }
    return stream;
  }

  function endStream(id) {
    const stream = streams.get(id);
    if (stream) {
      stream.end();
      streams.delete(id);
    }
  }

  function showStreamText(entry, stream) {
    entry.content = stream.text;
    keepingScroll(() => renderContent(entry));
  }

  // --- sending ------------------------------------------------------------------------------

  function isOpen() {
    return !closedForGood && socket !== null && socket.readyState === WebSocket.OPEN && ready;
  }

  // Frames that can wait for the next socket (stop, sync, retry) are simply not sent when
  // there is none: the next snapshot shows what became of them.
  function sendFrame(frame) {
    if (!isOpen()) {
      return false;
    }
    socket.send(JSON.stringify(frame));
    return true;
  }

  function sendSync(messageId, afterSeq) {
    sendFrame({ type: "sync", message_id: messageId, after_seq: afterSeq });
  }

  // Ask for a fresh snapshot: the watchdog does so every time it is overdue.
  function sendResync() {
    if (sendFrame({ type: "resync" })) {
      resyncRequested = true;
    }
  }

  // Ask for a fresh snapshot because of something seen: once until it comes, not per frame.
  function requestResync() {
    if (!resyncRequested) {
      sendResync();
    }
  }

  function transmit(clientId) {
    if (draft) {
      startConversation(clientId);
      return;
    }
    const frame = outbox.get(clientId);
    // Before the snapshot it stays in the outbox: the snapshot says whether it was saved.
    if (frame && sendFrame(frame) && !inFlight.includes(clientId)) {
      inFlight.push(clientId);
    }
  }

  function requestStop() {
    const streaming = streamingEntry();
    if (stopRequested !== null || !streaming || !sendFrame({ type: "stop" })) {
      return;
    }
    stopRequested = streaming.id;
    updateControls();
  }

  function requestRetry(messageId) {
    if (isAnswering() || editing !== null || !sendFrame({ type: "retry", message_id: messageId })) {
      return;
    }
    retryRequested = messageId;
    clearAlert();
    updateControls();
  }

  // --- the composer and the buttons ---------------------------------------------------------

  function showAlert(text) {
    els.alert.textContent = text;
  }

  function clearAlert() {
    els.alert.textContent = "";
  }

  function canSend() {
    return !closedForGood && els.input.value.trim() !== "" && !isAnswering();
  }

  /**
   * Bring the controls, and the branch shown with its actions, in line with the state.
   * `textOnly`: only an answer's text changed (a delta or sync reply), which moves no
   * message and changes no action, so the branch is not walked again for it.
   */
  function updateControls(textOnly = false) {
    if (!isAnswering() && els.alert.textContent === STILL_ANSWERING_TEXT) {
      clearAlert(); // as soon as the answer has ended, not when the next message is sent
    }
    els.send.disabled = !canSend();
    els.input.disabled = closedForGood;
    // Stop sits beside Send while an answer streams.
    const stopHadFocus = document.activeElement === els.stop;
    els.stop.hidden = closedForGood || streamingEntry() === null;
    els.stop.disabled = stopRequested !== null || !isOpen();
    els.stop.textContent = stopRequested !== null ? "Stopping…" : "Stop";
    if (stopHadFocus && (els.stop.hidden || els.stop.disabled)) {
      // A hidden or disabled button drops focus to <body>; the composer is where it is useful.
      els.input.focus();
    }
    if (!textOnly) {
      showBranch();
    }
    // What disables the controls is what the page waits for: the watchdog follows it too.
    watchExpectations();
  }

  // --- healing what was lost ----------------------------------------------------------------

  // Overdue confirmations, and a conversation gone quiet, are checked with the server.
  const watchdog = new Watchdog(sendResync);
  const idleCheck = new IdleCheck(() => sendFrame({ type: "ping" }));

  /** Everything the page waits for the server to confirm, one string each (chat-sync.js). */
  function expectations() {
    const things = Array.from(outbox.keys(), (clientId) => `echo:${clientId}`);
    if (retryRequested !== null) {
      things.push(`start:${retryRequested}`);
    }
    if (stopRequested !== null) {
      things.push(`done:${stopRequested}`);
    }
    if (resyncRequested) {
      things.push("snapshot");
    }
    return things;
  }

  function watchExpectations() {
    if (isOpen()) {
      watchdog.update(expectations());
    } else {
      watchdog.stop(); // nothing can be asked; the next socket's snapshot settles it all
    }
  }

  /** What the page holds of the stored conversation, in the terms of a `pong`. */
  function heldState() {
    let count = 0;
    for (const entry of messages.values()) {
      count += entry.id === null ? 0 : 1;
    }
    const saved = branch(childrenIndex()).filter((entry) => entry.id !== null);
    const newest = saved.length ? saved[saved.length - 1] : null;
    return {
      count,
      lastId: newest ? newest.id : null,
      lastStatus: newest ? newest.status : null,
      title: storedTitle,
      modelChoice: modelPicker.current(),
    };
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
      if (content.trim() !== "" && isAnswering()) {
        showAlert(STILL_ANSWERING_TEXT);
      }
      return;
    }
    const path = branch(childrenIndex());
    const parentId = path.length ? path[path.length - 1].id : null;
    if (sendMessage(content, parentId) !== null) {
      els.input.value = "";
      autosize();
      updateControls();
    }
  }

  /**
   * Send `content` as a user message that follows the message `parentId` (null: the first
   * turn): the composer's follows the branch shown, an edit's what the edited one followed.
   * Its new entry; null, with the reason shown, when it cannot be sent.
   */
  function sendMessage(content, parentId) {
    if (closedForGood || content.trim() === "" || isAnswering()) {
      return null;
    }
    // Count code points, as the server does, not UTF-16 units.
    const length = Array.from(content).length;
    if (length > config.maxChars) {
      showAlert(`The message is ${length} characters long; the limit is ${config.maxChars}.`);
      return null;
    }
    clearAlert();
    const clientId = newClientId();
    const entry = newEntry({ id: null, role: "user", status: "sending", content, clientId, parentId });
    entry.key = `local:${clientId}`;
    entry.leafBefore = leafId; // shown again if the server refuses it
    messages.set(entry.key, entry);
    leafId = entry.key;
    render(entry);
    outbox.set(clientId, {
      type: "user_message", content, client_id: clientId, parent_id: parentId,
    });
    transmit(clientId);
    updateControls();
    scrollToBottom(); // your own message always brings you down
    return entry;
  }

  // The server refused a user message: take the bubble back and give the text back, in the
  // composer or, for an edit, in the editor of the message it was to replace.
  function rejectOldestSend() {
    rejectSend(inFlight.shift());
  }

  function rejectSend(clientId) {
    if (!clientId || !outbox.has(clientId)) {
      return;
    }
    const frame = outbox.get(clientId);
    outbox.delete(clientId);
    const entry = messages.get(`local:${clientId}`);
    if (entry) {
      forget(entry);
    }
    const edited = entry && entry.editOf ? messages.get(entry.editOf) : undefined;
    updateControls(); // the edited message is shown again, and can be edited again
    if (!edited || !startEdit(edited, frame.content)) {
      giveBack(frame.content);
    }
  }

  // Text the page could not send or keep where it was goes to the composer, after whatever
  // is written there already: nothing a person wrote is dropped.
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
  }

  // --- a draft's first message --------------------------------------------------------------

  // The draft keeps its prompt on the page until the first message carries it.
  function keepDraftPrompt(frame) {
    const length = Array.from(frame.system_prompt).length;
    const limit = config.maxPromptChars;
    window.queueMicrotask(() => {
      if (length > limit) {
        systemPrompt.refused({
          message: `The system prompt is ${length} characters long; the limit is ${limit}.`,
        });
      } else {
        draftPrompt = frame.system_prompt;
        systemPrompt.show(draftPrompt);
      }
    });
    return true;
  }

  let starting = false;

  /** POST the draft's first message: the server makes the conversation and starts the answer. */
  async function startConversation(clientId) {
    const frame = outbox.get(clientId);
    if (!frame || starting) {
      return;
    }
    starting = true;
    const body = new URLSearchParams({
      content: frame.content,
      client_id: clientId,
      system_prompt: draftPrompt,
    });
    const picked = modelPicker.picked();
    if (picked) {
      body.set("provider_id", picked.provider_id === null ? "" : String(picked.provider_id));
      body.set("model", picked.model);
    }
    const token = els.form.elements.namedItem("csrfmiddlewaretoken");
    let response = null;
    let reply = null;
    try {
      response = await window.fetch(config.startUrl, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": token ? token.value : "" },
      });
      reply = await response.json();
    } catch (err) {
      reply = null;
    } finally {
      starting = false;
    }
    if (!response || !reply || !response.ok) {
      let text = "The server could not be reached: your message was not sent. Try again.";
      if (reply && reply.message) {
        text = reply.message;
      } else if (response) {
        text = `The server refused the message (HTTP ${response.status}). Reload the page and try again.`;
      }
      showAlert(text);
      rejectSend(clientId);
      if (response && response.status === 401) {
        signedOut();
      }
      return;
    }
    becomeConversation(reply);
  }

  /** The draft was saved: this page is the conversation's from now on. */
  function becomeConversation(reply) {
    draft = false;
    config.wsPath = reply.ws_path;
    root.dataset.conversationId = reply.conversation_id;
    delete root.dataset.draft;
    window.history.replaceState(null, "", reply.url);
    document.getElementById("chat-rename").hidden = false;
    const remove = document.getElementById("chat-delete");
    remove.action = `${reply.url}delete/`;
    remove.hidden = false;
    document.getElementById("chat-export-markdown").href = `${reply.url}export.md`;
    document.getElementById("chat-export-json").href = `${reply.url}export.json`;
    document.getElementById("chat-export").hidden = false;
    setStatus("connecting", "");
    connect();
  }

  // --- frames from the server ---------------------------------------------------------------

  // The page was rendered (or last updated) at some moment; the snapshot is the truth now.
  function reconcile(snapshot) {
    const saved = new Set(snapshot.messages.map((message) => upsertStored(message).key));
    for (const entry of Array.from(messages.values())) {
      if (!saved.has(entry.key) && entry.id !== null) {
        forget(entry);
      }
      // One not saved yet stays, and is resent below.
    }
    // A message of this page's still on its way is the end of the branch shown, as it was.
    const sending = leafId !== null && leafId.startsWith("local:") && messages.has(leafId);
    if (!sending) {
      leafId = snapshot.leaf_id || null;
    }
    const activeId = snapshot.active ? snapshot.active.message_id : null;
    for (const id of Array.from(streams.keys())) {
      if (id !== activeId) {
        endStream(id); // it ended while this page was not listening
      }
    }
  }

  /** The conversation's title, named by its first message, in the header, tab and sidebar. */
  function showTitle(title) {
    if (typeof title !== "string") {
      return; // a frame without one (a resend's echo) says nothing about it
    }
    storedTitle = title;
    if (!title) {
      return; // still unnamed: the page already says "New conversation"
    }
    document.getElementById("chat-title").textContent = title;
    document.title = `${title} · chatsite`;
    const current = document.querySelector(
      '.sidebar-list a[aria-current="page"] .conversation-title',
    );
    if (current) {
      current.textContent = title;
    }
    renaming.shown(title);
  }

  // The snapshot shows what became of the requests this page waited on.
  function settleRequests(active) {
    // Frames on one socket are handled in order: the retry was handled before this snapshot
    // was read, so its answer is in it (and streams, or ended), or it was refused.
    retryRequested = null;
    if (stopRequested !== null) {
      if (active && active.message_id === stopRequested) {
        // Still streaming: the stop (or its way to the generation) was lost. Ask again;
        // stopping an answer twice is harmless.
        if (!sendFrame({ type: "stop" })) {
          stopRequested = null;
        }
      } else {
        stopRequested = null;
      }
    }
  }

  // The conversation is gone (deleted, or never was ours), or the page is signed out: stop
  // everything, say so.
  function closeForGood(text) {
    closedForGood = true;
    watchdog.stop();
    idleCheck.stop();
    for (const id of Array.from(streams.keys())) {
      endStream(id);
    }
    setStatus("closed", text, "error");
    updateControls();
  }

  // Signed out: no reconnecting (it would be refused again), but a way back to this page.
  function signedOut() {
    closeForGood(sessionEndedText || SIGNED_OUT_TEXT);
    const next = window.location.pathname + window.location.search;
    const link = document.createElement("a");
    link.className = "connection-login";
    link.href = `${config.loginUrl}?next=${encodeURIComponent(next)}`;
    link.textContent = "Sign in";
    els.status.append(" ", link);
  }

  const handlers = {
    snapshot(frame) {
      snapshots += 1;
      if (snapshots > 1 || !document.querySelector(".sidebar-list .is-current")) {
        sidebar.refresh(); // frames about the list may have been missed meanwhile
      }
      showTitle(frame.title);
      systemPrompt.show(frame.system_prompt || "");
      modelPicker.show(frame.model_choice);
      // Not on "open": a server without its channel layer accepts and then closes (4503),
      // and resetting the backoff there would reconnect every half second for ever.
      ready = true;
      resyncRequested = false;
      switchesOut = 0; // the snapshot's branch is the one shown now
      sessionEndedText = null; // if the last socket's session ended, this one's holds
      retryDelay = RECONNECT_FIRST_MS;
      setStatus("open", "");
      keepingScroll(() => {
        reconcile(frame);
        const active = frame.active;
        if (active) {
          const entry = assistantEntry(active.message_id);
          if (entry.status !== "streaming") {
            entry.status = "streaming";
            render(entry);
          }
          const stream = streamFor(active.message_id);
          stream.resume(active.text, active.seq);
          showStreamText(entry, stream);
        }
      });
      settleRequests(frame.active);
      sidebar.ownChanged(Boolean(frame.active), null);
      // Same client_id as before: the server recognises a resend and answers with the stored
      // one. Everything still in the outbox now is not saved: the snapshot would show it.
      for (const clientId of outbox.keys()) {
        transmit(clientId);
      }
      // What is still awaited is awaited afresh from here.
      watchdog.stop();
    },

    message(frame) {
      showTitle(frame.title);
      const known = messages.has(frame.message.id);
      const entry = upsertStored(frame.message);
      if (!known) {
        // A new message (ours confirmed, or another tab's) ends the branch shown, with
        // whatever already follows it.
        leafId = descend(childrenIndex(), entry).key;
      }
    },

    start(frame) {
      retryRequested = null;
      const known = messages.get(frame.message_id);
      if (known && !isUnderway(known)) {
        return; // late: this answer has ended already
      }
      const entry = assistantEntry(frame.message_id, frame.parent_id, frame.created_at);
      if (!known) {
        leafId = entry.key; // a new answer is the end of the branch shown
      }
      if (!entry.model && frame.model) {
        // Who answers, shown under it while it streams.
        entry.model = frame.model;
        entry.providerName = frame.provider_name || "";
        render(entry);
      }
      sidebar.ownChanged(true, frame.created_at);
      // A new answer counts from seq 0; one known from the snapshot keeps its text and seq.
      streamFor(frame.message_id);
      if (entry.status !== "streaming") {
        entry.status = "streaming";
        render(entry);
      }
    },

    retrying(frame) {
      // Only a notice (the wait before the server asks the provider again): a lost one
      // costs nothing, so one for an unknown message asks for nothing either.
      comfort.retrying(messages.get(frame.message_id), frame);
    },

    delta(frame) {
      const entry = messages.get(frame.message_id);
      if (!entry) {
        requestResync(); // its `start` was lost: the snapshot has the answer so far
        return;
      }
      if (entry.status !== "streaming") {
        return; // late or repeated: `done` already gave the final text
      }
      const stream = streamFor(frame.message_id);
      if (stream.delta(frame.seq, frame.text)) {
        showStreamText(entry, stream);
      }
    },

    sync(frame) {
      const stream = streams.get(frame.message_id);
      if (!stream) {
        if (!messages.has(frame.message_id)) {
          requestResync();
        }
        return; // the answer has ended; its `done` carries the text
      }
      if (stream.sync(frame.after_seq, frame.seq, frame.text)) {
        showStreamText(messages.get(frame.message_id), stream);
      }
    },

    done(frame) {
      const message = frame.message;
      if (!messages.has(frame.message_id)) {
        // Its `start` (or its user message) was lost: the snapshot has the whole exchange.
        requestResync();
        return;
      }
      comfort.answerEnded(messages.get(frame.message_id), frame);
      const stream = streams.get(frame.message_id);
      if (stream) {
        // The saved text wins. More than the page assembled (up to `seq`) is a lost tail,
        // healed here; less is an answer swept from its checkpoint. Any other difference
        // means frames were doubled or misapplied somewhere.
        const { text, last } = stream;
        if (stream.finish(frame.seq, message.content) === "mismatch") {
          console.warn(
            `chat: answer ${frame.message_id} (${frame.status}) assembled ${text.length} ` +
            `characters up to delta ${last}, saved ${message.content.length} up to delta ` +
            `${frame.seq}; showing the saved text`,
          );
        }
      }
      endStream(frame.message_id);
      sidebar.ownChanged(false, null);
      if (stopRequested === frame.message_id) {
        stopRequested = null;
      }
      keepingScroll(() => upsertStored(message));
    },

    system_prompt(frame) {
      systemPrompt.show(frame.system_prompt);
    },

    title(frame) {
      showTitle(frame.title);
    },

    model(frame) {
      modelPicker.show(frame.model_choice);
    },

    branch(frame) {
      if (switchesOut > 0) {
        switchesOut -= 1;
        if (switchesOut > 0) {
          return; // an earlier switch of this page's: the reader has moved on since
        }
      }
      if (messages.has(frame.leaf_id)) {
        leafId = frame.leaf_id;
      } else {
        requestResync(); // a message this page missed: the snapshot has it
      }
    },

    conversation_changed(frame) {
      sidebar.changed(frame.conversation);
    },

    conversation_removed(frame) {
      sidebar.removed(frame.conversation_id);
    },

    pong(frame) {
      if (pongDisagreement(frame, heldState()) !== null) {
        requestResync();
      }
    },

    deleted(frame) {
      // The server closes the socket next, with 4404.
      closeForGood(frame.message || DELETED_TEXT);
    },

    error(frame) {
      if (frame.code === "session_ended") {
        // The socket closes with 4401 next; the reconnect shows whether the browser still
        // holds a session (a password changed in this browser gives it a new one).
        sessionEndedText = frame.message || SIGNED_OUT_TEXT;
        setStatus("reconnecting", CHECKING_SIGN_IN_TEXT, "warning");
        return;
      }
      if (frame.code === "unavailable") {
        // The socket closes with 4503 next and is reconnected like after any other close.
        setStatus("reconnecting", UNAVAILABLE_TEXT, "warning");
        return;
      }
      if (LIMIT_CODES.has(frame.code)) {
        limited(frame);
        return;
      }
      if (frame.code === "bad_sync" || frame.code === "unknown_type") {
        // Nothing a person can act on (an unknown_type: this page is newer than its server);
        // the next snapshot or `done` sets things right.
        return;
      }
      if (PROMPT_CODES.has(frame.code)) {
        systemPrompt.refused(frame);
        return;
      }
      if (TITLE_CODES.has(frame.code)) {
        renaming.refused(frame);
        return;
      }
      if (MODEL_CODES.has(frame.code)) {
        modelPicker.refused(frame);
        return;
      }
      if (frame.code === "bad_switch") {
        requestResync(); // the version asked for is not what the page thought: start afresh
        return;
      }
      showAlert(frame.message || "Something went wrong.");
      // A refused retry (no user message in flight) ends the wait for its answer.
      const refusal = ["busy", "model_unavailable", "provider_key_unreadable"].includes(frame.code);
      const retryRefused = refusal && inFlight.length === 0;
      if (frame.code === "bad_retry" || retryRefused) {
        retryRequested = null;
      } else if (SEND_ERROR_CODES.has(frame.code)) {
        rejectOldestSend();
      }
    },
  };

  // Over a limit: the refused frame's request undone, and the wait said in words. A limit
  // on the page's own upkeep (sync, ping) needs no word: the next one heals what it missed.
  function limited(frame) {
    if (frame.frame === "set_system_prompt") {
      systemPrompt.refused(frame);
      return;
    }
    if (frame.frame === "rename") {
      renaming.refused(frame);
      return;
    }
    if (frame.frame === "set_model") {
      modelPicker.refused(frame);
      return;
    }
    if (frame.frame === "user_message") {
      rejectOldestSend();
    } else if (frame.frame === "retry") {
      retryRequested = null;
    } else if (frame.frame !== "stop" && frame.frame !== undefined) {
      return;
    }
    limitText = frame.message || "Too many requests.";
    showAlert(limitText);
  }

  function dispatch(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    const handler = frame && handlers[frame.type];
    if (handler) {
      handler(frame);
      updateControls(frame.type === "delta" || frame.type === "sync");
    }
    if (isOpen()) {
      idleCheck.heard(); // any frame at all shows the socket is alive
    }
  }

  // --- the socket ---------------------------------------------------------------------------

  // `state` goes on the chat element too (open, reconnecting, closed), for styles and tests.
  function setStatus(state, text, kind) {
    root.dataset.connection = state;
    els.status.textContent = text;
    els.status.dataset.kind = kind || "";
  }

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${config.wsPath}`;
  }

  function connect() {
    retryTimer = null;
    const ws = new WebSocket(socketUrl());
    socket = ws;
    ready = false;
    ws.addEventListener("open", () => {
      inFlight = [];
    });
    ws.addEventListener("message", dispatch);
    ws.addEventListener("close", (event) => onClose(ws, event));
  }

  function onClose(ws, event) {
    if (socket !== ws) {
      return;
    }
    socket = null;
    const served = ready; // it had delivered its snapshot
    ready = false;
    inFlight = [];
    // Requests on a closed socket may or may not have arrived; the next snapshot tells.
    stopRequested = null;
    retryRequested = null;
    resyncRequested = false;
    switchesOut = 0;
    idleCheck.stop();
    updateControls();
    if (closedForGood || leaving) {
      return;
    }
    if (event.code === CLOSE_UNAUTHENTICATED && !served) {
      signedOut(); // refused at connect: the browser holds no session that logs it in
      return;
    }
    if (event.code === CLOSE_TOO_MANY) {
      closeForGood(limitText || "Too many chat tabs are open. Close one, then reload this page.");
      return;
    }
    if (event.code === CLOSE_FORBIDDEN || event.code === CLOSE_DELETED) {
      closeForGood(event.code === CLOSE_DELETED ? DELETED_TEXT : FORBIDDEN_TEXT);
      return;
    }
    // A socket that worked and was closed with 4401 (its session ended) reconnects like after
    // any close: the browser may hold a newer session. Refused, the page is signed out.
    let text = "Reconnecting…";
    if (event.code === CLOSE_UNAVAILABLE) {
      text = UNAVAILABLE_TEXT;
    } else if (event.code === CLOSE_UNAUTHENTICATED) {
      text = CHECKING_SIGN_IN_TEXT;
    }
    setStatus("reconnecting", text, "warning");
    retryTimer = window.setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, RECONNECT_MAX_MS);
  }

  // --- start --------------------------------------------------------------------------------

  function adoptInitialMessages() {
    const data = document.getElementById("initial-messages");
    const initial = data ? JSON.parse(data.textContent) : { messages: [], leaf_id: null };
    for (const message of initial.messages) {
      const entry = newEntry({ id: message.id, role: message.role, status: message.status });
      applyStored(entry, message);
      // The server rendered the branch shown; keep those nodes rather than drawing them
      // again. Their text is the stored text as written: an answer's Markdown is rendered
      // here, by the renderer the live answer used.
      entry.el = els.list.querySelector(`[data-message-id="${message.id}"]`);
      messages.set(entry.key, entry);
      if (!entry.el) {
        render(entry); // another version: drawn now, shown when its branch is
      } else if (entry.role === "assistant") {
        view.showContent(entry);
      }
    }
    leafId = initial.leaf_id;
  }

  // Every message action, present and future: one listener on the list.
  els.list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const bubble = button && button.closest(".message");
    const entry = bubble && entryOf(bubble);
    if (!entry) {
      return;
    }
    switch (button.dataset.action) {
      case "copy":
        window.ChatMarkdown.copyText(button, entry.content);
        break;
      case "edit":
        startEdit(entry, entry.content);
        break;
      case "regenerate":
        requestRetry(entry.id);
        break;
      case "previous":
      case "next":
        switchVersion(entry, button.dataset.action === "previous" ? -1 : 1);
        break;
      default:
    }
  });

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
    updateControls();
  });

  els.stop.addEventListener("click", requestStop);

  // Esc stops the answer from anywhere on the page, but not while an IME uses it to cancel.
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.isComposing && streamingEntry() !== null) {
      requestStop();
    }
  });

  window.addEventListener("resize", autosize);

  // Leaving the page closes the socket; that is not a reason to reconnect.
  window.addEventListener("pagehide", () => {
    leaving = true;
    watchdog.stop();
    idleCheck.stop();
    if (retryTimer) {
      window.clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (socket) {
      const ws = socket;
      socket = null;
      ready = false;
      ws.close();
    }
  });

  // Back/forward cache: the page comes back without its socket.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !closedForGood && !draft) {
      leaving = false;
      connect();
    }
  });

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  adoptInitialMessages();
  autosize();
  updateControls();
  scrollToBottom();
  if (draft) {
    setStatus("draft", ""); // ready: the first message makes the conversation
  } else {
    connect();
  }
})();
