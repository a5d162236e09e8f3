/*
 * The chat page: history is already on the page (rendered by Django); this script opens the
 * conversation's WebSocket, sends what the user writes and renders what the server says.
 *
 * Message text is only ever set with textContent, never parsed as HTML.
 * Frames are documented in docs/protocol.md; each frame type has one entry in `handlers`.
 */
(function () {
  "use strict";

  const root = document.getElementById("chat");
  if (!root) {
    return;
  }

  const RECONNECT_FIRST_MS = 500;
  const RECONNECT_MAX_MS = 8000;
  // Closer to the bottom than this counts as "at the bottom" (sub-pixel zoom, rounding).
  const STICK_THRESHOLD_PX = 48;
  const CLOSE_UNAUTHENTICATED = 4401;
  const CLOSE_FORBIDDEN = 4403;
  // Error frames that answer a user_message frame: the message was not saved.
  const SEND_ERROR_CODES = new Set(["busy", "empty_content", "content_too_long", "bad_client_id"]);

  const ROLE_LABELS = { user: "You", assistant: "Assistant", system: "System" };
  const STATUS_LABELS = {
    sending: "Sending…",
    pending: "Waiting…",
    cancelled: "Cancelled",
    interrupted: "Interrupted",
    error: "Failed",
  };

  const els = {
    scroller: document.getElementById("messages-scroller"),
    list: document.getElementById("messages"),
    empty: document.getElementById("chat-empty"),
    form: document.getElementById("composer"),
    input: document.getElementById("composer-input"),
    send: document.getElementById("composer-send"),
    alert: document.getElementById("composer-alert"),
    status: document.getElementById("connection-status"),
  };

  const config = {
    wsPath: root.dataset.wsPath,
    loginUrl: root.dataset.loginUrl,
    maxChars: parseInt(root.dataset.maxMessageChars, 10) || Infinity,
  };

  // --- state ------------------------------------------------------------------------------

  /*
   * Every message on the page, by server id; a message the server has not confirmed yet is
   * under "local:<client_id>". An entry: {key, id, role, content, status, error, usage,
   * clientId, lastSeq, gap, el}. lastSeq is the last delta applied, or null when the text
   * came from somewhere that has no seq (a checkpoint rendered into the page).
   */
  const messages = new Map();
  // User messages sent but not yet echoed by the server, by client_id: resent on reconnect.
  const outbox = new Map();
  // client_ids sent on the current socket, oldest first, awaiting their echo or error.
  let inFlight = [];

  let socket = null;
  let retryDelay = RECONNECT_FIRST_MS;
  let retryTimer = null;
  let closedForGood = false; // 4403: nothing to reconnect to
  let leaving = false; // the page is being hidden or unloaded

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

  // --- rendering ----------------------------------------------------------------------------

  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) {
      element.className = className;
    }
    if (text !== undefined) {
      element.textContent = text;
    }
    return element;
  }

  function typingIndicator() {
    const typing = node("div", "typing");
    typing.setAttribute("role", "img");
    typing.setAttribute("aria-label", "The assistant is typing");
    typing.append(node("span"), node("span"), node("span"));
    return typing;
  }

  // Same markup as the loop in conversation_detail.html.
  function buildBubble(entry) {
    const li = node("li", `message message--${entry.role} message--${entry.status}`);
    if (entry.id) {
      li.dataset.messageId = entry.id;
    }
    if (entry.clientId) {
      li.dataset.clientId = entry.clientId;
    }
    li.dataset.role = entry.role;
    li.dataset.status = entry.status;

    const meta = node("div", "message-meta");
    meta.append(node("span", "message-role", ROLE_LABELS[entry.role] || entry.role));
    const label = STATUS_LABELS[entry.status];
    if (label) {
      meta.append(node("span", `message-status message-status--${entry.status}`, label));
    }
    li.append(meta);
    li.append(node("div", "message-content", entry.content));
    if (entry.role === "assistant" && (entry.status === "streaming" || entry.status === "pending")) {
      li.append(typingIndicator());
    }
    if (entry.status === "error") {
      li.append(node("div", "message-error", entry.error || "The answer failed."));
    }
    if (entry.usage && entry.usage.total_tokens) {
      li.append(node("div", "message-usage", `${entry.usage.total_tokens} tokens`));
    }
    return li;
  }

  function render(entry) {
    const fresh = buildBubble(entry);
    if (entry.el && entry.el.parentNode) {
      entry.el.replaceWith(fresh);
    } else {
      els.list.append(fresh);
    }
    entry.el = fresh;
    els.empty.hidden = true;
  }

  function renderContent(entry) {
    const content = entry.el && entry.el.querySelector(".message-content");
    if (content) {
      content.textContent = entry.content;
    } else {
      render(entry);
    }
  }

  // --- scrolling ----------------------------------------------------------------------------

  function isAtBottom() {
    const s = els.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= STICK_THRESHOLD_PX;
  }

  function scrollToBottom() {
    els.scroller.scrollTop = els.scroller.scrollHeight;
  }

  // Run a change to the list; follow it down only if the reader was already at the bottom.
  function keepingScroll(change) {
    const stick = isAtBottom();
    change();
    if (stick) {
      scrollToBottom();
    }
  }

  // --- the message store --------------------------------------------------------------------

  function entryFrom(message) {
    return {
      key: message.id,
      id: message.id,
      role: message.role,
      content: message.content || "",
      status: message.status,
      error: message.error || "",
      usage: message.usage || null,
      clientId: message.client_id || null,
      lastSeq: null,
      gap: false,
      el: null,
    };
  }

  function rekey(entry, id) {
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
      entry = entryFrom(message);
      messages.set(entry.key, entry);
    } else {
      entry.role = message.role;
      entry.content = message.content || "";
      entry.status = message.status;
      entry.error = message.error || "";
      entry.usage = message.usage || null;
      entry.clientId = message.client_id || entry.clientId;
    }
    keepingScroll(() => render(entry));
    return entry;
  }

  function assistantEntry(id) {
    let entry = messages.get(id);
    if (!entry) {
      entry = entryFrom({ id, role: "assistant", content: "", status: "streaming" });
      messages.set(id, entry);
      keepingScroll(() => render(entry));
    }
    return entry;
  }

  function isAnswering() {
    if (outbox.size > 0) {
      return true;
    }
    for (const entry of messages.values()) {
      if (entry.role === "assistant" && (entry.status === "streaming" || entry.status === "pending")) {
        return true;
      }
    }
    return false;
  }

  // --- the composer -------------------------------------------------------------------------

  function showAlert(text) {
    els.alert.textContent = text;
  }

  function clearAlert() {
    els.alert.textContent = "";
  }

  function canSend() {
    return !closedForGood && els.input.value.trim() !== "" && !isAnswering();
  }

  function updateComposer() {
    els.send.disabled = !canSend();
    els.input.disabled = closedForGood;
  }

  function autosize() {
    const input = els.input;
    input.style.height = "auto";
    const limit = Math.round(window.innerHeight * 0.4);
    input.style.height = `${Math.min(input.scrollHeight + 2, limit)}px`;
    input.style.overflowY = input.scrollHeight + 2 > limit ? "auto" : "hidden";
  }

  function transmit(clientId) {
    const frame = outbox.get(clientId);
    if (!frame || !socket || socket.readyState !== WebSocket.OPEN) {
      return; // stays in the outbox; sent when the socket (re)opens
    }
    socket.send(JSON.stringify(frame));
    inFlight.push(clientId);
  }

  function submit() {
    const content = els.input.value;
    if (!canSend()) {
      if (content.trim() !== "" && isAnswering()) {
        showAlert("The assistant is still answering. Wait for it to finish.");
      }
      return;
    }
    // Count code points, as the server does, not UTF-16 units.
    const length = Array.from(content).length;
    if (length > config.maxChars) {
      showAlert(`The message is ${length} characters long; the limit is ${config.maxChars}.`);
      return;
    }
    clearAlert();
    const clientId = newClientId();
    const entry = {
      key: `local:${clientId}`,
      id: null,
      role: "user",
      content,
      status: "sending",
      error: "",
      usage: null,
      clientId,
      lastSeq: null,
      gap: false,
      el: null,
    };
    messages.set(entry.key, entry);
    render(entry);
    scrollToBottom(); // your own message always brings you down
    outbox.set(clientId, { type: "user_message", content, client_id: clientId });
    transmit(clientId);
    els.input.value = "";
    autosize();
    updateComposer();
  }

  // The server refused a user message: take the bubble back and give the text back.
  function rejectOldestSend() {
    const clientId = inFlight.shift();
    if (!clientId || !outbox.has(clientId)) {
      return;
    }
    const frame = outbox.get(clientId);
    outbox.delete(clientId);
    const entry = messages.get(`local:${clientId}`);
    if (entry) {
      messages.delete(entry.key);
      if (entry.el) {
        entry.el.remove();
      }
    }
    els.empty.hidden = messages.size > 0;
    if (els.input.value.trim() === "") {
      els.input.value = frame.content;
      autosize();
    }
  }

  // --- frames from the server ---------------------------------------------------------------

  const handlers = {
    message(frame) {
      upsertStored(frame.message);
    },

    start(frame) {
      const entry = assistantEntry(frame.message_id);
      // Every delta of this answer comes after its start, so counting can begin at 0.
      if (entry.lastSeq === null && entry.content === "") {
        entry.lastSeq = 0;
      }
      if (entry.status !== "streaming") {
        entry.status = "streaming";
        keepingScroll(() => render(entry));
      }
    },

    delta(frame) {
      const entry = assistantEntry(frame.message_id);
      if (entry.status !== "streaming") {
        return; // late or repeated: `done` already gave the final text
      }
      let last = entry.lastSeq;
      if (last === null) {
        if (entry.content !== "") {
          // Text from a checkpoint has no seq, so appending could repeat words: wait for done.
          entry.gap = true;
          return;
        }
        last = 0;
      }
      if (frame.seq <= last) {
        return; // already applied
      }
      if (frame.seq > last + 1) {
        // Some text went missing; `done` carries the whole of it.
        entry.gap = true;
      }
      entry.lastSeq = frame.seq;
      entry.content += frame.text;
      keepingScroll(() => renderContent(entry));
    },

    done(frame) {
      const message = frame.message || {
        id: frame.message_id,
        role: "assistant",
        content: (messages.get(frame.message_id) || {}).content || "",
        status: frame.status,
        error: frame.error,
        usage: frame.usage,
      };
      const entry = upsertStored(message); // content from the server is authoritative
      entry.gap = false;
    },

    error(frame) {
      showAlert(frame.message || "Something went wrong.");
      if (SEND_ERROR_CODES.has(frame.code)) {
        rejectOldestSend();
      }
    },
  };

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
      updateComposer();
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
    ws.addEventListener("open", () => {
      retryDelay = RECONNECT_FIRST_MS;
      setStatus("open", "");
      inFlight = [];
      // Same client_id as before: the server recognises a resend and answers with the stored one.
      for (const clientId of outbox.keys()) {
        transmit(clientId);
      }
      updateComposer();
    });
    ws.addEventListener("message", dispatch);
    ws.addEventListener("close", (event) => {
      if (socket !== ws) {
        return;
      }
      socket = null;
      inFlight = [];
      if (closedForGood || leaving) {
        return;
      }
      if (event.code === CLOSE_UNAUTHENTICATED) {
        const next = window.location.pathname + window.location.search;
        window.location.assign(`${config.loginUrl}?next=${encodeURIComponent(next)}`);
        return;
      }
      if (event.code === CLOSE_FORBIDDEN) {
        closedForGood = true;
        setStatus("closed", "This conversation does not exist or is not yours.", "error");
        updateComposer();
        return;
      }
      setStatus("reconnecting", "Reconnecting…", "warning");
      retryTimer = window.setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, RECONNECT_MAX_MS);
    });
  }

  // --- start --------------------------------------------------------------------------------

  function adoptInitialMessages() {
    const data = document.getElementById("initial-messages");
    const initial = data ? JSON.parse(data.textContent) : [];
    for (const message of initial) {
      const entry = entryFrom(message);
      // The server already rendered it; keep that node rather than drawing it again.
      entry.el = els.list.querySelector(`[data-message-id="${message.id}"]`);
      messages.set(entry.key, entry);
      if (!entry.el) {
        render(entry);
      }
    }
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
    updateComposer();
  });

  window.addEventListener("resize", autosize);

  // Leaving the page closes the socket; that is not a reason to reconnect.
  window.addEventListener("pagehide", () => {
    leaving = true;
    if (retryTimer) {
      window.clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close();
    }
  });

  // Back/forward cache: the page comes back without its socket.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !closedForGood) {
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
  updateComposer();
  scrollToBottom();
  connect();
})();
