/*
 * The chat page (streaming/templates/streaming/conversation_detail.html): its modules,
 * wired. History is already on the page, rendered by Django; the page takes it as its
 * state, opens the conversation's socket (or, for a new chat, waits for the first message)
 * and from then on every frame goes through dispatch.js, every request through outbox.js
 * and requests.js, and page.js draws what they decided. Nothing here but the wiring.
 */
import { attach as attachComfort } from "./comfort.js";
import { attach as attachComposer } from "./composer.js";
import { attach as attachDraft } from "./draft.js";
import { reveal } from "./found.js";
import { attach as attachLayout } from "./layout.js";
import { attachNewer, attachOlder } from "./loaders.js";
import { listenForCopy } from "./markdown.js";
import { attach as attachModel } from "./model.js";
import { createPage } from "./page.js";
import { ClientFrame } from "./protocol.js";
import { attachPrompt, attachTitle } from "./settings.js";
import { attach as attachSidebar } from "./sidebar.js";
import { createSocket } from "./socket.js";
import { anchorOf, createState, holdsEnd, send } from "./store.js";
import { attach as attachUsage } from "./usage.js";
import { createView } from "./view.js";
import { requestJump } from "./windowing.js";

const chat = document.getElementById("chat");
if (chat) {
  start(chat);
}

function start(root) {
  listenForCopy(document);
  const list = document.getElementById("conversation-list");
  const sidebar = list ? attachSidebar(document, list, () => root.dataset.conversationId) : null;
  // Before the composer, which sizes itself to the placeholder the layout picks.
  attachLayout();

  const config = {
    wsPath: root.dataset.wsPath,
    startUrl: root.dataset.startUrl,
    maxPromptChars: parseInt(root.dataset.maxSystemPromptChars, 10) || Infinity,
    uploadUrl: root.dataset.uploadUrl,
    maxFiles: parseInt(root.dataset.attachMaxFiles, 10) || Infinity,
    maxBytes: parseInt(root.dataset.attachMaxBytes, 10) || Infinity,
  };
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
    root,
    tray: document.getElementById("composer-tray"),
    files: document.getElementById("composer-files"),
    dropTarget: document.getElementById("drop-target"),
    announcer: document.getElementById("chat-announcer"),
  };
  const state = createState({
    draft: root.dataset.draft === "true",
    maxChars: parseInt(root.dataset.maxMessageChars, 10) || Infinity,
    askForSync: (messageId, afterSeq) => {
      sendFrame({ type: ClientFrame.SYNC, message_id: messageId, after_seq: afterSeq });
    },
  });
  // Every part below reaches the others through the page, made last.
  let page = null;
  const run = (fx) => page.run(fx);

  /** Send `frame` now if the socket can take it; whether it could. */
  function sendFrame(frame) {
    const fx = [];
    const sent = send(state, frame, fx);
    page.apply(fx);
    return sent;
  }

  const view = createView(els);
  const comfort = attachComfort(els, view, {
    holdsEnd: () => holdsEnd(state),
    newsBelow: () => state.newsBelow,
    jump: () => {
      const fx = [];
      requestJump(state, fx);
      run(fx);
    },
  });
  const prompt = attachPrompt((frame) =>
    state.draft ? draft.keepPrompt(frame) : sendFrame(frame),
  );
  const renaming = attachTitle(sendFrame);
  const usage = attachUsage();
  // A draft has no socket: its pick stays in the picker until the first message takes it.
  const picker = attachModel((frame) => state.draft || sendFrame(frame));
  const composer = attachComposer({ state, els, config, view, run });
  const older = attachOlder({
    state,
    button: document.getElementById("messages-older"),
    scroller: els.scroller,
    run,
  });
  const newer = attachNewer({
    state,
    button: document.getElementById("messages-newer"),
    scroller: els.scroller,
    run,
  });
  const socket = createSocket({
    state,
    // Away from the end, the first snapshot is a window around the reader (store.js).
    path: () => {
      const around = anchorOf(state);
      return around ? `${config.wsPath}?around=${encodeURIComponent(around)}` : config.wsPath;
    },
    onMessage: (data) => page.receive(data),
    onClose: (code) => page.socketClosed(code),
    onLeave: () => page.stopChecks(),
  });
  const draft = attachDraft({
    state,
    root,
    els,
    picker,
    prompt,
    config,
    run,
    connect: socket.connect,
  });
  page = createPage(state, root, {
    els,
    view,
    comfort,
    prompt,
    renaming,
    picker,
    usage,
    sidebar,
    composer,
    older,
    newer,
    socket,
    draft,
    loginUrl: root.dataset.loginUrl,
  });

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  const focus = page.adoptInitialMessages();
  composer.autosize();
  page.refresh();
  const found = focus && view.bubble(focus);
  if (found && found.isConnected) {
    reveal(found, document.getElementById("chat-announcer"));
  } else {
    view.scrollToBottom();
    if (new URLSearchParams(location.search).has("message")) {
      // No such message here (the server opened the page at its end): nothing to keep.
      history.replaceState(history.state, "", location.pathname);
    }
  }
  if (state.draft) {
    page.setStatus("draft", ""); // ready: the first message makes the conversation
  } else {
    socket.connect();
  }
}
